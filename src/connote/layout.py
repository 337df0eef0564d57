"""The 2-D map of a run's features (the report's scatter plot), computed and cached.

The map is a 2-D UMAP (PCA for fewer than :data:`MIN_UMAP_ITEMS` items) of the very features a run was
clustered on (:func:`connote.study.reporting.run_features`). It is computed once per feature set (the
feature key a run records) and kept in ``STUDY/cache/map2d/<key>.npz`` (rows in the order of the stored
``shas``), so every run of a sweep that shares features shares one map.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from connote.defaults import DEFAULT_SEED
from connote.reduce import UMAPReducer
from connote.safe_write import replacing
from connote.study import Study
from connote.study.reporting import RunFeatures

MIN_UMAP_ITEMS = 30
MAP_SEED = DEFAULT_SEED
LAYOUT = "umap:components=2,neighbors=15,min_dist=0.1"  # part of the cache key: a new layout, a new file


def map_cache_path(study: Study, key: str) -> Path:
    name = hashlib.sha256(f"{key}\n{LAYOUT}\n{MAP_SEED}".encode()).hexdigest()[:24]
    return study.path / "cache" / "map2d" / f"{name}.npz"


def compute_layout(X: np.ndarray, seed: int = MAP_SEED) -> tuple[np.ndarray, str]:
    """2-D coordinates for a feature matrix, scaled into [0, 1] x [0, 1], and the method used."""
    n = len(X)
    if n >= MIN_UMAP_ITEMS:
        Y = UMAPReducer(n_components=2, n_neighbors=15, min_dist=0.1, random_state=seed).fit_transform(X)
        method = LAYOUT
    elif n >= 2:
        Xc = X - X.mean(axis=0)
        _, _, vt = np.linalg.svd(Xc, full_matrices=False)
        Y = Xc @ vt[:2].T
        if Y.shape[1] < 2:
            Y = np.hstack([Y, np.zeros((n, 2 - Y.shape[1]))])
        method = "pca:components=2 (too few items for UMAP)"
    else:
        Y = np.zeros((n, 2))
        method = "none"
    Y = np.asarray(Y, dtype=np.float64)
    if n:
        lo, hi = Y.min(axis=0), Y.max(axis=0)
        span = max(float((hi - lo).max()), 1e-12)
        Y = (Y - lo) / span  # one scale for both axes: distances keep their meaning
    return Y.astype(np.float32), method


def map_layout(study: Study, feats: RunFeatures) -> tuple[np.ndarray, str]:
    """The cached 2-D map of ``feats`` (rows in ``feats.shas`` order), computed on first use."""
    path = map_cache_path(study, feats.key)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if list(z["shas"]) == feats.shas:
                    return z["xy"], str(z["method"])
        except (OSError, ValueError, KeyError):
            pass  # damaged: computed again below
    xy, method = compute_layout(feats.X)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, xy=xy, shas=np.array(feats.shas), method=np.array(method))
    return xy, method
