"""Clustering runs in the study: the feature matrix's record (:class:`Features`; :mod:`connote.features`
reads it from the stored vectors), the key a run is stored (and found again) under, and the runs with their
assignments and keywords.

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

import numpy as np

from connote import numbers
from connote.errors import UserError
from connote.study.common import StudyBase, inserted_id, named_or_latest, now

#: The study's latest run: the newest one stored or kept (:meth:`RunsMixin.keep_run`): of several seeds,
#: the representative run is the result even when another seed's run was stored after it.
LATEST_RUN = (
    "MAX(id, COALESCE(json_extract(params, '$.seeds.kept_after'), 0)) DESC, "
    "json_extract(params, '$.seeds.kept_at') DESC, id DESC"
)


class RunsMixin(StudyBase):
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
            latest=LATEST_RUN,
        )

    def keep_run(self, run_id: int, seeds: dict) -> None:
        """Record on a run that it is the one kept of several seeds (``seeds``: which ran, which was kept
        and why, their stability) and make it the study's latest run, the one a command without a run id
        uses, until another run is stored or kept. The run's key, labels and parameters do not change."""
        from datetime import datetime, timezone

        with self.transaction() as con:
            row = con.execute("SELECT params FROM runs WHERE id=?", (run_id,)).fetchone()
            record = json.loads(row[0] or "{}")
            newest = con.execute("SELECT MAX(id) FROM runs").fetchone()[0]
            record["seeds"] = {
                **seeds,
                "kept_after": int(newest),  # latest as of this run id ...
                "kept_at": datetime.now(timezone.utc).isoformat(timespec="microseconds"),  # ... and time
            }
            con.execute(
                "UPDATE runs SET params=? WHERE id=?",
                (json.dumps(record, sort_keys=True, default=str), run_id),
            )

    def assignments(self, run_id: int) -> dict[str, int]:
        return {
            r[0]: r[1]
            for r in self.con.execute("SELECT sha256, cluster FROM assignments WHERE run_id=?", (run_id,))
        }

    def probabilities(self, run_id: int) -> dict[str, float | None]:
        """sha256 -> HDBSCAN's membership strength of each image of the run (None where none was stored)."""
        return {
            r[0]: r[1]
            for r in self.con.execute(
                "SELECT sha256, probability FROM assignments WHERE run_id=?", (int(run_id),)
            )
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

    def keyword_params(self, run_id: int) -> dict:
        """The parameters a run's keywords were computed with ({} when it has none)."""
        row = self.con.execute("SELECT params FROM keywords WHERE run_id=? LIMIT 1", (run_id,)).fetchone()
        return json.loads(row[0]) if row else {}

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
    assignments; (run id, True if inserted now). Runs and derived runs (:mod:`connote.study.derived_runs`) are
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
    run_id = inserted_id(cur)
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


# ---------------------------------------------------------------------------------------------- keys
def digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def run_key(
    feats: Features, reducer_params: dict, cluster_params: dict, seed: int | None, method: dict | None = None
) -> str:
    """The key a run is stored (and found again) under: features, reducer, clusterer, seed, and how they
    are computed (``method``: :func:`connote.fitting.computation`, the neighbour search and library
    versions). A run is stored by :func:`connote.fitting.store` (:func:`insert_run` underneath)."""
    return digest([feats.key, reducer_params, cluster_params, seed, method])
