"""`connote sweep`: the paper grid as ordinary runs, reuse, scaling for small collections, shared kNN."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import connote
from connote import steps
from connote.cli import main as cli_main
from connote.errors import UserError
from connote.knn import can_slice, knn_graph
from connote.study import Study, text_key
from connote.sweep_grid import Grid, load_grid, plan

PCA_ONLY = {
    "name": "pca-small",
    "min_cluster_size": [5, 10],
    "pca": {"components": [2, 3], "variance": [0.8]},
}


def make_study(path: Path, n: int = 120, dim: int = 16, k: int = 3, seed: int = 0) -> Study:
    """A study holding only a description set and text vectors (MiniLM's name) with ``k`` clusters."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    X = rng.normal(0, 6, (k, dim))[truth] + rng.normal(0, 1, (n, dim))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    study = Study.create(path)
    set_id = study.description_set("synthetic", "synthetic", None, None, {})
    for i, v in enumerate(X):
        text = f"item {i}"
        study.put_description(set_id, f"{i:064x}", text)
        study.save_vector("text:minilm", text_key(text), v)
    study.register_embedder("text:minilm", "text", "minilm", dim, {})
    return study


def test_paper_grid_is_the_packaged_file():
    toml = Path(connote.__file__).parent / "grids" / "paper.toml"
    assert load_grid(toml).__dict__ == load_grid("paper").__dict__
    g = load_grid("paper")
    assert g.reduce_specs() == [
        "umap:components=5,neighbors=5",
        "umap:components=5,neighbors=15",
        "umap:components=5,neighbors=30",
        "umap:components=10,neighbors=5",
        "umap:components=10,neighbors=15",
        "umap:components=10,neighbors=30",
        "pca:components=5",
        "pca:components=10",
        "pca:components=20",
        "pca:variance=0.8",
    ]
    assert g.min_cluster_sizes == [50, 100, 200]


def test_plan_scales_for_small_collections():
    g = load_grid("paper")
    full = plan(g, 11873, 384)
    assert full.min_cluster_sizes == [50, 100, 200] and not full.notes and len(full.reduce_specs) == 10
    small = plan(g, 1200, 384)
    assert small.min_cluster_sizes == [5, 10, 20]
    assert "scaled" in small.notes[0]
    tiny = plan(g, 20, 8)
    assert tiny.min_cluster_sizes == [5]  # scaled sizes collapse to the floor; duplicates dropped
    assert "umap:components=5,neighbors=19" in tiny.reduce_specs  # 30 neighbours clamped to n - 1
    assert "pca:components=8" in tiny.reduce_specs  # 10 and 20 components clamped to the 8 dimensions
    assert len(tiny.reduce_specs) == len(set(tiny.reduce_specs))


def test_grid_errors(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_grid(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("min_cluster_size = [5]\n[tsne]\nperplexity = [30]\n")
    with pytest.raises(UserError, match="unknown grid entries"):
        load_grid(bad)
    with pytest.raises(UserError, match="no reductions"):
        Grid.from_dict({"min_cluster_size": [5]})


def test_grid_evoc_entries(tmp_path):
    """[evoc]: EVoC options, each a value or a list, every combination a setting; evoc = true: EVoC's
    defaults; a grid of EVoC alone needs no reductions or min cluster sizes."""
    g = tmp_path / "g.toml"
    g.write_text("[evoc]\nbase_min_cluster_size = [5, 10]\nnoise_level = 0.3\n")
    assert load_grid(g).evoc == [
        {"base_min_cluster_size": 5, "noise_level": 0.3},
        {"base_min_cluster_size": 10, "noise_level": 0.3},
    ]
    assert Grid.from_dict({"evoc": True}).evoc == [{}]
    assert Grid.from_dict({"evoc": {}}).evoc == [{}]
    assert plan(Grid.from_dict({"evoc": True}), 100, 8).evoc == [{}]
    assert Grid.from_dict(PCA_ONLY).evoc == []
    with pytest.raises(UserError, match="unknown \\[evoc\\] options perplexity"):
        Grid.from_dict({"evoc": {"perplexity": 30}})
    with pytest.raises(UserError, match="whole number"):
        Grid.from_dict({"evoc": {"base_min_cluster_size": 5.5}})
    with pytest.raises(UserError, match="a table of EVoC options"):
        Grid.from_dict({"evoc": "yes"})
    for bad, message in [
        ({"base_min_cluster_size": -3}, "at least 2"),
        ({"noise_level": -1}, "from 0 to 1"),
        ({"noise_level": float("nan")}, "expected a number"),
        ({"n_epochs": 0}, "at least 1"),
        ({"n_neighbors": [15, 1]}, "at least 2"),
    ]:
        with pytest.raises(UserError, match=message):
            Grid.from_dict({"evoc": bad})


def test_knn_graph_exact_small():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 6)).astype(np.float32)
    idx, dist = knn_graph(X, 7, metric="euclidean")
    assert idx.shape == dist.shape == (50, 7)
    assert (idx[:, 0] == np.arange(50)).all() and np.allclose(dist[:, 0], 0)
    assert (np.diff(dist, axis=1) >= -1e-6).all()
    D = np.linalg.norm(X[:, None] - X[None], axis=2)
    np.testing.assert_allclose(dist, np.sort(D, axis=1)[:, :7], atol=1e-4)
    _, dcos = knn_graph(X, 5, metric="cosine")
    Z = X / np.linalg.norm(X, axis=1, keepdims=True)
    np.testing.assert_allclose(dcos, np.sort(1 - Z @ Z.T, axis=1)[:, :5], atol=1e-5)
    _, dman = knn_graph(X, 5, metric="manhattan")  # any metric scikit-learn knows, below 4,096 items
    np.testing.assert_allclose(
        dman, np.sort(np.abs(X[:, None] - X[None]).sum(axis=2), axis=1)[:, :5], atol=1e-4
    )


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_knn_graph_slices_exactly_with_ties_and_duplicates(metric):
    """The sweep computes one graph at its largest k and slices it: that must be *exactly* the graph a
    direct computation at the smaller k gives (what `connote cluster` computes), ties included."""
    from connote import knn

    rng = np.random.default_rng(5)
    X = np.round(rng.normal(size=(300, 4)) * 2).astype(np.float32)  # an integer grid: many equal distances
    X[-40:] = X[:40]  # duplicates
    wide_idx, wide_dist = knn_graph(X, 30, metric=metric)
    for k in (2, 5, 15, 29):
        idx, dist = knn_graph(X, k, metric=metric)
        assert np.array_equal(wide_idx[:, :k], idx) and np.array_equal(wide_dist[:, :k], dist)
    assert (wide_idx[:, 0] == np.arange(300)).all()  # self first, also beside its duplicate
    # Equal distances in index order: a total order, whatever the block size.
    d, i = wide_dist[:, 1:], wide_idx[:, 1:]
    tie = d[:, 1:] == d[:, :-1]
    assert tie.any() and (i[:, 1:][tie] > i[:, :-1][tie]).all()
    small_blocks = knn._exact(np.ascontiguousarray(X), 30, metric, block=7)
    assert np.array_equal(small_blocks[0], wide_idx)
    assert can_slice(300, metric) and not can_slice(knn.EXACT_MAX + 1, metric)


def test_knn_graph_does_not_depend_on_the_thread_count():
    from threadpoolctl import threadpool_limits

    X = np.random.default_rng(2).normal(size=(2500, 64)).astype(np.float32)
    with threadpool_limits(2):
        a = knn_graph(X, 15)
    b = knn_graph(X, 15)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_sweep_pca_grid_runs_reuse_and_cli(tmp_path, capsys):
    study = make_study(tmp_path / "s")
    res = connote.sweep(study, PCA_ONLY, seeds=(42, 48), workers=2, progress=False)  # a process pool
    # 3 reductions x 2 sizes x 2 seeds
    assert len(res.rows) == 12 and res.computed == 12 and res.reused == 0 and res.reductions == 6
    assert res.knn_graphs == 0
    runs = steps.runs(study)
    assert len(runs) == 12 and {r["label"] for r in runs} == {"sweep:pca-small"}
    # Seed stability per setting (3 reductions x 2 sizes), each over the two seeds.
    assert len(res.stability) == 6 and all(len(s.stability.pairs) == 1 for s in res.stability)
    assert "mean ARI" in res.stability_table()
    assert all(r["n_items"] == 120 for r in runs)
    assert max(r["n_clusters"] for r in runs) >= 2
    assert len(list((study.path / "cache" / "reduce").glob("*.npy"))) == 6

    # The same setting through `connote cluster` finds the sweep's run (same key and record).
    same = steps.cluster(study, "text", reduce="pca:components=3", min_cluster_size=10, seed=48)
    assert same.reused and same.run_id in {r.run_id for r in res.rows}
    # ... and is an ordinary run for export.
    assert steps.export(study, same.run_id).is_file()

    # A second sweep reuses everything; a wider one only computes the new settings, reusing the reductions.
    again = connote.sweep(study, PCA_ONLY, seeds=(42, 48), workers=1, progress=False)
    assert again.computed == 0 and again.reused == 12
    wider = dict(PCA_ONLY, min_cluster_size=[5, 10, 15])
    more = connote.sweep(study, wider, seeds=(42,), workers=1, progress=False)
    assert (more.computed, more.reused, more.reductions) == (3, 6, 0)

    # CLI: a TOML grid, and the table at the end.
    grid = tmp_path / "g.toml"
    grid.write_text('name = "cli"\nmin_cluster_size = [6]\n[pca]\ncomponents = [4]\n')
    assert cli_main(["sweep", str(study.path), "--grid", str(grid), "--seeds", "42,48", "-q"]) == 0
    out = capsys.readouterr().out
    assert "pca:components=4" in out and "clusters" in out and "outliers" in out
    assert len(steps.runs(study)) == 17
    assert cli_main(["sweep", str(study.path), "--grid", str(grid), "--features", "image", "-q"]) == 2


@pytest.mark.slow
def test_sweep_umap_shares_one_knn_and_gives_clusters_labels(tmp_path):
    """Two UMAP settings from one shared kNN graph give exactly the labels `connote cluster` gives for each
    in a fresh study (one code path; the graph sliced for the smaller neighbour count). In this process:
    numba compiles UMAP's layout code once per process; the pool path is covered by the PCA test."""
    study = make_study(tmp_path / "s", n=150, dim=12)
    grid = {"name": "umap-small", "min_cluster_size": [15], "umap": {"components": [2], "neighbors": [5, 10]}}
    res = connote.sweep(study, grid, seeds=(42,), workers=1, progress=False)
    assert (res.computed, res.reductions, res.knn_graphs, res.workers) == (2, 2, 1, 1)
    assert {r.reduce for r in res.rows} == {"umap:components=2,neighbors=5", "umap:components=2,neighbors=10"}
    plain_study = make_study(tmp_path / "p", n=150, dim=12)
    for row in res.rows:
        plain = steps.cluster(plain_study, "text", reduce=row.reduce, min_cluster_size=15, seed=42)
        assert study.assignments(row.run_id) == plain_study.assignments(plain.run_id)
        assert (
            study.find_run(study.get_run(row.run_id)["key"])
            and plain_study.get_run(plain.run_id)["key"] == (study.get_run(row.run_id)["key"])
        )


def test_seed_stability_in_cluster_sweep_and_runs_output(tmp_path, capsys):
    """`cluster --seeds`, `sweep` (three seeds by default) and `runs` each say per setting how far the
    seeds agree, text and JSON from one result."""
    import json

    study = make_study(tmp_path / "s")
    path = str(study.path)
    cluster = ["cluster", path, "--reduce", "pca:components=3", "--min-cluster-size", "8"]
    cluster += ["--seeds", "42,48,112"]
    assert cli_main([*cluster, "-q"]) == 0
    both = capsys.readouterr()  # stdout: the kept run's id; the seeds and their agreement on stderr
    assert both.out.strip().isdigit() and "Seed stability: 3 seeds: ARI mean" in both.err
    assert sum(ln.startswith("run ") and "  seed " in ln for ln in both.err.splitlines()) == 3
    assert cli_main([*cluster, "--json", "-q"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["seed"] for r in data["runs"]] == [42, 48, 112] and all(r["reused"] for r in data["runs"])
    st = data["seed_stability"]
    assert (
        len(st["pairs"]) == 3
        and st["unstable"] == (st["mean_ari"] < 0.5)
        and st["verdict"] in ("stable", "UNSTABLE")
    )
    assert cli_main(["cluster", path, "--seeds", "42,x"]) == 2  # a one-line error

    grid = tmp_path / "g.toml"
    grid.write_text('name = "g"\nmin_cluster_size = [8]\n[pca]\ncomponents = [3, 4]\n')
    assert cli_main(["sweep", path, "--grid", str(grid), "-q"]) == 0  # default seeds 42, 48, 112
    out = capsys.readouterr().out
    assert "Seed stability per setting" in out and "mean ARI" in out
    assert "pca:components=4" in out.split("Seed stability per setting")[1]
    assert cli_main(["sweep", path, "--grid", str(grid), "--json", "-q"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (
        data["reused"] == 6
        and len(data["stability"]) == 2
        and all(len(s["seeds"]) == 3 for s in data["stability"])
    )

    assert cli_main(["runs", path]) == 0
    out = capsys.readouterr().out
    assert "Seed stability per setting" in out
    table = out.split("Seed stability per setting")[1]
    assert "pca:components=3" in table and "pca:components=4" in table
    assert cli_main(["runs", path, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert all(r["seed_stability"]["seeds"] == [42, 48, 112] for r in rows)
