"""Clustering quality from human-rated image pairs, and pair-counting agreement.

Grimmer, J., & King, G. (2011). General purpose computer-assisted clustering and conceptualization.
*PNAS*, 108(7), 2643-2650: the quality of a clustering is the mean similarity of pairs placed in the same
cluster minus the mean similarity of pairs placed in different clusters. The study behind connote splits
similarity into denotative and connotative ratings (0 unrelated, 1 loosely, 2 closely related) and counts a
clustering only when at least 25 rated pairs fall on each side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Quality:
    score: float  # mean(same) - mean(different); NaN when either side has too few pairs
    mean_same: float
    mean_different: float
    n_same: int
    n_different: int
    n_excluded: int  # pairs with an outlier or an unclustered image


def cluster_quality(
    labels_a: Sequence[int | None],
    labels_b: Sequence[int | None],
    ratings: Sequence[float] | np.ndarray,
    *,
    min_pairs: int = 25,
) -> Quality:
    """Grimmer & King quality for rated pairs (a_i, b_i) with cluster labels ``labels_a[i]``, ``labels_b[i]``.

    Pairs where either image is an outlier (-1) or not clustered (None) are excluded, as in the study.
    """
    la, lb = as_labels(labels_a), as_labels(labels_b)
    r = np.asarray(ratings, dtype=float)
    if not (len(la) == len(lb) == len(r)):
        raise ValueError("labels_a, labels_b and ratings must have one entry per pair")
    keep = (la != -1) & (lb != -1) & ~np.isnan(r)
    same = keep & (la == lb)
    diff = keep & (la != lb)
    n_s, n_d = int(same.sum()), int(diff.sum())
    m_s = float(r[same].mean()) if n_s else float("nan")
    m_d = float(r[diff].mean()) if n_d else float("nan")
    score = m_s - m_d if n_s >= min_pairs and n_d >= min_pairs else float("nan")
    return Quality(score, m_s, m_d, n_s, n_d, int((~keep).sum()))


def as_labels(labels: Sequence[int | None] | np.ndarray) -> np.ndarray:
    """Cluster labels as an array, None (not clustered) as -1; an integer array is taken as it is."""
    if isinstance(labels, np.ndarray) and labels.dtype.kind in "iu":
        return labels
    return np.array([-1 if x is None else x for x in labels])


@dataclass(frozen=True)
class PairScores:
    precision: float
    recall: float
    f1: float
    tp: int
    fp: int
    fn: int


def _prf(tp: int, fp: int, fn: int) -> PairScores:
    p = tp / (tp + fp) if tp + fp else float("nan")
    r = tp / (tp + fn) if tp + fn else float("nan")
    f = 2 * p * r / (p + r) if tp else 0.0 if (tp + fp and tp + fn) else float("nan")
    return PairScores(p, r, f, tp, fp, fn)


def rated_pair_scores(
    labels_a: Sequence[int | None],
    labels_b: Sequence[int | None],
    ratings: Sequence[float],
    *,
    threshold: float = 2,
) -> PairScores:
    """Pair-counting precision/recall/F1 of a clustering against rated pairs: a pair is 'similar' when its
    rating is at least ``threshold`` (default: closely related) and 'predicted' when both images share a
    cluster. Pairs with an outlier or unclustered image are left out."""
    la = [-1 if x is None else x for x in labels_a]
    lb = [-1 if x is None else x for x in labels_b]
    tp = fp = fn = 0
    for a, b, r in zip(la, lb, ratings, strict=True):
        if a == -1 or b == -1 or r is None or (isinstance(r, float) and np.isnan(r)):
            continue
        pred, true = a == b, r >= threshold
        tp += pred and true
        fp += pred and not true
        fn += true and not pred
    return _prf(tp, fp, fn)


def pair_counting_scores(
    labels_true: Sequence, labels_pred: Sequence, *, outliers: str = "singleton"
) -> PairScores:
    """Pair-counting precision/recall/F1 between two labelings of the same items (e.g. known topics vs
    clusters). With ``outliers='singleton'`` each -1 of ``labels_pred`` is its own cluster; with 'drop'
    items that are outliers in either labeling are left out."""
    from collections import Counter

    t, p = list(labels_true), list(labels_pred)
    if len(t) != len(p):
        raise ValueError("the two labelings must cover the same items")
    if outliers == "drop":
        kept = [(x, y) for x, y in zip(t, p) if x != -1 and y != -1]
        t, p = [x for x, _ in kept], [y for _, y in kept]
    elif outliers == "singleton":
        p = [("__outlier__", i) if y == -1 else y for i, y in enumerate(p)]
    else:
        raise ValueError("outliers must be 'singleton' or 'drop'")

    def same_pairs(labels) -> int:
        return sum(c * (c - 1) // 2 for c in Counter(labels).values())

    both = same_pairs(list(zip(t, p)))
    return _prf(both, same_pairs(p) - both, same_pairs(t) - both)
