"""Small helpers every part of the study folder uses: timestamps, text keys, and the one "named, or the
latest" lookup behind description sets, runs, pair samples and set samples."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from connote.errors import UserError


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def text_key(text: str) -> str:
    """Content key of a text (what text vectors are cached by)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def inserted_id(cur: sqlite3.Cursor) -> int:
    """The rowid of the row an INSERT just made."""
    if cur.lastrowid is None:
        raise RuntimeError("the INSERT made no row")
    return int(cur.lastrowid)


def named_or_latest(
    con: sqlite3.Connection,
    path: Path,
    table: str,
    value,
    *,
    noun: str,
    empty: str,
    column: str = "name",
    known_label: str = "known",
    latest: str = "id DESC",
) -> sqlite3.Row:
    """The row of ``table`` whose ``column`` is ``value``, or the latest row (highest id) when ``value`` is
    None or empty (``latest``: the ORDER BY that puts it first). Errors name what exists: ``no {noun} {value!r} in PATH (known: a, b)``, or, with nothing
    stored yet, ``PATH: {empty}``. ``table``, ``column`` and ``latest`` are connote's own SQL, never user input."""
    if value is None or value == "":
        row = con.execute(f"SELECT * FROM {table} ORDER BY {latest} LIMIT 1").fetchone()
        if row is None:
            raise UserError(f"{path}: {empty}")
        return row
    row = con.execute(f"SELECT * FROM {table} WHERE {column}=?", (value,)).fetchone()
    if row is None:
        known = ", ".join(str(r[0]) for r in con.execute(f"SELECT {column} FROM {table} ORDER BY id"))
        shown = repr(value) if isinstance(value, str) else str(value)
        raise UserError(f"no {noun} {shown} in {path} ({known_label}: {known or 'none yet'})")
    return row


class StudyBase:
    """What every part of :class:`connote.study.Study` stands on (each part is a mixin of this class): the
    folder, its connection, the one way to write (a transaction), and the meta table."""

    path: Path
    con: sqlite3.Connection

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: the write lock at once, so two writers queue)."""
        self.con.execute("BEGIN IMMEDIATE")
        try:
            yield self.con
        except BaseException:
            if self.con.in_transaction:  # SQLite ends some failed transactions itself (a full disk)
                self.con.execute("ROLLBACK")
            raise
        else:
            try:
                self.con.execute("COMMIT")
            except sqlite3.Error:
                if self.con.in_transaction:
                    self.con.execute("ROLLBACK")
                raise

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
