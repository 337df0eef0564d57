"""Validation metrics as pure functions over arrays (the paper's RQ1 and RQ2).

- :mod:`agreement`: inter-coder reliability (Krippendorff's alpha, Cohen's kappa).
- :mod:`quality`: clustering quality from rated image pairs (Grimmer & King 2011) and pair-counting scores.
- :mod:`interpretability`: matching image sets to cluster descriptions (majority label, precision, recall).
- :mod:`stability`: agreement between runs that differ only by seed (pairwise adjusted Rand index).
"""

from connote.evaluate.agreement import cohen_kappa, krippendorff_alpha, mean_pairwise_kappa
from connote.evaluate.interpretability import majority_labels, match_scores
from connote.evaluate.quality import cluster_quality, pair_counting_scores, rated_pair_scores
from connote.evaluate.stability import adjusted_rand_index, seed_stability

__all__ = [
    "adjusted_rand_index",
    "cluster_quality",
    "cohen_kappa",
    "krippendorff_alpha",
    "majority_labels",
    "match_scores",
    "mean_pairwise_kappa",
    "pair_counting_scores",
    "rated_pair_scores",
    "seed_stability",
]
