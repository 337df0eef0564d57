"""How well a clustering agrees with codes a team already has (stance, frame, topic, actor per image).

Two kinds of measure, as pure functions over arrays:

- per column, the standard external measures of a clustering against one categorical labelling:
  adjusted Rand index (Hubert & Arabie 1985), normalised mutual information (arithmetic mean of the two
  entropies, scikit-learn's default), homogeneity and completeness (Rosenberg & Hirschberg 2007);
- one quality in the sense of Grimmer & King (2011), the study's RQ1 measure, with the codes in the place
  of the coders' ratings: a pair's similarity is 2 x the share of the columns (those both images are coded
  on) on which the two images agree, 0-2 like the coders' scale; a column holding several codes in a cell
  (``cause;impact``) agrees by the Jaccard similarity of the two sets. The quality itself is
  :func:`connote.evaluate.quality.cluster_quality`: mean similarity of same-cluster pairs minus
  different-cluster pairs, outliers left out, no score with fewer than 25 pairs on a side.

The pairs are all pairs of the coded images up to :data:`ALL_PAIRS_UP_TO` images, above that a sample
of :data:`PAIR_SAMPLE` distinct pairs drawn with a fixed seed: one set of pairs for every run, so that
runs are compared on the same pairs (a run's outliers and the images it did not cluster drop out).

Rosenberg, A., & Hirschberg, J. (2007). V-Measure: a conditional entropy-based external cluster evaluation
measure. *EMNLP-CoNLL*, 410-420.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from connote.defaults import DEFAULT_SEED
from connote.evaluate.quality import Quality, as_labels, cluster_quality
from connote.evaluate.stability import adjusted_rand_index_of_table

#: Separator of several codes in one cell (a frame column: ``cause;impact``).
MULTI_SEPARATOR = ";"
#: Up to this many coded images every pair is used; above, a fixed-seed sample of pairs.
ALL_PAIRS_UP_TO = 2000
#: Pairs drawn above :data:`ALL_PAIRS_UP_TO` coded images: as many as all pairs of that many images.
PAIR_SAMPLE = ALL_PAIRS_UP_TO * (ALL_PAIRS_UP_TO - 1) // 2
#: Seed of the pair sample (fixed: the same pairs for every run and every call).
PAIR_SEED = DEFAULT_SEED
#: Pairs scored at once (bounds the memory of multi-code columns).
CHUNK = 262_144


# ---------------------------------------------------------------------------------------------- per column
@dataclass(frozen=True)
class LabelScores:
    ari: float
    nmi: float
    homogeneity: float
    completeness: float
    n: int  # images compared

    def to_dict(self) -> dict:
        return asdict(self)


def contingency(a: Sequence[Hashable] | np.ndarray, b: Sequence[Hashable] | np.ndarray) -> np.ndarray:
    """Counts n_ij of items with label i in ``a`` and label j in ``b`` (labels in sorted order)."""
    if len(a) != len(b):
        raise ValueError(f"labelings of different lengths: {len(a)} and {len(b)}")
    ia, ib = (np.unique(_keys(x), return_inverse=True)[1].reshape(-1) for x in (a, b))
    table = np.zeros((ia.max() + 1 if len(a) else 0, ib.max() + 1 if len(b) else 0), dtype=np.int64)
    np.add.at(table, (ia, ib), 1)
    return table


def _keys(labels) -> np.ndarray:
    """Labels as an array np.unique can sort: integer arrays as they are, anything else as text."""
    if isinstance(labels, np.ndarray) and labels.dtype.kind in "iu":
        return labels
    return np.asarray(labels, dtype=object).astype(str)


def entropy(counts: np.ndarray) -> float:
    """Shannon entropy (nats) of a distribution given by counts."""
    c = np.asarray(counts, dtype=np.float64)
    c = c[c > 0]
    if not len(c):
        return 0.0
    p = c / c.sum()
    return float(-(p * np.log(p)).sum())


def mutual_information(table: np.ndarray) -> float:
    """Mutual information (nats) of a contingency table; never below 0 (rounding)."""
    t = np.asarray(table, dtype=np.float64)
    n = t.sum()
    if n == 0:
        return 0.0
    rows, cols = t.sum(axis=1, keepdims=True), t.sum(axis=0, keepdims=True)
    nz = t > 0
    mi = (t[nz] / n * np.log(t[nz] * n / (rows @ cols)[nz])).sum()
    return max(0.0, float(mi))


def label_scores(
    codes: Sequence[Hashable] | np.ndarray, clusters: Sequence[Hashable] | np.ndarray
) -> LabelScores:
    """ARI, NMI, homogeneity and completeness of ``clusters`` against ``codes`` (the classes), one entry
    per image. Homogeneity: each cluster holds one code (1 - H(code|cluster)/H(code)); completeness: each
    code lies in one cluster (1 - H(cluster|code)/H(cluster)); a labelling with no entropy counts as 1,
    and NMI = MI / mean(H(code), H(cluster)), as scikit-learn defines them. NaN below two images."""
    table = contingency(codes, clusters)
    n = int(table.sum())
    if n < 2:  # nothing to compare: no score (scikit-learn would call one image a perfect match)
        nan = float("nan")
        return LabelScores(nan, nan, nan, nan, n)
    mi = mutual_information(table)
    h_code, h_cluster = entropy(table.sum(axis=1)), entropy(table.sum(axis=0))
    if table.shape[0] == table.shape[1] == 1:
        nmi = 1.0
    elif mi == 0:
        nmi = 0.0
    else:
        nmi = mi / ((h_code + h_cluster) / 2)
    return LabelScores(
        adjusted_rand_index_of_table(table),
        float(nmi),
        mi / h_code if h_code else 1.0,
        mi / h_cluster if h_cluster else 1.0,
        n,
    )


# ---------------------------------------------------------------------------------------------- codes
def split_codes(value: str | None) -> frozenset[str]:
    """The codes of a multi-code cell (``'cause; impact'`` -> {'cause', 'impact'}); empty when none."""
    if value is None:
        return frozenset()
    return frozenset(p.strip() for p in value.split(MULTI_SEPARATOR) if p.strip())


def is_multi(values: Sequence[str | None]) -> bool:
    """Whether a column holds several codes in a cell somewhere (a ``;`` in any value)."""
    return any(v is not None and MULTI_SEPARATOR in v for v in values)


def distinct_codes(values: Sequence[str | None], multi: bool) -> set[str]:
    if multi:
        return {c for v in values for c in split_codes(v)}
    return {v.strip() for v in values if v is not None and v.strip()}


class CodeColumn:
    """One column's codes over n images, ready for pairs: an id per image (-1 = not coded) for a plain
    column, a boolean image x code matrix for a multi-code column."""

    def __init__(self, values: Sequence[str | None], multi: bool | None = None):
        self.multi = is_multi(values) if multi is None else multi
        if self.multi:
            sets = [split_codes(v) for v in values]
            names = sorted({c for s in sets for c in s})
            index = {c: k for k, c in enumerate(names)}
            self.matrix = np.zeros((len(values), len(names)), dtype=bool)
            for i, s in enumerate(sets):
                for c in s:
                    self.matrix[i, index[c]] = True
            self.coded: np.ndarray = np.asarray(self.matrix.any(axis=1))
        else:
            clean = [v.strip() if v is not None and v.strip() else None for v in values]
            names = sorted({v for v in clean if v is not None})
            index = {c: k for k, c in enumerate(names)}
            self.ids = np.array([index[v] if v is not None else -1 for v in clean], dtype=np.int64)
            self.coded = np.asarray(self.ids >= 0)

    def agreement(self, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(agreement 0-1, whether both images are coded) for the pairs (i[k], j[k])."""
        both = self.coded[i] & self.coded[j]
        if not self.multi:
            return (self.ids[i] == self.ids[j]) & both, both
        a, b = self.matrix[i], self.matrix[j]
        inter = (a & b).sum(axis=1)
        union = (a | b).sum(axis=1)
        return np.where(union > 0, inter / np.maximum(union, 1), 0.0), both


def pair_similarity(columns: Sequence[CodeColumn], i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """2 x the mean agreement over the columns both images of a pair are coded on (0-2, the coders'
    scale); NaN for a pair with no such column."""
    i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
    out = np.empty(len(i), dtype=np.float64)
    for start in range(0, len(i), CHUNK):
        a, b = i[start : start + CHUNK], j[start : start + CHUNK]
        total = np.zeros(len(a))
        count = np.zeros(len(a))
        for col in columns:
            agree, both = col.agreement(a, b)
            total += np.where(both, agree, 0.0)
            count += both
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + CHUNK] = np.where(count > 0, 2 * total / np.maximum(count, 1), np.nan)
    return out


# ---------------------------------------------------------------------------------------------- pairs
def pair_from_index(n: int, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (i, j), i < j, numbered k = 0 .. n(n-1)/2 - 1 in row order: (0,1), (0,2) ... (1,2) ..."""
    k = np.asarray(k, dtype=np.int64)

    def before(i):  # pairs in the rows above row i
        return i * (2 * n - i - 1) // 2

    b = 2 * n - 1
    i = np.floor((b - np.sqrt(np.maximum(b * b - 8.0 * k, 0.0))) / 2).astype(np.int64)
    i = np.clip(i, 0, max(n - 2, 0))
    for _ in range(2):  # correct the float rounding of the square root
        i = np.where(before(i) > k, i - 1, i)
        i = np.where(before(i + 1) <= k, i + 1, i)
    return i, k - before(i) + i + 1


@dataclass(frozen=True)
class Pairs:
    i: np.ndarray
    j: np.ndarray
    n_images: int
    sampled: bool  # False: every pair of the images
    seed: int | None

    @property
    def total(self) -> int:
        """How many pairs the images make."""
        return self.n_images * (self.n_images - 1) // 2

    def describe(self) -> str:
        if not self.sampled:
            return f"all {len(self.i):,} pairs of the {self.n_images:,} coded images"
        return (
            f"a sample of {len(self.i):,} of the {self.total:,} pairs of the {self.n_images:,} coded images "
            f"(distinct pairs, uniform, seed {self.seed}; every pair up to {ALL_PAIRS_UP_TO:,} images)"
        )


def code_pairs(
    n: int, *, all_up_to: int = ALL_PAIRS_UP_TO, size: int = PAIR_SAMPLE, seed: int = PAIR_SEED
) -> Pairs:
    """Every pair of ``n`` images up to ``all_up_to`` images, else ``size`` distinct pairs drawn
    uniformly with ``seed`` (the same pairs for the same n)."""
    total = n * (n - 1) // 2
    if n <= all_up_to or total <= size:
        i, j = np.triu_indices(n, k=1)
        return Pairs(i.astype(np.int64), j.astype(np.int64), n, False, None)
    k = np.sort(np.random.default_rng(seed).choice(total, size=size, replace=False))
    i, j = pair_from_index(n, k)
    return Pairs(i, j, n, True, seed)


def codes_quality(
    clusters: Sequence[int | None] | np.ndarray, similarity: np.ndarray, pairs: Pairs, *, min_pairs: int = 25
) -> Quality:
    """The Grimmer & King quality of a run whose cluster of image k is ``clusters[k]`` (-1 outlier, None
    not clustered), with the code similarity of each of ``pairs``."""
    lab = as_labels(clusters)
    return cluster_quality(lab[pairs.i], lab[pairs.j], similarity, min_pairs=min_pairs)
