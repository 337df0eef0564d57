"""Validation metrics as pure functions over arrays (the paper's RQ1 and RQ2).

- :mod:`agreement`: inter-coder reliability (Krippendorff's alpha, Cohen's kappa).
- :mod:`quality`: clustering quality from rated image pairs (Grimmer & King 2011) and pair-counting scores.
- :mod:`interpretability`: matching image sets to cluster descriptions (majority label, precision, recall).
"""

from connote.evaluate.agreement import cohen_kappa, krippendorff_alpha, mean_pairwise_kappa
from connote.evaluate.interpretability import majority_labels, match_scores
from connote.evaluate.quality import cluster_quality, pair_counting_scores, rated_pair_scores

__all__ = [
    "cluster_quality",
    "cohen_kappa",
    "krippendorff_alpha",
    "majority_labels",
    "match_scores",
    "mean_pairwise_kappa",
    "pair_counting_scores",
    "rated_pair_scores",
]
