"""What the validation studies share: the folder of a sample, reading a coder's CSV (comma, semicolon or
tab; a spreadsheet's byte-order mark), keeping each imported file with the study, and writing tables."""

from __future__ import annotations

import csv
import io
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from connote.errors import UserError


@dataclass
class Imported:
    """What one imported file added to a sample."""

    sample: str
    count: int  # ratings or answers stored
    names: list[str]  # the coders or evaluators in the file
    problems: list[str]  # 'FILE:LINE: reason' for each line left out
    kept_copy: Path | None  # the file as kept with the study


def folder(study, name: str) -> Path:
    return Path(study.path) / "validation" / name


def check_name(name: str) -> str:
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise UserError(f"sample name {name!r}: use letters, digits, '-' or '_'")
    return name


def read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_table(text: str, source: str) -> tuple[csv.DictReader, dict[str, str]]:
    """A DictReader over ``text`` and its columns by lower-cased name; the delimiter is sniffed."""
    lines = text.splitlines()
    if not lines:
        raise UserError(f"{source}: the file is empty")
    try:
        dialect = csv.Sniffer().sniff(lines[0], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(io.StringIO(text), dialect=dialect)
    return reader, {f.strip().lower(): f for f in (reader.fieldnames or []) if f}


def keep_copy(study, name: str, path: Path) -> Path:
    """Copy an imported file into STUDY/validation/NAME/imported/ (timestamped): every stored answer can
    be traced to the file it came from."""
    keep_dir = folder(study, name) / "imported"
    keep_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    kept = keep_dir / f"{stamp}-{path.name}"
    shutil.copyfile(path, kept)
    return kept


def write_csv(path: Path, rows: list[dict]) -> Path:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def store(study, sample, path: Path, rows: list[tuple], problems: list[str], put) -> Imported:
    """Keep the file with the study and store its rows with ``put(sample_id, rows, source=...)``; rows
    are tuples whose second item names the coder or evaluator."""
    kept = None
    if rows:
        kept = keep_copy(study, sample["name"], path)
        put(sample["id"], rows, source=str(kept.relative_to(study.path)))
    return Imported(sample["name"], len(rows), sorted({r[1] for r in rows}), problems, kept)


def item_number(raw: str, valid: set[int], noun: str) -> int:
    """The pair or set number in a cell; ValueError with the reason when it is not one of ``valid``."""
    try:
        pos = int(float(raw))
    except ValueError:
        raise ValueError(f"{noun} {raw!r} is not a {noun} number") from None
    if pos not in valid:
        raise ValueError(f"there is no {noun} {pos} in this sample")
    return pos


def person(record: dict, fields: dict[str, str], given: str | None, role: str) -> str:
    """Who answered: ``given`` (from the command line) or the row's ``role`` column."""
    who = given or (record.get(fields.get(role, ""), "") or "").strip()
    if not who:
        raise ValueError(f"no {role} named (fill the {role} column or use --{role})")
    return who


def thumbnails(study, shas, dest: Path, size: int, progress: bool) -> tuple[dict[str, str], dict[str, str]]:
    """(thumbnail path relative to ``dest``'s parent, image path) by content hash, for a coding page."""
    from connote.reports import make_thumbnails

    paths = {r["sha256"]: r["path"] for r in study.unique_images()}
    thumbs = make_thumbnails(
        study, {s: paths[s] for s in set(shas) if s in paths}, dest, size, progress=progress
    )
    return thumbs, paths


def write_page(study, sample, template: str, dest: Path, **context) -> Path:
    """Render a coding page (``coding/templates/TEMPLATE``) to ``dest``. The page keeps its answers in the
    browser under a key of this study and sample, so two samples never mix."""
    from connote.reports import _environment

    key = f"connote:{study.get_meta('created')}:{sample['name']}:{sample['id']}"
    html = _environment(Path(__file__).parent / "templates").get_template(template)
    dest.write_text(html.render(name=sample["name"], storage_key=key, **context), encoding="utf-8")
    return dest
