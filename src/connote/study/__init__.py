"""The study folder: the only state connote keeps.

Layout::

    STUDY/
      connote.db          SQLite (WAL): images, description sets, descriptions, the call log, runs, keywords
      vectors/NAME/seg-0000.f32   the vectors of one embedder, rows keyed by content hash (study/vectors.py)
      cache/              derived arrays that are cheap to throw away (reductions)
      report/             the static HTML report and its thumbnails

Every stage reads its inputs from here and writes its outputs back, keyed by what produced them, so a
re-run reuses finished work and a paper's numbers can be regenerated from the folder alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from connote.errors import UserError
from connote.study.schema import SCHEMA_VERSION, migrate
from connote.study.vectors import DamagedVectors, VectorStore, migrate_study, slug

__all__ = ["DB_NAME", "DamagedVectors", "Study", "now", "slug", "text_key"]

DB_NAME = "connote.db"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def text_key(text: str) -> str:
    """Content key of a text (what text vectors are cached by)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Study:
    """A study folder. Open with :meth:`open` or make one with :meth:`create`."""

    def __init__(self, path: str | os.PathLike, con: sqlite3.Connection):
        self.path = Path(path)
        self.con = con
        self.vectors = VectorStore(self.path / "vectors", con)
        self.migration_notes: list[str] = []  # what opening the study moved (old vector files)

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, path: str | os.PathLike, images_root: str | os.PathLike | None = None) -> Study:
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise UserError(f"{path}: exists and is not a folder")
        path.mkdir(parents=True, exist_ok=True)
        study = cls._connect(path)
        if images_root is not None:
            root = Path(images_root).resolve()
            old = study.get_meta("images_root")
            if old and Path(old) != root:
                raise UserError(
                    f"{path}: this study already holds images from {old}; use a new study folder for {root}"
                )
            study.set_meta("images_root", str(root))
        if not study.get_meta("created"):
            study.set_meta("created", now())
        return study

    @classmethod
    def open(cls, path: str | os.PathLike) -> Study:
        path = Path(path)
        if not (path / DB_NAME).is_file():
            raise UserError(f"{path}: not a connote study (no {DB_NAME}); make one with `connote init`")
        return cls._connect(path)

    @classmethod
    def _connect(cls, path: Path) -> Study:
        con = sqlite3.connect(path / DB_NAME, timeout=30, isolation_level=None, check_same_thread=False)
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        con.execute("PRAGMA foreign_keys=ON")
        con.execute("PRAGMA busy_timeout=30000")
        try:
            migrate(con)
        except RuntimeError as exc:
            raise UserError(f"{path}: {exc}") from None
        study = cls(path, con)
        study.migration_notes = migrate_study(study.vectors, [r["name"] for r in study.embedders()])
        return study

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Study:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Study({str(self.path)!r})"

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.con.execute("BEGIN IMMEDIATE")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        else:
            self.con.execute("COMMIT")

    # ------------------------------------------------------------------ meta
    @property
    def schema_version(self) -> int:
        return SCHEMA_VERSION

    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.con.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        self.con.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    @property
    def images_root(self) -> Path:
        root = self.get_meta("images_root")
        if not root:
            raise UserError(f"{self.path}: no images added yet; run `connote init {self.path} --images DIR`")
        return Path(root)

    # ------------------------------------------------------------------ images
    def upsert_images(self, records: Iterable[dict]) -> None:
        with self.transaction() as con:
            for r in records:
                con.execute(
                    """INSERT INTO images(path, sha256, status, reason, width, height, format, bytes, added)
                       VALUES (:path, :sha256, :status, :reason, :width, :height, :format, :bytes, :added)
                       ON CONFLICT(path) DO UPDATE SET sha256=excluded.sha256, status=excluded.status,
                         reason=excluded.reason, width=excluded.width, height=excluded.height,
                         format=excluded.format, bytes=excluded.bytes""",
                    {"added": now(), **r},
                )

    def images(self, status: str | None = "ok") -> list[sqlite3.Row]:
        if status is None:
            return self.con.execute("SELECT * FROM images ORDER BY path").fetchall()
        return self.con.execute("SELECT * FROM images WHERE status=? ORDER BY path", (status,)).fetchall()

    def unique_images(self) -> list[sqlite3.Row]:
        """One row per distinct content (sha256) among the readable images, first path in order."""
        return self.con.execute(
            """SELECT sha256, MIN(path) AS path, COUNT(*) AS copies FROM images
               WHERE status='ok' GROUP BY sha256 ORDER BY MIN(path)"""
        ).fetchall()

    def image_file(self, rel_path: str) -> Path:
        return self.images_root / rel_path

    # ------------------------------------------------------------------ description sets
    def description_set(
        self, name: str, describer: str, model: str | None, prompt: str | None, params: dict
    ) -> int:
        """The id of the named set, made if new. A name is bound to one describer, model and prompt."""
        row = self.con.execute("SELECT * FROM description_sets WHERE name=?", (name,)).fetchone()
        if row:
            if (row["describer"], row["model"], row["prompt"]) != (describer, model, prompt):
                raise UserError(
                    f"description set {name!r} was made by {row['describer']} with another model or prompt; "
                    "choose another --name"
                )
            return row["id"]
        cur = self.con.execute(
            "INSERT INTO description_sets(name, describer, model, prompt, params, created) VALUES (?,?,?,?,?,?)",
            (name, describer, model, prompt, json.dumps(params, sort_keys=True), now()),
        )
        return cur.lastrowid

    def description_sets(self) -> list[sqlite3.Row]:
        return self.con.execute(
            """SELECT s.*, (SELECT COUNT(*) FROM descriptions d WHERE d.set_id=s.id AND d.status='ok') AS n_ok,
                      (SELECT COUNT(*) FROM descriptions d WHERE d.set_id=s.id AND d.status!='ok') AS n_bad
               FROM description_sets s ORDER BY s.id"""
        ).fetchall()

    def resolve_description_set(self, name: str | None = None) -> sqlite3.Row:
        """The named set, or the latest one (the default everywhere)."""
        if name:
            row = self.con.execute("SELECT * FROM description_sets WHERE name=?", (name,)).fetchone()
            if not row:
                known = ", ".join(r["name"] for r in self.description_sets()) or "none yet"
                raise UserError(f"no description set named {name!r} in {self.path} (known: {known})")
            return row
        row = self.con.execute("SELECT * FROM description_sets ORDER BY id DESC LIMIT 1").fetchone()
        if not row:
            raise UserError(f"{self.path}: no descriptions yet; run `connote describe {self.path}` first")
        return row

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
        return cur.lastrowid

    def calls(self, stage: str | None = None) -> list[sqlite3.Row]:
        if stage:
            return self.con.execute("SELECT * FROM calls WHERE stage=? ORDER BY id", (stage,)).fetchall()
        return self.con.execute("SELECT * FROM calls ORDER BY id").fetchall()

    def total_cost(self) -> float:
        return float(self.con.execute("SELECT COALESCE(SUM(cost_usd), 0) FROM calls").fetchone()[0])

    # ------------------------------------------------------------------ vectors
    def register_embedder(self, name: str, kind: str, spec: str, dim: int | None, params: dict) -> None:
        self.con.execute(
            """INSERT INTO embedders(name, kind, spec, dim, params, created) VALUES (?,?,?,?,?,?)
               ON CONFLICT(name) DO UPDATE SET dim=COALESCE(excluded.dim, embedders.dim)""",
            (name, kind, spec, dim, json.dumps(params, sort_keys=True, default=str), now()),
        )

    def embedders(self) -> list[sqlite3.Row]:
        return self.con.execute("SELECT * FROM embedders ORDER BY created").fetchall()

    def vector_dir(self, embedder: str) -> Path:
        """The folder of the embedder's vector files (see :mod:`connote.study.vectors`)."""
        return self.vectors.folder(embedder)

    def has_vector(self, embedder: str, key: str) -> bool:
        return self.vectors.has(embedder, key)

    def save_vector(self, embedder: str, key: str, vector: np.ndarray) -> None:
        self.vectors.append(embedder, [key], np.asarray(vector)[None, :])

    def save_vectors(self, embedder: str, keys: list[str], vectors: np.ndarray) -> None:
        """Append a batch (crash-safe: a kill leaves what was stored readable)."""
        self.vectors.append(embedder, keys, vectors)

    def load_vectors(self, embedder: str, keys: list[str]) -> np.ndarray:
        """(n, dim) float32 rows of ``keys``; a one-line error naming missing or damaged vectors."""
        return self.vectors.load(embedder, keys)

    # ------------------------------------------------------------------ runs
    def find_run(self, key: str) -> sqlite3.Row | None:
        return self.con.execute("SELECT * FROM runs WHERE key=?", (key,)).fetchone()

    def add_run(self, record: dict, labels: dict[str, int], probabilities: dict[str, float] | None) -> int:
        with self.transaction() as con:
            cur = con.execute(
                """INSERT INTO runs(key, created, features, description_set, embedder, reduce, min_cluster_size,
                                    min_samples, seed, n_items, n_clusters, n_outliers, params, label)
                   VALUES (:key, :created, :features, :description_set, :embedder, :reduce, :min_cluster_size,
                           :min_samples, :seed, :n_items, :n_clusters, :n_outliers, :params, :label)""",
                {"created": now(), "label": None, **record},
            )
            run_id = cur.lastrowid
            con.executemany(
                "INSERT INTO assignments(run_id, sha256, cluster, probability) VALUES (?,?,?,?)",
                [(run_id, sha, int(c), (probabilities or {}).get(sha)) for sha, c in labels.items()],
            )
        return run_id

    def runs(self) -> list[sqlite3.Row]:
        return self.con.execute("SELECT * FROM runs ORDER BY id").fetchall()

    def get_run(self, run_id: int | str | None = None) -> sqlite3.Row:
        if run_id is None:
            row = self.con.execute("SELECT * FROM runs ORDER BY id DESC LIMIT 1").fetchone()
            if not row:
                raise UserError(
                    f"{self.path}: no clustering runs yet; run `connote cluster {self.path}` first"
                )
            return row
        try:
            rid = int(run_id)
        except (TypeError, ValueError):
            raise UserError(f"run id must be a number, not {run_id!r}") from None
        row = self.con.execute("SELECT * FROM runs WHERE id=?", (rid,)).fetchone()
        if not row:
            ids = ", ".join(str(r["id"]) for r in self.runs()) or "none yet"
            raise UserError(f"no run {rid} in {self.path} (runs: {ids})")
        return row

    def assignments(self, run_id: int) -> dict[str, int]:
        return {
            r[0]: r[1]
            for r in self.con.execute("SELECT sha256, cluster FROM assignments WHERE run_id=?", (run_id,))
        }

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

    # ------------------------------------------------------------------ rated pairs (validation, RQ1)
    def add_pair_sample(self, name: str, seed: int | None, params: dict, pairs: list[tuple[str, str]]) -> int:
        with self.transaction() as con:
            if con.execute("SELECT 1 FROM pair_samples WHERE name=?", (name,)).fetchone():
                raise UserError(f"there is already a pair sample named {name!r}; choose another --name")
            cur = con.execute(
                "INSERT INTO pair_samples(name, created, seed, params) VALUES (?, ?, ?, ?)",
                (name, now(), seed, json.dumps(params, sort_keys=True)),
            )
            sample_id = int(cur.lastrowid)
            con.executemany(
                "INSERT INTO pairs(sample_id, pos, sha_a, sha_b) VALUES (?, ?, ?, ?)",
                [(sample_id, i, a, b) for i, (a, b) in enumerate(pairs, start=1)],
            )
        return sample_id

    def pair_samples(self) -> list[sqlite3.Row]:
        return self.con.execute("SELECT * FROM pair_samples ORDER BY id").fetchall()

    def pair_sample(self, name: str | None = None) -> sqlite3.Row:
        """The named pair sample, or the latest one."""
        if name is None:
            row = self.con.execute("SELECT * FROM pair_samples ORDER BY id DESC LIMIT 1").fetchone()
            if row is None:
                raise UserError("this study has no pair sample yet; draw one with `connote pairs sample`")
            return row
        row = self.con.execute("SELECT * FROM pair_samples WHERE name=?", (name,)).fetchone()
        if row is None:
            known = ", ".join(r["name"] for r in self.pair_samples()) or "none"
            raise UserError(f"no pair sample named {name!r} (known: {known})")
        return row

    def pairs(self, sample_id: int) -> list[sqlite3.Row]:
        return self.con.execute(
            "SELECT pos, sha_a, sha_b FROM pairs WHERE sample_id=? ORDER BY pos", (sample_id,)
        ).fetchall()

    def put_ratings(
        self, sample_id: int, rows: Iterable[tuple[int, str, str, int]], source: str | None
    ) -> int:
        """Insert or update (pos, coder, dimension, value) ratings in one transaction; returns how many."""
        stamp = now()
        rows = [(sample_id, pos, coder, dim, value, source, stamp) for pos, coder, dim, value in rows]
        with self.transaction() as con:
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
            "SELECT pos, coder, dimension, value FROM ratings WHERE sample_id=? ORDER BY pos, coder, dimension",
            (sample_id,),
        ).fetchall()

    # ------------------------------------------------------------------ image sets (validation, RQ2)
    def add_set_sample(
        self, name: str, run_id: int, seed: int | None, params: dict, sets: list[tuple[int, list[str]]]
    ) -> int:
        with self.transaction() as con:
            if con.execute("SELECT 1 FROM set_samples WHERE name=?", (name,)).fetchone():
                raise UserError(f"there is already a set sample named {name!r}; choose another --name")
            cur = con.execute(
                "INSERT INTO set_samples(name, run_id, created, seed, params) VALUES (?, ?, ?, ?, ?)",
                (name, run_id, now(), seed, json.dumps(params, sort_keys=True)),
            )
            sample_id = int(cur.lastrowid)
            con.executemany(
                "INSERT INTO image_sets(sample_id, pos, cluster, shas) VALUES (?, ?, ?, ?)",
                [(sample_id, i, c, json.dumps(shas)) for i, (c, shas) in enumerate(sets, start=1)],
            )
        return sample_id

    def set_samples(self) -> list[sqlite3.Row]:
        return self.con.execute("SELECT * FROM set_samples ORDER BY id").fetchall()

    def set_sample(self, name: str | None = None) -> sqlite3.Row:
        """The named set sample, or the latest one."""
        if name is None:
            row = self.con.execute("SELECT * FROM set_samples ORDER BY id DESC LIMIT 1").fetchone()
            if row is None:
                raise UserError("this study has no image-set sample yet; draw one with `connote sets sample`")
            return row
        row = self.con.execute("SELECT * FROM set_samples WHERE name=?", (name,)).fetchone()
        if row is None:
            known = ", ".join(r["name"] for r in self.set_samples()) or "none"
            raise UserError(f"no set sample named {name!r} (known: {known})")
        return row

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
        stamp = now()
        rows = [(sample_id, pos, who, code, source, stamp) for pos, who, code in rows]
        with self.transaction() as con:
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
            "SELECT pos, evaluator, code FROM set_answers WHERE sample_id=? ORDER BY pos, evaluator",
            (sample_id,),
        ).fetchall()
