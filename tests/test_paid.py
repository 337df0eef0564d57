"""The paid-call path (connote.paid): claims shared between processes, the budget, and the journal of
paid answers that survives a database that cannot take them (real SQLite, real files)."""

from __future__ import annotations

import errno
import os

import pytest
from conftest import dead_pid, make_image_study

from connote.paid import Journal, JournalFull, PaidWork, read_journal
from connote.study.claims import scope


def test_claims_are_shared_and_released_with_the_result(tmp_path):
    study = make_image_study(tmp_path, 1)
    where = scope("rate", 1, "openai:x")
    with PaidWork(study, where, stage="rate") as a, PaidWork(study, where, stage="rate") as b:
        mine, busy = a.claim(["k1", "k2"], lambda k: True)
        assert mine == ["k1", "k2"] and busy == []
        mine_b, busy_b = b.claim(["k1", "k2", "k3"], lambda k: True)
        assert mine_b == ["k3"] and sorted(c.key for c in busy_b) == ["k1", "k2"]
        with study.transaction():
            a.stored(["k1"])
        # k1 is done (still_todo says so), k2 still held by a
        mine_b, busy_b = b.claim(["k1", "k2"], lambda k: k != "k1")
        assert mine_b == [] and [c.key for c in busy_b] == ["k2"]
    assert not study.con.execute("SELECT COUNT(*) FROM claims").fetchone()[0]


def test_budget_keeps_the_worst_case_aside(tmp_path):
    study = make_image_study(tmp_path, 1)
    with PaidWork(study, "x", stage="x", max_cost=1.0, journal=False) as w:
        h1 = w.reserve(0.6)
        assert h1 == 0.6 and w.reserve(0.6) is None  # 0.6 in flight: another 0.6 would overshoot
        w.settle(h1, 0.1)
        assert w.reserve(0.6) == 0.6 and w.spent == pytest.approx(0.1)
        assert "budget of $1 reached" in w.budget_line(0.6)


def test_a_journaled_answer_is_replayed_once_and_then_removed(tmp_path):
    study = make_image_study(tmp_path, 1)
    with PaidWork(study, "label:1:x", stage="label") as w:
        w.claim(["c1", "c2"], lambda k: True)
        w.journal("c1", {"text": "one"})
        w.journal("c2", {"text": "two"})
        with study.transaction():
            w.stored(["c1"])  # c2 never reached the database (disk full, say)
        assert w.unstored == 1
        path = w._journal.path
    assert path.exists()  # kept: it holds an answer not stored
    # the journal of a process that is gone is handed to the next run
    dead = path.with_name(path.name.replace(f"@{os.getpid()}@", f"@{dead_pid()}@"))
    path.rename(dead)
    with PaidWork(study, "label:1:x", stage="label") as w2:
        got = list(w2.replay(lambda k: k != "c1"))
        assert got == [("c2", {"text": "two"})]
        with study.transaction():
            w2.stored(["c2"])
    assert not dead.exists() and not (tmp_path / "study" / "journal").exists()


def test_the_journal_of_a_live_process_is_left_alone(tmp_path):
    study = make_image_study(tmp_path, 1)
    other = PaidWork(study, "s", stage="s")
    other.journal("k", {"a": 1})
    with PaidWork(study, "s", stage="s") as w:
        assert list(w.replay()) == []  # same host, a live process (this one): not replayed
    other.close()


def test_journal_room_is_set_aside_and_lines_cut_short_are_ignored(tmp_path):
    j = Journal(tmp_path / "j.jsonl", room=1024)
    assert (tmp_path / "j.jsonl").stat().st_size == 1024
    j.append("a", [1, 2])
    j.append("b", "x" * 2000)  # more than the room: grows
    j.close(remove=False)
    with open(tmp_path / "j.jsonl", "r+b") as fh:  # a kill mid-line
        fh.seek(j.offset)
        fh.write(b'{"key": "c", "payl')
    assert [k for k, _ in read_journal(tmp_path / "j.jsonl")] == ["a", "b"]


def test_a_journal_that_cannot_be_written_stops_the_work(tmp_path, monkeypatch):
    study = make_image_study(tmp_path, 1)
    with PaidWork(study, "s", stage="s") as w:
        w.open_journal()

        def full(*a):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "pwrite", full)
        monkeypatch.setattr(os, "posix_fallocate", full)
        with pytest.raises(JournalFull, match="stopped sending at once"):
            w.journal("k", "x" * (8 << 20))


def test_ctrl_c_while_answers_are_kept_waits_until_they_are_kept():
    """The describe runner keeps a paid answer (journal, then store) inside interrupts_deferred: a Ctrl-C
    there must not leave it taken off the calls in flight and kept nowhere."""
    import signal

    from connote.describers.sending import interrupts_deferred

    before = signal.getsignal(signal.SIGINT)
    kept = []
    with pytest.raises(KeyboardInterrupt), interrupts_deferred():
        signal.raise_signal(signal.SIGINT)  # Ctrl-C in the middle of keeping an answer
        kept.append("journaled and stored")
    assert kept == ["journaled and stored"]  # finished first, then interrupted
    assert signal.getsignal(signal.SIGINT) is before

    steps = []
    with pytest.raises(KeyboardInterrupt), interrupts_deferred():
        signal.raise_signal(signal.SIGINT)
        steps.append("first Ctrl-C waits")
        signal.raise_signal(signal.SIGINT)  # the user insists: stop now
        steps.append("not reached")
    assert steps == ["first Ctrl-C waits"] and signal.getsignal(signal.SIGINT) is before

    with interrupts_deferred():  # no Ctrl-C: nothing happens
        kept.append("again")
    assert kept[-1] == "again"
