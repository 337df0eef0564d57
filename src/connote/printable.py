"""Names from outside (file names, coder and evaluator names, sample names) as they may be printed.

A file name can hold terminal escape codes (``\\x1b[2J`` clears the screen), a newline (a forged second
line of output), right-to-left overrides that reverse what follows, or bytes that are not UTF-8 (which
Python keeps as lone surrogates, and which ``print`` and SQLite refuse). :func:`shown` writes all of these
as visible escapes; :func:`safe_line` does the same to a whole line of output but keeps its line breaks
and tabs. The CLI prints every line through :func:`safe_line` and every name through :func:`shown`.
"""

from __future__ import annotations

import re
import unicodedata

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_HIDDEN = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}  # controls, format (bidi, zero-width), surrogates


def _escape(c: str) -> str:
    if c in _ESCAPES:
        return _ESCAPES[c]
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (os.fsdecode's surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _hidden(c: str) -> bool:
    return unicodedata.category(c) in _HIDDEN


def shown(text: object) -> str:
    """``text`` with every control, format or undecodable character written as an escape (``\\x1b``,
    ``\\n``, ``\\u202e``, ``\\xff``); ordinary text, spaces and accents unchanged."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(_escape(c) if _hidden(c) else c for c in text)


#: What a terminal acts on: controls (not tab and newline), bidi and zero-width format characters,
#: line and paragraph separators, undecodable bytes (surrogates). One search, for long outputs.
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ud800-\udfff]"
)


def safe_line(text: object) -> str:
    """A line of output made safe for a terminal: as :func:`shown`, but line breaks and tabs kept."""
    text = str(text)
    if text.isprintable():
        return text
    return _UNSAFE.sub(lambda m: _escape(m.group()), text)


def is_utf8(text: str) -> bool:
    """Whether ``text`` can be stored and printed as UTF-8 (no undecodable bytes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
