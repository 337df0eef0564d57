"""Benchmark: EVoC beside connote's default UMAP + HDBSCAN, in one run, on the same vectors.

    python benchmarks/evoc_scale.py                          # 10,000 generated items and the frames
    python benchmarks/evoc_scale.py --sizes 10000 100000     # and 100,000 (hours on 2 shared cores)

Data: ``--sizes`` generated items (a mixture of 50 Gaussian topics in 384 dimensions, on the unit
sphere: the known labels are the topics), and the 998 MultiClimate frames' transcript vectors (MiniLM on
OpenVINO; the known labels are the 35 videos). Arms: ``umap+hdbscan`` (connote's default: UMAP 5
components x 15 neighbours, HDBSCAN with the default min cluster size for n; connote.fitting.fit) and
``evoc`` (connote.evoc.EVoCClusterer, defaults; its most persistent layer, and the best layer against
the truth). Each arm and seed (42, 48) runs in its own process, arms interleaved, so that peak memory
is per arm. Reported: wall and CPU seconds, peak resident memory, the load average before and after,
ARI to the known labels, ARI between the two seeds (stability); a million projected from the largest
size by n log n.

Writes benchmarks/results/evoc_scale.json and .md.
"""

from __future__ import annotations

import argparse
import csv
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
SEEDS = (42, 48)
ARMS = ("umap+hdbscan", "evoc")


def generated(n: int, seed: int = 0, topics: int = 50, dim: int = 384):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, topics, n)
    centres = rng.normal(0, 1, (topics, dim))
    X = centres[truth] + rng.normal(0, 1.1, (n, dim))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return X.astype(np.float32), truth


def frames(cache: Path):
    """The frames' transcript vectors (MiniLM) and video ids, embedded once into ``cache``."""
    if not (cache / "X.npy").is_file():
        from connote import registry

        base = Path(os.environ.get("CONNOTE_SHARED") or HERE.parent.parent / "shared")
        if not (base / "datasets").is_dir():
            base = Path("/work/shared")
        with open(
            base / "datasets" / "multiclimate_frames" / "labels.csv", newline="", encoding="utf-8"
        ) as fh:
            rows = list(csv.DictReader(fh))
        texts = [f"{r['label']}. {r['transcript']}" for r in rows]
        vids = sorted({r["video_id"] for r in rows})
        X = registry.text_embedder("minilm", runtime="openvino").embed_texts(texts)
        cache.mkdir(parents=True, exist_ok=True)
        np.save(cache / "X.npy", X)
        np.save(cache / "y.npy", np.array([vids.index(r["video_id"]) for r in rows]))
    return np.load(cache / "X.npy"), np.load(cache / "y.npy")


class RssPeak:
    """The most resident memory above the start, sampled every 20 ms from /proc/self/statm (what the
    fit itself adds; the process's peak also holds the libraries)."""

    def __init__(self):
        import threading

        self.page = os.sysconf("SC_PAGE_SIZE")
        self.start = self.peak = self.now()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def now(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self.page

    def watch(self) -> None:
        while not self.done.wait(0.02):
            self.peak = max(self.peak, self.now())

    def stop(self) -> float:
        self.done.set()
        self.thread.join()
        return max(self.peak, self.now()) - self.start >> 20


def one(arm: str, data: str, seed: int) -> dict:
    """One arm on one data set with one seed (run in a child process)."""
    import warnings

    warnings.filterwarnings("ignore")
    X = np.load(data)
    import evoc  # noqa: F401 - imports (and numba's cache) outside the timing
    import hdbscan  # noqa: F401
    import umap  # noqa: F401

    rss = RssPeak()
    t, c = time.perf_counter(), time.process_time()
    if arm == "evoc":
        from connote.evoc import EVoCClusterer

        est = EVoCClusterer(random_state=seed).fit(X)
        layers = [layer.tolist() for layer in est.layers_]
        best = int(np.argmax(est.persistence_))
    else:
        from connote import fitting, registry
        from connote.clustering import HDBSCANClusterer
        from connote.defaults import DEFAULT_REDUCE, default_min_cluster_size

        fit = fitting.fit(
            X,
            registry.reducer(DEFAULT_REDUCE, seed=seed),
            [HDBSCANClusterer(min_cluster_size=default_min_cluster_size(len(X)))],
        )
        layers, best = [fit.results[0][0].tolist()], 0
    return {
        "seconds": time.perf_counter() - t,
        "cpu_seconds": time.process_time() - c,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "fit_mb": rss.stop(),
        "layers": layers,
        "best": best,
    }


def ari(a, b) -> float:
    from sklearn.metrics import adjusted_rand_score

    return round(float(adjusted_rand_score(a, b)), 4)


def measure(name: str, X: np.ndarray, truth: np.ndarray, tmp: Path) -> dict:
    data = tmp / f"{name}.npy"
    np.save(data, X)
    got: dict = {arm: {} for arm in ARMS}
    for seed in SEEDS:
        for arm in ARMS:  # interleaved
            load0 = os.getloadavg()
            proc = subprocess.run(
                [sys.executable, __file__, "--one", arm, str(data), str(seed)], capture_output=True, text=True
            )
            if proc.returncode:
                raise SystemExit(proc.stderr[-3000:])
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            r["load_before"], r["load_after"] = (
                [round(x, 2) for x in load0],
                [round(x, 2) for x in os.getloadavg()],
            )
            got[arm][seed] = r
            print(name, arm, seed, round(r["seconds"], 1), "s", flush=True)
    out = {"n": len(X), "arms": {}}
    for arm in ARMS:
        runs = [got[arm][s] for s in SEEDS]
        picked = [np.array(r["layers"][r["best"]]) for r in runs]
        out["arms"][arm] = {
            "seconds": [round(r["seconds"], 1) for r in runs],
            "cpu_seconds": [round(r["cpu_seconds"], 1) for r in runs],
            "peak_mb": [round(r["peak_mb"]) for r in runs],
            "fit_mb": [r["fit_mb"] for r in runs],
            "load": [[r["load_before"], r["load_after"]] for r in runs],
            "clusters": [[int(len(set(layer) - {-1})) for layer in r["layers"]] for r in runs],
            "outlier_share": [round(float(np.mean(p == -1)), 3) for p in picked],
            "ari_truth": [ari(truth, p) for p in picked],
            "ari_truth_best_layer": [max(ari(truth, np.array(layer)) for layer in r["layers"]) for r in runs],
            "ari_seeds": ari(picked[0], picked[1]),
        }
    return out


def project(results: dict) -> dict:
    """Seconds at a million items from the largest generated size, scaled by n log n (a lower bound for
    both: neither's neighbour search is better than that)."""
    sizes = [r for k, r in results.items() if k.startswith("generated")]
    if not sizes:
        return {}
    big = max(sizes, key=lambda r: r["n"])
    f = (1e6 * np.log(1e6)) / (big["n"] * np.log(big["n"]))
    return {
        arm: {
            "seconds": round(float(np.mean(a["seconds"])) * f),
            "fit_gb": round(float(np.mean(a["fit_mb"])) * 1e6 / big["n"] / 1024, 1),
            "from_n": big["n"],
        }
        for arm, a in big["arms"].items()
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000])
    ap.add_argument("--no-frames", action="store_true")
    ap.add_argument("--one", nargs=3, metavar=("ARM", "DATA", "SEED"), help=argparse.SUPPRESS)
    ap.add_argument("--out", default=str(HERE / "results" / "evoc_scale"))
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one[0], args.one[1], int(args.one[2]))))
        return
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_frames:
            X, y = frames(Path(tmp) / "frames")
            results["MultiClimate frames (transcripts, MiniLM)"] = measure("frames", X, y, Path(tmp))
        for n in args.sizes:
            X, y = generated(n)
            results[f"generated {n}"] = measure(f"gen{n}", X, y, Path(tmp))
    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s) shared with other engineers' work, "
        f"Python {platform.python_version()}",
        "seeds": SEEDS,
        "million_projected": project(results),
    }
    Path(args.out + ".json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    Path(args.out + ".md").write_text(markdown(meta, results))


def markdown(meta: dict, results: dict) -> str:
    lines = [
        "# EVoC beside UMAP + HDBSCAN (S3 + S4)",
        "",
        f"`python benchmarks/evoc_scale.py` — machine: {meta['machine']}. Seeds {meta['seeds']}, each arm and",
        "seed in its own process, arms interleaved. ARI to the known labels is of the layer EVoC picks (the",
        "most persistent) and, in brackets, of its best layer; clusters per layer finest first.",
        "",
        "| data | arm | wall s | CPU s | fit MB (process peak MB) | load before/after | clusters | outliers | ARI truth "
        "| ARI seeds |",
        "|---|---|---|---|---|---|---|---|---|---:|",
    ]
    for name, r in results.items():
        for arm, a in r["arms"].items():
            lines.append(
                f"| {name} | {arm} | {a['seconds']} | {a['cpu_seconds']} | {a['fit_mb']} ({a['peak_mb']}) | {a['load']} | "
                f"{a['clusters']} | {a['outlier_share']} | {a['ari_truth']} ({a['ari_truth_best_layer']}) | "
                f"{a['ari_seeds']} |"
            )
    if meta["million_projected"]:
        lines += [
            "",
            "A million items, projected from the largest size: seconds by n log n (a lower bound), the fit's",
            "memory linearly:",
            "",
        ]
        lines += [
            f"* {arm}: {p['seconds']} s, {p['fit_gb']} GB (from {p['from_n']})"
            for arm, p in meta["million_projected"].items()
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
