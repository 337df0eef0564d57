"""Benchmark: `connote sweep` (paper grid) against a plain loop of umap-learn + hdbscan calls.

    python benchmarks/sweep.py            # the paper's size: 11,873 x 384 (the plain loop takes a while)
    python benchmarks/sweep.py --n 6000   # a quicker run (below 4,096 items umap-learn takes a slow exact path)
    python benchmarks/sweep.py --real     # real texts (MultiClimate frames): agreement with the plain loop
                                          # beside the plain loop's own seed-to-seed agreement (sweep_real.py)

Both arms get the same seeded synthetic vectors (cluster structure in a low-dimensional subspace plus
noise, L2-normalised like sentence embeddings) and the same settings: UMAP {5,10} components x
{5,15,30} neighbours (cosine, min_dist 0.1, random_state 42) and PCA {5,10,20} components and 80%
variance, each clustered by HDBSCAN with min cluster size {50,100,200} (scaled for n < 11,873 the way
the sweep scales them). The plain arm is the loop the grid describes: for each of the 30 settings, one
umap.UMAP(...).fit_transform (or PCA) and one hdbscan.HDBSCAN(...).fit_predict, the libraries' defaults
otherwise. From the same measurements it also reports a better plain loop that reduces once per reduction
setting and clusters that at each size ("hoisted"). The connote arm is connote.sweeps.sweep on a fresh
study holding the vectors. Each arm runs in its own process (peak memory per arm).

Compilation is kept out of both timings: numba's disk cache is warmed first, and the plain arm also runs
one small UMAP in its own process before its clock starts, because umap-learn leaves some of its numba
functions uncached and a fresh process compiles them again (about a minute on 2 cores). That first-call
cost is reported beside the plain arm (``plain.first_call_s``), not counted in the speed-up.

Writes benchmarks/results/sweep.json and sweep.md (sweep-nN.* for other sizes): wall time, peak memory,
and per-setting agreement (adjusted Rand index) between the two arms.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 42


def synthetic(n: int, dim: int = 384, k: int = 30, latent: int = 24, seed: int = 0):
    rng = np.random.default_rng(seed)
    sizes = rng.dirichlet(np.full(k, 2.0)) * n
    truth = np.repeat(np.arange(k), np.maximum(1, np.round(sizes)).astype(int))[:n]
    truth = np.concatenate([truth, rng.integers(0, k, n - len(truth))]) if len(truth) < n else truth
    rng.shuffle(truth)
    centres = rng.normal(0, 3.0, (k, latent))
    Z = centres[truth] + rng.normal(0, 1.0, (n, latent))
    basis, _ = np.linalg.qr(rng.normal(size=(dim, latent)))
    X = Z @ basis.T + rng.normal(0, 0.15, (n, dim))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), truth


LOAD_AT_START = os.getloadavg()[0]


def peak_mb() -> dict:
    """Peak memory of this arm's process and of its largest child, and the machine's load (1-minute
    average) when the arm started and ended: other work on the machine slows either arm."""
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {
        "process_peak_mb": round(self_kb / 1024, 1),
        "largest_child_peak_mb": round(child_kb / 1024, 1),
        "loadavg_start": round(LOAD_AT_START, 2),
        "loadavg_end": round(os.getloadavg()[0], 2),
    }


class TreeMemory:
    """Peak of the summed resident memory of this process and all its descendants (the sweep's workers are
    grandchildren, started by multiprocessing's forkserver), sampled every 0.2 s with psutil."""

    def __init__(self):
        import threading

        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            import psutil
        except ImportError:
            return
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
            self.peak = max(self.peak, total)
            self._stop.wait(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def settings(n: int, dim: int):
    from connote.sweep_grid import load_grid, plan

    p = plan(load_grid("paper"), n, dim)
    return p.reduce_specs, p.min_cluster_sizes


# ---------------------------------------------------------------------------------------------- arms
def arm_warm() -> dict:
    """Compile (and cache) numba code of both paths on small data, outside the timings."""
    from connote.jit import numba_cache
    from connote.knn import knn_graph
    from connote.reduce import UMAPReducer

    numba_cache()
    X, _ = synthetic(4200, dim=32, k=5)
    # connote's path first: it switches on caching for umap-learn's uncached functions before they compile
    # (connote.jit.import_umap). The plain arm's process never does, so it gets umap-learn's own caching.
    UMAPReducer(5, 5).fit_transform(X, knn=knn_graph(X, 5))
    import umap

    umap.UMAP(n_neighbors=5, random_state=SEED, n_jobs=1, n_epochs=5).fit_transform(X)
    return {}


def arm_plain(n: int, out: Path) -> dict:
    from connote.jit import numba_cache

    numba_cache()
    import hdbscan
    import umap
    from sklearn.decomposition import PCA

    X, _ = synthetic(n)
    specs, sizes = settings(n, X.shape[1])
    # What a fresh process pays once before the loop runs at full speed: numba compiles the UMAP functions
    # umap-learn does not cache (nearest-neighbour descent needs >= 4096 rows to be used at all).
    t = time.perf_counter()
    small = X[: min(n, 4200)]
    umap.UMAP(n_neighbors=5, metric="cosine", random_state=SEED, n_epochs=5).fit_transform(small)
    hdbscan.HDBSCAN(min_cluster_size=5).fit_predict(small[:500, :5].astype(np.float64))
    first_call = time.perf_counter() - t

    def reduce(spec):
        kind, _, arg = spec.partition(":")
        opts = dict(p.split("=") for p in arg.split(","))
        if kind == "umap":
            return umap.UMAP(
                n_components=int(opts["components"]),
                n_neighbors=int(opts["neighbors"]),
                metric="cosine",
                random_state=SEED,
            ).fit_transform(X)
        if "variance" in opts:
            pca = PCA(n_components=float(opts["variance"]), svd_solver="full", random_state=SEED)
        else:
            pca = PCA(n_components=int(opts["components"]), random_state=SEED)
        return pca.fit_transform(X.astype(np.float64))

    # The loop as the grid reads: one reduction and one clustering per setting.
    t0 = time.perf_counter()
    labels, reduce_s, cluster_s = {}, {}, {}
    mem = TreeMemory().__enter__()
    for spec in specs:
        for m in sizes:
            key = f"{spec}|{m}"
            t = time.perf_counter()
            Y = np.asarray(reduce(spec), dtype=np.float64)
            t1 = time.perf_counter()
            labels[key] = hdbscan.HDBSCAN(min_cluster_size=m).fit_predict(Y)
            reduce_s[key], cluster_s[key] = t1 - t, time.perf_counter() - t1
    wall = time.perf_counter() - t0
    mem.__exit__(None, None, None)
    np.savez(out, **labels)
    # A loop that reduces once per reduction setting and clusters that at every size, from the same
    # measurements (the first reduction of each setting, every clustering).
    hoisted = sum(reduce_s[f"{spec}|{sizes[0]}"] for spec in specs) + sum(cluster_s.values())
    return {
        "wall_s": round(wall, 2),
        "hoisted_s": round(hoisted, 2),
        "first_call_s": round(first_call, 2),
        "per_setting_s": {k: [round(reduce_s[k], 2), round(cluster_s[k], 2)] for k in labels},
        "all_processes_peak_mb": round(mem.peak / 2**20, 1),
        **peak_mb(),
    }


def arm_connote(n: int, out: Path, workers: int | None) -> dict:
    from connote.study import Study, text_key
    from connote.sweeps import sweep

    X, _ = synthetic(n)
    with tempfile.TemporaryDirectory() as tmp:
        study = Study.create(Path(tmp) / "study")
        set_id = study.description_set("synthetic", "synthetic", None, None, {})
        for i, v in enumerate(X):
            sha = f"{i:064x}"
            text = f"synthetic item {i}"
            study.put_description(set_id, sha, text)
            study.save_vector("text:minilm", text_key(text), v)
        study.register_embedder("text:minilm", "text", "minilm", X.shape[1], {})
        t0 = time.perf_counter()
        with TreeMemory() as mem:
            res = sweep(study, "paper", features=("text",), seeds=(SEED,), workers=workers, progress=False)
        wall = time.perf_counter() - t0
        order = {f"{i:064x}": i for i in range(n)}
        labels = {}
        for row in res.rows:
            assign = study.assignments(row.run_id)
            lab = np.full(n, -2, dtype=int)
            for sha, c in assign.items():
                lab[order[sha]] = c
            labels[f"{row.reduce}|{row.min_cluster_size}"] = lab
        np.savez(out, **labels)
        return {
            "wall_s": round(wall, 2),
            "workers": res.workers,
            "reductions": res.reductions,
            "knn_graphs": res.knn_graphs,
            "runs": res.computed,
            "notes": res.notes,
            "timings_s": {k: (round(v, 2) if isinstance(v, float) else v) for k, v in res.timings.items()},
            "all_processes_peak_mb": round(mem.peak / 2**20, 1),
            **peak_mb(),
        }


# ---------------------------------------------------------------------------------------------- main
def _child(arm: str, n: int, workers: int | None, tmp: Path) -> dict:
    out = tmp / f"{arm}.npz"
    cmd = [sys.executable, __file__, "--arm", arm, "--n", str(n), "--labels", str(out)]
    if workers:
        cmd += ["--workers", str(workers)]
    print(f"[{time.strftime('%H:%M:%S')}] running arm {arm} (n={n}) ...", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"arm {arm} failed")
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"[{time.strftime('%H:%M:%S')}] arm {arm}: {info.get('wall_s')} s", flush=True)
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=11873, help="number of vectors (default: the paper's 11,873)")
    ap.add_argument("--workers", type=int, help="sweep worker processes (default: automatic)")
    ap.add_argument(
        "--out", help="output stem (default benchmarks/results/sweep, or sweep-nN for other sizes)"
    )
    ap.add_argument("--arm", choices=["warm", "plain", "connote"], help=argparse.SUPPRESS)
    ap.add_argument("--labels", help=argparse.SUPPRESS)
    ap.add_argument("--render", metavar="JSON", help="only rewrite the .md next to an existing result .json")
    ap.add_argument(
        "--real",
        action="store_true",
        help="the real-text arm (MultiClimate frames): results/sweep-real.json and .md",
    )
    args = ap.parse_args()

    if args.real:
        sys.path.insert(0, str(HERE))
        import sweep_real

        sweep_real.main()
        return

    if args.render:
        path = Path(args.render)
        print(render(json.loads(path.read_text()), path.with_suffix("")))
        return
    if args.arm:
        info = {
            "warm": lambda: arm_warm(),
            "plain": lambda: arm_plain(args.n, Path(args.labels)),
            "connote": lambda: arm_connote(args.n, Path(args.labels), args.workers),
        }[args.arm]()
        print(json.dumps(info))
        return

    from sklearn.metrics import adjusted_rand_score

    from connote.jit import numba_cache

    numba_cache()  # children inherit it
    stem = (
        Path(args.out)
        if args.out
        else HERE / "results" / ("sweep" if args.n == 11873 else f"sweep-n{args.n}")
    )
    stem.parent.mkdir(parents=True, exist_ok=True)
    _, truth = synthetic(args.n)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _child("warm", args.n, None, tmp)
        fast = _child("connote", args.n, args.workers, tmp)
        plain = _child("plain", args.n, None, tmp)
        a, b = np.load(tmp / "plain.npz"), np.load(tmp / "connote.npz")
        per = []
        for key in a.files:
            spec, m = key.rsplit("|", 1)
            la, lb = a[key], b[key]
            per.append(
                {
                    "reduce": spec,
                    "min_cluster_size": int(m),
                    "ari_connote_vs_plain": round(float(adjusted_rand_score(la, lb)), 4),
                    "clusters_plain": int(len(set(la.tolist()) - {-1})),
                    "clusters_connote": int(len(set(lb.tolist()) - {-1})),
                    "outliers_plain": round(float(np.mean(la == -1)), 4),
                    "outliers_connote": round(float(np.mean(lb == -1)), 4),
                    "ari_plain_vs_truth": round(float(adjusted_rand_score(truth, la)), 4),
                }
            )
    aris = [p["ari_connote_vs_plain"] for p in per]
    result = {
        "n": args.n,
        "dim": 384,
        "grid": "paper",
        "settings": len(per),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "plain": plain,
        "connote": fast,
        "speedup": round(plain["wall_s"] / fast["wall_s"], 2),
        "speedup_vs_hoisted": round(plain["hoisted_s"] / fast["wall_s"], 2),
        "ari_min": min(aris),
        "ari_mean": round(float(np.mean(aris)), 4),
        "per_setting": per,
    }
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    print(render(result, stem))


def _load(arm: dict) -> str:
    if "loadavg_start" not in arm:
        return ""
    return f"; machine load {arm['loadavg_start']} -> {arm['loadavg_end']}"


def _mem(arm: dict) -> str:
    if "all_processes_peak_mb" in arm:
        return f"{arm['all_processes_peak_mb']} MB (all processes together, sampled)"
    return f"{arm['process_peak_mb']} MB (main process only)"


def render(result: dict, stem: Path) -> str:
    """Write STEM.md from the result; returns the text."""
    plain, fast, per = result["plain"], result["connote"], result["per_setting"]
    lines = [
        f"# connote sweep vs plain umap-learn + hdbscan loop (n={result['n']} x 384, paper grid, "
        f"{len(per)} settings)",
        "",
        f"- machine: {result['machine']['cores']} cores, Python {result['machine']['python']}",
        f"- plain loop (one reduction and one clustering per setting): {plain['wall_s']} s, peak memory "
        f"{_mem(plain)}{_load(plain)}",
        *(
            [
                f"- plain loop with each reduction computed once for all min cluster sizes (from the same "
                f"measurements): {plain['hoisted_s']} s"
            ]
            if "hoisted_s" in plain
            else []
        ),
        *(
            [
                f"- not counted: the plain loop's process first spent {plain['first_call_s']} s compiling "
                "umap-learn's uncached numba code (once per process; connote caches it on disk)"
            ]
            if "first_call_s" in plain
            else []
        ),
        f"- connote sweep: {fast['wall_s']} s with {fast['workers']} worker(s), {fast['reductions']} reductions, "
        f"{fast['knn_graphs']} kNN graph(s); peak memory {_mem(fast)}{_load(fast)}",
        f"- speed-up: **{result['speedup']}x** over the plain loop"
        + (
            f", {result['speedup_vs_hoisted']}x over the hoisted one"
            if "speedup_vs_hoisted" in result
            else ""
        )
        + f"; ARI connote vs plain: min {result['ari_min']}, mean {result['ari_mean']}",
        "- machine load is the 1-minute load average (2 cores): other processes on the machine slow either arm",
        "",
        "| reduce | mcs | ARI vs plain | clusters plain / connote | outliers plain / connote | ARI plain vs truth |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for p in per:
        lines.append(
            f"| {p['reduce']} | {p['min_cluster_size']} | {p['ari_connote_vs_plain']} | "
            f"{p['clusters_plain']} / {p['clusters_connote']} | {p['outliers_plain']:.1%} / "
            f"{p['outliers_connote']:.1%} | {p['ari_plain_vs_truth']} |"
        )
    text = "\n".join(lines) + "\n"
    stem.with_suffix(".md").write_text(text)
    return text


if __name__ == "__main__":
    main()
