"""Storage of cluster labels: per run, cluster and labeller (an LLM with its prompt, or the keywords), with
the model, prompt and call that wrote each (the labelling itself is :mod:`connote.labels`).

A mixin of :class:`connote.study.Study` (``study.put_labels(...)``); a set of labels is written in one
transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from connote.study.common import StudyBase, now


class LabelsMixin(StudyBase):
    """Part of :class:`connote.study.Study`: cluster labels."""

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
