"""The embedder interfaces (S2). Anything with these attributes and method can stand in for a stage."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image


@runtime_checkable
class TextEmbedder(Protocol):
    name: str  # cache key of its vectors in the study, e.g. 'text:minilm'
    spec: str  # what the user typed
    batch_size: int

    def params(self) -> dict: ...

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float array."""
        ...


@runtime_checkable
class ImageEmbedder(Protocol):
    name: str  # e.g. 'image:efficientnet-lite0'
    spec: str
    batch_size: int

    def params(self) -> dict: ...

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        """(len(images), dim) float array; images arrive as RGB PIL images."""
        ...
