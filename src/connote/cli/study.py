"""The study folder: ``init``, ``status``, ``runs``, ``export`` and ``report``."""

from __future__ import annotations

import json

from connote.cli.common import (
    add_quiet_option,
    add_run_id_argument,
    open_study,
    print_skipped,
    say,
    show_progress,
    warn,
)
from connote.printable import shown


def cmd_init(args) -> int:
    from connote import steps

    study = steps.init(args.study, args.images, progress=show_progress(args))
    s = steps.init_summary(study)
    say(f"Study {study.path}: {s.ok} usable image(s) ({s.distinct} distinct) of {s.found} file(s) found.")
    print_skipped(s.skipped)
    if s.ok == 0:
        warn(f"error: no usable images under {args.images}")
        return 1
    return 0


def add_init(sub) -> None:
    p = sub.add_parser("init", help="make a study folder and register the images")
    p.add_argument("study")
    p.add_argument("--images", required=True, help="folder of images (searched recursively)")
    add_quiet_option(p)
    p.set_defaults(func=cmd_init)


def cmd_report(args) -> int:
    from connote import steps

    study = open_study(args.study)
    if args.run_id is not None and args.runs is not None:
        warn("error: give a run id or --runs, not both")
        return 2
    runs = None if args.runs in (None, "all") else [] if args.runs == "none" else args.runs
    path = steps.report(study, args.run_id, runs=runs, progress=show_progress(args))
    folder = study.path / "report"
    rendered = sorted(
        int(p.parent.name[4:]) for p in folder.glob("run-*/index.html") if p.parent.name[4:].isdigit()
    )
    result = {
        "index": str(folder / "index.html"),
        "page": str(path),
        "compare": str(folder / "compare.html"),
        "run_pages": {str(r): str(folder / f"run-{r}" / "index.html") for r in rendered},
    }
    if args.json:
        say(json.dumps(result, indent=2))
        return 0
    say(f"Report: {result['page']}")
    if result["page"] != result["index"]:
        say(f"Study index: {result['index']}")
    say(f"{len(rendered)} run page(s) under {folder}; compare two runs in {result['compare']}")
    return 0


def add_report(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write the HTML report: the study index (STUDY/report/index.html), run pages with maps, cluster pages",
    )
    p.add_argument("study")
    p.add_argument(
        "run_id", nargs="?", help="one run's pages (and the index); default: the index and every run"
    )
    p.add_argument(
        "--runs",
        help="which runs get pages when no run id is given: all (default), none (the index only), or ids 3,5",
    )
    p.add_argument("--json", action="store_true", help="print the paths written as JSON")
    add_quiet_option(p)
    p.set_defaults(func=cmd_report)


def cmd_runs(args) -> int:
    from connote import steps

    rows = steps.runs(args.study)
    if args.json:
        say(json.dumps(rows, indent=2))
        return 0
    if not rows:
        say("No runs yet.")
        return 0
    head = (
        f"{'id':>4}  {'features':8}  {'describer':22}  {'embedder':24}  {'reduce':34}  {'mcs':>4}  {'seed':>5}  "
        f"{'clusters':>8}  {'outliers':>8}  derived"
    )
    say(head)
    for r in rows:
        say(
            f"{r['id']:>4}  {r['features']:8}  {str(r['describer'] or '-')[:22]:22}  {r['embedder'][:24]:24}  "
            f"{r['reduce'][:34]:34}  {r['min_cluster_size']:>4}  {str(r['seed']):>5}  {r['n_clusters']:>8}  "
            f"{r['n_outliers']:>8}  {_derived(r)}"
        )
    return 0


def _derived(r: dict) -> str:
    """'merge of 3: 7=3' for a derived run, '' for a clustering."""
    d = r.get("derived")
    if not d:
        return ""
    what = ", ".join(f"{a}={b}" for a, b in d.get("merges", {}).items()) or d.get("method", "")
    return f"{d['kind']} of {r['parent']}: {what}"


def add_runs(sub) -> None:
    p = sub.add_parser("runs", help="list the clustering runs")
    p.add_argument("study")
    p.add_argument("--json", action="store_true")
    add_quiet_option(p)
    p.set_defaults(func=cmd_runs)


def cmd_export(args) -> int:
    from connote import steps

    path = steps.export(args.study, args.run_id, format=args.format, path=args.output)
    say(f"Wrote {path}")
    return 0


def add_export(sub) -> None:
    p = sub.add_parser("export", help="one row per image: image, cluster, keywords, description")
    p.add_argument("study")
    add_run_id_argument(p)
    p.add_argument("--format", default="csv", choices=["csv", "parquet"])
    p.add_argument("-o", "--output", help="file to write (default: STUDY/run-ID.FORMAT)")
    add_quiet_option(p)
    p.set_defaults(func=cmd_export)


def cmd_status(args) -> int:
    study = open_study(args.study)
    images = study.images(status=None)
    ok = [r for r in images if r["status"] == "ok"]
    say(f"Study {study.path} (images from {study.get_meta('images_root')})")
    say(
        f"  images: {len(ok)} usable ({len({r['sha256'] for r in ok})} distinct), "
        f"{len(images) - len(ok)} skipped"
    )
    for s in study.description_sets():
        say(
            f"  descriptions {s['name']!r} ({s['describer']}): {s['n_ok']} ok, {s['n_bad']} flagged or failed"
        )
    from connote.cli.flagged import flagged_result, print_flagged

    print_flagged(args.study, flagged_result(study))
    for e in study.embedders():
        say(f"  vectors {e['name']} ({e['dim']} dimensions)")
    say(
        f"  runs: {len(study.runs())}; model calls logged: {len(study.calls())}; "
        f"cost so far: ${study.total_cost():.4f}"
    )

    def who(rows, role: str) -> str:
        names = sorted({shown(r[role]) for r in rows})
        return f"{len(names)} {role}(s)" + (": " + ", ".join(names) if names else "")

    for ps in study.pair_samples():
        rows = study.ratings(ps["id"])
        n = len(study.pairs(ps["id"]))
        say(f"  rated pairs {ps['name']!r}: {n} pairs, {len(rows)} rating(s) by {who(rows, 'coder')}")
    for ss in study.set_samples():
        rows = study.set_answers(ss["id"])
        n = len(study.image_sets(ss["id"]))
        say(
            f"  image sets {ss['name']!r} (run {ss['run_id']}): {n} sets, {len(rows)} answer(s) by "
            f"{who(rows, 'evaluator')}"
        )
    print_skipped([(r["path"], r["reason"]) for r in images if r["status"] == "skipped"], limit=10_000)
    return 0


def add_status(sub) -> None:
    p = sub.add_parser("status", help="what the study holds: images, skipped files, descriptions, runs, cost")
    p.add_argument("study")
    add_quiet_option(p)
    p.set_defaults(func=cmd_status)
