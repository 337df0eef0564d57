"""The Ray executor on a real two-node Ray cluster on this machine, inside a loopback-only network
namespace (Ray binds the machine's own address otherwise): `ray start --head`, then a second node with
`ray start --address=127.0.0.1:PORT` (two raylets). One session runs tests/ray_scripts/cluster_run.py:
describe (loopback fake OpenAI server), embed (MiniLM through Ray Data) and a sweep with the local and the
Ray executor, a budget across workers, and the describe workers killed mid-run. The namespace has its own
process tree: everything Ray started there ends with it. Skipped where Ray or unshare is unavailable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ray")

SCRIPT = Path(__file__).parent / "ray_scripts" / "cluster_run.py"
RAY = Path(sys.executable).with_name("ray")
PORT = 6391


def _unshare_prefix() -> list[str] | None:
    """unshare with its own network and process namespaces (as root, or mapped to root in a user ns)."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        return None
    for prefix in (
        ["unshare", "-n", "-p", "-f", "--mount-proc"],
        ["unshare", "-r", "-n", "-p", "-f", "--mount-proc"],
    ):
        try:
            ok = (
                subprocess.run(
                    [*prefix, "sh", "-c", "ip link set lo up"], capture_output=True, timeout=20
                ).returncode
                == 0
            )
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        if ok:
            return prefix
    return None


@pytest.fixture(scope="module")
def cluster_run():
    prefix = _unshare_prefix()
    if prefix is None:
        pytest.skip("unshare -n (a loopback-only network namespace) is not permitted here")
    if not RAY.is_file():
        pytest.skip("the ray command is not installed beside this Python")
    work = Path(tempfile.mkdtemp(prefix="cr_", dir="/tmp"))  # short: Ray's socket paths have a length limit
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).parents[1] / "src"), env.get("PYTHONPATH", "")])
    env.update(RAY_USAGE_STATS_ENABLED="0", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    env.setdefault("NUMBA_CACHE_DIR", "/tmp/numba_cache")
    opts = "--num-cpus=1 --disable-usage-stats"
    # Ray gives a node 30 s to register; on a loaded machine that can pass, so each start is tried up to
    # three times (`ray stop` here sees only this namespace's processes: it has its own process tree).
    script = f"""
ip link set lo up
start() {{ for i in 1 2 3; do "$@" && return 0; {RAY} stop --force >/dev/null 2>&1; sleep 2; done; return 1; }}
start {RAY} start --head --port={PORT} --include-dashboard=false {opts} --temp-dir={work}/ray >>{work}/head.log 2>&1 || exit 3
ok=0; for i in 1 2 3; do {RAY} start --address=127.0.0.1:{PORT} {opts} >>{work}/node.log 2>&1 && ok=1 && break; sleep 2; done
[ $ok = 1 ] || exit 4
exec {sys.executable} {SCRIPT} 127.0.0.1:{PORT} {work}/data
"""
    try:
        proc = subprocess.run(
            [*prefix, "bash", "-c", script], capture_output=True, text=True, timeout=900, env=env
        )
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode != 0 or not lines:
            logs = "".join(p.read_text(errors="replace")[-2000:] for p in work.glob("*.log"))
            raise AssertionError(
                f"the Ray session failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}\n{logs}"
            )
        yield json.loads(lines[-1][len("RESULT ") :])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_ray_results_equal_the_local_executors(cluster_run):
    local, ray = cluster_run["local"], cluster_run["ray"]
    assert ray["described"] == local["described"] == 24
    assert ray["texts"] == local["texts"]  # the same descriptions from the same server
    assert cluster_run["ray_requests"] == 24 and ray["calls"] == 24  # one request each, each logged
    assert ray["embedded"] == 24
    # the same batches as locally (so the same padding): the same vectors, bit for bit
    assert np.array_equal(np.array(ray["vectors"]), np.array(local["vectors"]))
    assert ray["runs"] == local["runs"] and len(ray["runs"]) == 6  # the same labels per setting
    assert cluster_run["again"] == {"described": 0, "requests": 0}  # resume: nothing sent twice


def test_ray_budget_is_shared_across_workers(cluster_run):
    b = cluster_run["budget"]
    assert b["stopped"] and "budget" in b["stopped"]
    assert 0 < b["described"] < 24
    assert b["cost"] <= 0.0015 + 1e-12 and b["logged_cost"] <= 0.0015 + 1e-12


def test_killed_workers_lose_nothing_and_pay_nothing_twice(cluster_run):
    k = cluster_run["killed"]
    assert k["pids"] >= 2, k  # both describe workers were killed mid-run
    assert k["error"] is None, k
    assert k["stored_ok"] == 40 and k["failed"] == 0  # every image described in the end
    # only calls in flight when the workers died were asked again (at most the 4 in flight)
    assert k["twice"] <= 4 and k["per_image_max"] <= 2, k
    # every request that may have been billed is in the call log, the lost ones as transient errors
    assert k["calls"] >= k["requests"], k
    assert any("Ray worker lost mid-call" in e for e in k["call_errors"]), k
    assert k["again_described"] == 0 and k["again_requests"] == 0


def test_hf_describer_on_ray_workers(cluster_run):
    """The plumbing of hf: on Ray workers (a tiny random LLaVA; GPU workers where the cluster has GPUs)."""
    local, ray = cluster_run["hf"]["hf-local"], cluster_run["hf"]["hf-ray"]
    assert ray["total"] == ray["stored"] == 24 and ray["failed"] == 0
    assert ray["texts"] == local["texts"]  # greedy decoding: the same outputs as locally


def test_unreachable_cluster_is_one_clear_line_at_once():
    from connote.errors import UserError
    from connote.executors import get_executor

    for address, why in (
        ("127.0.0.1:1", "cannot reach a Ray cluster at 127.0.0.1:1"),
        ("nohost", "HOST:PORT"),
    ):
        with pytest.raises(UserError, match=why):
            get_executor(f"ray:{address}").connect()
