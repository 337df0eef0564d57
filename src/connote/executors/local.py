"""The local executor: today's behaviour, everything in this process tree.

``embed`` and ``describer`` run in this process (the describe runner keeps its own thread pool for API
calls); ``embed`` takes the inputs chunk by chunk as the caller reads them from the study. A local sweep
runs its jobs in its own worker processes (:mod:`connote.sweep_pool`), not through the executor.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np


class LocalExecutor:
    name = "local"
    remote = False

    def __init__(self, workers: int | None = None, **_ignored):
        self.workers = workers

    def __repr__(self) -> str:
        return "LocalExecutor()"

    def embed(self, embedder, kind: str, chunks: Iterable[list[tuple[str, object]]], batch_size: int):
        """Yield ``(keys, vectors, failures)`` per batch, chunk after chunk (a batch never spans two, so
        the embedder never sees more than one chunk); items are (key, text) or (key, image path)."""
        for chunk in chunks:
            for i in range(0, len(chunk), batch_size):
                yield embed_batch(embedder, kind, chunk[i : i + batch_size])

    def describer(self, describer, spec=None, options: dict | None = None):
        return describer

    def close(self) -> None:
        pass


def embed_batch(embedder, kind: str, batch: list[tuple[str, Any]]):
    """One batch: (keys, float32 vectors, [(key, reason)] of images that could not be read)."""
    if kind == "text":
        keys = [k for k, _ in batch]
        return keys, np.asarray(embedder.embed_texts([t for _, t in batch]), dtype=np.float32), []
    from connote.images import ImageError, load_image

    keys, images, failed = [], [], []
    for key, path in batch:
        try:
            images.append(load_image(path, sha256=key))  # the key is the recorded content hash
            keys.append(key)
        except ImageError as exc:
            failed.append((key, str(exc)))
    if not images:
        return [], np.zeros((0, 0), dtype=np.float32), failed
    return keys, np.asarray(embedder.embed_images(images), dtype=np.float32), failed
