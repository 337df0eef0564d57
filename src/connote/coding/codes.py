"""Score every run against codes the team already has (``connote codes STUDY COLUMN ...``).

The codes are metadata columns (``connote metadata STUDY codes.csv``): stance, frame, topic, actor per
image. The unit is an image *file*, as in ``connote export``: a file carries its own codes and the cluster
of its content, so an image stored under two paths counts twice, with the codes of each path. Per column,
over the files both coded and clustered (outliers left out, as in the study's quality): ARI, NMI,
homogeneity, completeness; per run one Grimmer & King quality with the codes as similarity
(:mod:`connote.evaluate.codes`). The columns scored last are remembered in the study, so that
``connote report`` shows them in the study index.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from connote.coding.files import RunSetting, run_setting
from connote.coding.pairs import MIN_PAIRS
from connote.errors import UserError
from connote.evaluate.codes import (
    MULTI_SEPARATOR,
    CodeColumn,
    LabelScores,
    Pairs,
    code_pairs,
    codes_quality,
    distinct_codes,
    label_scores,
    pair_similarity,
)
from connote.evaluate.quality import Quality
from connote.study import Study

#: Where the study keeps the columns ``connote codes`` scored last (``report`` scores them again).
CODES_META_KEY = "codes_columns"


@dataclass
class ColumnInfo:
    name: str
    type: str  # the metadata column's type (number, date, text): codes are compared as text either way
    coded: int  # image files with a code
    codes: int  # distinct codes
    multi: bool  # several codes in a cell: Jaccard in the quality, no ARI/NMI


@dataclass
class RunCodes(RunSetting):
    coded: int  # coded image files the run placed (in a cluster or among its outliers)
    outliers: int  # of those, outliers
    not_in_run: int  # coded image files the run did not cluster at all (e.g. a flagged description)
    quality: Quality | None
    columns: dict[str, LabelScores] = field(default_factory=dict)

    def to_dict(self) -> dict:
        q = self.quality
        return {
            "run": self.run_id,
            "features": self.features,
            "reduce": self.reduce,
            "min_cluster_size": self.min_cluster_size,
            "seed": self.seed,
            "clusters": self.n_clusters,
            "coded": self.coded,
            "outliers": self.outliers,
            "outlier_share": self.outliers / self.coded if self.coded else None,
            "outlier_percent": round(100 * self.outliers / self.coded, 1) if self.coded else None,
            "not_in_run": self.not_in_run,
            "quality": _num(q.score) if q else None,
            "mean_same": _num(q.mean_same) if q else None,
            "mean_different": _num(q.mean_different) if q else None,
            "pairs_same": q.n_same if q else 0,
            "pairs_different": q.n_different if q else 0,
            "columns": {
                name: {
                    "ari": _num(s.ari),
                    "nmi": _num(s.nmi),
                    "homogeneity": _num(s.homogeneity),
                    "completeness": _num(s.completeness),
                    "n": s.n,
                }
                for name, s in self.columns.items()
            },
        }


@dataclass
class CodesReport:
    columns: list[ColumnInfo]
    pairs: Pairs
    runs: list[RunCodes]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "columns": [c.__dict__ for c in self.columns],
            "pairs": {
                "coded_images": self.pairs.n_images,
                "pairs": len(self.pairs.i),
                "sampled": self.pairs.sampled,
                "seed": self.pairs.seed,
                "min_pairs_per_side": MIN_PAIRS,
                "how": self.pairs.describe(),
            },
            "runs": [r.to_dict() for r in self.runs],
            "notes": self.notes,
        }


def _num(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _select_runs(study: Study, runs) -> list:
    if runs is None or runs == "all":
        return study.runs()
    if isinstance(runs, str):
        runs = [r for r in runs.split(",") if r.strip()]
    return [study.get_run(r) for r in runs]


def load_codes(study: Study, columns: list[str]) -> tuple[list[dict], dict[str, list[str | None]]]:
    """The readable image files coded on at least one of ``columns`` (rows with ``path`` and ``sha256``,
    in path order, as ``export`` lists them) and each column's value per file (None: not coded)."""
    types = study.metadata_columns()
    if not columns:
        raise UserError("name at least one metadata column to score the runs against")
    missing = [c for c in columns if c not in types]
    if missing:
        known = ", ".join(types) or "none yet; import them with `connote metadata STUDY codes.csv`"
        raise UserError(f"no metadata column {', '.join(map(repr, missing))} (columns: {known})")
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise UserError(f"column(s) {', '.join(dupes)} named more than once")
    values = study.metadata()
    files: list[dict] = []
    cells: dict[str, list] = {c: [] for c in columns}
    for img in study.images(status="ok"):
        row = values.get(img["path"], {})
        got = {c: (row.get(c) or "").strip() or None for c in columns}
        if any(v is not None for v in got.values()):
            files.append({"path": img["path"], "sha256": img["sha256"]})
            for c in columns:
                cells[c].append(got[c])
    return files, cells


def score_codes(study, columns: list[str], *, runs="all", remember: bool = True) -> CodesReport:
    """Score ``runs`` ("all", "3,5" or a list of ids; derived runs included) against the metadata
    ``columns``. A missing column, a column with one code only, or no coded image is a :class:`UserError`;
    a run with no coded image is a note. ``remember``: keep the columns in the study for the report."""
    study = Study.of(study)
    columns = [c.strip().lower() for c in columns if c.strip()]
    files, cells = load_codes(study, columns)
    types = study.metadata_columns()
    info, coded_cols, notes = [], [], []
    for c in columns:
        vals = cells[c]
        col = CodeColumn(vals)
        codes = distinct_codes(vals, col.multi)
        n_coded = int(col.coded.sum())
        if not n_coded:
            raise UserError(f"column {c!r}: no readable image has a code in it")
        if len(codes) < 2:
            raise UserError(
                f"column {c!r} has one code only ({next(iter(codes))!r} on {n_coded} image(s)): "
                "there is nothing to tell clusters apart by"
            )
        if col.multi:
            notes.append(
                f"column {c!r} holds several codes in a cell ({MULTI_SEPARATOR!r}): in the quality two "
                "images agree on it by the Jaccard similarity of their sets; left out of ARI/NMI"
            )
        info.append(ColumnInfo(c, types[c], n_coded, len(codes), col.multi))
        coded_cols.append(col)
    chosen = _select_runs(study, runs)
    pairs = code_pairs(len(files))
    similarity = pair_similarity(coded_cols, pairs.i, pairs.j)
    out = []
    for run in chosen:
        assign = study.assignments(int(run["id"]))
        clusters = [assign.get(f["sha256"]) for f in files]
        lab = np.array([-2 if x is None else x for x in clusters], dtype=np.int64)  # -2: not in the run
        placed = lab != -2
        res = RunCodes(
            **run_setting(run),
            coded=int(placed.sum()),
            outliers=int((lab == -1).sum()),
            not_in_run=int((~placed).sum()),
            quality=None,
        )
        if not res.coded:
            notes.append(f"run {res.run_id}: none of the {len(files)} coded image(s) is in this run")
        else:
            res.quality = codes_quality(np.where(placed, lab, -1), similarity, pairs, min_pairs=MIN_PAIRS)
            scored = lab >= 0
            for c, col in zip(columns, coded_cols):
                if col.multi:
                    continue
                keep = scored & col.coded
                res.columns[c] = label_scores(col.ids[keep], lab[keep])
        out.append(res)
    short = [r.run_id for r in out if r.quality is not None and math.isnan(r.quality.score)]
    if short:
        notes.append(
            f"{len(short)} run(s) have fewer than {MIN_PAIRS} coded pairs on one side (same or different "
            f"cluster), so no quality, as in the study: run(s) {', '.join(map(str, short[:20]))}"
            + (" ..." if len(short) > 20 else "")
        )
    if remember and not study.readonly:
        study.set_meta(CODES_META_KEY, json.dumps(columns))
    return CodesReport(info, pairs, out, notes)


def remembered_columns(study: Study) -> list[str]:
    """The columns ``connote codes`` scored last (still present in the study), for the report."""
    known = study.metadata_columns()
    return [c for c in json.loads(study.get_meta(CODES_META_KEY) or "[]") if c in known]
