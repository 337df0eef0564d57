"""The paper's experiment grid as ordinary runs: every reduction x min cluster size x seed, per feature set.

    >>> import connote
    >>> result = connote.sweep("study", grid="paper", features=("text", "image"), seeds=(42, 48, 112))
    >>> print(result.table())
    >>> print(result.stability_table())   # per setting: ARI between seeds, cluster-count range, unstable?

Three seeds unless told otherwise (:data:`connote.defaults.DEFAULT_SEEDS`): on real texts one seed can
give 2 clusters and the next 18, and the sweep says so per setting.

Each setting is stored exactly as ``connote cluster`` would store it (same run key and record), so
``connote runs``, ``connote export`` and the validation steps see sweep runs like any other, and settings
already computed (by an earlier sweep or by ``connote cluster``) are reused.

Where the time goes, and how it is not paid twice:

* every setting is computed by :func:`connote.fitting.fit`, the code ``connote cluster`` runs, so a
  setting's labels are bit for bit those ``connote cluster`` gives (tested on real texts);
* one exact k-nearest-neighbour graph per feature set and metric, computed once for the largest neighbour
  count and sliced for the smaller ones, is handed to every UMAP setting: slicing an exact graph in a
  total order gives exactly the smaller graph (:mod:`connote.knn`); above 25,000 items the graph is
  approximate (NN-descent), cannot be sliced, and each setting computes its own;
* each reduction is computed once and cached in STUDY/cache/reduce; all min cluster sizes reuse it, and
  one nearest-neighbour search gives HDBSCAN's core distances for all of them
  (:func:`connote.clustering.fit_clusterers`), whose spanning trees connote's Prim's builds
  (:mod:`connote.mst`);
* numba's compiled code is cached on disk across processes (:func:`connote.jit.numba_cache`);
* independent reductions (and their HDBSCAN runs) run in parallel worker processes, as many as the
  cores and the available memory allow.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Callable, Generator, Hashable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from connote.clustering import HDBSCANClusterer
from connote.defaults import DEFAULT_IMAGE_EMBEDDER, DEFAULT_SEED, DEFAULT_SEEDS, DEFAULT_TEXT_EMBEDDER
from connote.evaluate.stability import SeedStability, seed_stability, stability_table
from connote.fitting import Fit, RunPlan, plan_run
from connote.fitting import store as store_plan
from connote.sweep_grid import Grid, Plan, load_grid, plan

if TYPE_CHECKING:
    from connote.study import Study
    from connote.study.runs import Features


# ---------------------------------------------------------------------------------------------- results
@dataclass
class SweepRow:
    features: str
    embedder: str
    reduce: str
    min_cluster_size: int
    seed: int | None
    run_id: int
    n_items: int
    n_clusters: int
    n_outliers: int
    reused: bool

    @property
    def outlier_share(self) -> float:
        return self.n_outliers / self.n_items if self.n_items else 0.0


@dataclass
class SettingStability:
    """One setting of the sweep (features x reduction x min cluster size) over its seeds."""

    features: str
    reduce: str
    min_cluster_size: int
    run_ids: list[int]
    stability: SeedStability

    def to_dict(self) -> dict:
        return {
            "features": self.features,
            "reduce": self.reduce,
            "min_cluster_size": self.min_cluster_size,
            "run_ids": self.run_ids,
            **self.stability.to_dict(),
        }


@dataclass
class SweepResult:
    grid: str
    rows: list[SweepRow] = field(default_factory=list)
    stability: list[SettingStability] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    computed: int = 0
    reused: int = 0
    reductions: int = 0
    knn_graphs: int = 0
    workers: int = 1
    timings: dict = field(default_factory=dict)  # seconds per phase, summed over feature sets

    @property
    def unstable(self) -> list[SettingStability]:
        return [s for s in self.stability if s.stability.unstable]

    def table(self) -> str:
        head = (
            f"{'run':>5}  {'features':8}  {'reduce':34}  {'mcs':>4}  {'seed':>5}  {'clusters':>8}  "
            f"{'outliers':>8}  {'share':>6}  "
        )
        lines = [head.rstrip()]
        for r in self.rows:
            lines.append(
                f"{r.run_id:>5}  {r.features:8}  {r.reduce[:34]:34}  {r.min_cluster_size:>4}  "
                f"{str(r.seed):>5}  {r.n_clusters:>8}  {r.n_outliers:>8}  {r.outlier_share:>6.1%}  "
                f"{'(reused)' if r.reused else ''}".rstrip()
            )
        return "\n".join(lines)

    def stability_table(self) -> str:
        """Per setting: the seeds' agreement (mean and lowest pairwise ARI), the range of cluster counts,
        and 'UNSTABLE' where the mean ARI is below 0.5."""
        return stability_table(
            [(s.features, s.reduce, s.min_cluster_size, s.stability) for s in self.stability]
        )

    def to_dict(self) -> dict:
        return {
            "grid": self.grid,
            "runs": [{**r.__dict__, "outlier_share": r.outlier_share} for r in self.rows],
            "stability": [s.to_dict() for s in self.stability],
            "unstable_settings": len(self.unstable),
            "notes": self.notes,
            "computed": self.computed,
            "reused": self.reused,
            "reductions": self.reductions,
            "knn_graphs": self.knn_graphs,
            "workers": self.workers,
            "timings": self.timings,
        }


# ---------------------------------------------------------------------------------------------- sweep
@dataclass
class _Job:
    """One reduction (unless cached: ``Y``) and the runs clustered on it: plans of one reducer and seed."""

    plans: list[RunPlan]
    Y: np.ndarray | None

    @property
    def reducer(self):
        return self.plans[0].reducer  # a UMAP or PCA reducer: umap jobs use its metric and neighbours

    def work(self) -> tuple:
        """What a worker gets (never the plans: they hold the features, which workers share otherwise)."""
        return self.reducer, [p.clusterer for p in self.plans], self.Y


@dataclass
class _Pass:
    """One feature set's part of a sweep: where its runs go and how it reports."""

    study: Study
    feats: Features
    result: SweepResult
    grid_name: str
    workers: int | None
    progress: bool
    say: Callable[[str], None]
    executor: Any  # a remote executor, or None: worker processes here
    label: str
    min_samples: int | None
    selection: str | None
    rows_by_key: dict[str, SweepRow] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.feats.kind


def sweep(
    study,
    grid: str | os.PathLike | dict | Grid = "paper",
    *,
    features: tuple[str, ...] | list[str] | str = ("text",),
    seeds: tuple[int | None, ...] | list[int | None] | int | None = DEFAULT_SEEDS,
    text: str = DEFAULT_TEXT_EMBEDDER,
    image: str = DEFAULT_IMAGE_EMBEDDER,
    description_set: str | None = None,
    min_samples: int | None = None,
    selection: str | None = None,
    workers: int | None = None,
    label: str | None = None,
    progress: bool = True,
    say=None,
    executor=None,
) -> SweepResult:
    """Run every setting of ``grid`` on each feature set and seed as an ordinary stored run, and report
    each setting's seed stability.

    ``seeds``: three by default (:data:`connote.defaults.DEFAULT_SEEDS`).
    ``selection``: HDBSCAN cluster selection, eom (the paper's) or leaf; default as ``connote cluster``.
    ``workers``: processes for independent reductions (default: from the cores and available memory).
    ``say``: a function for progress notes (default: nothing).
    ``executor``: 'local' (default: worker processes here), 'ray' or 'ray:ADDRESS' (each reduction and its
    clusterings one Ray task; the vectors and kNN graphs go to the object store once), or an executor.
    A grid's EVoC settings are fitted here, one after another (EVoC uses every core itself).
    """
    from connote import sweep_pool
    from connote.executors import executor_scope
    from connote.features import features as load_features
    from connote.study import Study

    if isinstance(executor, str) and executor != "local":  # e.g. 'ray:HOST:PORT': one connection for all
        with executor_scope(executor) as ex:
            return sweep(
                study, grid, features=features, seeds=seeds, text=text, image=image,
                description_set=description_set, min_samples=min_samples, selection=selection,
                workers=workers, label=label, progress=progress, say=say, executor=ex,
            )  # fmt: skip

    sweep_pool.prefer_fork_safe_numba()
    study = Study.of(study)
    g = load_grid(grid)
    if isinstance(features, str):
        features = [f.strip() for f in features.split(",") if f.strip()]
    if seeds is None or isinstance(seeds, int):
        seeds = [seeds]
    seeds = list(dict.fromkeys(seeds)) or [DEFAULT_SEED]
    label = label or f"sweep:{g.name}"
    say = say or (lambda _msg: None)
    result = SweepResult(grid=g.name)

    for kind in features:
        feats = load_features(study, kind, text=text, image=image, description_set=description_set)
        feats.require_enough()
        n, dim = feats.X.shape if feats.X.ndim == 2 else (len(feats.shas), 0)
        p = plan(g, n, dim)
        remote = executor if getattr(executor, "remote", False) else None
        sw = _Pass(
            study, feats, result, g.name, workers, progress, say, remote, label, min_samples, selection
        )
        order, jobs = _plan_jobs(sw, p, seeds)
        for note in p.notes:
            result.notes.append(f"{kind}: {note}")
            say(f"note: {kind}: {note}")
        result.reused += len(sw.rows_by_key)
        _run_jobs(sw, jobs)
        result.rows += [sw.rows_by_key[k] for k in dict.fromkeys(order)]
        result.rows += _sweep_evoc(sw, p, seeds)
    result.stability = _stability(study, result.rows)
    return result


def _plan_jobs(sw: _Pass, p: Plan, seeds) -> tuple[list[str], list[_Job]]:
    """The keys of every setting in order, and the jobs for those not stored yet (found ones go to
    ``sw.rows_by_key``). Every run is planned as ``connote cluster`` plans it (:func:`fitting.plan_run`)."""
    from connote.features import load_reduction

    order: list[str] = []
    jobs: list[_Job] = []
    first: RunPlan | None = None
    for spec, seed in itertools.product(p.reduce_specs, seeds):
        todo = []
        for m in p.min_cluster_sizes:
            clusterer = HDBSCANClusterer(
                min_cluster_size=m, min_samples=sw.min_samples, cluster_selection_method=sw.selection
            )
            run = first = plan_run(sw.feats, spec, clusterer, seed, label=sw.label)
            order.append(run.key)
            old = sw.study.find_run(run.key)
            if old is not None:
                sw.rows_by_key[run.key] = _row(sw.feats, old, seed, reused=True)
            else:
                todo.append(run)
        if todo:
            jobs.append(_Job(todo, load_reduction(sw.study, todo[0])))
    if first is not None and sw.selection is None and first.clusterer.cluster_selection_method != "eom":
        p.notes.append(
            f"cluster selection '{first.clusterer.cluster_selection_method}' (connote's default for "
            f"{first.n} items, as `connote cluster`)"
        )
    return order, jobs


def _row(
    feats, run, seed, *, reused: bool, reduce: str | None = None, min_cluster_size: int | None = None
) -> SweepRow:
    """A stored run as a row of the sweep's table."""
    return SweepRow(
        feats.kind, feats.embedder, reduce or run["reduce"],
        run["min_cluster_size"] if min_cluster_size is None else min_cluster_size, seed, run["id"],
        run["n_items"], run["n_clusters"], run["n_outliers"], reused,
    )  # fmt: skip


def _shared_graphs(sw: _Pass, jobs: list[_Job]) -> dict:
    """One exact kNN graph per metric for the UMAP jobs, at their largest neighbour count (sliced by each);
    none where the graph would be approximate (each job then computes its own, as `connote cluster` does)."""
    from connote import knn

    n = len(sw.feats.shas)
    graphs = {}
    umap_jobs = [j for j in jobs if j.Y is None and getattr(j.reducer, "kind", None) == "umap"]
    for metric in dict.fromkeys(j.reducer.metric for j in umap_jobs):
        same = [j for j in umap_jobs if j.reducer.metric == metric]
        if not knn.can_slice(n, metric):
            sw.say(f"{sw.kind}: {n} items: an approximate neighbour graph per UMAP setting ({metric})")
            continue
        k = max(j.reducer.effective(n)[1] for j in same)
        sw.say(f"{sw.kind}: one exact {k}-nearest-neighbour graph ({metric}) for {len(same)} UMAP setting(s)")
        t = time.perf_counter()
        graphs[metric] = knn.knn_graph(sw.feats.X, k, metric=metric)
        sw.result.knn_graphs += 1
        sw.result.timings["knn_s"] = sw.result.timings.get("knn_s", 0.0) + time.perf_counter() - t
    return graphs


def _run_jobs(sw: _Pass, jobs: list[_Job]) -> None:
    from connote import sweep_pool

    feats, result = sw.feats, sw.result
    n, dim = feats.X.shape if feats.X.ndim == 2 else (len(feats.shas), 0)
    to_reduce = [j for j in jobs if j.Y is None]
    result.reductions += len(to_reduce)
    # Load the compiled code (umap-learn, pynndescent, connote.mst: about 5 s) once, here, while the kNN
    # graph is computed, rather than in every worker: forked workers inherit it.
    umap = any(getattr(j.reducer, "kind", None) == "umap" for j in to_reduce)
    preload = threading.Thread(target=sweep_pool.preload, args=(umap,), daemon=True)
    preload.start()
    graphs = _shared_graphs(sw, jobs)
    preload.join()
    # Longest first, so that the workers finish together.
    jobs.sort(key=lambda j: sweep_pool.estimated_cost(j.reducer, len(j.plans), j.Y is not None), reverse=True)
    nw = sweep_pool.worker_count(len(to_reduce), n, dim, sw.workers) if to_reduce else 1
    result.workers = max(result.workers, nw)
    if not jobs:
        return
    total = sum(len(j.plans) for j in jobs)
    sw.say(
        f"{sw.kind}: {total} setting(s) to compute, {len(to_reduce)} reduction(s), {len(sw.rows_by_key)} reused; {nw} worker process(es)"
    )
    bar = None
    if sw.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"Sweep {sw.grid_name} ({sw.kind})", unit="run")

    def store(job: _Job, fitted: Fit):
        t = time.perf_counter()
        seconds = fitted.seconds
        for key, row in _store(sw, job, fitted, graphs):
            sw.rows_by_key[key] = row
            result.computed += 1
            if bar:
                bar.update(1)
        seconds["store"] = time.perf_counter() - t
        jobs_s = result.timings.setdefault("jobs", {})
        jobs_s[f"{sw.kind} {job.reducer.spec} seed={job.plans[0].seed}"] = {
            k: round(v, 2) for k, v in seconds.items()
        }

    t_settings = time.perf_counter()
    try:
        with contextlib.closing(_fitted(sw, jobs, graphs, nw)) as fits:
            for job, fitted in fits:  # stored as each finishes: an interrupted sweep keeps them
                store(job, fitted)
    finally:
        if bar:
            bar.close()
    result.timings["settings_s"] = result.timings.get("settings_s", 0.0) + time.perf_counter() - t_settings


def _fitted(sw: _Pass, jobs: list[_Job], graphs: dict, nw: int) -> Generator[tuple[_Job, Fit], None, None]:
    """Each job with its fit as it finishes: as tasks of the remote executor, in ``nw`` worker processes
    here, or in this process (the vectors and the shared graphs sent or shared once)."""
    from connote import sweep_pool

    X = sw.feats.X
    if sw.executor is not None:  # a remote executor: each job a task, X and the graphs shared once
        from connote.executors.jobs import sweep_job

        for i, fitted in sw.executor.map_unordered(sweep_job, [j.work() for j in jobs], shared=(X, graphs)):
            yield jobs[i], fitted
    elif nw > 1 and len(jobs) > 1:
        from concurrent.futures import as_completed

        pool = sweep_pool.make_pool(min(nw, len(jobs)), X, graphs, sweep_pool.can_fork())
        try:
            futures = {pool.submit(sweep_pool.work, *j.work()): j for j in jobs}
            for fut in as_completed(futures):
                yield futures[fut], fut.result()
        except BaseException:  # an error, Ctrl-C, or the caller stopped (GeneratorExit): no waiting
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            sweep_pool.share(None, None)
        pool.shutdown()
    else:
        sweep_pool.share(X, graphs)
        try:
            for job in jobs:
                yield job, sweep_pool.work(*job.work())
        finally:
            sweep_pool.share(None, None)


def _store(sw: _Pass, job: _Job, fitted: Fit, graphs) -> list:
    """Cache the reduction and store each of the job's plans as a run (:func:`fitting.store`)."""
    from connote.features import save_reduction

    if job.Y is None:
        save_reduction(sw.study, job.plans[0], fitted.Y)
    metric = getattr(job.reducer, "metric", None)
    shared = getattr(job.reducer, "kind", None) == "umap" and metric in graphs
    label = job.plans[0].label or ""
    notes = [
        *fitted.notes,
        label + (f"; shared exact {graphs[metric][0].shape[1]}-NN graph" if shared else ""),
    ]
    out = []
    for run, (labels, probs) in zip(job.plans, fitted.results):
        run_id, made = store_plan(sw.study, run, labels, probs, notes=notes)
        out.append((run.key, _row(sw.feats, sw.study.get_run(run_id), run.seed, reused=not made)))
    return out


def _sweep_evoc(sw: _Pass, p: Plan, seeds) -> list[SweepRow]:
    """The grid's EVoC settings, each with each seed: one fit (found, or made here) whose every layer is a
    run, planned and stored as ``connote cluster --method evoc`` does (:func:`connote.evoc.fit_layers`).
    Their rows say ``evoc`` (with the options the setting sets) and the layer, and give the setting's base
    min cluster size, so that each layer's seeds are compared as a setting."""
    from connote import evoc

    rows = []
    for options, seed in itertools.product(p.evoc, seeds):
        est = evoc.EVoCClusterer(random_state=seed, **options)
        run = plan_run(sw.feats, None, est, seed, label=sw.label)
        name = evoc.REDUCE_SPEC + (
            ":" + ",".join(f"{k}={v:g}" for k, v in options.items()) if options else ""
        )
        t = time.perf_counter()
        res = evoc.fit_layers(sw.study, run)
        if not res.layers[0]["reused"]:
            sw.say(f"{sw.kind}: EVoC {name} seed {seed}: {len(res.layers)} layer(s)")
            sw.result.timings["evoc_s"] = sw.result.timings.get("evoc_s", 0.0) + time.perf_counter() - t
        for layer in res.layers:
            reused = bool(layer["reused"])
            sw.result.reused += reused
            sw.result.computed += not reused
            rows.append(
                _row(sw.feats, sw.study.get_run(layer["run_id"]), seed, reused=reused,
                     reduce=f"{name} layer {layer['layer']}", min_cluster_size=est.base_min_cluster_size)
            )  # fmt: skip
    return rows


def _stability(study, rows: list[SweepRow]) -> list[SettingStability]:
    """Seed stability of each setting of the sweep (its rows grouped by features, reduction and size)."""
    groups: dict[tuple, list[SweepRow]] = {}
    for r in rows:
        groups.setdefault((r.features, r.embedder, r.reduce, r.min_cluster_size), []).append(r)
    out = []
    for (features, _emb, reduce, mcs), group in groups.items():
        labels: dict[Hashable, Mapping[str, int]] = {}
        for r in group:
            labels.setdefault(r.seed, study.assignments(r.run_id))
        out.append(SettingStability(features, reduce, mcs, [r.run_id for r in group], seed_stability(labels)))
    return out
