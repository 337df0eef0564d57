"""The study folder: ``init``, ``status``, ``runs``, ``export`` and ``report``."""

from __future__ import annotations

from connote.cli.common import (
    add_json_option,
    add_quiet_option,
    add_run_id_argument,
    finish,
    open_study,
    print_skipped,
    run_id_int,
    say,
    show_progress,
    warn,
)
from connote.printable import shown


def init_result(study_path, summary) -> dict:
    """What ``init`` (and ``run``) found: counts and the files skipped with their reason."""
    return {
        "study": study_path,
        "found": summary.found,
        "usable": summary.ok,
        "distinct": summary.distinct,
        "skipped": [{"path": p, "reason": r} for p, r in summary.skipped],
    }


def cmd_init(args) -> int:
    from connote import steps

    study = steps.init(args.study, args.images, progress=show_progress(args))
    res = init_result(study.path, steps.init_summary(study))
    if res["usable"] == 0:
        res["error"] = f"no usable images under {args.images}"

    def render(r) -> None:
        say(
            f"Study {r['study']}: {r['usable']} usable image(s) ({r['distinct']} distinct) of {r['found']} file(s) found."
        )
        print_skipped([(s["path"], s["reason"]) for s in r["skipped"]])
        if r.get("error"):
            warn(f"error: {r['error']}")

    return finish(args, res, render, 1 if res["usable"] == 0 else 0)


def add_init(sub) -> None:
    p = sub.add_parser("init", help="make a study folder and register the images")
    p.add_argument("study")
    p.add_argument("--images", required=True, help="folder of images (searched recursively)")
    add_json_option(p)
    add_quiet_option(p)
    p.set_defaults(func=cmd_init)


def cmd_report(args) -> int:
    from connote import steps
    from connote.errors import UserError

    study = open_study(args.study)
    if args.run_id is not None and args.runs is not None:
        raise UserError("give a run id or --runs, not both")
    runs = None if args.runs in (None, "all") else [] if args.runs == "none" else args.runs
    path = steps.report(study, args.run_id, runs=runs, progress=show_progress(args))
    folder = study.path / "report"
    rendered = sorted(
        int(p.parent.name[4:]) for p in folder.glob("run-*/index.html") if p.parent.name[4:].isdigit()
    )
    result = {
        "index": folder / "index.html",
        "page": path,
        "compare": folder / "compare.html",
        "folder": folder,
        "run_pages": {r: folder / f"run-{r}" / "index.html" for r in rendered},
    }

    def render(r: dict) -> None:
        say(f"Report: {r['page']}")
        if r["page"] != r["index"]:
            say(f"Study index: {r['index']}")
        say(f"{len(r['run_pages'])} run page(s) under {r['folder']}; compare two runs in {r['compare']}")

    return finish(args, result, render)


def add_report(sub) -> None:
    p = sub.add_parser(
        "report",
        help="write the HTML report: the study index (STUDY/report/index.html), run pages with maps, cluster pages",
    )
    p.add_argument("study")
    p.add_argument(
        "run_id",
        nargs="?",
        type=run_id_int,
        help="one run's pages (and the index); default: the index and every run",
    )
    p.add_argument(
        "--runs",
        help="which runs get pages when no run id is given: all (default), none (the index only), or ids 3,5",
    )
    add_json_option(p)
    add_quiet_option(p)
    p.set_defaults(func=cmd_report)


def cmd_runs(args) -> int:
    from connote import steps

    return finish(args, steps.runs(args.study), render_runs)


def render_runs(rows: list[dict]) -> None:
    if not rows:
        say("No runs yet.")
        return
    say(
        f"{'id':>4}  {'features':8}  {'describer':22}  {'embedder':24}  {'reduce':34}  {'mcs':>4}  {'seed':>5}  "
        f"{'clusters':>8}  {'outliers':>8}  derived"
    )
    for r in rows:
        say(
            f"{r['id']:>4}  {r['features']:8}  {str(r['describer'] or '-')[:22]:22}  {r['embedder'][:24]:24}  "
            f"{r['reduce'][:34]:34}  {r['min_cluster_size']:>4}  {str(r['seed']):>5}  {r['n_clusters']:>8}  "
            f"{r['n_outliers']:>8}  {_derived(r)}"
        )
    settings = _seed_settings(rows)
    if settings:
        from connote.evaluate.stability import stability_table

        say("")
        say("Seed stability per setting (runs that differ only by seed):")
        say(stability_table(settings))


def _seed_settings(rows: list[dict]) -> list[tuple]:
    """(features, reduce, mcs, SeedStability) for each setting run with two seeds or more."""
    from connote.evaluate.stability import SeedStability

    out, seen = [], set()
    for r in rows:
        st = r.get("seed_stability")
        if not st or len(st["seeds"]) < 2 or tuple(st["run_ids"]) in seen:
            continue
        seen.add(tuple(st["run_ids"]))
        out.append((r["features"], r["reduce"], r["min_cluster_size"], SeedStability.from_dict(st)))
    return out


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
    add_json_option(p)
    add_quiet_option(p)
    p.set_defaults(func=cmd_runs)


def cmd_export(args) -> int:
    from connote import steps

    path = steps.export(args.study, args.run_id, format=args.format, path=args.output)
    return finish(args, {"wrote": path}, lambda r: say(f"Wrote {r['wrote']}"))


def add_export(sub) -> None:
    p = sub.add_parser("export", help="one row per image: image, cluster, keywords, description")
    p.add_argument("study")
    add_run_id_argument(p)
    p.add_argument("--format", default="csv", choices=["csv", "parquet"])
    p.add_argument("-o", "--output", help="file to write (default: STUDY/run-ID.FORMAT)")
    add_json_option(p)
    add_quiet_option(p)
    p.set_defaults(func=cmd_export)


def status_result(study) -> dict:
    """What the study holds: images, description sets, vectors, runs, calls, cost, validation samples."""
    from connote.cli.flagged import flagged_result
    from connote.study.calls import call_count

    usable, distinct, skipped_n = study.con.execute(  # counted in SQL: status stays fast at a million
        """SELECT COUNT(*) FILTER (WHERE status='ok'), COUNT(DISTINCT sha256) FILTER (WHERE status='ok'),
                  COUNT(*) FILTER (WHERE status!='ok') FROM images"""
    ).fetchone()
    skipped = study.images(status="skipped")

    def names(rows, role: str) -> list[str]:
        return sorted({r[role] for r in rows})

    return {
        "study": study.path,
        "images_root": study.get_meta("images_root"),
        "images": {
            "usable": usable,
            "distinct": distinct,
            "skipped": skipped_n,
        },
        "description_sets": [
            {"name": s["name"], "describer": s["describer"], "ok": s["n_ok"], "flagged_or_failed": s["n_bad"]}
            for s in study.description_sets()
        ],
        "flagged": flagged_result(study),
        "vectors": [{"name": e["name"], "dim": e["dim"]} for e in study.embedders()],
        "runs": len(study.runs()),
        "calls": call_count(study),
        "cost_usd": study.total_cost(),
        "pair_samples": [
            {
                "name": ps["name"],
                "pairs": len(study.pairs(ps["id"])),
                "ratings": len(rows := study.ratings(ps["id"])),
                "coders": names(rows, "coder"),
            }
            for ps in study.pair_samples()
        ],
        "set_samples": [
            {
                "name": ss["name"],
                "run": ss["run_id"],
                "sets": len(study.image_sets(ss["id"])),
                "answers": len(rows := study.set_answers(ss["id"])),
                "evaluators": names(rows, "evaluator"),
            }
            for ss in study.set_samples()
        ],
        "skipped": [{"path": r["path"], "reason": r["reason"]} for r in skipped],
    }


def render_status(r: dict) -> None:
    from connote.cli.flagged import print_flagged

    def who(names: list[str], role: str) -> str:
        return f"{len(names)} {role}(s)" + (": " + ", ".join(shown(n) for n in names) if names else "")

    im = r["images"]
    say(f"Study {r['study']} (images from {r['images_root']})")
    say(f"  images: {im['usable']} usable ({im['distinct']} distinct), {im['skipped']} skipped")
    for s in r["description_sets"]:
        say(
            f"  descriptions {s['name']!r} ({s['describer']}): {s['ok']} ok, "
            f"{s['flagged_or_failed']} flagged or failed"
        )
    print_flagged(r["study"], r["flagged"])
    for e in r["vectors"]:
        say(f"  vectors {e['name']} ({e['dim']} dimensions)")
    say(f"  runs: {r['runs']}; model calls logged: {r['calls']}; cost so far: ${r['cost_usd']:.4f}")
    for ps in r["pair_samples"]:
        say(
            f"  rated pairs {ps['name']!r}: {ps['pairs']} pairs, {ps['ratings']} rating(s) by "
            f"{who(ps['coders'], 'coder')}"
        )
    for ss in r["set_samples"]:
        say(
            f"  image sets {ss['name']!r} (run {ss['run']}): {ss['sets']} sets, {ss['answers']} answer(s) by "
            f"{who(ss['evaluators'], 'evaluator')}"
        )
    print_skipped([(s["path"], s["reason"]) for s in r["skipped"]], limit=10_000)


def cmd_status(args) -> int:
    return finish(args, status_result(open_study(args.study)), render_status)


def add_status(sub) -> None:
    p = sub.add_parser("status", help="what the study holds: images, skipped files, descriptions, runs, cost")
    p.add_argument("study")
    add_json_option(p)
    add_quiet_option(p)
    p.set_defaults(func=cmd_status)
