"""Cluster labels: a short name (2-6 words) and a one-sentence summary for every cluster of a run.

An LLM behind any OpenAI-compatible endpoint (``openai:MODEL``, ``ollama:MODEL``, ``--base-url``) reads
each cluster's keywords and its most typical descriptions (the members nearest the cluster's centroid)
and answers ``Label: ...`` / ``Summary: ...``. The calls go through the describers' machinery: the
describer's client, prices and error mapping, the runner's retries and output check (an answer that does
not fit the form is asked for once more, then kept as 'flagged'), every call in the ``calls`` table
(stage 'label') with tokens and cost. A call is cached by its whole input: asking again, or for a derived
run whose cluster reads the same, costs nothing. Offline (``llm=None``) the keywords stand in.

Labels are stored per run and labeller (the model spec, with a prompt hash when the prompt is not the
default), with the model and prompt.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass, field

import numpy as np

from connote import numbers
from connote.defaults import DEFAULT_LABEL_DESCRIPTIONS, DEFAULT_TOP_K
from connote.describers.base import DescribeError, Description
from connote.errors import UserError
from connote.study import Study
from connote.study.calls import last_call_id

LABEL_PROMPT = """You name the clusters of a study that groups images by what they mean.
Here are the keywords of one cluster and descriptions of its most typical images.

Keywords: {keywords}

Descriptions:
{descriptions}

Answer in exactly two lines:
Label: a name for the cluster, 2 to 6 words
Summary: one sentence on what these images have in common"""

KEYWORDS = "keywords"  # the labeller name of labels made offline from the keywords
#: The answers in the call log that are kept and not asked for again: good ones and flagged ones (paid for).
KEPT = ("ok", "flagged")
MIN_WORDS, MAX_WORDS = 2, 6


# ---------------------------------------------------------------------------------------------- pure parts
#: Longest label and summary stored, in characters (a model that rambles is cut there, and flagged).
MAX_LABEL_CHARS, MAX_SUMMARY_CHARS = 120, 1000


def parse_label(text: str | None) -> tuple[str, str | None, str | None]:
    """:func:`read_label`, with a label or summary over :data:`MAX_LABEL_CHARS` or
    :data:`MAX_SUMMARY_CHARS` cut to it and flagged (a field that long is no label, and would be over the
    csv module's default limit in an export)."""
    label, summary, problem = read_label(text)
    cut = []
    if len(label) > MAX_LABEL_CHARS:
        cut.append(f"label of {len(label):,} characters cut to {MAX_LABEL_CHARS}")
        label = label[:MAX_LABEL_CHARS].rstrip() + "…"
    if summary is not None and len(str(summary)) > MAX_SUMMARY_CHARS:
        cut.append(f"summary of {len(str(summary)):,} characters cut to {MAX_SUMMARY_CHARS}")
        summary = str(summary)[:MAX_SUMMARY_CHARS].rstrip() + "…"
    return label, summary, "; ".join([*cut, *([problem] if problem else [])]) or None


def read_label(text: str | None) -> tuple[str, str | None, str | None]:
    """(label, summary, problem) from an answer: 'Label: ...' and 'Summary: ...' lines (markdown and quotes
    tolerated) or a JSON object with 'label' and 'summary'. ``problem`` says why it does not fit the form."""
    text = (text or "").strip()
    if not text:
        return "", None, "empty"
    label = summary = None
    if text.startswith("{"):
        try:
            obj = json.loads(text)
            label, summary = str(obj.get("label") or "").strip() or None, obj.get("summary")
        except (ValueError, AttributeError):
            pass
    if label is None:
        for line in text.splitlines():
            m = re.match(r"^\W*(label|name|summary)\W*:\s*(.+)$", line.strip(), flags=re.I)
            if m:
                value = m.group(2).strip(" *_\"'“”\t")
                if m.group(1).lower() == "summary":
                    summary = summary or value
                else:
                    label = label or value
    if label is None:
        first = text.splitlines()[0].strip().strip("*_\"'“”")
        return " ".join(first.split()[:MAX_WORDS]), summary, "no 'Label:' line"
    label = label.rstrip(".")
    n = len(label.split())
    if not MIN_WORDS <= n <= MAX_WORDS:
        return label, summary, f"label of {n} word(s) ({MIN_WORDS}-{MAX_WORDS} wanted)"
    if not summary:
        return label, None, "no 'Summary:' line"
    return label, str(summary).strip(), None


def check_answer(text: str | None) -> str | None:
    """The runner's output check for label answers: None when usable, else the reason."""
    return parse_label(text)[2]


def keyword_label(keywords: list[str]) -> tuple[str, str]:
    """The offline stand-in: the top three keywords as the label, the top eight in the summary."""
    if not keywords:
        return "(no keywords)", "No keywords: run `connote explain` first."
    return ", ".join(keywords[:3]), "Descriptions of these images often say: " + ", ".join(keywords[:8]) + "."


def prompt_text(template: str, keywords: list[str], descriptions: list[str], max_chars: int = 600) -> str:
    """The prompt for one cluster: ``template`` with {keywords} and {descriptions} filled in (added at the
    end when the template names neither)."""
    kw = ", ".join(keywords) or "(none)"
    ds = "\n".join(f"- {' '.join(d.split())[:max_chars]}" for d in descriptions) or "(none)"
    if "{keywords}" not in template and "{descriptions}" not in template:
        template = template.rstrip() + "\n\nKeywords: {keywords}\n\nDescriptions:\n{descriptions}"
    return template.replace("{keywords}", kw).replace("{descriptions}", ds)


def typical(X: np.ndarray, labels: np.ndarray, cluster: int, n: int) -> list[int]:
    """Row indices of the ``n`` members of ``cluster`` nearest its centroid (cosine), nearest first."""
    from connote.derive import unit

    rows = np.flatnonzero(np.asarray(labels) == cluster)
    if len(rows) == 0:
        return []
    U = unit(X[rows])
    centre = unit(U.mean(axis=0, keepdims=True))[0]
    order = np.argsort(-(U @ centre), kind="stable")[:n]
    return [int(rows[i]) for i in order]


# ---------------------------------------------------------------------------------------------- text calls
@dataclass(frozen=True)
class LabelItem:
    """One cluster to label, in the shape the describe runner hands to a describer."""

    sha256: str  # the cache key of the call (hash of model, parameters and prompt)
    rel_path: str  # 'cluster 3', for messages
    prompt: str
    cluster: int


class TextChat:
    """A chat-completions describer (openai:, ollama:) asked text-only prompts: its client, prices, error
    mapping and key handling, one message per item."""

    uses_prompt = True
    batch_size = 1
    retry_bad_outputs = True

    def __init__(self, describer, max_tokens: int = 120):
        self.inner = describer
        self.spec = describer.spec
        self.model = describer.model
        self.concurrency = describer.concurrency
        self.max_tokens = int(max_tokens)

    def params(self) -> dict:
        from connote.params import recorded_params

        return {
            "base_url": recorded_params(self.inner).get("base_url"),  # without credentials
            "max_tokens": self.max_tokens,
            "temperature": getattr(self.inner, "temperature", None),
        }

    def prepare(self) -> None:
        self.inner.prepare()

    @property
    def price(self):
        return self.inner.price

    def reserve(self, item: LabelItem, prompt: str) -> float | None:
        """The most one call may cost (the runner keeps it aside from a budget); None: no price known."""
        price = self.price
        return None if price is None else price.cost(*self.estimate_tokens(item))

    def estimate_tokens(self, item: LabelItem) -> tuple[int, int]:
        from connote.describers.pricing import text_tokens

        return text_tokens(item.prompt) + 10, self.max_tokens

    def describe(self, items: list[LabelItem], prompt: str) -> list[Description | DescribeError]:
        out: list[Description | DescribeError] = []
        for item in items:
            body = {
                "model": self.model,
                "messages": [{"role": "user", "content": item.prompt}],
                "max_tokens": self.max_tokens,
            }
            if getattr(self.inner, "temperature", None) is not None:
                body["temperature"] = self.inner.temperature
            out.append(self.inner.complete(lambda body=body: body, fatal=False))
        return out


# ---------------------------------------------------------------------------------------------- results
@dataclass
class ClusterLabel:
    cluster: int
    label: str
    summary: str | None
    status: str = "ok"  # 'ok', 'flagged' (did not fit the form), 'failed' (no answer: keywords stand in)
    cached: bool = False
    problem: str | None = None


@dataclass
class LabelResult:
    run_id: int
    labeller: str
    model: str | None
    prompt: str | None
    labels: list[ClusterLabel] = field(default_factory=list)
    calls: int = 0  # calls sent now (retries included)
    cached: int = 0  # clusters answered from the call log without a call
    flagged_kept: int = 0  # of those, answers flagged earlier and kept (not asked again)
    elsewhere: int = 0  # clusters another process was answering at the same time (read back)
    from_journal: int = 0  # answers an earlier run paid for and could not store, stored now
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    stopped: str | None = None
    dry_run: bool = False
    estimate_cost_usd: float | None = None  # dry run: the expected cost (None: price unknown)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- the study
def _cluster_material(study: Study, run, n_descriptions: int, top_k: int) -> dict[int, tuple[list, list]]:
    """cluster -> (keywords, typical descriptions) for every cluster of the run."""
    from connote.derive import run_vectors

    keywords = study.keywords(run["id"])
    texts: dict[str, str] = {}
    if run["description_set"]:
        texts = study.descriptions(study.resolve_description_set(run["description_set"])["id"])
    assignments = study.assignments(run["id"])
    clusters = sorted(set(assignments.values()) - {-1})
    out = {}
    try:
        shas, X, labels = run_vectors(study, run)
    except UserError:  # no vectors (e.g. removed): the members in name order stand in
        shas, X, labels = sorted(assignments), None, None
    for c in clusters:
        if X is not None and labels is not None:
            ordered = [shas[i] for i in typical(X, labels, c, len(shas))]
        else:
            ordered = [s for s in shas if assignments[s] == c]
        chosen: list[str] = []  # the most typical distinct texts (identical captions are common)
        for s in ordered:
            text = texts.get(s)
            if text and text not in chosen:
                chosen.append(text)
            if len(chosen) >= n_descriptions:
                break
        out[c] = (keywords.get(c, [])[:top_k], chosen)
    return out


def labeller_name(spec: str, prompt: str | None) -> str:
    if prompt is None or prompt == LABEL_PROMPT:
        return spec
    return f"{spec}#{hashlib.sha256(prompt.encode()).hexdigest()[:6]}"


def label(
    study: Study | str | os.PathLike,
    run_id: int | None = None,
    llm: str | object | None = None,
    *,
    prompt: str | None = None,
    n_descriptions: int = DEFAULT_LABEL_DESCRIPTIONS,
    top_k: int = DEFAULT_TOP_K,
    max_cost: float | None = None,
    dry_run: bool = False,
    max_tokens: int = 120,
    progress: bool = True,
    retry_flagged: bool = False,
    **options,
) -> LabelResult:
    """Label every cluster of a run (the latest by default) with ``llm`` (``openai:MODEL``, ``ollama:MODEL``,
    or a describer object); without one, the keywords stand in. Returns what was stored. An answer that
    was flagged (did not fit the form) is kept and not asked for again unless ``retry_flagged``."""
    from connote import registry
    from connote.explaining import explain

    max_cost = numbers.budget(max_cost)  # nan, inf or < 0 would switch the budget off
    n_descriptions = numbers.whole(n_descriptions, "descriptions per cluster", low=1)
    study = study if isinstance(study, Study) else Study.open(study)
    run = study.get_run(run_id)
    if not study.keywords(run["id"]) and run["description_set"]:
        explain(study, run["id"], top_k=top_k)
    material = _cluster_material(study, run, n_descriptions, top_k)
    if not material:
        raise UserError(f"run {run['id']} has no clusters to label")
    if llm is None or llm == KEYWORDS:
        return _keyword_labels(study, run["id"], material, dry_run)
    if not any(kw or ds for kw, ds in material.values()):
        raise UserError(
            f"run {run['id']} has neither keywords nor descriptions to label its clusters from "
            f"(run `connote explain {study.path} {run['id']}`, or cluster text features)"
        )
    inner = registry.describer(llm, **{k: v for k, v in options.items() if v is not None})
    if not hasattr(inner, "client") or not hasattr(inner, "parse"):
        raise UserError(
            f"{getattr(inner, 'spec', llm)}: labels need a chat model (openai:MODEL or ollama:MODEL)"
        )
    chat = TextChat(inner, max_tokens=max_tokens)
    template = prompt or LABEL_PROMPT
    name = labeller_name(chat.spec, template)
    res = LabelResult(run["id"], name, chat.model, template, dry_run=dry_run)
    params = chat.params()
    items = _items(chat, params, template, material)
    cached = {
        it.cluster: study.latest_call("label", it.sha256, ("ok",) if retry_flagged else KEPT) for it in items
    }
    todo = [it for it in items if cached[it.cluster] is None]
    if dry_run:
        return _estimate(chat, items, todo, res)
    rows = _answer(
        study, chat, items, cached, template, params, res,
        max_cost=max_cost, retry_flagged=retry_flagged, progress=progress,
    )  # fmt: skip
    _fill_failed(rows, items, material, chat, template, res)
    study.put_labels(run["id"], name, rows)
    res.labels.sort(key=lambda x: x.cluster)
    return res


def _keyword_labels(study: Study, run_id: int, material: dict, dry_run: bool) -> LabelResult:
    """Offline: the top keywords stand in for a label (stored unless ``dry_run``)."""
    res = LabelResult(run_id, KEYWORDS, None, None, dry_run=dry_run)
    for c, (kw, _) in material.items():
        lab, summary = keyword_label(kw)
        res.labels.append(ClusterLabel(c, lab, summary))
    if not dry_run:
        study.put_labels(run_id, KEYWORDS, [asdict(x) | {"model": None} for x in res.labels])
    return res


def _items(chat: TextChat, params: dict, template: str, material: dict) -> list[LabelItem]:
    """One call per cluster, keyed by the hash of its whole input (the call log is the cache)."""
    items = []
    for c, (kw, descriptions) in material.items():
        text = prompt_text(template, kw, descriptions)
        key = hashlib.sha256(
            json.dumps([chat.spec, chat.model, params, text], sort_keys=True).encode()
        ).hexdigest()
        items.append(LabelItem(key, f"cluster {c}", text, c))
    return items


def _estimate(chat: TextChat, items: list, todo: list, res: LabelResult) -> LabelResult:
    """``--dry-run``: the tokens and cost of the calls to make; nothing is sent."""
    price = chat.price
    cost = 0.0
    for it in todo:
        tin, tout = chat.estimate_tokens(it)
        res.input_tokens += tin
        res.output_tokens += tout
        cost += price.cost(tin, tout) if price else 0.0
    res.estimate_cost_usd = cost if price or not todo else None
    res.cached = len(items) - len(todo)
    res.notes.append(f"{len(todo)} call(s) to make, {res.cached} answered from the call log; nothing sent")
    if price is None and todo:
        res.notes.append(f"no price known for {chat.model!r}: add it to prices.toml (or CONNOTE_PRICES)")
    return res


def _answer(study, chat, items, cached, template, params, res, *, max_cost, retry_flagged, progress) -> list:
    """The label rows of every cluster with an answer: from the call log, or asked now through the
    paid-call path (other label processes on the run share the work; their answers are read back)."""
    rows: list[dict] = []
    answered: set[int] = set()

    def from_log(it: LabelItem, row) -> None:
        lab, summary, problem = parse_label(row["output"])
        res.cached += 1
        res.flagged_kept += row["status"] == "flagged"
        rows.append(_row(it, lab, summary, problem or row["error"], chat, row["id"], res, cached=True))
        answered.add(it.cluster)

    for it in items:
        if cached[it.cluster] is not None:
            from_log(it, cached[it.cluster])
    todo = [it for it in items if cached[it.cluster] is None]
    if todo:
        _call_all(
            study, chat, todo, template, params, res, rows,
            max_cost=max_cost, progress=progress, retry_flagged=retry_flagged,
        )  # fmt: skip
        answered.update(r["cluster"] for r in rows)
        for it in todo:  # answered by another process meanwhile: read from the call log
            row = study.latest_call("label", it.sha256, KEPT)
            if it.cluster not in answered and row is not None:
                from_log(it, row)
                res.elsewhere += 1
    if res.flagged_kept and not retry_flagged:
        res.notes.append(
            f"{res.flagged_kept} flagged answer(s) kept from the call log (not asked again); "
            "ask again with --retry-flagged"
        )
    return rows


def _fill_failed(rows, items, material, chat, template, res) -> None:
    """No answer (failed, stopped): the keywords stand in, marked as such."""
    done = {r["cluster"] for r in rows}
    for it in items:
        if it.cluster not in done:
            lab, summary = keyword_label(material[it.cluster][0])
            rows.append(
                {
                    "cluster": it.cluster,
                    "label": lab,
                    "summary": summary,
                    "status": "failed",
                    "model": chat.model,
                    "prompt": template,
                    "call_id": None,
                }
            )
            res.labels.append(ClusterLabel(it.cluster, lab, summary, "failed", problem="no answer"))


def _row(it: LabelItem, lab, summary, problem, chat, call_id, res: LabelResult, cached=False) -> dict:
    status = "flagged" if problem else "ok"
    res.labels.append(ClusterLabel(it.cluster, lab, summary, status, cached, problem))
    return {
        "cluster": it.cluster,
        "label": lab,
        "summary": summary,
        "status": status,
        "model": chat.model,
        "prompt": res.prompt,
        "call_id": call_id,
    }


def _call_all(study, chat, todo, template, params, res, rows, *, max_cost, progress, retry_flagged) -> None:
    """Send the calls through the describe runner's paid-call path (claims shared with other processes,
    the budget, the journal, each answer logged and stored as it arrives); clusters another live process
    holds are waited for and taken over if it dies."""
    from connote.describers.runner import DescribeRunner
    from connote.paid import PaidWork
    from connote.study.claims import scope

    chat.prepare()
    if max_cost is not None and chat.price is None:
        raise UserError(
            f"--max-cost needs the price of {chat.model!r}: add it to prices.toml (or CONNOTE_PRICES)"
        )
    runner = DescribeRunner(chat, prompt=template, check=check_answer, max_cost=max_cost)
    since = last_call_id(study)  # with --retry-flagged, a flagged answer newer than this is this run's
    answered: set[str] = set()

    def still_todo(key: str) -> bool:  # asked in the claim's transaction
        row = study.latest_call("label", key, KEPT)
        return key not in answered and (
            row is None or (retry_flagged and row["status"] == "flagged" and row["id"] <= since)
        )

    def store_one(it: LabelItem, entry) -> float:
        answered.add(it.sha256)
        return _store_call(study, chat, it, entry, params, res, rows)

    with PaidWork(study, scope("label", res.run_id, res.labeller), stage="label", max_cost=max_cost) as work:
        try:
            runner.send_all(
                study, work, todo, still_todo, store_one, res, progress=progress, what="Labelling"
            )
        except KeyboardInterrupt:
            res.stopped = "interrupted"
            raise
        finally:
            res.cost_usd += work.spent


def _store_call(study, chat, it: LabelItem, entry, params, res: LabelResult, rows: list) -> float:
    """Log one cluster's calls and keep its label row; returns what they cost."""
    from connote.describers.sending import log_ask

    result, attempts, _earlier, problem, superseded = entry
    res.calls += len(superseded) if result is None else attempts
    where = dict(
        stage="label",
        backend=chat.spec,
        model=chat.model,
        input_ref=it.sha256,
        prompt=it.prompt,
        params=params,
    )
    call_id, cost = log_ask(study, where, entry, lambda answer: _count(res, answer))
    if isinstance(result, DescribeError):
        res.notes.append(f"cluster {it.cluster}: {result}")
    elif result is not None:
        lab, summary, parse_problem = parse_label(result.text)
        rows.append(_row(it, lab, summary, problem or parse_problem, chat, call_id, res))
    return cost


def _count(res: LabelResult, d: Description) -> float:
    """Count a paid answer's tokens; its cost is returned (the paid-call path adds it up)."""
    res.input_tokens += d.input_tokens or 0
    res.output_tokens += d.output_tokens or 0
    return float(d.cost_usd or 0.0)
