"""The describer interface (S1): anything with these attributes and a ``describe`` method is a describer.

A describer turns images into texts. It does *not* retry, cache, log or check its outputs: the runner
(:mod:`connote.describers.runner`) does that once for every backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from connote.errors import DescribeError

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


@runtime_checkable
class Describer(Protocol):
    spec: str  # the spec string that made it, e.g. 'offline', 'openai:gpt-4-turbo'
    model: str | None  # model name recorded with each description
    batch_size: int  # images per describe() call (1 for API backends)
    concurrency: int  # describe() calls the runner may have in flight at once
    uses_prompt: bool  # False for describers that ignore the prompt (offline)

    def params(self) -> dict:
        """Everything that determines the output besides the image and the prompt (recorded)."""
        ...

    def describe(self, items: list[ImageItem], prompt: str) -> list[Description | DescribeError]:
        """Describe a batch; one entry per item, in order. Errors are returned, not raised."""
        ...


__all__ = ["PAPER_PROMPT", "Describer", "DescribeError", "Description", "ImageItem"]
