"""The runs of a study listed for people and for ``--json``: each run's settings and results, and the
seed stability of its setting (the runs that differ only by seed, compared by adjusted Rand index).

It reads through :class:`~connote.study.Study` and computes with :mod:`connote.evaluate.stability`, so it
sits above both (the study layer stores; it does not compute).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Hashable, Mapping

from connote.evaluate.stability import SeedStability, group_by_setting, seed_stability
from connote.study import Study
from connote.study.derived import derivations


def seed_stability_by_setting(
    study: Study, runs: list[sqlite3.Row] | None = None
) -> list[tuple[list[sqlite3.Row], SeedStability]]:
    """For each setting among ``runs`` (default: all of the study's), its runs and their
    :class:`~connote.evaluate.stability.SeedStability` (pairwise ARI between the seeds' labels, aligned
    by image; cluster-count range; unstable when the mean ARI is below 0.5), in order of first run."""
    out: list[tuple[list[sqlite3.Row], SeedStability]] = []
    for group in group_by_setting(study.runs() if runs is None else runs).values():
        group = sorted(group, key=lambda r: (r["seed"] is None, r["seed"] or 0, r["id"]))
        labels: dict[Hashable, Mapping[str, int]] = {}
        for r in group:  # one labeling per seed, in seed order (the first run of a seed, should there be two)
            labels.setdefault(r["seed"], study.assignments(r["id"]))
        out.append((group, seed_stability(labels)))
    return out


def run_listing(study: Study) -> list[dict]:
    """One dict per run: id, features, describer, embedder, reduce, min_cluster_size, seed, n_clusters,
    n_outliers, created, and ``seed_stability``: the agreement of the runs of its setting that differ only
    by seed (seeds, pairwise ARI, mean and lowest ARI, cluster-count range, unstable; see
    :mod:`connote.evaluate.stability`), the same dict for every run of a setting; None for derived runs."""
    sets = {r["name"]: r["describer"] for r in study.description_sets()}
    derived = derivations(study)
    all_runs = study.runs()
    stability = {}
    for group, st in seed_stability_by_setting(study, [r for r in all_runs if r["id"] not in derived]):
        d = {**st.to_dict(), "run_ids": [r["id"] for r in group]}
        stability.update({r["id"]: d for r in group})
    out = []
    for r in all_runs:
        origin = derived.get(r["id"]) or {}
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
                "left_out": json.loads(r["params"] or "{}").get("left_out"),
                "label": r["label"],
                "created": r["created"],
                "seed_stability": stability.get(r["id"]),
            }
        )
    return out
