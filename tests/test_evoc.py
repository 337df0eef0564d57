"""EVoC as an S3+S4 choice: every layer a run that knows its layer and its neighbours; a coarse cluster
lists its fine clusters; the same fit is found again, not recomputed."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_cli

from connote import evoc
from connote.errors import UserError
from connote.study import Study, text_key

pytest.importorskip("evoc")


def test_children_puts_each_fine_cluster_under_the_coarse_cluster_holding_most_of_it():
    fine = np.array([0, 0, 0, 1, 1, 2, 2, 2, -1, 3])
    coarse = np.array([5, 5, 4, 5, 5, 4, 4, -1, 4, -1])
    # fine 0: two in 5, one in 4 -> 5; fine 1 -> 5; fine 2 -> 4 (its noise member does not count);
    # fine 3: only noise above it -> no parent; the fine noise point is nobody's child
    assert evoc.children(fine, coarse) == {5: [0, 1], 4: [2]}


def _vector_study(path, n=400, dim=24, seed=0, images=False) -> tuple[Study, np.ndarray]:
    """Three groups of four close sub-groups each: a hierarchy EVoC finds (16 and 3 clusters with 300
    items). With ``images``: one real tiny PNG per item (a report needs them)."""
    rng = np.random.default_rng(seed)
    top = rng.normal(0, 8, (3, dim))
    centres = np.repeat(top, 4, axis=0) + rng.normal(0, 3, (12, dim))
    truth = rng.integers(0, 12, n)
    X = centres[truth] + rng.normal(0, 1, (n, dim))
    if images:
        from PIL import Image

        from connote import steps

        folder = path.parent / "images"
        folder.mkdir()
        for i in range(n):
            Image.new("RGB", (8, 8), (i % 256, i // 256, 7)).save(folder / f"{i:04d}.png")
        study = steps.init(path, folder, progress=False)
        shas = [r["sha256"] for r in sorted(study.unique_images(), key=lambda r: r["path"])]
    else:
        study, shas = Study.create(path), [f"{i:064x}" for i in range(n)]
    set_id = study.description_set("synthetic", "synthetic", None, None, {})
    for i, v in enumerate(X):
        study.put_description(set_id, shas[i], f"item {i}")
        study.save_vector("text:minilm", text_key(f"item {i}"), v.astype(np.float32))
    study.register_embedder("text:minilm", "text", "minilm", dim, {})
    return study, truth


def test_every_layer_is_a_run_that_knows_its_neighbours(tmp_path):
    study, _ = _vector_study(tmp_path / "s")
    res = evoc.cluster(study, seed=42)
    assert res.layers and len(res.run_ids) == len(res.layers) == len(set(res.run_ids))
    runs = [study.get_run(i) for i in res.run_ids]
    assert all(r["reduce"] == "evoc" and r["n_items"] == 400 and r["seed"] == 42 for r in runs)
    counts = [r["n_clusters"] for r in runs]
    assert counts == sorted(counts, reverse=True)  # finest first
    for i, run_id in enumerate(res.run_ids):
        where = evoc.layer_runs(study, run_id)
        assert where["layer"] == i and where["n_layers"] == len(res.run_ids)
        assert where["finer"] == (res.run_ids[i - 1] if i else None)
        assert where["coarser"] == (res.run_ids[i + 1] if i + 1 < len(res.run_ids) else None)
        if i:  # every non-noise cluster of the finer layer sits under exactly one of this layer's
            listed = sorted(c for kids in where["children"].values() for c in kids)
            finer = study.get_run(res.run_ids[i - 1])
            assert len(listed) <= finer["n_clusters"] and len(listed) == len(set(listed))
            assert set(where["children"]) <= set(range(runs[i]["n_clusters"]))
    # the same fit again: found, not recomputed
    again = evoc.cluster(study, seed=42)
    assert again.run_ids == res.run_ids and all(layer["reused"] for layer in again.layers)
    assert evoc.layer_runs(study, res.run_ids[0])["layer"] == 0


def test_bad_settings_are_one_line_errors(tmp_path):
    study, _ = _vector_study(tmp_path / "s", n=40)
    with pytest.raises(UserError, match="base_min_cluster_size: expected a whole number of at least 2"):
        evoc.cluster(study, base_min_cluster_size=1)
    with pytest.raises(UserError, match="noise_level: expected a number from 0 to 1"):
        evoc.cluster(study, noise_level=float("nan"))
    with pytest.raises(UserError, match="n_epochs must be a whole number"):
        evoc.cluster(study, n_epochs=2.5)
    with pytest.raises(UserError, match="more items than neighbours"):
        evoc.cluster(study, n_neighbors=50)


def test_cli_cluster_method_evoc(tmp_path):
    study, _ = _vector_study(tmp_path / "s", n=200)
    proc = run_cli("cluster", study.path, "--method", "evoc", "--json", check=True)
    out = json.loads(proc.stdout)
    assert out["run_ids"] and [layer["layer"] for layer in out["layers"]] == list(range(len(out["run_ids"])))
    text = run_cli("cluster", study.path, "--method", "evoc", check=True)
    assert text.stdout.split() == [str(i) for i in out["run_ids"]] and "Reused run" in text.stderr


def test_a_sweep_grid_with_evoc_stores_every_layer_as_cluster_method_evoc_does(tmp_path, capsys):
    """An [evoc] grid entry: one EVoC fit per setting and seed, every layer a run planned and stored as
    `cluster --method evoc` stores it (the same keys: each finds the other's runs), beside the grid's
    HDBSCAN settings; a second sweep reuses them all."""
    from connote import steps
    from connote.cli import main as cli_main

    study, _ = _vector_study(tmp_path / "s", n=150)
    grid = tmp_path / "g.toml"
    grid.write_text(
        'name = "g"\nmin_cluster_size = [8]\n[pca]\ncomponents = [3]\n'
        "[evoc]\nbase_min_cluster_size = [5, 8]\n"
    )
    res = steps.sweep(study, grid, seeds=[42, 48], workers=1, progress=False)
    pca = [r for r in res.rows if r.reduce.startswith("pca")]
    layers = [r for r in res.rows if r.reduce.startswith("evoc")]
    assert len(pca) == 2 and len(layers) >= 4 and res.computed == len(res.rows) and res.reused == 0
    assert {r.reduce.split(" layer ")[0] for r in layers} == {
        "evoc:base_min_cluster_size=5",
        "evoc:base_min_cluster_size=8",
    }
    assert {r.min_cluster_size for r in layers} == {5, 8}  # the setting's, so its seeds are compared
    runs = {r.run_id: study.get_run(r.run_id) for r in layers}
    assert all(run["reduce"] == "evoc" and run["label"].startswith("sweep:g layer ") for run in runs.values())
    # the stability table compares each EVoC setting's layer over the two seeds
    assert {s.reduce for s in res.stability} >= {r.reduce for r in layers if r.seed == 42}
    # `cluster --method evoc` with the same settings finds the sweep's fit: the same runs, none fitted again
    same = evoc.cluster(study, seed=48, base_min_cluster_size=8)
    assert all(layer["reused"] for layer in same.layers)
    assert set(same.run_ids) == {r.run_id for r in layers if r.seed == 48 and "=8 " in r.reduce}
    assert evoc.layer_runs(study, same.run_ids[0])["layer"] == 0
    # a second sweep (the CLI, as JSON) reuses every run
    assert cli_main(["sweep", str(study.path), "--grid", str(grid), "--seeds", "42,48", "--json", "-q"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["computed"] == 0 and data["reused"] == len(res.rows)
    assert [r["run_id"] for r in data["runs"]] == [r.run_id for r in res.rows]


def test_a_coarse_clusters_page_lists_its_fine_clusters(tmp_path):
    from connote import steps

    study, _ = _vector_study(tmp_path / "s", n=300, images=True)
    res = evoc.cluster(study, seed=42)
    if len(res.run_ids) < 2:
        pytest.skip("EVoC found one layer only")
    coarse, fine = res.run_ids[1], res.run_ids[0]
    kids = evoc.layer_runs(study, coarse)["children"]
    steps.report(study, fine, progress=False)
    page = steps.report(study, coarse, progress=False).parent
    c, under = next(iter(kids.items()))
    html = (page / f"cluster-{c}.html").read_text()
    assert f"Finer clusters (EVoC layer 0, run {fine})" in html
    for k in under:
        assert f'href="../run-{fine}/cluster-{k}.html"' in html
        assert (page.parent / f"run-{fine}" / f"cluster-{k}.html").is_file()
    assert "Finer clusters" not in (page.parent / f"run-{fine}" / "cluster-0.html").read_text()
