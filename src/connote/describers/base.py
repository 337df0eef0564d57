"""The describer interface (S1): :class:`Describer` declares every attribute and hook the runner uses,
with its default; any other object with a ``describe`` method is wrapped (:func:`as_describer`).

A describer turns images into texts. It does *not* retry, cache, log or check its outputs: the runner
(:mod:`connote.describers.runner`) does that once for every backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

from connote.errors import DescribeError, UserError
from connote.params import Params, recorded_params

#: The paper's prompt (Figure 3, S1).
PAPER_PROMPT = "Describe the connotative meaning of this image, in one paragraph"


@dataclass(frozen=True)
class ImageItem:
    """One distinct image to describe: its content hash and where to read it."""

    sha256: str
    path: Path  # absolute path of one file with this content
    rel_path: str  # path relative to the study's images root (for messages)


@dataclass
class Description:
    """What a describer returns for one image."""

    text: str
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    latency_s: float | None = None
    extra: dict = field(default_factory=dict)  # anything worth logging (finish_reason, request id, ...)


class Describer(Params, ABC):
    """The base of every describer. A subclass sets ``spec`` and ``model`` and implements ``describe``; the
    other attributes and hooks have defaults that fit a local model. Options are the keyword-only
    parameters of ``__init__``, each kept under its own name (``get_params()`` reads them back)."""

    spec: str = ""  # the spec string that made it, e.g. 'offline', 'openai:gpt-4-turbo'
    model: str | None = None  # model name recorded with each description
    batch_size: int = 1  # images per describe() call
    concurrency: int = 1  # describe() calls the runner may have in flight at once
    #: False for describers that ignore the prompt (offline): their fixed-form texts are not checked.
    uses_prompt: bool = True
    retry_bad_outputs: bool = True  # ask once more when an output fails a check (False: it would be the same)
    api_key_env: str | None = None  # the environment variable an API describer reads its key from
    #: Words of the describer's own fixed phrasing that make poor cluster keywords (S5 leaves them out).
    keyword_stop_words: tuple[str, ...] = ()

    @abstractmethod
    def describe(self, items: list[ImageItem], prompt: str) -> list[Description | DescribeError]:
        """Describe a batch; one entry per item, in order. Errors are returned, not raised."""

    def prepare(self) -> None:
        """Get ready before anything is sent (e.g. check that an API key is set); raise UserError with a
        clear message when the describer cannot work. Default: nothing to check."""

    def estimate(self, item: ImageItem, prompt: str, size: tuple[int, int] | None = None) -> tuple | None:
        """(input tokens, output tokens, USD or None when the price is unknown) expected for one image, for
        ``--dry-run``; None (the default) when calls cost nothing per token (a local model)."""
        return None

    def reserve(self, item: ImageItem, prompt: str) -> float | None:
        """The most one call may cost, kept aside from a ``--max-cost`` budget while it is in flight; None
        when the price is unknown (a budget then refuses to run). Default: 0.0 (free)."""
        return 0.0

    def batch_discount(self) -> float:
        """The fraction of the normal price a Batch API call costs."""
        return 0.5


class ForeignDescriber(Describer):
    """Any object with a ``describe(items, prompt)`` method, used as a describer: its own attributes and
    hooks where it has them, the defaults of :class:`Describer` elsewhere."""

    def __init__(self, obj):
        self.wrapped = obj
        for attr in (
            "model",
            "batch_size",
            "concurrency",
            "uses_prompt",
            "retry_bad_outputs",
            "keyword_stop_words",
        ):
            if hasattr(obj, attr):
                setattr(self, attr, getattr(obj, attr))
        self.spec = getattr(obj, "spec", None) or type(obj).__name__

    def describe(self, items, prompt):
        return self.wrapped.describe(items, prompt)

    def prepare(self) -> None:
        if hasattr(self.wrapped, "prepare"):
            self.wrapped.prepare()

    def estimate(self, item, prompt, size=None):
        return self.wrapped.estimate(item, prompt, size) if hasattr(self.wrapped, "estimate") else None

    def reserve(self, item, prompt):
        return self.wrapped.reserve(item, prompt) if hasattr(self.wrapped, "reserve") else 0.0

    def get_params(self, deep: bool = False) -> dict:
        return recorded_params(self.wrapped)


def as_describer(obj) -> Describer:
    """A describer object as the runner uses it (one that does not derive from Describer is wrapped)."""
    if isinstance(obj, Describer):
        return obj
    if not callable(getattr(obj, "describe", None)):
        raise UserError(f"{type(obj).__name__} is not a describer: it has no describe(items, prompt) method")
    return ForeignDescriber(obj)


__all__ = [
    "PAPER_PROMPT",
    "Describer",
    "DescribeError",
    "Description",
    "ForeignDescriber",
    "ImageItem",
    "as_describer",
]
