"""The model-call log as the describe and embed steps use it (:class:`ModelCall`, :func:`log_calls`), and
the state of calls still in flight (a submitted OpenAI batch). Study storage only: no model code here."""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass
class ModelCall:
    """One call to a model as a stage reports it (an API embedder's request); the runner logs it."""

    backend: str
    model: str | None
    input_ref: str | None = None
    params: dict = field(default_factory=dict)
    status: str = "ok"  # ok | error
    error: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    latency_s: float | None = None
    started: str | None = None


def call_count(study, stage: str | None = None) -> int:
    """How many model calls the study has logged (of one stage, e.g. 'describe' or 'embed')."""
    if stage:
        return int(study.con.execute("SELECT COUNT(*) FROM calls WHERE stage=?", (stage,)).fetchone()[0])
    return int(study.con.execute("SELECT COUNT(*) FROM calls").fetchone()[0])


def last_call_id(study) -> int:
    """The id of the latest call in the log (0 when there is none)."""
    return int(study.con.execute("SELECT COALESCE(MAX(id), 0) FROM calls").fetchone()[0])


def description_set_id(study, name: str) -> int | None:
    """The id of the description set called ``name``, or None when there is none yet (nothing is made)."""
    row = study.con.execute("SELECT id FROM description_sets WHERE name=?", (name,)).fetchone()
    return None if row is None else int(row["id"])


def _batch_key(set_id: int) -> str:
    return f"describe_batch:{set_id}"


def batch_state(study, set_id: int) -> dict:
    """What is known of the OpenAI batch describing set ``set_id`` (empty when none is in flight)."""
    return json.loads(study.get_meta(_batch_key(set_id)) or "{}")


def save_batch_state(study, set_id: int, state: dict) -> None:
    """Write the batch's state at once, so that a re-run finds the same batch instead of paying twice."""
    study.set_meta(_batch_key(set_id), json.dumps(state))


def forget_batch_state(study, set_id: int) -> None:
    """The batch's results are stored: the next run starts a new one."""
    study.con.execute("DELETE FROM meta WHERE key=?", (_batch_key(set_id),))


def log_calls(study, stage: str, calls) -> None:
    """Write the model calls a stage reported (:class:`ModelCall`) to the call log."""
    for c in calls:
        study.record_call(
            stage=stage,
            backend=c.backend,
            model=c.model,
            input_ref=c.input_ref,
            params=c.params,
            status=c.status,
            error=c.error,
            input_tokens=c.input_tokens,
            output_tokens=c.output_tokens,
            cost_usd=c.cost_usd,
            latency_s=c.latency_s,
            started=c.started,
        )


def log_answer(
    study,
    *,
    stage: str,
    backend: str,
    model,
    input_ref,
    prompt,
    params: dict,
    answer,
    problem: str | None = None,
    retried: bool = False,
) -> int:
    """Log a model's answer (a :class:`~connote.describers.base.Description`: text, tokens, cost, latency)
    as one call: status 'ok', or 'flagged' with the ``problem``; ``retried`` marks an answer that failed
    an output check and was asked for again (paid for all the same). Returns the call's id."""
    return study.record_call(
        stage=stage,
        backend=backend,
        model=answer.model or model,
        input_ref=input_ref,
        prompt=prompt,
        params={**params, "retried": True} if retried else params,
        output=answer.text,
        status="flagged" if problem else "ok",
        error=problem,
        input_tokens=answer.input_tokens,
        output_tokens=answer.output_tokens,
        cost_usd=answer.cost_usd,
        latency_s=answer.latency_s,
    )


def log_retried_output(
    study, *, stage: str, backend: str, model, input_ref, prompt, params: dict, bad, reason
) -> int:
    """Log an answer that failed an output check and was asked for again: it was paid for, so it is a
    row (status 'flagged', the reason, ``retried`` in its params) like every other call."""
    common = dict(stage=stage, backend=backend, model=model, input_ref=input_ref, prompt=prompt)
    return log_answer(study, **common, params=params, answer=bad, problem=reason, retried=True)


def description_row(study, set_id: int, sha256: str):
    """The description row of one image in a set as stored now (None when there is none)."""
    return study.con.execute(
        "SELECT * FROM descriptions WHERE set_id=? AND sha256=?", (set_id, sha256)
    ).fetchone()
