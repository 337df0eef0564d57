"""The study folder: the only state connote keeps.

Layout::

    STUDY/
      connote.db          SQLite (WAL): images, description sets, descriptions, the call log, runs, keywords
      vectors/NAME/seg-0000.f32   the vectors of one embedder, rows keyed by content hash (study/vectors.py)
      cache/              derived arrays that are cheap to throw away (reductions)
      report/             the static HTML report and its thumbnails

Every stage reads its inputs from here and writes its outputs back, keyed by what produced them, so a
re-run reuses finished work and a paper's numbers can be regenerated from the folder alone.

:class:`Study` is the one way in. This module opens the folder (connection, migrations) and holds the
vectors (stored by :mod:`~connote.study.vectors`); every other concern has its own module, a mixin of the
class standing on :class:`~connote.study.common.StudyBase` (the folder, the connection, ``transaction()``,
meta): :mod:`~connote.study.images`, :mod:`~connote.study.descriptions` (description sets and the call
log), :mod:`~connote.study.runs` (run keys, runs, keywords), :mod:`~connote.study.validation` (pair and set
samples), :mod:`~connote.study.flags` (flagged descriptions, images left out),
:mod:`~connote.study.derived_runs` (derived runs, assigned outliers), :mod:`~connote.study.labels` (cluster
labels) and :mod:`~connote.study.metadata` (the user's columns per image). Claims (:mod:`~connote.study.claims`) are
handles a worker holds on the connection, and the call log's writers (:mod:`~connote.study.calls`) are
used by the runners.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np

from connote.errors import UserError
from connote.study import db
from connote.study.common import now, text_key
from connote.study.db import DB_NAME, ReadOnlyStudy
from connote.study.derived_runs import DerivedRunsMixin
from connote.study.descriptions import DescriptionsMixin
from connote.study.flags import FlagsMixin
from connote.study.images import ImagesMixin
from connote.study.labels import LabelsMixin
from connote.study.metadata import MetadataMixin
from connote.study.runs import RunsMixin
from connote.study.schema import DamagedSchema, check_tables, migrate
from connote.study.validation import ValidationMixin
from connote.study.vectors import DamagedVectors, VectorStore, migrate_study, slug

__all__ = ["DB_NAME", "DamagedVectors", "Study", "now", "slug", "text_key"]


class Study(
    FlagsMixin,
    DerivedRunsMixin,
    LabelsMixin,
    MetadataMixin,
    ImagesMixin,
    DescriptionsMixin,
    RunsMixin,
    ValidationMixin,
):
    """A study folder. Open with :meth:`open` or make one with :meth:`create`."""

    def __init__(self, path: str | os.PathLike, con: sqlite3.Connection):
        self.path = Path(path)
        self.con = con
        self.readonly = False  # opened read-only: the folder cannot be written
        self.vectors = VectorStore(self.path / "vectors", con)
        self.migration_notes: list[str] = []  # what opening the study moved (old vector files)

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, path: str | os.PathLike, images_root: str | os.PathLike | None = None) -> Study:
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise UserError(f"{path}: exists and is not a folder")
        path.mkdir(parents=True, exist_ok=True)
        study = cls._connect(path, create=True)  # an existing database is checked, never replaced
        if study.readonly:
            study.close()
            raise ReadOnlyStudy(f"{path}: the study folder is read-only: cannot add images to it")
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
    def of(cls, study: Study | str | os.PathLike) -> Study:
        """``study`` itself, or the study folder at that path opened (what every step accepts)."""
        return study if isinstance(study, Study) else cls.open(study)

    @classmethod
    def open(cls, path: str | os.PathLike) -> Study:
        """Open a study folder: read-only when the folder cannot be written (see :mod:`connote.study.db`);
        a damaged database is refused with how to recover it."""
        return cls._connect(Path(path))

    @classmethod
    def _connect(cls, path: Path, *, create: bool = False) -> Study:
        con, readonly = db.connect(path, create=create)
        try:
            migrate(con)
            check_tables(con)
        except DamagedSchema as exc:
            con.close()
            raise db.damaged(path / db.DB_NAME, str(exc)) from None
        except RuntimeError as exc:
            con.close()
            raise UserError(f"{path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            con.close()
            if readonly:
                raise ReadOnlyStudy(
                    f"{path}: the study was made by an older connote and its folder is read-only, so it "
                    "cannot be brought up to date; copy the study folder somewhere writable"
                ) from None
            raise UserError(db.explain(exc, path) or f"{path}: {exc}") from None
        study = cls(path, con)
        study.readonly = readonly
        if not readonly:  # a read-only folder keeps its old vector files as they are
            study.migration_notes = migrate_study(study.vectors, [r["name"] for r in study.embedders()])
        return study

    def require_writable(self, what: str = "this command") -> None:
        """Raise :class:`ReadOnlyStudy` (before any work) when the study was opened read-only."""
        if self.readonly:
            raise ReadOnlyStudy(
                f"{self.path}: the study folder is read-only and {what} writes to it; copy the study folder "
                "somewhere writable (status, runs, export -o FILE and the other reading commands work as it is)"
            )

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Study:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Study({str(self.path)!r})"

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
