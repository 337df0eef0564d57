"""The validation studies' data: samples of image pairs and their ratings (RQ1), samples of image sets of
a run and the evaluators' answers (RQ2)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from connote.errors import UserError
from connote.study.common import named_or_latest, now


class ValidationMixin:
    """Part of :class:`connote.study.Study`: pair samples, ratings, set samples, answers."""

    def check_new_sample(self, table: str, name: str) -> None:
        """:class:`UserError` when ``table`` (pair_samples or set_samples) already has a sample ``name``."""
        if self.con.execute(f"SELECT 1 FROM {table} WHERE name=?", (name,)).fetchone():
            noun = "pair" if table == "pair_samples" else "set"
            raise UserError(f"there is already a {noun} sample named {name!r}; choose another --name")

    # ------------------------------------------------------------------ rated pairs (RQ1)
    def add_pair_sample(
        self, name: str, seed: int | None, params: dict, pairs: list[tuple[str, str]], then=None
    ) -> int:
        """Store a pair sample; ``then(sample_id)`` (writing its sheet) runs before the commit, so that a
        sample whose sheet could not be written is never stored."""
        with self.transaction() as con:
            self.check_new_sample("pair_samples", name)
            cur = con.execute(
                "INSERT INTO pair_samples(name, created, seed, params) VALUES (?, ?, ?, ?)",
                (name, now(), seed, json.dumps(params, sort_keys=True)),
            )
            sample_id = int(cur.lastrowid)
            con.executemany(
                "INSERT INTO pairs(sample_id, pos, sha_a, sha_b) VALUES (?, ?, ?, ?)",
                [(sample_id, i, a, b) for i, (a, b) in enumerate(pairs, start=1)],
            )
            if then is not None:
                then(sample_id)
        return sample_id

    def pair_samples(self) -> list[sqlite3.Row]:
        return self.con.execute("SELECT * FROM pair_samples ORDER BY id").fetchall()

    def pair_sample(self, name: str | None = None) -> sqlite3.Row:
        """The named pair sample, or the latest one."""
        return named_or_latest(
            self.con,
            self.path,
            "pair_samples",
            name,
            noun="pair sample named",
            empty="this study has no pair sample yet; draw one with `connote pairs sample`",
        )

    def pairs(self, sample_id: int) -> list[sqlite3.Row]:
        return self.con.execute(
            "SELECT pos, sha_a, sha_b FROM pairs WHERE sample_id=? ORDER BY pos", (sample_id,)
        ).fetchall()

    def put_ratings(
        self, sample_id: int, rows: Iterable[tuple[int, str, str, int]], source: str | None
    ) -> int:
        """Insert or update (pos, coder, dimension, value) ratings in one transaction; returns how many."""
        with self.transaction() as con:
            return self.insert_ratings(con, sample_id, rows, source)

    @staticmethod
    def insert_ratings(con, sample_id: int, rows: Iterable[tuple[int, str, str, int]], source) -> int:
        """:meth:`put_ratings` inside the caller's transaction (an LLM coder stores its call with them)."""
        stamp = now()
        rows = [(sample_id, pos, coder, dim, value, source, stamp) for pos, coder, dim, value in rows]
        con.executemany(
            """INSERT INTO ratings(sample_id, pos, coder, dimension, value, source, updated)
               VALUES (?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(sample_id, pos, coder, dimension)
               DO UPDATE SET value=excluded.value, source=excluded.source, updated=excluded.updated""",
            rows,
        )
        return len(rows)

    def ratings(self, sample_id: int) -> list[sqlite3.Row]:
        return self.con.execute(
            "SELECT pos, coder, dimension, value, source FROM ratings WHERE sample_id=? "
            "ORDER BY pos, coder, dimension",
            (sample_id,),
        ).fetchall()

    # ------------------------------------------------------------------ image sets (RQ2)
    def add_set_sample(
        self,
        name: str,
        run_id: int,
        seed: int | None,
        params: dict,
        sets: list[tuple[int, list[str]]],
        then=None,
    ) -> int:
        """Store a set sample; ``then(sample_id)`` runs before the commit (see :meth:`add_pair_sample`)."""
        with self.transaction() as con:
            self.check_new_sample("set_samples", name)
            cur = con.execute(
                "INSERT INTO set_samples(name, run_id, created, seed, params) VALUES (?, ?, ?, ?, ?)",
                (name, run_id, now(), seed, json.dumps(params, sort_keys=True)),
            )
            sample_id = int(cur.lastrowid)
            con.executemany(
                "INSERT INTO image_sets(sample_id, pos, cluster, shas) VALUES (?, ?, ?, ?)",
                [(sample_id, i, c, json.dumps(shas)) for i, (c, shas) in enumerate(sets, start=1)],
            )
            if then is not None:
                then(sample_id)
        return sample_id

    def set_samples(self) -> list[sqlite3.Row]:
        return self.con.execute("SELECT * FROM set_samples ORDER BY id").fetchall()

    def set_sample(self, name: str | None = None) -> sqlite3.Row:
        """The named set sample, or the latest one."""
        return named_or_latest(
            self.con,
            self.path,
            "set_samples",
            name,
            noun="set sample named",
            empty="this study has no image-set sample yet; draw one with `connote sets sample`",
        )

    def image_sets(self, sample_id: int) -> list[dict]:
        return [
            {"pos": r["pos"], "cluster": r["cluster"], "shas": json.loads(r["shas"])}
            for r in self.con.execute(
                "SELECT pos, cluster, shas FROM image_sets WHERE sample_id=? ORDER BY pos", (sample_id,)
            )
        ]

    def put_set_answers(
        self, sample_id: int, rows: Iterable[tuple[int, str, str]], source: str | None
    ) -> int:
        """Insert or update (pos, evaluator, code) answers in one transaction; returns how many."""
        with self.transaction() as con:
            return self.insert_set_answers(con, sample_id, rows, source)

    @staticmethod
    def insert_set_answers(con, sample_id: int, rows: Iterable[tuple[int, str, str]], source) -> int:
        """:meth:`put_set_answers` inside the caller's transaction."""
        stamp = now()
        rows = [(sample_id, pos, who, code, source, stamp) for pos, who, code in rows]
        con.executemany(
            """INSERT INTO set_answers(sample_id, pos, evaluator, code, source, updated)
               VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT(sample_id, pos, evaluator)
               DO UPDATE SET code=excluded.code, source=excluded.source, updated=excluded.updated""",
            rows,
        )
        return len(rows)

    def set_answers(self, sample_id: int) -> list[sqlite3.Row]:
        return self.con.execute(
            "SELECT pos, evaluator, code, source FROM set_answers WHERE sample_id=? ORDER BY pos, evaluator",
            (sample_id,),
        ).fetchall()
