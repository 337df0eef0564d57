"""Benchmark: MiniLM on OpenVINO with one stream on all threads (connote's default) against one stream per
core (each batch on one core, several batches at once), interleaved, on the texts of benchmarks/embed_text.py.

    python benchmarks/embed_text_streams.py --generated 2000 --rounds 3

Each round embeds each text set once per arm, in calls of 256 texts as the embed runner makes them (no
study: the network, tokeniser and pooling only). Reported per arm and set: texts/s and CPU ms per text
(all threads), median over the rounds, and the load; the vectors of the two arms are compared.
Writes benchmarks/results/embed_text_streams.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
from embed_text import HERE, generated, transcripts


def embed(texts: list[str], streams: int) -> tuple[np.ndarray, float, float]:
    from connote.embedders.text import openvino_embed

    t, c = time.perf_counter(), time.process_time()
    out = np.concatenate(
        [openvino_embed(texts[i : i + 256], streams=streams) for i in range(0, len(texts), 256)]
    )
    return out, time.perf_counter() - t, time.process_time() - c


#: MiniLM's multiply-adds per token and layer outside attention: Q, K, V, output (4 x 384 x 384) and the
#: feed-forward (2 x 384 x 1536); attention adds 2 x tokens x 384
HIDDEN, FFN, LAYERS = 384, 1536, 6


def flops_per_text(texts: list[str]) -> float:
    """Float operations of the network for the average text (padding not counted)."""
    from connote.embedders.text import _tokenizer

    tok = _tokenizer()
    lengths = np.array([sum(e.attention_mask) for e in tok.encode_batch([t.strip() for t in texts])])
    per_token = 4 * HIDDEN * HIDDEN + 2 * HIDDEN * FFN
    return float(np.mean(2 * LAYERS * lengths * (per_token + 2 * lengths * HIDDEN)))


def gemm_rate(rows: int = 4096) -> float:
    """GFLOP per CPU second of a float32 matrix product shaped like MiniLM's feed-forward, by numpy's BLAS:
    about the most the CPU gives in float32."""
    from threadpoolctl import threadpool_limits

    a, b = np.ones((rows, HIDDEN), np.float32), np.ones((HIDDEN, FFN), np.float32)
    with threadpool_limits(1):  # one thread: no time spent waiting on another
        a @ b
        c = time.process_time()
        for _ in range(10):
            a @ b
        seconds = time.process_time() - c
    return 10 * 2 * rows * HIDDEN * FFN / seconds / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generated", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "results" / "embed_text_streams"))
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    cores = os.cpu_count() or 1
    arms = {"1 stream (all cores)": 1, f"{cores} streams (one per core)": cores}
    sets = {
        "MultiClimate transcripts": transcripts(),
        f"{args.generated} generated paragraphs": generated(args.generated),
    }
    for streams in arms.values():
        embed(["warm up"] * 8, streams)
    results: dict = {"sets": {}, "load_before": [round(x, 2) for x in os.getloadavg()]}
    for name, texts in sets.items():
        runs: dict = {arm: [] for arm in arms}
        vectors = {}
        for _ in range(args.rounds):
            for arm, streams in arms.items():
                vectors[arm], wall, cpu = embed(texts, streams)
                runs[arm].append((len(texts) / wall, 1000 * cpu / len(texts)))
                print(name, arm, runs[arm][-1], os.getloadavg(), flush=True)
        a, b = vectors.values()
        flops = flops_per_text(texts)
        results["sets"][name] = {
            arm: {
                "texts_per_s": round(statistics.median(r[0] for r in got), 1),
                "cpu_ms_per_text": round(statistics.median(r[1] for r in got), 2),
                "rounds": [[round(x, 2) for x in r] for r in got],
            }
            for arm, got in runs.items()
        } | {
            "min_cosine_between_arms": float(np.sum(a * b, axis=1).min()),
            "gflop_per_text": round(flops / 1e9, 3),
        }
        for arm in arms:
            o = results["sets"][name][arm]
            o["gflop_per_cpu_s"] = round(flops / 1e9 / (o["cpu_ms_per_text"] / 1000), 1)
    results["numpy_gemm_gflop_per_cpu_s"] = round(gemm_rate(), 1)
    results["load_after"] = [round(x, 2) for x in os.getloadavg()]
    results["machine"] = (
        f"{platform.machine()}, {os.cpu_count()} CPU(s) shared, Python {platform.python_version()}"
    )
    Path(args.out + ".json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# MiniLM on OpenVINO: one stream against one stream per core",
        "",
        f"`python benchmarks/embed_text_streams.py --generated {args.generated} --rounds {args.rounds}`. "
        f"Machine: {results['machine']}. Load before {results['load_before']}, after {results['load_after']}.",
        "",
        f"numpy's float32 matrix product (4096 x 384 by 384 x 1536, one thread): {results['numpy_gemm_gflop_per_cpu_s']}"
        " GFLOP per CPU second.",
        "",
        "| texts | arm | texts/s (median) | CPU ms/text (median) | GFLOP per CPU s | rounds (texts/s, CPU ms) |",
        "|---|---|---:|---:|---:|---|",
    ]
    for name, out in results["sets"].items():
        for arm in arms:
            o = out[arm]
            lines.append(
                f"| {name} | {arm} | {o['texts_per_s']} | {o['cpu_ms_per_text']} | {o['gflop_per_cpu_s']} | "
                f"{o['rounds']} |"
            )
    lines += [
        "",
        *(
            f"* {n}: smallest cosine between the arms' vectors {o['min_cosine_between_arms']:.7f}"
            for n, o in results["sets"].items()
        ),
    ]
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
