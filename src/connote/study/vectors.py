"""The vector store: every vector of one embedder in a few memory-mapped files, indexed in the database.

Layout::

    STUDY/vectors/<slug(embedder)>/seg-0000.f32    rows of ``dim`` little-endian float32, appended
    STUDY/vectors/<slug(embedder)>/.lock            held while appending (several processes may embed)

and two tables (schema v6): ``vector_files`` (one row per segment file: embedder, name, dim, rows
used) and ``vectors`` (embedder, content key -> file, row, CRC-32 of the row's bytes).

Why: a million images made a million tiny .npy files, slow to list, copy and back up. Here a vector is
one row of a flat file; a step reads the rows it needs through a memory map (nothing else is loaded).

Crash safety. An append writes the new rows *after* every row the index knows of (never over one),
fsyncs them, and only then commits their index rows. A writer killed at any point leaves at worst
unindexed bytes at the end of a file, which the next append skips; what was stored stays readable.

Damage (a file overwritten with random bytes, truncated, emptied or deleted; a row that fails its
checksum) is found when the rows are read: :meth:`VectorStore.load` raises :class:`DamagedVectors`
naming the keys, and :meth:`VectorStore.check` tells ``embed`` which keys to compute again.

Studies from before v4 kept one ``vectors/<slug>/ab/<key>.npy`` file per vector; those are moved into
the store the first time the study is opened (:func:`migrate_legacy`).
"""

from __future__ import annotations

import hashlib
import io
import os
import sqlite3
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import cast

import numpy as np

from connote.errors import UserError
from connote.study.common import inserted_id

#: A new segment file is started when the current one would pass this size.
SEGMENT_BYTES = 1 << 30
DTYPE = np.dtype("<f4")


def slug(name: str) -> str:
    """A file-system-safe folder name for an embedder name such as 'text:minilm' or 'hf:org/model'."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return f"{safe[:60]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


class DamagedVectors(UserError):
    """Stored vectors that cannot be read back as written; ``keys`` maps each key to the reason."""

    def __init__(self, embedder: str, keys: dict[str, str], total: int):
        self.embedder = embedder
        self.keys = keys
        reasons = sorted(set(keys.values()))
        shown = ", ".join(k[:12] for k in list(keys)[:5]) + (", ..." if len(keys) > 5 else "")
        super().__init__(
            f"{len(keys)} of {total} {embedder} vectors are damaged ({'; '.join(reasons[:3])}): {shown}; "
            f"run `connote embed` again to compute them anew"
        )


@dataclass
class Check:
    """What :meth:`VectorStore.check` found for a list of keys."""

    good: set[str]
    missing: set[str]
    damaged: dict[str, str]  # key -> reason


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (one appender per embedder at a time, across processes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - not POSIX
            pass
        yield
    finally:
        os.close(fd)  # closing releases the lock


class VectorStore:
    """The vectors of one study (all embedders). ``con`` is the study's SQLite connection."""

    def __init__(self, root: Path, con: sqlite3.Connection):
        self.root = Path(root)  # STUDY/vectors
        self.con = con

    # ------------------------------------------------------------------ paths
    def folder(self, embedder: str) -> Path:
        return self.root / slug(embedder)

    def _file_path(self, name: str) -> Path:
        return self.root / name

    # ------------------------------------------------------------------ index
    def count(self, embedder: str) -> int:
        return self.con.execute("SELECT COUNT(*) FROM vectors WHERE embedder=?", (embedder,)).fetchone()[0]

    def has(self, embedder: str, key: str) -> bool:
        return (
            self.con.execute("SELECT 1 FROM vectors WHERE embedder=? AND key=?", (embedder, key)).fetchone()
            is not None
        )

    def present(self, embedder: str, keys: Iterable[str] | None = None) -> set[str]:
        """The keys (of ``keys``, or all) that have an index entry; no file is read."""
        have = {r[0] for r in self.con.execute("SELECT key FROM vectors WHERE embedder=?", (embedder,))}
        return have if keys is None else have.intersection(keys)

    def _index(self, embedder: str, keys: list[str]) -> dict[str, tuple[int, int, int]]:
        """key -> (file id, row, crc) for the keys that are indexed (looked up by key, in batches)."""
        out = {}
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), 500):
            part = unique[i : i + 500]
            q = f"SELECT key, file_id, row, crc32 FROM vectors WHERE embedder=? AND key IN ({','.join('?' * len(part))})"
            for key, fid, row, crc in self.con.execute(q, (embedder, *part)):
                out[key] = (fid, row, crc)
        return out

    def _files(self, embedder: str) -> dict[int, sqlite3.Row]:
        return {
            r["id"]: r
            for r in self.con.execute("SELECT * FROM vector_files WHERE embedder=? ORDER BY id", (embedder,))
        }

    # ------------------------------------------------------------------ reading
    def _read(self, embedder: str, keys: list[str]) -> tuple[np.ndarray | None, dict[str, str], set[str]]:
        """Rows for ``keys`` in order (damaged/missing rows left as zeros); damaged key -> reason; missing."""
        index = self._index(embedder, keys)
        missing = {k for k in keys if k not in index}
        if missing and legacy_files(self.folder(embedder)):  # an old study opened read-only: not moved
            return self._read_legacy(embedder, keys, index, missing)
        files = self._files(embedder)
        dims = {files[fid]["dim"] for fid, _, _ in index.values() if fid in files}
        damaged: dict[str, str] = {}
        if len(dims) > 1:
            raise UserError(f"{embedder}: vectors of several dimensions {sorted(dims)} in one store")
        if not dims:
            return None, damaged, missing
        dim = dims.pop()
        out = np.zeros((len(keys), dim), dtype=DTYPE)
        by_file: dict[int, list[tuple[int, int, int, str]]] = {}
        for pos, key in enumerate(keys):
            if key in index:
                fid, row, crc = index[key]
                by_file.setdefault(fid, []).append((pos, row, crc, key))
        for fid, entries in by_file.items():
            meta = files.get(fid)
            path = self._file_path(meta["name"]) if meta else None
            reason, mm = self._map(path, dim)
            if mm is None or meta is None:
                for _, _, _, key in entries:
                    damaged[key] = reason
                continue
            rows = np.array([e[1] for e in entries], dtype=np.int64)
            inside = rows < mm.shape[0]
            positions = np.array([e[0] for e in entries], dtype=np.int64)
            out[positions[inside]] = mm[rows[inside]]
            del mm
            for (pos, _row, crc, key), ok in zip(entries, inside):
                if not ok:
                    damaged[key] = f"{meta['name']} is truncated"
                elif zlib.crc32(out[pos].tobytes()) != crc:
                    damaged[key] = f"checksum mismatch in {meta['name']}"
                    out[pos] = 0
        return out, damaged, missing

    def _read_legacy(self, embedder, keys, index, missing):
        """Rows from an old study's one-file-per-vector folder (when it could not be moved in)."""
        rows: dict[str, np.ndarray] = {}
        damaged: dict[str, str] = {}
        still: set[str] = set()
        stored = [k for k in keys if k in index]
        if stored:  # some in the store, some not: those through the store, the rest from their files
            X_store, damaged, _ = self._read(embedder, stored)
            rows.update(zip(stored, X_store))
        for key in keys:
            path = self.folder(embedder) / key[:2] / f"{key}.npy"
            if key in missing:
                try:
                    rows[key] = read_npy(path.read_bytes()).astype(DTYPE).ravel()
                except FileNotFoundError:
                    still.add(key)
                except (OSError, ValueError, EOFError) as exc:
                    damaged[key] = f"{path.name}: {type(exc).__name__}"
        dims = {len(v) for v in rows.values()}
        if len(dims) > 1:
            raise UserError(f"{embedder}: vectors of several dimensions {sorted(dims)}")
        dim = dims.pop() if dims else 0
        out = np.zeros((len(keys), dim), dtype=DTYPE)
        for i, key in enumerate(keys):
            if key in rows:
                out[i] = rows[key]
        return out, damaged, still

    @staticmethod
    def _map(path: Path | None, dim: int) -> tuple[str, np.ndarray | None]:
        if path is None:
            return "its file is not in the index", None
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return f"{path.name} is missing", None
        except OSError as exc:
            return f"{path.name}: {exc.strerror or exc}", None
        n = size // (dim * DTYPE.itemsize)
        if n == 0:
            return f"{path.name} is empty" if size == 0 else f"{path.name} is truncated", None
        try:
            return "", np.memmap(path, dtype=DTYPE, mode="r", shape=(n, dim))
        except (OSError, ValueError) as exc:
            return f"{path.name}: {exc}", None

    def load(self, embedder: str, keys: list[str]) -> np.ndarray:
        """The vectors of ``keys`` as an (n, dim) float32 array, in order. Only those rows are read.

        Raises a one-line :class:`UserError` when some have no vector, :class:`DamagedVectors` when some
        fail their check (naming them)."""
        keys = list(keys)
        if not keys:
            return np.zeros((0, 0), dtype=DTYPE)
        X, damaged, missing = self._read(embedder, keys)
        if missing:
            raise UserError(
                f"{len(missing)} of {len(keys)} inputs have no {embedder} vector yet; run `connote embed` first"
            )
        if damaged:
            raise DamagedVectors(embedder, damaged, len(keys))
        return cast(np.ndarray, X)

    def check(self, embedder: str, keys: Iterable[str], chunk: int = 65536) -> Check:
        """Which of ``keys`` have a vector that reads back intact (checksums verified, in chunks)."""
        keys = list(dict.fromkeys(keys))
        good: set[str] = set()
        missing: set[str] = set()
        damaged: dict[str, str] = {}
        for i in range(0, len(keys), chunk):
            part = keys[i : i + chunk]
            _, bad, absent = self._read(embedder, part)
            damaged.update(bad)
            missing |= absent
            good.update(k for k in part if k not in bad and k not in absent)
        return Check(good, missing, damaged)

    # ------------------------------------------------------------------ writing
    def append(self, embedder: str, keys: list[str], vectors: np.ndarray) -> None:
        """Store ``vectors[i]`` under ``keys[i]`` (replacing an older vector of the same key).

        Rows go after every indexed row of the file and are fsynced before their index rows commit."""
        X = np.ascontiguousarray(np.asarray(vectors, dtype=DTYPE))
        if X.ndim == 1:
            X = X[None, :]
        if len(keys) != len(X):
            raise ValueError(f"{len(keys)} keys for {len(X)} vectors")
        if not len(keys):
            return
        dim = int(X.shape[1])
        folder = self.folder(embedder)
        with _locked(folder / ".lock"):
            done = 0
            while done < len(keys):
                fid, name, start, capacity = self._segment(embedder, dim)
                n = min(capacity, len(keys) - done)
                part = X[done : done + n]
                self._write(self._file_path(name), start, dim, part)
                crcs = [zlib.crc32(row.tobytes()) for row in part]
                with _transaction(self.con):
                    self.con.executemany(
                        "INSERT OR REPLACE INTO vectors(embedder, key, file_id, row, crc32) VALUES (?,?,?,?,?)",
                        [(embedder, k, fid, start + j, c) for j, (k, c) in enumerate(zip(keys[done:], crcs))],
                    )
                    self.con.execute("UPDATE vector_files SET rows=? WHERE id=?", (start + n, fid))
                done += n

    def _segment(self, embedder: str, dim: int) -> tuple[int, str, int, int]:
        """(file id, file name, first free row, rows that still fit) of the file to append to."""
        row_bytes = dim * DTYPE.itemsize
        max_rows = max(1, SEGMENT_BYTES // row_bytes)
        last = self.con.execute(
            "SELECT * FROM vector_files WHERE embedder=? ORDER BY id DESC LIMIT 1", (embedder,)
        ).fetchone()
        if last is not None and last["dim"] == dim:
            path = self._file_path(last["name"])
            size = path.stat().st_size if path.exists() else 0
            # after every indexed row and after any unindexed tail a killed writer left (rounded up)
            start = max(int(last["rows"]), -(-size // row_bytes))
            if start < max_rows:
                return last["id"], last["name"], start, max_rows - start
        number = 0 if last is None else int(last["name"].rsplit("-", 1)[1].split(".")[0]) + 1
        name = f"{slug(embedder)}/seg-{number:04d}.f32"
        with _transaction(self.con):
            cur = self.con.execute(
                "INSERT INTO vector_files(embedder, name, dim, rows, created) VALUES (?,?,?,0,?)",
                (embedder, name, dim, _now()),
            )
        return inserted_id(cur), name, 0, max_rows

    @staticmethod
    def _write(path: Path, start: int, dim: int, rows: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            offset = start * dim * DTYPE.itemsize
            if os.fstat(fd).st_size < offset:
                os.ftruncate(fd, offset)  # pad a torn tail to a whole row
            data = memoryview(rows.tobytes())
            while data:
                written = os.pwrite(fd, data, offset)
                data = data[written:]
                offset += written
            os.fsync(fd)
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ maintenance
    def delete(self, embedder: str) -> None:
        """Forget every vector of ``embedder`` and remove its files."""
        with _transaction(self.con):
            names = [
                r[0] for r in self.con.execute("SELECT name FROM vector_files WHERE embedder=?", (embedder,))
            ]
            self.con.execute("DELETE FROM vectors WHERE embedder=?", (embedder,))
            self.con.execute("DELETE FROM vector_files WHERE embedder=?", (embedder,))
        for name in names:
            self._file_path(name).unlink(missing_ok=True)

    def disk_bytes(self) -> int:
        total = 0
        for (name,) in self.con.execute("SELECT name FROM vector_files"):
            with suppress(OSError):
                total += self._file_path(name).stat().st_size
        return total


@contextmanager
def _transaction(con: sqlite3.Connection) -> Iterator[None]:
    if con.in_transaction:  # already inside the caller's transaction
        yield
        return
    con.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    else:
        con.execute("COMMIT")


# ---------------------------------------------------------------------------------------------- legacy
def read_npy(data: bytes) -> np.ndarray:
    """One legacy .npy vector file's bytes (1-d float32 read directly; anything else through np.load)."""
    if data[:8] == b"\x93NUMPY\x01\x00":
        end = 10 + int.from_bytes(data[8:10], "little")
        header = data[10:end]
        if b"'descr': '<f4'" in header and b"'fortran_order': False" in header and b"'shape': (" in header:
            shape = header.split(b"'shape': (", 1)[1].split(b")", 1)[0].rstrip(b",").strip()
            if shape.isdigit() and len(data) - end == 4 * int(shape):
                return np.frombuffer(data, dtype="<f4", count=int(shape), offset=end)
    return np.load(io.BytesIO(data), allow_pickle=False)


def legacy_files(folder: Path) -> list[Path]:
    """The ``ab/<key>.npy`` files of a pre-v4 embedder folder."""
    if not folder.is_dir():
        return []
    return sorted(
        p for sub in folder.iterdir() if sub.is_dir() and len(sub.name) == 2 for p in sub.glob("*.npy")
    )


def migrate_legacy(store: VectorStore, embedder: str, batch: int = 4096) -> tuple[int, list[str]]:
    """Move one embedder's pre-v4 ``.npy`` files into the store; returns (moved, unreadable file names).

    Each batch is appended (and committed) before its files are removed, so a kill in between only
    leaves files that the next open moves again (a key already in the store is kept as stored).
    Unreadable files are removed too (they were damaged; ``embed`` computes their vectors anew)."""
    files = legacy_files(store.folder(embedder))
    moved, bad = 0, []
    have = store.present(embedder)
    for i in range(0, len(files), batch):
        keys, rows, done = [], [], []  # type: list[str], list[np.ndarray], list[Path]
        for path in files[i : i + batch]:
            key = path.stem
            done.append(path)
            if key in have:
                continue
            try:
                v = read_npy(path.read_bytes())
                if v.ndim != 1 or not v.size:
                    raise ValueError(f"shape {v.shape}")
            except (OSError, ValueError, EOFError) as exc:
                bad.append(f"{path.name} ({type(exc).__name__})")
                continue
            if rows and v.size != rows[0].size:
                bad.append(f"{path.name} (dimension {v.size}, not {rows[0].size})")
                continue
            keys.append(key)
            rows.append(v.astype(DTYPE, copy=False))
        if rows:
            store.append(embedder, keys, np.stack(rows))
            have.update(keys)
            moved += len(keys)
        for path in done:
            path.unlink(missing_ok=True)
    for sub in store.folder(embedder).iterdir() if store.folder(embedder).is_dir() else []:
        if sub.is_dir() and len(sub.name) == 2:
            for tmp in sub.glob("*.tmp"):
                tmp.unlink(missing_ok=True)
            with suppress(OSError):
                sub.rmdir()
    return moved, bad


def migrate_study(store: VectorStore, embedder_names: Iterable[str]) -> list[str]:
    """Move every registered embedder's legacy files into the store; returns one line per embedder moved."""
    notes = []
    for name in embedder_names:
        if legacy_files(store.folder(name)):
            moved, bad = migrate_legacy(store, name)
            line = f"{name}: moved {moved} vector file(s) into {store.folder(name).name}/"
            if bad:
                line += f"; {len(bad)} unreadable file(s) dropped, to be embedded again: {', '.join(bad[:5])}"
            notes.append(line)
    return notes
