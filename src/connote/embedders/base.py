"""The embedder interfaces (S2): :class:`TextEmbedder` and :class:`ImageEmbedder` declare every attribute
and hook the embed runner uses, with its default; any other object with ``embed_texts`` or
``embed_images`` is wrapped (:func:`as_text_embedder`, :func:`as_image_embedder`).

An embedder maps a batch to an array. It does not cache, store or log: the runner
(:mod:`connote.embedders`) does, and writes the model calls an embedder reports (:meth:`Embedder.take_calls`)
to the study's call log, as the describe runner does for describers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from connote.errors import UserError
from connote.params import Params, recorded_params
from connote.study.calls import ModelCall

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image


class Embedder(Params):
    name: str = ""  # cache key of its vectors in the study, e.g. 'text:minilm'
    spec: str = ""  # what the user typed
    batch_size: int = 32  # inputs per embed call
    #: Set when this embedder stands in for the one asked for (e.g. weights that could not be had).
    notice: str | None = None

    def prepare(self, study=None) -> Embedder:
        """Get ready before the first batch (load weights, check credentials); raise UserError with a clear
        message when it cannot work. ``study`` says what is to be embedded (nothing needs loading when it
        holds every vector already). Returns the embedder that will do the work: itself (the default), or
        a stand-in whose ``notice`` says why."""
        return self

    def for_study(self, study) -> Embedder:
        """The embedder whose vectors ``study`` keeps under this spec: itself (the default); one whose
        default changed returns the one the study's earlier vectors were made with (``minilm`` on
        PyTorch), so that nothing changes for a study made before."""
        return self

    def take_calls(self) -> list[ModelCall]:
        """The model calls made since the last time this was asked, for the runner to log (API embedders
        report each request with its tokens and cost; local models report none, the default)."""
        return []


class TextEmbedder(Embedder, ABC):
    @abstractmethod
    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float array."""


class ImageEmbedder(Embedder, ABC):
    @abstractmethod
    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        """(len(images), dim) float array; images arrive as RGB PIL images."""


class _Wrapped:
    """What both wrappers share: the object's own name, spec, batch size and hooks where it has them."""

    def __init__(self, obj, kind: str):
        self.wrapped = obj
        self.name = getattr(obj, "name", None) or f"{kind}:{type(obj).__name__}"
        self.spec = getattr(obj, "spec", None) or self.name
        self.batch_size = getattr(obj, "batch_size", 32)
        self.notice = getattr(obj, "notice", None)

    def prepare(self, study=None):
        if hasattr(self.wrapped, "prepare"):
            self.wrapped = self.wrapped.prepare(study) or self.wrapped
            self.notice = getattr(self.wrapped, "notice", None)
        return self

    def take_calls(self) -> list[ModelCall]:
        return list(self.wrapped.take_calls()) if hasattr(self.wrapped, "take_calls") else []

    def get_params(self, deep: bool = False) -> dict:
        return recorded_params(self.wrapped)


class ForeignTextEmbedder(_Wrapped, TextEmbedder):
    """Any object with ``embed_texts(texts)``, used as a text embedder."""

    def __init__(self, obj):
        super().__init__(obj, "text")

    def embed_texts(self, texts):
        return self.wrapped.embed_texts(texts)


class ForeignImageEmbedder(_Wrapped, ImageEmbedder):
    """Any object with ``embed_images(images)``, used as an image embedder."""

    def __init__(self, obj):
        super().__init__(obj, "image")

    def embed_images(self, images):
        return self.wrapped.embed_images(images)


def as_text_embedder(obj) -> TextEmbedder:
    if isinstance(obj, TextEmbedder):
        return obj
    if not callable(getattr(obj, "embed_texts", None)):
        raise UserError(f"{type(obj).__name__} is not a text embedder: it has no embed_texts(texts) method")
    return ForeignTextEmbedder(obj)


def as_image_embedder(obj) -> ImageEmbedder:
    if isinstance(obj, ImageEmbedder):
        return obj
    if not callable(getattr(obj, "embed_images", None)):
        raise UserError(
            f"{type(obj).__name__} is not an image embedder: it has no embed_images(images) method"
        )
    return ForeignImageEmbedder(obj)
