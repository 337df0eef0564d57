"""A default result a researcher can trust: several seeds, the representative one kept, each cluster's
stability, and keywords without the terms every cluster has."""

from __future__ import annotations

import csv
import json

import pytest
from test_stages import _vector_study

import connote
from connote import steps
from connote.cli import main as cli_main
from connote.evaluate.stability import cluster_stability, representative, seed_stability
from connote.keywords import common_terms, distinct_keywords


# ---------------------------------------------------------------------------------------------- pure
def test_the_representative_seed_agrees_best_with_the_others_and_ties_go_to_the_first():
    # mean ARI with the others: 1 -> (0.5 + 0.2) / 2, 2 -> (0.5 + 0.5) / 2, 3 -> (0.2 + 0.5) / 2
    kept, means = representative([1, 2, 3], [(1, 2, 0.5), (1, 3, 0.2), (2, 3, 0.5)])
    assert kept == 2 and means == pytest.approx({1: 0.35, 2: 0.5, 3: 0.35})
    assert representative([7, 8, 9], [(7, 8, 0.4), (7, 9, 0.4), (8, 9, 0.4)])[0] == 7  # a tie: the first
    assert representative([5], [])[0] == 5
    # on labels: seeds 1 and 3 are the same partition, 2 another: 1 (the first of the agreeing two) is kept
    same = {"a": 0, "b": 0, "c": 1, "d": 1}
    st = seed_stability({1: same, 2: {"a": 0, "b": 1, "c": 0, "d": 1}, 3: dict(same)})
    assert st.kept == 1 and st.to_dict()["kept"] == 1
    assert type(st).from_dict(st.to_dict()).kept == 1


def test_cluster_stability_against_a_hand_computed_example():
    """Kept: cluster 0 = {a,b,c}, cluster 1 = {d,e}, f an outlier.
    Other seed 1: {a,b}, {c,d,e,f}: cluster 0's best Jaccard is |{a,b}|/|{a,b,c}| = 2/3; cluster 1's is
    |{d,e}| / |{c,d,e,f}| = 2/4. Other seed 2: {a,b,c}, d,e,f outliers: cluster 0 = 1, cluster 1 = 0.
    Means: cluster 0 (2/3 + 1) / 2 = 5/6, cluster 1 (1/2 + 0) / 2 = 1/4."""
    kept = {"a": 0, "b": 0, "c": 0, "d": 1, "e": 1, "f": -1}
    one = {"a": 0, "b": 0, "c": 1, "d": 1, "e": 1, "f": 1}
    two = {"a": 5, "b": 5, "c": 5, "d": -1, "e": -1, "f": -1}
    assert cluster_stability(kept, [one, two]) == pytest.approx({0: 5 / 6, 1: 1 / 4})
    assert cluster_stability(kept, [kept]) == {0: 1.0, 1: 1.0}  # found exactly: 1
    assert cluster_stability(kept, []) == {}  # nothing to compare with
    # only the images both labelings have count: g is unknown to the other seed
    assert cluster_stability({**kept, "g": 1}, [kept]) == {0: 1.0, 1: 1.0}


def test_a_term_in_half_the_clusters_lists_is_common_to_the_run():
    lists = {0: ["climate", "ice", "bear"], 1: ["climate", "coal", "smoke"], 2: ["sea", "climate", "ice"]}
    lists[3] = ["car", "road", "smoke"]
    # 4 lists: common from 2 on; climate (3 lists) first, then ice and smoke (2 each, ice ranked higher)
    assert common_terms(lists) == ["climate", "ice", "smoke"]
    assert common_terms({0: ["a", "b"], 1: ["c", "d"]}) == []  # one of two lists is not "common"
    assert common_terms({0: ["a", "b"], 1: ["b", "c"]}) == ["b"]  # both of two are
    assert common_terms({0: ["a", "b"]}) == []
    texts = [
        "climate polar bear ice",
        "climate bear ice floe",
        "climate coal smoke chimney",
        "climate coal smoke plant",
        "climate car road traffic",
        "climate car road jam",
    ]
    labels = [0, 0, 1, 1, 2, 2]
    kept, common = distinct_keywords(texts, labels, top_k=3, stop=())
    assert common == {"climate": [0, 1, 2]}
    assert all("climate" not in [t for t, _ in terms] for terms in kept.values())
    assert all(len(terms) == 3 for terms in kept.values())  # the next terms fill the lists


# ---------------------------------------------------------------------------------------------- steps
def test_without_a_seed_three_runs_are_stored_and_the_representative_one_kept(tmp_path, capsys):
    study = _vector_study(tmp_path / "s", n=120, dim=8, k=4)
    res = steps.cluster(study, reduce="umap:components=2,neighbors=10", min_cluster_size=10)
    assert [r.seed for r in res.runs] == [42, 48, 112] and len(study.runs()) == 3
    labels = {r.seed: study.assignments(r.run_id) for r in res.runs}
    st = seed_stability(labels)
    assert res.seed == st.kept and res.stability.kept == st.kept
    assert res.run_id == next(r.run_id for r in res.runs if r.seed == st.kept)
    others = [labels[s] for s in labels if s != st.kept]
    assert res.cluster_stability == pytest.approx(cluster_stability(labels[st.kept], others))
    # recorded with the run, and the run a command without a run id uses, though seed 112 came last
    record = json.loads(study.get_run(res.run_id)["params"])["seeds"]
    assert record["kept"] == st.kept and record["seeds"] == [42, 48, 112] and "mean ARI" in record["why"]
    assert record["seed_stability"]["mean_ari"] == pytest.approx(st.mean_ari)
    assert study.get_run()["id"] == res.run_id
    rows = {r["id"]: r for r in connote.runs(study)}
    assert rows[res.run_id]["kept"]["kept"] == st.kept
    assert rows[res.run_id]["seed_stability"]["kept"] == st.kept
    stored = {int(c): v for c, v in rows[res.run_id]["cluster_stability"].items()}
    assert stored == pytest.approx(res.cluster_stability, abs=1e-4)
    # --seed makes exactly one run; a run made later is the latest
    one = steps.cluster(study, reduce="umap:components=2,neighbors=10", min_cluster_size=10, seed=7)
    assert one.runs == [] and one.stability is None and len(study.runs()) == 4
    assert study.get_run()["id"] == one.run_id and rows[res.run_id]["seed"] == st.kept
    # asking again reuses the three runs and keeps the same one, which is the latest again
    again = steps.cluster(study, reduce="umap:components=2,neighbors=10", min_cluster_size=10)
    assert all(r.reused for r in again.runs) and again.run_id == res.run_id
    assert study.get_run()["id"] == res.run_id
    with pytest.raises(connote.UserError, match="not both"):
        steps.cluster(study, seed=1, seeds=[1, 2])

    # the CLI prints the same, and its JSON carries it
    args = [
        "cluster",
        str(study.path),
        "--reduce",
        "umap:components=2,neighbors=10",
        "--min-cluster-size",
        "10",
    ]
    assert cli_main([*args, "--json", "-q"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["run_id"] == res.run_id and doc["seeds"] == [42, 48, 112]
    assert doc["seed_stability"]["kept"] == st.kept and set(doc["cluster_stability"]) == {
        str(c) for c in res.cluster_stability
    }
    assert cli_main(args) == 0
    out = capsys.readouterr()
    assert out.out.strip() == str(res.run_id)  # stdout: the run id alone
    text = out.err
    assert f"Kept run {res.run_id}: seed {st.kept} of 42, 48, 112" in text
    assert "Seed stability: 3 seeds" in text and "Cluster stability" in text


def test_the_export_has_each_images_cluster_stability(shared_study, tmp_path):
    import shutil

    study = shutil.copytree(shared_study.path, tmp_path / "study")
    res = steps.cluster(study, reduce="pca:components=5", min_cluster_size=3)  # three seeds
    assert len(res.runs) == 3 and res.cluster_stability
    with open(steps.export(study, res.run_id, path=tmp_path / "out.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and "cluster_stability" in rows[0]
    for r in rows:
        c = int(r["cluster"])
        assert (r["cluster_stability"] == "") == (c == -1)
        if c != -1:
            assert float(r["cluster_stability"]) == pytest.approx(res.cluster_stability[c])
    assert res.runs[0].reused and res.runs[0].run_id == shared_study.run_id  # seed 42 was there already

    # the run page says which seeds ran, which was kept and why, and what to publish; each cluster page
    # and the map's data carry the cluster's stability; the study index marks the kept run
    page = steps.report(study, res.run_id, progress=False)
    html = page.read_text()
    assert 'id="seeds"' in html and "representative" in html and "What to publish" in html
    assert f"seed {res.seed} of 42, 48, 112" in html and "Seed stability: 3 seeds" in html
    c = min(res.cluster_stability)
    cluster_html = (page.parent / f"cluster-{c}.html").read_text()
    assert f"Stability across seeds: <b>{res.cluster_stability[c]:.2f}</b>" in cluster_html
    run_js = json.loads((page.parent / "run.js").read_text().split("=", 1)[1].rstrip().rstrip(";"))
    assert run_js["clusters"][str(c)]["stability"] == pytest.approx(res.cluster_stability[c])
    assert run_js["clusters"][str(c)]["unstable"] == (res.cluster_stability[c] < 0.5)
    assert "kept of 42,48,112" in (page.parent.parent / "index.html").read_text()


def test_a_derived_run_has_no_stability_of_its_own(tmp_path):
    study = _vector_study(tmp_path / "s", n=120, dim=8, k=4)
    res = steps.cluster(study, reduce="umap:components=2,neighbors=10", min_cluster_size=10)
    from connote import derive

    child = derive.assign_outliers(study, res.run_id)
    row = {r["id"]: r for r in connote.runs(study)}[child.run_id]
    assert row["cluster_stability"] is None and row["seed_stability"] is None
    from connote.listing import run_cluster_stability

    assert run_cluster_stability(study, child.run_id) is None
    assert run_cluster_stability(study, res.run_id) == pytest.approx(res.cluster_stability)


def test_explain_leaves_common_terms_out_unless_kept(tmp_path):
    from connote.study import Study

    study = _vector_study(tmp_path / "s", n=12, dim=4, k=3)
    shas = [f"{i:064x}" for i in range(12)]
    set_id = study.resolve_description_set("synthetic")["id"]
    words = ["bear ice floe", "coal smoke chimney", "car road traffic"]
    for i, sha in enumerate(shas):
        study.put_description(set_id, sha, f"climate change {words[i % 3]} item{i}")
    record = {
        "key": "hand",
        "features": "text",
        "description_set": "synthetic",
        "embedder": "text:minilm",
        "reduce": "pca:components=2",
        "min_cluster_size": 2,
        "min_samples": None,
        "seed": 42,
        "n_items": 12,
        "n_clusters": 3,
        "n_outliers": 0,
        "params": "{}",
    }
    run = study.add_run(record, {sha: i % 3 for i, sha in enumerate(shas)}, None)
    kw = steps.explain(study, run, top_k=5)
    assert kw.common == ["change", "climate"] and "50%" in kw.rule
    assert all(not {"climate", "change"} & {t for t, _ in terms} for terms in kw.values())
    stored = json.loads(Study.of(study).con.execute("SELECT params FROM keywords LIMIT 1").fetchone()[0])
    assert stored["common_terms"] == ["change", "climate"] and stored["keep_common"] is False
    kept = steps.explain(study, run, top_k=5, keep_common=True)
    assert kept.common == [] and all(
        {"climate", "change"} <= {t for t, _ in terms} for terms in kept.values()
    )
    assert all(len(v) == 5 for v in kw.values())  # the next terms fill the lists
