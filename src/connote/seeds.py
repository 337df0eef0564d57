"""One setting clustered with one seed or several: each seed's run computed (or found under its key) and
stored, the seeds sharing the neighbour graph that does not depend on the seed, and of several seeds the
*representative* run kept (the seed whose labels agree best with the others'; :mod:`connote.evaluate.stability`)
with the seeds' and its clusters' stability recorded. :func:`connote.steps.cluster` calls
:func:`cluster_seeded`; each seed's run is planned, fitted and stored by :mod:`connote.fitting`.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field, replace

from connote import fitting
from connote.errors import UserError
from connote.evaluate.stability import SeedStability, seed_stability
from connote.features import Features, load_reduction, save_reduction
from connote.study import Study


@dataclass
class ClusterResult:
    """A clustering's result: one run, or, of several seeds, the representative run (``run_id``, ``seed``)
    with every seed's run (``runs``), their ``stability`` (pairwise ARI; ``kept`` the representative
    seed), why it was kept (``kept_why``) and the cluster-wise stability of its clusters."""

    run_id: int
    reused: bool
    n_items: int
    n_clusters: int
    n_outliers: int
    min_cluster_size: int
    notes: list[str]
    seed: int | None = None
    runs: list[ClusterResult] = field(default_factory=list)  # every seed's run, in seed order
    stability: SeedStability | None = None
    kept_why: str | None = None
    cluster_stability: dict[int, float] | None = None  # cluster -> mean best Jaccard over the other seeds

    @classmethod
    def of_run(cls, run, reused: bool, notes: list[str], seed: int | None) -> ClusterResult:
        return cls(
            run["id"],
            reused,
            n_items=run["n_items"],
            n_clusters=run["n_clusters"],
            n_outliers=run["n_outliers"],
            min_cluster_size=run["min_cluster_size"],
            notes=notes,
            seed=seed,
        )

    @property
    def seeds(self) -> list:
        return [r.seed for r in self.runs] or [self.seed]

    def to_dict(self) -> dict:
        d = {
            f: getattr(self, f) for f in ClusterResult.__dataclass_fields__ if f not in ("runs", "stability")
        }
        d.update(
            seeds=self.seeds,
            runs=[{k: v for k, v in r.to_dict().items() if k not in ("notes",)} for r in self.runs],
            seed_stability=self.stability.to_dict() if self.stability else None,
            stability_text=self.stability.describe() if self.stability else None,
        )
        return d


def cluster_seeded(
    study: Study, feats: Features, reduce, clusterer, seeds: list, *, label: str | None = None
) -> ClusterResult:
    """One run per seed of ``seeds`` (``reduce``: a spec string or a reducer object); one seed: its run;
    several: the representative run with every seed's run, their stability and its clusters' stability."""
    plans = [
        fitting.plan_run(feats, _seeded(reduce, s, len(seeds)), clusterer, s, label=label) for s in seeds
    ]
    shared = _SharedGraph(feats, [p.reducer for p in plans])
    runs = [_cluster_one(study, p, shared) for p in plans]
    if len(runs) == 1:
        return runs[0]
    return _keep_representative(study, runs)


def takes_seed(reduce) -> bool:
    return isinstance(reduce, str) or "random_state" in getattr(reduce, "get_params", dict)()


def _seeded(reduce, seed, count: int):
    """The reducer for one seed: a spec string (read with the seed by the plan), or a reducer object (with
    its ``random_state`` set to the seed when there are several seeds)."""
    if isinstance(reduce, str) or count == 1:
        return reduce
    if not takes_seed(reduce):
        raise UserError("several seeds need a reducer spec string or a reducer with a random_state parameter")
    return type(reduce)(**{**reduce.get_params(), "random_state": seed})


class _SharedGraph:
    """The exact neighbour graph the seeds' UMAP reductions share (it does not depend on the seed),
    computed when the first seed needs it; none for one seed, an approximate graph, or other reducers."""

    def __init__(self, feats, reducers):
        from connote import knn

        self.X, self.graph, n = feats.X, None, len(feats.shas)
        umap = [r for r in reducers if getattr(r, "kind", None) == "umap"]
        metrics = {r.metric for r in umap}
        self.wanted = len(reducers) > 1 and len(umap) == len(reducers) and len(metrics) == 1
        self.wanted = self.wanted and knn.can_slice(n, next(iter(metrics)))
        self.k = max((r.effective(n)[1] for r in umap), default=0)
        self.metric = next(iter(metrics), None)

    def get(self):
        from connote import knn

        if self.wanted and self.graph is None:
            self.graph = knn.knn_graph(self.X, self.k, metric=self.metric)
        return self.graph


def _cluster_one(study: Study, plan: fitting.RunPlan, shared: _SharedGraph) -> ClusterResult:
    """One seed: the stored run under its key, or reduce (or read the cached reduction), cluster, store."""
    run, made, notes = study.find_run(plan.key), False, list(plan.notes)
    if run is None:
        cached = load_reduction(study, plan)
        knn = None if cached is not None else shared.get()
        fit = fitting.fit(plan.feats.X, plan.reducer, [plan.clusterer], Y=cached, knn=knn)
        if cached is None:
            save_reduction(study, plan, fit.Y)
        notes += fit.notes
        run_id, made = fitting.store(study, plan, *fit.results[0], notes=fit.notes)
        run = study.get_run(run_id)  # this one, or the one another process stored meanwhile
    return ClusterResult.of_run(run, not made, notes, plan.seed)


def _keep_representative(study: Study, runs: list[ClusterResult]) -> ClusterResult:
    """Of one setting's runs with different seeds, the representative one as the result, with the seeds'
    stability and its clusters' stability, recorded with the run (:meth:`Study.keep_run`)."""
    from connote.evaluate.stability import cluster_stability

    labels: dict[Hashable, Mapping[str, int]] = {r.seed: study.assignments(r.run_id) for r in runs}
    st = seed_stability(labels)
    kept = next(r for r in runs if r.seed == st.kept)
    means = representative_means(st)
    why = (
        f"seed {st.kept} of {', '.join(map(str, st.seeds))}: its labels agree best with the other seeds' "
        f"(mean ARI {means[st.kept]:.2f}"
        + "".join(f"; seed {s}: {m:.2f}" for s, m in means.items() if s != st.kept)
        + ")"
    )
    per_cluster = cluster_stability(labels[st.kept], [labels[s] for s in st.seeds if s != st.kept])
    study.keep_run(
        kept.run_id,
        {
            "seeds": st.seeds,
            "run_ids": [r.run_id for r in runs],
            "kept": st.kept,
            "why": why,
            "seed_stability": st.to_dict(),
            "cluster_stability": {str(c): v for c, v in per_cluster.items()},
        },
    )
    return replace(kept, runs=runs, stability=st, kept_why=why, cluster_stability=per_cluster)


def representative_means(st: SeedStability) -> dict:
    """Each seed's mean ARI with the other seeds."""
    from connote.evaluate.stability import representative

    return representative(st.seeds, st.pairs)[1]
