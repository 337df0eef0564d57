"""The runs of a study listed for people and for ``--json``: each run's settings and results, and the
seed stability of its setting (the runs that differ only by seed, compared by adjusted Rand index).

It reads through :class:`~connote.study.Study` and computes with :mod:`connote.evaluate.stability`, so it
sits above both (the study layer stores; it does not compute).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Hashable, Mapping

from connote.evaluate.stability import SeedStability, cluster_stability, group_by_setting, seed_stability
from connote.study import Study


def seed_stability_by_setting(
    study: Study, runs: list[sqlite3.Row] | None = None, labels_out: dict | None = None
) -> list[tuple[list[sqlite3.Row], SeedStability]]:
    """For each setting among ``runs`` (default: all of the study's), its runs and their
    :class:`~connote.evaluate.stability.SeedStability` (pairwise ARI between the seeds' labels, aligned
    by image; cluster-count range; unstable when the mean ARI is below 0.5), in order of first run.
    ``labels_out``, when given, receives each setting's first run's id -> {seed: labels} (read once)."""
    out: list[tuple[list[sqlite3.Row], SeedStability]] = []
    for group in group_by_setting(study.runs() if runs is None else runs).values():
        group = sorted(group, key=lambda r: (r["seed"] is None, r["seed"] or 0, r["id"]))
        labels: dict[Hashable, Mapping[str, int]] = {}
        for r in group:  # one labeling per seed, in seed order (the first run of a seed, should there be two)
            labels.setdefault(r["seed"], study.assignments(r["id"]))
        if labels_out is not None:
            labels_out[group[0]["id"]] = labels
        out.append((group, seed_stability(labels)))
    return out


def cluster_stability_by_run(group: list, labels: Mapping) -> dict[int, dict[str, float] | None]:
    """run id -> the cluster-wise stability of each of its clusters against the other seeds of its
    setting (cluster id as a string -> mean best Jaccard; :func:`connote.evaluate.stability.cluster_stability`),
    None where the setting has one seed. ``labels``: seed -> labels, as :func:`seed_stability_by_setting`
    read them."""
    out: dict[int, dict[str, float] | None] = {}
    for r in group:
        mine = labels.get(r["seed"])
        others = [v for seed, v in labels.items() if seed != r["seed"]]
        per = cluster_stability(mine, others) if mine is not None and others else None
        out[r["id"]] = None if per is None else {str(c): round(v, 4) for c, v in per.items()}
    return out


def run_cluster_stability(study: Study, run_id: int) -> dict[int, float] | None:
    """The cluster-wise stability of one run's clusters against the other seeds of its setting (cluster ->
    mean best Jaccard); None for a derived run or a setting with one seed."""
    if run_id in study.derivations():
        return None
    run = study.get_run(run_id)
    for group in group_by_setting(study.runs()).values():
        if any(r["id"] == run["id"] for r in group):
            labels: dict = {}
            seed_stability_by_setting(study, group, labels)
            per = cluster_stability_by_run(group, next(iter(labels.values())))[run["id"]]
            return None if per is None else {int(c): v for c, v in per.items()}
    return None


def run_listing(study: Study) -> list[dict]:
    """One dict per run: id, features, describer, embedder, reduce, min_cluster_size, seed, n_clusters,
    n_outliers, created, and ``seed_stability``: the agreement of the runs of its setting that differ only
    by seed (seeds, pairwise ARI, mean and lowest ARI, cluster-count range, unstable, the representative
    seed ``kept``; see :mod:`connote.evaluate.stability`), the same dict for every run of a setting;
    ``cluster_stability``: each of its clusters' stability against the other seeds; ``kept``: where the
    run was kept as the representative of several seeds, which ran and why. None for derived runs."""
    sets = {r["name"]: r["describer"] for r in study.description_sets()}
    derived = study.derivations()
    all_runs = study.runs()
    stability: dict = {}
    per_cluster: dict = {}
    labels: dict = {}
    for group, st in seed_stability_by_setting(
        study, [r for r in all_runs if r["id"] not in derived], labels
    ):
        d = {**st.to_dict(), "run_ids": [r["id"] for r in group]}
        stability.update({r["id"]: d for r in group})
        per_cluster.update(cluster_stability_by_run(group, labels[group[0]["id"]]))
    out = []
    for r in all_runs:
        origin = derived.get(r["id"]) or {}
        params = json.loads(r["params"] or "{}")
        out.append(
            {
                "id": r["id"],
                # a derived run (merge, assign-outliers): the run it came from
                "parent": origin.get("parent"),
                "derived": {"kind": origin["kind"], **origin["params"]} if origin else None,
                "features": r["features"],
                "description_set": r["description_set"],
                "describer": sets.get(r["description_set"]) if r["description_set"] else None,
                "embedder": r["embedder"],
                "reduce": r["reduce"],
                "min_cluster_size": r["min_cluster_size"],
                "min_samples": r["min_samples"],
                "seed": r["seed"],
                "n_items": r["n_items"],
                "n_clusters": r["n_clusters"],
                "n_outliers": r["n_outliers"],
                # images of the study the run left out, by cause (no usable description, no vector)
                "left_out": params.get("left_out"),
                "label": r["label"],
                "created": r["created"],
                "seed_stability": stability.get(r["id"]),
                # cluster -> mean best Jaccard over the other seeds of the setting; None for one seed, and
                # for a derived run (merge, assign-outliers), which has none of its own
                "cluster_stability": per_cluster.get(r["id"]),
                # of several seeds: which ran, which was kept and why (connote cluster without --seed)
                "kept": params.get("seeds"),
            }
        )
    return out
