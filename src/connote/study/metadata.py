"""Storage of the user's own columns per image (``connote metadata``: the import, type inference and
breakdowns are :mod:`connote.metadata`): the columns with their types, and one value per image path and
column.

A mixin of :class:`connote.study.Study` (``study.metadata()``); an import is written in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterable

from connote.study.common import StudyBase, now


class MetadataMixin(StudyBase):
    """Part of :class:`connote.study.Study`: the user's metadata columns and values."""

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
