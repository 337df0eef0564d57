"""cuML's UMAP and HDBSCAN are used when cuML is installed and a GPU is there, and the run records it.

No GPU (nor cuML) here: the code path is checked with stand-in ``cuml`` and ``cupy`` modules that count
their calls and return CPU results; without them connote stays on the CPU and its run keys are unchanged."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from connote import gpu
from connote.clustering import HDBSCANClusterer
from connote.reduce import UMAPReducer


@pytest.fixture
def fake_cuml(monkeypatch):
    calls: dict[str, list] = {"umap": [], "hdbscan": []}

    class UMAP:
        def __init__(self, **kw):
            calls["umap"].append(kw)
            self.kw = kw

        def fit_transform(self, X, knn_graph=None):
            calls["umap"][-1]["graph_nnz"] = knn_graph.nnz
            return X[:, : self.kw["n_components"]] * 2

    class HDBSCAN:
        def __init__(self, **kw):
            calls["hdbscan"].append(kw)

        def fit_predict(self, X):
            labels = (X[:, 0] > np.median(X[:, 0])).astype(int)
            self.probabilities_ = np.ones(len(X))
            return labels

    cuml = types.ModuleType("cuml")
    cuml.__version__ = "99.0"
    manifold, cluster = types.ModuleType("cuml.manifold"), types.ModuleType("cuml.cluster")
    manifold.UMAP, cluster.HDBSCAN = UMAP, HDBSCAN
    cupy = types.ModuleType("cupy")
    cupy.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1))
    for name, mod in {"cuml": cuml, "cuml.manifold": manifold, "cuml.cluster": cluster, "cupy": cupy}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    gpu._probe.cache_clear()
    yield calls
    gpu._probe.cache_clear()


def data():
    rng = np.random.default_rng(0)
    return np.vstack([rng.normal(0, 0.1, (30, 6)), rng.normal(3, 0.1, (30, 6))]).astype(np.float32)


def test_cuml_used_and_recorded_when_present(fake_cuml, monkeypatch):
    X = data()
    reducer = UMAPReducer(n_components=2, n_neighbors=5)
    Y = reducer.fit_transform(X)
    assert fake_cuml["umap"] and fake_cuml["umap"][0]["n_components"] == 2
    assert fake_cuml["umap"][0]["graph_nnz"] == 60 * 5  # connote's own neighbour graph went in
    assert np.allclose(Y, X[:, :2] * 2)
    assert reducer.method(60)["backend"] == "cuml" and reducer.method(60)["cuml"] == "99.0"
    c = HDBSCANClusterer(min_cluster_size=5)
    labels = c.fit_predict(X)
    assert fake_cuml["hdbscan"][0]["min_cluster_size"] == 5 and sorted(set(labels)) == [0, 1]
    assert c.method(60)["backend"] == "cuml"
    monkeypatch.setenv("CONNOTE_GPU", "0")  # switched off: the CPU, and the CPU's record
    assert "backend" not in UMAPReducer(n_components=2, n_neighbors=5).method(60)
    HDBSCANClusterer(min_cluster_size=5).fit_predict(X)
    assert len(fake_cuml["hdbscan"]) == 1


def test_no_cuml_means_cpu_and_unchanged_records():
    gpu._probe.cache_clear()
    if gpu.cuml_version():
        pytest.skip("cuML and a GPU are present here")
    assert gpu.method() == {}
    assert "backend" not in HDBSCANClusterer(min_cluster_size=5).method(60)
