"""S4: HDBSCAN clustering (Campello et al. 2013); outliers are labelled -1 and kept apart."""

from __future__ import annotations

import numpy as np

from connote.errors import UserError


def default_min_cluster_size(n: int) -> int:
    """About 1% of the collection, at least 5 (the paper used 50-200 for 11,873 images), and never more
    than a third of a very small collection."""
    if n < 6:
        return 2
    return int(max(2, min(max(5, round(n / 100)), n // 3)))


#: Below this many items the default cluster selection is 'leaf': excess-of-mass ('eom', the paper's and
#: hdbscan's default) tends to keep a small collection in two or three large clusters.
LEAF_BELOW = 500


def default_selection(n: int) -> str:
    return "leaf" if n < LEAF_BELOW else "eom"


class HDBSCANClusterer:
    """HDBSCAN with scikit-learn's estimator shape: ``fit_predict(X)`` returns labels, -1 = outlier."""

    def __init__(
        self,
        min_cluster_size: int = 50,
        min_samples: int | None = None,
        cluster_selection_method: str = "eom",
        metric: str = "euclidean",
        algorithm: str = "auto",
    ):
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.cluster_selection_method = cluster_selection_method
        self.metric = metric
        self.algorithm = algorithm
        self.probabilities_: np.ndarray | None = None

    def params(self) -> dict:
        return {
            "method": "hdbscan",
            "min_cluster_size": self.min_cluster_size,
            "min_samples": self.min_samples,
            "cluster_selection_method": self.cluster_selection_method,
            "metric": self.metric,
            "algorithm": self.algorithm,
        }

    def resolved_algorithm(self, dims: int) -> str:
        """'auto': Prim's algorithm on a kd-tree above 12 dimensions, where it builds the same minimum
        spanning tree as hdbscan's default Boruvka in about two thirds of the time; hdbscan's own choice
        below."""
        if self.algorithm != "auto":
            return self.algorithm
        return "prims_kdtree" if dims > 12 and self.metric in ("euclidean", "l2") else "best"

    def fit_predict(self, X: np.ndarray) -> np.ndarray:
        if self.min_cluster_size < 2:
            raise UserError(f"min cluster size must be at least 2, got {self.min_cluster_size}")
        import hdbscan

        X = np.asarray(X, dtype=np.float64)
        if len(X) < self.min_cluster_size:
            self.probabilities_ = np.zeros(len(X))
            return np.full(len(X), -1, dtype=int)
        model = hdbscan.HDBSCAN(
            min_cluster_size=self.min_cluster_size,
            min_samples=self.min_samples,
            cluster_selection_method=self.cluster_selection_method,
            metric=self.metric,
            algorithm=self.resolved_algorithm(X.shape[1]),
            core_dist_n_jobs=1,
        )
        labels = model.fit_predict(X)
        self.probabilities_ = np.asarray(model.probabilities_)
        return relabel_by_size(labels)


def relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 0, 1, 2 ... from largest to smallest (ties by first appearance); -1 stays."""
    labels = np.asarray(labels)
    ids = [c for c in dict.fromkeys(labels.tolist()) if c != -1]
    order = sorted(ids, key=lambda c: -int(np.sum(labels == c)))
    mapping = {old: new for new, old in enumerate(order)}
    return np.array([mapping.get(c, -1) for c in labels.tolist()], dtype=int)
