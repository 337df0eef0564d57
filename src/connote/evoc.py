"""S3 + S4 in one: EVoC (McInnes et al., the ``evoc`` package) clusters embedding vectors directly, with no
separate reduction, and returns several layers of clusters from fine to coarse.

:class:`EVoCClusterer` is the estimator (scikit-learn shape: parameters in ``__init__``, fitted layers in
``layers_``). :func:`cluster` runs it on a study's features and stores every layer as an ordinary run
(``connote cluster --method evoc``): the run's clusterer parameters hold ``layer`` (0 = the finest, as
EVoC numbers them), ``n_layers`` and ``group`` (the key shared by the layers of one fit), so that a run
finds its neighbouring layers (:func:`layer_runs`) and a coarse cluster its fine ones (:func:`children`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from connote.defaults import DEFAULT_IMAGE_EMBEDDER, DEFAULT_SEED, DEFAULT_TEXT_EMBEDDER
from connote.errors import UserError
from connote.numbers import real, whole
from connote.params import Params

#: what ``reduce`` says of an EVoC run (EVoC makes its own node embedding from the vectors)
REDUCE_SPEC = "evoc"
#: the clusterer's name (``cluster --method evoc``; a layer's clusterer parameters hold it as ``method``)
KIND = "evoc"


#: EVoC's settings and the check of each (a grid's ``[evoc]`` table and :meth:`EVoCClusterer.check` use
#: these): noise level from 0 (cluster more) to 1 (only tight clusters), and counts of at least 1 or 2.
OPTIONS: dict = {
    "noise_level": lambda v, w: real(v, w, low=0, high=1),
    "base_min_cluster_size": lambda v, w: whole(v, w, low=2),
    "n_neighbors": lambda v, w: whole(v, w, low=2),
    "min_samples": lambda v, w: whole(v, w, low=1),
    "n_epochs": lambda v, w: whole(v, w, low=1),
    "max_layers": lambda v, w: whole(v, w, low=1),
}


class EVoCClusterer(Params):
    """EVoC with its main settings; ``fit(X)`` sets ``layers_`` (label arrays, finest first, -1 = noise),
    ``strengths_`` (membership strength per layer) and ``persistence_`` (per layer). It reduces on its
    own: a run's plan has no reducer (``reduce_spec`` is what the run's ``reduce`` says)."""

    kind = KIND
    reduce_spec = REDUCE_SPEC

    def __init__(
        self,
        *,
        noise_level: float = 0.5,
        base_min_cluster_size: int = 5,
        n_neighbors: int = 15,
        min_samples: int = 5,
        n_epochs: int = 50,
        max_layers: int = 10,
        random_state: int | None = DEFAULT_SEED,
    ):
        self.noise_level = noise_level
        self.base_min_cluster_size = base_min_cluster_size
        self.n_neighbors = n_neighbors
        self.min_samples = min_samples
        self.n_epochs = n_epochs
        self.max_layers = max_layers
        self.random_state = random_state

    def check(self, n: int) -> None:
        for name, check in OPTIONS.items():
            value = getattr(self, name)
            if isinstance(value, float) and name != "noise_level":
                raise UserError(f"EVoC's {name} must be a whole number, got {value!r}")
            check(value, f"EVoC's {name}")
        if n <= self.n_neighbors:
            raise UserError(f"EVoC needs more items than neighbours ({self.n_neighbors}); got {n}")

    def method(self, n: int) -> dict:
        """What a fit depends on besides its parameters (part of its key): evoc's and numpy's versions."""
        from connote.provenance import environment

        return {"evoc": _version(), "numpy": environment()["packages"].get("numpy")}

    def fit(self, X, y=None) -> EVoCClusterer:
        try:
            import evoc
        except ImportError:
            raise UserError("--method evoc needs the evoc package: pip install 'connote[evoc]'") from None
        X = np.ascontiguousarray(X, dtype=np.float32)
        self.check(len(X))
        model = evoc.EVoC(**self.get_params())
        model.fit(X)
        self.layers_ = [np.asarray(layer, dtype=int) for layer in model.cluster_layers_]
        self.strengths_ = [np.asarray(s, dtype=float) for s in model.membership_strength_layers_]
        self.persistence_ = [float(p) for p in model.persistence_scores_]
        return self

    def fit_predict(self, X, y=None) -> np.ndarray:
        """The labels of the layer EVoC itself picks (the most persistent)."""
        self.fit(X)
        return self.layers_[int(np.argmax(self.persistence_))]


def children(fine: np.ndarray, coarse: np.ndarray) -> dict[int, list[int]]:
    """``{coarse cluster: [fine clusters]}``: each fine cluster under the coarse cluster most of its
    members are in (noise, -1, is neither a parent nor a child)."""
    out: dict[int, list[int]] = {}
    fine, coarse = np.asarray(fine), np.asarray(coarse)
    for c in sorted(set(fine.tolist()) - {-1}):
        parents = coarse[(fine == c) & (coarse != -1)]
        if parents.size:
            out.setdefault(int(np.bincount(parents).argmax()), []).append(int(c))
    return out


@dataclass
class EVoCResult:
    """The runs of one EVoC fit, finest layer first."""

    run_ids: list[int]
    layers: list[dict]  # per layer: run_id, layer, n_clusters, n_outliers, persistence, reused
    n_items: int
    seed: int | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def cluster(
    study,
    features_kind: str = "text",
    *,
    seed: int | None = DEFAULT_SEED,
    text: str = DEFAULT_TEXT_EMBEDDER,
    image: str = DEFAULT_IMAGE_EMBEDDER,
    description_set: str | None = None,
    label: str | None = None,
    **options,
) -> EVoCResult:
    """EVoC on the study's features; every layer stored as a run (an identical earlier fit is reused)."""
    from connote import fitting
    from connote.features import features
    from connote.study import Study

    study = Study.of(study)
    feats = features(study, features_kind, text=text, image=image, description_set=description_set)
    feats.require_enough()
    plan = fitting.plan_run(feats, None, EVoCClusterer(random_state=seed, **options), seed, label=label)
    return fit_layers(study, plan)


def fit_layers(study, plan) -> EVoCResult:
    """The runs of one planned EVoC fit (:func:`connote.fitting.plan_run` with no reducer): found under
    the fit's key, or the fit made and every layer stored as a run (:func:`layer_plan`)."""
    from connote import fitting

    found = _group_runs(study, plan.key)
    if found:
        return _result(found, plan.n, plan.seed, reused=True)
    est = plan.clusterer
    est.fit(plan.feats.X)
    for i, labels in enumerate(est.layers_):
        fitting.store(
            study, layer_plan(plan, i, est), labels, est.strengths_[i],
            notes=[f"EVoC layer {i} of {len(est.layers_)} (0 = finest)"],
        )  # fmt: skip
    return _result(_group_runs(study, plan.key), plan.n, plan.seed, reused=False)


def layer_plan(plan, i: int, est: EVoCClusterer):
    """The plan of layer ``i`` of a fitted EVoC plan: the fit's settings with the layer's place in it (the
    fit's key as ``group``, ``layer``, ``n_layers``, its persistence), keyed by them; its min cluster size
    is its smallest cluster's."""
    from dataclasses import replace

    from connote.study.runs import run_key

    labels = est.layers_[i]
    params = {
        **plan.cluster_params,
        "method": KIND,  # stored under the name `cluster --method` gives it
        "group": plan.key,
        "layer": i,
        "n_layers": len(est.layers_),
        "persistence": est.persistence_[i],
    }
    sizes = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.array([0])
    return replace(
        plan,
        key=run_key(plan.feats, plan.reducer_params, params, plan.seed, plan.computation),
        cluster_params=params,
        computation={"cluster": KIND, **plan.computation},
        min_cluster_size=int(sizes[sizes > 0].min()) if (sizes > 0).any() else est.base_min_cluster_size,
        label=f"{plan.label} layer {i}" if plan.label else None,
    )


def _version() -> str | None:
    try:
        from importlib.metadata import version

        return version("evoc")
    except Exception:  # noqa: BLE001 - not installed: fit() says how to install it
        return None


def _clusterer(run) -> dict:
    return json.loads(run["params"] or "{}").get("clusterer") or {}


def _group_runs(study, group: str) -> list:
    """The runs of one EVoC fit, finest layer first (all of them, or none when a layer is missing)."""
    rows = sorted((r for r in study.runs() if r["reduce"] == REDUCE_SPEC), key=lambda r: r["id"])
    runs = {_clusterer(r).get("layer"): r for r in rows if _clusterer(r).get("group") == group}
    n = next((_clusterer(r).get("n_layers") for r in runs.values()), 0)
    return [runs[i] for i in range(n)] if n and all(i in runs for i in range(n)) else []


def layer_runs(study, run_id: int) -> dict:
    """Where an EVoC run stands in its hierarchy: its layer, the finer and coarser layers' run ids (None
    at the ends), and ``children``: each of its clusters with the clusters of the next finer layer under
    it. Empty for a run that is not an EVoC layer."""
    run = study.get_run(run_id)
    params = _clusterer(run)
    if params.get("method") != KIND:
        return {}
    runs = _group_runs(study, params["group"])
    i = params["layer"]
    finer = runs[i - 1]["id"] if i > 0 and runs else None
    coarser = runs[i + 1]["id"] if runs and i + 1 < len(runs) else None
    kids: dict[int, list[int]] = {}
    if finer is not None:
        kids = children(_labels(study, finer), _labels(study, run_id))
    return {"layer": i, "n_layers": params["n_layers"], "finer": finer, "coarser": coarser, "children": kids}


def _labels(study, run_id: int) -> np.ndarray:
    assigned = study.assignments(int(run_id))  # image sha256 -> cluster
    return np.array([assigned[sha] for sha in sorted(assigned)], dtype=int)


def _result(runs, n: int, seed, reused: bool) -> EVoCResult:
    layers = [
        {
            "run_id": r["id"],
            "layer": _clusterer(r)["layer"],
            "n_clusters": r["n_clusters"],
            "n_outliers": r["n_outliers"],
            "persistence": _clusterer(r).get("persistence"),
            "reused": reused,
        }
        for r in runs
    ]
    return EVoCResult([r["id"] for r in runs], layers, n, seed)
