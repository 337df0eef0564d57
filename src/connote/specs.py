"""Spec strings such as ``umap:components=5,neighbors=15`` or ``openai:gpt-4-turbo``: the part before ':'
picks the backend, the rest is its argument (for reducers a list of ``key=value`` options).

A leaf module (it imports nothing of connote but the error type), so that stages and the registry can both
use it without importing each other."""

from __future__ import annotations

import difflib

from connote.errors import UserError


def split_spec(spec: str) -> tuple[str, str]:
    """'umap:components=5' -> ('umap', 'components=5'); 'minilm' -> ('minilm', '')."""
    kind, _, arg = spec.partition(":")
    return kind.strip(), arg.strip()


def parse_options(arg: str) -> dict[str, str]:
    """'components=5,neighbors=15' -> {'components': '5', 'neighbors': '15'}."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in arg.split(","))):
        key, eq, value = part.partition("=")
        if not eq:
            raise UserError(f"expected key=value in {arg!r}, got {part!r}")
        if key.strip() in out:
            raise UserError(f"{key.strip()!r} is given twice in {arg!r}; give it once")
        out[key.strip()] = value.strip()
    return out


def unknown_option(what: str, key: str, known, where: str | None = None) -> UserError:
    """The error for an option ``key`` that ``what`` does not take: names the known ones and the closest."""
    known = sorted(known)
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    place = f" in {where!r}" if where else ""
    return UserError(f"unknown {what} option {key!r}{place} (known: {', '.join(known)}){hint}")
