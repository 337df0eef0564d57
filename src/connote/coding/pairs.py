"""RQ1: clustering quality from human-rated image pairs.

The study behind connote drew 500 random image pairs; coders, blind to the clusters, rated each pair for
denotative similarity (what the images show) and connotative similarity (what they mean) on 0 unrelated,
1 loosely related, 2 closely related; disagreements were discussed in consensus rounds. A clustering's
quality is the mean rating of pairs it puts in the same cluster minus the mean rating of pairs it puts in
different clusters (Grimmer & King 2011), counted only with at least 25 pairs on each side.

    sample_pairs(study, n=500, seed=42)        -> pairs stored in the study, a coding sheet written
    import_ratings(study, "coder1.csv")        -> ratings stored (re-importing updates, never deletes)
    score_pairs(study)                         -> agreement between coders, and quality of every run

The coding sheet is STUDY/validation/NAME/coding.html: one self-contained page (thumbnails beside it)
that keeps every rating in the browser as it is clicked and downloads them as a CSV for
:func:`import_ratings`. STUDY/validation/NAME/ratings-template.csv is the same for a spreadsheet.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path

from connote import numbers
from connote.coding.files import (
    CONSENSUS,
    DIMENSIONS,
    Imported,
    RunSetting,
    answerer,
    check_name,
    item_number,
    last_wins,
    read_table,
    read_text,
    run_setting,
    sample_folder,
    store_import,
    store_sample,
    thumbnails,
    whole_number,
    write_csv,
    write_page,
)
from connote.defaults import DEFAULT_PAIRS, DEFAULT_SEED
from connote.errors import UserError
from connote.safe_write import write_text
from connote.study import Study
from connote.tables import in_line_order

SCALE = {0: "unrelated", 1: "loosely related", 2: "closely related"}
#: Words accepted in a ratings file besides 0, 1 and 2.
WORDS = {"unrelated": 0, "loosely": 1, "loosely related": 1, "closely": 2, "closely related": 2}
MIN_PAIRS = 25


# ---------------------------------------------------------------------------------------------- sampling
def draw_pairs(n_items: int, n: int, seed: int | None) -> list[tuple[int, int]]:
    """``n`` distinct unordered pairs of distinct items out of ``n_items``, uniformly at random, each in a
    random order (which image is shown left)."""
    total = n_items * (n_items - 1) // 2
    if n > total:
        raise ValueError(f"only {total} distinct pairs of {n_items} items")
    rng = random.Random(seed)
    if n > total // 2:  # dense: draw from the list of all pairs
        chosen = rng.sample([(a, b) for a in range(n_items) for b in range(a + 1, n_items)], n)
    else:
        seen: set[tuple[int, int]] = set()
        chosen = []
        while len(chosen) < n:
            a, b = rng.sample(range(n_items), 2)
            key = (min(a, b), max(a, b))
            if key not in seen:
                seen.add(key)
                chosen.append(key)
    return [(a, b) if rng.random() < 0.5 else (b, a) for a, b in chosen]


@dataclass
class PairSample:
    name: str
    n_pairs: int
    n_images: int
    sheet: Path
    template: Path
    notes: list[str] = field(default_factory=list)


def sample_pairs(
    study,
    n: int = DEFAULT_PAIRS,
    *,
    seed: int | None = DEFAULT_SEED,
    name: str | None = None,
    thumb_size: int = 320,
    progress: bool = True,
) -> PairSample:
    """Draw ``n`` random pairs of distinct images (distinct contents: copies of one file count once),
    store them in the study under ``name`` and write the coding sheet."""

    study = Study.of(study)
    if n < 1:
        raise UserError(f"the number of pairs must be at least 1, got {n}")
    name = check_name(name or "pairs")
    images = study.unique_images()
    if len(images) < 2:
        raise UserError(f"{len(images)} usable image(s): at least 2 are needed to draw pairs")
    notes = []
    total = len(images) * (len(images) - 1) // 2
    if n > total:
        notes.append(f"{len(images)} images make only {total} distinct pairs: all of them are drawn")
        n = total
    picked = draw_pairs(len(images), n, seed)
    pairs = [(images[a]["sha256"], images[b]["sha256"]) for a, b in picked]
    params = {
        "n": n,
        "images": len(images),
        "method": "uniform random distinct unordered pairs of distinct images, random left/right",
        "scale": SCALE,
        "min_pairs_per_side": MIN_PAIRS,
    }
    sheet, template = store_sample(
        study, "pair_samples", name, [s for p in pairs for s in p], thumb_size, progress,
        lambda then: study.add_pair_sample(name, seed, params, pairs, then=then), write_sheet,
    )  # fmt: skip
    return PairSample(name, n, len(images), sheet, template, notes)


def write_sheet(study, name: str | None = None, *, thumb_size: int = 320, progress: bool = True):
    """(Re)write STUDY/validation/NAME/coding.html, its thumbnails and ratings-template.csv."""
    sample = study.pair_sample(name)
    out = sample_folder(study, sample["name"])
    out.mkdir(parents=True, exist_ok=True)
    pairs = study.pairs(sample["id"])
    shas = [s for p in pairs for s in (p["sha_a"], p["sha_b"])]
    thumbs, paths = thumbnails(study, shas, out / "thumbs", thumb_size, progress)
    items = [
        {
            "pos": p["pos"],
            "a": thumbs.get(p["sha_a"], ""),
            "b": thumbs.get(p["sha_b"], ""),
            "path_a": paths.get(p["sha_a"], p["sha_a"]),
            "path_b": paths.get(p["sha_b"], p["sha_b"]),
        }
        for p in pairs
    ]
    sheet = write_page(
        study, sample, "pairs.html.j2", out / "coding.html", n=len(items), items=items, scale=SCALE
    )
    template = write_csv(
        out / "ratings-template.csv",
        [
            {
                "pair": it["pos"],
                "coder": "",
                "denotative": "",
                "connotative": "",
                "image_a": it["path_a"],
                "image_b": it["path_b"],
            }
            for it in items
        ],
    )
    return sheet, template


# ---------------------------------------------------------------------------------------------- import
def _value(raw: str) -> int | None:
    text = raw.strip().lower()
    if not text:
        return None
    if text in WORDS:
        return WORDS[text]
    try:
        number = whole_number(text, "rating")
    except ValueError:
        shown = raw.strip() if len(raw.strip()) <= 40 else raw.strip()[:40] + "..."
        raise ValueError(
            f"{shown!r} is not a rating: use 0 (unrelated), 1 (loosely) or 2 (closely related) "
            f"or {', '.join(sorted(WORDS))}"
        ) from None
    if number not in (0, 1, 2):
        raise ValueError(
            f"{raw.strip()!r} is not a rating: use 0 (unrelated), 1 (loosely) or 2 (closely related)"
        )
    return number


def read_ratings(text: str, source: str, *, valid_pairs: set[int], coder: str | None):
    """Parse a ratings CSV: ``(rows, problems, notes)`` with rows ``(pair, coder, dimension, value)``.
    A bad line is reported as 'SOURCE:LINE: reason' and skipped whole (a line with one bad rating
    stores neither); blank cells are simply not rated. When a pair is rated twice by one coder the later
    line wins, and a note names both lines."""
    table, fields = read_table(text, source)
    if "pair" not in fields:
        raise UserError(f"{source}: no 'pair' column (found: {', '.join(fields) or 'nothing'})")
    dims = [d for d in DIMENSIONS if d in fields]
    if not dims:
        raise UserError(f"{source}: no 'denotative' or 'connotative' column")
    if coder is None and "coder" not in fields:
        raise UserError(f"{source}: no 'coder' column; name the coder with --coder NAME")
    rows, wheres, problems = [], [], list(table.problems)
    for record in table:
        raw_pair = record.values["pair"].strip()
        cells = {d: record.values[d] for d in dims}
        if not raw_pair and not any(c.strip() for c in cells.values()):
            continue  # an empty line
        try:
            pos = item_number(raw_pair, valid_pairs, "pair")
            who = answerer(record.values, coder, "coder")
            values = {}
            for d in dims:
                try:
                    values[d] = _value(cells[d])
                except ValueError as exc:
                    raise ValueError(f"{d}: {exc}") from None
        except ValueError as exc:
            problems.append(f"{record.where}: {exc}; line skipped")
            continue
        for d, v in values.items():
            if v is not None:
                rows.append((pos, who, d, v))
                wheres.append(record.where)
    rows, notes = last_wins(rows, wheres, 3, lambda r: f"pair {r[0]}, coder {r[1]!r}, {r[2]}")
    notes += [
        f"{source}: no {d!r} column: only {' and '.join(dims)} ratings were imported from this file"
        for d in DIMENSIONS
        if d not in dims
    ]
    return rows, in_line_order(problems, source), notes


def import_ratings(
    study,
    path: str | Path,
    *,
    name: str | None = None,
    coder: str | None = None,
    consensus: bool = False,
) -> Imported:
    """Store the ratings in a CSV (the coding sheet's download, or the filled template). Ratings already
    stored for the same pair, coder and dimension are updated; nothing else is touched. ``consensus``
    imports the ratings agreed in a consensus round (they take precedence over the coders' own).
    A file that stores no rating is an error."""

    study = Study.of(study)
    path = Path(path)
    text = read_text(path)
    sample = study.pair_sample(name)
    valid = {p["pos"] for p in study.pairs(sample["id"])}
    rows, problems, notes = read_ratings(
        text, str(path), valid_pairs=valid, coder=CONSENSUS if consensus else coder
    )
    return store_import(study, sample, path, rows, problems, study.put_ratings, notes)


# ---------------------------------------------------------------------------------------------- scoring
@dataclass
class Agreement:
    dimension: str
    alpha: float  # Krippendorff's alpha, ordinal, between the coders (not the consensus)
    coders: int
    pairs: int  # pairs rated by at least two coders


@dataclass
class RunScore(RunSetting):
    quality: dict  # dimension -> connote.evaluate.quality.Quality
    f1: dict  # dimension -> connote.evaluate.quality.PairScores
    by_coders: dict = field(default_factory=dict)  # 'humans'/'llm'/'all' -> dimension -> Quality (LLM rated)


@dataclass
class PairReport:
    sample: str
    n_pairs: int
    n_rated: dict  # dimension -> pairs with a rating
    agreement: list[Agreement]
    runs: list[RunScore]
    notes: list[str] = field(default_factory=list)
    folder: Path | None = None  # where scores.csv and quality.svg were written
    coders: str = "humans"  # whose ratings the quality is computed from: humans, llm or all
    llm_coders: list[str] = field(default_factory=list)
    llm_agreement: list[dict] = field(default_factory=list)  # alpha of each LLM coder with each human
    order_agreement: dict = field(default_factory=dict)  # LLM coder -> (A,B) vs (B,A) per dimension

    def to_rows(self) -> list[dict]:
        out = []
        for r in self.runs:
            row = {
                "run": r.run_id,
                "features": r.features,
                "reduce": r.reduce,
                "min_cluster_size": r.min_cluster_size,
                "seed": r.seed,
                "clusters": r.n_clusters,
            }
            for d in DIMENSIONS:
                q, f = r.quality[d], r.f1[d]
                row[f"{d}_quality"] = _round(q.score)
                row[f"{d}_mean_same"] = _round(q.mean_same)
                row[f"{d}_mean_different"] = _round(q.mean_different)
                row[f"{d}_pairs_same"] = q.n_same
                row[f"{d}_pairs_different"] = q.n_different
                row[f"{d}_f1"] = _round(f.f1)
            for group, quality in r.by_coders.items():  # with LLM ratings: each source of ratings apart
                for d in DIMENSIONS:
                    row[f"{group}_{d}_quality"] = _round(quality[d].score)
            out.append(row)
        return out


def _round(x: float) -> float | None:
    return None if x is None or math.isnan(x) else round(float(x), 4)


def pair_values(pairs, ratings) -> tuple[dict, dict, list[str]]:
    """(consensus value per dimension and pair, each coder's ratings, coders). The value of a pair is the
    consensus round's rating where there is one, else the mean of the coders' ratings."""
    own: dict[str, dict[str, dict[int, int]]] = {d: {} for d in DIMENSIONS}
    agreed: dict[str, dict[int, int]] = {d: {} for d in DIMENSIONS}
    for r in ratings:
        if r["coder"] == CONSENSUS:
            agreed[r["dimension"]][r["pos"]] = r["value"]
        else:
            own[r["dimension"]].setdefault(r["coder"], {})[r["pos"]] = r["value"]
    coders = sorted({c for d in DIMENSIONS for c in own[d]})
    values: dict[str, dict[int, float]] = {d: {} for d in DIMENSIONS}
    for d in DIMENSIONS:
        for p in pairs:
            pos = p["pos"]
            if pos in agreed[d]:
                values[d][pos] = float(agreed[d][pos])
            else:
                given = [own[d][c][pos] for c in own[d] if pos in own[d][c]]
                if given:
                    values[d][pos] = sum(given) / len(given)
    return values, own, coders


def score_pairs(
    study, *, name: str | None = None, runs=None, threshold: float = 1.5, coders: str | None = None
) -> PairReport:
    """Agreement between the coders and the quality of each run (all runs unless ``runs`` lists ids).

    ``threshold``: a pair counts as related for pair-counting F1 when its value is at least this (1.5: a
    consensus of 'closely related', or coders who on average lean to it). ``coders``: whose ratings make
    the quality, ``humans``, ``llm`` (LLM coders, :mod:`connote.coding.llm`) or ``all`` (default humans
    when there are any); LLM ratings are never mixed into the humans' agreement."""
    from connote.coding import llm_scores
    from connote.evaluate import cluster_quality, krippendorff_alpha, rated_pair_scores

    wanted = None if runs is None else {numbers.run_id(r, "--runs: run ids") for r in runs}
    study = Study.of(study)
    sample = study.pair_sample(name)
    pairs = study.pairs(sample["id"])
    ratings = study.ratings(sample["id"])
    if not ratings:
        raise UserError(
            f"no ratings for pair sample {sample['name']!r} yet: rate the pairs in "
            f"{sample_folder(study, sample['name']) / 'coding.html'} and `connote pairs import` the download"
        )
    human_ratings, llm_ratings = llm_scores.split_ratings(ratings)
    which = coders or ("humans" if human_ratings else "llm")
    if which not in llm_scores.GROUPS:
        raise UserError(f"--coders {which!r}: choose humans, llm or all")
    if not {"humans": human_ratings, "llm": llm_ratings}.get(which, True):
        who = "human coders" if which == "humans" else "an LLM coder (`connote pairs rate --llm`)"
        raise UserError(f"--coders {which}: no ratings by {who} in pair sample {sample['name']!r}")
    values, own, human_coders = pair_values(pairs, human_ratings)
    llm_values, own_llm, llm_coders = pair_values(pairs, llm_ratings)
    by_group = {"humans": values, "llm": llm_values, "all": llm_scores.combine(values, llm_values)}
    human_values = values
    values = by_group[which]
    agreement = []
    for d in DIMENSIONS:
        table = [[own[d].get(c, {}).get(p["pos"]) for p in pairs] for c in human_coders]
        both = sum(1 for i in range(len(pairs)) if sum(row[i] is not None for row in table) >= 2)
        alpha = krippendorff_alpha(table, "ordinal") if len(human_coders) >= 2 else float("nan")
        agreement.append(Agreement(d, alpha, len(human_coders), both))

    scores = []
    for run in study.runs():
        if wanted is not None and run["id"] not in wanted:
            continue
        assign = study.assignments(run["id"])
        la = [assign.get(p["sha_a"]) for p in pairs]
        lb = [assign.get(p["sha_b"]) for p in pairs]
        quality, f1 = {}, {}
        for d in DIMENSIONS:
            r = [values[d].get(p["pos"], float("nan")) for p in pairs]
            quality[d] = cluster_quality(la, lb, r, min_pairs=MIN_PAIRS)
            f1[d] = rated_pair_scores(la, lb, r, threshold=threshold)
        by_coders = {}
        for group, vals in by_group.items() if llm_ratings else ():
            by_coders[group] = {
                d: cluster_quality(
                    la, lb, [vals[d].get(p["pos"], float("nan")) for p in pairs], min_pairs=MIN_PAIRS
                )
                for d in DIMENSIONS
            }
        scores.append(RunScore(**run_setting(run), quality=quality, f1=f1, by_coders=by_coders))
    if wanted is not None and len(scores) < len(wanted):
        missing = sorted(wanted - {s.run_id for s in scores})
        raise UserError(f"no run(s) {', '.join(map(str, missing))}; see `connote runs`")
    notes = []
    short = [s.run_id for s in scores if any(math.isnan(s.quality[d].score) for d in DIMENSIONS)]
    if short:
        notes.append(
            f"{len(short)} run(s) have fewer than {MIN_PAIRS} rated pairs on one side (same or different "
            "cluster), so no quality score, as in the study: draw and rate a larger sample (`connote pairs "
            "sample STUDY --n 1000 --name larger`) or use fewer, larger clusters"
        )
    n_rated = {d: len(values[d]) for d in DIMENSIONS}
    report = PairReport(sample["name"], len(pairs), n_rated, agreement, scores, notes, coders=which)
    report.llm_coders = llm_coders
    report.llm_agreement = llm_scores.llm_agreement(
        pairs, own, human_coders, human_values, own_llm, llm_coders
    )
    report.order_agreement = {
        m: llm_scores.order_agreement(ratings, m)
        for m in llm_coders
        if any(r["coder"] == m + llm_scores.REVERSED for r in ratings)
    }
    report.folder = write_scores(study, report).parent
    return report


def write_scores(study, report: PairReport) -> Path:
    """STUDY/validation/NAME/scores.csv (one row per run) and quality.svg (box plots per setting)."""
    from connote.reports.svg import boxplot_svg

    out = sample_folder(study, report.sample)
    out.mkdir(parents=True, exist_ok=True)
    path = write_csv(out / "scores.csv", report.to_rows())
    panels = []
    for d in DIMENSIONS:
        groups: dict[str, list[float]] = {}
        for r in report.runs:
            q = r.quality[d].score
            if not math.isnan(q):
                groups.setdefault(r.setting(), []).append(q)
        panels.append((f"{d} quality (same - different cluster)", groups))
    write_text(
        out / "quality.svg", boxplot_svg(panels, title=f"Cluster quality from rated pairs ({report.sample})")
    )
    return path
