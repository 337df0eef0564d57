"""The describe runner: one place for concurrency, retries, resume, the call log and output checks.

Backends only turn images into texts (:mod:`connote.describers.base`). The runner

* asks only for images that have no description in the set yet (resume; never pay twice),
* keeps at most ``concurrency`` calls in flight and stores every result the moment it arrives,
* retries transient errors with exponential backoff and jitter, honouring Retry-After,
* never retries permanent errors (they are stored as 'failed' with the reason),
* logs every call (input, output, tokens, cost, latency, error) in the study's ``calls`` table,
* checks every LLM output (:mod:`connote.describers.checks`): a refusal, empty, truncated, repetitive or
  word-salad text is asked for once more and, if still bad, stored as 'flagged' (kept apart, counted),
* keeps a ``max_cost`` budget: each call in flight holds its worst-case cost (``describer.reserve``), so
  a run stops before the budget rather than after it,
* estimates a run without sending anything (:meth:`DescribeRunner.estimate`, ``--dry-run``).

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
from dataclasses import dataclass, field

from connote.describers.base import PAPER_PROMPT, Description, ImageItem, as_describer
from connote.errors import DescribeError, UserError
from connote.stages import recorded_params
from connote.study import Study, now
from connote.study.calls import description_set_id


@dataclass
class DescribeSummary:
    set_name: str
    set_id: int
    describer: str
    total: int = 0  # distinct images in the collection
    already: int = 0  # described before this run
    described: int = 0  # newly described now
    flagged: int = 0
    failed: int = 0
    cost_usd: float = 0.0
    calls: int = 0
    stopped: str | None = None  # why the run stopped early (budget, interrupt)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (image path, reason)
    retried_flagged: int = 0  # outputs that failed a check and were asked for once more
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class DescribeEstimate:
    """What --dry-run prints: the work left and its expected tokens and cost (nothing is sent)."""

    set_name: str
    describer: str
    model: str | None
    total: int  # distinct images
    already: int  # described before
    images: int  # to describe now
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = None  # None when the price is unknown
    batch: bool = False
    notes: list[str] = field(default_factory=list)


def pending_items(study: Study, set_id: int, *, retry_flagged: bool = False) -> tuple[list[ImageItem], int]:
    """Distinct images without a (good) description in the set; and how many are done already."""
    rows = {r["sha256"]: r for r in study.description_rows(set_id)}
    todo: list[ImageItem] = []
    done = 0
    root = study.images_root
    for img in study.unique_images():
        row = rows.get(img["sha256"])
        transient = (
            row is not None and row["status"] == "failed" and (row["reason"] or "").startswith(TRANSIENT)
        )
        if row is not None and not transient and (row["status"] == "ok" or not retry_flagged):
            done += 1
            continue
        todo.append(ImageItem(img["sha256"], root / img["path"], img["path"]))
    return todo, done


#: Reason prefix of failures that may go away (rate limits, 5xx, timeouts): a re-run tries them again.
TRANSIENT = "transient: "

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
        self.max_cost = max_cost
        self.retry_bad = retry_bad  # ask once more when an output fails a check

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
        """Describe one batch with retries of transient errors; (results aligned with items, attempts)."""
        results: list[Description | DescribeError | None] = [None] * len(items)
        attempts = [0] * len(items)
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
                results[i] = res
                if isinstance(res, DescribeError) and not res.permanent and attempt < self.max_retries:
                    still.append(i)
                    if res.retry_after is not None:
                        retry_after = max(retry_after or 0.0, res.retry_after)
            todo = still
            if not todo:
                break
            stop.wait(_backoff(attempt, retry_after, self.backoff_base, self.backoff_cap))
        # A transient error cut short by a stop is not a result: the image stays pending.
        for i in todo:
            if stop.is_set() and isinstance(results[i], DescribeError) and attempts[i] <= self.max_retries:
                results[i] = None
        return results, attempts

    def _call(self, items: list[ImageItem], stop: threading.Event) -> list[tuple | None]:
        """Describe one batch: transient errors retried, outputs that fail a check asked for once more.

        Returns, per item, None (not done: stopped) or (result, attempts, earlier flagged outputs, problem).
        """
        results, attempts = self._attempt(items, stop)
        earlier: list[list[tuple[Description, str]]] = [[] for _ in items]
        problems: list[str | None] = [None] * len(items)
        redo = []
        for i, res in enumerate(results):
            if isinstance(res, Description):
                problems[i] = self.problem(res)
                if problems[i] and self.retry_bad and self.describer.retry_bad_outputs:
                    redo.append(i)
        if redo and not stop.is_set():
            again, more = self._attempt([items[i] for i in redo], stop)
            for i, res, n in zip(redo, again, more, strict=False):
                attempts[i] += n
                if res is None:
                    continue
                earlier[i].append((results[i], problems[i]))
                results[i] = res
                problems[i] = self.problem(res) if isinstance(res, Description) else None
        return [
            None if r is None else (r, a, e, p)
            for r, a, e, p in zip(results, attempts, earlier, problems, strict=False)
        ]

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
        d = self.describer
        name, set_id, prompt = self.open_set(study)
        items, done = pending_items(study, set_id, retry_flagged=retry_flagged)
        summary = DescribeSummary(name, set_id, d.spec, total=len(items) + done, already=done)
        if not items:
            return summary
        if not study.unique_images():
            raise UserError(f"{study.path}: no readable images to describe")
        d.prepare()  # e.g. no API key: one clear error before anything is sent

        batch_size = max(1, int(d.batch_size))
        concurrency = max(1, int(d.concurrency))
        batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(items), desc=f"Describing ({d.spec})", unit="img")
        stop = threading.Event()
        spent = 0.0
        reserved = 0.0
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="describe") as pool:
            inflight: dict[Future, tuple[list[ImageItem], float]] = {}
            queue = iter(batches)
            pending_batch = None

            def collect(fut: Future) -> None:
                nonlocal spent, reserved
                batch, held = inflight.pop(fut)
                reserved -= held
                try:
                    results = fut.result()
                except UserError:
                    stop.set()
                    raise
                # The call log and the description land together: a kill between them cannot make an
                # image look undescribed after it was paid for.
                with study.transaction():
                    for item, entry in zip(batch, results, strict=False):
                        if entry is not None:
                            spent += self.store(study, set_id, item, entry, prompt, summary)
                if bar is not None:
                    bar.update(sum(e is not None for e in results))
                    if spent:
                        bar.set_postfix(cost=f"${spent:.4f}")

            try:
                while True:
                    while len(inflight) < concurrency and not stop.is_set():
                        batch = pending_batch or next(queue, None)
                        pending_batch = None
                        if batch is None:
                            break
                        held = self._reserve(batch)
                        if self.max_cost is not None and spent + reserved + held > self.max_cost:
                            if inflight:  # wait for in-flight calls: their real cost may leave room
                                pending_batch = batch
                                break
                            summary.stopped = f"budget of ${self.max_cost:g} reached (spent ${spent:.4f})"
                            stop.set()
                            break
                        reserved += held
                        inflight[pool.submit(self._call, batch, stop)] = (batch, held)
                    if not inflight:
                        break
                    finished, _ = wait(inflight, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        collect(fut)
            except KeyboardInterrupt:
                # Stop sending; keep what the calls already in flight bring back (they are paid for).
                stop.set()
                summary.stopped = "interrupted"
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
                raise
            finally:
                if bar is not None:
                    bar.close()
                summary.cost_usd = spent
        return summary

    def store(self, study: Study, set_id: int, item: ImageItem, entry, prompt, summary) -> float:
        d = self.describer
        res, attempts, earlier, problem = entry
        params = recorded_params(d)
        summary.calls += attempts
        model = d.model
        cost = 0.0
        for bad, reason in earlier:  # outputs that failed a check and were asked for again: logged and paid
            summary.retried_flagged += 1
            study.record_call(
                stage="describe",
                backend=d.spec,
                model=bad.model or model,
                input_ref=item.sha256,
                prompt=prompt,
                params={**params, "response": bad.extra, "retried": True},
                output=bad.text,
                status="flagged",
                error=reason,
                input_tokens=bad.input_tokens,
                output_tokens=bad.output_tokens,
                cost_usd=bad.cost_usd,
                latency_s=bad.latency_s,
            )
            cost += float(bad.cost_usd or 0.0)
            summary.input_tokens += bad.input_tokens or 0
            summary.output_tokens += bad.output_tokens or 0
        if isinstance(res, DescribeError):
            reason = str(res) if res.permanent else TRANSIENT + str(res)
            call_id = study.record_call(
                stage="describe",
                backend=d.spec,
                model=model,
                input_ref=item.sha256,
                prompt=prompt,
                params=params,
                status="error",
                error=reason,
            )
            study.put_description(set_id, item.sha256, None, "failed", reason, call_id, attempts)
            summary.failed += 1
            summary.problems.append((item.rel_path, reason))
            return cost
        call_id = study.record_call(
            stage="describe",
            backend=d.spec,
            model=res.model or model,
            input_ref=item.sha256,
            prompt=prompt,
            params={**params, **({"response": res.extra} if res.extra else {})},
            output=res.text,
            status="flagged" if problem else "ok",
            error=problem,
            input_tokens=res.input_tokens,
            output_tokens=res.output_tokens,
            cost_usd=res.cost_usd,
            latency_s=res.latency_s,
            started=now(),
        )
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
