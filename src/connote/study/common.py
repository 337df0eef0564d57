"""Small helpers every part of the study folder uses: timestamps, text keys, and the one "named, or the
latest" lookup behind description sets, runs, pair samples and set samples."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from connote.errors import UserError


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def text_key(text: str) -> str:
    """Content key of a text (what text vectors are cached by)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
