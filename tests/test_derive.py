"""Derived runs: merges suggested with evidence and made as runs that record their parent; outliers
assigned by centroid, soft membership or nearest neighbours; the pure functions checked by hand."""

from __future__ import annotations

import numpy as np
import pytest
from derived_fixtures import build

from connote import derive, steps
from connote.errors import UserError


def test_pure_functions_by_hand():
    X = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    clusters, C = derive.centroids(X, np.array([0, 0, 1, -1]))
    assert clusters == [0, 1]
    assert np.allclose(C, [[1.0, 0.0], [0.0, 1.0]])
    assert derive.similarity_matrix(np.array([[1.0, 0.0], [1.0, 1.0]]))[0, 1] == pytest.approx(2**-0.5)
    assert derive.keyword_overlap(["a", "b", "c"], ["b", "c", "d"]) == pytest.approx(0.5)
    assert derive.keyword_overlap([], []) == 0.0
    pairs = derive.nearest_pairs(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([[1.0, 0.1], [-1.0, 0.0]]), 1)
    assert pairs[0][:2] == (0, 0) and pairs[0][2] == pytest.approx(1 / np.sqrt(1.01))
    assert derive.parse_merges("7=3, 9=3") == {7: 3, 9: 3}
    assert derive.resolve_merges({7: 3, 3: 1}, {1, 3, 7}) == {7: 1, 3: 1}
    for bad, msg in [("7", "FROM=INTO"), ("x=1", "FROM=INTO"), ("", "no merges")]:
        with pytest.raises(UserError, match=msg):
            derive.parse_merges(bad)
    with pytest.raises(UserError, match="circle"):
        derive.resolve_merges({1: 2, 2: 1}, {1, 2})
    with pytest.raises(UserError, match="no cluster 9"):
        derive.resolve_merges({9: 1}, {1, 2})
    with pytest.raises(UserError, match="itself"):
        derive.resolve_merges({1: 1}, {1, 2})


def test_assign_methods_by_hand():
    X_in = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    y_in = np.array([0, 0, 5, 5])
    X_out = np.array([[1.0, 0.2], [0.6, 0.8]])
    c, s = derive.assign(X_out, X_in, y_in, "centroid")
    assert c.tolist() == [0, 5]
    centre = derive.unit(derive.unit(X_in[:2]).sum(axis=0, keepdims=True))[0]  # mean of unit vectors
    assert s[0] == pytest.approx(np.array([1.0, 0.2]) @ centre / np.linalg.norm([1.0, 0.2]))
    c, s = derive.assign(X_out, X_in, y_in, "knn", k=3)
    assert c.tolist() == [0, 5]
    # the first outlier's 3 nearest: both of cluster 0 (and one of 5); its score is their mean similarity
    assert s[0] == pytest.approx(np.mean(derive.unit(X_out[:1]) @ derive.unit(X_in[:2]).T))
    c, s = derive.assign(X_out, X_in, y_in, "soft")
    assert c.tolist() == [0, 5] and ((s > 0.5) & (s <= 1)).all()
    # memberships by hand for the first outlier: 1/d to each cluster's nearest member, normalised
    u = np.array([1.0, 0.2]) / np.linalg.norm([1.0, 0.2])
    d0 = 1 - max(u @ derive.unit(X_in[:2]).T)
    d5 = 1 - max(u @ derive.unit(X_in[2:]).T)
    assert s[0] == pytest.approx((1 / d0) / (1 / d0 + 1 / d5))
    with pytest.raises(UserError, match="unknown method"):
        derive.assign(X_out, X_in, y_in, "nearest")


def test_suggest_merges_puts_the_near_twins_first(tmp_path):
    d = build(tmp_path)
    got = derive.suggest_merges(d.study, d.run_id)
    assert len(got) == 3
    first = got[0]
    assert {first.a, first.b} == {0, 1} and first.similarity > 0.9 > got[1].similarity
    assert first.keyword_overlap > 0 and {"flood", "water"} <= set(first.shared_keywords)
    assert len(first.nearest) == 3 and first.nearest[0]["similarity"] >= first.nearest[1]["similarity"]
    assert all(p["a"] in d.paths and p["b"] in d.paths for p in first.nearest)


def test_merge_makes_a_derived_run_and_reuses_it(tmp_path):
    d = build(tmp_path)
    before = d.study.assignments(d.run_id)
    res = derive.merge(d.study, d.run_id, "1=0")
    assert not res.reused and res.parent == d.run_id and res.n_clusters == 2 and res.n_outliers == 2
    after = d.study.assignments(res.run_id)
    assert d.study.assignments(d.run_id) == before  # the parent is untouched
    assert {s: (0 if c == 1 else c) for s, c in before.items()} == after
    assert d.study.derivation(res.run_id) == {
        "parent": d.run_id,
        "kind": "merge",
        "params": {"merges": {"1": 0}},
    }
    assert set(d.study.keywords(res.run_id)) == {0, 2}  # keywords computed for the new clusters
    again = derive.merge(d.study, d.run_id, {1: 0})
    assert again.reused and again.run_id == res.run_id
    listed = {r["id"]: r for r in steps.runs(d.study)}
    assert listed[res.run_id]["parent"] == d.run_id and listed[res.run_id]["derived"]["kind"] == "merge"
    assert listed[d.run_id]["parent"] is None
    rows = steps.export_rows(d.study, res.run_id)
    assert {r["cluster"] for r in rows} == {0, 2, -1}
    with pytest.raises(UserError, match="no cluster 7"):
        derive.merge(d.study, d.run_id, "7=0")


@pytest.mark.parametrize("method", ["centroid", "soft", "knn"])
def test_assign_outliers(tmp_path, method):
    d = build(tmp_path)
    res = derive.assign_outliers(d.study, d.run_id, method=method)
    assert res.assigned == 2 and res.n_outliers == 0 and res.parent == d.run_id
    shas = {r["path"]: r["sha256"] for r in d.study.unique_images()}
    assigned = d.study.assigned_outliers(res.run_id)
    assert assigned[shas[d.outlier_near_fire]][0] == 2
    # a threshold keeps the far outlier apart; the close one still joins 'fire'
    threshold = {"centroid": 0.6, "soft": 0.45, "knn": 0.6}[method]
    strict = derive.assign_outliers(d.study, d.run_id, method=method, threshold=threshold)
    got = d.study.assigned_outliers(strict.run_id)
    assert set(got) == {shas[d.outlier_near_fire]}, got
    assert strict.n_outliers == 1 and any("below" in n for n in strict.notes)
    assert derive.assign_outliers(d.study, d.run_id, method=method).reused


def test_assign_then_merge_chains_derived_runs(tmp_path):
    d = build(tmp_path)
    a = derive.assign_outliers(d.study, d.run_id)
    m = derive.merge(d.study, a.run_id, "1=0")
    assert d.study.derivation(m.run_id)["parent"] == a.run_id
    assert m.n_outliers == 0 and m.n_clusters == 2
    with pytest.raises(UserError, match="between 0 and 1"):
        derive.assign_outliers(d.study, d.run_id, threshold=2)


def test_two_processes_making_the_same_derived_run(tmp_path, monkeypatch):
    d = build(tmp_path)
    first = derive.merge(d.study, d.run_id, "1=0")
    real, asked = d.study.find_run, []

    def late(key):  # the second process looked before the first had stored its run
        asked.append(key)
        return None if len(asked) == 1 else real(key)

    monkeypatch.setattr(d.study, "find_run", late)
    second = derive.merge(d.study, d.run_id, "1=0")
    assert second.reused and second.run_id == first.run_id and len(d.study.runs()) == 2


def test_blocked_similarities_give_the_same_answers(monkeypatch):
    rng = np.random.default_rng(3)
    X_in, y_in = rng.normal(size=(60, 5)), rng.integers(0, 4, 60)
    X_out = rng.normal(size=(25, 5))
    whole = {m: derive.assign(X_out, X_in, y_in, m, k=5) for m in derive.METHODS}
    pairs = derive.nearest_pairs(X_out, X_in, 4)
    monkeypatch.setattr(derive, "BLOCK", 70)  # one or two rows at a time
    assert len(list(derive.blocks(25, 60))) == 25
    for m in derive.METHODS:
        c, s = derive.assign(X_out, X_in, y_in, m, k=5)
        assert c.tolist() == whole[m][0].tolist() and np.allclose(s, whole[m][1])
    blocked = derive.nearest_pairs(X_out, X_in, 4)
    assert [p[:2] for p in blocked] == [p[:2] for p in pairs]
    assert [p[2] for p in blocked] == pytest.approx([p[2] for p in pairs])


def test_large_clusters_search_their_facing_members(tmp_path, monkeypatch):
    d = build(tmp_path)
    full = derive.suggest_merges(d.study, d.run_id, top=1)[0]
    monkeypatch.setattr(derive, "FACING", 2)  # only the 2 members of each nearest the other's centre
    capped = derive.suggest_merges(d.study, d.run_id, top=1)[0]
    assert (capped.a, capped.b, capped.similarity) == (full.a, full.b, full.similarity)
    assert len(capped.nearest) == 3 and len({p["a"] for p in capped.nearest}) <= 2
    assert capped.nearest[0]["similarity"] <= full.nearest[0]["similarity"] + 1e-9
