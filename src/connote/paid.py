"""The paid-call path: every call that may cost money goes claim -> reserve -> call -> journal -> store ->
release, through one :class:`PaidWork` per run and scope of work.

* **claim** (:meth:`PaidWork.claim`): the items are claimed in the study's ``claims`` table
  (:mod:`connote.study.claims`) in one transaction with the check that each still needs doing, so two
  processes on one study share the work and never pay twice for an item.
* **reserve** (:meth:`PaidWork.reserve`): a ``max_cost`` budget keeps each call's worst case aside while
  it is in flight, so a run stops before its budget rather than after it.
* **journal** (:meth:`PaidWork.journal`): the answer of a call that may have been billed is written,
  flushed, to the process's journal file before anything else can fail (the database may be full or
  locked). The file's room is set aside when the work opens (``posix_fallocate``), so a full disk does not
  stop it; when even the journal cannot take an answer, :class:`JournalFull` says so and the caller stops
  sending at once.
* **store** (:meth:`PaidWork.stored`, inside the caller's transaction): the call log, the result and the
  end of the claim land together.
* **replay** (:meth:`PaidWork.replay`): answers journaled by a run that could not store them (disk full,
  kill -9) are handed back to the next run, which stores them without a new request.

Usage (``rate`` stands for any stage; ``item_to_json``/``json_to_item`` are the caller's)::

    from connote.paid import JournalFull, PaidWork
    from connote.study.claims import scope

    with PaidWork(study, scope("rate", sample_id, coder), stage="rate", max_cost=2.0) as work:
        for key, payload in work.replay(still_todo):          # answers paid for by an earlier run
            with study.transaction():
                store(key, json_to_item(payload))
                work.stored([key])
        for chunk in chunks:
            mine, busy = work.claim([it.key for it in chunk], still_todo)   # others' items are skipped
            for item in (it for it in chunk if it.key in mine):
                held = work.reserve(worst_case_usd(item))
                if held is None:                                # the budget: stop before it, not after
                    break
                answer = call(item)
                work.journal(item.key, item_to_json(answer))   # raises JournalFull: stop sending
                with study.transaction():
                    call_id = study.record_call(...)           # the call log first
                    store(item.key, answer, call_id)
                    work.stored([item.key])                    # claim released with the result
                work.settle(held, answer.cost_usd)
        work.wait_for_others([c.key for c in busy], still_todo)  # optional: what others held, once done or dead
    # closing releases this process's claims and removes its journal when all it holds is stored

Calls to a chat model need not write that loop: :meth:`connote.describers.runner.DescribeRunner.send`
(and ``.send_all``, which also replays the journal and waits for what other processes hold) run it with
the runner's concurrency, retries, output checks and budget, given a ``store_one(item, entry) -> cost``
that logs and stores one answer (``item.sha256`` is the claim key; see ``connote.labels._call_all``).

``busy`` (and :attr:`PaidWork.busy`) are the :class:`~connote.study.claims.Claim` s other live processes
hold; :func:`connote.study.claims.describe_others` names them for a message.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import cast

from connote.errors import UserError
from connote.study.claims import Claim, Claims, process_alive

#: Bytes of journal set aside at a time (a description, a label or a rating is a few kB).
JOURNAL_ROOM = 4 << 20
#: The folder in a study that holds the journals of paid work.
JOURNAL_DIR = "journal"
#: Journals open in this process (a closed one of this process is an earlier run's, to replay).
_OPEN: set[Path] = set()


class JournalFull(UserError):
    """A paid answer could not even be journaled: the run stops sending at once."""


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80]


class Journal:
    """An append-only file of paid answers of one process in one scope, with its room set aside up front.

    Lines are JSON objects ``{"key": ..., "payload": ...}`` written at the end of what was written before
    (the rest of the file is zeros, set aside); a reader stops at the first zero byte or broken line."""

    def __init__(self, path: Path, room: int = JOURNAL_ROOM):
        self.path = path
        self.room = room
        self.entries = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        _OPEN.add(path)
        self.offset = 0
        self.size = 0
        self._grow(room)

    def _grow(self, need: int) -> None:
        size = self.size + max(self.room, need)
        try:
            os.posix_fallocate(self.fd, 0, size)
        except (AttributeError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno != errno.EOPNOTSUPP:
                raise
            os.ftruncate(self.fd, size)  # no fallocate here: a sparse file (written as it goes)
        self.size = size

    def append(self, key: str, payload) -> None:
        data = (json.dumps({"key": key, "payload": payload}, separators=(",", ":")) + "\n").encode()
        if self.offset + len(data) > self.size:
            self._grow(len(data))
        n = os.pwrite(self.fd, data, self.offset)
        if n != len(data):
            raise OSError(errno.ENOSPC, "short write to the journal")
        self.offset += n
        self.entries += 1

    def close(self, remove: bool) -> None:
        _OPEN.discard(self.path)
        with contextlib.suppress(OSError):
            os.close(self.fd)
        if remove:
            with contextlib.suppress(OSError):
                self.path.unlink()


def read_journal(path: Path) -> list[tuple[str, dict]]:
    """(key, payload) of every whole line of a journal file."""
    out: list[tuple[str, dict]] = []
    try:
        data = path.read_bytes().split(b"\0", 1)[0]
    except OSError:
        return out
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            break  # a line cut short by a kill: what follows cannot be trusted
        out.append((rec["key"], rec["payload"]))
    return out


class PaidWork:
    """One run's paid calls in one scope of work (see the module's docstring for the whole path)."""

    def __init__(
        self, study, scope: int | str, *, stage: str, max_cost: float | None = None, journal: bool = True
    ):
        self.study = study
        self.stage = stage
        self.claims = Claims(study.con, scope)
        self.scope = self.claims.scope
        self.max_cost = max_cost
        self.spent = 0.0
        self.reserved = 0.0
        self.busy: list[Claim] = []  # claims of other live processes met on the way
        self._unstored: set[str] = set()  # journaled here and not stored yet
        self._journal: Journal | None = None
        self._use_journal = journal
        self._replayed: list[Path] = []
        self._replay_unstored: set[str] = set()  # handed back by replay() and not stored yet

    # ------------------------------------------------------------------ files
    @property
    def journal_dir(self) -> Path:
        return Path(self.study.path) / JOURNAL_DIR

    def _journal_name(self, host: str, pid: int, owner: str) -> str:
        return f"{_safe(self.scope)}@{_safe(host)}@{pid}@{_safe(owner.rsplit(':', 1)[-1])}.jsonl"

    def open_journal(self) -> None:
        """Set the journal's room aside before the first request (a full disk is met before paying)."""
        if self._journal is not None or not self._use_journal:
            return
        c = self.claims
        path = self.journal_dir / self._journal_name(c.host, c.pid, c.owner)
        try:
            self._journal = Journal(path)
        except OSError as exc:
            raise JournalFull(
                f"{path}: cannot set aside room for the journal of paid answers ({exc.strerror or exc}); "
                "nothing was sent: free some space and run the command again"
            ) from None

    # ------------------------------------------------------------------ claim
    def claim(self, keys: list[str], still_todo: Callable[[str], bool]) -> tuple[list[str], list[Claim]]:
        """Claim those of ``keys`` nobody else works on and that ``still_todo`` (asked in the same
        transaction); (claimed by this process, claims of other live processes)."""
        self.open_journal()
        mine, busy = self.claims.take(list(keys), still_todo)
        return mine, busy

    def wait_for_others(
        self,
        keys: list[str],
        still_todo: Callable[[str], bool],
        *,
        poll: float = 0.2,
        limit: float | None = None,
    ) -> list[str]:
        """Wait while other live processes hold claims on ``keys``; claim what they leave undone (a claim
        of a dead process is taken over). Returns the keys now claimed by this process; those still held
        when ``limit`` seconds have passed are in :attr:`busy`."""
        t0 = time.monotonic()
        keys = list(keys)
        mine: list[str] = []
        while keys:
            got, held = self.claim(keys, still_todo)
            mine += got
            keys = [c.key for c in held]
            if not keys:
                break
            if limit is not None and time.monotonic() - t0 > limit:
                self.busy += held
                break
            time.sleep(poll)
        return mine

    # ------------------------------------------------------------------ budget
    def reserve(self, worst_usd: float) -> float | None:
        """Keep ``worst_usd`` aside for a call about to be sent; None when it would overshoot the budget
        (then wait for calls in flight, whose real cost may leave room, or stop)."""
        held = float(worst_usd or 0.0) if self.max_cost is not None else 0.0
        if self.max_cost is not None and self.spent + self.reserved + held > self.max_cost:
            return None
        self.reserved += held
        return held

    def settle(self, held: float, cost_usd: float | None) -> None:
        """A call came back: its reservation ends and its real cost is spent."""
        self.reserved -= held
        self.spent += float(cost_usd or 0.0)

    def budget_line(self, next_usd: float) -> str:
        left = (self.max_cost or 0.0) - self.spent - self.reserved
        return (
            f"budget of ${self.max_cost:g} reached (spent ${self.spent:.4f}; the next request could cost "
            f"up to ${next_usd:.4f}, more than the ${left:.4f} left)"
        )

    # ------------------------------------------------------------------ journal and store
    def journal(self, key: str, payload) -> None:
        """Write a paid answer to the journal before anything else can fail; :class:`JournalFull` when it
        cannot be written (stop sending: the answer is still in hand, store it if you can)."""
        if not self._use_journal:
            return
        self.open_journal()
        journal = cast(Journal, self._journal)  # opened above (it raises when it cannot be)
        try:
            journal.append(key, payload)
        except OSError as exc:
            raise JournalFull(
                f"{journal.path}: cannot journal a paid answer ({exc.strerror or exc}); stopped "
                "sending at once: free some space and run the command again"
            ) from None
        self._unstored.add(key)

    def stored(self, keys: list[str]) -> None:
        """Inside the transaction that stores ``keys``' results: their claims end with it."""
        self.claims.release(list(keys))
        self.claims.refresh()
        self._unstored.difference_update(keys)
        self._replay_unstored.difference_update(keys)

    def replay(self, still_todo: Callable[[str], bool] | None = None) -> Iterator[tuple[str, dict]]:
        """(key, payload) of answers journaled by earlier runs in this scope (processes that are gone)
        and never stored: store each (and call :meth:`stored`) without a new request. A journal is
        removed once the work closes with none of it left unstored."""
        folder = self.journal_dir
        if not folder.is_dir():
            return
        prefix = _safe(self.scope) + "@"
        mine = self._journal.path if self._journal is not None else None
        for path in sorted(folder.glob(prefix + "*.jsonl")):
            if path == mine:
                continue
            try:
                _, host, pid, _ = path.name[len(prefix) - 1 :].split("@", 3)
                alive = self._journal_alive(path, host, int(pid))
            except (ValueError, OSError):
                alive = False
            if alive:  # another process is still working: its journal is its own
                continue
            self._replayed.append(path)
            for key, payload in read_journal(path):
                if still_todo is None or still_todo(key):
                    self._replay_unstored.add(key)
                    yield key, payload

    def _journal_alive(self, path: Path, host: str, pid: int) -> bool:
        """Whether the process that writes ``path`` may still be working: on another host, until it has
        not been written for as long as a claim lasts."""
        if host != _safe(self.claims.host):
            return time.time() - path.stat().st_mtime < self.claims.ttl
        return path in _OPEN if pid == os.getpid() else process_alive(pid)

    @property
    def unstored(self) -> int:
        """Answers journaled by this run and not stored (they wait in the journal for the next run)."""
        return len(self._unstored)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a claim left behind only expires
            self.claims.release_all()
        if self._journal is not None:
            self._journal.close(remove=not self._unstored)
        if not self._replay_unstored:
            for path in self._replayed:  # their answers are stored now (or were not needed)
                with contextlib.suppress(OSError):
                    path.unlink()
        with contextlib.suppress(OSError):
            self.journal_dir.rmdir()  # only when empty

    def __enter__(self) -> PaidWork:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
