"""The paper's experiment grid as ordinary runs: every reduction x min cluster size x seed, per feature set.

    >>> import connote
    >>> result = connote.sweep("study", grid="paper", features=("text", "image"), seeds=(42, 48, 112))
    >>> print(result.table())

Each setting is stored exactly as ``connote cluster`` would store it (same run key and record), so
``connote runs``, ``connote export`` and the validation steps see sweep runs like any other, and settings
already computed (by an earlier sweep or by ``connote cluster``) are reused.

Where the time goes, and how it is not paid twice:

* one k-nearest-neighbour graph per feature set and metric, computed once for the largest neighbour
  count and sliced for the smaller ones, is handed to every UMAP setting (``precomputed_knn``);
* each reduction is computed once and cached in STUDY/cache/reduce; all min cluster sizes reuse it, and
  one nearest-neighbour search gives HDBSCAN's core distances for all of them
  (:func:`connote.clustering.cluster_sizes`), whose spanning trees connote's Prim's builds
  (:mod:`connote.mst`);
* numba's compiled code is cached on disk across processes (:func:`connote.reduce.numba_cache`);
* independent reductions (and their HDBSCAN runs) run in parallel worker processes, as many as the
  cores and the available memory allow.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from connote.defaults import DEFAULT_SEED
from connote.errors import UserError


# ---------------------------------------------------------------------------------------------- grid
@dataclass
class Grid:
    name: str
    umap: list[tuple[int, int]]  # (components, neighbours)
    pca: list[tuple[str, float]]  # ('components', 5) | ('variance', 0.8)
    min_cluster_sizes: list[int]
    metric: str = "cosine"
    reference_n: int | None = None
    min_cluster_size_floor: int = 5

    @classmethod
    def from_dict(cls, d: dict, name: str | None = None) -> Grid:
        known = {"name", "reference_n", "min_cluster_size_floor", "min_cluster_size", "umap", "pca"}
        bad = set(d) - known
        if bad:
            raise UserError(
                f"unknown grid entries {', '.join(sorted(bad))} (known: {', '.join(sorted(known))})"
            )
        try:
            u = d.get("umap") or {}
            p = d.get("pca") or {}
            umap = [
                (int(c), int(k))
                for c in _list(u.get("components", []))
                for k in _list(u.get("neighbors", []))
            ]
            pca = [("components", int(c)) for c in _list(p.get("components", []))]
            pca += [("variance", float(v)) for v in _list(p.get("variance", []))]
            mcs = [int(m) for m in _list(d.get("min_cluster_size", []))]
            ref = d.get("reference_n")
            grid = cls(
                name=str(d.get("name") or name or "grid"),
                umap=umap,
                pca=pca,
                min_cluster_sizes=mcs,
                metric=str(u.get("metric", "cosine")),
                reference_n=int(ref) if ref else None,
                min_cluster_size_floor=int(d.get("min_cluster_size_floor", 5)),
            )
        except (TypeError, ValueError) as exc:
            raise UserError(f"bad number in grid: {exc}") from None
        if not (grid.umap or grid.pca):
            raise UserError("the grid has no reductions: give [umap] components and neighbors, or [pca]")
        if not grid.min_cluster_sizes:
            raise UserError("the grid has no min_cluster_size list")
        if any(m < 2 for m in grid.min_cluster_sizes):
            raise UserError("min cluster sizes must be at least 2")
        return grid

    def reduce_specs(self) -> list[str]:
        metric = "" if self.metric == "cosine" else f",metric={self.metric}"
        out = [f"umap:components={c},neighbors={k}{metric}" for c, k in self.umap]
        out += [f"pca:{kind}={value:g}" for kind, value in self.pca]
        return out


def _list(v) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


#: The paper's grid (UMAP 5/10 x 5/15/30, PCA 5/10/20/80%, min cluster size 50/100/200).
PAPER_GRID_FILE = Path(__file__).parent / "grids" / "paper.toml"


def load_grid(grid: str | os.PathLike | dict | Grid = "paper") -> Grid:
    """'paper' (connote/grids/paper.toml), a TOML file of the same shape, a dict of that shape, or a Grid."""
    if isinstance(grid, Grid):
        return grid
    if isinstance(grid, dict):
        return Grid.from_dict(grid)
    path = PAPER_GRID_FILE if str(grid) == "paper" else Path(grid)
    if not path.is_file():
        raise UserError(f"grid {str(grid)!r}: not 'paper' and no such file")
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10 (tomli is a dependency there)
        import tomli as tomllib
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not valid TOML: {exc}") from None
    return Grid.from_dict(data, name=path.stem)


@dataclass
class Plan:
    """The grid fitted to a collection of ``n`` items (neighbours/components clamped, sizes scaled)."""

    reduce_specs: list[str]
    min_cluster_sizes: list[int]
    notes: list[str]


def plan(grid: Grid, n: int, dim: int) -> Plan:
    notes: list[str] = []
    mcs = list(dict.fromkeys(grid.min_cluster_sizes))
    if grid.reference_n and n < grid.reference_n:
        cap = max(2, n // 3)
        scaled = [
            int(min(cap, max(grid.min_cluster_size_floor, round(m * n / grid.reference_n)))) for m in mcs
        ]
        scaled = list(dict.fromkeys(max(2, s) for s in scaled))
        if scaled != mcs:
            notes.append(
                f"{n} items is fewer than the {grid.name} grid's {grid.reference_n}: min cluster sizes "
                f"{', '.join(map(str, mcs))} scaled by n/{grid.reference_n} to {', '.join(map(str, scaled))}"
                f" (floor {grid.min_cluster_size_floor})"
            )
        mcs = scaled
    umap_pairs, clamped = [], []
    for c, k in grid.umap:
        c2, k2 = max(1, min(c, n - 2)), max(2, min(k, n - 1))
        if (c2, k2) != (c, k):
            clamped.append(f"{c}x{k}->{c2}x{k2}")
        umap_pairs.append((c2, k2))
    if clamped:
        notes.append(f"UMAP components x neighbours clamped to fit {n} items: {', '.join(clamped)}")
    pca = []
    for kind, value in grid.pca:
        if kind == "components" and value > min(n, dim):
            notes.append(f"PCA components {int(value)} clamped to {min(n, dim)} to fit {n} x {dim} features")
            value = min(n, dim)
        pca.append((kind, value))
    fitted = Grid(grid.name, umap_pairs, pca, mcs, grid.metric, None, grid.min_cluster_size_floor)
    return Plan(list(dict.fromkeys(fitted.reduce_specs())), mcs, notes)


# ---------------------------------------------------------------------------------------------- resources
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


# ---------------------------------------------------------------------------------------------- kNN
def knn_graph(
    X: np.ndarray, k: int, metric: str = "cosine", seed: int | None = 42, n_jobs: int = -1
) -> tuple[np.ndarray, np.ndarray]:
    """(indices, distances) of the ``k`` nearest neighbours of every row, nearest first, self included.

    Exact for cosine and euclidean up to EXACT_KNN_MAX items (blocked matrix products: seconds, and no
    minute of numba compilation as pynndescent needs in every new process), exact below 4,096 items for
    any metric (as umap-learn does), NN-descent (pynndescent, umap-learn's own) above."""
    from connote.reduce import import_umap

    X = np.asarray(X, dtype=np.float32)
    n = len(X)
    k = min(k, n)
    if n < 4096:
        from sklearn.metrics import pairwise_distances

        D = pairwise_distances(X, metric=metric).astype(np.float32)
        np.fill_diagonal(D, 0.0)
        idx = np.argsort(D, axis=1, kind="stable")[:, :k]
        # Self first even when a duplicate sits at distance 0 too.
        self_pos = np.arange(n)
        rows_without_self = ~(idx == self_pos[:, None]).any(axis=1)
        idx[rows_without_self, -1] = self_pos[rows_without_self]
        order = np.argsort(np.take_along_axis(D, idx, axis=1), axis=1, kind="stable")
        idx = np.take_along_axis(idx, order, axis=1)
        return idx.astype(np.int32), np.take_along_axis(D, idx, axis=1)
    if metric in ("cosine", "euclidean") and n <= EXACT_KNN_MAX:
        return _exact_knn(X, k, metric)
    import_umap()
    from umap.umap_ import nearest_neighbors

    rs = np.random.RandomState(seed) if seed is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idx, dist, _ = nearest_neighbors(
            X, k, metric, {}, False, rs, low_memory=True, use_pynndescent=True, n_jobs=n_jobs, verbose=False
        )
    return np.asarray(idx, dtype=np.int32), np.asarray(dist, dtype=np.float32)


EXACT_KNN_MAX = 25_000


def _exact_knn(X: np.ndarray, k: int, metric: str, block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
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
        rows = np.arange(stop - start)
        D[rows, rows + start] = -1.0  # self first, whatever duplicates there are
        part = np.argpartition(D, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (stop - start, 1))
        dp = np.take_along_axis(D, part, axis=1)
        order = np.argsort(dp, axis=1, kind="stable")
        idx[start:stop] = np.take_along_axis(part, order, axis=1)
        dist[start:stop] = np.maximum(np.take_along_axis(dp, order, axis=1), 0.0)
    return idx, dist


# ---------------------------------------------------------------------------------------------- workers
_X: np.ndarray | None = None
_KNN: tuple[np.ndarray, np.ndarray] | None = None


def _share(X, knn) -> None:
    """The data every setting reads (module globals: inherited by forked workers, set by the initializer
    in spawned ones)."""
    global _X, _KNN
    _X, _KNN = X, knn


def _init_worker(X, knn) -> None:
    _share(X, knn)
    _one_thread()


def _one_thread() -> None:
    """One BLAS/OpenMP/numba thread per worker: the workers are the parallelism (two workers with two
    threads each on two cores run a UMAP about 40% slower)."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    numba = sys.modules.get("numba")
    if numba is not None:
        numba.set_num_threads(1)


def _work(
    spec: str,
    seed: int | None,
    min_cluster_sizes: list[int],
    min_samples: int | None,
    selection: str,
    Y: np.ndarray | None,
) -> tuple[np.ndarray, dict, list[str]]:
    """One reduction (unless ``Y`` is given) and HDBSCAN for each min cluster size."""
    from connote import registry
    from connote.clustering import hdbscan_at_sizes

    notes: list[str] = []
    t0 = time.perf_counter()
    if Y is None:
        reducer = registry.reducer(spec, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if getattr(reducer, "kind", None) == "umap" and _KNN is not None:
                Y = reducer.fit_transform(_X, knn=_KNN)
            else:
                Y = reducer.fit_transform(_X)
        Y = np.asarray(Y, dtype=np.float32)
        notes = list(getattr(reducer, "notes_", []))
    t1 = time.perf_counter()
    out = hdbscan_at_sizes(Y, min_cluster_sizes, min_samples=min_samples, selection=selection)
    seconds = {"reduce": t1 - t0, "cluster": time.perf_counter() - t1}
    return Y, out, notes, seconds


def _estimated_cost(job) -> float:
    """Rough seconds of one job at the paper's size (measured on 2 cores): UMAP grows with its neighbours,
    the core distances of HDBSCAN with the number of dimensions; a cached reduction costs only its
    clusterings."""
    _spec, _seed, reducer, todo, Y = job
    if Y is not None:
        return 0.5 * len(todo)
    if getattr(reducer, "kind", None) == "umap":
        return 6.5 + 0.3 * reducer.n_neighbors + 0.2 * reducer.n_components
    return 1.5 + 0.15 * (getattr(reducer, "n_components", None) or 12)


def _preload(umap: bool) -> None:
    from connote.mst import mutual_reachability_mst

    mutual_reachability_mst(np.zeros((2, 1)), np.zeros(2))
    if umap:
        from connote.reduce import import_umap

        import_umap()


def _can_fork() -> bool:
    """Fork the workers (they inherit numba's compiled UMAP/pynndescent code: no minute of JIT each) only
    where that is safe: Linux, numba's fork-safe 'workqueue' threading layer, and no torch loaded."""
    if not sys.platform.startswith("linux") or "torch" in sys.modules:
        return False
    numba = sys.modules.get("numba")
    return numba is None or numba.config.THREADING_LAYER == "workqueue"


def _prefer_fork_safe_numba() -> None:
    """Before numba is imported: choose its fork-safe threading layer so sweep workers can be forked."""
    if "numba" not in sys.modules:
        os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")


def _pool(workers: int, X: np.ndarray, knn, fork: bool):
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    if fork:  # the workers inherit X, the kNN graph and the compiled code
        _share(X, knn)
        return ProcessPoolExecutor(
            max_workers=workers, mp_context=mp.get_context("fork"), initializer=_one_thread
        )
    # otherwise forkserver/spawn: no fork of a process that may hold unsafe threads (torch, OpenMP).
    method = "forkserver" if sys.platform.startswith("linux") else "spawn"
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=mp.get_context(method), initializer=_init_worker, initargs=(X, knn)
    )


# ---------------------------------------------------------------------------------------------- sweep
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
class SweepResult:
    grid: str
    rows: list[SweepRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    computed: int = 0
    reused: int = 0
    reductions: int = 0
    knn_graphs: int = 0
    workers: int = 1
    timings: dict = field(default_factory=dict)  # seconds per phase, summed over feature sets

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


def sweep(
    study,
    grid: str | os.PathLike | dict | Grid = "paper",
    *,
    features: tuple[str, ...] | list[str] | str = ("text",),
    seeds: tuple[int | None, ...] | list[int | None] | int | None = (42,),
    text: str = "minilm",
    image: str = "efficientnet-lite0",
    description_set: str | None = None,
    min_samples: int | None = None,
    selection: str | None = None,
    workers: int | None = None,
    label: str | None = None,
    progress: bool = True,
    say=None,
) -> SweepResult:
    """Run every setting of ``grid`` on each feature set and seed as an ordinary stored run.

    ``selection``: HDBSCAN cluster selection, eom (the paper's) or leaf; default as ``connote cluster``.
    ``workers``: processes for independent reductions (default: from the cores and available memory).
    ``say``: a function for progress notes (default: nothing).
    """
    from connote import registry
    from connote.clustering import HDBSCANClusterer
    from connote.defaults import default_selection
    from connote.params import recorded_params
    from connote.provenance import environment
    from connote.study import Study
    from connote.study.runs import features as load_features
    from connote.study.runs import load_reduction, run_key

    _prefer_fork_safe_numba()
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
    env = environment()

    for kind in features:
        feats = load_features(study, kind, text=text, image=image, description_set=description_set)
        n, dim = feats.X.shape if feats.X.ndim == 2 else (len(feats.shas), 0)
        if n < 4:
            raise UserError(f"only {n} {kind} items to cluster; need at least 4")
        p = plan(g, n, dim)
        sel = selection or default_selection(n)
        if selection is None and sel != "eom":
            p.notes.append(
                f"cluster selection '{sel}' (connote's default for {n} items, as `connote cluster`)"
            )
        for note in p.notes:
            result.notes.append(f"{kind}: {note}")
            say(f"note: {kind}: {note}")

        # Which settings are missing, and which of those need a reduction computed?
        jobs = []  # (spec, seed, reducer, [(mcs, key, cluster_params)], cached Y or None)
        rows_by_key: dict[str, SweepRow] = {}
        order: list[str] = []
        for spec, seed in itertools.product(p.reduce_specs, seeds):
            reducer = registry.reducer(spec, seed=seed)
            reducer_params = recorded_params(reducer)
            todo = []
            for m in p.min_cluster_sizes:
                cparams = recorded_params(
                    HDBSCANClusterer(
                        min_cluster_size=m, min_samples=min_samples, cluster_selection_method=sel
                    )
                )
                key = run_key(feats, reducer_params, cparams, seed)
                order.append(key)
                old = study.find_run(key)
                if old is not None:
                    rows_by_key[key] = SweepRow(
                        kind,
                        feats.embedder,
                        old["reduce"],
                        old["min_cluster_size"],
                        seed,
                        old["id"],
                        old["n_items"],
                        old["n_clusters"],
                        old["n_outliers"],
                        True,
                    )
                else:
                    todo.append((m, key, cparams))
            if todo:
                jobs.append((spec, seed, reducer, todo, load_reduction(study, feats, reducer)))

        result.reused += len(rows_by_key)
        to_reduce = [j for j in jobs if j[4] is None]
        result.reductions += len(to_reduce)
        knn = None
        umap_jobs = [j for j in to_reduce if getattr(j[2], "kind", None) == "umap"]
        # Load the compiled code (umap-learn, pynndescent, connote.mst: about 5 s) once, here, while the
        # kNN graph is computed, rather than in every worker: forked workers inherit it.
        preload = threading.Thread(target=_preload, args=(bool(umap_jobs),), daemon=True)
        preload.start()
        if umap_jobs:
            k = max(j[2].effective(n)[1] for j in umap_jobs)
            metric = umap_jobs[0][2].metric
            say(f"{kind}: one {k}-nearest-neighbour graph ({metric}) for {len(umap_jobs)} UMAP setting(s)")
            t = time.perf_counter()
            knn = knn_graph(feats.X, k, metric=metric, seed=umap_jobs[0][1])
            result.knn_graphs += 1
            result.timings["knn_s"] = result.timings.get("knn_s", 0.0) + time.perf_counter() - t
        preload.join()
        # Longest first, so that the workers finish together.
        jobs.sort(key=_estimated_cost, reverse=True)
        nw = worker_count(len(to_reduce), n, dim, workers) if to_reduce else 1
        result.workers = max(result.workers, nw)
        if jobs:
            say(
                f"{kind}: {sum(len(j[3]) for j in jobs)} setting(s) to compute, {len(to_reduce)} reduction(s), "
                f"{len(rows_by_key)} reused; {nw} worker process(es)"
            )
        bar = None
        if progress and jobs:
            from tqdm.auto import tqdm

            bar = tqdm(total=sum(len(j[3]) for j in jobs), desc=f"Sweep {g.name} ({kind})", unit="run")

        knn_k = knn[0].shape[1] if knn is not None else None

        def store(
            job,
            Y,
            labelled,
            notes,
            seconds,
            feats=feats,
            knn_k=knn_k,
            rows_by_key=rows_by_key,
            bar=bar,
            kind=kind,
        ):
            t = time.perf_counter()
            for key, row in _store(
                study,
                feats,
                job,
                Y,
                labelled,
                notes,
                knn_k=knn_k,
                label=label,
                min_samples=min_samples,
                env=env,
            ):
                rows_by_key[key] = row
                result.computed += 1
                if bar:
                    bar.update(1)
            seconds["store"] = time.perf_counter() - t
            jobs_s = result.timings.setdefault("jobs", {})
            jobs_s[f"{kind} {job[0]} seed={job[1]}"] = {k: round(v, 2) for k, v in seconds.items()}

        t_settings = time.perf_counter()
        try:
            fork = nw > 1 and _can_fork()
            if nw > 1 and len(jobs) > 1:
                from concurrent.futures import as_completed

                pool = _pool(min(nw, len(jobs)), feats.X, knn, fork)
                try:
                    futures = {
                        pool.submit(_work, j[0], j[1], [t[0] for t in j[3]], min_samples, sel, j[4]): j
                        for j in jobs
                    }
                    for fut in as_completed(
                        futures
                    ):  # stored as each finishes: an interrupted sweep keeps them
                        store(futures[fut], *fut.result())
                except BaseException:
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
                finally:
                    _share(None, None)
                pool.shutdown()
            else:
                _share(feats.X, knn)
                try:
                    for job in jobs:
                        store(job, *_work(job[0], job[1], [t[0] for t in job[3]], min_samples, sel, job[4]))
                finally:
                    _share(None, None)
        finally:
            if bar:
                bar.close()
        result.timings["settings_s"] = (
            result.timings.get("settings_s", 0.0) + time.perf_counter() - t_settings
        )
        result.rows += [rows_by_key[k] for k in dict.fromkeys(order)]
    return result


def _store(study, feats, job, Y, labelled, notes, *, knn_k, label, min_samples, env) -> list:
    """Cache the reduction and add one run per min cluster size, in steps.cluster's record shape."""
    from connote.params import recorded_params
    from connote.study.runs import reduce_cached, store_run

    spec, seed, reducer, todo, _ = job
    reduce_cached(study, feats, reducer, Y=Y)
    n = len(feats.shas)
    umap = getattr(reducer, "kind", None) == "umap"
    run_notes = [*notes, label + (f"; shared {knn_k}-NN graph" if knn_k and umap else "")]
    out = []
    for m, key, cparams in todo:
        labels, probs = labelled[m]
        run_id, made = store_run(
            study,
            feats,
            key=key,
            reduce_spec=reducer.spec,
            reducer_params=recorded_params(reducer),
            cluster_params=cparams,
            min_cluster_size=int(m),
            min_samples=min_samples,
            seed=seed,
            labels=labels,
            probabilities=probs,
            notes=run_notes,
            label=label,
            environment=env,
        )
        n_outliers = int(np.sum(np.asarray(labels) == -1))
        n_clusters = len(set(np.asarray(labels).tolist()) - {-1})
        row = SweepRow(
            feats.kind,
            feats.embedder,
            reducer.spec,
            int(m),
            seed,
            run_id,
            n,
            n_clusters,
            n_outliers,
            not made,
        )
        out.append((key, row))
    return out
