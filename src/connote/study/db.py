"""Opening a study's database: the connection rules and the faults a study folder can have.

* Every connection: WAL journal, NORMAL sync, foreign keys, a 30 s busy timeout (another connote process
  holding the write lock is waited for, then named).
* A damaged database (0 bytes, header overwritten, truncated, 'malformed') is refused with the reason
  and how to recover (SQLite's ``.recover``, a backup). A new study is never made over an existing
  folder's database, whatever state it is in.
* A read-only study folder (an archived study, a shared drive, read-only media) is opened read-only:
  commands that only read work; commands that write say that the folder is read-only.

:func:`explain` turns the SQLite errors a command can still meet later (damage found mid-way, a lock
held too long, a full disk, a write to a read-only study) into one line that names the study.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from connote.errors import UserError
from connote.safe_write import DB_NAME  # defined in the leaf that refuses to write over it

BUSY_TIMEOUT_S = 30

_MAGIC = b"SQLite format 3\x00"


class DamagedStudy(UserError):
    """The study's database cannot be read as it is."""


class ReadOnlyStudy(UserError):
    """A command that writes was given a study folder it cannot write to."""


def recovery_hint(db: Path) -> str:
    return (
        f"recover what it holds with SQLite's .recover (sqlite3 {db} .recover | sqlite3 recovered.db, "
        f"then put recovered.db in its place, keeping the damaged file) or restore {db.name} from a backup"
    )


def damaged(db: Path, why: str) -> DamagedStudy:
    return DamagedStudy(f"{db.parent}: the study's database is damaged ({why}); {recovery_hint(db)}")


def check_file(db: Path) -> None:
    """Refuse a database file that is plainly damaged, before SQLite sees it: empty, too short, not an
    SQLite header, or shorter than the pages its header counts (truncated)."""
    try:
        size = db.stat().st_size
        with open(db, "rb") as fh:
            head = fh.read(100)
    except PermissionError:
        raise UserError(f"{db.parent}: cannot read {db.name}: permission denied") from None
    except OSError as exc:
        raise UserError(f"{db.parent}: cannot read {db.name}: {exc.strerror or exc}") from None
    if size == 0:
        wal = db.with_name(db.name + "-wal")
        extra = (
            f"; {wal.name} holds {wal.stat().st_size:,} bytes" if wal.is_file() and wal.stat().st_size else ""
        )
        raise damaged(db, f"{db.name} is empty, 0 bytes{extra}")
    if len(head) < 100 or not head.startswith(_MAGIC):
        raise damaged(db, f"{db.name} does not start with an SQLite header: overwritten or not a database")
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    header_count_valid = head[24:28] == head[92:96]
    # A checkpoint cut short (kill -9) may leave the file shorter than its new header says while the WAL
    # beside it still holds every page: SQLite completes it on open, so that is not damage.
    wal = db.with_name(db.name + "-wal")
    checkpointing = wal.is_file() and wal.stat().st_size > 0
    if header_count_valid and pages and size < pages * page_size and not checkpointing:
        raise damaged(
            db, f"{db.name} is truncated: {size:,} bytes where its header counts {pages * page_size:,}"
        )


def _uri(db: Path, mode: str) -> str:
    return f"file:{quote(str(db.resolve()))}?{mode}"


def _configure(con: sqlite3.Connection, *, readonly: bool) -> None:
    con.row_factory = sqlite3.Row
    if not readonly:
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
    con.execute("PRAGMA foreign_keys=ON")
    con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")


def _open(db: Path, mode: str, *, readonly: bool) -> sqlite3.Connection:
    con = sqlite3.connect(
        _uri(db, mode), uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    try:
        _configure(con, readonly=readonly)
    except BaseException:
        con.close()
        raise
    return con


def connect(folder: Path, *, create: bool = False) -> tuple[sqlite3.Connection, bool]:
    """(connection, read-only?) to FOLDER/connote.db. ``create`` makes the database when there is none;
    an existing file is checked first and never replaced. A folder that cannot be written is opened
    read-only (SQLite's immutable mode: nobody can change it from here)."""
    db = folder / DB_NAME
    exists = db.exists()
    if exists:
        if not db.is_file():
            raise UserError(f"{folder}: {DB_NAME} is not a file")
        check_file(db)
    elif not create:
        raise UserError(f"{folder}: not a connote study (no {DB_NAME}); make one with `connote init`")
    try:
        return _open(db, "mode=rwc" if not exists else "mode=rw", readonly=False), False
    except sqlite3.DatabaseError as exc:
        if not exists:
            if _cannot_write(exc, folder):
                raise ReadOnlyStudy(f"{folder}: the folder is read-only: cannot make a study there") from None
            raise
        if not _cannot_write(exc, folder):
            raise _from_sqlite(exc, folder) from None
    wal = db.with_name(DB_NAME + "-wal")
    if wal.is_file() and wal.stat().st_size > 0:
        raise ReadOnlyStudy(
            f"{folder}: the study folder is read-only and {wal.name} holds changes not yet in {DB_NAME} "
            "(it was copied while connote was writing): copy the whole folder somewhere writable and open it there"
        )
    try:
        return _open(db, "mode=ro&immutable=1", readonly=True), True
    except sqlite3.DatabaseError as exc:
        raise _from_sqlite(exc, folder) from None


def _cannot_write(exc: sqlite3.DatabaseError, folder: Path) -> bool:
    name = getattr(exc, "sqlite_errorname", "")
    if name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")):
        return not _writable(folder)
    return False


def _writable(folder: Path) -> bool:
    """Whether a file can be made in ``folder`` (tried: root ignores permission bits, a read-only mount
    does not)."""
    probe = folder / f".connote-write-test-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError:
        return False
    os.close(fd)
    probe.unlink(missing_ok=True)
    return True


#: Free bytes under which a failed write is taken for a full disk.
FULL_BELOW = 1 << 20


def disk_full(folder: str | os.PathLike | None) -> bool:
    """True when the file system of ``folder`` has less than :data:`FULL_BELOW` bytes free for this user:
    SQLite reports a write that met ENOSPC in its WAL or shared memory as an I/O error, not as 'full'."""
    try:
        st = os.statvfs(folder or ".")
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < FULL_BELOW


def _from_sqlite(exc: sqlite3.DatabaseError, folder: Path) -> UserError:
    return UserError(explain(exc, folder) or f"{folder}: {exc}")


def explain(exc: BaseException, folder: str | os.PathLike | None) -> str | None:
    """One line for an SQLite (or file-system) error met while a command worked on a study, or None
    when it is not one of the known faults."""
    where = f"{folder}: " if folder else ""
    db = Path(folder or ".") / DB_NAME
    if isinstance(exc, sqlite3.DatabaseError):
        name = getattr(exc, "sqlite_errorname", "") or ""
        text = str(exc)
        if (
            name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
            or "malformed" in text
            or "not a database" in text
        ):
            return str(damaged(db, text))
        if name.startswith("SQLITE_READONLY") or "readonly database" in text:
            return (
                f"{where}the study folder is read-only and this command writes to it; copy the study folder "
                "somewhere writable (commands that only read, such as status, runs and export -o FILE, work as it is)"
            )
        if name.startswith("SQLITE_BUSY") or "database is locked" in text:
            return (
                f"{where}the study's database stayed locked by another connote process for {BUSY_TIMEOUT_S} s; "
                "run the command again when it has finished"
            )
        full = name.startswith("SQLITE_FULL") or "database or disk is full" in text
        if full or (name.startswith("SQLITE_IOERR") and disk_full(folder)):  # a write cut short by ENOSPC
            return (
                f"{where}the disk is full: free some space and run the command again (nothing stored is lost)"
            )
        if name.startswith(("SQLITE_IOERR", "SQLITE_CANTOPEN")):
            return (
                f"{where}cannot read or write {DB_NAME} ({text}): is the disk or network share still there?"
            )
        return None
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC):
        target = exc.filename or folder or "a file"
        if exc.errno == errno.ENOSPC:
            return f"{target}: the disk is full: free some space and run the command again"
        return (
            f"{target}: cannot write ({exc.strerror}); if the study folder is read-only, write elsewhere "
            "(export -o FILE) or copy the study somewhere writable"
        )
    # a folder given as -o FILE, a folder that does not exist: named, not a traceback
    if isinstance(exc, OSError) and exc.filename and exc.strerror:
        return f"{exc.filename}: {exc.strerror.lower()}"
    return None
