"""Batch mode (``--batch``): the OpenAI Batch API, at its discount, resumable across processes.

1. The pending images become a JSONL file, one ``/v1/chat/completions`` request per image
   (``custom_id`` = the image's sha256), uploaded with the Files API (purpose 'batch').
2. A batch is created; its id is written to the study (``meta`` key ``describe_batch:SET_ID``) at once,
   so a re-run - after Ctrl-C, a crash or days later - polls the same batch instead of paying twice.
   (The uploaded file id is written before the batch is created; a batch made but not recorded is found
   again by its input file.)
3. Polling until the batch ends, then the output file (and error file) are read and every line stored
   as a description (checks apply; flagged ones can be sent again with ``--retry-flagged``). Images the
   batch did not answer stay pending for the next run.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

from connote.describers.base import DescribeError, Description, ImageItem
from connote.describers.openai_api import OpenAIDescriber
from connote.describers.work import DescribeSummary, pending_items
from connote.errors import UserError
from connote.study import Study
from connote.study.calls import batch_state, forget_batch_state, save_batch_state
from connote.study.claims import Claims, describe_others

if TYPE_CHECKING:  # the runner calls batch mode (settle_pending_batch) and is passed in
    from connote.describers.runner import DescribeRunner

TERMINAL = {"completed", "failed", "expired", "cancelled"}


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _client(d):
    if not isinstance(d, OpenAIDescriber):
        raise UserError(f"--batch works with openai:MODEL describers only, not {d.spec}")
    return d.client()


def submit(study: Study, runner: DescribeRunner, set_id: int, items: list[ImageItem], prompt: str) -> dict:
    """Upload the requests and create the batch; returns the state stored in the study."""
    import io

    d: Any = runner.describer  # an OpenAI-protocol describer (request_body, parse)
    client = _client(d)
    lines = []
    for item in items:
        try:
            body = d.request_body(item, prompt)
        except DescribeError as exc:
            study.put_description(set_id, item.sha256, None, "failed", str(exc), None, 1)
            continue
        lines.append(
            json.dumps(
                {"custom_id": item.sha256, "method": "POST", "url": "/v1/chat/completions", "body": body}
            )
        )
    if not lines:
        return {}
    data = ("\n".join(lines) + "\n").encode()
    state: dict = {"n": len(lines), "submitted": time.time()}
    f = client.files.create(file=("connote-batch.jsonl", io.BytesIO(data)), purpose="batch")
    state["file_id"] = f.id
    save_batch_state(study, set_id, state)
    b = client.batches.create(
        input_file_id=f.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"connote_set": str(set_id)},
    )
    state["batch_id"] = b.id
    save_batch_state(study, set_id, state)
    return state


def _find_batch(client, file_id: str) -> str | None:
    for b in client.batches.list(limit=100):
        if getattr(b, "input_file_id", None) == file_id:
            return b.id
    return None


def collect(
    study: Study, runner: DescribeRunner, set_id: int, batch, prompt: str | None, summary: DescribeSummary
) -> int:
    """Store every line of a finished batch's output and error files; returns how many were stored."""
    d: Any = runner.describer  # an OpenAI-protocol describer (parse)
    client = _client(d)
    wanted = {r["sha256"]: r["path"] for r in study.unique_images()}
    root = study.images_root
    n = 0
    for file_id in (getattr(batch, "output_file_id", None), getattr(batch, "error_file_id", None)):
        if not file_id:
            continue
        text = client.files.content(file_id).text
        for line in filter(None, (x.strip() for x in text.splitlines())):
            rec = json.loads(line)
            sha = rec.get("custom_id")
            if sha not in wanted:
                continue
            item = ImageItem(sha, root / wanted[sha], wanted[sha])
            resp = rec.get("response") or {}
            status = resp.get("status_code")
            res: Description | DescribeError
            if status == 200:
                try:
                    res = d.parse(resp.get("body") or {}, batch=True)
                except DescribeError as exc:
                    res = exc
            else:
                err = (resp.get("body") or {}).get("error") or rec.get("error") or {}
                msg = err.get("message") if isinstance(err, dict) else str(err)
                res = DescribeError(f"batch item failed (HTTP {status}): {msg}", permanent=True)
            problem = runner.problem(res) if isinstance(res, Description) else None
            with study.transaction():  # the call log and the description land together
                summary.cost_usd += runner.store(study, set_id, item, (res, 1, [], problem), prompt, summary)
            n += 1
    return n


#: The claim a process holds while it submits a set's batch (see connote.study.claims).
SUBMITTING = "batch:submitting"


def run_batch(
    study: Study,
    runner: DescribeRunner,
    *,
    retry_flagged: bool = False,
    poll_interval: float = 30.0,
    wait: bool = True,
    progress: bool = True,
    timeout: float | None = None,
) -> DescribeSummary:
    d = runner.describer
    name, set_id, prompt = runner.open_set(study)
    items, done = pending_items(study, set_id, retry_flagged=retry_flagged)
    summary = DescribeSummary(name, set_id, d.spec, total=len(items) + done, already=done)
    client = _client(d)
    state = _known_state(study, client, set_id)
    claims = None
    if not state:
        if not items:
            return summary
        # One batch per set at a time: a second process that starts while the first is submitting is
        # told so (and picks the batch up when run again) instead of submitting, and paying for, it twice.
        claims = Claims(study.con, set_id)
        mine, busy = claims.take([SUBMITTING], lambda _key: not batch_state(study, set_id))
        if busy:
            summary.stopped = (
                f"another connote process ({describe_others(busy)}) is submitting a batch for this "
                "description set; run the same command again to collect it"
            )
            return summary
        if not mine:  # another process submitted it meanwhile: resume that one
            claims = None
            state = batch_state(study, set_id)
        else:  # what another process collected or is describing since this one looked is not sent again
            before = len(items)
            items, _ = pending_items(study, set_id, retry_flagged=retry_flagged)
            taken, _busy = claims.take([it.sha256 for it in items], lambda _sha: True)
            items = [it for it in items if it.sha256 in set(taken)]
            summary.elsewhere = before - len(items)
            if not items:
                claims.release_all()
                return summary
    try:
        state = _submit_unless_there(
            study, runner, set_id, items, prompt, summary, state, progress, retry_flagged
        )
    finally:
        if claims is not None:
            claims.release_all()
    if not state:
        return summary
    t0 = time.monotonic()
    while True:
        batch = client.batches.retrieve(state["batch_id"])
        if batch.status in TERMINAL:
            break
        if not wait or (timeout is not None and time.monotonic() - t0 > timeout):
            summary.stopped = (
                f"batch {state['batch_id']} is {batch.status}; run the same command again to collect it"
            )
            return summary
        if progress:
            counts = getattr(batch, "request_counts", None)
            got = f" ({counts.completed}/{counts.total})" if counts is not None and counts.total else ""
            _say(f"Batch {state['batch_id']}: {batch.status}{got}")
        time.sleep(poll_interval)
    stored = collect(study, runner, set_id, batch, prompt, summary)
    forget_batch_state(study, set_id)
    if batch.status != "completed":
        summary.stopped = f"batch {state['batch_id']} ended as {batch.status} ({stored} result(s) stored)"
    summary.calls = stored
    return summary


def _known_state(study: Study, client, set_id: int) -> dict:
    """The state of the set's batch in flight, its id looked up when the process that submitted it
    was stopped between uploading the requests and recording the batch; {} when there is none."""
    state = batch_state(study, set_id)
    if state.get("file_id") and not state.get("batch_id"):
        state["batch_id"] = _find_batch(client, state["file_id"])
        if state["batch_id"] is None:  # the upload never became a batch: nothing was paid for
            forget_batch_state(study, set_id)
            return {}
        save_batch_state(study, set_id, state)
    return state


def settle_pending_batch(study: Study, runner: DescribeRunner, set_id: int, prompt, summary) -> bool:
    """``describe`` without ``--batch`` found a batch of this set in flight (it is paid for): collect it
    when it has ended (True: the run goes on with what it left), else refuse with one line that says how to
    collect or cancel it, so that nothing in it is paid for twice."""
    d = runner.describer
    d.prepare()
    client = _client(d)
    state = _known_state(study, client, set_id)
    if not state:
        return False
    batch = client.batches.retrieve(state["batch_id"])
    if batch.status in TERMINAL:
        stored = collect(study, runner, set_id, batch, prompt, summary)
        forget_batch_state(study, set_id)
        summary.from_batch = stored
        summary.note = f"batch {state['batch_id']} had ended ({batch.status}): its {stored} result(s) stored"
        return True
    raise UserError(
        f"{study.path}: batch {state['batch_id']} of description set {summary.set_name!r} is still "
        f"{batch.status} ({state.get('n', '?')} image(s), paid for); describing now would pay for them "
        "twice: run the same command with --batch to wait for it and collect it, or with --cancel-batch "
        "to cancel it"
    )


def cancel_batch(study: Study, runner: DescribeRunner, *, poll_interval: float = 2.0, polls: int = 30):
    """``describe --cancel-batch``: cancel the set's batch in flight and store what it had finished (those
    answers are paid for); the images it leaves go back to the next run."""
    d = runner.describer
    name, set_id, prompt = runner.open_set(study)
    items, done = pending_items(study, set_id)
    summary = DescribeSummary(name, set_id, d.spec, total=len(items) + done, already=done)
    d.prepare()
    client = _client(d)
    state = _known_state(study, client, set_id)
    if not state:
        raise UserError(f"{study.path}: description set {name!r} has no batch in flight to cancel")
    batch = client.batches.retrieve(state["batch_id"])
    if batch.status not in TERMINAL:
        batch = client.batches.cancel(state["batch_id"])
    for _ in range(polls):  # 'cancelling' until the requests in progress end
        if batch.status in TERMINAL:
            break
        time.sleep(poll_interval)
        batch = client.batches.retrieve(state["batch_id"])
    if batch.status not in TERMINAL:
        raise UserError(
            f"{study.path}: batch {state['batch_id']} is still {batch.status}; run --cancel-batch again "
            "to collect what it finished"
        )
    stored = collect(study, runner, set_id, batch, prompt, summary)
    forget_batch_state(study, set_id)
    summary.from_batch = stored
    summary.note = (
        f"batch {state['batch_id']} {batch.status if batch.status != 'cancelled' else 'cancelled'}: "
        f"{stored} result(s) it had finished stored; the images it left are described by the next run"
    )
    return summary


def _submit_unless_there(
    study, runner, set_id, items, prompt, summary, state, progress, retry_flagged
) -> dict:
    """Submit the pending items as a batch unless ``state`` names one already; the state to follow."""
    d = runner.describer
    if not state:
        if runner.max_cost is not None:
            est = runner.estimate(study, retry_flagged=retry_flagged, batch=True)
            if est.cost_usd is None:
                raise UserError(f"--max-cost needs the price of {d.model!r}: add it to prices.toml")
            per = est.cost_usd / max(1, est.images)
            room = int(runner.max_cost // per) if per > 0 else len(items)
            if room < len(items):
                items = items[: max(0, room)]
                summary.stopped = f"budget of ${runner.max_cost:.2f}: only {len(items)} image(s) sent"
            if not items:
                return {}
        state = submit(study, runner, set_id, items, prompt)
        if not state:
            return {}
        if progress:
            _say(f"Batch {state['batch_id']} submitted: {state['n']} request(s).")
    elif progress:
        _say(f"Resuming batch {state['batch_id']} ({state.get('n', '?')} request(s)).")
    return state
