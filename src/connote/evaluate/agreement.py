"""Inter-coder agreement.

Krippendorff, K. (2011). *Computing Krippendorff's Alpha-Reliability*. Annenberg School for Communication.
Cohen, J. (1960). A coefficient of agreement for nominal scales. *Educational and Psychological
Measurement*, 20(1), 37-46.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Hashable, Sequence


def _delta(kind: str, values: list, counts: dict):
    if kind == "nominal":
        return lambda a, b: 0.0 if a == b else 1.0
    if kind == "interval":
        return lambda a, b: float(a - b) ** 2
    if kind == "ratio":
        return lambda a, b: 0.0 if a == b == 0 else ((a - b) / (a + b)) ** 2
    if kind == "ordinal":
        order = sorted(values)
        pos = {v: i for i, v in enumerate(order)}

        def ordinal(a, b):
            lo, hi = sorted((pos[a], pos[b]))
            between = sum(counts[order[g]] for g in range(lo, hi + 1))
            return (between - (counts[a] + counts[b]) / 2.0) ** 2

        return ordinal
    raise ValueError(f"unknown level of measurement {kind!r}; use nominal, ordinal, interval or ratio")


def krippendorff_alpha(data: Sequence[Sequence], level: str = "ordinal") -> float:
    """Krippendorff's alpha for a coders x units table; ``None`` (or NaN) marks a missing rating.

    Units rated by fewer than two coders are not pairable and are ignored. Returns NaN when there is no
    variation at all (expected disagreement 0). The paper's ratings (0, 1, 2) are ordinal.
    """
    n_units = max((len(row) for row in data), default=0)
    units: list[list] = []
    for u in range(n_units):
        vals = []
        for row in data:
            v = row[u] if u < len(row) else None
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            vals.append(v)
        if len(vals) >= 2:
            units.append(vals)
    # coincidence matrix o[c][k]
    o: dict[tuple, float] = defaultdict(float)
    for vals in units:
        m = len(vals)
        for i, j in itertools.permutations(range(m), 2):
            o[(vals[i], vals[j])] += 1.0 / (m - 1)
    n_c: dict[Hashable, float] = defaultdict(float)
    for (c, _k), w in o.items():
        n_c[c] += w
    n = sum(n_c.values())
    if n <= 1:
        return float("nan")
    values = list(n_c)
    delta = _delta(level, values, n_c)
    observed = sum(w * delta(c, k) for (c, k), w in o.items())
    expected = sum(n_c[c] * n_c[k] * delta(c, k) for c in values for k in values) / (n - 1)
    if expected == 0:
        return float("nan")
    return 1.0 - observed / expected


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's kappa of two coders' labels for the same items: (p_o - p_e) / (1 - p_e)."""
    if len(a) != len(b):
        raise ValueError("the two coders must label the same items")
    n = len(a)
    if n == 0:
        return float("nan")
    p_o = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    p_e = sum(ca[k] * cb[k] for k in ca) / (n * n)
    if p_e == 1:
        return 1.0 if p_o == 1 else float("nan")
    return (p_o - p_e) / (1 - p_e)


def mean_pairwise_kappa(labels_by_coder: Sequence[Sequence[Hashable]]) -> float:
    """Average Cohen's kappa over all pairs of coders (the paper reports this for its three evaluators)."""
    pairs = list(itertools.combinations(labels_by_coder, 2))
    if not pairs:
        return float("nan")
    return sum(cohen_kappa(a, b) for a, b in pairs) / len(pairs)
