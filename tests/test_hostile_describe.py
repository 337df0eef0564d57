"""describe as a careless or unlucky user runs it: two processes on one study at once (real processes,
the loopback fake OpenAI server), retried requests in the call log, claims left by a killed process."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest
from conftest import dead_pid, describe_cmd, fake_openai_env, make_image_study

from connote import steps
from connote.describers import runner as runner_mod
from connote.study.claims import Claims
from connote.study.claims import scope as claims_scope
from connote.testing import FakeOpenAI

KEY = "sk-test-hostile-0123456789"
MODEL = "gpt-4o-mini"


@pytest.fixture(autouse=True)
def env(monkeypatch):
    fake_openai_env(monkeypatch, KEY, backoff_cap=0.1)


make_study = make_image_study


def test_every_request_is_in_the_call_log_retries_included(tmp_path):
    study = make_study(tmp_path, 10)
    with FakeOpenAI(latency=0.01, faults={"429": 0.25, "500": 0.2, "drop": 0.1, "503": 0.1}, seed=3) as srv:
        s = steps.describe(study, f"openai:{MODEL}", base_url=srv.base_url, progress=False, concurrency=3)
        requests = srv.chat_requests()
    retried = len(requests) - 10
    assert retried >= 5, "the faults should have made the runner retry"
    calls = study.calls("describe")
    assert len(calls) == len(requests) == s.calls  # one row per request that reached the server
    assert sum(1 for c in calls if '"retried": true' in (c["params"] or "")) >= retried - s.failed
    assert s.described + s.failed + s.flagged == 10


def test_two_describe_processes_share_the_work_and_never_pay_twice(tmp_path):
    n = 16
    make_study(tmp_path, n).close()
    env = {
        **os.environ,
        "OPENAI_API_KEY": KEY,
        "PYTHONUNBUFFERED": "1",
        "NUMBA_CACHE_DIR": "/tmp/numba_cache",
    }
    with FakeOpenAI(latency=0.25, api_key=KEY) as srv:
        cmd = describe_cmd(tmp_path / "study", srv)
        procs = [
            subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
        counts = srv.image_counts()
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    assert len(srv.chat_requests()) == n and set(counts.values()) == {1}  # requests == images
    study = steps.Study.open(tmp_path / "study")
    assert len(study.descriptions(study.resolve_description_set()["id"])) == n
    assert len(study.calls("describe")) == n
    assert not study.con.execute("SELECT COUNT(*) FROM claims").fetchone()[0]  # none left behind
    # both did some of the work
    described = [int(out.split("Described ")[1].split()[0]) for out, _ in outs]
    assert sum(described) == n and min(described) > 0, outs


def test_claims_of_a_dead_process_are_taken_over_and_live_ones_are_left(tmp_path):
    study = make_study(tmp_path, 4)
    shas = [r["sha256"] for r in study.unique_images()]
    set_id = study.description_set(f"openai:{MODEL}", f"openai:{MODEL}", MODEL, runner_mod.PAPER_PROMPT, {})
    host = socket.gethostname()
    now = time.time()
    with study.transaction() as con:
        # a process killed with -9 (its pid is gone), and a live one (this test) still working
        con.execute(
            "INSERT INTO claims VALUES (?, ?, ?, ?, ?, ?)",
            (f"describe:{set_id}", shas[0], "dead", dead_pid(), host, now + 600),
        )
        con.execute(
            "INSERT INTO claims VALUES (?, ?, ?, ?, ?, ?)",
            (f"describe:{set_id}", shas[1], "live", os.getpid(), host, now + 600),
        )
        # an expired claim from another machine
        con.execute(
            "INSERT INTO claims VALUES (?, ?, ?, ?, ?, ?)",
            (f"describe:{set_id}", shas[2], "old", 1, "elsewhere", now - 1),
        )
    with FakeOpenAI() as srv:
        s = steps.describe(study, f"openai:{MODEL}", base_url=srv.base_url, progress=False)
        counts = srv.image_counts()
    assert s.described == 3 and s.elsewhere == 1 and len(counts) == 3
    assert (
        "another connote process" in s.elsewhere_note
        and f"process {os.getpid()} on {host}" in s.elsewhere_note
    )
    left = study.con.execute("SELECT owner FROM claims").fetchall()
    assert [r[0] for r in left] == ["live"]  # only the live process's claim remains


def test_claims_skip_what_another_process_finished(tmp_path):
    study = make_study(tmp_path, 2)
    shas = [r["sha256"] for r in study.unique_images()]
    claims = Claims(study.con, 1)
    study.con.execute("INSERT INTO description_sets(name, describer, created) VALUES ('x', 'x', 'now')")
    mine, busy = claims.take(shas, lambda sha: sha != shas[1])
    assert mine == [shas[0]] and busy == []
    other = Claims(study.con, 1)
    mine2, busy2 = other.take(shas, lambda sha: True)
    assert mine2 == [shas[1]] and [c.key for c in busy2] == [shas[0]]


def test_describe_cli_exits_non_zero_when_nothing_could_be_described(tmp_path):
    make_study(tmp_path, 3).close()
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    with FakeOpenAI() as srv:
        srv.push("400", "400", "400")
        proc = subprocess.run(
            describe_cmd(tmp_path / "study", srv), env=env, capture_output=True, text=True, timeout=120
        )
    assert proc.returncode == 1 and "not one image could be described" in proc.stderr, proc.stderr
    with FakeOpenAI(api_key="sk-the-right-one") as srv:  # the wrong key: stopped at the first 401
        proc = subprocess.run(
            describe_cmd(tmp_path / "study", srv, 1) + ["--retry-flagged"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        sent = len(srv.requests)
    assert proc.returncode == 2 and sent == 1, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "authentication error" in err[0] and "HTTP 401" in err[0]


def test_two_batch_submissions_at_once_make_one_batch(tmp_path):
    make_study(tmp_path, 6).close()
    env = {**os.environ, "OPENAI_API_KEY": KEY, "PYTHONUNBUFFERED": "1"}
    with FakeOpenAI(latency=0.3) as srv:
        cmd = [*describe_cmd(tmp_path / "study", srv), "--batch", "--no-wait"]
        procs = [
            subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), outs
        assert len(srv.batches) == 1, outs  # paid once
        again = subprocess.run(
            [*cmd[:-1], "--batch-poll", "0.05"], env=env, capture_output=True, text=True, timeout=120
        )
    assert again.returncode == 0, again.stderr
    study = steps.Study.open(tmp_path / "study")
    assert len(study.descriptions(study.resolve_description_set()["id"])) == 6


def test_claims_of_different_scopes_never_block_each_other(tmp_path):
    """One claim table serves every paid call: a key claimed for one kind of work is free for another."""
    study = make_study(tmp_path, 1)
    describe_claims = Claims(study.con, 1)
    label_claims = Claims(study.con, claims_scope("label", 1, "llm:x"))
    assert describe_claims.scope == "describe:1" and label_claims.scope == "label:1:llm:x"
    assert describe_claims.take(["k"], lambda _k: True) == (["k"], [])
    mine, busy = label_claims.take(["k"], lambda _k: True)
    assert mine == ["k"] and busy == []
    again, busy_again = Claims(study.con, "label:1:llm:x").take(["k"], lambda _k: True)
    assert again == [] and [c.owner for c in busy_again] == [label_claims.owner]


def test_describe_claims_of_an_older_study_are_kept_when_it_is_migrated(tmp_path):
    import sqlite3

    from connote.study.schema import MIGRATIONS

    db = tmp_path / "old.db"
    con = sqlite3.connect(db, isolation_level=None)
    for version, script in enumerate(MIGRATIONS[:6], start=1):
        con.executescript(script)
        con.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(version),))
    con.execute("INSERT INTO claims VALUES (3, 'abc', 'h:1:x', 1, 'h', 5.0)")
    from connote.study.schema import migrate

    assert migrate(con) == 6
    assert con.execute("SELECT scope, key, owner FROM claims").fetchall() == [("describe:3", "abc", "h:1:x")]
    con.close()
