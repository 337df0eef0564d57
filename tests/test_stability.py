"""Seed stability: the adjusted Rand index (textbook values, scikit-learn's), and the summary per setting."""

from __future__ import annotations

import json

import numpy as np
import pytest

from connote.evaluate.stability import (
    adjusted_rand_index,
    aligned,
    group_by_setting,
    seed_stability,
    setting_of,
)


def test_ari_textbook_values():
    # The same partition under other names: 1. Hubert & Arabie's index is 0 in expectation; this split
    # of 4 items into {a,b},{c,d} against {a,c},{b,d} is below chance: -0.5.
    assert adjusted_rand_index([0, 0, 1, 1], [5, 5, 9, 9]) == pytest.approx(1.0)
    assert adjusted_rand_index([0, 0, 1, 1], [0, 1, 0, 1]) == pytest.approx(-0.5)
    # Both labelings one cluster, or both all singletons: the same partition.
    assert adjusted_rand_index([1, 1, 1], [2, 2, 2]) == 1.0
    assert adjusted_rand_index([0, 1, 2], [5, 6, 7]) == 1.0
    assert adjusted_rand_index([0, 0, 0], [0, 1, 2]) == 0.0
    with pytest.raises(ValueError):
        adjusted_rand_index([0], [0, 1])


def test_ari_matches_scikit_learn():
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(3)
    for _ in range(20):
        a = rng.integers(-1, 5, 60)
        b = np.where(rng.random(60) < 0.7, a, rng.integers(-1, 5, 60))
        assert adjusted_rand_index(a, b) == pytest.approx(adjusted_rand_score(a, b), abs=1e-12)


def test_seed_stability_aligns_by_image_and_flags_unstable_settings():
    same = {"a": 0, "b": 0, "c": 1, "d": 1, "e": -1}
    renamed = {"e": -1, "d": 0, "c": 0, "b": 1, "a": 1}  # another order, other numbers: the same clusters
    assert aligned(same, renamed) == ([0, 0, 1, 1, -1], [1, 1, 0, 0, -1])
    stable = seed_stability({42: same, 48: renamed})
    assert stable.mean_ari == pytest.approx(1.0) and stable.unstable is False and stable.verdict() == "stable"
    assert stable.pairs == [(42, 48, pytest.approx(1.0))]

    scattered = {"a": 0, "b": 1, "c": 0, "d": 1, "e": 2}
    lumped = {"a": 0, "b": 0, "c": 0, "d": 0, "e": 0}
    s = seed_stability({42: same, 48: scattered, 112: lumped})
    assert len(s.pairs) == 3 and s.mean_ari < 0.5 and s.unstable is True
    assert (s.clusters, s.clusters_min, s.clusters_max, s.outliers) == ([2, 3, 1], 1, 3, [1, 0, 0])
    line = s.describe()
    assert "UNSTABLE" in line and "1-3 clusters" in line and "3 seeds" in line
    d = s.to_dict()
    assert d["unstable"] is True and d["verdict"] == "UNSTABLE" and len(d["pairs"]) == 3
    json.dumps(d)  # JSON-ready

    one = seed_stability({42: same})
    assert one.mean_ari is None and one.unstable is None and "one seed" in one.describe()


def _run(rid, seed, reduce="umap:components=5,neighbors=15", mcs=10):
    params = {
        "reducer": {"class": "connote.reduce.UMAPReducer", "n_neighbors": 15, "random_state": seed},
        "clusterer": {"min_cluster_size": mcs, "cluster_selection_method": "eom"},
        "features_key": "f",
        "seed": seed,
    }
    return {
        "id": rid,
        "seed": seed,
        "features": "text",
        "description_set": "d",
        "embedder": "text:minilm",
        "reduce": reduce,
        "min_cluster_size": mcs,
        "min_samples": None,
        "params": json.dumps(params),
    }


def test_runs_that_differ_only_by_seed_share_a_setting():
    runs = [
        _run(1, 42),
        _run(2, 48),
        _run(3, 42, mcs=20),
        _run(4, 112),
        _run(5, 42, reduce="pca:components=5"),
    ]
    assert setting_of(runs[0]) == setting_of(runs[1]) != setting_of(runs[2])
    groups = list(group_by_setting(runs).values())
    assert [[r["id"] for r in g] for g in groups] == [[1, 2, 4], [3], [5]]
