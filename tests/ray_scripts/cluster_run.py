"""Runs inside a loopback-only network namespace with a two-node Ray cluster already started (see
tests/test_ray.py). Argument: the head's address. Prints one JSON object with what the tests assert."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import numba  # noqa: F401 - imported before the sweep: its preload thread and knn_graph import numba at once

from connote import steps
from connote.describers import runner as runner_mod
from connote.study import Study, text_key
from connote.testing import FakeOpenAI, make_images

ADDRESS = sys.argv[1] if len(sys.argv) > 2 else ""
WORK = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(".")
RAY = f"ray:{ADDRESS}"
MODEL = "gpt-4o-mini"
runner_mod.BACKOFF_BASE, runner_mod.BACKOFF_CAP = 0.05, 0.5
os.environ["OPENAI_API_KEY"] = "sk-test-ray"
out: dict = {"timing": {}}
T0 = time.perf_counter()


def mark(label: str) -> None:
    out["timing"][label] = round(time.perf_counter() - T0, 1)


def pipeline(name: str, executor: str | None, srv, n_images: int = 24) -> dict:
    study = steps.init(WORK / name, WORK / "images", progress=False)
    t = time.perf_counter()
    s = steps.describe(study, f"openai:{MODEL}", base_url=srv.base_url, progress=False, executor=executor)
    desc_s = time.perf_counter() - t
    (e,) = steps.embed(study, "minilm", progress=False, executor=executor)
    ds = study.resolve_description_set()
    texts = study.descriptions(ds["id"])
    shas = sorted(texts)
    X = study.load_vectors(e.embedder, [text_key(texts[h]) for h in shas])
    res = steps.sweep(
        study,
        {
            "name": "t",
            "reference_n": 24,
            "min_cluster_size_floor": 2,
            "min_cluster_size": [3, 4],
            "pca": {"components": [5, 3]},
            "umap": {"components": [2], "neighbors": [5]},
        },
        seeds=[42],
        progress=False,
        executor=executor,
    )
    runs = {
        r.reduce + f"/{r.min_cluster_size}": {
            row["sha256"]: row["cluster"]
            for row in study.con.execute(
                "SELECT sha256, cluster FROM assignments WHERE run_id=?", (r.run_id,)
            )
        }
        for r in res.rows
    }
    calls = study.con.execute("SELECT COUNT(*) FROM calls WHERE stage='describe'").fetchone()[0]
    return {
        "described": s.described,
        "calls": calls,
        "describe_s": desc_s,
        "texts": {h: texts[h] for h in shas},
        "vectors": X.tolist(),
        "embedded": e.computed,
        "runs": runs,
        "executor": res.executor if hasattr(res, "executor") else None,
    }


def part_equal() -> None:
    """The pipeline with the local and the Ray executor: the same descriptions, vectors and labels."""
    with FakeOpenAI(latency=0.05) as srv:
        out["local"] = pipeline("local", None, srv)
        mark("local")
        before = len(srv.chat_requests())
        out["ray"] = pipeline("ray", RAY, srv)
        out["ray_requests"] = len(srv.chat_requests()) - before
        mark("ray")
        # again: everything is reused, nothing is sent
        before = len(srv.chat_requests())
        again = steps.describe(
            WORK / "ray", f"openai:{MODEL}", base_url=srv.base_url, progress=False, executor=RAY
        )
        out["again"] = {"described": again.described, "requests": len(srv.chat_requests()) - before}


def part_budget() -> None:
    """A budget across workers: each call costs about the same; the run stops before the budget."""
    with FakeOpenAI(latency=0.05) as srv:
        study = steps.init(WORK / "budget", WORK / "images", progress=False)
        s = steps.describe(
            study, f"openai:{MODEL}", base_url=srv.base_url, progress=False, executor=RAY, max_cost=0.0015
        )
        out["budget"] = {
            "described": s.described,
            "cost": s.cost_usd,
            "stopped": s.stopped,
            "logged_cost": Study.open(WORK / "budget").total_cost(),
        }

    mark("budget")


def part_killed() -> None:
    """Workers killed mid-run: the describe actors' processes get SIGKILL while calls are in flight."""
    make_images(WORK / "many", 40)
    with FakeOpenAI(latency=0.4) as srv:
        steps.init(WORK / "killed", WORK / "many", progress=False)
        result: dict = {}

        def run():
            try:
                result["summary"] = steps.describe(
                    WORK / "killed",
                    f"openai:{MODEL}",
                    base_url=srv.base_url,
                    progress=False,
                    executor=RAY,
                    concurrency=4,
                )
            except BaseException as exc:  # noqa: BLE001
                result["error"] = repr(exc)

        th = threading.Thread(target=run)
        th.start()
        probe = Study.open(WORK / "killed")
        deadline = time.time() + 120
        while time.time() < deadline:
            n = probe.con.execute("SELECT COUNT(*) FROM descriptions").fetchone()[0]
            if n >= 8:
                break
            time.sleep(0.1)
        killed = []
        for pid_dir in Path("/proc").iterdir():
            if not pid_dir.name.isdigit():
                continue
            try:
                cmd = (pid_dir / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if "DescribeWorker" in cmd:
                os.kill(int(pid_dir.name), 9)
                killed.append(int(pid_dir.name))
        out["killed_at"] = n
        th.join(timeout=240)
        s = result.get("summary")
        out["killed"] = {
            "pids": len(killed),
            "error": result.get("error"),
            "described": s.described if s else None,
            "failed": s.failed if s else None,
            "stored_ok": probe.con.execute("SELECT COUNT(*) FROM descriptions WHERE status='ok'").fetchone()[
                0
            ],
            "requests": len(srv.chat_requests()),
            "per_image_max": max(srv.image_counts().values()),
            "twice": sum(1 for c in srv.image_counts().values() if c > 1),
            "calls": probe.con.execute("SELECT COUNT(*) FROM calls WHERE stage='describe'").fetchone()[0],
            "problems": [
                tuple(r)
                for r in probe.con.execute("SELECT status, reason FROM descriptions WHERE status!='ok'")
            ],
            "call_errors": [
                r[0] for r in probe.con.execute("SELECT error FROM calls WHERE error IS NOT NULL")
            ],
        }
        before = len(srv.chat_requests())
        again = steps.describe(
            WORK / "killed", f"openai:{MODEL}", base_url=srv.base_url, progress=False, executor=RAY
        )
        out["killed"]["again_described"] = again.described
        out["killed"]["again_requests"] = len(srv.chat_requests()) - before

    mark("killed")


def part_hf() -> None:
    """hf: (a tiny random LLaVA) on Ray workers: each worker loads the model once; the same outputs."""
    from connote.testing.tiny_models import tiny_llava

    model = tiny_llava(WORK / "tiny-llava")
    got = {}
    for name, executor in (("hf-local", None), ("hf-ray", RAY)):
        study = steps.init(WORK / name, WORK / "images", progress=False)
        s = steps.describe(
            study, f"hf:{model}", batch_size=4, max_new_tokens=6, progress=False, executor=executor
        )
        rows = study.description_rows(s.set_id)
        got[name] = {
            "total": s.total,
            "stored": len(rows),
            "failed": s.failed,
            "texts": {r["sha256"]: r["text"] for r in rows},
        }
    out["hf"] = got
    mark("hf")


def main() -> None:
    make_images(WORK / "images", 24)
    parts = os.environ.get("CLUSTER_RUN_PARTS", "equal,budget,killed,hf").split(",")
    for part in parts:
        globals()[f"part_{part}"]()
    print("RESULT " + json.dumps(out, default=str), flush=True)


if __name__ == "__main__":
    main()
