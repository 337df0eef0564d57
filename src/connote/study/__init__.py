"""The study folder: the only state connote keeps.

Layout::

    STUDY/
      connote.db          SQLite (WAL): images, description sets, descriptions, the call log, runs, keywords
      vectors/NAME/ab/<key>.npy   one vector per input, keyed by content hash (image sha256 or text sha256)
      cache/              derived arrays that are cheap to throw away (reductions)
      report/             the static HTML report and its thumbnails

Every stage reads its inputs from here and writes its outputs back, keyed by what produced them, so a
re-run reuses finished work and a paper's numbers can be regenerated from the folder alone.

:class:`Study` is the one way in. This module opens the folder (connection, migrations, meta) and holds the
vectors; each other concern has its own module, mixed into the class: :mod:`~connote.study.images`,
:mod:`~connote.study.descriptions` (description sets and the call log), :mod:`~connote.study.runs` (feature
matrices, run keys, cached reductions, runs) and :mod:`~connote.study.validation` (pair and set samples).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from connote.errors import UserError
from connote.study.common import now, text_key
from connote.study.descriptions import DescriptionsMixin
from connote.study.images import ImagesMixin
from connote.study.runs import RunsMixin
from connote.study.schema import migrate
from connote.study.validation import ValidationMixin

DB_NAME = "connote.db"

__all__ = ["DB_NAME", "Study", "now", "read_vector", "slug", "text_key"]


def slug(name: str) -> str:
    """A file-system-safe folder name for an embedder name such as 'text:minilm' or 'hf:org/model'."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return f"{safe[:60]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


_NPY_V1 = b"\x93NUMPY\x01\x00"


def read_vector(path: Path) -> np.ndarray:
    """One vector file as written by :meth:`Study.save_vector`. The .npy header of a 1-d little-endian
    float32 array is read directly (a tenth of np.load's time, which counts for 10,000s of files);
    anything else goes through np.load."""
    data = path.read_bytes()
    if data[:8] == _NPY_V1:
        end = 10 + int.from_bytes(data[8:10], "little")
        header = data[10:end]
        if b"'descr': '<f4'" in header and b"'fortran_order': False" in header and b"'shape': (" in header:
            shape = header.split(b"'shape': (", 1)[1].split(b")", 1)[0].rstrip(b",").strip()
            if shape.isdigit():
                return np.frombuffer(data, dtype="<f4", count=int(shape), offset=end)
    import io

    return np.load(io.BytesIO(data))


class Study(ImagesMixin, DescriptionsMixin, RunsMixin, ValidationMixin):
    """A study folder. Open with :meth:`open` or make one with :meth:`create`."""

    def __init__(self, path: str | os.PathLike, con: sqlite3.Connection):
        self.path = Path(path)
        self.con = con

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
    def of(cls, study: Study | str | os.PathLike) -> Study:
        """``study`` itself, or the study folder at that path opened (what every step accepts)."""
        return study if isinstance(study, Study) else cls.open(study)

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
        return cls(path, con)

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
        """The database's schema version (``meta.schema_version``: how many migrations it has had)."""
        return int(self.get_meta("schema_version") or 0)

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
        return self.path / "vectors" / slug(embedder)

    def vector_path(self, embedder: str, key: str) -> Path:
        return self.vector_dir(embedder) / key[:2] / f"{key}.npy"

    def has_vector(self, embedder: str, key: str) -> bool:
        return self.vector_path(embedder, key).is_file()

    def save_vector(self, embedder: str, key: str, vector: np.ndarray) -> None:
        """Write atomically: a kill leaves either the old state or the whole vector, never half of one."""
        path = self.vector_path(embedder, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.save(fh, np.asarray(vector, dtype=np.float32))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load_vectors(self, embedder: str, keys: list[str]) -> np.ndarray:
        missing = [k for k in keys if not self.has_vector(embedder, k)]
        if missing:
            raise UserError(
                f"{len(missing)} of {len(keys)} inputs have no {embedder} vector yet; run `connote embed` first"
            )
        return (
            np.stack([read_vector(self.vector_path(embedder, k)) for k in keys]) if keys else np.zeros((0, 0))
        )
