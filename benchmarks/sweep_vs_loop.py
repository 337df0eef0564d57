"""Benchmark: `connote sweep` from the command line against the loop a competent user writes, start-up included.

    python benchmarks/sweep_vs_loop.py --data frames          # the MultiClimate frames' transcripts (961)
    python benchmarks/sweep_vs_loop.py --data 10000           # 10,000 generated items (benchmarks/sweep.py's)
    python benchmarks/sweep_vs_loop.py --data 1000 --cold     # also both arms with an empty numba cache

The bar (issue #24): one umap-learn reduction per (components, neighbours) setting and seed, reused for
every min cluster size, and hdbscan per size; PCA likewise with scikit-learn. Both arms get the same
float32 vectors, the paper's grid as connote fits it to the collection (`connote.sweep_grid.plan`: min cluster
sizes scaled below 11,873 items), HDBSCAN's 'leaf' selection (connote's default, given to hdbscan so that
the labels can be compared), cosine UMAP, and seeds 42, 48 and 112.

Each arm is one fresh process timed from the outside, from its start to its exit: interpreter start,
imports, numba loading (or compiling) its code, the work and writing the results.

* connote: ``python -m connote sweep STUDY --grid paper --seeds 42,48,112 --quiet --json`` on a study that
  holds the vectors already (made before the clock starts; the frames' MiniLM vectors are computed once
  and kept in .cache/sweep_vs_loop/).
* plain: this file with ``--plain``: imports numpy, umap, hdbscan and scikit-learn only, loads the
  vectors, runs the loop, saves the labels.

numba: "warm" means each arm's own NUMBA_CACHE_DIR was filled by an earlier run of that arm. umap-learn
marks only some of its functions ``cache=True``; the others compile again in every process, which the
plain arm pays each time (connote switches caching on for them: connote.jit.import_umap). "cold"
(``--cold``) runs each arm once more with an empty cache directory: what the very first run on a machine
costs.

Writes benchmarks/results/sweep_vs_loop-DATA.json and .md: wall times, the ratio, the peak memory of each
arm's process tree (sampled every 0.1 s), the machine and its load, where connote's time goes, and the
agreement (adjusted Rand index) of the two arms' labels per setting, beside the plain loop's own
seed-to-seed agreement.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CACHE = ROOT / ".cache" / "sweep_vs_loop"
SEEDS = (42, 48, 112)
SELECTION = "leaf"


# ---------------------------------------------------------------------------------------------- plain arm
def plain(X_path: str, plan_json: str, out: str) -> None:
    """The loop a competent user writes (the arm's whole process: nothing of connote is imported)."""
    t0 = time.perf_counter()
    import hdbscan
    import umap
    from sklearn.decomposition import PCA

    t_import = time.perf_counter() - t0
    X = np.load(X_path)
    p = json.loads(plan_json)
    labels, reduce_s, cluster_s, first_s = {}, 0.0, 0.0, None
    for seed in p["seeds"]:
        for spec in p["specs"]:
            t = time.perf_counter()
            kind, _, arg = spec.partition(":")
            opts = dict(o.split("=") for o in arg.split(","))
            if kind == "umap":
                Y = umap.UMAP(
                    n_components=int(opts["components"]),
                    n_neighbors=int(opts["neighbors"]),
                    metric="cosine",
                    random_state=seed,
                ).fit_transform(X)
            elif "variance" in opts:
                Y = PCA(
                    n_components=float(opts["variance"]), svd_solver="full", random_state=seed
                ).fit_transform(X)
            else:
                Y = PCA(n_components=int(opts["components"]), random_state=seed).fit_transform(X)
            Y = np.asarray(Y, dtype=np.float64)
            reduce_s += time.perf_counter() - t
            first_s = time.perf_counter() - t if first_s is None else first_s
            t = time.perf_counter()
            for m in p["sizes"]:
                clusterer = hdbscan.HDBSCAN(min_cluster_size=m, cluster_selection_method=p["selection"])
                labels[f"{spec}|{m}|{seed}"] = clusterer.fit_predict(Y)
            cluster_s += time.perf_counter() - t
    np.savez(out, **labels)
    times = {"import_s": t_import, "reduce_s": reduce_s, "cluster_s": cluster_s, "first_reduce_s": first_s}
    print(json.dumps({k: round(v, 2) for k, v in times.items()}))


# ---------------------------------------------------------------------------------------------- data
def frames_texts() -> tuple[list[str], list[str]]:
    """(names, transcripts) of the MultiClimate frames that have a transcript, as codes_multiclimate.py."""
    sys.path.insert(0, str(HERE))
    from codes_multiclimate import frames

    with (frames() / "labels.csv").open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["transcript"].strip()]
    return [Path(r["filename"]).name for r in rows], [r["transcript"] for r in rows]


def frames_vectors(texts: list[str]) -> np.ndarray:
    """MiniLM vectors of ``texts`` (connote's default text embedder), computed once and kept in CACHE."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"frames-minilm-{digest}.npy"
    if path.is_file():
        return np.load(path)
    from connote import steps
    from connote.features import features
    from connote.study import Study

    print(f"[{time.strftime('%H:%M:%S')}] embedding {len(texts)} transcripts with MiniLM (once)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        study = Study.create(Path(tmp) / "s")
        set_id = study.description_set("t", "imported", None, None, {})
        for i, text in enumerate(texts):
            study.put_description(set_id, f"{i:064x}", text)
        steps.embed(study, "minilm", progress=False)
        X = features(study, "text").X  # rows in sha order = text order
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, X)
    return X


def dataset(data: str) -> tuple[str, list[str], np.ndarray]:
    """(description, texts, vectors) for 'frames' or a number of generated items."""
    if data == "frames":
        names, texts = frames_texts()
        return "MultiClimate frames' transcripts (frames with one), MiniLM", texts, frames_vectors(texts)
    sys.path.insert(0, str(HERE))
    from sweep import synthetic

    n = int(data)
    X, _ = synthetic(n)
    return (
        f"{n} generated items (benchmarks/sweep.py: 30 groups, 384 dims)",
        [f"item {i}" for i in range(n)],
        X,
    )


def make_study(path: Path, texts: list[str], X: np.ndarray):
    """A study holding the texts as one description set and their vectors as connote's MiniLM's."""
    from connote.study import Study, text_key

    study = Study.create(path)
    set_id = study.description_set("texts", "imported", None, None, {})
    keys, rows = {}, []
    for i, (text, v) in enumerate(zip(texts, X)):
        study.put_description(set_id, f"{i:064x}", text)
        if text_key(text) not in keys:
            keys[text_key(text)] = len(rows)
            rows.append(v)
    study.save_vectors("text:minilm", list(keys), np.asarray(rows, dtype=np.float32))
    study.register_embedder("text:minilm", "text", "minilm", X.shape[1], {})
    study.con.commit()
    return study


# ---------------------------------------------------------------------------------------------- timing
def timed(cmd: list[str], env: dict) -> dict:
    """Run ``cmd``; wall seconds from start to exit, peak summed RSS of its process tree, its stdout."""
    import resource

    import psutil

    peak = 0
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out: dict = {}

    def read():
        out["stdout"], out["stderr"] = proc.communicate()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    with contextlib.suppress(psutil.Error):
        me = psutil.Process(proc.pid)
        while proc.poll() is None:
            total = 0
            for p in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
            peak = max(peak, total)
            time.sleep(0.1)
    reader.join()
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        sys.stderr.write(out["stderr"][-4000:])
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({proc.returncode})")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 1),  # user + system of the arm's processes, workers included
        "peak_mb": round(peak / 2**20, 1),
        "stdout": out["stdout"],
    }


@contextlib.contextmanager
def locked(path: str | None):
    """Hold the benchmark lock (flock) for one step, so that other benchmarks run between the arms and no
    two measurements ever overlap; nothing with no path."""
    if not path:
        yield
        return
    import fcntl

    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def arm_env(numba_dir: Path) -> dict:
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_dir), "PYTHONPATH": str(ROOT / "src")}
    env.pop("NUMBA_NUM_THREADS", None)
    return env


def run_connote(study_dir: Path, seeds, numba_dir: Path) -> dict:
    cmd = [sys.executable, "-m", "connote", "sweep", str(study_dir), "--grid", "paper"]
    cmd += ["--seeds", ",".join(map(str, seeds)), "--quiet", "--json"]
    r = timed(cmd, arm_env(numba_dir))
    res = json.loads(r.pop("stdout"))
    r.update(
        workers=res["workers"],
        reductions=res["reductions"],
        knn_graphs=res["knn_graphs"],
        runs=res["computed"],
        timings={k: round(v, 2) for k, v in res["timings"].items() if isinstance(v, float)},
        jobs=res["timings"].get("jobs", {}),
    )
    r["outside_sweep_work_s"] = round(
        r["wall_s"] - r["timings"].get("knn_s", 0) - r["timings"]["settings_s"], 2
    )
    r["run_ids"] = {f"{x['reduce']}|{x['min_cluster_size']}|{x['seed']}": x["run_id"] for x in res["runs"]}
    return r


def run_plain(X_path: Path, specs, sizes, seeds, numba_dir: Path, out: Path) -> dict:
    p = json.dumps({"specs": specs, "sizes": sizes, "seeds": list(seeds), "selection": SELECTION})
    cmd = [sys.executable, __file__, "--plain", str(X_path), p, str(out)]
    r = timed(cmd, arm_env(numba_dir))
    r["inside"] = json.loads(r.pop("stdout").strip().splitlines()[-1])
    return r


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# ---------------------------------------------------------------------------------------------- main
def measure(data: str, cold: bool, seeds, lock: str | None = None) -> dict:
    from connote.features import features
    from connote.study import Study
    from connote.sweep_grid import load_grid, plan

    what, texts, X = dataset(data)
    n = len(texts)
    p = plan(load_grid("paper"), n, X.shape[1])
    numba_connote, numba_plain = CACHE / "numba-connote", CACHE / "numba-plain"
    result: dict = {
        "data": what,
        "n": n,
        "dim": int(X.shape[1]),
        "grid": {"reduce": p.reduce_specs, "min_cluster_sizes": p.min_cluster_sizes, "notes": p.notes},
        "seeds": list(seeds),
        "selection": SELECTION,
        "machine": {
            "cores": os.cpu_count(),
            "cpu": _cpu(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "versions": _versions(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = tmp / "base"
        make_study(base, texts, X).close()
        with Study.open(base) as study:
            feats = features(study, "text")
            order = {sha: i for i, sha in enumerate(feats.shas)}
            X_path = tmp / "X.npy"
            np.save(X_path, feats.X)  # the very rows connote clusters, in its order

        def fresh(name: str) -> Path:
            shutil.copytree(base, tmp / name)
            return tmp / name

        def log(msg):
            print(f"[{time.strftime('%H:%M:%S')}] {msg} (load {load()[0]})", flush=True)

        # Warm each arm's numba cache (untimed): one small run of each arm.
        log("warming the numba caches")
        warm = tmp / "warm"
        small_texts = texts[: min(n, 300)]
        make_study(warm, small_texts, X[: len(small_texts)]).close()
        np.save(tmp / "Xs.npy", X[:4200])  # from 4,096 rows umap-learn uses NN-descent (pynndescent)
        with locked(lock):
            run_connote(warm, seeds[:1], numba_connote)
            run_plain(tmp / "Xs.npy", p.reduce_specs[:1], [10], seeds[:1], numba_plain, tmp / "warm.npz")

        arms: dict = {}
        order_of_arms = [("connote", "warm"), ("plain", "warm")]
        if cold:
            order_of_arms += [("connote", "cold"), ("plain", "cold")]
        for arm, numba in order_of_arms:
            ndir = (
                (numba_connote if arm == "connote" else numba_plain) if numba == "warm" else tmp / f"nc-{arm}"
            )
            study_dir = fresh(f"study-{arm}-{numba}")
            with locked(lock):
                before = load()
                log(f"{arm}, numba cache {numba}")
                r = (
                    run_connote(study_dir, seeds, ndir)
                    if arm == "connote"
                    else run_plain(
                        X_path, p.reduce_specs, p.min_cluster_sizes, seeds, ndir, tmp / "plain.npz"
                    )
                )
                r["load_before_after"] = [before, load()]
            if arm == "connote":
                with Study.open(study_dir) as study:
                    lab = {}
                    for key, run_id in r.pop("run_ids").items():
                        v = np.full(n, -2, dtype=int)
                        for sha, c in study.assignments(run_id).items():
                            v[order[sha]] = c
                        lab[key] = v
            else:
                lab = dict(np.load(tmp / "plain.npz"))
            log(f"{arm} {numba}: {r['wall_s']} s")
            arms[f"{arm}_{numba}"] = r
            if numba == "warm":
                result.setdefault("labels", {})[arm] = lab
    labels = result.pop("labels")
    result["arms"] = arms
    result["ratio_warm"] = round(arms["plain_warm"]["wall_s"] / arms["connote_warm"]["wall_s"], 2)
    if cold:
        result["ratio_cold"] = round(arms["plain_cold"]["wall_s"] / arms["connote_cold"]["wall_s"], 2)
        result["ratio_plain_cold_vs_connote_warm"] = round(
            arms["plain_cold"]["wall_s"] / arms["connote_warm"]["wall_s"], 2
        )

    result.update(agreement(labels, p.reduce_specs, p.min_cluster_sizes, seeds))
    return result


def agreement(labels: dict, specs, sizes, seeds) -> dict:
    """Per setting: ARI of connote vs plain (same seed, mean over seeds), and of each arm's seeds."""
    from sklearn.metrics import adjusted_rand_score

    def ari(a, b):
        return float(adjusted_rand_score(a, b))

    per = []
    for spec in specs:
        for m in sizes:
            keys = [f"{spec}|{m}|{s}" for s in seeds]
            c, q = [labels["connote"][k] for k in keys], [labels["plain"][k] for k in keys]
            pairs = [(i, j) for i in range(len(seeds)) for j in range(i + 1, len(seeds))]
            per.append(
                {
                    "reduce": spec,
                    "min_cluster_size": m,
                    "ari_connote_vs_plain": round(float(np.mean([ari(a, b) for a, b in zip(c, q)])), 4),
                    "ari_plain_between_seeds": round(float(np.mean([ari(q[i], q[j]) for i, j in pairs])), 4)
                    if pairs
                    else None,
                    "ari_connote_between_seeds": round(float(np.mean([ari(c[i], c[j]) for i, j in pairs])), 4)
                    if pairs
                    else None,
                    "clusters_connote": [int(len(set(x.tolist()) - {-1})) for x in c],
                    "clusters_plain": [int(len(set(x.tolist()) - {-1})) for x in q],
                    "outliers_connote": [int(np.sum(x == -1)) for x in c],
                    "outliers_plain": [int(np.sum(x == -1)) for x in q],
                }
            )
    out: dict = {"per_setting": per, "ari_mean": {}}
    for key in ("ari_connote_vs_plain", "ari_plain_between_seeds", "ari_connote_between_seeds"):
        vals = [r[key] for r in per if r[key] is not None]
        umap_vals = [r[key] for r in per if r[key] is not None and r["reduce"].startswith("umap")]
        out["ari_mean"][key] = {
            "all": round(float(np.mean(vals)), 4) if vals else None,
            "umap": round(float(np.mean(umap_vals)), 4) if umap_vals else None,
        }
    return out


def _cpu() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _versions() -> dict:
    from importlib.metadata import version

    return {p: version(p) for p in ("numpy", "numba", "umap-learn", "hdbscan", "scikit-learn")}


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--plain":
        plain(*sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="frames", help="frames (default) or a number of generated items")
    ap.add_argument("--seeds", default=",".join(map(str, SEEDS)))
    ap.add_argument("--cold", action="store_true", help="also run both arms with an empty numba cache")
    ap.add_argument(
        "--lock",
        help="a lock file (e.g. /work/wt/bench.lock) held for the warm-up and for each arm, not between",
    )
    ap.add_argument("--out", help="output stem (default benchmarks/results/sweep_vs_loop-DATA)")
    ap.add_argument("--render", metavar="JSON", help="only rewrite the .md next to an existing result .json")
    args = ap.parse_args()
    if args.render:
        path = Path(args.render)
        print(render(json.loads(path.read_text()), path.with_suffix("")))
        return
    seeds = tuple(int(s) for s in args.seeds.split(","))
    stem = Path(args.out) if args.out else HERE / "results" / f"sweep_vs_loop-{args.data}"
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result = {"started": started, **measure(args.data, args.cold, seeds, args.lock)}
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    print(render(result, stem))


def _arm_line(name: str, r: dict) -> str:
    b, a = r["load_before_after"]
    return f"| {name} | {r['wall_s']} | {r.get('cpu_s', '')} | {r['peak_mb']} | {b[0]} -> {a[0]} |"


def render(result: dict, stem: Path) -> str:
    arms, m = result["arms"], result["machine"]
    cw, pw = arms["connote_warm"], arms["plain_warm"]
    t = cw["timings"]
    lines = [
        f"# `connote sweep` vs the plain loop, start-up included: {result['data']} (n={result['n']})",
        "",
        f"- run: {result['started']}, one run of `python benchmarks/sweep_vs_loop.py --data ...`; machine: "
        f"{m['cores']} cores ({m['cpu']}), shared with other engineers' work, Python {m['python']}; "
        + ", ".join(f"{k} {v}" for k, v in result["versions"].items()),
        f"- grid: the paper's as connote fits it to {result['n']} items: {len(result['grid']['reduce'])} "
        f"reductions x min cluster size {'/'.join(map(str, result['grid']['min_cluster_sizes']))}, "
        f"seeds {', '.join(map(str, result['seeds']))}, HDBSCAN selection '{result['selection']}' in both arms "
        f"({len(result['per_setting']) * len(result['seeds'])} runs)",
        "- plain loop: one umap-learn (or scikit-learn PCA) reduction per setting and seed, reused for every "
        "min cluster size, hdbscan per size; its own process importing only numpy, umap, hdbscan, scikit-learn",
        "- connote: `python -m connote sweep STUDY --grid paper --seeds ... --quiet --json` on a study holding "
        "the vectors",
        "- wall time: each arm one fresh process timed from start to exit (interpreter, imports, numba, work, "
        "writing the results); memory: peak of the summed resident memory of the arm's process tree, sampled "
        "every 0.1 s; CPU: user + system seconds of the arm's processes (workers included); load: the machine's 1-minute load average before and after the arm (2 cores: above 2, "
        "other work competes with the arm)",
        "",
        "| arm | wall s | CPU s | peak MB | load |",
        "|---|---:|---:|---:|---|",
        _arm_line("plain loop, numba cache warm", pw),
        _arm_line("connote sweep, numba cache warm", cw),
    ]
    if "plain_cold" in arms:
        lines += [
            _arm_line("plain loop, numba cache empty", arms["plain_cold"]),
            _arm_line("connote sweep, numba cache empty", arms["connote_cold"]),
        ]
    lines += [
        "",
        f"**Ratio (plain / connote), numba cache warm: {result['ratio_warm']}x**"
        + (
            f"; both caches empty: {result['ratio_cold']}x; plain with an empty cache vs connote warm: "
            f"{result['ratio_plain_cold_vs_connote_warm']}x"
            if "ratio_cold" in result
            else ""
        ),
        "",
        f"Where the plain loop's time goes (inside its process): imports {pw['inside']['import_s']} s, "
        f"reductions {pw['inside']['reduce_s']} s (the first {pw['inside'].get('first_reduce_s')} s: umap-learn "
        f"compiles its uncached numba functions in it), hdbscan {pw['inside']['cluster_s']} s; the rest "
        f"({round(pw['wall_s'] - sum(pw['inside'][k] for k in ('import_s', 'reduce_s', 'cluster_s')), 2)} s) is "
        "the interpreter, loading the vectors and saving the labels.",
        "",
        f"Where connote's time goes: {cw['workers']} worker process(es), {cw['reductions']} reductions, "
        f"{cw['knn_graphs']} shared kNN graph(s); kNN graph {t.get('knn_s', 0)} s (the compiled code loads "
        f"beside it), the settings {t['settings_s']} s, everything else (interpreter, imports, reading the "
        f"study, planning, seed stability, output) {cw['outside_sweep_work_s']} s.",
        "",
        f"Agreement (mean adjusted Rand index over settings, each seed against the same seed): connote vs plain "
        f"{result['ari_mean']['ari_connote_vs_plain']['all']} (UMAP settings "
        f"{result['ari_mean']['ari_connote_vs_plain']['umap']}); the yardstick, the plain loop's seeds against "
        f"each other {result['ari_mean']['ari_plain_between_seeds']['all']} (UMAP "
        f"{result['ari_mean']['ari_plain_between_seeds']['umap']}); connote's seeds against each other "
        f"{result['ari_mean']['ari_connote_between_seeds']['all']} (UMAP "
        f"{result['ari_mean']['ari_connote_between_seeds']['umap']}). The two arms search neighbours differently "
        "(connote: one exact graph; umap-learn: its own), so UMAP settings differ between them about as much as "
        "between seeds.",
        "",
        "| reduce | mcs | ARI connote vs plain | ARI plain seeds | ARI connote seeds | clusters connote | "
        "clusters plain | outliers connote | outliers plain |",
        "|---|---:|---:|---:|---:|---|---|---|---|",
    ]
    for r in result["per_setting"]:
        lines.append(
            f"| {r['reduce']} | {r['min_cluster_size']} | {r['ari_connote_vs_plain']} | "
            f"{r['ari_plain_between_seeds']} | {r['ari_connote_between_seeds']} | "
            f"{'/'.join(map(str, r['clusters_connote']))} | {'/'.join(map(str, r['clusters_plain']))} | "
            f"{'/'.join(map(str, r['outliers_connote']))} | {'/'.join(map(str, r['outliers_plain']))} |"
        )
    text = "\n".join(lines) + "\n"
    stem.with_suffix(".md").write_text(text)
    return text


if __name__ == "__main__":
    main()
