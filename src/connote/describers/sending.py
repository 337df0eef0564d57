"""Parts of the paid-call send loop (:meth:`connote.describers.runner.DescribeRunner.send`, which describe,
labels and the LLM coder share): the queue that hands out claimed batches, the progress bar, keeping what
the calls in flight bring back after Ctrl-C, the one-line error of a run that could not store, the log rows
of attempts that were tried again, and the journal form of an answer (:mod:`connote.paid`).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import signal
import sqlite3
import threading
from concurrent.futures import wait

from connote.describers.base import Description, ImageItem
from connote.errors import DescribeError, UserError
from connote.paid import JOURNAL_DIR, JournalFull, PaidWork
from connote.study import Study

#: Reason prefix of failures that may go away (rate limits, 5xx, timeouts): a re-run tries them again.
TRANSIENT = "transient: "


def progress_bar(progress: bool, total: int, desc: str, unit: str):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit)


class ClaimQueue:
    """The items of a run, handed out a claimed batch at a time: an item claimed by another process is
    looked at again once the rest is done (a claim of a process that died meanwhile is taken over; what
    the other finished is skipped)."""

    def __init__(self, work: PaidWork, items, batch_size: int, still_todo, summary, bar):
        self.work = work
        self.queue = collections.deque(items)  # taken from the front a batch at a time (never re-copied)
        self.deferred: list[ImageItem] = []  # claimed by another process when their turn came
        self.batch_size = batch_size
        self.still_todo = still_todo
        self.summary = summary
        self.bar = bar
        self.second_look = False

    def next(self) -> list[ImageItem] | None:
        """The next images this process may send, claimed; None when there are none left."""
        while True:
            if not self.queue:
                if self.second_look or not self.deferred:
                    return None
                self.second_look, self.queue, self.deferred = True, collections.deque(self.deferred), []
            chunk = [self.queue.popleft() for _ in range(min(self.batch_size, len(self.queue)))]
            mine, held = self.work.claim([it.sha256 for it in chunk], self.still_todo)
            taken = set(mine)
            others = {c.key for c in held}
            self.deferred += [it for it in chunk if it.sha256 in others]
            if self.second_look:
                self.work.busy += held
            gone = [it for it in chunk if it.sha256 not in taken and it.sha256 not in others]
            self.summary.elsewhere += len(gone)
            if self.bar is not None and gone:
                self.bar.update(len(gone))
            batch = [it for it in chunk if it.sha256 in taken]
            if batch:
                return batch


@contextlib.contextmanager
def interrupts_deferred():
    """Ctrl-C waits until the block ends: a paid answer taken off the calls in flight is journaled and
    stored before the run stops, never dropped between the two. A second Ctrl-C inside the block stops at
    once (the user insists). Off the main thread (where Python runs no signal handlers) it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def later(signum, frame):
        if pending:
            raise KeyboardInterrupt
        pending.append(signum)

    before = signal.signal(signal.SIGINT, later)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)
    if pending:
        if callable(before):
            before(pending[0], None)
        elif before == signal.SIG_DFL:
            raise KeyboardInterrupt


def drain(inflight: dict, collect) -> None:
    """After Ctrl-C: cancel what has not started, keep what the calls in flight bring back."""
    for fut in list(inflight):
        if fut.cancel():
            inflight.pop(fut)
    try:
        for fut in list(inflight):
            wait([fut], timeout=60)
            if fut.done():
                collect(fut)
    except BaseException:  # noqa: BLE001 - a second Ctrl-C: leave now
        pass


def stored_nothing_more(study: Study, exc: BaseException, unstored: int) -> UserError:
    """The one-line error of a run whose answers could not be stored (disk full, ...): it stopped sending
    at once; the paid answers it holds in the journal are stored, without a request, by the next run."""
    if isinstance(exc, UserError):
        return exc
    from connote.study.db import explain

    line = (explain(exc, study.path) or f"{study.path}: cannot store results ({exc})").rstrip(".")
    kept = (
        f"; {unstored} paid answer(s) are kept in {study.path / JOURNAL_DIR} and are stored without a new "
        "request by the next run"
        if unstored
        else ""
    )
    return UserError(f"{line}; stopped sending at once{kept}")


def log_retried_errors(study, stage, backend, model, input_ref, prompt, params, errors) -> None:
    """Log the attempts that were tried again (or cut short by a stop): each may have been billed."""
    for err in errors:
        study.record_call(
            stage=stage,
            backend=backend,
            model=model,
            input_ref=input_ref,
            prompt=prompt,
            params={**params, "retried": True},
            status="error",
            error=str(err) if err.permanent else TRANSIENT + str(err),
        )


def log_ask(study, where: dict, entry, count, *, problem: str | None = None) -> tuple[int | None, float]:
    """Log every call of one ask of the send loop that answers in text (labels, the LLM coders): the
    attempts tried again, the answers asked for again (each paid), and the error or the answer it ended
    with. ``where`` holds the log's stage, backend, model, input_ref, prompt and params; ``count(answer)``
    counts a paid answer's tokens and returns its cost; ``problem``: what the caller found wrong with the
    answer besides the runner's checks (it is logged as flagged). Returns (the answer's call id, or None when it
    ended in an error or was cut short; what the calls cost)."""
    from connote.study.calls import log_answer, log_retried_output

    result, _attempts, earlier, checked, superseded = entry
    log_retried_errors(study, errors=superseded, **where)
    if result is None:
        return None, 0.0
    cost = 0.0
    for bad, reason in earlier:  # answers not in the form asked for, asked again: logged and paid
        log_retried_output(study, bad=bad, reason=reason, **where)
        cost += count(bad)
    if isinstance(result, DescribeError):
        study.record_call(**where, status="error", error=str(result))
        return None, cost
    call_id = log_answer(study, **where, answer=result, problem=checked or problem)
    return call_id, cost + count(result)


def entry_to_json(entry) -> dict:
    """A runner entry (result, attempts, earlier flagged outputs, problem, retried errors) as JSON, for
    the journal of paid answers."""
    res, attempts, earlier, problem, superseded = entry
    return {
        "result": _result_json(res),
        "attempts": attempts,
        "earlier": [[_result_json(d), reason] for d, reason in earlier],
        "problem": problem,
        "superseded": [_result_json(e) for e in superseded],
    }


def entry_from_json(obj: dict) -> tuple:
    return (
        _result_from(obj["result"]),
        obj["attempts"],
        [(_result_from(d), reason) for d, reason in obj["earlier"]],
        obj["problem"],
        [_result_from(e) for e in obj["superseded"]],
    )


def _result_json(res) -> dict | None:
    if res is None:
        return None
    if isinstance(res, DescribeError):
        return {"error": str(res), "permanent": res.permanent, "fatal": getattr(res, "fatal", False)}
    return {"description": dataclasses.asdict(res)}


def _result_from(obj: dict | None):
    if obj is None:
        return None
    if "error" in obj:
        return DescribeError(obj["error"], permanent=obj["permanent"], fatal=obj["fatal"])
    return Description(**obj["description"])


def replay_journal(study, work: PaidWork, items, still_todo, store_one, summary) -> list:
    """Store the answers an earlier run was paid for and journaled but could not store (disk full,
    kill -9) with ``store_one(item, entry) -> cost`` (inside a transaction): no new request. Returns the
    items still to send; ``summary.from_journal`` counts the others."""
    by_sha = {it.sha256: it for it in items}
    replayed = {}
    for sha, payload in work.replay(lambda s: s in by_sha):
        replayed[sha] = entry_from_json(payload)
    if not replayed:
        return items
    mine, _ = work.claim(list(replayed), still_todo)
    for sha in mine:
        with study.transaction():
            summary.cost_usd += store_one(by_sha[sha], replayed[sha])
            work.stored([sha])
        summary.from_journal += 1
    return [it for it in items if it.sha256 not in replayed]


def keep_answers(study, work: PaidWork, batch, results, store_one, failure) -> float:
    """Journal a batch's answers (each may have been billed), then store them with the call log and
    the end of their claims in one transaction. When the journal or the database fails, ``failure``
    gets the error and the caller sends nothing more; what was journaled waits for the next run."""
    keep = [(it, e) for it, e in zip(batch, results, strict=False) if e[0] is not None or e[4]]
    try:
        for item, entry in keep:
            work.journal(item.sha256, entry_to_json(entry))
    except JournalFull as exc:
        failure.append(exc)
    if failure and not isinstance(failure[0], JournalFull):
        return 0.0  # the database failed before: these wait in the journal
    cost = 0.0
    try:
        # The call log, the description and the end of the claim land together: a kill between them
        # cannot make an image look undescribed after it was paid for.
        with study.transaction():
            for item, entry in zip(batch, results, strict=False):
                cost += store_one(item, entry)
            work.stored([item.sha256 for item in batch])
    except sqlite3.Error as exc:
        failure.insert(0, exc)
        return 0.0
    return cost
