"""The user's own columns per image (date, account, engagement ...), next to every image of the study.

    import_metadata(study, "posts.csv")        # column 'image' plus any others; re-import updates
    breakdown(study, run_id, "date")           # each cluster by a column: counts, or counts over time

An image is matched by its path relative to the images root, or by its file name when that is unique.
Lines naming an image the study does not hold are reported ('FILE:LINE: reason') and the rest stored.
Column names are lower-cased (as every importer reads them). Each column's type is inferred from all its
stored values: ``number``, ``date`` (ISO 8601) or ``text``.
"""

from __future__ import annotations

import math
import os
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path

from connote.errors import UserError
from connote.study import Study
from connote.tables import in_line_order, read_table_file

TYPES = ("number", "date", "text")


# ---------------------------------------------------------------------------------------------- pure parts
def parse_number(value: str) -> float | None:
    try:
        x = float(value.replace("_", ""))
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def parse_date(value: str) -> date | None:
    """An ISO 8601 date or date-time ('2024-05-01', '2024-05-01T10:00:00Z'), else None."""
    v = value.strip()
    if len(v) < 10 or v[4] != "-":
        return None
    try:
        return datetime.fromisoformat(v.replace("Z", "+00:00")).date()
    except ValueError:
        try:
            return date.fromisoformat(v[:10]) if len(v) == 10 else None
        except ValueError:
            return None


def infer_type(values: list[str | None]) -> str:
    """'number' when every non-empty value is a number, 'date' when every one is an ISO date, else 'text'."""
    present = [v for v in values if v not in (None, "")]
    if not present:
        return "text"
    if all(parse_number(v) is not None for v in present):
        return "number"
    if all(parse_date(v) is not None for v in present):
        return "date"
    return "text"


def period(days: list[date]) -> str:
    """The bin for counts over time: 'day' within two months, 'month' within three years, else 'year'."""
    if not days:
        return "month"
    span = (max(days) - min(days)).days
    return "day" if span <= 62 else "month" if span <= 3 * 366 else "year"


def bin_date(d: date, unit: str) -> str:
    return (
        d.isoformat()
        if unit == "day"
        else f"{d.year:04d}-{d.month:02d}"
        if unit == "month"
        else f"{d.year:04d}"
    )


# ---------------------------------------------------------------------------------------------- import
@dataclass
class MetadataImport:
    path: str
    rows: int  # images given values
    columns: dict[str, str]  # column -> inferred type (over every stored value)
    problems: list[str] = field(default_factory=list)  # 'FILE:LINE: reason'
    updated: int = 0  # cells that replaced a different stored value

    def to_dict(self) -> dict:
        return asdict(self)


def _matcher(study: Study):
    paths = [r["path"] for r in study.images(status=None)]
    exact = set(paths)
    by_name: dict[str, list[str]] = {}
    for p in paths:
        by_name.setdefault(p.rsplit("/", 1)[-1], []).append(p)

    def match(raw: str) -> str:
        key = raw.strip().replace("\\", "/")
        key = key[2:] if key.startswith("./") else key
        if key in exact:
            return key
        found = by_name.get(key.rsplit("/", 1)[-1], [])
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise ValueError(
                f"image {raw!r} matches {len(found)} files ({', '.join(found[:3])}); give its path"
            )
        raise ValueError(f"image {raw!r} is not in the study")

    return match


def import_metadata(
    study: Study | str | os.PathLike, path: str | os.PathLike, *, image_column: str = "image"
) -> MetadataImport:
    """Store the columns of a CSV (``image`` plus any others) for the study's images; values already stored
    for the same image and column are updated, nothing else is touched."""
    image_column = image_column.strip().lower()
    study = study if isinstance(study, Study) else Study.open(study)
    path = Path(path)
    source = str(path)
    table = read_table_file(path, source=source)
    if image_column not in table.columns:
        raise UserError(
            f"{source}: no {image_column!r} column (found: {', '.join(table.columns) or 'nothing'}); "
            "name the column of image paths with --image-column"
        )
    columns = [c for c in table.columns if c and c != image_column]
    names = columns
    if not names:
        raise UserError(f"{source}: no columns besides {image_column!r}")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserError(f"{source}: column(s) {', '.join(dupes)} appear more than once")
    match = _matcher(study)
    cells: dict[tuple[str, str], str | None] = {}
    seen: dict[str, int] = {}
    problems = list(table.problems) + [
        f"{source}: column {i} has values but no name in the header; name it to import them"
        for i in table.unnamed
    ]
    for record in table:
        line = record.line
        raw = record.get(image_column).strip()
        if not raw and not any(record.get(c).strip() for c in columns):
            continue
        try:
            if not raw:
                raise ValueError("no image named")
            image = match(raw)
        except ValueError as exc:
            problems.append(f"{source}:{line}: {exc}")
            continue
        if image in seen:
            problems.append(
                f"{source}:{line}: {image} again (line {seen[image]}); this line's values are kept"
            )
        seen[image] = line
        for name in names:
            cells[(image, name)] = record.get(name).strip() or None
    old = study.metadata()
    updated = sum(1 for (img, name), v in cells.items() if name in old.get(img, {}) and old[img][name] != v)
    merged: dict[str, list[str | None]] = {n: [] for n in names}
    for img, row in old.items():
        for n in names:
            if n in row and (img, n) not in cells:
                merged[n].append(row[n])
    for (_, n), v in cells.items():
        merged[n].append(v)
    types = {n: infer_type(merged[n]) for n in names}
    if cells:
        study.put_metadata(types, [(img, n, v) for (img, n), v in cells.items()], source)
    return MetadataImport(source, len(seen), types, in_line_order(problems, source), updated)


# ---------------------------------------------------------------------------------------------- breakdown
@dataclass
class Breakdown:
    column: str
    type: str
    unit: str | None  # date columns: 'day', 'month' or 'year'
    clusters: dict[int, dict] = field(default_factory=dict)  # cluster -> counts {value: n} or number stats
    missing: dict[int, int] = field(default_factory=dict)  # cluster -> members without a value

    def to_dict(self) -> dict:
        return asdict(self)


def breakdown(
    study: Study | str | os.PathLike, run_id: int | None, column: str, *, top: int = 8
) -> Breakdown:
    """Each cluster of a run (outliers as -1) by a metadata column: counts of the ``top`` values for text,
    counts per day/month/year for a date column, and n/mean/median/min/max for a number column. Every file
    of an image counts (a duplicated image under two paths counts twice)."""
    study = study if isinstance(study, Study) else Study.open(study)
    column = column.strip().lower()  # as the columns are stored (and as --report takes them)
    types = study.metadata_columns()
    if column not in types:
        known = ", ".join(types) or "none yet; import some with `connote metadata STUDY FILE.csv`"
        raise UserError(f"no metadata column {column!r} (columns: {known})")
    run = study.get_run(run_id)
    kind = types[column]
    assignments = study.assignments(run["id"])
    values = study.metadata()
    per: dict[int, list[str | None]] = {}
    for img in study.images(status="ok"):
        c = assignments.get(img["sha256"])
        if c is not None:
            per.setdefault(c, []).append(values.get(img["path"], {}).get(column))
    out = Breakdown(column, kind, None)
    if kind == "date":
        out.unit = period([d for vs in per.values() for v in vs if v and (d := parse_date(v))])
    for c in sorted(per):
        present = [v for v in per[c] if v is not None]
        out.missing[c] = len(per[c]) - len(present)
        if kind == "number":
            xs = [x for v in present if (x := parse_number(v)) is not None]
            out.clusters[c] = (
                {
                    "n": len(xs),
                    "mean": statistics.fmean(xs),
                    "median": statistics.median(xs),
                    "min": min(xs),
                    "max": max(xs),
                }
                if xs
                else {"n": 0}
            )
        elif kind == "date":
            days = [d for v in present if (d := parse_date(v))]
            out.clusters[c] = dict(sorted(Counter(bin_date(d, out.unit or "day") for d in days).items()))
        else:
            counts = Counter(present).most_common()
            shown = dict(counts[:top])
            rest = sum(n for _, n in counts[top:])
            if rest:
                shown["(other)"] = rest
            out.clusters[c] = shown
    return out


# ---------------------------------------------------------------------------------------------- export
def export_columns(study: Study, run_id: int, base) -> tuple[dict[str, str], Callable[[list[dict]], None]]:
    """The columns added to export rows whose own columns are ``base`` (name -> type),
    and a function that fills them in for one chunk of rows (an export streams chunk by chunk: only that
    chunk's metadata is read)."""
    added: dict[str, str] = {}
    labels = study.labels(run_id)
    if labels:
        added.update(label="text", summary="text")
    types = study.metadata_columns()
    columns = {}
    for name, kind in types.items():
        columns[name] = name if name not in added and name not in base else f"meta_{name}"
        added[columns[name]] = kind

    def fill(rows: list[dict]) -> None:
        if labels:
            for r in rows:
                lab = labels.get(r["cluster"]) if r["cluster"] not in (None, -1) else None
                r["label"] = lab["label"] if lab else ""
                r["summary"] = (lab["summary"] or "") if lab else ""
        if types:
            values = study.metadata_of([r["image"] for r in rows])
            for name, kind in types.items():
                for r in rows:
                    raw = values.get(r["image"], {}).get(name)
                    r[columns[name]] = (
                        (parse_number(raw) if raw is not None else None) if kind == "number" else raw
                    )

    return added, fill


# ---------------------------------------------------------------------------------------------- report
#: Most metadata columns a report breaks clusters down by, and most categories the map colours by.
REPORT_COLUMNS = 6
MAP_CATEGORIES = 12


#: Where the study keeps the columns chosen for the report (``connote metadata STUDY --report a,b``).
REPORT_META_KEY = "metadata_report_columns"


def choose_report_columns(study: Study, columns: list[str]) -> list[str]:
    """Keep ``columns`` (known metadata columns, in this order) as the ones the report breaks clusters
    down by and colours the map by; an empty list goes back to the default (the first few imported)."""
    import json

    known = study.metadata_columns()
    unknown = [c for c in columns if c not in known]
    if unknown:
        raise UserError(
            f"no metadata column {', '.join(map(repr, unknown))} (columns: {', '.join(known) or 'none'})"
        )
    study.set_meta(REPORT_META_KEY, json.dumps(columns))
    return report_columns(study)


def report_columns(study: Study) -> list[str]:
    """The metadata columns the report shows: those chosen, else the first :data:`REPORT_COLUMNS` imported."""
    import json

    names = list(study.metadata_columns())
    chosen = [c for c in json.loads(study.get_meta(REPORT_META_KEY) or "[]") if c in names]
    return chosen or names[:REPORT_COLUMNS]


def breakdowns(study: Study, run_id: int, columns: list[str] | None = None) -> dict[str, Breakdown]:
    """:func:`breakdown` of a run by ``columns`` (by default :func:`report_columns`)."""
    names = list(study.metadata_columns())
    chosen = columns if columns is not None else report_columns(study)
    return {c: breakdown(study, run_id, c) for c in chosen if c in names}


def map_columns(study: Study, shas: list[str]) -> dict[str, list[str]]:
    """column -> one category per item of ``shas`` (first file's value), for colouring a map: text values
    (the most frequent :data:`MAP_CATEGORIES`, the rest '(other)'), dates binned by day/month/year, numbers
    by quartile; '(none)' where an image has no value."""
    types = study.metadata_columns()
    if not types:
        return {}
    values = study.metadata()
    first: dict[str, str] = {}
    for img in study.images(status="ok"):
        first.setdefault(img["sha256"], img["path"])
    out = {}
    for name in report_columns(study):
        kind = types[name]
        raw = [values.get(first.get(s, ""), {}).get(name) for s in shas]
        if kind == "date":
            days = [parse_date(v) if v else None for v in raw]
            unit = period([d for d in days if d])
            out[name] = [bin_date(d, unit) if d else "(none)" for d in days]
        elif kind == "number":
            xs = [parse_number(v) if v else None for v in raw]
            present = sorted(x for x in xs if x is not None)
            if not present:
                out[name] = ["(none)"] * len(shas)
                continue
            cuts = [present[min(len(present) - 1, int(q * len(present)))] for q in (0.25, 0.5, 0.75)]
            edges = [present[0], *cuts, present[-1]]

            def quartile(x, edges=edges):
                q = sum(x > c for c in edges[1:4])
                return f"Q{q + 1} ({edges[q]:g}-{edges[q + 1]:g})"

            out[name] = [quartile(x) if x is not None else "(none)" for x in xs]
        else:
            common = {v for v, _ in Counter(v for v in raw if v).most_common(MAP_CATEGORIES)}
            out[name] = [(v if v in common else "(other)") if v else "(none)" for v in raw]
    return out
