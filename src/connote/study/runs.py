"""Clustering runs in the study: the feature matrix a run is computed on, the key it is stored (and found
again) under, the cached reductions, and the runs with their assignments and keywords.

A run's key is a hash of its inputs (the feature vectors' content keys), the reducer's and clusterer's
recorded parameters and the seed: asking for the same run again returns the stored one, also when two
processes ask at once (the second finds the first one's run and returns it).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from connote import numbers
from connote.errors import UserError
from connote.params import recorded_params
from connote.safe_write import replacing
from connote.study.common import named_or_latest, now, text_key


class RunsMixin:
    """Part of :class:`connote.study.Study`: runs, assignments, keywords."""

    def find_run(self, key: str) -> sqlite3.Row | None:
        return self.con.execute("SELECT * FROM runs WHERE key=?", (key,)).fetchone()

    def add_run(self, record: dict, labels: dict[str, int], probabilities: dict[str, float] | None) -> int:
        """Store a run (or find the one stored under its key) and return its id."""
        return self.add_run_if_new(record, labels, probabilities)[0]

    def add_run_if_new(
        self, record: dict, labels: dict[str, int], probabilities: dict[str, float] | None
    ) -> tuple[int, bool]:
        """Store a run unless one with its key exists: (run id, True if this call stored it). The check
        and the insert are one write transaction, so of two processes storing the same run one stores it
        and the other gets its id."""
        with self.transaction() as con:
            return insert_run(con, record, labels, probabilities)

    def runs(self) -> list[sqlite3.Row]:
        return self.con.execute("SELECT * FROM runs ORDER BY id").fetchall()

    def get_run(self, run_id: int | str | None = None) -> sqlite3.Row:
        """The run with this id, or the latest one."""
        if run_id is not None and run_id != "":
            run_id = numbers.run_id(run_id)  # a number SQLite can hold, or a one-line error
        return named_or_latest(
            self.con,
            self.path,
            "runs",
            run_id,
            noun="run",
            column="id",
            known_label="runs",
            empty=f"no clustering runs yet; run `connote cluster {self.path}` first",
        )

    def assignments(self, run_id: int) -> dict[str, int]:
        return {
            r[0]: r[1]
            for r in self.con.execute("SELECT sha256, cluster FROM assignments WHERE run_id=?", (run_id,))
        }

    def iter_export(self, run_id: int, set_id: int | None, chunk: int = 4096) -> Iterator[list[sqlite3.Row]]:
        """Per readable image file, in path order, a chunk at a time: ``path``, its ``cluster`` in the run
        (NULL when left out) and its usable description ``text`` in the set (NULL when none)."""
        after = ""
        while True:
            rows = self.con.execute(
                """SELECT i.path, a.cluster, d.text FROM images i
                   LEFT JOIN assignments a ON a.run_id=? AND a.sha256=i.sha256
                   LEFT JOIN descriptions d ON d.set_id=? AND d.sha256=i.sha256 AND d.status='ok'
                   WHERE i.status='ok' AND i.path > ? ORDER BY i.path LIMIT ?""",
                (run_id, set_id, after, chunk),
            ).fetchall()
            if not rows:
                return
            yield rows
            after = rows[-1]["path"]

    def set_keywords(self, run_id: int, keywords: dict[int, list[tuple[str, float]]], params: dict) -> None:
        with self.transaction() as con:
            con.execute("DELETE FROM keywords WHERE run_id=?", (run_id,))
            con.executemany(
                "INSERT INTO keywords(run_id, cluster, rank, term, score, params) VALUES (?,?,?,?,?,?)",
                [
                    (run_id, int(c), i, term, float(score), json.dumps(params, sort_keys=True))
                    for c, terms in keywords.items()
                    for i, (term, score) in enumerate(terms)
                ],
            )

    def keywords(self, run_id: int) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for r in self.con.execute(
            "SELECT cluster, term FROM keywords WHERE run_id=? ORDER BY cluster, rank", (run_id,)
        ):
            out.setdefault(r[0], []).append(r[1])
        return out


def insert_run(
    con: sqlite3.Connection, record: dict, labels: dict[str, int], probabilities: dict[str, float] | None
) -> tuple[int, bool]:
    """Inside a write transaction: the id of the run stored under ``record['key']``, or a new run with its
    assignments; (run id, True if inserted now). Runs and derived runs (:mod:`connote.study.derived`) are
    stored through it."""
    old = con.execute("SELECT id FROM runs WHERE key=?", (record["key"],)).fetchone()
    if old is not None:
        return int(old[0]), False
    cur = con.execute(
        """INSERT INTO runs(key, created, features, description_set, embedder, reduce, min_cluster_size,
                            min_samples, seed, n_items, n_clusters, n_outliers, params, label)
           VALUES (:key, :created, :features, :description_set, :embedder, :reduce, :min_cluster_size,
                   :min_samples, :seed, :n_items, :n_clusters, :n_outliers, :params, :label)""",
        {"created": now(), "label": None, **record},
    )
    run_id = int(cur.lastrowid)
    con.executemany(
        "INSERT INTO assignments(run_id, sha256, cluster, probability) VALUES (?,?,?,?)",
        [(run_id, sha, int(c), (probabilities or {}).get(sha)) for sha, c in labels.items()],
    )
    return run_id, True


# ---------------------------------------------------------------------------------------------- features
@dataclass
class Features:
    kind: str  # 'text' | 'image'
    embedder: str  # embedder cache name, e.g. 'text:minilm'
    description_set: str | None
    shas: list[str]  # one per row of X
    X: np.ndarray
    key: str  # content hash of the feature matrix's inputs

    def require_enough(self, minimum: int = 4) -> None:
        """Refuse, with a message that says where the items came from, fewer than ``minimum`` items."""
        n = len(self.shas)
        if n >= minimum:
            return
        where = (
            f" in description set {self.description_set!r} (another set: --descriptions NAME; "
            "`connote status` lists them)"
            if self.description_set
            else ""
        )
        raise UserError(f"only {n} {self.kind} item(s) to cluster{where}; need at least {minimum}")


def usable_set(study, description_set: str | None) -> sqlite3.Row:
    """The description set (named, or the latest), refused in one line when it has no usable text."""
    ds = study.resolve_description_set(description_set)
    if not study.count_descriptions(ds["id"]):
        raise UserError(
            f"description set {ds['name']!r} has no usable descriptions yet; run `connote describe`"
        )
    return ds


def features(
    study,
    kind: str = "text",
    *,
    text="minilm",
    image="efficientnet-lite0",
    description_set: str | None = None,
) -> Features:
    """The feature matrix a clustering runs on, rows in the order of ``shas``. ``text`` and ``image``
    name the embedder (a spec string or the embedder object) whose stored vectors are used."""
    from connote import registry

    if kind == "text":
        ds = usable_set(study, description_set)
        emb = registry.text_embedder(text).for_study(study)
        shas, keys = [], []  # in sha256 order, read a chunk at a time (the texts are not kept)
        for rows in study.iter_descriptions(ds["id"]):
            shas += [sha for sha, _ in rows]
            keys += [text_key(t) for _, t in rows]
        X = study.load_vectors(emb.name, keys)
        key = hashlib.sha256(("\n".join(keys) + emb.name).encode()).hexdigest()
        return Features("text", emb.name, ds["name"], shas, X, key)
    if kind == "image":
        emb = registry.image_embedder(image)
        have = study.vectors.present(emb.name)  # one index query, not one per image
        shas = sorted({r["sha256"] for r in study.unique_images() if r["sha256"] in have})
        if not shas:
            raise UserError(f"no {emb.name} vectors yet; run `connote embed {study.path} --image {image}`")
        X = study.load_vectors(emb.name, shas)
        key = hashlib.sha256(("\n".join(shas) + emb.name).encode()).hexdigest()
        return Features("image", emb.name, None, shas, X, key)
    raise UserError(f"unknown features {kind!r}; use text or image")


# ---------------------------------------------------------------------------------------------- keys
def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def run_key(
    feats: Features, reducer_params: dict, cluster_params: dict, seed: int | None, method: dict | None = None
) -> str:
    """The key a run is stored (and found again) under: features, reducer, clusterer, seed, and how they
    are computed (``method``: :func:`connote.fitting.method`, the neighbour search and library versions)."""
    return _digest([feats.key, reducer_params, cluster_params, seed, method])


def reduce_cache_path(study, feats: Features, reducer) -> Path:
    """Where the reduction of ``feats`` by ``reducer`` is cached (STUDY/cache/reduce/KEY.npy); the key
    holds how the reduction is computed (:func:`connote.fitting.stage_method`) besides its parameters."""
    from connote.fitting import METHOD_VERSION, stage_method

    how = [METHOD_VERSION, stage_method(reducer, len(feats.shas))]
    return study.path / "cache" / "reduce" / f"{_digest([feats.key, recorded_params(reducer), how])[:24]}.npy"


def load_reduction(study, feats: Features, reducer) -> np.ndarray | None:
    """The cached reduction of ``feats`` by ``reducer``, or None."""
    path = reduce_cache_path(study, feats, reducer)
    return np.load(path) if path.is_file() else None


def save_reduction(study, feats: Features, reducer, Y: np.ndarray) -> np.ndarray:
    """Cache a reduction (atomically: a private temporary file renamed into place, so two processes
    writing the same one never mix their bytes)."""
    Y = np.asarray(Y, dtype=np.float32)
    path = reduce_cache_path(study, feats, reducer)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, Y)
    return Y


# ---------------------------------------------------------------------------------------------- storing
def store_run(
    study,
    feats: Features,
    *,
    key: str,
    reduce_spec: str,
    reducer_params: dict,
    cluster_params: dict,
    min_cluster_size: int,
    min_samples: int | None,
    seed: int | None,
    labels: np.ndarray,
    probabilities: np.ndarray | None,
    notes: list[str],
    label: str | None,
    environment: dict | None = None,
    method: dict | None = None,
) -> tuple[int, bool]:
    """Store one clustering as a run: its labels and the full record (parameters, seed, package versions).
    Returns (run id, True if stored now; False when a run with this key was stored meanwhile)."""
    from connote.provenance import environment as current_environment
    from connote.study.flags import run_left_out

    labels = np.asarray(labels, dtype=int)
    left_out = run_left_out(study, feats.kind, feats.description_set, len(feats.shas))
    record = {
        "key": key,
        "features": feats.kind,
        "description_set": feats.description_set,
        "embedder": feats.embedder,
        "reduce": reduce_spec,
        "min_cluster_size": int(min_cluster_size),
        "min_samples": min_samples,
        "seed": seed,
        "n_items": len(feats.shas),
        "n_clusters": len(set(labels.tolist()) - {-1}),
        "n_outliers": int(np.sum(labels == -1)),
        "label": label,
        "params": json.dumps(
            {
                "reducer": reducer_params,
                "clusterer": cluster_params,
                "seed": seed,
                "features_key": feats.key,
                "method": method,
                "left_out": left_out,  # images of the study not in this run, and why
                "notes": notes,
                "environment": environment or current_environment(),
            },
            sort_keys=True,
            default=str,
        ),
    }
    prob_map = {s: float(p) for s, p in zip(feats.shas, probabilities)} if probabilities is not None else None
    return study.add_run_if_new(record, dict(zip(feats.shas, labels.tolist())), prob_map)


# ---------------------------------------------------------------------------------------------- seeds
def seed_stability_by_setting(study, runs=None) -> list[tuple[list[sqlite3.Row], object]]:
    """For each setting among ``runs`` (default: all of the study's), its runs and their
    :class:`~connote.evaluate.stability.SeedStability` (pairwise ARI between the seeds' labels, aligned
    by image; cluster-count range; unstable when the mean ARI is below 0.5), in order of first run."""
    from connote.evaluate.stability import group_by_setting, seed_stability

    out = []
    for group in group_by_setting(study.runs() if runs is None else runs).values():
        group = sorted(group, key=lambda r: (r["seed"] is None, r["seed"] or 0, r["id"]))
        labels = {}
        for r in group:  # one labeling per seed, in seed order (the first run of a seed, should there be two)
            labels.setdefault(r["seed"], study.assignments(r["id"]))
        out.append((group, seed_stability(labels)))
    return out


def run_listing(study) -> list[dict]:
    """One dict per run: id, features, describer, embedder, reduce, min_cluster_size, seed, n_clusters,
    n_outliers, created, and ``seed_stability``: the agreement of the runs of its setting that differ only
    by seed (seeds, pairwise ARI, mean and lowest ARI, cluster-count range, unstable; see
    :mod:`connote.evaluate.stability`), the same dict for every run of a setting; None for derived runs."""
    from connote.study.derived import derivations

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
                "parent": origin.get(
                    "parent"
                ),  # a derived run (merge, assign-outliers): the run it came from
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
