"""One reader for every table a user imports (descriptions, ratings, set answers): CSV or JSON lines.

Whatever the file holds, the reader ends with rows or with one clear line per problem, never with a
traceback:

* the text is UTF-8 (with or without a byte-order mark), UTF-16 with a byte-order mark (a spreadsheet's
  "Unicode text"), Windows-1252 or Latin-1, tried in that order;
* the delimiter of a CSV is sniffed from its header (comma, semicolon, tab, bar); quoting is RFC 4180's
  (``""`` inside a quoted cell is a quote), whatever the header looks like;
* a line that cannot be used is reported as ``FILE:LINE: reason`` and left out; the rest is read: a
  cell over :data:`MAX_CELL` characters (the csv module's own limit would end the whole file), binary
  data or control characters, invalid Unicode, more cells than the header has columns (an unquoted
  comma), a line that is not JSON or not a JSON object;
* a file that is empty, binary from its first line, or without a header is refused as a whole.

Columns are matched case-insensitively: each :class:`Row` maps the lower-cased, stripped column name to
the cell's text (JSON numbers as their text, so that an id ``1.9`` or ``1e400`` reaches the caller's
check as written rather than as a float).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from connote.errors import UserError

#: Longest cell accepted, in characters (a long description is a few thousand).
MAX_CELL = 1_000_000

JSON_SUFFIXES = {".jsonl", ".ndjson", ".json"}

_CONTROL = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]")  # not tab, newline, carriage return


@dataclass
class Row:
    line: int  # first line of the record in the file (JSON: the line; a JSON array: the item's number)
    last: int  # last line of the record (a quoted CSV cell may span lines)
    values: dict[str, str]  # lower-cased column name -> text ('' when blank or missing)
    where: str  # 'FILE:LINE' (or 'FILE:FIRST-LAST') for messages

    def get(self, *names: str) -> str:
        """The first of ``names`` with a non-blank value, else ''."""
        for name in names:
            value = self.values.get(name, "")
            if value.strip():
                return value
        return ""


@dataclass
class Table:
    source: str
    columns: list[str]  # lower-cased, in the file's order
    rows: list[Row]
    problems: list[str] = field(default_factory=list)  # 'FILE:LINE: reason' for lines left out
    encoding: str = "utf-8"
    unnamed: list[int] = field(default_factory=list)  # CSV columns (1-based) without a name but with values

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)


def decode(path: str | Path) -> str:
    """The text of ``path``: UTF-8 (BOM or not), UTF-16 with a BOM, else Windows-1252, else Latin-1."""
    return _decode(_read(path))[0]


def _read(path: str | Path) -> bytes:
    path = Path(path)
    if not path.is_file():  # a named pipe or a device would never end (or never start)
        why = (
            "is a folder, not a file"
            if path.is_dir()
            else "not a regular file"
            if path.exists()
            else "file not found"
        )
        raise UserError(f"{path}: {why}")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _decode(data: bytes) -> tuple[str, str]:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            pass
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1"


def cell_problem(text: str) -> str | None:
    """Why a cell cannot be used, or None."""
    if len(text) > MAX_CELL:
        return f"a cell of {len(text):,} characters is over the limit of {MAX_CELL:,}"
    if "\x00" in text:
        return "binary data (a NUL byte)"
    bad = _CONTROL.search(text)
    if bad is not None:
        return f"binary data or a control character ({bad.group()!r})"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "invalid Unicode (a lone surrogate)"
    return None


def _where(source: str, first: int, last: int) -> str:
    return f"{source}:{first}" if last <= first else f"{source}:{first}-{last}"


def sniff_delimiter(header_line: str) -> str:
    """The delimiter of a CSV, from its header line: comma, semicolon, tab or bar (comma when unsure)."""
    try:
        return csv.Sniffer().sniff(header_line, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def rfc4180_dialect(delimiter: str) -> type[csv.Dialect]:
    """RFC 4180 quoting (a quote inside a quoted cell written twice, as Excel, LibreOffice, Google Sheets,
    pandas and Python's csv module write it) with ``delimiter``. Only the delimiter is sniffed: the
    Sniffer guesses ``doublequote=False`` from a header without quotes, which splits every cell with an
    escaped quote wrongly."""

    class Dialect(csv.excel):
        pass

    Dialect.delimiter = delimiter
    return Dialect


def parse_csv(text: str, source: str) -> Table:
    """Rows of a CSV text (see the module's notes); ``source`` names it in messages."""
    lines = text.splitlines()
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if first is None:
        raise UserError(f"{source}: the file is empty")
    header_line = lines[first][:10_000]
    problem = cell_problem(header_line)
    if problem:
        raise UserError(f"{source}:{first + 1}: not a CSV header ({problem}): is this a text table?")
    dialect = rfc4180_dialect(sniff_delimiter(header_line))
    # The csv module refuses cells over its global limit and ends the file there; raise the limit to
    # the text's size so every line is read, and judge long cells line by line (cell_problem).
    if csv.field_size_limit() < len(text) + 1:
        csv.field_size_limit(len(text) + 1)
    reader = csv.reader(io.StringIO(text), dialect=dialect)
    table = Table(source, [], [])
    prev = 0
    header = None
    seen_errors: set[int] = set()
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # the reader goes on with the next line
            line = reader.line_num
            table.problems.append(f"{_where(source, prev + 1, line)}: cannot read: {exc}")
            if line in seen_errors:
                break
            seen_errors.add(line)
            prev = line
            continue
        start, prev = prev + 1, reader.line_num
        if header is None:
            if not any(c.strip() for c in cells):
                continue
            header = [c.strip().lower() for c in cells]
            dup = next((c for c in header if c and header.count(c) > 1), None)
            if dup:
                raise UserError(f"{source}:{start}: the column {dup!r} appears twice in the header")
            table.columns = [c for c in header if c]
            continue
        if not any(c.strip() for c in cells):
            continue  # an empty line
        where = _where(source, start, prev)
        problem = next((p for p in map(cell_problem, cells) if p), None)
        if problem is None and len(cells) > len(header) and any(c.strip() for c in cells[len(header) :]):
            problem = (
                f"{len(cells)} cells for {len(header)} columns (a text with the delimiter "
                f"{dialect.delimiter!r} in it must be quoted)"
            )
        if problem:
            table.problems.append(f"{where}: {problem}; line skipped")
            continue
        values = {h: c for h, c in zip(header, cells, strict=False) if h}
        table.unnamed += [
            i for i, (h, c) in enumerate(zip(header, cells, strict=False), 1)
            if not h and c.strip() and i not in table.unnamed
        ]  # fmt: skip
        for h in table.columns:
            values.setdefault(h, "")
        table.rows.append(Row(start, prev, values, where))
    return table


def _json_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def _json_row(rec, where: str, line: int, columns: list[str], table: Table) -> None:
    if not isinstance(rec, dict):
        table.problems.append(f"{where}: a JSON {type(rec).__name__}, not an object with named fields")
        return
    values = {str(k).strip().lower(): _json_text(v) for k, v in rec.items()}
    problem = next((p for p in map(cell_problem, values.values()) if p), None)
    if problem:
        table.problems.append(f"{where}: {problem}; line skipped")
        return
    for k in values:
        if k and k not in columns:
            columns.append(k)
    table.rows.append(Row(line, line, values, where))


def parse_jsonl(text: str, source: str) -> Table:
    """Rows of JSON lines (one object per line) or of a JSON array of objects."""
    table = Table(source, [], [])
    stripped = text.lstrip()
    if not stripped:
        raise UserError(f"{source}: the file is empty")
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise UserError(f"{source}: not a JSON array ({exc})") from None
        if not isinstance(items, list):
            raise UserError(f"{source}: not a JSON array of objects")
        for i, rec in enumerate(items, 1):
            _json_row(rec, f"{source}: item {i}", i, table.columns, table)
        return table
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{source}:{n}"
        if len(line) > MAX_CELL + 1000:
            table.problems.append(
                f"{where}: a line of {len(line):,} characters is over the limit; line skipped"
            )
            continue
        try:
            rec = json.loads(line)
        except RecursionError:
            table.problems.append(f"{where}: JSON nested too deeply; line skipped")
            continue
        except ValueError as exc:
            problem = cell_problem(line[:10_000]) or f"not a JSON line ({exc})"
            table.problems.append(f"{where}: {problem}; line skipped")
            continue
        _json_row(rec, where, n, table.columns, table)
    return table


def in_line_order(problems: list[str], source: str) -> list[str]:
    """'SOURCE:LINE: ...' messages sorted by their line (the reader's and the caller's, merged)."""

    def line(p: str) -> int:
        head = p[len(source) + 1 :].split(":", 1)[0].split("-", 1)[0] if p.startswith(source + ":") else ""
        return int(head) if head.isdigit() else 0

    return sorted(problems, key=line)


def read_table_file(path: str | Path, *, source: str | None = None) -> Table:
    """Read a CSV (any other suffix) or JSON-lines file (``.jsonl``, ``.ndjson``, ``.json``)."""
    path = Path(path)
    text, encoding = _decode(_read(path))
    source = source or str(path)
    table = parse_jsonl(text, source) if path.suffix.lower() in JSON_SUFFIXES else parse_csv(text, source)
    table.encoding = encoding
    return table
