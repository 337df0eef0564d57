"""The images of a study: one row per file under the images root (path, content hash, ok or skipped)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from connote.study.common import StudyBase, now


class ImagesMixin(StudyBase):
    """Part of :class:`connote.study.Study`: the image inventory."""

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

    def count_unique_images(self) -> int:
        """How many distinct readable images (one query; no row is loaded)."""
        return self.con.execute("SELECT COUNT(DISTINCT sha256) FROM images WHERE status='ok'").fetchone()[0]

    def image_counts(self) -> tuple[int, int, int]:
        """(readable files, distinct readable images, skipped files), counted in SQL: no row is loaded,
        so `connote status` stays fast at a million images."""
        usable, distinct, skipped = self.con.execute(
            """SELECT COUNT(*) FILTER (WHERE status='ok'), COUNT(DISTINCT sha256) FILTER (WHERE status='ok'),
                      COUNT(*) FILTER (WHERE status!='ok') FROM images"""
        ).fetchone()
        return int(usable or 0), int(distinct or 0), int(skipped or 0)

    def has_images(self) -> bool:
        return self.con.execute("SELECT 1 FROM images WHERE status='ok' LIMIT 1").fetchone() is not None

    def iter_unique_images(self, chunk: int = 4096) -> Iterator[list[sqlite3.Row]]:
        """:meth:`unique_images` a chunk at a time, in sha256 order (rows ``sha256``, ``path``): a step
        that streams holds one chunk, never every image."""
        after = ""
        while True:
            rows = self.con.execute(
                """SELECT sha256, MIN(path) AS path FROM images WHERE status='ok' AND sha256 > ?
                   GROUP BY sha256 ORDER BY sha256 LIMIT ?""",
                (after, chunk),
            ).fetchall()
            if not rows:
                return
            yield rows
            after = rows[-1]["sha256"]

    def image_file(self, rel_path: str) -> Path:
        return self.images_root / rel_path

    def remove_images(self, paths: Iterable[str]) -> int:
        """Forget the files at these relative paths (gone from the images root); returns how many."""
        rows = [(p,) for p in paths]
        with self.transaction() as con:
            con.executemany("DELETE FROM images WHERE path=?", rows)
        return len(rows)
