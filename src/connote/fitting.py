"""S3 + S4 as one code path: a run planned (:class:`RunPlan`), computed (:func:`fit`) and stored
(:func:`store`). ``connote cluster`` (one seed or several, :mod:`connote.seeds`; ``--method evoc``,
:mod:`connote.evoc`), ``connote run``, ``connote sweep`` (local workers or Ray) and the Python API all
plan a run with :func:`plan_run` and store it with :func:`store`, so one run key gives bit-identical labels
whichever command makes the run.

What makes that hold:

* UMAP always runs on connote's neighbour graph (:mod:`connote.knn`: exact, in a total order, so the
  sweep's one graph for its largest neighbour count, sliced, is exactly the graph of each smaller count);
* reductions run on one thread (:func:`connote.knn.one_thread`), so floating-point sums do not depend on
  how many threads a process has (a sweep's worker processes have one, ``connote cluster`` has all);
* HDBSCAN's labels at several min cluster sizes from one neighbour search are exactly each size's own
  (:func:`connote.clustering.fit_clusterers`);
* everything that could change a result and is not a parameter (the neighbour search, the spanning-tree
  algorithm, the versions of numpy, umap-learn, numba, hdbscan, scikit-learn) is in the plan's
  ``computation`` (:func:`computation`; stored as the run's ``method``), which is part of the run's key: a
  run is never reused for a computation that would differ.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from connote.params import Params, qualified_name, recorded_params

if TYPE_CHECKING:
    from connote.study.runs import Features

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


def computation(reducer, clusterer, n: int) -> dict:
    """How a run of ``n`` items by ``reducer`` and ``clusterer`` is computed, beyond their parameters
    (stored as the run's ``method``; part of its key). A clusterer that reduces on its own (EVoC: no
    ``reducer``) says it all itself."""
    if reducer is None:
        return stage_method(clusterer, n)
    from connote.provenance import environment

    return {
        "version": METHOD_VERSION,
        "numpy": environment()["packages"].get("numpy"),
        "reduce": stage_method(reducer, n),
        "cluster": stage_method(clusterer, n),
    }


@dataclass(frozen=True, eq=False)
class RunPlan:
    """One run before it is computed: its inputs (``feats``), the reducer and clusterer with every default
    filled in and their values checked, what they are recorded as, the seed, how the run is computed and
    the key it is stored (and found again) under. Built by :func:`plan_run` only; stored by :func:`store`.

    ``reducer`` is None for a clusterer that reduces on its own (EVoC); ``key`` is then the key of the
    fit, which :mod:`connote.evoc` turns into one run per layer."""

    feats: Features
    reducer: Any
    clusterer: Any
    seed: int | None
    reduce_spec: str
    reducer_params: dict
    cluster_params: dict
    computation: dict
    key: str
    min_cluster_size: int
    min_samples: int | None
    label: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return len(self.feats.shas)

    @property
    def reduction_how(self) -> list:
        """What the cached reduction depends on besides the features and the reducer's parameters."""
        return [self.computation["version"], self.computation["reduce"]]


def plan_run(
    feats: Features,
    reduce,
    clusterer,
    seed: int | None,
    *,
    label: str | None = None,
    notes: tuple[str, ...] | list[str] = (),
) -> RunPlan:
    """The plan of one run: ``reduce`` a spec string (read with ``seed``) or a reducer object (None: the
    clusterer reduces on its own, as EVoC does), ``clusterer`` resolved for the number of items (connote's
    HDBSCAN fills its data-dependent defaults here, and only here: :meth:`HDBSCANClusterer.resolved`, with
    a note for each) and checked, so that a bad value (a min cluster size of 1) is refused before anything
    is computed. Every stage is checked, and asked how it computes, once."""
    from connote import registry
    from connote.study.runs import digest, run_key

    n = len(feats.shas)
    if isinstance(reduce, str):
        reducer = registry.reducer(reduce, seed=seed)  # checked as the spec is read
    else:
        reducer = reduce
        if callable(getattr(reducer, "check", None)):
            reducer.check()
    resolved, defaults = _resolved(clusterer, n)
    how = computation(reducer, resolved, n)
    cluster_params = recorded_params(resolved)
    if reducer is None:  # one fit, many layers: keyed by what the fit depends on (evoc.layer_plan: a run's)
        reduce_spec, reducer_params = resolved.reduce_spec, {"kind": resolved.reduce_spec}
        key = digest([feats.key, cluster_params, how])
    else:
        reduce_spec, reducer_params = (
            getattr(reducer, "spec", type(reducer).__name__),
            recorded_params(reducer),
        )
        key = run_key(feats, reducer_params, cluster_params, seed, how)
    mcs = getattr(resolved, "min_cluster_size", None)
    if mcs is None:  # a clusterer without one is recorded with connote's default (an EVoC layer: its own)
        from connote.clustering import HDBSCANClusterer

        mcs = HDBSCANClusterer().resolved(n).min_cluster_size
    return RunPlan(
        feats, reducer, resolved, seed, reduce_spec, reducer_params, cluster_params, how, key,
        int(mcs or 0), getattr(resolved, "min_samples", None), label, (*notes, *defaults),
    )  # fmt: skip


def _resolved(clusterer, n: int) -> tuple[Any, list[str]]:
    """The clusterer with its data-dependent defaults for ``n`` items filled in (``resolved(n)``: connote's
    HDBSCAN), a note for each, and its values checked (connote's clusterers: ``check(n)``; a user's own
    checks what it likes, when it likes)."""
    if not callable(getattr(clusterer, "resolved", None)):
        resolved, notes = clusterer, []
    else:
        resolved = clusterer.resolved(n)
        notes = _default_notes(clusterer, resolved, n)
    check = getattr(resolved, "check", None)
    if isinstance(resolved, Params) and callable(check):
        check(n)
    return resolved, notes


def _default_notes(given, resolved, n: int) -> list[str]:
    """The data-dependent defaults a clusterer was resolved with, one note each."""
    notes = []
    if getattr(given, "min_cluster_size", 0) is None:  # only what was None before it was resolved
        notes.append(
            f"min cluster size {resolved.min_cluster_size} (default for {n} items; set with --min-cluster-size)"
        )
    if getattr(given, "cluster_selection_method", "") is None:
        notes.append(
            f"cluster selection '{resolved.cluster_selection_method}' (the default; set with --selection eom|leaf)"
        )
    return notes


def store(study, plan: RunPlan, labels, probabilities, *, notes=()) -> tuple[int, bool]:
    """Store a fitted plan as a run: its labels and the full record (parameters, seed, how it was computed,
    package versions, the images left out, the plan's notes and the fit's ``notes``). Returns (run id,
    True if stored now; False when a run with the plan's key was stored meanwhile)."""
    from connote.provenance import environment
    from connote.study.flags import run_left_out

    feats = plan.feats
    labels = np.asarray(labels, dtype=int)
    record = {
        "key": plan.key,
        "features": feats.kind,
        "description_set": feats.description_set,
        "embedder": feats.embedder,
        "reduce": plan.reduce_spec,
        "min_cluster_size": int(plan.min_cluster_size),
        "min_samples": plan.min_samples,
        "seed": plan.seed,
        "n_items": len(feats.shas),
        "n_clusters": len(set(labels.tolist()) - {-1}),
        "n_outliers": int(np.sum(labels == -1)),
        "label": plan.label,
        "params": json.dumps(
            {
                "reducer": plan.reducer_params,
                "clusterer": plan.cluster_params,
                "seed": plan.seed,
                "features_key": feats.key,
                "method": plan.computation,  # the run's "method": how it was computed
                "left_out": run_left_out(study, feats.kind, feats.description_set, len(feats.shas)),
                "notes": [*plan.notes, *notes],
                "environment": environment(),
            },
            sort_keys=True,
            default=str,
        ),
    }
    probs = {s: float(p) for s, p in zip(feats.shas, probabilities)} if probabilities is not None else None
    return study.add_run_if_new(record, dict(zip(feats.shas, labels.tolist())), probs)


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
