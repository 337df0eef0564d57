"""The feature matrix a run is computed on, read from the study's stored vectors, and the cached
reductions of it (STUDY/cache/reduce).

Computing code (:mod:`connote.steps`, :mod:`connote.sweeps`) calls these; the study layer below
(:mod:`connote.study.runs`) only stores: it knows :class:`~connote.study.runs.Features` and run keys, not
embedder specs or how a stage computes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from connote import registry
from connote.defaults import DEFAULT_IMAGE_EMBEDDER, DEFAULT_TEXT_EMBEDDER
from connote.errors import UserError
from connote.safe_write import replacing
from connote.study import Study, text_key
from connote.study.runs import Features, digest, usable_set

if TYPE_CHECKING:
    from connote.fitting import RunPlan

__all__ = ["Features", "features", "load_reduction", "reduce_cache_path", "save_reduction"]


def features(
    study: Study,
    kind: str = "text",
    *,
    text=DEFAULT_TEXT_EMBEDDER,
    image=DEFAULT_IMAGE_EMBEDDER,
    description_set: str | None = None,
) -> Features:
    """The feature matrix a clustering runs on, rows in the order of ``shas``. ``text`` and ``image``
    name the embedder (a spec string or the embedder object) whose stored vectors are used."""
    if kind == "text":
        ds = usable_set(study, description_set)
        name = registry.text_embedder(text).for_study(study).name
        shas: list[str] = []
        keys: list[str] = []  # in sha256 order, read a chunk at a time (the texts are not kept)
        for rows in study.iter_descriptions(ds["id"]):
            shas += [sha for sha, _ in rows]
            keys += [text_key(t) for _, t in rows]
        X = study.load_vectors(name, keys)
        key = hashlib.sha256(("\n".join(keys) + name).encode()).hexdigest()
        return Features("text", name, ds["name"], shas, X, key)
    if kind == "image":
        name = registry.image_embedder(image).name
        have = study.vectors.present(name)  # one index query, not one per image
        shas = sorted({r["sha256"] for r in study.unique_images() if r["sha256"] in have})
        if not shas:
            raise UserError(f"no {name} vectors yet; run `connote embed {study.path} --image {image}`")
        X = study.load_vectors(name, shas)
        key = hashlib.sha256(("\n".join(shas) + name).encode()).hexdigest()
        return Features("image", name, None, shas, X, key)
    raise UserError(f"unknown features {kind!r}; use text or image")


# ---------------------------------------------------------------------------------------------- reductions
def reduce_cache_path(study: Study, plan: RunPlan) -> Path:
    """Where the reduction of a run's features by its reducer is cached (STUDY/cache/reduce/KEY.npy); the
    key holds how the reduction is computed (the plan's ``reduction_how``) besides its parameters."""
    key = digest([plan.feats.key, plan.reducer_params, plan.reduction_how])
    return study.path / "cache" / "reduce" / f"{key[:24]}.npy"


def load_reduction(study: Study, plan: RunPlan) -> np.ndarray | None:
    """The cached reduction of a run's features by its reducer, or None."""
    path = reduce_cache_path(study, plan)
    return np.load(path) if path.is_file() else None


def save_reduction(study: Study, plan: RunPlan, Y: np.ndarray) -> np.ndarray:
    """Cache a reduction (atomically: a private temporary file renamed into place, so two processes
    writing the same one never mix their bytes)."""
    Y = np.asarray(Y, dtype=np.float32)
    path = reduce_cache_path(study, plan)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, Y)
    return Y
