"""Description sets (S1's output, one per describer + model + prompt), their descriptions, and the log of
every external model call (prompt, response, tokens, cost)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

from connote.errors import UserError
from connote.study.common import StudyBase, inserted_id, named_or_latest, now


class DescriptionsMixin(StudyBase):
    """Part of :class:`connote.study.Study`: description sets, descriptions and the call log."""

    def description_set(
        self, name: str, describer: str, model: str | None, prompt: str | None, params: dict
    ) -> int:
        """The id of the named set, made if new. A name is bound to one describer, model and prompt.
        Two processes asking at once get the same set (insert-or-keep, then read)."""
        self.con.execute(
            """INSERT INTO description_sets(name, describer, model, prompt, params, created)
               VALUES (?,?,?,?,?,?) ON CONFLICT(name) DO NOTHING""",
            (name, describer, model, prompt, json.dumps(params, sort_keys=True), now()),
        )
        row = self.con.execute("SELECT * FROM description_sets WHERE name=?", (name,)).fetchone()
        if (row["describer"], row["model"], row["prompt"]) != (describer, model, prompt):
            raise UserError(
                f"description set {name!r} was made by {row['describer']} with another model or prompt; "
                "choose another --name"
            )
        return row["id"]

    def description_sets(self) -> list[sqlite3.Row]:
        return self.con.execute(
            """SELECT s.*, (SELECT COUNT(*) FROM descriptions d WHERE d.set_id=s.id AND d.status='ok') AS n_ok,
                      (SELECT COUNT(*) FROM descriptions d WHERE d.set_id=s.id AND d.status!='ok') AS n_bad
               FROM description_sets s ORDER BY s.id"""
        ).fetchall()

    def resolve_description_set(self, name: str | None = None) -> sqlite3.Row:
        """The named set, or the latest one with a usable description (the default everywhere): a set
        where every image failed (a bad key) or every imported text was flagged never becomes the default."""
        return named_or_latest(
            self.con,
            self.path,
            "description_sets",
            name,
            noun="description set named",
            empty=f"no descriptions yet; run `connote describe {self.path}` first",
            latest="EXISTS (SELECT 1 FROM descriptions d WHERE d.set_id=description_sets.id "
            "AND d.status='ok') DESC, id DESC",
        )

    def put_description(
        self,
        set_id: int,
        sha256: str,
        text: str | None,
        status: str = "ok",
        reason: str | None = None,
        call_id: int | None = None,
        attempts: int = 1,
    ) -> None:
        self.con.execute(
            """INSERT OR REPLACE INTO descriptions(set_id, sha256, text, status, reason, call_id, attempts, created)
               VALUES (?,?,?,?,?,?,?,?)""",
            (set_id, sha256, text, status, reason, call_id, attempts, now()),
        )

    def descriptions(self, set_id: int, status: str | None = "ok") -> dict[str, str]:
        """sha256 -> text of one set (only good ones by default)."""
        q = "SELECT sha256, text FROM descriptions WHERE set_id=?"
        args: tuple = (set_id,)
        if status:
            q += " AND status=?"
            args += (status,)
        return {r[0]: r[1] for r in self.con.execute(q, args)}

    def iter_descriptions(
        self, set_id: int, chunk: int = 4096, status: str = "ok"
    ) -> Iterator[list[tuple[str, str]]]:
        """``(sha256, text)`` of one set, a chunk at a time in sha256 order (keyset paging on the primary
        key): a step that streams holds one chunk, never the whole set."""
        after = ""
        while True:
            rows = self.con.execute(
                """SELECT sha256, text FROM descriptions WHERE set_id=? AND status=? AND sha256 > ?
                   ORDER BY sha256 LIMIT ?""",
                (set_id, status, after, chunk),
            ).fetchall()
            if not rows:
                return
            yield [(r[0], r[1]) for r in rows]
            after = rows[-1][0]

    def describe_states(self, set_id: int) -> Iterator[sqlite3.Row]:
        """Per distinct readable image (first path order): ``sha256``, ``path`` and its description row's
        ``status``, ``reason``, ``call_id``, ``attempts``, ``created`` in the set (NULL when none); the
        texts are not read. What the describe runner decides its work from."""
        return self.con.execute(
            """SELECT i.sha256, MIN(i.path) AS path, d.status, d.reason, d.call_id, d.attempts, d.created
               FROM images i LEFT JOIN descriptions d ON d.set_id=? AND d.sha256=i.sha256
               WHERE i.status='ok' GROUP BY i.sha256 ORDER BY MIN(i.path)""",
            (set_id,),
        )

    def count_descriptions(self, set_id: int, status: str = "ok") -> int:
        return self.con.execute(
            "SELECT COUNT(*) FROM descriptions WHERE set_id=? AND status=?", (set_id, status)
        ).fetchone()[0]

    def description_rows(self, set_id: int) -> list[sqlite3.Row]:
        return self.con.execute("SELECT * FROM descriptions WHERE set_id=?", (set_id,)).fetchall()

    # ------------------------------------------------------------------ call log
    def record_call(
        self,
        *,
        stage: str,
        backend: str,
        model: str | None = None,
        input_ref: str | None = None,
        prompt: str | None = None,
        params: dict | None = None,
        output: str | None = None,
        status: str = "ok",
        error: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cost_usd: float | None = None,
        latency_s: float | None = None,
        started: str | None = None,
    ) -> int:
        cur = self.con.execute(
            """INSERT INTO calls(stage, backend, model, input_ref, prompt, params, output, status, error,
                                 input_tokens, output_tokens, cost_usd, latency_s, started, finished)
               VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)""",
            (
                stage,
                backend,
                model,
                input_ref,
                prompt,
                json.dumps(params, sort_keys=True, default=str) if params is not None else None,
                output,
                status,
                error,
                input_tokens,
                output_tokens,
                cost_usd,
                latency_s,
                started or now(),
                now(),
            ),
        )
        return inserted_id(cur)

    def latest_call(
        self, stage: str, input_ref: str, statuses: tuple[str, ...] = ("ok",)
    ) -> sqlite3.Row | None:
        """The call of ``stage`` for exactly this input (its cache key) whose status is one of ``statuses``,
        or None: a good one first, then the latest (``('ok', 'flagged')``: an answer that was flagged, paid
        for and kept, counts too)."""
        marks = ",".join("?" * len(statuses))
        return self.con.execute(
            f"SELECT * FROM calls WHERE stage=? AND input_ref=? AND status IN ({marks}) "
            "ORDER BY status='ok' DESC, id DESC LIMIT 1",
            (stage, input_ref, *statuses),
        ).fetchone()

    def calls(self, stage: str | None = None) -> list[sqlite3.Row]:
        if stage:
            return self.con.execute("SELECT * FROM calls WHERE stage=? ORDER BY id", (stage,)).fetchall()
        return self.con.execute("SELECT * FROM calls ORDER BY id").fetchall()

    def total_cost(self) -> float:
        return float(self.con.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM calls").fetchone()[0])
