"""S2: turn descriptions (text) or pixels (image) into vectors, cached in the study by content hash.

The runners here do the caching, the progress bar and the call log for every embedder; an embedder only
maps a batch of texts or images to an array (:mod:`connote.embedders.base`) and reports the model calls it
made (API embedders), which the runner logs as the describe runner does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from connote.errors import UserError
from connote.params import recorded_params
from connote.study import Study, text_key
from connote.study.calls import log_calls


@dataclass
class EmbedSummary:
    embedder: str
    kind: str
    total: int
    computed: int
    reused: int
    dim: int | None
    failed: list[tuple[str, str]]
    notice: str | None = None  # why another model stood in for the one asked for


def _batches(seq, size):
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def embed_texts(study: Study, embedder, texts: dict[str, str], *, progress: bool = True) -> EmbedSummary:
    """Embed ``{anything: text}``; vectors are stored under the text's sha256, so equal texts share one."""
    keys = {text_key(t): t for t in texts.values()}
    todo = [k for k in keys if not study.has_vector(embedder.name, k)]
    bar = _bar(progress, len(todo), f"Embedding texts ({embedder.spec})", "text")
    dim = None
    for chunk in _batches(todo, max(1, embedder.batch_size)):
        try:
            vectors = np.asarray(embedder.embed_texts([keys[k] for k in chunk]), dtype=np.float32)
        finally:  # failed calls are logged too
            log_calls(study, "embed", embedder.take_calls())
        for k, v in zip(chunk, vectors):
            study.save_vector(embedder.name, k, v)
        dim = vectors.shape[1]
        if bar:
            bar.update(len(chunk))
    if bar:
        bar.close()
    study.register_embedder(embedder.name, "text", embedder.spec, dim, recorded_params(embedder))
    return EmbedSummary(embedder.name, "text", len(keys), len(todo), len(keys) - len(todo), dim, [])


def embed_images(study: Study, embedder, *, progress: bool = True) -> EmbedSummary:
    """Embed every distinct readable image of the study; vectors are stored under the image's sha256."""
    from connote.images import ImageError, load_image

    rows = study.unique_images()
    if not rows:
        raise UserError(f"{study.path}: no readable images to embed")
    todo = [r for r in rows if not study.has_vector(embedder.name, r["sha256"])]
    bar = _bar(progress, len(todo), f"Embedding images ({embedder.spec})", "img")
    failed: list[tuple[str, str]] = []
    dim = None
    for chunk in _batches(todo, max(1, embedder.batch_size)):
        images, shas = [], []
        for r in chunk:
            try:
                images.append(load_image(study.image_file(r["path"])))
                shas.append(r["sha256"])
            except ImageError as exc:
                failed.append((r["path"], str(exc)))
        if images:
            try:
                vectors = np.asarray(embedder.embed_images(images), dtype=np.float32)
            finally:
                log_calls(study, "embed", embedder.take_calls())
            for sha, v in zip(shas, vectors):
                study.save_vector(embedder.name, sha, v)
            dim = vectors.shape[1]
        if bar:
            bar.update(len(chunk))
    if bar:
        bar.close()
    study.register_embedder(embedder.name, "image", embedder.spec, dim, recorded_params(embedder))
    return EmbedSummary(embedder.name, "image", len(rows), len(todo), len(rows) - len(todo), dim, failed)


def _bar(progress: bool, total: int, desc: str, unit: str):
    if not progress or total == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit)
