"""How connote's steps grow with the collection: wall time and peak memory of each stage on generated
studies of 10,000 and 100,000 small images, with the local and (optionally) the Ray executor, the growth
exponent of each stage between the sizes, and a projection to 1,000,000 images from it.

Every stage is one real ``python -m connote ...`` process (its peak memory is its maximum resident set,
children included, from wait4), descriptions come from the loopback fake OpenAI server (its own process,
not counted; ``--varied-texts``: a near-unique paragraph per image, so ``embed`` embeds about one text per
image), embeddings from the packaged MiniLM. Stages: ``init`` (scan, check and hash the images),
``describe`` (API describer, --concurrency 16), ``embed`` (MiniLM), ``vectors`` (the vector store with one
384-d vector per image: append all, then read all back with checksums), ``cluster`` (PCA 10 + HDBSCAN),
``sweep`` (UMAP 5x15 and PCA 5/10, two min cluster sizes; ``--seeds``), ``status``.

The Ray executor runs on a two-node Ray cluster on this machine (``ray start --head`` and a second
``ray start --address``, one CPU each) inside a loopback-only network namespace with its own process
tree (``unshare -n -p``); besides the driver's wait4 peak, a Ray stage records ``cluster_peak_mb``: the
largest sum of the resident memory of every process in the namespace (raylets, workers, the driver)
sampled every half second, less what the idle cluster held before the stage.

    python benchmarks/scale.py --sizes 10000,100000 --seeds 42      # local executor
    python benchmarks/scale.py --sizes 2000,10000 --executors ray   # Ray (two nodes, loopback only)

Results: benchmarks/results/scale.json and scale.md (merged with earlier results for other sizes).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
RAY_PORT = 6395
GRID = """name = "scale"
reference_n = 11873
min_cluster_size = [50, 100]
[umap]
components = [5]
neighbors = [15]
metric = "cosine"
[pca]
components = [5, 10]
"""


def env() -> dict:
    e = dict(os.environ)
    e.setdefault("NUMBA_CACHE_DIR", "/tmp/numba_cache")
    e.update(
        TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", OPENAI_API_KEY="sk-bench", PYTHONUNBUFFERED="1"
    )
    src = str(HERE.parent / "src")
    e["PYTHONPATH"] = os.pathsep.join([src, e.get("PYTHONPATH", "")])
    return e


def make_images(folder: Path, n: int) -> None:
    """``n`` distinct 32x24 PNGs (colour from the index, a few index bits as pixels), in folders of 1000."""
    from PIL import Image

    marker = folder / f".complete-{n}"
    if marker.exists():
        return
    for i in range(n):
        sub = folder / f"{i // 1000:04d}"
        if i % 1000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"img_{i:07d}.png"
        if path.exists():  # an interrupted generation resumes
            continue
        img = Image.new("RGB", (32, 24), ((i * 37) % 256, (i * 91 // 7) % 256, (i * 13) % 256))
        px = img.load()
        for b in range(20):
            if i >> b & 1:
                px[b % 32, 20 + b // 32] = (255, 255, 255)
        img.save(path, optimize=False, compress_level=1)
    marker.touch()


def namespace_rss_mb() -> float:
    """Resident memory of every process this /proc shows (inside the benchmark's own pid namespace:
    the Ray cluster, its workers and the driver), in MB."""
    total = 0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
        except (OSError, ValueError):
            continue
    return total / 1024


def timed(args: list[str], log: Path, timeout: float = 7200, sample: bool = False) -> dict:
    """Run one stage; wall seconds and peak RSS (MB) of the process and its waited-for children (and,
    with ``sample``, the peak of every process in this pid namespace above what it held before)."""
    base = namespace_rss_mb() if sample else 0.0
    peak = base
    t = time.perf_counter()
    with open(log, "ab") as fh:
        fh.write(f"\n$ {' '.join(args)}\n".encode())
        fh.flush()
        proc = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, env=env())
        deadline = time.time() + timeout
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.time() > deadline:
                proc.kill()
            if sample:
                peak = max(peak, namespace_rss_mb())
            time.sleep(0.5 if sample else 0.2)
    rc = os.waitstatus_to_exitcode(status)
    proc.returncode = rc
    out = {"seconds": round(time.perf_counter() - t, 2), "peak_mb": round(ru.ru_maxrss / 1024, 1), "rc": rc}
    if sample:
        out["cluster_peak_mb"] = round(peak - base, 1)
    return out


VECTOR_STAGE = """
import sys, time, numpy as np
from connote.study import Study
n = int(sys.argv[2]); study = Study.open(sys.argv[1]); name = "text:bench-store"
study.vectors.delete(name)
rng = np.random.default_rng(0)
keys = [f"{i:064x}" for i in range(n)]
t = time.perf_counter()
for i in range(0, n, 5000):
    study.save_vectors(name, keys[i:i + 5000], rng.standard_normal((len(keys[i:i + 5000]), 384)).astype(np.float32))
t_write = time.perf_counter() - t
t = time.perf_counter(); X = study.load_vectors(name, keys[::-1]); t_read = time.perf_counter() - t
t = time.perf_counter(); c = study.vectors.check(name, keys); t_check = time.perf_counter() - t
assert X.shape == (n, 384) and len(c.good) == n
print(f"VECTORS write={t_write:.2f} read={t_read:.2f} check={t_check:.2f} bytes={study.vectors.disk_bytes()}")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_size(n: int, executor: str, work: Path, done=None, seeds: str | None = None) -> dict:
    """All stages at size ``n``; ``done(partial result)`` after each (so an interrupted run keeps them)."""
    py = sys.executable
    images = work / f"images-{n}"
    make_images(images, n)
    study = work / f"study-{n}-{executor.split(':')[0]}"
    shutil.rmtree(study, ignore_errors=True)
    log = work / f"log-{n}-{executor.split(':')[0]}.txt"
    port = free_port()
    server = subprocess.Popen(
        [py, "-m", "connote.testing.fake_openai", "--port", str(port), "--varied-texts"],
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    grid = work / "grid.toml"
    grid.write_text(GRID)
    ex = ["--executor", executor] if executor != "local" else []
    stages: dict[str, dict] = {}
    out = {"n": n, "executor": executor.split(":")[0], "stages": stages, "texts": "varied"}
    if seeds:
        out["seeds"] = seeds
    out["load_before"] = os.getloadavg()

    def timed_stage(name, args):
        stages[name] = timed(args, log, sample=executor != "local")
        stages[name]["load"] = [round(x, 2) for x in os.getloadavg()]
        if done:
            done(out)

    try:
        time.sleep(2)
        c = [py, "-m", "connote"]
        timed_stage("init", [*c, "init", str(study), "--images", str(images)])
        api = ["--describer", "openai:gpt-4o-mini", "--base-url", f"http://127.0.0.1:{port}/v1"]
        timed_stage("describe", [*c, "describe", str(study), *api, "--concurrency", "16", "-q", *ex])
        timed_stage("embed", [*c, "embed", str(study), "-q", *ex])
        if executor == "local":
            timed_stage("vectors", [py, "-c", VECTOR_STAGE, str(study), str(n)])
            mcs = str(max(5, n // 200))
            timed_stage(
                "cluster",
                [*c, "cluster", str(study), "--reduce", "pca:components=10", "--min-cluster-size", mcs],
            )
        seed_args = ["--seeds", seeds] if seeds else []
        timed_stage("sweep", [*c, "sweep", str(study), "--grid", str(grid), *seed_args, "-q", *ex])
        timed_stage("status", [*c, "status", str(study)])
    finally:
        server.kill()
        server.wait()
    text = log.read_text(errors="replace")
    for line in text.splitlines():
        if line.startswith("VECTORS "):
            stages["vectors"]["detail"] = dict(kv.split("=") for kv in line.split()[1:])
    du = sum(p.stat().st_size for p in study.rglob("*") if p.is_file())
    out["study_mb"] = round(du / 2**20, 1)
    return out


def memory(stage: dict) -> float:
    """A stage's peak memory: the driver's (wait4), or on Ray the larger of it and the whole cluster's."""
    return max(stage["peak_mb"], stage.get("cluster_peak_mb", 0))


def growth(results: list[dict]) -> dict:
    """Per executor and stage: exponent b of t ~ n^b (and of memory) between the two largest sizes, and
    the projection to 1,000,000 images."""
    out: dict = {}
    for ex in sorted({r["executor"] for r in results}):
        rs = sorted((r for r in results if r["executor"] == ex), key=lambda r: r["n"])
        if len(rs) < 2:
            continue
        a, b = rs[-2], rs[-1]
        for stage in b["stages"]:
            if stage not in a["stages"]:
                continue
            sa, sb = a["stages"][stage], b["stages"][stage]
            ratio = math.log(b["n"] / a["n"])
            bt = math.log(max(sb["seconds"], 0.01) / max(sa["seconds"], 0.01)) / ratio
            ma, mb = memory(sa), memory(sb)
            bm = math.log(max(mb, 1) / max(ma, 1)) / ratio
            k = 1_000_000 / b["n"]
            out.setdefault(ex, {})[stage] = {
                "sizes": [a["n"], b["n"]],
                "time_exponent": round(bt, 2),
                "memory_exponent": round(bm, 2),
                "projected_1M_s": round(sb["seconds"] * k ** max(bt, 0), 0),
                "projected_1M_peak_mb": round(mb * k ** max(bm, 0), 0),
            }
    return out


NOTES = [
    "The fake server writes a near-unique paragraph per image (`--varied-texts`: composed from pools of "
    "sentence fragments, about 50 million combinations), so `embed` computes about one MiniLM vector per "
    "image (9,990 distinct texts at 10,000 images; 99,747 at 100,000, where two generated images are "
    "identical: 99,999 distinct images).",
    "`sweep` ran with `--seeds 42` (one seed) at every size: UMAP 5 x 15 (exact kNN graph at 10,000, "
    "NN-descent at 100,000) and PCA 5 / 10, two min cluster sizes each: 6 runs. The paper's three seeds "
    "would take about three times the reductions.",
    "`vectors` measures the vector store with one 384-d vector per image (append all, read all back in "
    "another order, verify every checksum).",
    "Peak MB is wait4's: the largest resident set of the stage's process and its waited-for children. On "
    "Ray, `cluster MB` is the peak of the summed resident memory of every process of the Ray cluster "
    "(head, second node, workers, driver) above the idle cluster's, sampled every 0.5 s; shared pages "
    "(libraries, the object store) count once per process, so it over-counts; Ray's growth uses the "
    "larger of the two.",
    "Load is the 1-minute load average of the machine when the stage ended (2 cores). Exponents from two "
    "sizes on a shared machine are rough; the 1M figures extrapolate them (a negative exponent is "
    "projected as flat).",
]


def write(results: list[dict]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    g = growth(results)
    (RESULTS / "scale.json").write_text(json.dumps({"results": results, "growth": g}, indent=1))
    lines = [
        "# benchmarks/scale.py",
        "",
        f"Machine: {os.cpu_count()} cores, shared; Python {sys.version.split()[0]}. Wall seconds and peak "
        "resident MB per stage (one `python -m connote` process each).",
        "",
        "What ran: "
        + "; ".join(
            f"{r['n']:,} images, {r['executor']} executor"
            + (f", sweep --seeds {r['seeds']}" if r.get("seeds") else ", sweep with the default seeds")
            for r in sorted(results, key=lambda r: (r["executor"], r["n"]))
        )
        + ".",
        "",
        "| n | executor | stage | seconds | peak MB | cluster MB | load |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: (r["executor"], r["n"])):
        for stage, s in r["stages"].items():
            rc = "" if s.get("rc", 0) == 0 else f" (exit {s['rc']})"
            cl = s.get("cluster_peak_mb", "")
            load = s.get("load", [""])[0]
            lines.append(
                f"| {r['n']:,} | {r['executor']} | {stage} | {s['seconds']}{rc} | {s['peak_mb']} | {cl} | {load} |"
            )
    lines += [
        "",
        "Growth between the two largest sizes of each executor (t ~ n^b) and a projection to 1,000,000:",
        "",
    ]
    lines += [
        "| executor | stage | sizes | time b | memory b | 1M seconds | 1M peak MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for ex, stages in g.items():
        for stage, v in stages.items():
            sizes = " -> ".join(f"{n:,}" for n in v.get("sizes", []))
            lines.append(
                f"| {ex} | {stage} | {sizes} | {v['time_exponent']} | {v['memory_exponent']} | "
                f"{v['projected_1M_s']:,.0f} | {v['projected_1M_peak_mb']:,.0f} |"
            )
    lines += ["", "Notes:", ""] + [f"- {n}" for n in NOTES]
    lines += [f"- {r['n']:,} {r['executor']}: {note}" for r in results for note in r.get("notes", [])]
    (RESULTS / "scale.md").write_text("\n".join(lines) + "\n")


def merged(results: list[dict], r: dict) -> list[dict]:
    return [x for x in results if (x["n"], x["executor"]) != (r["n"], r["executor"])] + [r]


def _keep(before: list[dict], r: dict) -> None:
    write(merged(before, r))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--executors", default="local")
    ap.add_argument("--work", default="/tmp/connote-scale")
    ap.add_argument("--seeds", help="the sweep's seeds (e.g. 42: one seed); default: the sweep's default")
    ap.add_argument("--in-namespace", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    executors = args.executors.split(",")
    old = (
        json.loads((RESULTS / "scale.json").read_text())["results"]
        if (RESULTS / "scale.json").exists()
        else []
    )
    results = [r for r in old if r.get("texts") == "varied"]  # earlier runs embedded 800 template texts
    for ex in executors:
        if ex == "ray" and not args.in_namespace:
            # Ray binds the machine's address: run inside a loopback-only namespace with its own processes
            # (and its own process tree, so that everything Ray started there ends with it); two nodes
            # of one CPU each, as tests/test_ray.py starts them; a start is tried up to three times
            ray = Path(sys.executable).with_name("ray")
            opts = "--num-cpus=1 --disable-usage-stats"
            seeds = f"--seeds {args.seeds}" if args.seeds else ""
            script = f"""
ip link set lo up
start() {{ for i in 1 2 3; do "$@" && return 0; {ray} stop --force >/dev/null 2>&1; sleep 2; done; return 1; }}
start {ray} start --head --port={RAY_PORT} --include-dashboard=false {opts} --temp-dir=/tmp/crs >>{work}/ray-head.log 2>&1 || exit 3
start {ray} start --address=127.0.0.1:{RAY_PORT} {opts} >>{work}/ray-node.log 2>&1 || exit 4
exec {sys.executable} {__file__} --sizes {args.sizes} --executors ray:127.0.0.1:{RAY_PORT} --work {work} {seeds} --in-namespace
"""
            subprocess.run(
                ["unshare", "-n", "-p", "-f", "--kill-child", "--mount-proc", "bash", "-c", script],
                check=True,
                env=env(),
            )
            results = json.loads((RESULTS / "scale.json").read_text())["results"]
            continue
        for n in sizes:
            r = run_size(n, ex, work, done=functools.partial(_keep, list(results)), seeds=args.seeds)
            results = merged(results, r)
            write(results)
            print(json.dumps(r), flush=True)
    write(results)


if __name__ == "__main__":
    main()
