"""The k-nearest-neighbour graph UMAP is built on: one function for every command.

``connote cluster``, ``connote run``, the Python API and the sweep all hand UMAP the graph computed here
(never umap-learn's own search), so one run key gives the same graph, and so the same labels, whichever
command computes it. The graph is exact up to :data:`EXACT_MAX` items (cosine and euclidean; any metric
below :data:`SMALL`): blocked matrix products in float32, then the ``k`` smallest distances of each row in
a total order, (distance, index): self first, equal distances (duplicates) by the lower index. Because
the order is total, the first ``k`` columns of an exact graph for a larger ``k`` *are* the exact graph for
``k``: the sweep computes one graph for its largest neighbour count and slices it
(:func:`can_slice`). Above :data:`EXACT_MAX` items it is NN-descent (pynndescent, umap-learn's own),
which depends on the seed and on ``k``, so it is computed per setting and never sliced.

The computation runs with one BLAS thread (:func:`one_thread`), so the floating-point sums, and with them
the graph, do not depend on how many threads a process happens to have. Which method made a graph is part
of a run's key (:func:`method`): a run is never reused for a computation that would differ.
"""

from __future__ import annotations

import contextlib
import importlib
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from connote.defaults import DEFAULT_SEED

#: Up to this many items the graph is exact (cosine, euclidean); NN-descent above.
EXACT_MAX = 25_000
#: Below this many items the graph is exact for any metric scikit-learn's pairwise_distances knows.
SMALL = 4_096
#: Changes whenever the exact graph's arithmetic or order changes (it goes into run keys).
EXACT_VERSION = 1
_BLOCK = 1024


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """One BLAS/OpenMP thread (and one numba thread) inside the block: results that do not depend on the
    machine's thread count."""
    from threadpoolctl import threadpool_limits

    numba: Any = None
    if "numba" in sys.modules:  # loaded, or being loaded by another thread (the sweep's preload):
        numba = importlib.import_module("numba")  # the import waits until it is complete
    before = numba.get_num_threads() if numba is not None else None
    with threadpool_limits(1):
        if numba is not None:
            numba.set_num_threads(1)
        try:
            yield
        finally:
            if numba is not None:
                numba.set_num_threads(before)


def kind(n: int, metric: str) -> str:
    """'exact' or 'nndescent': how the graph of ``n`` items is computed for ``metric``."""
    if n < SMALL or (metric in ("cosine", "euclidean") and n <= EXACT_MAX):
        return "exact"
    return "nndescent"


def can_slice(n: int, metric: str) -> bool:
    """Whether the first k columns of this graph for a larger k equal the graph computed for k."""
    return kind(n, metric) == "exact"


def method(n: int, metric: str) -> dict:
    """What a graph of ``n`` items depends on besides its data: recorded in the key of every run on it."""
    from connote.provenance import environment

    packages = environment()["packages"]
    if kind(n, metric) == "exact":
        return {"knn": "exact", "knn_version": EXACT_VERSION, "numpy": packages.get("numpy")}
    return {"knn": "nndescent", "pynndescent": packages.get("pynndescent"), "numpy": packages.get("numpy")}


def knn_graph(
    X: np.ndarray, k: int, metric: str = "cosine", seed: int | None = DEFAULT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """(indices int32, distances float32), each n x k: the ``k`` nearest neighbours of every row, nearest
    first, the row itself first. ``seed`` matters only for NN-descent."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    n = len(X)
    k = min(int(k), n)
    with one_thread():
        if kind(n, metric) == "nndescent":
            return _nndescent(X, k, metric, seed)
        if metric in ("cosine", "euclidean"):
            return _exact(X, k, metric)
        from sklearn.metrics import pairwise_distances

        D = pairwise_distances(X, metric=metric).astype(np.float32)
        return _select(D, 0, k)


def _exact(X: np.ndarray, k: int, metric: str, block: int = _BLOCK) -> tuple[np.ndarray, np.ndarray]:
    n = len(X)
    if metric == "cosine":
        norms = np.linalg.norm(X, axis=1, keepdims=True)
        Z = X / np.where(norms == 0, 1, norms)
    else:
        Z = X
        sq = np.einsum("ij,ij->i", X, X)
    idx = np.empty((n, k), dtype=np.int32)
    dist = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, block):
        stop = min(n, start + block)
        G = Z[start:stop] @ Z.T
        if metric == "cosine":
            D = 1.0 - G
        else:
            D = np.sqrt(np.maximum(sq[start:stop, None] + sq[None, :] - 2.0 * G, 0.0))
        idx[start:stop], dist[start:stop] = _select(D, start, k)
    return idx, dist


def _select(D: np.ndarray, start: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k smallest entries of each row of the block ``D`` (rows start..start+len(D) of the data) in the
    total order (distance, column), the row's own column first."""
    D = np.array(D, dtype=np.float32)
    m, n = D.shape
    rows = np.arange(m)
    D[rows, rows + start] = -np.inf  # self first, whatever duplicates there are
    if k < n:
        kth = np.partition(D, k - 1, axis=1)[:, k - 1 : k]  # the k-th smallest distance of each row
        cand_rows, cand_cols = np.nonzero(kth >= D)  # every entry that can be among the k (ties included)
    else:
        cand_rows, cand_cols = np.repeat(rows, n), np.tile(np.arange(n), m)
    cand_d = D[cand_rows, cand_cols]
    order = np.lexsort((cand_cols, cand_d, cand_rows))  # by row, then distance, then column
    cand_rows, cand_cols, cand_d = cand_rows[order], cand_cols[order], cand_d[order]
    first = np.searchsorted(cand_rows, rows)
    take = (first[:, None] + np.arange(k)[None, :]).ravel()
    idx = cand_cols[take].reshape(m, k).astype(np.int32)
    dist = cand_d[take].reshape(m, k)
    dist[:, 0] = 0.0
    return idx, np.maximum(dist, 0.0).astype(np.float32)


def _nndescent(X: np.ndarray, k: int, metric: str, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
    from connote.jit import import_umap

    import_umap()
    from umap.umap_ import nearest_neighbors

    rs = np.random.RandomState(seed) if seed is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idx, dist, _ = nearest_neighbors(
            X, k, metric, {}, False, rs, low_memory=True, use_pynndescent=True, n_jobs=1, verbose=False
        )
    return np.asarray(idx, dtype=np.int32), np.asarray(dist, dtype=np.float32)
