"""Time and memory of the derived-run math on synthetic embeddings: outliers assigned by centroid, soft
membership and nearest neighbours, and merge suggestions (centroid similarities, closest member pairs).

Synthetic data: ``n`` unit vectors of ``dim`` dimensions in ``k`` Gaussian clusters, ``outliers`` of them
spread uniformly; the similarities are computed in blocks of rows (``derive.BLOCK``), so memory stays
bounded whatever ``n`` is, and the time grows with outliers x members (knn, soft) or outliers x clusters
(centroid).

    python benchmarks/derive.py [--n 20000] [--dim 384] [--k 30] [--outliers 0.4] [--out DIR]

Writes derive.json and derive.md to benchmarks/results/ (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import numpy as np

from connote import derive

RESULTS = Path(__file__).parent / "results"


def data(n: int, dim: int, k: int, share: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = derive.unit(rng.normal(size=(k, dim)))
    labels = rng.integers(0, k, n)
    X = centres[labels] + rng.normal(scale=0.6 / np.sqrt(dim), size=(n, dim)) * 4
    out = rng.random(n) < share
    X[out] = rng.normal(size=(int(out.sum()), dim))
    labels[out] = -1
    return X.astype(np.float32), labels


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(n: int, dim: int, k: int, share: float) -> dict:
    X, labels = data(n, dim, k, share)
    out = labels == -1
    res = {
        "n": n,
        "dim": dim,
        "clusters": k,
        "outliers": int(out.sum()),
        "block": derive.BLOCK,
        "timings": {},
    }
    base = rss_mb()
    for method in derive.METHODS:
        t0, c0 = time.perf_counter(), time.process_time()
        derive.assign(X[out], X[~out], labels[~out], method)
        res["timings"][f"assign {method}"] = [
            round(time.perf_counter() - t0, 3),
            round(time.process_time() - c0, 3),
        ]
    t0, c0 = time.perf_counter(), time.process_time()
    clusters, C = derive.centroids(X, labels)
    S = derive.similarity_matrix(C)
    np.fill_diagonal(S, -1)
    i, j = np.unravel_index(int(np.argmax(S)), S.shape)
    mi, mj = np.flatnonzero(labels == clusters[i]), np.flatnonzero(labels == clusters[j])
    derive.nearest_pairs(X[mi], X[mj], 3)
    res["timings"]["suggest (centroids + closest pairs of the top pair)"] = [
        round(time.perf_counter() - t0, 3),
        round(time.process_time() - c0, 3),
    ]
    res["peak_rss_mb_above_data"] = round(rss_mb() - base, 1)
    res["cpus"] = os.cpu_count()
    return res


def markdown(r: dict) -> str:
    lines = [
        "# Derived runs: assigning outliers and suggesting merges",
        "",
        f"{r['n']} vectors x {r['dim']} dimensions, {r['clusters']} clusters, {r['outliers']} outliers; "
        f"similarities in blocks of {r['block']:,} entries.",
        "",
        "| step | wall seconds | CPU seconds |",
        "|---|---|---|",
        *[f"| {k} | {w} | {c} |" for k, (w, c) in r["timings"].items()],
        "",
        f"On {r['cpus']} CPU(s); wall time above CPU time means the machine was busy with other work.",
        "",
        f"Peak resident memory above the data: {r['peak_rss_mb_above_data']} MB.",
        "",
        "Reproduce: `python benchmarks/derive.py`",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--k", type=int, default=30)
    ap.add_argument("--outliers", type=float, default=0.4)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    r = measure(args.n, args.dim, args.k, args.outliers)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "derive.json").write_text(json.dumps(r, indent=2) + "\n")
    (args.out / "derive.md").write_text(markdown(r))
    print(markdown(r))


if __name__ == "__main__":
    main()
