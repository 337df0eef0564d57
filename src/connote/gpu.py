"""GPU reducers and clusterers: UMAP and HDBSCAN from cuML (RAPIDS) when it is installed and a CUDA GPU is
there; connote's CPU code otherwise. ``CONNOTE_GPU=0`` keeps everything on the CPU.

When cuML runs a step, the run records it (``backend: cuml`` and cuML's version in the reducer's and the
clusterer's method, which are part of the run's key): a GPU result is never mistaken for, or reused as, a
CPU one. The specs are the same (``umap:components=5,neighbors=15``, the min cluster sizes).
"""

from __future__ import annotations

import functools
import os

import numpy as np


@functools.lru_cache(maxsize=1)
def _probe() -> str | None:
    """cuML's version when cuML imports and a CUDA device is visible, else None."""
    try:
        import cuml
    except Exception:  # noqa: BLE001 - not installed, or installed without a working CUDA
        return None
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
    except Exception:  # noqa: BLE001 - no device
        return None
    return str(getattr(cuml, "__version__", "unknown"))


def cuml_version() -> str | None:
    """cuML's version when it will be used, else None (no cuML, no GPU, or CONNOTE_GPU=0)."""
    if os.environ.get("CONNOTE_GPU", "1").strip().lower() in ("0", "no", "false", "off"):
        return None
    return _probe()


def method() -> dict:
    """What goes into a run's key and record when cuML computes a step (nothing on the CPU)."""
    version = cuml_version()
    return {"backend": "cuml", "cuml": version} if version else {}


def umap(X: np.ndarray, knn, *, n_components: int, n_neighbors: int, metric: str, min_dist: float, seed):
    """cuML's UMAP on connote's neighbour graph (``knn`` = (indices, distances), nearest first)."""
    import scipy.sparse
    from cuml.manifold import UMAP

    idx, dist = np.asarray(knn[0][:, :n_neighbors]), np.asarray(knn[1][:, :n_neighbors], dtype=np.float32)
    rows = np.repeat(np.arange(len(X)), n_neighbors)
    graph = scipy.sparse.csr_matrix((dist.ravel(), (rows, idx.ravel())), shape=(len(X), len(X)))
    model = UMAP(
        n_components=n_components,
        n_neighbors=n_neighbors,
        metric=metric,
        min_dist=min_dist,
        random_state=seed,
    )
    return np.asarray(model.fit_transform(np.asarray(X, dtype=np.float32), knn_graph=graph), dtype=np.float32)


def hdbscan(X: np.ndarray, *, min_cluster_size: int, min_samples: int | None, selection: str, metric: str):
    """cuML's HDBSCAN: (labels, probabilities)."""
    from cuml.cluster import HDBSCAN

    model = HDBSCAN(
        min_cluster_size=min_cluster_size,
        min_samples=min_samples,
        cluster_selection_method=selection,
        metric=metric,
        prediction_data=False,
    )
    labels = np.asarray(model.fit_predict(np.asarray(X, dtype=np.float32)))
    return labels, np.asarray(model.probabilities_)
