"""Import descriptions made elsewhere (CSV or JSONL with the columns ``image`` and ``text``).

``image`` may be a path relative to the study's images root, a file name (when it is unique in the
study), an absolute path under the root, or an image's sha256. The rows become a description set named
``imported:STEM`` (or ``--name``). What the user gives is stored as given: the output checks (made for
vision-LLM outputs) run only when asked (``check``), and then a flagged text is kept and used, with its
reason noted, unless ``exclude_flagged`` keeps it apart (status 'flagged', like a describer's).
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from connote.errors import UserError
from connote.study import Study


@dataclass
class ImportSummary:
    set_name: str
    set_id: int
    total: int  # distinct images in the study
    imported: int = 0  # texts stored and used downstream
    flagged: int = 0  # texts an output check flagged (used unless excluded)
    excluded: int = 0  # flagged texts kept apart (exclude_flagged)
    missing: int = 0  # distinct images without a description in the set afterwards
    problems: list[tuple[str, str]] = field(default_factory=list)  # (row, reason)


IMAGE_COLUMNS = ("image", "path", "file", "filename", "sha256")
TEXT_COLUMNS = ("text", "description", "caption")


def _rows(path: Path) -> list[dict]:
    if path.suffix.lower() in {".jsonl", ".ndjson", ".json"}:
        rows = []
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError as exc:
                    raise UserError(f"{path}:{n}: not a JSON line ({exc})") from None
                if not isinstance(rec, dict):
                    raise UserError(f"{path}:{n}: expected a JSON object with image and text")
                rows.append(rec)
        return rows
    with open(path, encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def _pick(rec: dict, names: tuple[str, ...]) -> str | None:
    lower = {str(k).strip().lower(): v for k, v in rec.items() if k is not None}
    for name in names:
        if lower.get(name) not in (None, ""):
            return str(lower[name])
    return None


def import_file(
    study: Study,
    path: str | os.PathLike,
    *,
    name: str | None = None,
    check=None,
    exclude_flagged: bool = False,
) -> ImportSummary:
    """Store a file's texts as a description set.

    ``check``: None (store as given) or a function text -> reason or None; a flagged text is stored as 'ok'
    with the reason (used, and listed as flagged), or as 'flagged' (kept apart) with ``exclude_flagged``.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    rows = _rows(path)
    if not rows:
        raise UserError(f"{path}: no rows")
    if _pick(rows[0], IMAGE_COLUMNS) is None or _pick(rows[0], TEXT_COLUMNS) is None:
        raise UserError(f"{path}: needs the columns image and text (found: {', '.join(map(str, rows[0]))})")

    images = study.images()
    by_path = {r["path"]: r["sha256"] for r in images}
    by_name: dict[str, set[str]] = defaultdict(set)
    for r in images:
        by_name[r["path"].rsplit("/", 1)[-1]].add(r["sha256"])
    shas = {r["sha256"] for r in images}
    root = study.images_root.resolve()

    def resolve(ref: str) -> tuple[str | None, str | None]:
        ref = ref.strip().replace("\\", "/")
        if ref in by_path:
            return by_path[ref], None
        if ref.lower() in shas:
            return ref.lower(), None
        p = Path(ref)
        if p.is_absolute():
            try:
                rel = p.resolve().relative_to(root).as_posix()
            except ValueError:
                return None, "not under the study's images root"
            return (by_path[rel], None) if rel in by_path else (None, "not an image of the study")
        if ref.startswith("./") and ref[2:] in by_path:
            return by_path[ref[2:]], None
        found = by_name.get(ref.rsplit("/", 1)[-1], set())
        if len(found) == 1 and "/" not in ref:
            return next(iter(found)), None
        if len(found) > 1:
            return None, "file name is ambiguous; give the path relative to the images root"
        return None, "not an image of the study"

    set_name = name or f"imported:{path.stem}"
    set_id = study.description_set(set_name, "import", None, None, {"file": path.name})
    summary = ImportSummary(set_name, set_id, total=len(study.unique_images()))
    seen: set[str] = set()
    with study.transaction():
        for n, rec in enumerate(rows, 2 if path.suffix.lower() == ".csv" else 1):
            ref, text = _pick(rec, IMAGE_COLUMNS), _pick(rec, TEXT_COLUMNS)
            label = f"row {n}" + (f" ({ref})" if ref else "")
            if not ref or text is None or not text.strip():
                summary.problems.append((label, "missing image or text"))
                continue
            sha, why = resolve(ref)
            if sha is None:
                summary.problems.append((label, why or "unknown image"))
                continue
            if sha in seen:
                summary.problems.append((label, "a second text for the same image (the last one is kept)"))
            seen.add(sha)
            problem = check(text) if check else None
            status = "flagged" if problem and exclude_flagged else "ok"
            study.put_description(set_id, sha, text.strip(), status, problem, None, 1)
            if problem:
                kept = "left out" if exclude_flagged else "kept"
                summary.problems.append((label, f"flagged ({kept}): {problem}"))
    have = {r["sha256"] for r in study.description_rows(set_id)}
    summary.missing = sum(1 for r in study.unique_images() if r["sha256"] not in have)
    rows = study.description_rows(set_id)
    summary.imported = sum(1 for r in rows if r["status"] == "ok")
    summary.flagged = sum(1 for r in rows if r["reason"] and r["status"] in ("ok", "flagged"))
    summary.excluded = sum(1 for r in rows if r["status"] == "flagged")
    return summary
