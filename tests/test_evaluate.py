"""Validation metrics against textbook examples."""

import math

import pytest

from connote.evaluate import (
    cluster_quality,
    cohen_kappa,
    krippendorff_alpha,
    majority_labels,
    match_scores,
    mean_pairwise_kappa,
    pair_counting_scores,
    rated_pair_scores,
)

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the 4 coders x 12 units example.
K = None
RELIABILITY_DATA = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, K, K, K],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, K, 3],
    [K, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, K],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, K],
]


@pytest.mark.parametrize(
    ("level", "expected"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)]
)
def test_krippendorff_alpha_textbook(level, expected):
    assert krippendorff_alpha(RELIABILITY_DATA, level) == pytest.approx(expected, abs=0.0005)


def test_krippendorff_alpha_perfect_and_degenerate():
    assert krippendorff_alpha([[0, 1, 2, 2], [0, 1, 2, 2]], "ordinal") == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha([[1, 1], [1, 1]]))  # no variation at all
    with pytest.raises(ValueError):
        krippendorff_alpha([[0, 1], [0, 1]], "fuzzy")


def test_cohen_kappa_textbook():
    # Wikipedia's example: 50 proposals, yes/yes 20, yes/no 5, no/yes 10, no/no 15 -> kappa 0.4
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa(a, a) == pytest.approx(1.0)
    assert mean_pairwise_kappa([a, b, a]) == pytest.approx((0.4 + 1.0 + 0.4) / 3)


def test_cluster_quality_needs_enough_pairs_on_each_side():
    # 30 same-cluster pairs rated 2, 30 different-cluster pairs rated 0 or 1 -> quality 2 - 0.5 = 1.5
    la = [0] * 30 + [0] * 30 + [-1] * 5
    lb = [0] * 30 + [1] * 30 + [0] * 5
    ratings = [2] * 30 + [0, 1] * 15 + [2] * 5
    q = cluster_quality(la, lb, ratings)
    assert (q.n_same, q.n_different, q.n_excluded) == (30, 30, 5)
    assert q.score == pytest.approx(1.5)
    short = cluster_quality(la[:50], lb[:50], ratings[:50])  # only 20 different-cluster pairs
    assert math.isnan(short.score) and short.mean_same == pytest.approx(2.0)
    assert cluster_quality(la[:50], lb[:50], ratings[:50], min_pairs=20).score == pytest.approx(1.5)


def test_rated_pair_scores():
    s = rated_pair_scores([0, 0, 0, 1, -1], [0, 0, 1, 1, 0], [2, 1, 2, 2, 2])
    # predicted same: pairs 0,1,3 ; similar (rating 2): 0,2,3 ; outlier pair 4 left out
    assert (s.tp, s.fp, s.fn) == (2, 1, 1)
    assert s.precision == pytest.approx(2 / 3) and s.recall == pytest.approx(2 / 3)


def test_pair_counting_scores_textbook():
    # Manning, Raghavan & Schuetze (2008), Introduction to IR, section 16.3: TP 20, FP 20, FN 24, F1 ~ 0.48
    true = ["x"] * 5 + ["o"] * 1 + ["x"] * 1 + ["o"] * 4 + ["d"] * 1 + ["x"] * 2 + ["d"] * 3
    pred = [1] * 6 + [2] * 6 + [3] * 5
    s = pair_counting_scores(true, pred)
    assert (s.tp, s.fp, s.fn) == (20, 20, 24)
    assert s.f1 == pytest.approx(2 * 0.5 * 20 / 44 / (0.5 + 20 / 44))
    # outliers as singletons never count as together; dropped, they vanish
    assert pair_counting_scores([1, 1, 1], [-1, -1, 0]).tp == 0
    assert pair_counting_scores([1, 1, 1], [-1, 0, 0], outliers="drop").tp == 1


def test_majority_labels_ties_go_to_first_evaluator():
    labels, with_majority = majority_labels([["a", "b", "c"], ["a", "c", "b"], ["b", "c", "a"]])
    assert labels == ["a", "c", "c"]
    assert with_majority == 2


def test_match_scores_and_merging_twins():
    true = [0, 0, 1, 1, 2, 2]
    assigned = [0, 0, 2, 1, 1, 2]
    s = match_scores(true, assigned)
    assert s.accuracy == pytest.approx(4 / 6)
    assert s.per_cluster[0] == (1.0, 1.0, 2)
    merged = match_scores(true, assigned, merge={2: 1})
    assert merged.accuracy == pytest.approx(1.0)
