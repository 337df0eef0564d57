"""Import descriptions made elsewhere (CSV or JSONL with the columns ``image`` and ``text``).

``image`` may be a path relative to the study's images root, a file name (when it is unique in the
study), an absolute path under the root, or an image's sha256. The rows become a description set named
``imported:STEM`` (or ``--name``). What the user gives is stored as given: the output checks (made for
vision-LLM outputs) run only when asked (``check``), and then a flagged text is kept and used, with its
reason noted, unless ``exclude_flagged`` keeps it apart (status 'flagged', like a describer's). The file
is read by :mod:`connote.tables` (any common encoding, bad lines named by line and left out).
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from connote.errors import UserError
from connote.study import Study
from connote.tables import in_line_order, read_table_file


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
    skipped: int = 0  # lines left out (the rest of the problems are notes: overrides, flags)


IMAGE_COLUMNS = ("image", "path", "file", "filename", "sha256")
TEXT_COLUMNS = ("text", "description", "caption")


def import_file(
    study: Study,
    path: str | os.PathLike,
    *,
    name: str | None = None,
    check=None,
    exclude_flagged: bool = False,
) -> ImportSummary:
    """Store the descriptions in ``path`` (CSV or JSON lines, read by :mod:`connote.tables`). A bad line
    is named ('FILE:LINE', reason) and left out; a second text for an image overrides the first, and
    the problem names both lines. A file that stores nothing is an error, and no set is made for it.

    ``check``: None (store as given) or a function text -> reason or None; a flagged text is stored as 'ok'
    with the reason (used, and listed as flagged), or as 'flagged' (kept apart) with ``exclude_flagged``.
    """
    path = Path(path)
    table = read_table_file(path)
    if not table.rows and not table.problems:
        raise UserError(f"{path}: no rows")
    image_col = next((c for c in IMAGE_COLUMNS if c in table.columns), None)
    text_col = next((c for c in TEXT_COLUMNS if c in table.columns), None)
    if table.rows and (image_col is None or text_col is None):
        found = ", ".join(repr(c) for c in table.columns[:20]) or "none"
        raise UserError(f"{path}: needs the columns image and text (found: {found})")

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
            except (ValueError, OSError):
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

    problems: list[tuple[str, str]] = [tuple(p.split(": ", 1)) for p in table.problems]
    chosen: dict[str, tuple[str, str]] = {}  # sha256 -> (where, text); a later line overrides
    for row in table:
        ref, text = row.values.get(image_col, "").strip(), row.values.get(text_col, "")
        label = row.where
        shown = repr(ref if len(ref) <= 200 else ref[:200] + "...")
        if not ref or not text.strip():
            problems.append((label, "missing image or text; line skipped"))
            continue
        sha, why = resolve(ref)
        if sha is None:
            problems.append((label, f"image {shown}: {why or 'unknown image'}; line skipped"))
            continue
        if sha in chosen:
            earlier = chosen[sha][0].rsplit(":", 1)[-1]
            problems.append(
                (
                    label,
                    f"image {shown}: a second text for the same image: this line overrides line {earlier}",
                )
            )
        chosen[sha] = (row.where, text.strip())
    if not chosen:
        shown = "; ".join(f"{w}: {r}" for w, r in problems[:3])
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise UserError(f"{path}: nothing to import, no description set made ({shown}{more})")

    set_name = name or f"imported:{path.stem}"
    with study.transaction():
        set_id = study.description_set(set_name, "import", None, None, {"file": path.name})
        summary = ImportSummary(set_name, set_id, total=len(study.unique_images()))
        for sha, (where, text) in chosen.items():
            problem = check(text) if check else None
            status = "flagged" if problem and exclude_flagged else "ok"
            study.put_description(set_id, sha, text, status, problem, None, 1)
            if problem:
                kept = "left out" if exclude_flagged else "kept"
                problems.append((where, f"flagged ({kept}): {problem}"))
    order = {w: i for i, w in enumerate(in_line_order([f"{w}: " for w, _ in problems], str(path)))}
    summary.problems = sorted(problems, key=lambda p: order.get(f"{p[0]}: ", 0))
    n = len(table.problems)  # the reader's: all lines left out
    summary.skipped = n + sum(1 for _, r in problems[n:] if r.endswith("; line skipped"))
    rows = study.description_rows(set_id)
    have = {r["sha256"] for r in rows}
    summary.missing = sum(1 for r in study.unique_images() if r["sha256"] not in have)
    summary.imported = sum(1 for r in rows if r["status"] == "ok")
    summary.flagged = sum(1 for r in rows if r["reason"] and r["status"] in ("ok", "flagged"))
    summary.excluded = sum(1 for r in rows if r["status"] == "flagged")
    return summary
