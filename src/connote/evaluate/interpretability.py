"""Interpretability (the paper's RQ2): evaluators match sets of images from one cluster to the clusters'
keyword descriptions. The majority label of the evaluators is compared with the true cluster, giving
per-cluster precision and recall and an overall accuracy. Where all evaluators disagree, the first
evaluator's label is taken, as in the study."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


def majority_labels(labels_by_evaluator: Sequence[Sequence[Hashable]]) -> tuple[list, int]:
    """Per item, the label most evaluators gave; ties go to the first evaluator's label.

    Returns (labels, number of items that had a strict majority).
    """
    if not labels_by_evaluator:
        return [], 0
    n = len(labels_by_evaluator[0])
    if any(len(x) != n for x in labels_by_evaluator):
        raise ValueError("every evaluator must label the same items")
    out, with_majority = [], 0
    for i in range(n):
        votes = [ev[i] for ev in labels_by_evaluator]
        (top, count), *rest = Counter(votes).most_common()
        if count > len(votes) / 2:
            out.append(top)
            with_majority += 1
        else:
            out.append(votes[0])
    return out, with_majority


@dataclass(frozen=True)
class MatchScores:
    accuracy: float
    macro_precision: float
    macro_recall: float
    per_cluster: Mapping[Hashable, tuple[float, float, int]] = field(
        default_factory=dict
    )  # precision, recall, n


def match_scores(
    true: Sequence[Hashable],
    assigned: Sequence[Hashable],
    *,
    merge: Mapping[Any, Hashable] | None = None,
) -> MatchScores:
    """Accuracy and per-cluster precision/recall of assigned descriptions against the true clusters.

    ``merge`` maps cluster ids onto others before scoring (the study merged near-twin clusters).
    """
    if len(true) != len(assigned):
        raise ValueError("true and assigned must have one entry per image set")
    m = dict(merge or {})
    t = [m.get(x, x) for x in true]
    a = [m.get(x, x) for x in assigned]
    n = len(t)
    if n == 0:
        return MatchScores(float("nan"), float("nan"), float("nan"), {})
    per = {}
    for c in sorted(set(t), key=str):
        tp = sum(1 for x, y in zip(t, a) if x == c and y == c)
        pred = sum(1 for y in a if y == c)
        actual = sum(1 for x in t if x == c)
        precision = tp / pred if pred else 0.0
        per[c] = (precision, tp / actual, actual)
    acc = sum(x == y for x, y in zip(t, a)) / n
    return MatchScores(
        acc, sum(p for p, _, _ in per.values()) / len(per), sum(r for _, r, _ in per.values()) / len(per), per
    )
