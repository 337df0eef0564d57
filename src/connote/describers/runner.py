"""The describe runner: one place for concurrency, retries, resume, the call log and output checks.

Backends only turn images into texts (:mod:`connote.describers.base`). The runner

* asks only for images that have no description in the set yet (resume; never pay twice),
* keeps at most ``concurrency`` calls in flight and stores every result the moment it arrives,
* retries transient errors with exponential backoff and jitter, honouring Retry-After,
* never retries permanent errors (they are stored as 'failed' with the reason),
* logs every call (input, output, tokens, cost, latency, error) in the study's ``calls`` table.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from connote.describers.base import PAPER_PROMPT, Description, ImageItem
from connote.errors import DescribeError, UserError
from connote.study import Study, now


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


def pending_items(study: Study, set_id: int, *, retry_flagged: bool = False) -> tuple[list[ImageItem], int]:
    """Distinct images without a (good) description in the set; and how many are done already."""
    rows = {r["sha256"]: r for r in study.description_rows(set_id)}
    todo: list[ImageItem] = []
    done = 0
    root = study.images_root
    for img in study.unique_images():
        row = rows.get(img["sha256"])
        if row is not None and (row["status"] == "ok" or not retry_flagged):
            done += 1
            continue
        todo.append(ImageItem(img["sha256"], root / img["path"], img["path"]))
    return todo, done


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
        backoff_base: float = 1.0,
        backoff_cap: float = 30.0,
        check: Callable[[str], str | None] | None = None,
        max_cost: float | None = None,
    ):
        self.describer = describer
        self.prompt = prompt
        self.name = name
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.check = check
        self.max_cost = max_cost

    # -------------------------------------------------------------- one batch, with retries
    def _call(self, items: list[ImageItem], stop: threading.Event) -> list[tuple[Description | DescribeError, int]]:
        """Describe one batch; returns (result, attempts) per item. Transient errors are retried here."""
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
            except Exception as exc:  # noqa: BLE001 - a backend bug must not end the run
                out = [DescribeError(f"{type(exc).__name__}: {exc}", permanent=True)] * len(batch)
            elapsed = time.perf_counter() - t0
            retry_after = None
            still = []
            for i, res in zip(todo, out):
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
        return [(r, a) for r, a in zip(results, attempts) if r is not None]

    # -------------------------------------------------------------- the whole study
    def run(self, study: Study, *, retry_flagged: bool = False, progress: bool = True) -> DescribeSummary:
        d = self.describer
        prompt = self.prompt if getattr(d, "uses_prompt", True) else None
        name = self.name or default_set_name(d.spec, prompt)
        set_id = study.description_set(name, d.spec, getattr(d, "model", None), prompt, d.params())
        items, done = pending_items(study, set_id, retry_flagged=retry_flagged)
        summary = DescribeSummary(name, set_id, d.spec, total=len(items) + done, already=done)
        if not items:
            return summary
        if not study.unique_images():
            raise UserError(f"{study.path}: no readable images to describe")

        batch_size = max(1, int(getattr(d, "batch_size", 1)))
        concurrency = max(1, int(getattr(d, "concurrency", 1)))
        batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(items), desc=f"Describing ({d.spec})", unit="img")
        stop = threading.Event()
        spent = 0.0
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="describe") as pool:
            inflight: dict[Future, list[ImageItem]] = {}
            queue = iter(batches)
            try:
                while True:
                    while len(inflight) < concurrency and not stop.is_set():
                        if self.max_cost is not None and spent >= self.max_cost:
                            summary.stopped = f"budget of ${self.max_cost:.2f} reached"
                            stop.set()
                            break
                        batch = next(queue, None)
                        if batch is None:
                            break
                        inflight[pool.submit(self._call, batch, stop)] = batch
                    if not inflight:
                        break
                    finished, _ = wait(inflight, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        batch = inflight.pop(fut)
                        for item, (res, attempts) in zip(batch, fut.result()):
                            spent += self._store(study, set_id, item, res, attempts, prompt, summary)
                        if bar is not None:
                            bar.update(len(batch))
                            if spent:
                                bar.set_postfix(cost=f"${spent:.4f}")
            except KeyboardInterrupt:
                stop.set()
                summary.stopped = "interrupted"
                for fut in inflight:
                    fut.cancel()
                raise
            finally:
                if bar is not None:
                    bar.close()
        summary.cost_usd = spent
        return summary

    def _store(self, study: Study, set_id: int, item: ImageItem, res, attempts: int, prompt, summary) -> float:
        d = self.describer
        params = d.params()
        summary.calls += attempts
        if isinstance(res, DescribeError):
            call_id = study.record_call(stage="describe", backend=d.spec, model=getattr(d, "model", None),
                                        input_ref=item.sha256, prompt=prompt, params=params, status="error",
                                        error=str(res))
            study.put_description(set_id, item.sha256, None, "failed", str(res), call_id, attempts)
            summary.failed += 1
            summary.problems.append((item.rel_path, str(res)))
            return 0.0
        problem = self.check(res.text) if self.check else None
        call_id = study.record_call(
            stage="describe", backend=d.spec, model=res.model or getattr(d, "model", None), input_ref=item.sha256,
            prompt=prompt, params={**params, **({"response": res.extra} if res.extra else {})}, output=res.text,
            status="flagged" if problem else "ok", error=problem, input_tokens=res.input_tokens,
            output_tokens=res.output_tokens, cost_usd=res.cost_usd, latency_s=res.latency_s, started=now(),
        )
        if problem:
            study.put_description(set_id, item.sha256, res.text, "flagged", problem, call_id, attempts)
            summary.flagged += 1
            summary.problems.append((item.rel_path, problem))
        else:
            study.put_description(set_id, item.sha256, res.text, "ok", None, call_id, attempts)
            summary.described += 1
        return float(res.cost_usd or 0.0)


def default_set_name(spec: str, prompt: str | None) -> str:
    """'offline', 'openai:gpt-4-turbo', or with a short prompt hash when the prompt is not the paper's."""
    if prompt is None or prompt == PAPER_PROMPT:
        return spec
    import hashlib

    return f"{spec}#{hashlib.sha256(prompt.encode()).hexdigest()[:6]}"
