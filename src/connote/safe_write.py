"""The one way connote writes a file, and the one check of a path the user chose to write to. A leaf.

:func:`replacing` (and :func:`write_bytes` / :func:`write_text` over it) writes a temporary file in the
target's folder, flushes it to disk (fsync), gives it the mode a new file gets under the user's umask
(``0o666 & ~umask``: a coder or a web server running as another user can read a report) and renames it
over the target: a reader sees the old file or the new one, never half of one; a crash, Ctrl-C or a full
disk leaves the old file as it was and no temporary file behind.

:func:`check_output` refuses, before anything is written, a path that would destroy what a study holds:
its database (``connote.db`` and its ``-wal``, ``-shm`` and ``-journal`` files), its vectors, its caches,
its journal of paid answers (``journal/``),
the coders' files kept with it (``validation/NAME/imported/``), the study folder itself, or an image
under the study's images root (a file with an image extension there, which the next scan would also
take for one of the collection's images). Every path a user chooses to write to (``export -o``) goes
through it; the error is one line naming the file and the reason.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from connote.errors import UserError
from connote.image_names import is_image_name

#: The study's database file name (its folder is "a study folder": scans never enter one).
DB_NAME = "connote.db"

#: Top-level folders of a study that hold what it stores (as opposed to what it renders).
_STUDY_DATA = {
    "vectors": "the study's stored vectors",
    "cache": "the study's cached results",
    "journal": "the study's journal of paid answers not yet stored",
}

__all__ = [
    "DB_NAME",
    "check_output",
    "file_mode",
    "is_study_folder",
    "keep_mode",
    "replacing",
    "write_bytes",
    "write_text",
]


def file_mode() -> int:
    """The mode a new file gets under the current umask (``0o666 & ~umask``)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def is_study_folder(folder: str | os.PathLike) -> bool:
    """True when ``folder`` holds a connote study database."""
    return os.path.isfile(os.path.join(folder, DB_NAME))


def keep_mode(path: str | os.PathLike) -> None:
    """Give a file connote wrote earlier, and now keeps as it is, the umask's mode: earlier versions
    wrote reports and coding sheets 0600, unreadable to a coder or a web server running as another user."""
    with suppress(OSError):
        if stat.S_IMODE(os.stat(path).st_mode) != (mode := file_mode()):
            os.chmod(path, mode)


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; when the block ends without an error, the
    file is flushed to disk, given the umask's mode and renamed over ``path``. On an error (or Ctrl-C)
    the temporary file is removed and ``path`` is left as it was. A full disk is a :class:`UserError`
    that names the file."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:  # whatever wrote the file (a writer that opened it by name) is flushed
            os.fsync(fh.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserError(
                f"{path}: the disk is full ({exc.strerror}): nothing was written; free some space and run "
                "the command again"
            ) from None
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` safely (see :func:`replacing`); returns ``path``."""
    with replacing(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    return write_bytes(path, text.encode(encoding))


def _refusal(path: Path, images_root: Path | None) -> str | None:
    """Why writing ``path`` (resolved) would destroy something a study holds, or None."""
    if path.is_dir():
        kind = "a study folder" if is_study_folder(path) else "a folder"
        return f"is {kind}, not a file"
    for folder in path.parents:
        if not is_study_folder(folder):
            continue
        parts = path.relative_to(folder).parts
        if len(parts) == 1 and parts[0].startswith(DB_NAME):
            return f"is the database of the study {folder}"
        if parts[0] in _STUDY_DATA and len(parts) > 1:
            return f"is inside {parts[0]}/, {_STUDY_DATA[parts[0]]} of the study {folder}"
        if parts[0] == "validation" and len(parts) > 3 and parts[2] == "imported":
            return f"is a coder's file kept by the study {folder}"
        return None  # in a study folder (a study is never scanned for images): the rest is rendered output
    if images_root is not None and path.is_relative_to(images_root) and is_image_name(path):
        what = "an image" if path.exists() else "an image file name"
        return f"is {what} under the study's images folder {images_root}, which connote never writes to"
    return None


def check_output(path: str | os.PathLike, *, images_root: str | os.PathLike | None = None) -> Path:
    """``path`` when writing it cannot destroy what a study holds (see the module's doc); otherwise a
    one-line :class:`UserError` naming the file and the reason. Links are followed: a link to a study's
    database is refused as the database is."""
    resolved = Path(os.path.realpath(path))
    root = Path(os.path.realpath(images_root)) if images_root is not None else None
    reason = _refusal(resolved, root)
    if reason:
        shown = str(path) if resolved == Path(os.path.abspath(path)) else f"{path} (-> {resolved})"
        raise UserError(f"{shown}: will not write there: it {reason}; choose another file")
    return Path(path)
