"""After the algorithm: cluster labels (``label``), merges suggested and made (``merge``), outliers
assigned (``assign-outliers``) and the user's own columns per image (``metadata``). Each command renders
its text and its ``--json`` from one result object."""

from __future__ import annotations

import json

from connote.cli.common import (
    add_max_cost_option,
    add_quiet_option,
    add_run_id_argument,
    nonneg_int,
    open_study,
    positive_int,
    read_prompt,
    run_id_int,
    say,
    share,
    show_progress,
    warn,
)
from connote.defaults import DEFAULT_LABEL_DESCRIPTIONS, DEFAULT_OUTLIER_NEIGHBORS


def _json(obj) -> None:
    say(json.dumps(obj, indent=2, default=str))


# ---------------------------------------------------------------------------------------------- label
def cmd_label(args) -> int:
    from connote import labels

    res = labels.label(
        open_study(args.study),
        args.run_id,
        args.llm,
        prompt=read_prompt(args.prompt),
        n_descriptions=args.descriptions,
        max_cost=args.max_cost,
        dry_run=args.dry_run,
        progress=show_progress(args),
        base_url=args.base_url,
        concurrency=args.concurrency,
        retry_flagged=args.retry_flagged,
    )
    if args.json:
        _json(res.to_dict())
        return 0
    if res.dry_run and res.labeller != labels.KEYWORDS:
        cost = "unknown" if res.estimate_cost_usd is None else f"${res.estimate_cost_usd:.4f}"
        say(
            f"Dry run, run {res.run_id} with {res.labeller}: about {res.input_tokens} input and "
            f"{res.output_tokens} output tokens at most, {cost}."
        )
        for note in res.notes:
            say(f"  {note}")
        return 0
    for x in res.labels:
        mark = "" if x.status == "ok" else f"  [{x.status}{': ' + x.problem if x.problem else ''}]"
        say(f"cluster {x.cluster}: {x.label}{mark}")
        if x.summary:
            say(f"    {x.summary}")
    if res.labeller != labels.KEYWORDS:
        say(
            f"Run {res.run_id}, labels by {res.labeller}: {res.calls} call(s), {res.cached} from the call log, "
            f"${res.cost_usd:.4f}."
        )
    for note in res.notes:
        warn(f"  {note}")
    if res.stopped:
        warn(f"Stopped: {res.stopped}. Run the same command again to continue.")
    return 1 if any(x.status == "failed" for x in res.labels) or res.stopped else 0


def add_label(sub) -> None:
    p = sub.add_parser("label", help="a short label and a one-sentence summary per cluster (LLM or keywords)")
    p.add_argument("study")
    add_run_id_argument(p)
    p.add_argument("--llm", help="openai:MODEL or ollama:MODEL (default: the keywords stand in, offline)")
    p.add_argument("--base-url", help="any OpenAI-compatible server")
    p.add_argument("--concurrency", type=positive_int, help="requests at once (default 8)")
    p.add_argument("--prompt", help="prompt text or @file; {keywords} and {descriptions} are filled in")
    p.add_argument(
        "--descriptions",
        type=positive_int,
        default=DEFAULT_LABEL_DESCRIPTIONS,
        help=f"typical descriptions shown per cluster ({DEFAULT_LABEL_DESCRIPTIONS})",
    )
    add_max_cost_option(p, "stop before spending more than this many USD")
    p.add_argument("--dry-run", action="store_true", help="estimate tokens and cost; send nothing")
    p.add_argument(
        "--retry-flagged",
        action="store_true",
        help="ask again for the clusters whose answer was flagged (kept and not asked again otherwise)",
    )
    p.add_argument("--json", action="store_true")
    add_quiet_option(p)
    p.set_defaults(func=cmd_label)


# ---------------------------------------------------------------------------------------------- merge
def cmd_merge(args) -> int:
    from dataclasses import asdict

    from connote import derive

    study = open_study(args.study)
    if args.suggest or not args.merges:
        run_id = study.get_run(args.run_id)["id"]
        got = derive.suggest_merges(study, run_id, top=args.top)
        if args.json:
            _json({"run": run_id, "suggestions": [asdict(s) | {"merge": s.merge} for s in got]})
            return 0
        if not got:
            say("Fewer than two clusters: nothing to merge.")
            return 0
        say(f"Most similar clusters of run {run_id} (merge the smaller into the larger):")
        for s in got:
            say(
                f"  {s.merge:>7}  centroid similarity {s.similarity:.3f}, keyword overlap {s.keyword_overlap:.2f}"
                f" ({', '.join(s.shared_keywords) or 'none shared'}), sizes {s.sizes[0]} and {s.sizes[1]}"
            )
            for pair in s.nearest:
                say(f"           {pair['similarity']:.3f}  {pair['a']}  ~  {pair['b']}")
        say(f"Merge with: connote merge {args.study} RUN_ID A=B[,C=D]")
        return 0
    res = derive.merge(study, args.run_id, args.merges)
    if args.json:
        _json(res.to_dict())
        return 0
    say(
        f"Run {res.run_id} ({'reused' if res.reused else 'new'}): run {res.parent} with "
        f"{', '.join(f'{a}={b}' for a, b in res.params['merges'].items())}; {res.n_clusters} clusters, "
        f"{res.n_outliers} outliers."
    )
    return 0


def add_merge(sub) -> None:
    p = sub.add_parser("merge", help="suggest near-twin clusters, or merge clusters into a derived run")
    p.add_argument("study")
    p.add_argument("run_id", type=run_id_int, help="the run to start from")
    p.add_argument("merges", nargs="?", help="FROM=INTO pairs, e.g. 7=3,9=3 (without: suggestions)")
    p.add_argument(
        "--suggest", action="store_true", help="list the most similar clusters with their evidence"
    )
    p.add_argument("--top", type=positive_int, default=5, help="suggestions to list (5)")
    p.add_argument("--json", action="store_true")
    add_quiet_option(p)
    p.set_defaults(func=cmd_merge)


# ---------------------------------------------------------------------------------------------- outliers
def cmd_assign_outliers(args) -> int:
    from connote import derive

    study = open_study(args.study)
    res = derive.assign_outliers(study, args.run_id, method=args.method, threshold=args.threshold, k=args.k)
    assigned = study.assigned_outliers(res.run_id)
    paths = {r["sha256"]: r["path"] for r in study.unique_images()}
    members = [
        {"image": paths.get(sha, sha), "cluster": c, "score": round(score, 4)}
        for sha, (c, score) in assigned.items()
    ]
    if args.json:
        _json(res.to_dict() | {"members": members})
        return 0
    say(
        f"Run {res.run_id} ({'reused' if res.reused else 'new'}): run {res.parent} with {res.assigned} outlier(s) "
        f"assigned by {args.method}; {res.n_clusters} clusters, {res.n_outliers} outliers left."
    )
    for m in members[: args.show]:
        say(f"  {m['score']:.3f}  cluster {m['cluster']:>3}  {m['image']}")
    if len(members) > args.show:
        say(f"  ... {len(members)} in all (--json lists every one)")
    for note in res.notes:
        warn(f"  {note}")
    return 0


def add_assign_outliers(sub) -> None:
    p = sub.add_parser("assign-outliers", help="a derived run in which outliers join their nearest cluster")
    p.add_argument("study")
    add_run_id_argument(p)
    p.add_argument("--method", choices=["centroid", "soft", "knn"], default="centroid")
    p.add_argument("--threshold", type=share, help="keep outliers scoring below this (0-1) apart")
    p.add_argument(
        "--k",
        type=positive_int,
        default=DEFAULT_OUTLIER_NEIGHBORS,
        help=f"neighbours for knn ({DEFAULT_OUTLIER_NEIGHBORS})",
    )
    p.add_argument("--show", type=nonneg_int, default=20, help="assigned members to list (20)")
    p.add_argument("--json", action="store_true")
    add_quiet_option(p)
    p.set_defaults(func=cmd_assign_outliers)


# ---------------------------------------------------------------------------------------------- metadata
def cmd_metadata(args) -> int:
    from connote import metadata
    from connote.errors import UserError

    study = open_study(args.study)
    out: dict = {}
    status = 0
    if args.file:
        res = metadata.import_metadata(study, args.file, image_column=args.image_column)
        out["import"] = res.to_dict()
        if res.problems:
            status = 1
    if args.report is not None:
        out["report_columns"] = metadata.choose_report_columns(
            study, [c.strip().lower() for c in args.report.split(",") if c.strip()]
        )
    if args.by:
        out["breakdown"] = metadata.breakdown(study, args.run, args.by).to_dict()
    if not args.file and not args.by and args.report is None:
        out["columns"] = study.metadata_columns()
        if not out["columns"]:
            raise UserError(f"no metadata yet: connote metadata {args.study} FILE.csv (columns image, ...)")
    if args.json:
        _json(out)
        return status
    if "import" in out:
        res = out["import"]
        for problem in res["problems"]:
            warn(f"  skipped {problem}")
        types = ", ".join(f"{n} ({t})" for n, t in res["columns"].items())
        say(f"{res['path']}: values for {res['rows']} image(s), {res['updated']} updated; columns: {types}")
    if "report_columns" in out:
        say(f"The report breaks clusters down by: {', '.join(out['report_columns']) or '(no columns)'}")
    if "columns" in out:
        for name, kind in out["columns"].items():
            say(f"{name}: {kind}")
    if "breakdown" in out:
        b = out["breakdown"]
        say(f"Clusters by {b['column']} ({b['type']}{', per ' + b['unit'] if b['unit'] else ''}):")
        for c, values in b["clusters"].items():
            name = "outliers" if int(c) == -1 else f"cluster {c}"
            shown = ", ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items()
            )
            missing = b["missing"].get(c, 0)
            say(f"  {name}: {shown or '-'}{f' ({missing} without a value)' if missing else ''}")
    return status


def add_metadata(sub) -> None:
    p = sub.add_parser("metadata", help="your own columns per image (CSV with an image column); breakdowns")
    p.add_argument("study")
    p.add_argument("file", nargs="?", help="CSV with a column 'image' and any others (re-import updates)")
    p.add_argument("--image-column", default="image", help="the column naming the images (image)")
    p.add_argument("--by", metavar="COLUMN", help="each cluster's breakdown by this column")
    p.add_argument("--run", type=run_id_int, help="run for --by (default: the latest)")
    p.add_argument(
        "--report",
        metavar="COLUMNS",
        help="columns the report breaks clusters down by and colours the map by, e.g. date,account "
        "('' for the default: the first six imported)",
    )
    p.add_argument("--json", action="store_true")
    add_quiet_option(p)
    p.set_defaults(func=cmd_metadata)
