"""A vision LLM as one more coder: it rates the pairs of a pair sample (RQ1) and matches the sets of a set
sample (RQ2) beside the human coders, and is stored apart from them so that its agreement with them can be
measured (:func:`connote.coding.pairs.score_pairs`, :func:`connote.coding.sets.score_sets`).

Each ask (a pair in one order, or a set) is an item the describe runner drives through a chat describer
(``openai:MODEL``, ``ollama:MODEL``, ``hf:MODEL``): the runner's retries, error mapping and output check (an
answer that is not the JSON object asked for is asked again once, then kept as 'flagged'). Around it:

* the paid-call path (:mod:`connote.paid` through the runner's ``replay``/``send``): claims in the study
  (scope ``rate:SAMPLE:CODER`` / ``answer:SAMPLE:EVALUATOR``, key = the ask's cache key) so two processes
  share the work and never pay twice, the budget, the journal; the call, the answer and the end of the
  claim land in one transaction;
* the call log (stage ``rate`` or ``answer``): every request with its prompt, tokens and cost; the answer
  row's ``source`` is ``call:ID``, which is also how scoring tells a machine's answer from a person's;
* a cache by the whole input (model, parameters, prompt, images and their order): asking again, or under
  another coder name, costs nothing;
* a ``max_cost`` budget with each call's worst case held while it is in flight, and ``dry_run``.

With ``both_orders`` every pair is also asked as (B, A); those answers are stored under the coder name
with ``@BA`` appended, so they never mix with the (A, B) ones, and their agreement is reported.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from connote.coding.files import CONSENSUS, DIMENSIONS
from connote.coding.llm_scores import MACHINE_SOURCE, REVERSED, is_machine, order_agreement
from connote.describers.base import DescribeError, Description, ImageItem
from connote.errors import UserError
from connote.paid import PaidWork
from connote.study import Study
from connote.study.claims import scope

EXPECTED_OUTPUT_TOKENS = 20  # a JSON answer's tokens, for estimates (the budget holds max_tokens)

RATE_PROMPT = """You are a coder in a study of what images mean. You see two images: image A first, then \
image B. Rate how similar the two images are, twice, without thinking of any grouping:
denotative: what the images show (objects, people, places, text);
connotative: what they mean or suggest (message, stance, mood, associations).
Use 0 for unrelated, 1 for loosely related, 2 for closely related.
Answer with a JSON object only, in this form: {"denotative": 0, "connotative": 2}"""

ANSWER_PROMPT = """You are an evaluator in a study of what images mean. The images you see form one set: \
they all belong to one group. Here are the descriptions of the groups, each with a letter:

{descriptions}

Choose the description that fits the set best; one answer, even when unsure.
Answer with a JSON object only, in this form: {"answer": "C"}"""


# ---------------------------------------------------------------------------------------------- pure parts
def _json_object(text: str | None) -> tuple[dict | None, str | None]:
    """The JSON object in an answer (a code fence around it tolerated), or (None, why not)."""
    text = (text or "").strip()
    if not text:
        return None, "empty"
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, flags=re.S | re.I)
    if fenced:
        text = fenced.group(1)
    try:
        obj = json.loads(text)
    except ValueError:
        return None, "not a JSON object"
    if not isinstance(obj, dict):
        return None, "not a JSON object"
    return obj, None


def parse_rating(text: str | None) -> tuple[dict[str, int] | None, str | None]:
    """({'denotative': v, 'connotative': v}, None) from an answer whose values are 0, 1 or 2; else
    (None, why not)."""
    obj, problem = _json_object(text)
    if obj is None:
        return None, problem
    out = {}
    for d in DIMENSIONS:
        v = obj.get(d)
        if isinstance(v, str) and v.strip() in {"0", "1", "2"}:
            v = int(v)
        if isinstance(v, bool) or v not in (0, 1, 2):
            return None, f"{d} is {json.dumps(v)}, not 0, 1 or 2"
        out[d] = int(v)
    return out, None


def parse_answer(text: str | None, codes: set[str]) -> tuple[str | None, str | None]:
    """(code, None) from an answer {"answer": "C"} naming one of ``codes``; else (None, why not)."""
    obj, problem = _json_object(text)
    if obj is None:
        return None, problem
    code = str(obj.get("answer") or "").strip().upper()
    if code not in codes:
        return None, f"answer {json.dumps(obj.get('answer'))} is not one of {', '.join(sorted(codes))}"
    return code, None


def coder_name(spec: str, prompt: str, default: str) -> str:
    """'llm:MODEL', with a short hash of the prompt when it is not the default one."""
    name = f"llm:{spec.split(':', 1)[1] if ':' in spec else spec}"
    if prompt != default:
        name += "#" + hashlib.sha256(prompt.encode()).hexdigest()[:6]
    return name


def descriptions_text(descriptions: list[list[str]]) -> str:
    return "\n".join(f"{code}: {text}" for code, text in descriptions)


def answer_prompt(template: str, descriptions: list[list[str]]) -> str:
    text = descriptions_text(descriptions)
    if "{descriptions}" not in template:
        return template.rstrip() + "\n\n" + text
    return template.replace("{descriptions}", text)


# ---------------------------------------------------------------------------------------------- the calls
@dataclass(frozen=True)
class CodingItem:
    """One ask, in the shape the describe runner hands to a describer."""

    sha256: str  # the cache key of the call: model, parameters, prompt, images in order
    rel_path: str  # 'pair 12 (B,A)', for messages
    prompt: str
    images: tuple[ImageItem, ...]
    pos: int  # the pair or set number
    coder: str  # who the answer is stored as
    order: str = ""  # 'AB' or 'BA' for pairs


class ImagesChat:
    """A chat describer asked about several images at once: its client, prices, error mapping and key
    handling (OpenAI protocol), or a local model's generation (``hf:``). ``response_format`` json_object is
    asked for, and left out from then on when the server refuses it."""

    uses_prompt = True
    batch_size = 1
    retry_bad_outputs = True

    def __init__(self, describer):
        self.inner = describer
        self.spec = describer.spec
        self.model = describer.model
        self.concurrency = max(1, int(getattr(describer, "concurrency", 1)))
        self.api_key_env = getattr(describer, "api_key_env", None)
        self.json_mode = hasattr(describer, "images_body")
        self.retry_bad_outputs = getattr(describer, "retry_bad_outputs", True)

    def params(self) -> dict:
        from connote.params import recorded_params

        keep = ("base_url", "max_side", "detail", "max_tokens", "max_new_tokens", "temperature", "do_sample")
        return {k: v for k, v in recorded_params(self.inner).items() if k in keep}

    def prepare(self) -> None:
        self.inner.prepare()

    @property
    def price(self):
        return getattr(self.inner, "price", None)

    def tokens(self, item: CodingItem) -> tuple[int, int]:
        """(input tokens, most output tokens) of one ask, for budgets and estimates."""
        from connote.describers.pricing import image_tokens, text_tokens

        side = int(getattr(self.inner, "upload_side", getattr(self.inner, "max_side", 512)))
        price = self.price
        base, tile = (price.image_base, price.image_tile) if price else (85, 170)
        detail = getattr(self.inner, "detail", "low")
        tin = len(item.images) * image_tokens(side, side, detail, base=base, tile=tile)
        tin += text_tokens(item.prompt) + 10
        return tin, int(getattr(self.inner, "max_tokens", None) or 60)

    def reserve(self, item: CodingItem, prompt: str = "") -> float | None:
        """The most one ask may cost (the runner keeps it aside from a budget); None: no price known."""
        price = self.price
        return None if price is None else price.cost(*self.tokens(item))

    def describe(self, items: list[CodingItem], prompt: str) -> list[Description | DescribeError]:
        if not hasattr(self.inner, "images_body"):  # a local model
            return [self.inner.describe_images(list(it.images), it.prompt) for it in items]
        return [self._ask(it) for it in items]

    def _ask(self, item: CodingItem) -> Description | DescribeError:
        inner = self.inner
        extra = {"response_format": {"type": "json_object"}} if self.json_mode else {}
        res = inner.complete(lambda: inner.images_body(list(item.images), item.prompt, **extra))
        if extra and isinstance(res, DescribeError) and "response_format" in str(res):
            self.json_mode = False  # the server does not support it: ask in plain text from now on
            res = inner.complete(lambda: inner.images_body(list(item.images), item.prompt))
        return res


def make_chat(llm, options: dict) -> ImagesChat:
    from connote import registry

    cls = registry.describer_class(llm) if isinstance(llm, str) else type(llm)
    if cls is not None and not (hasattr(cls, "images_body") or hasattr(cls, "describe_images")):
        raise UserError(
            f"{llm}: an LLM coder needs a vision chat model (openai:MODEL, ollama:MODEL or hf:MODEL)"
        )
    inner = registry.describer(llm, **{k: v for k, v in options.items() if v is not None})
    if not (hasattr(inner, "images_body") or hasattr(inner, "describe_images")):
        raise UserError(
            f"{getattr(inner, 'spec', llm)}: an LLM coder needs a vision chat model "
            "(openai:MODEL, ollama:MODEL or hf:MODEL)"
        )
    return ImagesChat(inner)


def item_key(chat: ImagesChat, stage: str, prompt: str, images: tuple[ImageItem, ...]) -> str:
    blob = [stage, chat.spec, chat.model, chat.params(), prompt, [im.sha256 for im in images]]
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------- results
@dataclass
class CodingResult:
    """What one `pairs rate` / `sets answer` did."""

    sample: str
    coder: str
    model: str | None
    prompt: str
    asks: int = 0  # pairs (times orders) or sets
    already: int = 0  # answered before this command
    from_log: int = 0  # answered now from the call log, without a call
    answered: int = 0  # answered now by a call
    flagged: int = 0  # answers that were not the JSON asked for (after one more ask)
    failed: int = 0  # no answer (an error that outlasted the retries); asked again next time
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    elsewhere: int = 0  # answered (or being answered) by another process meanwhile
    from_journal: int = 0  # paid for by an earlier run that could not store it; stored now, no call
    stopped: str | None = None
    dry_run: bool = False
    estimate_cost_usd: float | None = None
    order_agreement: list[dict] = field(default_factory=list)  # --both-orders: per dimension
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Job:
    """What a command asks and how its answers are kept."""

    stage: str  # 'rate' or 'answer': the call log's stage and the claims' kind
    sample_id: int
    items: list[CodingItem]
    parse: Callable[[str | None], tuple[object, str | None]]
    stored: Callable[[CodingItem], bool]  # the item's coder has an answer for it
    put: Callable[[Any, CodingItem, Any, str], None]  # (con, item, value, source)
    retry_flagged: bool = False


def _logged(study: Study, job: Job, item: CodingItem):
    """The latest call for exactly this ask that gave an answer to keep (ok, or flagged unless those are
    asked again), or None."""
    statuses = ("ok",) if job.retry_flagged else ("ok", "flagged")
    return study.latest_call(job.stage, item.sha256, statuses)


def _from_log(study: Study, job: Job, items: list[CodingItem], res: CodingResult) -> list[CodingItem]:
    """Store what the call log already answered (no call); returns the items still to ask."""
    todo = []
    with study.transaction() as con:
        for it in items:
            row = _logged(study, job, it)
            if row is None:
                todo.append(it)
                continue
            value, _ = job.parse(row["output"])
            if value is not None:
                job.put(con, it, value, f"{MACHINE_SOURCE}{row['id']}")
                res.from_log += 1
    return todo


def run_job(
    study: Study,
    chat: ImagesChat,
    job: Job,
    res: CodingResult,
    *,
    max_cost: float | None,
    dry_run: bool,
    progress: bool,
) -> CodingResult:
    """Ask every item not answered yet: from the call log where it can, else through the runner, shared
    with other processes through claims; every call logged and its answer stored as it arrives."""
    pending = [it for it in job.items if not job.stored(it)]
    res.asks, res.already = len(job.items), len(job.items) - len(pending)
    if dry_run:
        todo = [it for it in pending if _logged(study, job, it) is None]
        price = chat.price
        cost = 0.0
        for it in todo:
            tin, most = chat.tokens(it)
            tout = min(most, EXPECTED_OUTPUT_TOKENS)
            res.input_tokens += tin
            res.output_tokens += tout
            cost += price.cost(tin, tout) if price else 0.0
        res.estimate_cost_usd = cost if (price or not todo) else None
        res.notes.append(
            f"{len(todo)} call(s) to make, {len(pending) - len(todo)} answered from the call log; nothing sent"
        )
        if price is None and todo:
            res.notes.append(f"no price known for {chat.model!r}: add it to prices.toml (or CONNOTE_PRICES)")
        return res
    todo = _from_log(study, job, pending, res) if pending else []
    if todo:
        if max_cost is not None and chat.price is None:
            raise UserError(
                f"--max-cost needs the price of {chat.model!r}: add it to prices.toml (or CONNOTE_PRICES)"
            )
        chat.prepare()
        _send(study, chat, job, todo, res, max_cost, progress)
        _from_log(study, job, [it for it in todo if not job.stored(it)], res)  # another coder name's calls
    return res


def _send(study, chat, job: Job, todo: list[CodingItem], res: CodingResult, max_cost, progress) -> None:
    """The paid-call path (:mod:`connote.paid`, the describe runner's :meth:`send_all`) once
    per coder name (the (B, A) answers have their own claims): answers an earlier run journaled and could
    not store are stored first, without a request; the rest is claimed, reserved, sent, journaled and
    stored with its call; asks another live process holds are waited for and taken over if it dies."""
    from connote.describers.runner import DescribeRunner

    by_coder: dict[str, list[CodingItem]] = {}
    for it in todo:
        by_coder.setdefault(it.coder, []).append(it)
    for coder, items in by_coder.items():
        budget = None if max_cost is None else max_cost - res.cost_usd
        runner = DescribeRunner(chat, prompt="", check=lambda text: job.parse(text)[1], max_cost=budget)
        by_key = {it.sha256: it for it in items}

        def still_todo(key: str, by_key=by_key) -> bool:  # asked in the claim's transaction
            it = by_key.get(key)
            return it is not None and not job.stored(it) and _logged(study, job, it) is None

        def store_one(it: CodingItem, entry) -> float:
            return _store(study, study.con, chat, job, it, entry, res)

        with PaidWork(
            study, scope(job.stage, job.sample_id, coder), stage=job.stage, max_cost=budget
        ) as work:
            try:
                what = "Rating" if job.stage == "rate" else "Answering"
                runner.send_all(study, work, items, still_todo, store_one, res, progress=progress, what=what)
            finally:
                res.cost_usd += work.spent
        if runner._fatal is not None:
            key = chat.api_key_env
            raise UserError(
                f"{study.path}: {chat.spec} refused the request ({runner._fatal}); stopped at this first "
                f"authentication error, nothing more was sent; {res.answered} answer(s) stored in this run: "
                + (f"check {key} and " if key else "")
                + "run the same command again"
            )
        if res.stopped:
            break


def _store(study, con, chat, job: Job, it: CodingItem, entry, res: CodingResult) -> float:
    """Log the calls of one ask and store its answer (inside the caller's transaction); returns what
    the calls cost (the runner adds it to the run's spending)."""
    from connote.describers.sending import log_ask

    result, attempts, _earlier, problem, superseded = entry
    params = {**chat.params(), "sample": job.sample_id, "pos": it.pos, "coder": it.coder}
    if it.order:
        params["order"] = it.order
    res.calls += len(superseded) if result is None else attempts
    where = dict(
        stage=job.stage,
        backend=chat.spec,
        model=chat.model,
        input_ref=it.sha256,
        prompt=it.prompt,
        params=params,
    )
    value, parse_problem = job.parse(result.text) if isinstance(result, Description) else (None, None)
    problem = problem or parse_problem
    call_id, cost = log_ask(study, where, entry, lambda answer: _count(res, answer), problem=problem)
    if result is None:
        return cost
    if isinstance(result, DescribeError):
        if not getattr(result, "fatal", False):
            res.failed += 1
            res.problems.append(f"{it.rel_path}: {result}")
        return cost
    if problem or value is None:
        res.flagged += 1
        res.problems.append(
            f"{it.rel_path}: {problem} (flagged: kept in the call log; --retry-flagged asks again)"
        )
    else:
        job.put(con, it, value, f"{MACHINE_SOURCE}{call_id}")
        res.answered += 1
    return cost


def _count(res: CodingResult, d: Description) -> float:
    """Count an answer's tokens; returns its cost."""
    res.input_tokens += d.input_tokens or 0
    res.output_tokens += d.output_tokens or 0
    return float(d.cost_usd or 0.0)


def _not_a_person(rows, role: str, name: str, sample: str) -> None:
    """Refuse an LLM coder name that a person's answers in the sample already carry (they would be
    overwritten, and the person counted as a machine)."""
    if any(r[role] == name and not is_machine(r["source"]) for r in rows):
        raise UserError(
            f"--{role} {name!r}: a person's answers in sample {sample!r} carry that name; choose another"
        )


def _images(study: Study) -> dict[str, ImageItem]:
    root = study.images_root
    return {r["sha256"]: ImageItem(r["sha256"], root / r["path"], r["path"]) for r in study.unique_images()}


def _options(max_side: int, concurrency, max_tokens, base_url, extra: dict | None) -> dict:
    opts = {"max_side": max_side, "concurrency": concurrency, "max_tokens": max_tokens, "base_url": base_url}
    return {**opts, **(extra or {})}


# ---------------------------------------------------------------------------------------------- pairs
def rate_pairs(
    study,
    llm,
    *,
    name: str | None = None,
    coder: str | None = None,
    prompt: str | None = None,
    both_orders: bool = False,
    size: int = 320,
    concurrency: int | None = None,
    max_tokens: int = 60,
    base_url: str | None = None,
    max_cost: float | None = None,
    dry_run: bool = False,
    retry_flagged: bool = False,
    progress: bool = True,
    options: dict | None = None,
) -> CodingResult:
    """Rate every pair of a pair sample (the latest by default) with a vision LLM, as coder ``llm:MODEL``
    (or ``coder``); ``both_orders`` also asks each pair as (B, A), kept under the coder name + '@BA'."""
    study = Study.of(study)
    sample = study.pair_sample(name)
    template = prompt or RATE_PROMPT
    chat = make_chat(llm, _options(size, concurrency, max_tokens, base_url, options))
    coder = coder or coder_name(chat.spec, template, RATE_PROMPT)
    if coder.endswith(REVERSED) or coder == CONSENSUS:
        raise UserError(
            f"--coder {coder!r}: choose a name that does not end in {REVERSED!r} and is not a role"
        )
    _not_a_person(study.ratings(sample["id"]), "coder", coder, sample["name"])
    images = _images(study)
    items = []
    for p in study.pairs(sample["id"]):
        a, b = images.get(p["sha_a"]), images.get(p["sha_b"])
        if a is None or b is None:
            continue
        for order, pair, who in (("AB", (a, b), coder), ("BA", (b, a), coder + REVERSED)):
            if order == "BA" and not both_orders:
                continue
            key = item_key(chat, "rate", template, pair)
            items.append(
                CodingItem(
                    key, f"pair {p['pos']} ({order[0]},{order[1]})", template, pair, p["pos"], who, order
                )
            )

    def stored(it: CodingItem) -> bool:
        return study.count_ratings(sample["id"], it.pos, it.coder) >= len(DIMENSIONS)

    def put(con, it: CodingItem, value: dict, source: str) -> None:
        study.insert_ratings(con, sample["id"], [(it.pos, it.coder, d, v) for d, v in value.items()], source)

    job = Job("rate", sample["id"], items, parse_rating, stored, put, retry_flagged)
    res = CodingResult(sample["name"], coder, chat.model, template)
    missing = len(study.pairs(sample["id"])) * (2 if both_orders else 1) - len(items)
    if missing:
        res.notes.append(f"{missing} ask(s) left out: an image of the pair is no longer in the study")
    run_job(study, chat, job, res, max_cost=max_cost, dry_run=dry_run, progress=progress)
    if both_orders and not dry_run:
        res.order_agreement = order_agreement(study.ratings(sample["id"]), coder)
    return res


# ---------------------------------------------------------------------------------------------- sets
def answer_sets(
    study,
    llm,
    *,
    name: str | None = None,
    evaluator: str | None = None,
    prompt: str | None = None,
    size: int = 240,
    concurrency: int | None = None,
    max_tokens: int = 60,
    base_url: str | None = None,
    max_cost: float | None = None,
    dry_run: bool = False,
    retry_flagged: bool = False,
    progress: bool = True,
    options: dict | None = None,
) -> CodingResult:
    """Match every set of a set sample (the latest by default) to one of the run's lettered descriptions
    (as the matching page shows them), as evaluator ``llm:MODEL`` (or ``evaluator``)."""
    study = Study.of(study)
    sample = study.set_sample(name)
    params = json.loads(sample["params"])
    descriptions = params["descriptions"]
    codes = {code for code, _ in descriptions}
    template = prompt or ANSWER_PROMPT
    text = answer_prompt(template, descriptions)
    chat = make_chat(llm, _options(size, concurrency, max_tokens, base_url, options))
    evaluator = evaluator or coder_name(chat.spec, template, ANSWER_PROMPT)
    _not_a_person(study.set_answers(sample["id"]), "evaluator", evaluator, sample["name"])
    images = _images(study)
    items = []
    sets = study.image_sets(sample["id"])
    for st in sets:
        shown = tuple(images[s] for s in st["shas"] if s in images)
        if len(shown) == len(st["shas"]):
            key = item_key(chat, "answer", text, shown)
            items.append(CodingItem(key, f"set {st['pos']}", text, shown, st["pos"], evaluator))

    def stored(it: CodingItem) -> bool:
        return study.has_set_answer(sample["id"], it.pos, it.coder)

    def put(con, it: CodingItem, code: str, source: str) -> None:
        study.insert_set_answers(con, sample["id"], [(it.pos, it.coder, code)], source)

    job = Job("answer", sample["id"], items, lambda t: parse_answer(t, codes), stored, put, retry_flagged)
    res = CodingResult(sample["name"], evaluator, chat.model, template)
    if len(items) < len(sets):
        res.notes.append(f"{len(sets) - len(items)} set(s) left out: an image is no longer in the study")
    return run_job(study, chat, job, res, max_cost=max_cost, dry_run=dry_run, progress=progress)
