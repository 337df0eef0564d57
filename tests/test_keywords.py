"""S5 keywords against a TF-IDF example computed by hand.

scikit-learn's TfidfVectorizer (what connote uses) with its defaults: raw term counts, smooth idf
``idf(t) = ln((1 + n) / (1 + df(t))) + 1`` over the n cluster documents, rows l2-normalised.
"""

from __future__ import annotations

import math

import pytest

from connote.keywords import FILLER_WORDS, cluster_keywords, stop_words

TEXTS = [
    "The image conveys a flood of water.",  # cluster 0
    "Flood suggests danger in 2024.",  # cluster 0
    "This image shows fire and smoke with water",  # cluster 1
    "A volcano with lava and water",  # outlier
    "",  # no description: ignored
]
LABELS = [0, 0, 1, -1, 1]


def idf(n_docs: int, df: int) -> float:
    return math.log((1 + n_docs) / (1 + df)) + 1


def normalised(weights: dict[str, float]) -> dict[str, float]:
    norm = math.sqrt(sum(w * w for w in weights.values()))
    return {t: w / norm for t, w in weights.items()}


def expected_two_clusters() -> dict[int, dict[str, float]]:
    # After removing stop words (the, a, of, in, this, and, with), filler (image, conveys, suggests,
    # shows) and bare numbers (2024):
    #   cluster 0: flood flood water danger      cluster 1: fire smoke water
    # n = 2 documents; df: flood 1, danger 1, fire 1, smoke 1, water 2.
    return {
        0: normalised({"flood": 2 * idf(2, 1), "danger": 1 * idf(2, 1), "water": 1 * idf(2, 2)}),
        1: normalised({"fire": idf(2, 1), "smoke": idf(2, 1), "water": idf(2, 2)}),
    }


def test_hand_computed_scores_and_order():
    got = cluster_keywords(TEXTS, LABELS, top_k=10)
    want = expected_two_clusters()
    assert set(got) == {0, 1}  # the outlier (-1) is not a cluster
    # numbers, for the record: flood 0.852, danger 0.426, water 0.303; fire = smoke 0.632, water 0.449
    assert want[0]["flood"] == pytest.approx(0.8523, abs=1e-4)
    assert want[1]["water"] == pytest.approx(0.4494, abs=1e-4)
    for c in (0, 1):
        assert dict(got[c]) == pytest.approx(want[c], abs=1e-9)
    # terms specific to a cluster first; ties broken alphabetically; the shared term last
    assert [t for t, _ in got[0]] == ["flood", "danger", "water"]
    assert [t for t, _ in got[1]] == ["fire", "smoke", "water"]


def test_filler_stop_words_and_numbers_are_removed():
    got = cluster_keywords(TEXTS, LABELS)
    terms = {t for c in got.values() for t, _ in c}
    assert not terms & {"conveys", "suggests", "image", "shows"}
    assert not terms & {"the", "of", "this", "and", "with", "in"}
    assert "2024" not in terms
    assert {"conveys", "suggests", "image"} <= FILLER_WORDS


def test_outliers_are_left_out_of_the_idf_corpus():
    got = cluster_keywords(TEXTS, LABELS)
    terms = {t for c in got.values() for t, _ in c}
    assert not terms & {"volcano", "lava"}
    # with outliers as a third document, water's df becomes 3 of n = 3 and every idf changes
    with_out = cluster_keywords(TEXTS, LABELS, include_outliers=True)
    assert set(with_out) == {-1, 0, 1}
    c0 = normalised({"flood": 2 * idf(3, 1), "danger": idf(3, 1), "water": idf(3, 3)})
    assert dict(with_out[0]) == pytest.approx(c0, abs=1e-9)
    assert dict(got[0]) != pytest.approx(c0, abs=1e-6)


def test_keep_filler_and_extra_stop_words():
    kept = cluster_keywords(TEXTS, LABELS, stop=stop_words(filler=False))
    assert "conveys" in dict(kept[0]) and "image" in dict(kept[1])
    extra = cluster_keywords(TEXTS, LABELS, stop=stop_words(["Flood"]))
    assert "flood" not in dict(extra[0])
    assert [t for t, _ in extra[0]] == ["danger", "water"]


def test_top_k_and_degenerate_inputs():
    assert [t for t, _ in cluster_keywords(TEXTS, LABELS, top_k=1)[0]] == ["flood"]
    assert cluster_keywords([], []) == {}
    assert cluster_keywords(["anything"], [-1]) == {}
    assert cluster_keywords(["the image conveys", "this shows"], [0, 1]) == {0: [], 1: []}
    # a term in every cluster and nowhere else still gets a (low) positive score
    both = cluster_keywords(["water flood", "water fire"], [3, 7])
    assert set(both) == {3, 7}
    assert both[3][0][0] == "flood" and both[3][-1][0] == "water"


def test_content_words_from_sklearns_stop_list_are_kept():
    # scikit-learn's list drops 'fire', 'empty', 'top' ...; a cluster of wildfire images needs 'fire'
    got = cluster_keywords(["fire smoke", "fire flames", "empty street"], [0, 0, 1])
    assert got[0][0][0] == "fire"
    assert "empty" in dict(got[1])
    assert "the" in stop_words() and "fire" not in stop_words()


def test_explain_leaves_out_the_offline_describers_colour_words(tmp_path):
    import json

    from connote import steps
    from connote.study import Study

    study = Study.create(tmp_path / "study", tmp_path)
    set_id = study.description_set("offline", "offline", "m", None, {})
    texts = {
        "a1": "Written: wildfire smoke. Seen: fire. Colours: orange and black.",
        "a2": "Written: wildfire. Seen: fire. Colours: orange and black.",
        "b1": "Written: flood water. Seen: boat. Colours: blue and grey.",
        "b2": "Written: flood. Seen: boat. Colours: blue and grey.",
    }
    for sha, text in texts.items():
        study.put_description(set_id, sha, text)
    record = {
        "key": "k",
        "features": "text",
        "description_set": "offline",
        "embedder": "text:minilm",
        "reduce": "pca:components=2",
        "min_cluster_size": 2,
        "min_samples": None,
        "seed": 42,
        "n_items": 4,
        "n_clusters": 2,
        "n_outliers": 0,
        "params": json.dumps({}),
    }
    run_id = study.add_run(record, {"a1": 0, "a2": 0, "b1": 1, "b2": 1}, None)
    keywords = steps.explain(study, run_id)
    terms = {t for terms in keywords.values() for t, _ in terms}
    assert {"wildfire", "flood", "boat"} <= terms
    assert not terms & {"orange", "black", "blue", "grey", "colours", "written", "seen"}
    kept = steps.explain(study, run_id, filler=False)  # --keep-filler keeps them
    assert "orange" in {t for terms in kept.values() for t, _ in terms}
