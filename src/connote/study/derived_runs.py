"""Storage for what analysts do after the algorithm (schema v4): derived runs and their parents, outliers
assigned, cluster labels, and the user's own columns per image.

A mixin of :class:`connote.study.Study` (``study.put_labels(...)``); every write is one transaction, so a
kill leaves either the old state or the new one.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from connote.study.common import StudyBase, now
from connote.study.runs import insert_run


class DerivedMixin(StudyBase):
    """Part of :class:`connote.study.Study`: derived runs, assigned outliers, labels, metadata."""

    # ---------------------------------------------------------------------------------------- derived runs
    def add_derived_run(
        self,
        record: dict,
        labels: dict[str, int],
        *,
        parent_id: int,
        kind: str,
        params: dict,
        assigned: dict[str, tuple[int, float]] | None = None,
        probabilities: dict[str, float] | None = None,
    ) -> tuple[int, bool]:
        """Store a run made from ``parent_id`` (its assignments, the record of what was done, and for an
        assign-outliers run the outliers given a cluster) in one transaction: (run id, True if this call
        stored it). The check for a
        run with the same key and the insert are one write transaction: of two processes making the same
        derived run, one stores it and the other gets its id."""
        with self.transaction() as con:
            run_id, made = insert_run(con, record, labels, probabilities)
            if not made:
                return run_id, False
            con.execute(
                "INSERT INTO derived_runs(run_id, parent_id, kind, params, created) VALUES (?,?,?,?,?)",
                (run_id, parent_id, kind, json.dumps(params, sort_keys=True), now()),
            )
            con.executemany(
                "INSERT INTO assigned_outliers(run_id, sha256, cluster, score) VALUES (?,?,?,?)",
                [(run_id, sha, int(c), float(score)) for sha, (c, score) in (assigned or {}).items()],
            )
        return run_id, True

    def derivation(self, run_id: int) -> dict | None:
        """``{'parent': id, 'kind': ..., 'params': {...}}`` for a derived run, None for a clustering."""
        row = self.con.execute(
            "SELECT parent_id, kind, params FROM derived_runs WHERE run_id=?", (int(run_id),)
        ).fetchone()
        if row is None:
            return None
        return {"parent": row["parent_id"], "kind": row["kind"], "params": json.loads(row["params"])}

    def derivations(self) -> dict[int, dict]:
        """run id -> :func:`derivation` for every derived run."""
        return {
            r["run_id"]: {"parent": r["parent_id"], "kind": r["kind"], "params": json.loads(r["params"])}
            for r in self.con.execute("SELECT run_id, parent_id, kind, params FROM derived_runs")
        }

    def assigned_outliers(self, run_id: int) -> dict[str, tuple[int, float]]:
        """sha256 -> (cluster, score) of the outliers an assign-outliers run gave a cluster."""
        return {
            r[0]: (r[1], r[2])
            for r in self.con.execute(
                "SELECT sha256, cluster, score FROM assigned_outliers WHERE run_id=? ORDER BY score DESC",
                (int(run_id),),
            )
        }

    def probabilities(self, run_id: int) -> dict[str, float | None]:
        return {
            r[0]: r[1]
            for r in self.con.execute(
                "SELECT sha256, probability FROM assignments WHERE run_id=?", (int(run_id),)
            )
        }

    # ---------------------------------------------------------------------------------------------- labels
    def cached_call(self, stage: str, input_ref: str, *, flagged: bool = False) -> sqlite3.Row | None:
        """The latest good call of ``stage`` for exactly this input (its cache key), or None; with ``flagged``
        an answer that was flagged (paid for, kept) counts too, a good one first."""
        statuses = "('ok', 'flagged')" if flagged else "('ok')"
        return self.con.execute(
            f"""SELECT * FROM calls WHERE stage=? AND input_ref=? AND status IN {statuses}
                ORDER BY status='ok' DESC, id DESC LIMIT 1""",
            (stage, input_ref),
        ).fetchone()

    def put_labels(self, run_id: int, labeller: str, rows: Iterable[dict]) -> int:
        """Insert or replace labels (dicts with cluster, label, summary, model, prompt, call_id, status)."""
        stamp = now()
        records = [
            (
                int(run_id),
                int(r["cluster"]),
                labeller,
                r["label"],
                r.get("summary"),
                r.get("model"),
                r.get("prompt"),
                r.get("call_id"),
                r.get("status", "ok"),
                stamp,
            )
            for r in rows
        ]
        with self.transaction() as con:
            con.executemany(
                """INSERT OR REPLACE INTO labels(run_id, cluster, labeller, label, summary, model, prompt, call_id,
                                                 status, created) VALUES (?,?,?,?,?,?,?,?,?,?)""",
                records,
            )
        return len(records)

    def labellers(self, run_id: int) -> list[str]:
        """The labellers that labelled this run, the most recent first."""
        return [
            r[0]
            for r in self.con.execute(
                "SELECT labeller, MAX(created) AS t FROM labels WHERE run_id=? GROUP BY labeller ORDER BY t DESC, "
                "labeller",
                (int(run_id),),
            )
        ]

    def labels(self, run_id: int, labeller: str | None = None) -> dict[int, sqlite3.Row]:
        """cluster -> label row (label, summary, model, prompt, status ...) of one labeller (the latest by
        default); empty when the run has no labels."""
        if labeller is None:
            names = self.labellers(run_id)
            if not names:
                return {}
            labeller = names[0]
        return {
            r["cluster"]: r
            for r in self.con.execute(
                "SELECT * FROM labels WHERE run_id=? AND labeller=? ORDER BY cluster", (int(run_id), labeller)
            )
        }

    # -------------------------------------------------------------------------------------------- metadata
    def put_metadata(
        self, columns: dict[str, str], values: Iterable[tuple[str, str, str | None]], source: str
    ) -> int:
        """Store columns (name -> type) and (path, column, value) cells; a cell already stored is updated."""
        stamp = now()
        values = list(values)
        with self.transaction() as con:
            con.executemany(
                """INSERT INTO metadata_columns(name, type, source, updated) VALUES (?,?,?,?)
                   ON CONFLICT(name) DO UPDATE SET type=excluded.type, source=excluded.source,
                     updated=excluded.updated""",
                [(name, kind, source, stamp) for name, kind in columns.items()],
            )
            con.executemany(
                "INSERT OR REPLACE INTO metadata(path, name, value) VALUES (?,?,?)",
                values,
            )
        return len(values)

    def metadata_columns(self) -> dict[str, str]:
        """column name -> type ('number', 'date', 'text'), in the order they were first imported."""
        return {
            r[0]: r[1] for r in self.con.execute("SELECT name, type FROM metadata_columns ORDER BY rowid")
        }

    def metadata_of(self, paths: list[str]) -> dict[str, dict[str, str | None]]:
        """image path -> {column: value} for these paths only (looked up in batches)."""
        out: dict[str, dict[str, str | None]] = {}
        for i in range(0, len(paths), 500):
            part = paths[i : i + 500]
            q = f"SELECT path, name, value FROM metadata WHERE path IN ({','.join('?' * len(part))})"
            for r in self.con.execute(q, part):
                out.setdefault(r[0], {})[r[1]] = r[2]
        return out

    def metadata(self) -> dict[str, dict[str, str | None]]:
        """image path -> {column: value}."""
        out: dict[str, dict[str, str | None]] = {}
        for r in self.con.execute("SELECT path, name, value FROM metadata ORDER BY path"):
            out.setdefault(r[0], {})[r[1]] = r[2]
        return out


# The functions of earlier releases, kept for one release: each takes the study first.
add_derived_run = DerivedMixin.add_derived_run
derivation = DerivedMixin.derivation
derivations = DerivedMixin.derivations
assigned_outliers = DerivedMixin.assigned_outliers
probabilities = DerivedMixin.probabilities
cached_call = DerivedMixin.cached_call
put_labels = DerivedMixin.put_labels
labellers = DerivedMixin.labellers
labels = DerivedMixin.labels
put_metadata = DerivedMixin.put_metadata
metadata_columns = DerivedMixin.metadata_columns
metadata_of = DerivedMixin.metadata_of
metadata = DerivedMixin.metadata
