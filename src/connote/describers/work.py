"""A describe run's work: what is left to do in a description set (:func:`pending_items`, read in one query,
no description text), and the account of a run (:class:`DescribeSummary`) or of its ``--dry-run``
(:class:`DescribeEstimate`). Below both the runner (:mod:`connote.describers.runner`) and batch mode
(:mod:`connote.describers.batch`), which share them."""

from __future__ import annotations

from dataclasses import dataclass, field

from connote.describers.base import ImageItem
from connote.describers.sending import TRANSIENT
from connote.study import Study


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
    elsewhere: int = 0  # images described (or being described) by another process at the same time
    elsewhere_note: str | None = None  # which process, when some were still in its hands
    from_journal: int = 0  # answers paid for by an earlier run, stored now from its journal (no request)
    from_batch: int = 0  # results of a batch that had ended, collected by this run
    note: str | None = None  # what happened to a batch in flight (collected, cancelled)

    @property
    def nothing_described(self) -> bool:
        """True when there was work and not one image could be described (exit non-zero)."""
        return self.described == 0 and self.flagged == 0 and self.failed > 0


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
    todo, done, _ = pending(study, set_id, retry_flagged)
    return todo, done


def row_state(row) -> tuple | None:
    """What a description row was when seen (None: no row): the runner stores only over a row unchanged."""
    if row is None or row["status"] is None:
        return None
    return (row["status"], row["call_id"], row["attempts"], row["created"])


def pending(study: Study, set_id: int, retry_flagged: bool) -> tuple[list[ImageItem], int, dict]:
    """The images to describe, how many are done, and the state of each one's row as it was seen (one
    query; no description text is read)."""
    todo: list[ImageItem] = []
    seen: dict[str, tuple | None] = {}
    done = 0
    root = study.images_root
    for row in study.describe_states(set_id):
        status = row["status"]
        transient = status == "failed" and (row["reason"] or "").startswith(TRANSIENT)
        if status is not None and not transient and (status == "ok" or not retry_flagged):
            done += 1
            continue
        todo.append(ImageItem(row["sha256"], root / row["path"], row["path"]))
        seen[row["sha256"]] = row_state(row)
    return todo, done, seen
