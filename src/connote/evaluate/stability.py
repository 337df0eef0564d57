"""Seed stability: do runs that differ only by their seed find the same clusters?

UMAP's layout depends on its random seed; on real texts one seed can give 2 clusters and the next 18. A
setting is judged by the agreement between the label vectors of its runs with different seeds, aligned by
image: the adjusted Rand index (Hubert & Arabie 1985) of every pair of seeds, their mean and minimum, and
the range of cluster counts. A setting whose mean pairwise ARI is below :data:`UNSTABLE_BELOW` is
*unstable*: its clusters depend on the seed more than on the data, and no single seed of it should be
published alone.

Outliers (-1) count as one group of their own, as in scikit-learn's ``adjusted_rand_score`` on HDBSCAN
labels: two runs agree about an outlier when both call it one.

Hubert, L., & Arabie, P. (1985). Comparing partitions. *Journal of Classification*, 2(1), 193-218.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

#: Mean pairwise ARI below which a setting is called unstable.
UNSTABLE_BELOW = 0.5


def adjusted_rand_index(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Adjusted Rand index of two labelings of the same items (1 = the same partition, about 0 = chance).

    ARI = (sum_ij C(n_ij, 2) - E) / (max - E), with E = sum_i C(a_i, 2) * sum_j C(b_j, 2) / C(n, 2) and
    max = (sum_i C(a_i, 2) + sum_j C(b_j, 2)) / 2, over the contingency table n_ij with row sums a_i and
    column sums b_j. Where max = E (both labelings one cluster, or both all singletons) it is 1.0 when the
    partitions are the same, else 0.0."""
    if len(a) != len(b):
        raise ValueError(f"labelings of different lengths: {len(a)} and {len(b)}")
    n = len(a)
    if n < 2:
        return 1.0
    _, ia = np.unique(np.asarray(a, dtype=object).astype(str), return_inverse=True)
    _, ib = np.unique(np.asarray(b, dtype=object).astype(str), return_inverse=True)
    table = np.zeros((ia.max() + 1, ib.max() + 1), dtype=np.int64)
    np.add.at(table, (ia, ib), 1)
    return adjusted_rand_index_of_table(table)


def adjusted_rand_index_of_table(table: np.ndarray) -> float:
    """:func:`adjusted_rand_index` from the contingency table of the two labelings."""
    n = int(table.sum())
    if n < 2:
        return 1.0

    def pairs(x):
        x = np.asarray(x, dtype=np.float64)
        return float(np.sum(x * (x - 1) / 2))

    index = pairs(table)
    rows, cols = pairs(table.sum(axis=1)), pairs(table.sum(axis=0))
    expected = rows * cols / (n * (n - 1) / 2)
    maximum = (rows + cols) / 2
    if maximum == expected:
        return 1.0 if index == rows == cols else 0.0
    return float((index - expected) / (maximum - expected))


def aligned(a: Mapping[str, int], b: Mapping[str, int]) -> tuple[list[int], list[int]]:
    """The two label vectors over the images both runs labelled, in one order (by image key)."""
    common = sorted(set(a) & set(b))
    return [a[k] for k in common], [b[k] for k in common]


def n_clusters(labels: Mapping[str, int] | Sequence[int]) -> int:
    values = labels.values() if isinstance(labels, Mapping) else labels
    return len(set(values) - {-1})


@dataclass
class SeedStability:
    """The agreement between the runs of one setting with different seeds."""

    seeds: list  # in the order given
    clusters: list[int]  # cluster count per seed, same order
    outliers: list[int]  # outlier count per seed, same order
    pairs: list[tuple] = field(default_factory=list)  # (seed a, seed b, ARI) for every pair of seeds
    mean_ari: float | None = None  # None with fewer than two seeds
    min_ari: float | None = None
    threshold: float = UNSTABLE_BELOW

    @property
    def clusters_min(self) -> int | None:
        return min(self.clusters) if self.clusters else None

    @property
    def clusters_max(self) -> int | None:
        return max(self.clusters) if self.clusters else None

    @property
    def unstable(self) -> bool | None:
        """True when the mean pairwise ARI is below the threshold; None with fewer than two seeds."""
        return None if self.mean_ari is None else self.mean_ari < self.threshold

    def verdict(self) -> str:
        """'stable', 'UNSTABLE' or 'one seed' (nothing to compare)."""
        if self.unstable is None:
            return "one seed"
        return "UNSTABLE" if self.unstable else "stable"

    def describe(self) -> str:
        """One line, e.g. '3 seeds: ARI mean 0.62, min 0.41; 12-18 clusters; stable'."""
        span = (
            f"{self.clusters_min} clusters"
            if self.clusters_min == self.clusters_max
            else f"{self.clusters_min}-{self.clusters_max} clusters"
        )
        if self.mean_ari is None:
            return f"{len(self.seeds)} seed: {span}; one seed, stability unknown"
        text = f"{len(self.seeds)} seeds: ARI mean {self.mean_ari:.2f}, min {self.min_ari:.2f}; {span}; "
        if self.unstable:
            return text + (
                f"UNSTABLE (mean ARI below {self.threshold:g}: the clusters depend on the seed; "
                "do not report one seed alone)"
            )
        return text + "stable"

    @classmethod
    def from_dict(cls, d: dict) -> SeedStability:
        """The inverse of :meth:`to_dict` (e.g. for a row of ``connote runs --json``)."""
        return cls(
            seeds=list(d["seeds"]),
            clusters=list(d["clusters"]),
            outliers=list(d["outliers"]),
            pairs=[(p["seed_a"], p["seed_b"], p["ari"]) for p in d.get("pairs", [])],
            mean_ari=d.get("mean_ari"),
            min_ari=d.get("min_ari"),
            threshold=d.get("threshold", UNSTABLE_BELOW),
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        d["pairs"] = [{"seed_a": a, "seed_b": b, "ari": ari} for a, b, ari in self.pairs]
        d.update(
            clusters_min=self.clusters_min,
            clusters_max=self.clusters_max,
            unstable=self.unstable,
            verdict=self.verdict(),
        )
        return d


def seed_stability(
    labels_by_seed: Mapping[Hashable, Mapping[str, int]], threshold: float = UNSTABLE_BELOW
) -> SeedStability:
    """Pairwise ARI (aligned by image) between the labelings of one setting, one per seed."""
    seeds = list(labels_by_seed)
    pairs = []
    for sa, sb in itertools.combinations(seeds, 2):
        a, b = aligned(labels_by_seed[sa], labels_by_seed[sb])
        pairs.append((sa, sb, adjusted_rand_index(a, b)))
    aris = [p[2] for p in pairs]
    return SeedStability(
        seeds=seeds,
        clusters=[n_clusters(labels_by_seed[s]) for s in seeds],
        outliers=[sum(1 for v in labels_by_seed[s].values() if v == -1) for s in seeds],
        pairs=pairs,
        mean_ari=float(np.mean(aris)) if aris else None,
        min_ari=float(min(aris)) if aris else None,
        threshold=threshold,
    )


def stability_table(settings) -> str:
    """(features, reduce, min cluster size, SeedStability) rows as a text table (mean and lowest pairwise
    ARI, cluster-count range, UNSTABLE) with a closing line that says plainly what to make of it."""
    head = (
        f"{'features':8}  {'reduce':34}  {'mcs':>4}  {'seeds':>5}  {'mean ARI':>8}  {'min ARI':>7}  clusters"
    )
    lines = [head]
    unstable = 0
    for features, reduce, mcs, st in settings:
        mean = f"{st.mean_ari:8.2f}" if st.mean_ari is not None else f"{'-':>8}"
        low = f"{st.min_ari:7.2f}" if st.min_ari is not None else f"{'-':>7}"
        span = (
            f"{st.clusters_min}"
            if st.clusters_min == st.clusters_max
            else f"{st.clusters_min}-{st.clusters_max}"
        )
        flag = "  UNSTABLE" if st.unstable else ""
        unstable += bool(st.unstable)
        lines.append(
            f"{features:8}  {reduce[:34]:34}  {mcs:>4}  {len(st.seeds):>5}  {mean}  {low}  {span:>8}{flag}"
        )
    compared = [s for *_, s in settings if s.unstable is not None]
    if not compared:
        lines.append(
            "One seed per setting: run more seeds (e.g. --seeds 42,48,112) to see how far they agree."
        )
    elif unstable:
        lines.append(
            f"{unstable} of {len(compared)} setting(s) UNSTABLE: mean ARI between seeds below "
            f"{compared[0].threshold:g}; their clusters depend on the seed. Do not report one seed of them alone."
        )
    else:
        lines.append(
            f"All {len(compared)} setting(s) stable across seeds (mean ARI at least {compared[0].threshold:g})."
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- settings
_SEED_PARAMS = {"random_state", "seed"}


def setting_of(run: Mapping) -> str:
    """What a run computed apart from its seed, as a stable string: runs with the same setting differ
    only by seed. ``run`` is a row of the study's ``runs`` table (or a dict with its columns)."""
    try:
        params = run["params"]
    except (KeyError, IndexError):  # a dict or sqlite3.Row without the column
        params = None
    record = json.loads(params) if isinstance(params, str) else (params or {})
    reducer = {k: v for k, v in (record.get("reducer") or {}).items() if k not in _SEED_PARAMS}
    clusterer = {k: v for k, v in (record.get("clusterer") or {}).items() if k not in _SEED_PARAMS}
    setting = {
        "features": run["features"],
        "description_set": run["description_set"],
        "embedder": run["embedder"],
        "reduce": run["reduce"],
        "min_cluster_size": run["min_cluster_size"],
        "min_samples": run["min_samples"],
        "features_key": record.get("features_key"),
        "reducer": reducer,
        "clusterer": clusterer,
        "method": record.get("method"),
    }
    return json.dumps(setting, sort_keys=True, default=str)


def group_by_setting(runs: Iterable[Mapping]) -> dict[str, list]:
    """Runs grouped by :func:`setting_of`, each group in the order given, groups in order of first run."""
    groups: dict[str, list] = {}
    for r in runs:
        groups.setdefault(setting_of(r), []).append(r)
    return groups
