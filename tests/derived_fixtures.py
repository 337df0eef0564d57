"""A small controlled study for the derived-run tests: real images and SQLite, descriptions and text
vectors written directly (no model), and one run with a near-twin pair of clusters and two outliers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from conftest import make_noise_images

from connote import steps
from connote.study import Study, text_key

# cluster 0 and 1 are near-twins (both about floods), cluster 2 is about fire
WORDS = {0: "flood water river rain", 1: "flood water storm boat", 2: "fire smoke flames heat"}
DIRECTIONS = {0: [1.0, 0.0, 0.0, 0.0], 1: [0.95, 0.3, 0.0, 0.0], 2: [0.0, 0.0, 1.0, 0.0]}


@dataclass
class Derived:
    study: Study
    run_id: int
    paths: list[str]
    cluster_of: dict[str, int]  # path -> cluster (-1 outlier)
    outlier_near_fire: str
    outlier_far: str


def build(tmp_path: Path, per_cluster: int = 6) -> Derived:
    n = 3 * per_cluster + 2
    make_noise_images(tmp_path / "images", n)
    study = steps.init(tmp_path / "study", tmp_path / "images", progress=False)
    rows = study.unique_images()
    set_id = study.description_set("offline", "offline", "offline", None, {})
    rng = np.random.default_rng(0)
    cluster_of, labels = {}, {}
    for i, r in enumerate(rows):
        if i < 3 * per_cluster:
            c = i % 3
            text = f"{WORDS[c]} number {i}"
            vec = np.array(DIRECTIONS[c]) + rng.normal(0, 0.02, 4)
        elif i == 3 * per_cluster:
            c, text, vec = -1, "smoke rising over a town", np.array([0.1, 0.0, 0.9, 0.3])
        else:
            c, text, vec = -1, "a quiet empty room", np.array([0.0, 0.05, 0.05, 1.0])
        study.put_description(set_id, r["sha256"], text)
        study.save_vector("text:minilm", text_key(text), vec.astype(np.float32))
        cluster_of[r["path"]] = c
        labels[r["sha256"]] = c
    study.register_embedder("text:minilm", "text", "minilm", 4, {})
    record = {
        "key": "derived-test",
        "features": "text",
        "description_set": "offline",
        "embedder": "text:minilm",
        "reduce": "pca:components=2",
        "min_cluster_size": 3,
        "min_samples": None,
        "seed": 42,
        "n_items": n,
        "n_clusters": 3,
        "n_outliers": 2,
        "params": json.dumps({"reducer": {}, "clusterer": {}}),
    }
    run_id = study.add_run(record, labels, {s: (1.0 if c != -1 else 0.0) for s, c in labels.items()})
    steps.explain(study, run_id)
    paths = [r["path"] for r in rows]
    return Derived(study, run_id, paths, cluster_of, paths[3 * per_cluster], paths[3 * per_cluster + 1])
