"""Storage of derived runs (schema v4): a run made from another (``merge``, ``assign-outliers``; the math is
in :mod:`connote.derive`), its parent and what was done, and the outliers it gave a cluster.

A mixin of :class:`connote.study.Study` (``study.derivation(run_id)``); the run, its record and its
assigned outliers are stored in one transaction, so a kill leaves either the old state or the new one.
"""

from __future__ import annotations

import json

from connote.study.common import StudyBase, now
from connote.study.runs import insert_run


class DerivedRunsMixin(StudyBase):
    """Part of :class:`connote.study.Study`: derived runs and their assigned outliers."""

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
