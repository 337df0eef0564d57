"""S3: dimensionality reduction, UMAP or PCA, as small scikit-learn-style estimators: parameters in
``__init__`` (``get_params()``), values checked and the work done in ``fit_transform(X)``, what fitting
learns in attributes ending in ``_`` (``notes_``: what was adapted to the data). Any object with
``fit_transform`` can stand in."""

from __future__ import annotations

import warnings

import numpy as np

from connote import gpu
from connote.defaults import (
    DEFAULT_PCA_COMPONENTS,
    DEFAULT_SEED,
    DEFAULT_UMAP_COMPONENTS,
    DEFAULT_UMAP_NEIGHBORS,
)
from connote.errors import UserError
from connote.jit import import_umap
from connote.params import Params
from connote.specs import unknown_option

#: Distances the neighbour graph (exact: scikit-learn; approximate: pynndescent) and UMAP all know, and that
#: need no parameters of their own.
UMAP_METRICS = (
    "braycurtis", "canberra", "chebyshev", "correlation", "cosine", "euclidean", "l1", "l2", "manhattan",
    "minkowski",
)  # fmt: skip


class Reducer(Params):
    """What every S3 stage of connote declares: its ``kind`` (the spec's prefix, registered in
    :data:`connote.registry.REDUCERS`) and ``spec_options``, the one declaration of what a spec string may
    set (``umap:components=5``): spec name -> (``__init__`` argument, type). An ``__init__`` argument's own
    name is taken too (``n_components=5``). Values are checked by ``check()``."""

    kind = ""
    label = ""  # the name in messages
    spec_options: dict[str, tuple[str, type]] = {}
    spec_aliases: dict[str, str] = {}  # other spellings of a spec option

    def __init_subclass__(cls, **kwargs) -> None:
        """The declaration is checked against ``__init__`` once, when the class is defined."""
        super().__init_subclass__(**kwargs)
        wrong = sorted(arg for arg, _ in cls.spec_options.values() if arg not in cls.param_names())
        if wrong:
            raise TypeError(f"{cls.__name__}.spec_options name no __init__ argument: {', '.join(wrong)}")

    def check(self) -> None:
        """Refuse values the reduction cannot use (by ``fit_transform``, and when a spec string is read)."""

    @classmethod
    def from_options(
        cls, options: dict[str, str], *, seed: int | None, spec: str, others: tuple[type[Reducer], ...] = ()
    ) -> Reducer:
        """The reducer a spec string's options make (values converted to their declared types, then
        checked); ``others``: the other registered reducers, to name the one an option belongs to."""
        args = {}
        for key, value in options.items():
            arg, typ = cls._option(key, spec, others)
            if arg in args:  # components= and n_components= are one option
                raise UserError(f"{key!r} repeats an option given before in {spec!r}; give it once")
            try:
                args[arg] = typ(value)
            except ValueError as exc:
                raise UserError(f"bad number in {spec!r}: {exc}") from None
        reducer = cls._from_args(args, seed)
        reducer.check()  # a bad number is named now, not after the features are loaded
        return reducer

    @classmethod
    def _option(cls, key: str, spec: str, others: tuple[type[Reducer], ...]) -> tuple[str, type]:
        name = cls.spec_aliases.get(key, key)
        if name in cls.spec_options:
            return cls.spec_options[name]
        by_arg = {arg: (arg, typ) for arg, typ in cls.spec_options.values()}
        if name in by_arg:
            return by_arg[name]
        owner = next((o for o in others if o._takes(key)), None)
        if owner is not None:
            raise UserError(
                f"{cls.label} takes {', '.join(f'{k}=' for k in cls.spec_options)}, not {key}= "
                f"({key}= is a {owner.label} option) in {spec!r}"
            )
        raise unknown_option("reduce", key, cls.spec_options, where=spec)

    @classmethod
    def _from_args(cls, args: dict, seed: int | None) -> Reducer:
        return cls(**{"random_state": seed, **args})

    @classmethod
    def _takes(cls, key: str) -> bool:
        """Whether a spec of this reducer takes the option ``key`` (a spec name, alias or argument)."""
        args = {arg for arg, _ in cls.spec_options.values()}
        return key in cls.spec_options or key in cls.spec_aliases or key in args


class UMAPReducer(Reducer):
    """UMAP (McInnes et al. 2018). The paper: 5 or 10 components x 5, 15 or 30 neighbours."""

    kind = "umap"
    label = "UMAP"
    spec_options = {
        "components": ("n_components", int),
        "neighbors": ("n_neighbors", int),
        "metric": ("metric", str),
        "min_dist": ("min_dist", float),
    }
    spec_aliases = {"neighbours": "neighbors"}

    def __init__(
        self,
        n_components: int = DEFAULT_UMAP_COMPONENTS,
        n_neighbors: int = DEFAULT_UMAP_NEIGHBORS,
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


class PCAReducer(Reducer):
    """PCA to a number of components, or to the fewest components explaining a share of the variance."""

    kind = "pca"
    label = "PCA"
    spec_options = {"components": ("n_components", int), "variance": ("variance", float)}

    @classmethod
    def _from_args(cls, args: dict, seed: int | None) -> Reducer:
        if "variance" in args:  # pca:variance=0.8: no fixed number of components
            args = {"n_components": None, **args}
        return cls(**{"random_state": seed, **args})

    def __init__(
        self,
        n_components: int | None = DEFAULT_PCA_COMPONENTS,
        variance: float | None = None,
        random_state: int | None = DEFAULT_SEED,
    ):
        self.n_components = n_components
        self.variance = variance
        self.random_state = random_state

    def check(self) -> None:
        """Refuse values PCA cannot use (called by ``fit_transform``, and when a spec string is read)."""
        if self.n_components is not None and self.variance is not None:
            raise UserError("PCA takes either components=N or variance=SHARE, not both")
        if self.n_components is None and self.variance is None:
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
