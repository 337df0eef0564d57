"""The study index (``report/index.html``): every run in one sortable, filterable table with its
stability across seeds and its validation scores, the quality box plots per setting, the validation
samples with their progress, and a page comparing two runs (``report/compare.html``)."""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

from connote.errors import UserError
from connote.reports.svg import boxplot_svg
from connote.study import reporting

log = logging.getLogger(__name__)

DIMENSIONS = ("denotative", "connotative")


def setting_label(run) -> str:
    s = f"{run['features']} {run['reduce']} mcs={run['min_cluster_size']}"
    if run["min_samples"] is not None:
        s += f" ms={run['min_samples']}"
    return s


def stability(study, runs) -> dict[int, dict]:
    """run id -> {ari, seeds, verdict} for settings run with two seeds or more (mean adjusted Rand index
    over every pair of seeds, on the images both runs clustered; connote.evaluate.stability)."""
    from connote.evaluate.stability import group_by_setting, seed_stability

    out: dict[int, dict] = {}
    for members in group_by_setting(runs).values():
        by_seed: dict = {}
        for r in members:
            by_seed.setdefault(r["seed"], r)  # one run per seed
        if len(by_seed) < 2:
            continue
        labels = {
            seed: {s: c for s, (c, _) in reporting.memberships(study, int(r["id"])).items()}
            for seed, r in by_seed.items()
        }
        st = seed_stability(labels)
        for r in members:
            out[int(r["id"])] = {"ari": st.mean_ari, "seeds": len(by_seed), "verdict": st.verdict()}
    return out


def quality_scores(study) -> tuple[dict[int, dict], str | None, str | None, list[str]]:
    """run id -> {dimension: quality} from the first pair sample with ratings, the box plots (SVG),
    the sample's name, and notes on what could not be scored."""
    from connote.coding import pairs

    notes: list[str] = []
    for sample in study.pair_samples():
        if not study.ratings(sample["id"]):
            continue
        try:
            rep = pairs.score_pairs(study, name=sample["name"])
        except UserError as exc:
            notes.append(f"pair sample {sample['name']}: {exc}")
            continue
        out: dict[int, dict] = {}
        panels = []
        for d in DIMENSIONS:
            groups: dict[str, list[float]] = {}
            for r in rep.runs:
                q = r.by_coders.get("humans", r.quality)[d].score  # never an LLM coder's (llm_columns)
                out.setdefault(r.run_id, {})[d] = None if math.isnan(q) else q
                if not math.isnan(q):
                    groups.setdefault(r.setting(), []).append(q)
            panels.append((f"{d} quality", groups))
        svg = boxplot_svg(panels, title=f"Cluster quality per setting over seeds (pairs: {rep.sample})")
        notes.extend(rep.notes)
        return out, svg, sample["name"], notes
    return {}, None, None, notes


def accuracy_scores(study) -> tuple[dict[int, dict], list[str]]:
    """run id -> {accuracy, sample, kappa} for runs tested with image sets that have answers."""
    from connote.coding import sets

    out: dict[int, dict] = {}
    notes: list[str] = []
    for sample in study.set_samples():
        if not study.set_answers(sample["id"]):
            continue
        try:
            rep = sets.score_sets(study, name=sample["name"])
        except UserError as exc:
            notes.append(f"set sample {sample['name']}: {exc}")
            continue
        if set(rep.evaluators) <= set(rep.llm_evaluators):
            continue  # only an LLM answered: its accuracy goes in the LLM columns (llm_columns)
        out.setdefault(
            int(rep.run_id), {"accuracy": rep.scores.accuracy, "sample": rep.sample, "kappa": rep.kappa}
        )
    return out, notes


# ---------------------------------------------------------------------------------------------- codes
def codes_scores(study) -> dict:
    """The runs scored against the codes ``connote codes`` was last asked about (remembered in the study):
    {columns, runs: run id -> {quality, ari: {column: ARI}}, svg: box plots per setting over seeds, how,
    notes}; empty columns when none were scored."""
    from connote.coding.codes import remembered_columns, score_codes

    columns = remembered_columns(study)
    out: dict = {"columns": [], "runs": {}, "svg": None, "how": None, "notes": []}
    if not columns:
        return out
    try:
        rep = score_codes(study, columns, remember=False)
    except UserError as exc:
        out["notes"].append(f"codes ({', '.join(columns)}): {exc}")
        return out
    scored = [c.name for c in rep.columns if not c.multi]
    out.update(columns=scored, how=rep.pairs.describe(), notes=list(rep.notes))
    panels: list[tuple[str, dict[str, list[float]]]] = [(f"ARI {c}", {}) for c in scored]
    panels.append(("quality from the codes", {}))
    for r in rep.runs:
        row = r.to_dict()
        out["runs"][r.run_id] = {
            "quality": row["quality"],
            "ari": {c: row["columns"].get(c, {}).get("ari") for c in scored},
        }
        values = [*(row["columns"].get(c, {}).get("ari") for c in scored), row["quality"]]
        for (_, groups), v in zip(panels, values):
            if v is not None:
                groups.setdefault(r.setting(), []).append(v)
    out["svg"] = boxplot_svg(
        panels, title=f"Agreement with the codes per setting over seeds ({', '.join(columns)})"
    )
    return out


def _num(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def index_context(study, out: Path) -> dict:
    runs = study.runs()
    sets = {r["name"]: r for r in study.description_sets()}
    stab = stability(study, runs)
    quality, svg, pair_sample, notes = quality_scores(study)
    accuracy, more = accuracy_scores(study)
    origins = study.derivations()
    notes += more
    rows = []
    for r in runs:
        rid = int(r["id"])
        ds = sets.get(r["description_set"]) if r["description_set"] else None
        page = out / f"run-{rid}" / "index.html"
        q = quality.get(rid, {})
        a = accuracy.get(rid)
        n = r["n_items"] or 0
        rows.append(
            {
                "id": rid,
                "href": f"run-{rid}/index.html",
                "rendered": page.is_file(),
                "features": r["features"],
                "description_set": r["description_set"] or "",
                "describer": ds["describer"] if ds else "",
                "embedder": r["embedder"],
                "reduce": r["reduce"],
                "setting": setting_label(r),
                "min_cluster_size": r["min_cluster_size"],
                "seed": r["seed"],
                # of several seeds, the representative one: which seeds ran and why this one was kept
                "kept": reporting.run_record(r).get("seeds"),
                "n_items": n,
                "n_clusters": r["n_clusters"],
                "outlier_share": (r["n_outliers"] / n) if n else 0.0,
                "ari": _num(stab.get(rid, {}).get("ari")),
                "seeds": stab.get(rid, {}).get("seeds"),
                "verdict": stab.get(rid, {}).get("verdict"),
                "den": _num(q.get("denotative")),
                "con": _num(q.get("connotative")),
                "accuracy": _num(a["accuracy"]) if a else None,
                "label": "; ".join(
                    x
                    for x in (
                        r["label"],
                        f"{origins[rid]['kind']} of run {origins[rid]['parent']}" if rid in origins else None,
                    )
                    if x
                ),
                "created": r["created"],
            }
        )
    llm_agreement = llm_columns(study, rows)
    codes = codes_scores(study)
    for row in rows:
        row["codes"] = codes["runs"].get(row["id"], {})
    validation = []
    for v in reporting.validation_progress(study):
        sheet = "coding.html" if v["kind"] == "pairs" else "matching.html"
        target = Path(study.path) / "validation" / v["name"] / sheet
        v["href"] = os.path.relpath(target, out).replace(os.sep, "/") if target.is_file() else None
        v["share"] = f"{100 * v['done'] / v['size']:.0f}%" if v["size"] else "0%"
        validation.append(v)
    return {
        "rows": rows,
        "quality_svg": svg,
        "codes": codes,
        "pair_sample": pair_sample,
        "validation": validation,
        "notes": notes,
        "llm_agreement": llm_agreement,
        "n_images": len(study.unique_images()),
        "sets": [dict(name=s["name"], describer=s["describer"], model=s["model"]) for s in sets.values()],
    }


# ---------------------------------------------------------------------------------------------- LLM coders
def llm_columns(study, rows: list[dict]) -> list[str]:
    """Fill each row's LLM columns (``llm_den``, ``llm_con``: quality from an LLM coder's ratings of the
    first pair sample it rated; ``llm_accuracy``: an LLM evaluator's accuracy on the run's sets), never
    mixed into the humans' columns; returns the lines on its agreement with the humans shown beside them
    (empty when no LLM coded anything: the columns are not shown)."""
    from connote.coding import llm_scores, pairs, sets

    lines: list[str] = []
    quality: dict[int, dict] = {}
    for sample in study.pair_samples():
        ratings = study.ratings(sample["id"])
        if not llm_scores.split_ratings(ratings)[1]:
            continue
        try:
            rep = pairs.score_pairs(study, name=sample["name"], coders="llm")
        except UserError:
            continue
        quality = {r.run_id: {d: _num(r.quality[d].score) for d in DIMENSIONS} for r in rep.runs}
        for a in rep.llm_agreement:
            if a["with"] == "(humans)" and a["pairs"]:
                lines.append(
                    f"pairs {rep.sample}: {a['llm']} / the humans, {a['dimension']}: Krippendorff's alpha "
                    f"{a['alpha']:.3f} on {a['pairs']} pair(s) rated by both"
                )
        break
    accuracy: dict[int, float | None] = {}
    for sample in study.set_samples():
        if not any(llm_scores.is_machine(a["source"]) for a in study.set_answers(sample["id"])):
            continue
        try:
            set_rep = sets.score_sets(study, name=sample["name"])
        except UserError:
            continue
        for who, acc in set_rep.llm_accuracy.items():
            accuracy.setdefault(int(set_rep.run_id), _num(acc))
            lines += [
                f"sets {set_rep.sample}: {k['llm']} / {k['with']}: Cohen's kappa {k['kappa']:.3f} on {k['sets']} set(s)"
                for k in set_rep.llm_kappa
                if k["llm"] == who and not math.isnan(k["kappa"])
            ]
    for row in rows:
        q = quality.get(row["id"], {})
        row["llm_den"], row["llm_con"] = q.get("denotative"), q.get("connotative")
        row["llm_accuracy"] = accuracy.get(row["id"])
    if not (quality or accuracy):
        return []
    return lines or ["an LLM coded, but no pair or set was coded by a human as well: no agreement to show"]
