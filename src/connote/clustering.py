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
    """HDBSCAN with scikit-learn's estimator shape: ``fit_predict(X)`` returns labels, -1 = outlier.

    ``algorithm``: 'auto' (default) builds the minimum spanning tree with connote's exact Prim's
    (:mod:`connote.mst`: the same tree as hdbscan's 'prims_kdtree', several times faster) for euclidean
    data up to PRIMS_MAX_N points, else lets hdbscan choose; 'prims' forces connote's; any of hdbscan's
    names ('best', 'boruvka_kdtree', 'prims_kdtree', ...) goes to the hdbscan package.
    """

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

    def resolved_algorithm(self, n: int, dims: int) -> str:
        """'auto': connote's exact Prim's MST ('prims', see :mod:`connote.mst`) for euclidean data up to
        PRIMS_MAX_N points; hdbscan's own choice ('best') otherwise."""
        if self.algorithm != "auto":
            return self.algorithm
        return "prims" if self.metric in ("euclidean", "l2") and n <= PRIMS_MAX_N else "best"

    def fit_predict(self, X: np.ndarray, core: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """Labels (clusters numbered from the largest, -1 = outlier); ``probabilities_`` is set too.

        ``core``: core distances by min_samples, from :func:`connote.mst.core_distances`, when several
        min cluster sizes are clustered on the same data (see :func:`cluster_sizes`)."""
        if self.min_cluster_size < 2:
            raise UserError(f"min cluster size must be at least 2, got {self.min_cluster_size}")
        X = np.asarray(X, dtype=np.float64)
        if len(X) < self.min_cluster_size:
            self.probabilities_ = np.zeros(len(X))
            return np.full(len(X), -1, dtype=int)
        algorithm = self.resolved_algorithm(*X.shape)
        if algorithm == "prims":
            labels, self.probabilities_ = self._fit_prims(X, core)
            return relabel_by_size(labels)
        import hdbscan

        model = hdbscan.HDBSCAN(
            min_cluster_size=self.min_cluster_size,
            min_samples=self.min_samples,
            cluster_selection_method=self.cluster_selection_method,
            metric=self.metric,
            algorithm=algorithm,
            core_dist_n_jobs=1,
        )
        labels = model.fit_predict(X)
        self.probabilities_ = np.asarray(model.probabilities_)
        return relabel_by_size(labels)

    def effective_min_samples(self, n: int) -> int:
        """hdbscan's rule: min_samples defaults to the min cluster size and is at most n - 1."""
        return max(1, min(n - 1, self.min_samples or self.min_cluster_size))

    def _fit_prims(self, X: np.ndarray, core: dict[int, np.ndarray] | None):
        from hdbscan._hdbscan_linkage import label
        from hdbscan.hdbscan_ import _tree_to_labels

        from connote.mst import core_distances, mutual_reachability_mst

        k = self.effective_min_samples(len(X))
        if core is None or k not in core:
            core = core_distances(X, [k])
        mst = mutual_reachability_mst(X, core[k])
        # As hdbscan does: edges by weight (same sort), then the single-linkage tree and its condensed tree.
        mst = mst[np.argsort(mst.T[2]), :]
        labels, probabilities, *_ = _tree_to_labels(
            X, label(mst), self.min_cluster_size, self.cluster_selection_method
        )
        return labels, np.asarray(probabilities)


#: Above this many points, 'auto' leaves the spanning tree to hdbscan's tree-based algorithms: Prim's on the
#: dense graph grows with n^2 (about 0.5 s at 12,000 points, 9 s at 50,000 on one core).
PRIMS_MAX_N = 50_000


def cluster_sizes(
    X: np.ndarray,
    min_cluster_sizes,
    *,
    min_samples: int | None = None,
    selection: str = "eom",
    algorithm: str = "auto",
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """HDBSCAN of the same data at several min cluster sizes: {size: (labels, probabilities)}. The
    nearest-neighbour search behind the core distances is done once for all sizes."""
    X = np.asarray(X, dtype=np.float64)
    clusterers = {
        m: HDBSCANClusterer(
            min_cluster_size=m,
            min_samples=min_samples,
            cluster_selection_method=selection,
            algorithm=algorithm,
        )
        for m in min_cluster_sizes
    }
    core = None
    prims = [c for c in clusterers.values() if len(X) >= c.min_cluster_size >= 2]
    prims = [c for c in prims if c.resolved_algorithm(*X.shape) == "prims"]
    if len(prims) > 1:
        from connote.mst import core_distances

        core = core_distances(X, [c.effective_min_samples(len(X)) for c in prims])
    out = {}
    for m, c in clusterers.items():
        labels = c.fit_predict(X, core=core)
        out[m] = (labels, c.probabilities_)
    return out


def relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 0, 1, 2 ... from largest to smallest (ties by first appearance); -1 stays."""
    labels = np.asarray(labels)
    ids = [c for c in dict.fromkeys(labels.tolist()) if c != -1]
    order = sorted(ids, key=lambda c: -int(np.sum(labels == c)))
    mapping = {old: new for new, old in enumerate(order)}
    return np.array([mapping.get(c, -1) for c in labels.tolist()], dtype=int)
