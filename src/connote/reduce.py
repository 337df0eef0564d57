"""S3: dimensionality reduction, UMAP or PCA, as small scikit-learn-style estimators: parameters in
``__init__`` (``get_params()``), values checked and the work done in ``fit_transform(X)``, what fitting
learns in attributes ending in ``_`` (``notes_``: what was adapted to the data). Any object with
``fit_transform`` can stand in."""

from __future__ import annotations

import warnings

import numpy as np

from connote import gpu
from connote.defaults import DEFAULT_SEED
from connote.errors import UserError
from connote.jit import import_umap
from connote.params import Params
from connote.specs import parse_options, split_spec, unknown_option

#: Distances the neighbour graph (exact: scikit-learn; approximate: pynndescent) and UMAP all know, and that
#: need no parameters of their own.
UMAP_METRICS = (
    "braycurtis", "canberra", "chebyshev", "correlation", "cosine", "euclidean", "l1", "l2", "manhattan",
    "minkowski",
)  # fmt: skip


class UMAPReducer(Params):
    """UMAP (McInnes et al. 2018). The paper: 5 or 10 components x 5, 15 or 30 neighbours."""

    kind = "umap"

    def __init__(
        self,
        n_components: int = 5,
        n_neighbors: int = 15,
        metric: str = "cosine",
        min_dist: float = 0.1,
        random_state: int | None = DEFAULT_SEED,
    ):
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.metric = metric
        self.min_dist = min_dist
        self.random_state = random_state

    def check(self) -> None:
        """Refuse values UMAP cannot use (called by ``fit_transform``, and when a spec string is read)."""
        if not (_is_int(self.n_components) and _is_int(self.n_neighbors)):
            raise UserError(
                f"UMAP components and neighbors must be whole numbers, got {self.n_components!r} and "
                f"{self.n_neighbors!r}"
            )
        if self.n_components < 1 or self.n_neighbors < 2:
            raise UserError(
                f"UMAP needs components >= 1 and neighbors >= 2, got {self.n_components} and {self.n_neighbors}"
            )
        if not 0 <= float(self.min_dist) <= 1:
            raise UserError(f"UMAP min_dist must be between 0 and 1, got {self.min_dist}")
        if self.metric not in UMAP_METRICS:
            raise UserError(f"unknown UMAP metric {self.metric!r} (known: {', '.join(UMAP_METRICS)})")

    @property
    def spec(self) -> str:
        s = f"umap:components={self.n_components},neighbors={self.n_neighbors}"
        if self.metric != "cosine":
            s += f",metric={self.metric}"
        if self.min_dist != 0.1:
            s += f",min_dist={self.min_dist:g}"
        return s

    def effective(self, n: int) -> tuple[int, int]:
        """Components and neighbours that fit ``n`` items (UMAP needs neighbours < n, components < n - 1)."""
        return max(1, min(self.n_components, n - 2)), max(2, min(self.n_neighbors, n - 1))

    def method(self, n: int) -> dict:
        """What this reduction of ``n`` items depends on besides its parameters (part of a run's key):
        the neighbour graph's method (:mod:`connote.knn`) and umap-learn's and numba's versions."""
        from connote import knn as knn_mod
        from connote.provenance import environment

        packages = environment()["packages"]
        return {
            **knn_mod.method(n, self.metric),
            "umap-learn": packages.get("umap-learn"),
            "numba": packages.get("numba"),
            "threads": 1,
            **gpu.method(),  # cuML's UMAP when installed with a GPU: recorded (nothing on the CPU)
        }

    def fit_transform(self, X: np.ndarray, knn=None) -> np.ndarray:
        """The embedding of ``X`` (float32). UMAP is always given connote's neighbour graph
        (:func:`connote.knn.knn_graph`, computed here unless ``knn`` = (indices, distances) of at least the
        effective neighbour count, nearest first, is given: the sweep's shared graph, sliced here), so
        every command computes the same graph; all of it runs on one thread."""
        from connote import knn as knn_mod

        self.check()
        X = np.asarray(X, dtype=np.float32)
        n = len(X)
        if n < 4:
            raise UserError(f"UMAP needs at least 4 items, got {n}")
        self.notes_: list[str] = []
        comps, neigh = self.effective(n)
        if (comps, neigh) != (self.n_components, self.n_neighbors):
            self.notes_.append(f"UMAP used {comps} components and {neigh} neighbours to fit {n} items")
        if knn is None:
            knn = knn_mod.knn_graph(X, neigh, metric=self.metric, seed=self.random_state)
        elif knn[0].shape[1] < neigh:
            raise ValueError(f"the neighbour graph has {knn[0].shape[1]} columns; UMAP needs {neigh}")
        if gpu.cuml_version():
            return gpu.umap(
                X, knn, n_components=comps, n_neighbors=neigh, metric=self.metric,
                min_dist=self.min_dist, seed=self.random_state,
            )  # fmt: skip
        umap = import_umap()
        model = umap.UMAP(
            n_components=comps,
            n_neighbors=neigh,
            metric=self.metric,
            min_dist=self.min_dist,
            random_state=self.random_state,
            n_jobs=1,
            precomputed_knn=(
                np.array(knn[0][:, :neigh], dtype=np.int32),
                np.array(knn[1][:, :neigh], dtype=np.float32),
            ),
        )
        with knn_mod.one_thread(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # umap-learn warns that a given graph has no search index
            Y = model.fit_transform(X)
        return np.asarray(Y, dtype=np.float32)


class PCAReducer(Params):
    """PCA to a number of components, or to the fewest components explaining a share of the variance."""

    kind = "pca"

    def __init__(
        self,
        n_components: int | None = 10,
        variance: float | None = None,
        random_state: int | None = DEFAULT_SEED,
    ):
        self.n_components = n_components
        self.variance = variance
        self.random_state = random_state

    def check(self) -> None:
        """Refuse values PCA cannot use (called by ``fit_transform``, and when a spec string is read)."""
        if (self.n_components is None) == (self.variance is None):
            raise UserError("PCA needs either components=N or variance=SHARE (e.g. pca:variance=0.8)")
        if self.n_components is not None and (not _is_int(self.n_components) or self.n_components < 1):
            raise UserError(f"PCA needs at least 1 component, got {self.n_components}")
        if self.variance is not None and not 0 < self.variance < 1:
            raise UserError(f"PCA variance share must be between 0 and 1, got {self.variance}")

    @property
    def spec(self) -> str:
        return (
            f"pca:variance={self.variance:g}"
            if self.variance is not None
            else f"pca:components={self.n_components}"
        )

    def method(self, n: int) -> dict:
        """What this reduction depends on besides its parameters (part of a run's key)."""
        from connote.provenance import environment

        packages = environment()["packages"]
        return {"scikit-learn": packages.get("scikit-learn"), "scipy": packages.get("scipy"), "threads": 1}

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        from sklearn.decomposition import PCA

        from connote.knn import one_thread

        self.check()
        self.notes_: list[str] = []
        X = np.asarray(X, dtype=np.float64)
        limit = min(X.shape)
        if self.variance is not None:
            model = PCA(n_components=self.variance, svd_solver="full", random_state=self.random_state)
        else:
            k = min(self.n_components, limit)
            if k != self.n_components:
                self.notes_.append(
                    f"PCA used {k} components to fit {X.shape[0]} items of {X.shape[1]} dimensions"
                )
            model = PCA(n_components=k, random_state=self.random_state)
        with one_thread():
            out = model.fit_transform(X)
        self.n_components_ = int(model.n_components_)
        self.explained_variance_ = float(np.sum(model.explained_variance_ratio_))
        return out.astype(np.float32)


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


#: spec-string option -> (__init__ argument, type)
_OPTIONS = {
    "components": ("n_components", int),
    "n_components": ("n_components", int),
    "neighbors": ("n_neighbors", int),
    "neighbours": ("n_neighbors", int),
    "n_neighbors": ("n_neighbors", int),
    "metric": ("metric", str),
    "min_dist": ("min_dist", float),
    "variance": ("variance", float),
}
_KNOWN = {"umap": ("components", "neighbors", "metric", "min_dist"), "pca": ("components", "variance")}


def from_spec(spec: str, seed: int | None = DEFAULT_SEED):
    """'umap:components=5,neighbors=15' | 'umap' | 'pca:components=10' | 'pca:variance=0.8'."""
    kind, arg = split_spec(spec)
    if kind not in _KNOWN:
        raise UserError(
            f"unknown reduction {spec!r}; use umap:components=5,neighbors=15, pca:components=10 "
            "or pca:variance=0.8"
        )
    opts = {}
    for key, value in parse_options(arg).items():
        if key not in _OPTIONS:
            raise unknown_option("reduce", key, _KNOWN["umap"] + _KNOWN["pca"][1:], where=spec)
        name, typ = _OPTIONS[key]
        if name in opts:  # components= and n_components= are one option
            raise UserError(f"{key!r} repeats an option given before in {spec!r}; give it once")
        try:
            opts[name] = typ(value)
        except ValueError as exc:
            raise UserError(f"bad number in {spec!r}: {exc}") from None
    if kind == "umap":
        if "variance" in opts:
            raise UserError("variance= is a PCA option")
        reducer = UMAPReducer(random_state=seed, **opts)
    else:
        bad = set(opts) - {"n_components", "variance"}
        if bad:
            raise UserError(f"PCA takes components= or variance=, not {', '.join(sorted(bad))}")
        if "variance" in opts and "n_components" in opts:
            raise UserError(f"PCA takes either components=N or variance=SHARE, not both ({spec!r})")
        if "variance" in opts:
            reducer = PCAReducer(n_components=None, variance=opts["variance"], random_state=seed)
        else:
            reducer = PCAReducer(n_components=opts.get("n_components", 10), random_state=seed)
    reducer.check()  # a bad number is named now, not after the features are loaded
    return reducer
