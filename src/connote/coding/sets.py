"""RQ2: are the cluster descriptions interpretable? Evaluators match sets of images to descriptions.

The study behind connote drew, for each cluster of a run, 5 sets of 3 images and asked evaluators to
match each set to one of the clusters' keyword descriptions (shown without cluster numbers, in no
telling order). The evaluators' majority label is compared with the set's true cluster: per-cluster
precision and recall and an overall accuracy (0.83 in the study; 0.87 after merging near-twin clusters),
with Cohen's kappa between the evaluators.

    sample_sets(study, run_id, per_cluster=5, size=3)   -> sets stored, a matching sheet written
    import_answers(study, "eva.csv")                    -> answers stored (re-importing updates)
    score_sets(study, merge={7: 3})                     -> agreement, majority labels, precision/recall

The matching sheet is STUDY/validation/NAME/matching.html (self-contained, keeps every choice in the
browser, downloads a CSV); answers-template.csv is the same for a spreadsheet.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import string
from dataclasses import dataclass, field
from pathlib import Path

from connote import numbers
from connote.coding.files import (
    Imported,
    answerer,
    check_name,
    item_number,
    last_wins,
    read_table,
    read_text,
    sample_folder,
    store_import,
    store_sample,
    thumbnails,
    write_csv,
    write_page,
)
from connote.defaults import DEFAULT_SEED, DEFAULT_SET_SIZE, DEFAULT_SETS_PER_CLUSTER, DEFAULT_TOP_K
from connote.errors import UserError
from connote.evaluate.interpretability import MatchScores
from connote.study import Study
from connote.tables import in_line_order


def codes(n: int) -> list[str]:
    """A, B, ..., Z, AA, AB, ...: labels for ``n`` descriptions."""
    out = []
    for i in range(n):
        s, i = "", i + 1
        while i:
            i, r = divmod(i - 1, 26)
            s = string.ascii_uppercase[r] + s
        out.append(s)
    return out


def draw_sets(
    members: dict[int, list[str]], per_cluster: int, size: int, seed: int | None
) -> tuple[list[tuple[int, list[str]]], list[str]]:
    """``per_cluster`` sets of ``size`` distinct images from each cluster, images reused across a
    cluster's sets only when it has fewer than ``per_cluster * size``; all sets in random order.
    Returns (sets as (cluster, images), notes)."""
    rng = random.Random(seed)
    sets, notes, shared = [], [], []
    for c in sorted(members):
        pool = list(members[c])
        if len(pool) < size:
            notes.append(f"cluster {c} has {len(pool)} image(s), fewer than a set of {size}: left out")
            continue
        if len(pool) < per_cluster * size:
            shared.append(f"{c} ({len(pool)})")
        order: list[str] = []
        for _ in range(per_cluster):
            chosen: list[str] = []
            while len(chosen) < size:
                if not order:
                    order = rng.sample(pool, len(pool))
                candidate = order.pop()
                if candidate not in chosen:
                    chosen.append(candidate)
            sets.append((c, chosen))
    rng.shuffle(sets)
    if shared:
        notes.append(
            f"{len(shared)} cluster(s) have fewer than {per_cluster} x {size} images, so their sets share "
            f"some images: {', '.join(shared)}"
        )
    return sets, notes


@dataclass
class SetSample:
    name: str
    run_id: int
    n_sets: int
    n_clusters: int
    sheet: Path
    template: Path
    notes: list[str] = field(default_factory=list)


def sample_sets(
    study,
    run_id: int | None = None,
    *,
    per_cluster: int = DEFAULT_SETS_PER_CLUSTER,
    size: int = DEFAULT_SET_SIZE,
    seed: int | None = DEFAULT_SEED,
    name: str | None = None,
    top_k: int = DEFAULT_TOP_K,
    thumb_size: int = 240,
    progress: bool = True,
    show: str = "keywords",
    labeller: str | None = None,
) -> SetSample:
    """Draw the image sets of a run's clusters (outliers never), store them with the descriptions the
    evaluators will see, and write the matching sheet. Keywords are computed first if the run has none.

    ``show`` is what evaluators match the sets to: the clusters' ``keywords`` (as the study did) or their
    ``labels`` (label and summary from `connote label`; ``labeller`` picks one, the latest by default);
    the sample records which, so that a study can compare the two."""
    from connote.explaining import explain

    if show not in ("keywords", "labels"):
        raise UserError(f"--show must be keywords or labels, not {show!r}")

    study = Study.of(study)
    if per_cluster < 1 or size < 1:
        raise UserError(f"sets per cluster and set size must be at least 1, got {per_cluster} and {size}")
    top_k = numbers.whole(top_k, "--top-k", low=1)  # 0 would show every set as "(no keywords)"
    run = study.get_run(run_id)
    name = check_name(name or f"sets-run{run['id']}")
    notes = []
    keywords = study.keywords(run["id"])
    if not keywords:
        explain(study, run["id"], top_k=top_k)
        keywords = study.keywords(run["id"])
        notes.append(f"run {run['id']} had no keywords yet: computed them (`connote explain`, top {top_k})")
    members: dict[int, list[str]] = {}
    for sha, c in sorted(study.assignments(run["id"]).items()):
        if c != -1:
            members.setdefault(c, []).append(sha)
    if len(members) < 2:
        raise UserError(f"run {run['id']} has {len(members)} cluster(s): matching needs at least 2")
    sets, draw_notes = draw_sets(members, per_cluster, size, seed)
    notes += draw_notes
    # Codes in random order, so that 'A' is not always the largest cluster.
    clusters = sorted({c for c, _ in sets})
    shuffled = random.Random(None if seed is None else seed + 1).sample(clusters, len(clusters))
    code_of = dict(zip(shuffled, codes(len(shuffled)), strict=True))
    # A list in the order of the codes (A, ..., Z, AA): the study stores params with sorted keys, and a
    # sort by string would put AA before B.
    descriptions = [
        [code, ", ".join(keywords.get(c, [])[:top_k]) or "(no keywords)"] for c, code in code_of.items()
    ]
    if show == "labels":
        names = study.labellers(run["id"])
        labeller = labeller or (names[0] if names else None)
        labels = study.labels(run["id"], labeller) if labeller in names else {}
        if not labels:
            known = ", ".join(names) or "none yet"
            raise UserError(
                f"run {run['id']} has no labels{f' by {labeller}' if labeller else ''} (labellers: {known}); "
                f"make them with `connote label {study.path} {run['id']}`"
            )
        descriptions = [
            [code, _label_text(labels[c]) if c in labels else "(no label)"] for c, code in code_of.items()
        ]
    params = {
        "run": run["id"],
        "shown": show,
        **({"labeller": labeller} if show == "labels" else {}),
        "per_cluster": per_cluster,
        "size": size,
        "top_k": top_k,
        "codes": {code: c for c, code in code_of.items()},
        "descriptions": descriptions,
        "method": "per cluster, sets of distinct images drawn at random; sets shown in random order",
    }
    sheet, template = store_sample(
        study, "set_samples", name, [s for _, st in sets for s in st], thumb_size, progress,
        lambda then: study.add_set_sample(name, run["id"], seed, params, sets, then=then), write_sheet,
    )  # fmt: skip
    return SetSample(name, run["id"], len(sets), len(clusters), sheet, template, notes)


def _label_text(row) -> str:
    return f"{row['label']}: {row['summary']}" if row["summary"] else row["label"]


def _params(sample) -> dict:
    return json.loads(sample["params"])


def write_sheet(study, name: str | None = None, *, thumb_size: int = 240, progress: bool = True):
    """(Re)write STUDY/validation/NAME/matching.html, its thumbnails and answers-template.csv."""
    sample = study.set_sample(name)
    out = sample_folder(study, sample["name"])
    out.mkdir(parents=True, exist_ok=True)
    sets = study.image_sets(sample["id"])
    thumbs, _ = thumbnails(
        study, [s for st in sets for s in st["shas"]], out / "thumbs", thumb_size, progress
    )
    items = [{"pos": st["pos"], "images": [thumbs.get(s, "") for s in st["shas"]]} for st in sets]
    sheet = write_page(
        study,
        sample,
        "sets.html.j2",
        out / "matching.html",
        n=len(items),
        items=items,
        descriptions=dict(_params(sample)["descriptions"]),
    )
    template = write_csv(
        out / "answers-template.csv",
        [{"set": it["pos"], "evaluator": "", "description": ""} for it in items],
    )
    return sheet, template


# ---------------------------------------------------------------------------------------------- import
def read_answers(
    text: str, source: str, *, valid_sets: set[int], valid_codes: set[str], evaluator: str | None
):
    """Parse an answers CSV (columns set, description, and evaluator unless given): ``(rows, problems,
    notes)``, rows ``(set, evaluator, code)``; a bad line is reported as 'SOURCE:LINE: reason' and
    skipped; a second answer for a set by one evaluator overrides the first, and a note says so."""
    table, fields = read_table(text, source)
    for needed in ("set", "description"):
        if needed not in fields:
            raise UserError(f"{source}: no {needed!r} column (found: {', '.join(fields) or 'nothing'})")
    if evaluator is None and "evaluator" not in fields:
        raise UserError(f"{source}: no 'evaluator' column; name the evaluator with --evaluator NAME")
    rows, wheres, problems = [], [], list(table.problems)
    for record in table:
        raw_set = record.values["set"].strip()
        code = record.values["description"].strip().upper()
        if not raw_set and not code:
            continue
        try:
            pos = item_number(raw_set, valid_sets, "set")
            if not code:
                continue  # not answered yet
            if code not in valid_codes:
                shown = code if len(code) <= 20 else code[:20] + "..."
                raise ValueError(
                    f"{shown!r} is not one of the descriptions ({', '.join(sorted(valid_codes))})"
                )
            who = answerer(record.values, evaluator, "evaluator")
        except ValueError as exc:
            problems.append(f"{record.where}: {exc}; line skipped")
            continue
        rows.append((pos, who, code))
        wheres.append(record.where)
    rows, notes = last_wins(rows, wheres, 2, lambda r: f"set {r[0]}, evaluator {r[1]!r}")
    return rows, in_line_order(problems, source), notes


def import_answers(
    study, path: str | Path, *, name: str | None = None, evaluator: str | None = None
) -> Imported:
    """Store the answers in a CSV (the matching sheet's download, or the filled template). An answer
    already stored for the same set and evaluator is updated; nothing else is touched. A file that
    stores no answer is an error."""

    study = Study.of(study)
    path = Path(path)
    text = read_text(path)
    sample = study.set_sample(name)
    params = _params(sample)
    valid = {st["pos"] for st in study.image_sets(sample["id"])}
    rows, problems, notes = read_answers(
        text, str(path), valid_sets=valid, valid_codes=set(params["codes"]), evaluator=evaluator
    )
    return store_import(study, sample, path, rows, problems, study.put_set_answers, notes)


# ---------------------------------------------------------------------------------------------- scoring
@dataclass
class SetReport:
    sample: str
    run_id: int
    n_sets: int
    evaluators: list[str]
    answered: int  # sets with at least one answer
    kappa: float  # Cohen's kappa (two evaluators) or the mean over pairs (more), on sets all answered
    pairwise_kappa: dict  # (evaluator, evaluator) -> kappa
    with_majority: int  # sets where a strict majority agreed
    accuracy_by_evaluator: dict
    scores: MatchScores  # of the majority labels
    merged: dict
    clusters: list[dict]  # per cluster: code, keywords, sets, precision, recall
    notes: list[str] = field(default_factory=list)
    scores_csv: Path | None = None  # where the per-cluster table was written
    scored_run: int | None = None  # the run scored: the sample's, or a run derived from it by merges
    shown: str = "keywords"  # what the evaluators matched the sets to: keywords or labels
    llm_evaluators: list = field(default_factory=list)  # LLM evaluators: kept apart from the majority
    llm_kappa: list = field(default_factory=list)  # Cohen's kappa of each LLM evaluator with each human
    llm_accuracy: dict = field(default_factory=dict)  # each LLM evaluator's accuracy alone


def score_sets(
    study, *, name: str | None = None, merge: dict[int, int] | None = None, run_id: int | None = None
) -> SetReport:
    """Agreement between evaluators, and precision/recall/accuracy of their majority label. ``merge``
    maps clusters onto others first (the study merged near-twin clusters); ``run_id`` scores a run derived
    from the sample's run (`connote merge`): its recorded merges are applied. Ties between evaluators go
    to the first evaluator by name, as the study took its first evaluator's label."""
    from connote.coding import llm_scores
    from connote.evaluate import match_scores

    study = Study.of(study)
    sample = study.set_sample(name)
    params = _params(sample)
    cluster_of = {code: int(c) for code, c in params["codes"].items()}
    sets = study.image_sets(sample["id"])
    answers = study.set_answers(sample["id"])
    if not answers:
        raise UserError(
            f"no answers for set sample {sample['name']!r} yet: match the sets in "
            f"{sample_folder(study, sample['name']) / 'matching.html'} and `connote sets import` the download"
        )
    merge, scored_run = _merges(study, sample, set(cluster_of.values()), merge, run_id)
    by: dict[str, dict[int, str]] = {}
    for a in answers:
        by.setdefault(a["evaluator"], {})[a["pos"]] = a["code"]
    people, machines = llm_scores.split_answers(answers)
    evaluators = people or machines  # the majority is the humans' (the LLM's only when no human answered)
    true, majority, hits, with_majority = _tally(sets, by, evaluators, cluster_of, merge)
    pairwise = _pairwise_kappa(sets, by, evaluators)
    kappa = sum(pairwise.values()) / len(pairwise) if pairwise else math.nan
    llm_kappa, llm_accuracy = llm_scores.set_agreement(sets, by, people, machines, cluster_of, merge)
    scores = match_scores(true, majority, merge=merge)
    clusters = _cluster_rows(study, sample, params, scores, cluster_of, merge)
    notes = []
    if len(evaluators) < 2:
        notes.append("one evaluator: no agreement to measure, and the majority label is theirs")
    if len(true) < len(sets):
        notes.append(f"{len(sets) - len(true)} set(s) not answered by anyone yet: left out")
    report = SetReport(
        sample["name"],
        sample["run_id"],
        len(sets),
        evaluators,
        len(true),
        kappa,
        pairwise,
        with_majority,
        {e: (h / n if n else math.nan) for e, (h, n) in hits.items()},
        scores,
        merge,
        clusters,
        notes,
    )
    report.scored_run = scored_run
    report.shown = params.get("shown", "keywords")
    report.llm_evaluators, report.llm_kappa, report.llm_accuracy = machines, llm_kappa, llm_accuracy
    report.scores_csv = write_csv(sample_folder(study, sample["name"]) / "scores.csv", clusters)
    return report


def _merges(
    study: Study, sample, clusters: set[int], merge: dict[int, int] | None, run_id: int | None
) -> tuple[dict[int, int], int]:
    """The merges to apply (given, and those recorded by the derived run scored) and the run scored;
    a merge naming a cluster not in the sample is refused."""
    merge = {int(k): int(v) for k, v in (merge or {}).items()}
    scored_run = sample["run_id"]
    if run_id is not None and int(run_id) != sample["run_id"]:
        scored_run = study.get_run(run_id)["id"]
        merge = {**derived_merges(study, scored_run, sample["run_id"]), **merge}
    unknown = sorted((set(merge) | set(merge.values())) - clusters)
    if unknown:
        raise UserError(f"--merge names cluster(s) {', '.join(map(str, unknown))}, not in this sample")
    return merge, scored_run


def _tally(
    sets,
    by: dict[str, dict[int, str]],
    evaluators: list[str],
    cluster_of: dict[str, int],
    merge: dict[int, int],
) -> tuple[list[int], list[int], dict[str, list[int]], int]:
    """Per set the ``evaluators`` answered its true cluster and their majority cluster; per evaluator
    [hits, answered]; how many sets had a strict majority."""
    from connote.evaluate import majority_labels

    true, majority = [], []
    hits = {e: [0, 0] for e in evaluators}
    with_majority = 0
    for st in sets:
        votes = [by[e][st["pos"]] for e in evaluators if st["pos"] in by[e]]
        if not votes:
            continue
        labels, strict = majority_labels([[v] for v in votes])
        with_majority += strict
        true.append(st["cluster"])
        majority.append(cluster_of[labels[0]])
        for e in evaluators:
            if st["pos"] in by[e]:
                hits[e][1] += 1
                hits[e][0] += _same(cluster_of[by[e][st["pos"]]], st["cluster"], merge)
    return true, majority, hits, with_majority


def _pairwise_kappa(
    sets, by: dict[str, dict[int, str]], evaluators: list[str]
) -> dict[tuple[str, str], float]:
    """Cohen's kappa of each pair of ``evaluators`` over the sets both answered (NaN when none)."""
    from connote.evaluate import cohen_kappa

    pairwise = {}
    for a, b in itertools.combinations(evaluators, 2):
        both = [st["pos"] for st in sets if st["pos"] in by[a] and st["pos"] in by[b]]
        pairwise[(a, b)] = (
            cohen_kappa([by[a][p] for p in both], [by[b][p] for p in both]) if both else math.nan
        )
    return pairwise


def _cluster_rows(
    study: Study, sample, params: dict, scores, cluster_of: dict[str, int], merge: dict[int, int]
):
    """One row per cluster for scores.csv and the report: its code, keywords, merges, precision, recall."""
    keywords = study.keywords(sample["run_id"])
    code_of = {c: code for code, c in cluster_of.items()}
    return [
        {
            "cluster": c,
            "description": code_of.get(c, ""),
            "keywords": ", ".join(keywords.get(c, [])[: params.get("top_k", DEFAULT_TOP_K)]),
            "merged_in": ",".join(str(k) for k, v in sorted(merge.items()) if v == c),
            "sets": n,
            "precision": round(precision, 4),
            "recall": round(recall, 4),
        }
        for c, (precision, recall, n) in scores.per_cluster.items()
    ]


def derived_merges(study, run_id: int, ancestor: int) -> dict[int, int]:
    """The merges that lead from run ``ancestor`` to its derived run ``run_id`` (chains of merge and
    assign-outliers runs; merges composed in order)."""
    steps_back, current = [], int(run_id)
    while current != ancestor:
        origin = study.derivation(current)
        if origin is None:
            raise UserError(
                f"run {run_id} is not derived from run {ancestor}, the run this sample was drawn from; "
                f"draw a sample of run {run_id} with `connote sets sample`"
            )
        steps_back.append(origin)
        current = origin["parent"]
    merged: dict[int, int] = {}
    for origin in reversed(steps_back):
        step = {int(a): int(b) for a, b in origin["params"].get("merges", {}).items()}
        merged = {a: step.get(b, b) for a, b in merged.items()}
        merged.update({a: b for a, b in step.items() if a not in merged})
    return {a: b for a, b in merged.items() if a != b}


def _same(assigned: int, true: int, merge: dict[int, int]) -> bool:
    return merge.get(assigned, assigned) == merge.get(true, true)
