"""Nothing is paid for twice (issue #19): a batch in flight is collected or cancelled, never described
again behind the user's back; an answer that may have been billed is journaled before anything else can
fail, so a full disk stops the run at once and the next run stores the answer without a new request.
Real files, real SQLite, the loopback fake OpenAI server."""

from __future__ import annotations

import errno
import sqlite3

import pytest
from conftest import fake_openai_env, make_image_study

from connote import cli, steps
from connote.describers.runner import DescribeRunner
from connote.errors import UserError
from connote.paid import Journal
from connote.testing import FakeOpenAI

KEY = "sk-test-paying-twice-0123456789"
MODEL = "gpt-4o-mini"


@pytest.fixture(autouse=True)
def env(monkeypatch):
    fake_openai_env(monkeypatch, KEY, backoff_cap=0.1)


def describe(study, srv, **kw):
    return steps.describe(study, f"openai:{MODEL}", base_url=srv.base_url, progress=False, **kw)


def test_plain_describe_never_pays_again_for_a_batch_in_flight(tmp_path, capsys):
    study = make_image_study(tmp_path, 6)
    with FakeOpenAI(api_key=KEY, batch_polls=4) as srv:
        s = describe(study, srv, batch=True, batch_wait=False)  # submitted, then stopped
        assert s.stopped and "run the same command again" in s.stopped
        # describe without --batch: the batch is still running -> one line, nothing sent
        with pytest.raises(UserError, match=r"still in_progress \(6 image\(s\), paid for\).*--cancel-batch"):
            describe(study, srv)
        assert srv.chat_requests() == []
        est = describe(study, srv, dry_run=True)
        assert any("in flight and paid for" in n for n in est.notes)
        rc = cli.main(
            ["describe", str(study.path), "--describer", f"openai:{MODEL}", "--base-url", srv.base_url]
        )
        assert rc == 2 and "--cancel-batch" in capsys.readouterr().err
        # once the batch has ended, plain describe collects it (reused) and sends nothing
        s = describe(study, srv)
        assert srv.chat_requests() == [] and len(srv.batches) == 1
    assert s.from_batch == 6 and s.described == 6 and s.already == 0 and "its 6 result(s) stored" in s.note
    assert len(study.descriptions(s.set_id)) == 6 and study.get_meta(f"describe_batch:{s.set_id}") is None


def test_cancel_batch_ends_the_batch_and_the_next_run_describes_the_rest(tmp_path, capsys):
    study = make_image_study(tmp_path, 5)
    with FakeOpenAI(api_key=KEY, batch_polls=50) as srv:
        describe(study, srv, batch=True, batch_wait=False)
        base = ["describe", str(study.path), "--describer", f"openai:{MODEL}", "--base-url", srv.base_url]
        assert cli.main([*base, "--cancel-batch", "-q"]) == 0
        out = capsys.readouterr().out
        (b,) = srv.batches.values()
        assert b["obj"]["status"] == "cancelled" and "cancelled" in out
        assert cli.main([*base, "--cancel-batch"]) == 2  # nothing left to cancel: one line
        assert "no batch in flight to cancel" in capsys.readouterr().err
        s = describe(study, srv)
        assert s.described == 5 and len(srv.chat_requests()) == 5  # each image paid for once


def test_disk_full_mid_describe_stops_at_once_and_nothing_paid_is_asked_again(tmp_path, monkeypatch):
    n = 12
    study = make_image_study(tmp_path, n)
    stores = {"n": 0}
    real_store = DescribeRunner.store

    def store_then_fill_the_disk(self, st, *a, **kw):
        out = real_store(self, st, *a, **kw)
        stores["n"] += 1
        if stores["n"] == 3:  # the database cannot grow from here on ('database or disk is full')
            pages = st.con.execute("PRAGMA page_count").fetchone()[0]
            st.con.execute(f"PRAGMA max_page_count={pages}")
        return out

    monkeypatch.setattr(DescribeRunner, "store", store_then_fill_the_disk)
    with FakeOpenAI(api_key=KEY, latency=0.05) as srv:
        with pytest.raises(UserError) as info:
            describe(study, srv, concurrency=3)
        msg = str(info.value)
        sent = len(srv.chat_requests())
        assert "disk is full" in msg and "stopped sending at once" in msg and "\n" not in msg
        assert sent < n  # it stopped: not every image was sent after the database failed
        kept = study.con.execute("SELECT COUNT(*) FROM calls WHERE stage='describe'").fetchone()[0]
        assert "paid answer(s) are kept in" in msg and kept < sent
        monkeypatch.setattr(DescribeRunner, "store", real_store)
        study.close()
        again = steps.Study.open(study.path)  # space freed (a new connection has no page limit)
        s = describe(again, srv, concurrency=3)
        counts = srv.image_counts()
    assert s.from_journal == sent - kept  # stored from the journal without a request
    assert len(counts) == n and set(counts.values()) == {1}  # every image paid for exactly once
    assert again.con.execute("SELECT COUNT(*) FROM calls WHERE stage='describe'").fetchone()[0] == n
    assert len(again.descriptions(s.set_id)) == n
    assert not (again.path / "journal").exists()  # stored: the journal is gone


def test_a_paid_answer_that_cannot_even_be_journaled_stops_sending(tmp_path, monkeypatch):
    n = 10
    study = make_image_study(tmp_path, n)

    def full(self, key, payload):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Journal, "append", full)
    with FakeOpenAI(api_key=KEY, latency=0.05) as srv:
        with pytest.raises(UserError, match="cannot journal a paid answer.*stopped sending at once"):
            describe(study, srv, concurrency=2)
        sent = len(srv.chat_requests())
    assert sent <= 3  # the first answer back stops the run: at most what was in flight
    # the answers in hand were still stored (the database had room)
    assert study.con.execute("SELECT COUNT(*) FROM calls").fetchone()[0] == sent


def test_max_page_count_is_a_disk_full_error_for_sqlite(tmp_path):
    """The test above fills the 'disk' with max_page_count: SQLite reports it as a full disk."""
    con = sqlite3.connect(tmp_path / "x.db")
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE t(x)")
    con.execute(f"PRAGMA max_page_count={con.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
        con.execute("INSERT INTO t VALUES (?)", ("x" * 100_000,))
        con.commit()


ANSWER = "Label: Floods and rising water\nSummary: Rivers burst their banks and streets fill with water."


def test_two_label_processes_share_the_clusters_and_pay_once(tmp_path):
    import subprocess

    from conftest import cli_env, connote_cmd
    from derived_fixtures import build

    d = build(tmp_path, per_cluster=6)
    study, run_id = d.study.path, d.run_id
    d.study.close()
    env = {**cli_env(), "OPENAI_API_KEY": KEY}
    with FakeOpenAI(decide=lambda _i: {"kind": "ok", "text": ANSWER}, latency=1.0, api_key=KEY) as srv:
        cmd = connote_cmd(
            "label",
            study,
            run_id,
            "--llm",
            f"openai:{MODEL}",
            "--base-url",
            srv.base_url,
            "--concurrency",
            "1",
        )
        procs = [
            subprocess.Popen([*cmd, "-q"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
        prompts = [r for r in srv.requests if r["path"] == "chat"]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert out.count("Floods and rising water") == 3  # each shows every cluster's label
    assert len(prompts) == 3  # one call per cluster, not one per cluster per process
    s = steps.Study.open(study)
    assert len(s.calls("label")) == 3 and all(c["status"] == "ok" for c in s.calls("label"))
    assert [x["status"] for x in s.labels(run_id).values()] == ["ok"] * 3
    # both sent some of the calls (the other's answers were read back from the call log)
    sent = [int(out.split(" call(s), ")[0].rsplit(" ", 1)[1]) for out, _ in outs]
    assert sum(sent) == 3 and min(sent) > 0, outs
    assert not s.con.execute("SELECT COUNT(*) FROM claims").fetchone()[0]


def test_two_embed_processes_send_each_text_once(tmp_path):
    import subprocess

    from conftest import cli_env, connote_cmd

    from connote.study import Study

    n = 24
    study = Study.create(tmp_path / "s")
    set_id = study.description_set("texts", "synthetic", None, None, {})
    for i in range(n):
        study.put_description(set_id, f"{i:064x}", f"The image evokes theme number {i} and feeling {i % 3}.")
    study.close()
    spec = "openai:text-embedding-3-small,dimensions=16,batch_size=2"
    with FakeOpenAI(api_key=KEY, embed_latency=0.5) as srv:
        env = {**cli_env(), "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": srv.base_url}
        cmd = connote_cmd("embed", tmp_path / "s", "--text", spec, "-q", "--json")
        procs = [
            subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
        sent = [r["n"] for r in srv.requests if r["path"] == "embeddings"]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    assert sum(sent) == n  # every text sent once, by one of the two
    s = Study.open(tmp_path / "s")
    name = "text:openai:text-embedding-3-small@16"
    assert s.vectors.count(name) == n  # one row per text in the vector file
    assert len(s.calls("embed")) == len(sent)
    assert not s.con.execute("SELECT COUNT(*) FROM claims").fetchone()[0]
    import json

    results = [json.loads(out)[0] for out, _ in outs]
    # both did some of the work; what each left to the other is counted as done elsewhere
    assert sum(r["computed"] for r in results) == n and min(r["computed"] for r in results) > 0, outs
    assert all(r["computed"] + r["elsewhere"] == n for r in results), outs


def test_a_batch_leaves_out_images_another_process_is_describing(tmp_path):
    import json
    import os
    import socket
    import time

    study = make_image_study(tmp_path, 4)
    shas = sorted(r["sha256"] for r in study.unique_images())
    set_id = study.description_set(f"openai:{MODEL}", f"openai:{MODEL}", MODEL, steps.PAPER_PROMPT, {})
    with study.transaction() as con:  # a live describe process (this one, another owner) holds one image
        con.execute(
            "INSERT INTO claims VALUES (?, ?, ?, ?, ?, ?)",
            (f"describe:{set_id}", shas[0], "other", os.getpid(), socket.gethostname(), time.time() + 600),
        )
    with FakeOpenAI(api_key=KEY, batch_polls=1) as srv:
        s = describe(study, srv, batch=True, batch_poll=0.01)
        (b,) = srv.batches.values()
        sent = [
            json.loads(x)["custom_id"]
            for x in srv.files[b["obj"]["input_file_id"]]["content"].decode().splitlines()
        ]
    assert sorted(sent) == shas[1:] and s.described == 3 and s.elsewhere == 1
