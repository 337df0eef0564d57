"""Pure functions behind the cluster pages: how typical each member is, and which members sit nearest
another cluster. Everything works on unit-normalised feature vectors (cosine similarity)."""

from __future__ import annotations

import numpy as np

OUTLIER = -1


def unit_rows(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


def centroids(U: np.ndarray, labels: np.ndarray) -> dict[int, np.ndarray]:
    """cluster -> unit mean direction of its members (outliers have none)."""
    out = {}
    for c in sorted(set(labels.tolist()) - {OUTLIER}):
        m = U[labels == c].mean(axis=0)
        n = np.linalg.norm(m)
        out[int(c)] = m / n if n > 0 else m
    return out


def closeness(U: np.ndarray, labels: np.ndarray, cents: dict[int, np.ndarray]) -> np.ndarray:
    """Cosine similarity of each item to its own cluster's centroid (NaN for outliers)."""
    out = np.full(len(U), np.nan)
    for c, v in cents.items():
        idx = labels == c
        out[idx] = U[idx] @ v
    return out


def nearest_other(
    U: np.ndarray, labels: np.ndarray, cents: dict[int, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """For each item: the nearest centroid of a cluster other than its own (-1 when there is none) and
    the margin (similarity to its own centroid minus to that one; small = on the border). For outliers,
    the nearest cluster of all and its similarity."""
    n = len(U)
    other = np.full(n, OUTLIER, dtype=int)
    margin = np.full(n, np.nan)
    if not cents or n == 0:
        return other, margin
    ids = np.array(sorted(cents))
    S = U @ np.stack([cents[c] for c in ids]).T  # n x k similarities
    for i in range(n):
        own = labels[i]
        sims = S[i].copy()
        if own != OUTLIER:
            pos = int(np.searchsorted(ids, own))
            own_sim = sims[pos]
            sims[pos] = -np.inf
            if len(ids) < 2:
                continue
            j = int(np.argmax(sims))
            other[i], margin[i] = int(ids[j]), float(own_sim - sims[j])
        else:
            j = int(np.argmax(sims))
            other[i], margin[i] = int(ids[j]), float(sims[j])
    return other, margin


def typical_order(probabilities: list[float | None], close: list[float], names: list[str]) -> list[int]:
    """Indices from most to least typical: HDBSCAN membership strength first, then closeness to the
    cluster's centroid, then the file name (stable, so pages do not shuffle between renders)."""

    def key(i: int) -> tuple:
        p = probabilities[i]
        c = close[i]
        return (
            -(p if p is not None else -1.0),
            -(c if c is not None and not np.isnan(c) else -2.0),
            names[i].casefold(),
            names[i],
        )

    return sorted(range(len(names)), key=key)
