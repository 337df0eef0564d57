"""S3 + S4 as one code path: the reduction and the clustering of a feature matrix, and the record of how
they were computed. ``connote cluster``, ``connote run``, ``connote sweep`` and the Python API all go
through :func:`fit`, so one run key gives bit-identical labels whichever command makes the run.

What makes that hold:

* UMAP always runs on connote's neighbour graph (:mod:`connote.knn`: exact, in a total order, so the
  sweep's one graph for its largest neighbour count, sliced, is exactly the graph of each smaller count);
* reductions run on one thread (:func:`connote.knn.one_thread`), so floating-point sums do not depend on
  how many threads a process has (a sweep's worker processes have one, ``connote cluster`` has all);
* HDBSCAN's labels at several min cluster sizes from one neighbour search are exactly each size's own
  (:func:`connote.clustering.fit_clusterers`);
* everything that could change a result and is not a parameter (the neighbour search, the spanning-tree
  algorithm, the versions of numpy, umap-learn, numba, hdbscan, scikit-learn) is in :func:`method`, which
  is part of the run's key: a run is never reused for a computation that would differ.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from connote.params import qualified_name

#: Raised whenever connote changes how a run is computed from the same parameters (part of every key).
METHOD_VERSION = 2


def stage_method(stage, n: int) -> dict:
    """How ``stage`` computes on ``n`` items beyond its parameters: its own ``method(n)`` (connote's
    stages), else the version of the package a custom stage comes from."""
    if hasattr(stage, "method") and callable(stage.method):
        return stage.method(n)
    from importlib import metadata

    try:
        version = metadata.version(type(stage).__module__.split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        version = None
    return {"class": qualified_name(stage), "version": version}


def method(reducer, clusterer, n: int) -> dict:
    """How a run of ``n`` items by ``reducer`` and ``clusterer`` is computed, beyond their parameters.
    Asked before any work, it also checks connote's stages' values, so that a bad one (a min cluster size
    of 1) is refused before a reduction is computed, not after."""
    from connote.clustering import HDBSCANClusterer
    from connote.provenance import environment

    if callable(getattr(reducer, "check", None)):
        reducer.check()
    if isinstance(clusterer, HDBSCANClusterer):
        clusterer.resolved(n).check(n)

    return {
        "version": METHOD_VERSION,
        "numpy": environment()["packages"].get("numpy"),
        "reduce": stage_method(reducer, n),
        "cluster": stage_method(clusterer, n),
    }


def reduce(X: np.ndarray, reducer, *, knn=None) -> tuple[np.ndarray, list[str]]:
    """The reduction of ``X`` (float32) and the reducer's notes. ``knn``: a neighbour graph from
    :func:`connote.knn.knn_graph` with at least the reducer's neighbour count (UMAP only)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if knn is not None and getattr(reducer, "kind", None) == "umap":
            Y = reducer.fit_transform(X, knn=knn)
        else:
            Y = reducer.fit_transform(X)
    return np.asarray(Y, dtype=np.float32), list(getattr(reducer, "notes_", []))


@dataclass
class Fit:
    Y: np.ndarray
    results: list[tuple[np.ndarray, np.ndarray | None]]  # (labels, probabilities) per clusterer
    notes: list[str] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)


def fit(X: np.ndarray, reducer, clusterers, *, knn=None, Y: np.ndarray | None = None) -> Fit:
    """Reduce ``X`` (unless its reduction ``Y`` is given, e.g. from the study's cache) and cluster the
    reduction with each of ``clusterers``."""
    from connote.clustering import fit_clusterers

    t0 = time.perf_counter()
    notes: list[str] = []
    if Y is None:
        Y, notes = reduce(X, reducer, knn=knn)
    t1 = time.perf_counter()
    results = fit_clusterers(np.asarray(Y, dtype=np.float32), list(clusterers))
    return Fit(Y, results, notes, {"reduce": t1 - t0, "cluster": time.perf_counter() - t1})
