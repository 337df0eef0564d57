"""The describe runner: one place for concurrency, retries, resume, the call log and output checks.

Backends only turn images into texts (:mod:`connote.describers.base`). The runner

* asks only for images that have no description in the set yet (resume; never pay twice),
* keeps at most ``concurrency`` calls in flight and stores every result the moment it arrives,
* retries transient errors with exponential backoff and jitter, honouring Retry-After,
* never retries permanent errors (they are stored as 'failed' with the reason),
* logs every request (input, output, tokens, cost, latency, error) in the study's ``calls`` table, the
  attempts that were retried included: each may have been billed,
* stops sending at the first authentication error (HTTP 401/403: every other request would fail the
  same way) and leaves the images not done for the next run,
* shares the work with other ``describe`` processes on the same study through claims in the database
  (:mod:`connote.study.claims`): an image claimed or finished by another process is skipped, so two
  processes never pay for the same image,
* checks every LLM output (:mod:`connote.describers.checks`): a refusal, empty, truncated, repetitive or
  word-salad text is asked for once more and, if still bad, stored as 'flagged' (kept apart, counted),
* keeps a ``max_cost`` budget: each call in flight holds its worst-case cost (``describer.reserve``), so
  a run stops before the budget rather than after it,
* estimates a run without sending anything (:meth:`DescribeRunner.estimate`, ``--dry-run``),
* journals every answer before it is stored (:mod:`connote.paid`): a store that fails (disk full) stops
  sending at once, and the next run stores the journaled answers without a request,
* never describes again the images of a batch in flight (``--batch``): it is collected once it has ended,
  or the run refuses and says how to collect or cancel it.

:meth:`DescribeRunner.send` and :meth:`DescribeRunner.replay` are the one paid-call loop: ``label`` (and
the LLM coders) run their calls through them with their own store.

Failures that may go away (rate limits, 5xx, timeouts, dropped connections) that outlast the retries are
stored as 'failed' with a ``transient:`` reason and asked for again by the next run; permanent ones only
with ``--retry-flagged``.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from connote import numbers
from connote.describers.base import PAPER_PROMPT, Description, ImageItem, as_describer
from connote.describers.sending import (
    TRANSIENT,
    ClaimQueue,
    drain,
    interrupts_deferred,
    keep_answers,
    log_retried_errors,
    progress_bar,
    replay_journal,
    stored_nothing_more,
)
from connote.describers.work import DescribeEstimate, DescribeSummary, pending, pending_items, row_state
from connote.errors import DescribeError, UserError
from connote.paid import PaidWork
from connote.params import recorded_params
from connote.study import Study
from connote.study.calls import (
    batch_state,
    description_row,
    description_set_id,
    log_answer,
    log_retried_output,
)
from connote.study.claims import describe_others

#: Seconds of the first retry's backoff (doubling, with jitter) and the most one wait may last.
BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0


def _backoff(attempt: int, retry_after: float | None, base: float, cap: float) -> float:
    if retry_after is not None:
        return min(max(retry_after, 0.0), cap * 4)
    return min(cap, base * (2**attempt)) * (0.5 + random.random())


class DescribeRunner:
    """Runs a describer over the images of a study that still need a description."""

    def __init__(
        self,
        describer,
        *,
        prompt: str = PAPER_PROMPT,
        name: str | None = None,
        max_retries: int = 4,
        backoff_base: float | None = None,
        backoff_cap: float | None = None,
        check: Callable[[str], str | None] | None = None,
        max_cost: float | None = None,
        retry_bad: bool = True,
    ):
        self.describer = as_describer(describer)
        self.prompt = prompt
        self.name = name
        self.max_retries = max_retries
        self.backoff_base = BACKOFF_BASE if backoff_base is None else backoff_base
        self.backoff_cap = BACKOFF_CAP if backoff_cap is None else backoff_cap
        self.check = check
        self.max_cost = numbers.budget(max_cost)  # nan, inf or < 0 would switch the budget off
        self.retry_bad = retry_bad  # ask once more when an output fails a check
        self._fatal: DescribeError | None = None  # the first authentication error of a run

    # -------------------------------------------------------------- one batch, with retries
    def problem(self, res: Description) -> str | None:
        """Why an output is not usable (metadata first, then the text check), or None."""
        reason = (res.extra or {}).get("problem")
        if not reason and (res.extra or {}).get("finish_reason") in {"length", "content_filter"}:
            from connote.describers.checks import check_response

            reason = check_response(res.extra["finish_reason"])
        if not reason and self.check is not None and self.describer.uses_prompt:
            reason = self.check(res.text)  # LLM outputs only: fixed-form describers (offline) are not judged
        return reason

    def _attempt(self, items: list[ImageItem], stop: threading.Event):
        """Describe one batch with retries of transient errors; (results aligned with items, attempts,
        the errors of attempts that were tried again or cut short: requests that may have been billed).
        A fatal error (authentication) stops every worker."""
        results: list[Description | DescribeError | None] = [None] * len(items)
        attempts = [0] * len(items)
        superseded: list[list[DescribeError]] = [[] for _ in items]
        todo = list(range(len(items)))
        for attempt in range(self.max_retries + 1):
            if stop.is_set():
                break
            batch = [items[i] for i in todo]
            t0 = time.perf_counter()
            try:
                out = self.describer.describe(batch, self.prompt)
            except DescribeError as exc:
                out = [exc] * len(batch)
            except UserError:
                raise
            except Exception as exc:  # noqa: BLE001 - a backend bug must not end the run
                out = [DescribeError(f"{type(exc).__name__}: {exc}", permanent=True)] * len(batch)
            elapsed = time.perf_counter() - t0
            retry_after = None
            still = []
            for i, res in zip(todo, out, strict=False):
                attempts[i] += 1
                if isinstance(res, Description) and res.latency_s is None:
                    res.latency_s = elapsed / max(1, len(batch))
                prev = results[i]
                if isinstance(prev, DescribeError):
                    superseded[i].append(prev)
                results[i] = res
                if isinstance(res, DescribeError) and getattr(res, "fatal", False):
                    if self._fatal is None:
                        self._fatal = res
                    stop.set()
                    continue
                if isinstance(res, DescribeError) and not res.permanent and attempt < self.max_retries:
                    still.append(i)
                    if res.retry_after is not None:
                        retry_after = max(retry_after or 0.0, res.retry_after)
            todo = still
            if not todo:
                break
            stop.wait(_backoff(attempt, retry_after, self.backoff_base, self.backoff_cap))
        # A transient error cut short by a stop is not a result: the image stays pending (its request
        # is still logged).
        for i in todo:
            prev = results[i]
            if stop.is_set() and isinstance(prev, DescribeError) and attempts[i] <= self.max_retries:
                superseded[i].append(prev)
                results[i] = None
        return results, attempts, superseded

    def _call(self, items: list[ImageItem], stop: threading.Event) -> list[tuple | None]:
        """Describe one batch: transient errors retried, outputs that fail a check asked for once more.

        Returns, per item, (result or None when stopped before one came, attempts, earlier flagged
        outputs, problem, errors of attempts that were tried again).
        """
        results, attempts, superseded = self._attempt(items, stop)
        earlier: list[list[tuple[Description, str]]] = [[] for _ in items]
        problems: list[str | None] = [None] * len(items)
        redo = []
        for i, res in enumerate(results):
            if isinstance(res, Description):
                problems[i] = self.problem(res)
                if problems[i] and self.retry_bad and self.describer.retry_bad_outputs:
                    redo.append(i)
        if redo and not stop.is_set():
            again, more, errs = self._attempt([items[i] for i in redo], stop)
            for i, res, n, err in zip(redo, again, more, errs, strict=False):
                attempts[i] += n
                superseded[i] += err
                if res is None:
                    continue
                prev, why = results[i], problems[i]
                if isinstance(prev, Description) and why:  # always so: only flagged outputs are asked again
                    earlier[i].append((prev, why))
                results[i] = res
                problems[i] = self.problem(res) if isinstance(res, Description) else None
        return list(zip(results, attempts, earlier, problems, superseded, strict=False))

    # -------------------------------------------------------------- the whole study
    def open_set(self, study: Study) -> tuple[str, int, str | None]:
        d = self.describer
        prompt = self.prompt if d.uses_prompt else None
        name = self.name or default_set_name(d.spec, prompt)
        set_id = study.description_set(name, d.spec, d.model, prompt, recorded_params(d))
        return name, set_id, prompt

    def estimate(self, study: Study, *, retry_flagged: bool = False, batch: bool = False) -> DescribeEstimate:
        """The images a run would describe and their expected tokens and cost; sends nothing."""
        d = self.describer
        prompt = self.prompt if d.uses_prompt else None
        name = self.name or default_set_name(d.spec, prompt)
        set_id = description_set_id(study, name)
        if set_id is not None:
            items, done = pending_items(study, set_id, retry_flagged=retry_flagged)
        else:
            root = study.images_root
            items = [ImageItem(r["sha256"], root / r["path"], r["path"]) for r in study.unique_images()]
            done = 0
        est = DescribeEstimate(
            name,
            d.spec,
            d.model,
            total=len(items) + done,
            already=done,
            images=len(items),
            batch=batch,
        )
        pending = batch_state(study, set_id) if set_id is not None else {}
        if pending:
            est.notes.append(
                f"a batch ({pending.get('batch_id') or 'being submitted'}, {pending.get('n', '?')} image(s)) is "
                "in flight and paid for: it is collected, not sent again"
            )
        sizes = {r["path"]: (r["width"], r["height"]) for r in study.images() if r["width"]}
        unknown = False
        cost = 0.0
        for item in items:
            guess = d.estimate(item, prompt or "", sizes.get(item.rel_path))
            if guess is None:  # no per-token cost
                est.input_tokens = est.output_tokens = 0
                est.cost_usd = 0.0
                est.notes.append("a local describer: no per-token cost")
                return est
            tin, tout, usd = guess
            est.input_tokens += tin
            est.output_tokens += tout
            if usd is None:
                unknown = True
            else:
                cost += usd
        discount = d.batch_discount() if batch else 1.0
        est.cost_usd = None if unknown else cost * discount
        if unknown:
            est.notes.append(
                f"no price known for model {d.model!r}: add it to prices.toml "
                "(or a file named by CONNOTE_PRICES)"
            )
        return est

    def _reserve(self, batch: list[ImageItem]) -> float:
        """Budget kept aside for a batch while it is in flight (worst case), so a budget is not overshot."""
        d = self.describer
        if self.max_cost is None:
            return 0.0
        total = 0.0
        for item in batch:
            usd = d.reserve(item, self.prompt or "")
            if usd is None:
                raise UserError(
                    f"--max-cost needs the price of {d.model!r}: add it to "
                    "prices.toml (or a file named by CONNOTE_PRICES)"
                )
            total += usd
        return total

    def run(self, study: Study, *, retry_flagged: bool = False, progress: bool = True) -> DescribeSummary:
        """Describe what the set still needs, through the paid-call path (:mod:`connote.paid`): answers an
        earlier run journaled and could not store are stored first, without a request; then the rest is
        claimed, sent, journaled and stored a batch at a time."""
        d = self.describer
        name, set_id, prompt = self.open_set(study)
        items, done, seen = pending(study, set_id, retry_flagged)
        summary = DescribeSummary(name, set_id, d.spec, total=len(items) + done, already=done)
        if not items:
            return summary
        if not study.has_images():
            raise UserError(f"{study.path}: no readable images to describe")
        if batch_state(study, set_id):  # a batch is paid for: collect it, or say so and send nothing
            from connote.describers.batch import settle_pending_batch

            if settle_pending_batch(study, self, set_id, prompt, summary):
                items, _, seen = pending(study, set_id, retry_flagged)  # what the batch left
                if not items:
                    return summary
        d.prepare()  # e.g. no API key: one clear error before anything is sent
        self._fatal = None

        def still_todo(sha: str) -> bool:
            # nobody stored anything for it since this run looked, and no batch took it meanwhile
            return (
                sha in seen
                and row_state(description_row(study, set_id, sha)) == seen[sha]
                and not batch_state(study, set_id)
            )

        def store_one(item: ImageItem, entry) -> float:
            return self.store(study, set_id, item, entry, prompt, summary)

        with PaidWork(study, set_id, stage="describe", max_cost=self.max_cost) as work:
            items = replay_journal(study, work, items, still_todo, store_one, summary)
            try:
                self.send(study, work, items, still_todo, store_one, summary, progress=progress)
            finally:
                summary.cost_usd += work.spent
        if work.busy:
            summary.elsewhere += len(work.busy)
            summary.elsewhere_note = (
                f"{len(work.busy)} image(s) were still being described by another connote process "
                f"({describe_others(work.busy)}); run again later for any it leaves undone"
            )
        if self._fatal is not None:
            key = d.api_key_env
            raise UserError(
                f"{study.path}: {d.spec} refused the request ({self._fatal}); stopped at this first "
                f"authentication error, nothing more was sent; {summary.described} image(s) described "
                f"in this run, {summary.total - summary.already - summary.described} left to do: "
                + (f"check {key} and " if key else "")
                + "run the same command again"
            )
        return summary

    # -------------------------------------------------------------- the paid-call path of every stage
    def send_all(
        self, study, work: PaidWork, items, still_todo, store_one, summary, *, progress, what
    ) -> None:
        """For work whose every answer each process needs (labels, LLM coding): answers an earlier run
        journaled are stored first (:func:`connote.describers.sending.replay_journal`), the rest sent (:meth:`send`), and items another live
        process holds waited for (their answers read back by the caller) and taken over if it dies."""
        left = replay_journal(study, work, items, still_todo, store_one, summary)
        self.send(study, work, left, still_todo, store_one, summary, progress=progress, what=what)
        by_key = {it.sha256: it for it in items}
        while work.busy and not summary.stopped:
            keys = [c.key for c in work.busy]
            work.busy = []
            mine = work.wait_for_others(keys, still_todo)
            if mine:  # it died: its items are this process's now
                taken = [by_key[k] for k in mine]
                self.send(study, work, taken, still_todo, store_one, summary, progress=False)

    def send(
        self,
        study,
        work: PaidWork,
        items,
        still_todo,
        store_one,
        summary,
        *,
        progress=True,
        what="Describing",
    ) -> None:
        """The one send loop of every paid stage: claim (``still_todo(key)`` asked in the claim's
        transaction; ``item.sha256`` is the key), reserve the worst case (``describer.reserve``), send a
        batch at a time with ``concurrency`` in flight, journal every answer, then store it with
        ``store_one(item, entry) -> cost`` in one transaction with the end of its claim. ``summary`` gets
        ``stopped`` (budget, interrupt) and ``elsewhere`` (done by another process). A failed store or
        journal stops sending at once (a one-line :class:`UserError`)."""
        d = self.describer
        concurrency = max(1, int(d.concurrency))
        unit = "img" if what == "Describing" else "item"
        bar = progress_bar(progress, len(items), f"{what} ({d.spec})", unit)
        queue = ClaimQueue(work, items, max(1, int(d.batch_size)), still_todo, summary, bar)
        stop = threading.Event()
        failure: list[BaseException] = []  # the first store that failed (disk full): nothing more is sent
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="describe") as pool:
            inflight: dict[Future, tuple[list[ImageItem], float]] = {}

            def collect(fut: Future) -> None:
                # A Ctrl-C here would drop answers already paid for: taken off the calls in flight but
                # not yet journaled, so drain() no longer sees them. It waits until they are kept.
                with interrupts_deferred():
                    batch, held = inflight.pop(fut)
                    try:
                        results = fut.result()
                    except UserError:
                        stop.set()
                        raise
                    cost = keep_answers(study, work, batch, results, store_one, failure)
                    work.settle(held, cost)
                if failure:
                    stop.set()
                if bar is not None:
                    bar.update(sum(e[0] is not None for e in results))
                    if work.spent:
                        bar.set_postfix(cost=f"${work.spent:.4f}")

            held_back = None
            try:
                while True:
                    held_back = self._fill(pool, inflight, concurrency, queue, work, stop, summary, held_back)
                    if not inflight:
                        break
                    finished, _ = wait(inflight, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        collect(fut)
            except KeyboardInterrupt:
                # Stop sending; keep what the calls already in flight bring back (they are paid for).
                stop.set()
                summary.stopped = "interrupted"
                drain(inflight, collect)
                raise
            finally:
                if bar is not None:
                    bar.close()
        if failure:
            raise stored_nothing_more(study, failure[0], work.unstored)

    def _fill(self, pool, inflight: dict, concurrency: int, queue, work: PaidWork, stop, summary, held_back):
        """Send claimed batches until ``concurrency`` are in flight, each with its worst case kept aside;
        returns a batch held back until calls in flight come back (their real cost may leave room)."""
        while len(inflight) < concurrency and not stop.is_set():
            batch = held_back or queue.next()
            held_back = None
            if batch is None:
                return None
            worst = self._reserve(batch)
            held = work.reserve(worst)
            if held is None:
                if inflight:
                    return batch
                summary.stopped = work.budget_line(worst)
                stop.set()
                return None
            inflight[pool.submit(self._call, batch, stop)] = (batch, held)
        return held_back

    def store(self, study: Study, set_id: int, item: ImageItem, entry, prompt, summary) -> float:
        d = self.describer
        res, attempts, earlier, problem, *rest = entry  # the Batch API's entries have no retries
        superseded = rest[0] if rest else []
        params = recorded_params(d)
        model = d.model
        where = dict(stage="describe", backend=d.spec, model=model, input_ref=item.sha256, prompt=prompt)
        log_retried_errors(study, **where, params=params, errors=superseded)
        if res is None:
            summary.calls += len(superseded)
            return 0.0
        summary.calls += attempts
        cost = 0.0
        for bad, reason in earlier:  # outputs that failed a check and were asked for again: logged and paid
            summary.retried_flagged += 1
            log_retried_output(
                study, **where, params={**params, "response": bad.extra}, bad=bad, reason=reason
            )
            cost += float(bad.cost_usd or 0.0)
            summary.input_tokens += bad.input_tokens or 0
            summary.output_tokens += bad.output_tokens or 0
        if isinstance(res, DescribeError):
            fatal = getattr(res, "fatal", False)
            reason = str(res) if res.permanent or fatal else TRANSIENT + str(res)
            call_id = study.record_call(**where, params=params, status="error", error=reason)
            if fatal:  # not the image's fault: it stays to do for the next run
                return cost
            study.put_description(set_id, item.sha256, None, "failed", reason, call_id, attempts)
            summary.failed += 1
            summary.problems.append((item.rel_path, reason))
            return cost
        extra = {"response": res.extra} if res.extra else {}
        call_id = log_answer(study, **where, params={**params, **extra}, answer=res, problem=problem)
        summary.input_tokens += res.input_tokens or 0
        summary.output_tokens += res.output_tokens or 0
        if problem:
            study.put_description(set_id, item.sha256, res.text, "flagged", problem, call_id, attempts)
            summary.flagged += 1
            summary.problems.append((item.rel_path, problem))
        else:
            study.put_description(set_id, item.sha256, res.text, "ok", None, call_id, attempts)
            summary.described += 1
        return cost + float(res.cost_usd or 0.0)


def default_set_name(spec: str, prompt: str | None) -> str:
    """'offline', 'openai:gpt-4-turbo', or with a short prompt hash when the prompt is not the paper's."""
    if prompt is None or prompt == PAPER_PROMPT:
        return spec
    import hashlib

    return f"{spec}#{hashlib.sha256(prompt.encode()).hexdigest()[:6]}"
