"""One run key, one result (issue #14): on real texts, `sweep` and `cluster` make bit-identical labels for
the same setting in separate studies, and seed instability is reported per setting.

Texts: the 998 MultiClimate frames' video titles and transcript sentences (../shared/datasets), embedded
with MiniLM once per module; each test copies that study. Skips cleanly where ../shared is absent.
"""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
from pathlib import Path

import pytest

import connote
from connote import steps
from connote.study import Study

ROOT = Path(__file__).resolve().parents[1]


def shared_dataset(name: str) -> Path | None:
    """../shared/datasets/NAME beside the clone (CI), or beside the folder holding it (a worktree), or
    under $CONNOTE_SHARED."""
    candidates = [Path(os.environ["CONNOTE_SHARED"])] if os.environ.get("CONNOTE_SHARED") else []
    candidates += [ROOT.parent / "shared", ROOT.parent.parent / "shared"]
    for base in candidates:
        if (base / "datasets" / name).is_dir():
            return base / "datasets" / name
    return None


FRAMES = shared_dataset("multiclimate_frames")
pytestmark = pytest.mark.skipif(FRAMES is None, reason="../shared/datasets/multiclimate_frames is absent")


def frame_texts() -> dict[str, str]:
    """file name -> 'video title. transcript sentence' for every frame."""
    with open(FRAMES / "labels.csv", newline="", encoding="utf-8") as fh:
        return {Path(r["filename"]).name: f"{r['label']}. {r['transcript']}" for r in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> Path:
    """A study of the frames' texts (one description per frame, keyed by a hash of its file name),
    embedded with MiniLM."""
    path = tmp_path_factory.mktemp("multiclimate") / "study"
    study = Study.create(path)
    set_id = study.description_set("frames", "imported:labels.csv", None, None, {})
    for name, text in frame_texts().items():
        study.put_description(set_id, hashlib.sha256(name.encode()).hexdigest(), text)
    steps.embed(study, "minilm", progress=False)
    study.close()
    return path


def copy_of(embedded: Path, tmp_path: Path, name: str) -> Study:
    shutil.copytree(embedded, tmp_path / name)
    return Study.open(tmp_path / name)


def test_sweep_and_cluster_give_identical_labels_on_real_texts(embedded, tmp_path):
    """The issue's case: MiniLM, UMAP 5 x 15 (cosine), seed 42, HDBSCAN min cluster size 15. Before, the
    sweep (shared kNN graph) made 20 clusters / 221 outliers and `cluster` 15 / 288, ARI 0.63, under one
    key. The sweep here runs two UMAP settings in worker processes from one exact 30-NN graph, sliced to
    15 for the issue's setting, which is compared with `cluster` in a fresh study."""
    swept = copy_of(embedded, tmp_path, "swept")
    grid = {"name": "issue14", "min_cluster_size": [15], "umap": {"components": [5], "neighbors": [15, 30]}}
    res = connote.sweep(swept, grid, seeds=(42,), workers=2, progress=False)
    assert (res.computed, res.knn_graphs) == (2, 1)
    for row in [r for r in res.rows if r.reduce.endswith("neighbors=15")]:
        alone = copy_of(embedded, tmp_path, f"alone-{row.reduce.rsplit('=', 1)[1]}")
        made = steps.cluster(alone, "text", reduce=row.reduce, min_cluster_size=15, seed=42)
        assert not made.reused
        a, b = swept.assignments(row.run_id), alone.assignments(made.run_id)
        assert len(a) == 998 and a == b, f"{row.reduce}: labels differ"
        assert (made.n_clusters, made.n_outliers) == (row.n_clusters, row.n_outliers)
        # ... under the same key, so either study's run is what the other would return.
        assert swept.get_run(row.run_id)["key"] == alone.get_run(made.run_id)["key"]
        assert made.n_clusters >= 2


def test_seeds_report_their_agreement_per_setting(embedded, tmp_path):
    """`cluster` with several seeds reports per setting the ARI between the seeds and the range of
    cluster counts, and whether the setting is unstable; `connote.runs` carries the same per run."""
    study = copy_of(embedded, tmp_path, "seeds")
    res = steps.cluster_seeds(study, reduce="pca:components=10", min_cluster_size=15, seeds=(42, 48, 112))
    st = res.stability
    assert [r.seed for r in res.runs] == [42, 48, 112] and len(st.pairs) == 3
    assert st.mean_ari is not None and -1 <= st.min_ari <= st.mean_ari <= 1
    assert st.clusters_min <= st.clusters_max and st.unstable == (st.mean_ari < 0.5)
    rows = {r["id"]: r for r in connote.runs(study)}
    for run in res.runs:
        seeds = rows[run.run_id]["seed_stability"]
        assert seeds["seeds"] == [42, 48, 112] and seeds["mean_ari"] == pytest.approx(st.mean_ari)
