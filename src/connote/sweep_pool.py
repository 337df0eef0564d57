"""The sweep's worker processes: how many, how they get the data, and the one job each runs.

A job is one reduction (unless cached) and its clustering at every min cluster size, computed by
:func:`connote.fitting.fit`, the same code ``connote cluster`` runs. The feature matrix and the shared
neighbour graphs are module globals: inherited by forked workers (with numba's compiled code: no minute
of compilation each), or set by the initializer in spawned ones.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, cast

import numpy as np

if TYPE_CHECKING:
    from connote.fitting import Fit

_X: np.ndarray | None = None
_KNN: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # metric -> exact graph, sliceable


def share(X, knn: dict | None) -> None:
    """Make ``X`` and the shared graphs (metric -> (indices, distances)) what the jobs read."""
    global _X, _KNN
    _X, _KNN = X, dict(knn or {})


def init_worker(X, knn) -> None:
    share(X, knn)
    one_thread_per_worker()


def one_thread_per_worker() -> None:
    """One BLAS/OpenMP/numba thread per worker: the workers are the parallelism (two workers with two
    threads each on two cores run a UMAP about 40% slower). Results do not depend on it: the fitting
    runs on one thread in every process (:func:`connote.knn.one_thread`)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    numba = sys.modules.get("numba")
    if numba is not None:
        numba.set_num_threads(1)


def work(reducer, clusterers: list, Y: np.ndarray | None) -> Fit:
    """One job: the reduction, (labels, probabilities) per clusterer, the reducer's notes, the seconds."""
    from connote.fitting import fit

    knn = _KNN.get(getattr(reducer, "metric", "")) if getattr(reducer, "kind", None) == "umap" else None
    return fit(cast(np.ndarray, _X), reducer, clusterers, knn=knn, Y=Y)


def available_memory() -> int:
    """Bytes of memory available now (Linux /proc/meminfo, else psutil, else 2 GiB)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:
        return 2 << 30


def worker_count(n_tasks: int, n: int, dim: int, requested: int | None = None) -> int:
    """Processes for ``n_tasks`` independent reductions of an ``n x dim`` matrix: the cores (or those this
    process may use), bounded by the available memory with a generous per-worker estimate."""
    if requested:
        return max(1, min(requested, n_tasks))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    per_worker = 600 * 2**20 + n * (dim * 4 * 3 + 30 * 8 * 8 + 4096)  # interpreter + numba + data + graphs
    by_memory = max(1, int(available_memory() * 0.6) // per_worker)
    return max(1, min(cores, by_memory, n_tasks))


def estimated_cost(reducer, n_settings: int, cached: bool) -> float:
    """Rough seconds of one job at the paper's size (measured on 2 cores): UMAP grows with its neighbours,
    the core distances of HDBSCAN with the number of dimensions; a cached reduction costs only its
    clusterings."""
    if cached:
        return 0.5 * n_settings
    if getattr(reducer, "kind", None) == "umap":
        return 6.5 + 0.3 * reducer.n_neighbors + 0.2 * reducer.n_components
    return 1.5 + 0.15 * (getattr(reducer, "n_components", None) or 12)


def preload(umap: bool) -> None:
    """Load the compiled code (connote.mst, umap-learn, pynndescent) into this process."""
    from connote.mst import mutual_reachability_mst

    mutual_reachability_mst(np.zeros((2, 1)), np.zeros(2))
    if umap:
        from connote.jit import import_umap

        import_umap()


def can_fork() -> bool:
    """Fork the workers (they inherit numba's compiled UMAP/pynndescent code: no minute of JIT each) only
    where that is safe: Linux, numba's fork-safe 'workqueue' threading layer, and no torch loaded."""
    if not sys.platform.startswith("linux") or "torch" in sys.modules:
        return False
    numba = sys.modules.get("numba")
    return numba is None or numba.config.THREADING_LAYER == "workqueue"


def prefer_fork_safe_numba() -> None:
    """Before numba is imported: choose its fork-safe threading layer so sweep workers can be forked."""
    if "numba" not in sys.modules:
        os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")


def make_pool(workers: int, X: np.ndarray, knn: dict, fork: bool):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    if fork:  # the workers inherit X, the kNN graphs and the compiled code
        share(X, knn)
        return ProcessPoolExecutor(
            max_workers=workers, mp_context=mp.get_context("fork"), initializer=one_thread_per_worker
        )
    # otherwise forkserver/spawn: no fork of a process that may hold unsafe threads (torch, OpenMP).
    start_method = "forkserver" if sys.platform.startswith("linux") else "spawn"
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=mp.get_context(start_method),
        initializer=init_worker,
        initargs=(X, knn),
    )
