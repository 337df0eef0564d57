"""What the validation studies share: the folder of a sample and its name rule, reading a coder's CSV
(through :mod:`connote.tables`: any delimiter a spreadsheet writes, UTF-8/UTF-16/Windows-1252/Latin-1,
huge or binary cells reported by line), strict pair and set numbers, one answer per key with overrides
named, keeping each imported file with the study, and writing tables."""

from __future__ import annotations

import csv
import io
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from connote.errors import UserError
from connote.safe_write import replacing, write_text
from connote.tables import Table, decode, parse_csv


@dataclass
class Imported:
    """What one imported file added to a sample."""

    sample: str
    count: int  # ratings or answers stored
    names: list[str]  # the coders or evaluators in the file
    problems: list[str]  # 'FILE:LINE: reason' for each line left out
    kept_copy: Path | None  # the file as kept with the study
    notes: list[str] = field(default_factory=list)  # 'FILE:LINE: ...' lines that override earlier ones


def sample_folder(study, name: str) -> Path:
    """Where a validation sample keeps its sheet, thumbnails, imported files and scores."""
    return Path(study.path) / "validation" / name


#: A sample name: what is accepted here is what the message says (it becomes a folder name).
#: The two similarities a pair of images is rated on (RQ1), and the coder name of a consensus round.
DIMENSIONS = ("denotative", "connotative")
CONSENSUS = "(consensus)"


@dataclass
class RunSetting:
    """The run a validation score belongs to, as its tables list it."""

    run_id: int
    features: str
    reduce: str
    min_cluster_size: int
    seed: int | None
    n_clusters: int

    def setting(self) -> str:
        return f"{self.features} {self.reduce} mcs={self.min_cluster_size}"


def run_setting(run) -> dict:
    """A stored run's :class:`RunSetting` fields, by name."""
    return {
        "run_id": int(run["id"]),
        **{k: run[k] for k in ("features", "reduce", "min_cluster_size", "seed", "n_clusters")},
    }


NAME_RULE = "1 to 64 letters (a-z, A-Z), digits, '-', '_' or '.', starting with a letter or digit"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", re.ASCII)


def check_name(name: str) -> str:
    """``name`` when it is a valid sample name; :class:`UserError` before anything is stored."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        shown = name if len(name) <= 80 else name[:80] + "..."
        raise UserError(f"sample name {shown!r} ({len(name)} characters): use {NAME_RULE}")
    return name


def read_text(path: Path) -> str:
    """The text of an imported file (see :func:`connote.tables.decode`)."""
    return decode(path)


def read_table(text: str, source: str) -> tuple[Table, dict[str, str]]:
    """A :class:`~connote.tables.Table` over ``text`` and its columns by lower-cased name (the original
    names; the rows' values are keyed by the lower-cased ones)."""
    table = parse_csv(text, source)
    return table, {c: c for c in table.columns}


def whole_number(raw: str, noun: str) -> int:
    """A cell that must hold a whole number (``3``, ``+3``, ``3.0``; not ``1.9``, ``inf``, ``1e400``,
    ``nan``, ``-1`` or ``0x3``); ValueError with the reason otherwise."""
    text = (raw or "").strip()
    if not _WHOLE.fullmatch(text):
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise ValueError(f"{noun} {shown!r} is not a whole number")
    return int(text.lstrip("+").split(".", 1)[0])


_WHOLE = re.compile(r"\+?[0-9]+(\.0*)?", re.ASCII)


def keep_copy(study, name: str, path: Path) -> Path:
    """Copy an imported file into STUDY/validation/NAME/imported/ (timestamped): every stored answer can
    be traced to the file it came from."""
    keep_dir = sample_folder(study, name) / "imported"
    keep_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    kept = keep_dir / f"{stamp}-{path.name}"
    with replacing(kept) as tmp:
        shutil.copyfile(path, tmp)
    return kept


def write_csv(path: Path, rows: list[dict]) -> Path:
    buf = io.StringIO()
    if rows:
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return write_text(path, buf.getvalue())


def last_wins(rows: list[tuple], lines: list[str], width: int, what) -> tuple[list[tuple], list[str]]:
    """Rows with one per key (their first ``width`` items), the later line overriding the earlier one,
    and a note 'FILE:LINE: WHAT again: this line overrides line N' for each override (``lines`` gives
    each row's 'FILE:LINE'; ``what(row)`` describes its key)."""
    kept: dict[tuple, int] = {}
    notes = []
    for i, row in enumerate(rows):
        key = row[:width]
        if key in kept:
            j = kept[key]
            was, now = (", ".join(map(str, r[width:])) for r in (rows[j], row))
            same = " (the same value)" if was == now else f" ({was} there, {now} here)"
            where = lines[j].rsplit(":", 1)[-1]
            notes.append(f"{lines[i]}: {what(row)} again: this line overrides line {where}{same}")
        kept[key] = i
    return [rows[i] for i in sorted(kept.values())], notes


def store_import(
    study, sample, path: Path, rows: list[tuple], problems: list[str], put, notes: list[str] | None = None
) -> Imported:
    """Keep the file with the study and store its rows with ``put(sample_id, rows, source=...)``; rows
    are tuples whose second item names the coder or evaluator. A file that stores nothing is an error
    that names its problems."""
    if not rows:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise UserError(
            f"{path}: nothing to import"
            + (f" ({len(problems)} bad line(s): {shown})" if problems else " (no lines with answers)")
        )
    kept = keep_copy(study, sample["name"], path)
    put(sample["id"], rows, source=str(kept.relative_to(study.path)))
    return Imported(sample["name"], len(rows), sorted({r[1] for r in rows}), problems, kept, notes or [])


def item_number(raw: str, valid: set[int], noun: str) -> int:
    """The pair or set number in a cell; ValueError with the reason when it is not one of ``valid``."""
    pos = whole_number(raw, noun)
    if pos not in valid:
        raise ValueError(f"there is no {noun} {pos} in this sample")
    return pos


def answerer(record: dict, given: str | None, role: str) -> str:
    """Who answered: ``given`` (from the command line) or the row's ``role`` column."""
    who = given or (record.get(role, "") or "").strip()
    if not who:
        raise ValueError(f"no {role} named (fill the {role} column or use --{role})")
    return who


def thumbnails(study, shas, dest: Path, size: int, progress: bool) -> tuple[dict[str, str], dict[str, str]]:
    """(thumbnail path relative to ``dest``'s parent, image path) by content hash, for a coding page."""
    from connote.reports.thumbnails import make_thumbnails

    paths = {r["sha256"]: r["path"] for r in study.unique_images()}
    thumbs = make_thumbnails(
        study, {s: paths[s] for s in set(shas) if s in paths}, dest, size, progress=progress
    )
    return thumbs, paths


def store_sample(study, table: str, name: str, shas, thumb_size: int, progress: bool, add, write_sheet):
    """Store a new sample only with its sheet: a name in use is refused and the thumbnails made (the slow
    part) while nothing is stored; then ``add(then=...)`` stores the sample and writes its sheet (reusing
    the thumbnails) in one transaction, so that a sheet that cannot be written (or a kill) stores nothing.
    Returns what ``write_sheet(study, name, thumb_size=..., progress=False)`` returned."""
    study.check_new_sample(table, name)
    thumbnails(study, shas, sample_folder(study, name) / "thumbs", thumb_size, progress)
    written = []
    add(then=lambda _id: written.append(write_sheet(study, name, thumb_size=thumb_size, progress=False)))
    return written[0]


def write_page(study, sample, template: str, dest: Path, **context) -> Path:
    """Render a coding page (``coding/templates/TEMPLATE``) to ``dest``. The page keeps its answers in the
    browser under a key of this study and sample, so two samples never mix."""
    from connote.reports.jinja import template_environment

    key = f"connote:{study.get_meta('created')}:{sample['name']}:{sample['id']}"
    html = template_environment(Path(__file__).parent / "templates").get_template(template)
    return write_text(dest, html.render(name=sample["name"], storage_key=key, **context))
