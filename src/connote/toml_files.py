"""Reading a TOML file a user wrote (a sweep grid, a price table), with one clear message per failure."""

from __future__ import annotations

from pathlib import Path

from connote.errors import UserError

try:
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10 (tomli is a dependency there)
    import tomli as tomllib


def loads(text: str) -> dict:
    """TOML text as a dict (TOMLDecodeError on bad text: the caller's own files)."""
    return tomllib.loads(text)


def read_toml(path: Path, what: str) -> dict:
    """The TOML file at ``path`` as a dict; a :class:`UserError` naming the file and ``what`` it should be
    (e.g. "grid file") when it is missing, unreadable, binary, not UTF-8 or not valid TOML."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{path}: not a valid {what} (TOML): {exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a {what} (TOML text): binary or not UTF-8") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
