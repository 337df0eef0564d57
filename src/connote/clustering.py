"""S4: HDBSCAN clustering (Campello et al. 2013); outliers are labelled -1 and kept apart.

:class:`HDBSCANClusterer` follows scikit-learn's conventions: parameters in ``__init__`` (``get_params()``),
values checked in ``fit_predict``, fitted state in ``labels_``, ``probabilities_``, ``min_cluster_size_``
and ``cluster_selection_method_`` (the values used when the parameter was left to its data-dependent
default)."""

from __future__ import annotations

import numpy as np

from connote import gpu
from connote.defaults import default_min_cluster_size, default_selection
from connote.errors import UserError
from connote.params import Params


class HDBSCANClusterer(Params):
    """HDBSCAN with scikit-learn's estimator shape: ``fit_predict(X)`` returns labels, -1 = outlier.

    ``algorithm``: 'auto' (default) builds the minimum spanning tree with connote's exact Prim's
    (:mod:`connote.mst`: the same tree as hdbscan's 'prims_kdtree', several times faster) for euclidean
    data up to PRIMS_MAX_N points, else lets hdbscan choose; 'prims' forces connote's; any of hdbscan's
    names ('best', 'boruvka_kdtree', 'prims_kdtree', ...) goes to the hdbscan package.
    """

    def __init__(
        self,
        min_cluster_size: int | None = None,
        min_samples: int | None = None,
        cluster_selection_method: str | None = None,
        metric: str = "euclidean",
        algorithm: str = "auto",
    ):
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.cluster_selection_method = cluster_selection_method
        self.metric = metric
        self.algorithm = algorithm

    def resolved(self, n: int) -> HDBSCANClusterer:
        """A copy with the data-dependent defaults filled in for ``n`` items (min cluster size about 1%,
        'leaf' selection: :mod:`connote.defaults`); what a run is keyed and recorded by. The one place
        these defaults are filled in (a run's plan resolves its clusterer: :func:`connote.fitting.plan_run`)."""
        return type(self)(
            **{
                **self.get_params(),
                "min_cluster_size": default_min_cluster_size(n)
                if self.min_cluster_size is None
                else self.min_cluster_size,
                "cluster_selection_method": self.cluster_selection_method or default_selection(n),
            }
        )

    def check(self, n: int) -> None:
        m = self.min_cluster_size
        if not isinstance(m, (int, np.integer)) or isinstance(m, bool) or m < 2:
            raise UserError(f"min cluster size must be a whole number, at least 2, got {m!r}")
        s = self.min_samples
        if s is not None and (not isinstance(s, (int, np.integer)) or isinstance(s, bool) or s < 1):
            raise UserError(f"min samples must be a whole number, at least 1, got {s!r}")
        if self.cluster_selection_method not in ("eom", "leaf"):
            raise UserError(f"unknown cluster selection {self.cluster_selection_method!r}; use eom or leaf")

    def method(self, n: int) -> dict:
        """What a clustering of ``n`` items depends on besides its parameters (part of a run's key): how the
        spanning tree is built and the versions of the code that builds and cuts it."""
        from connote.provenance import environment

        packages = environment()["packages"]
        tree = "connote-prims" if self.resolved_algorithm(n, 0) == "prims" else self.resolved_algorithm(n, 0)
        return {
            "tree": tree,
            "hdbscan": packages.get("hdbscan"),
            "scikit-learn": packages.get("scikit-learn"),
            "numba": packages.get("numba") if tree == "connote-prims" else None,
            **gpu.method(),  # cuML's HDBSCAN when installed with a GPU: recorded (nothing on the CPU)
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
        min cluster sizes are clustered on the same data (see :func:`hdbscan_at_sizes`)."""
        X = np.asarray(X, dtype=np.float64)
        fit = self.resolved(len(X))
        fit.check(len(X))
        assert fit.min_cluster_size is not None and fit.cluster_selection_method is not None  # resolved
        self.min_cluster_size_ = fit.min_cluster_size
        self.cluster_selection_method_ = fit.cluster_selection_method
        if len(X) < fit.min_cluster_size:
            self.probabilities_ = np.zeros(len(X))
            self.labels_ = np.full(len(X), -1, dtype=int)
            return self.labels_
        algorithm = self.resolved_algorithm(*X.shape)
        if gpu.cuml_version():
            labels, self.probabilities_ = gpu.hdbscan(
                X, min_cluster_size=fit.min_cluster_size, min_samples=fit.min_samples,
                selection=fit.cluster_selection_method, metric=fit.metric,
            )  # fmt: skip
        elif algorithm == "prims":
            labels, self.probabilities_ = fit._fit_prims(X, core)
        else:
            import hdbscan

            model = hdbscan.HDBSCAN(
                min_cluster_size=fit.min_cluster_size,
                min_samples=fit.min_samples,
                cluster_selection_method=fit.cluster_selection_method,
                metric=fit.metric,
                algorithm=algorithm,
                core_dist_n_jobs=1,
            )
            labels = model.fit_predict(X)
            self.probabilities_ = np.asarray(model.probabilities_)
        self.labels_ = relabel_by_size(labels)
        return self.labels_

    def effective_min_samples(self, n: int) -> int:
        """hdbscan's rule: min_samples defaults to the min cluster size and is at most n - 1."""
        fit = self.resolved(n)
        return max(1, min(n - 1, fit.min_samples or fit.min_cluster_size or 1))

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


def fit_clusterers(X: np.ndarray, clusterers) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Each clusterer fitted on the same data: [(labels, probabilities or None)], in order. The
    nearest-neighbour search behind HDBSCAN's core distances is done once for all connote HDBSCAN
    clusterers that build their tree with Prim's; each one's labels are exactly those of its own
    ``fit_predict(X)``. The one code path of ``connote cluster`` and ``connote sweep``."""
    X32 = X
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    ours = [c for c in clusterers if isinstance(c, HDBSCANClusterer)]
    prims = [c.resolved(n) for c in ours]
    prims = [
        c for c in prims if n >= (c.min_cluster_size or 0) >= 2 and c.resolved_algorithm(*X.shape) == "prims"
    ]
    core = None
    if len(prims) > 1:
        from connote.mst import core_distances

        core = core_distances(X, [c.effective_min_samples(n) for c in prims])
    out = []
    for c in clusterers:
        labels = c.fit_predict(X, core=core) if isinstance(c, HDBSCANClusterer) else c.fit_predict(X32)
        out.append((np.asarray(labels, dtype=int), getattr(c, "probabilities_", None)))
    return out


def hdbscan_at_sizes(
    X: np.ndarray,
    min_cluster_sizes,
    *,
    min_samples: int | None = None,
    selection: str | None = None,
    algorithm: str = "auto",
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """HDBSCAN of the same data at several min cluster sizes: {size: (labels, probabilities)}, from one
    nearest-neighbour search (:func:`fit_clusterers`); ``selection`` None is the default's
    (:func:`connote.defaults.default_selection`)."""
    sizes = list(min_cluster_sizes)
    clusterers = [
        HDBSCANClusterer(
            min_cluster_size=m,
            min_samples=min_samples,
            cluster_selection_method=selection or default_selection(len(X)),
            algorithm=algorithm,
        )
        for m in sizes
    ]
    return dict(zip(sizes, fit_clusterers(X, clusterers)))


def relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber clusters 0, 1, 2 ... from largest to smallest (ties by first appearance); -1 stays."""
    labels = np.asarray(labels)
    ids = [c for c in dict.fromkeys(labels.tolist()) if c != -1]
    order = sorted(ids, key=lambda c: -int(np.sum(labels == c)))
    mapping = {old: new for new, old in enumerate(order)}
    return np.array([mapping.get(c, -1) for c in labels.tolist()], dtype=int)
