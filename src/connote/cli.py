"""The command line: parse, call the library (:mod:`connote.steps`), print. Nothing else lives here.

Each sub-command is a ``cmd_*`` function registered in ``build_parser``; heavy modules are imported
inside the functions so that ``connote --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from connote import __version__

DEFAULT_REDUCE = "umap:components=5,neighbors=15"


def _say(msg: str = "") -> None:
    print(msg, flush=True)


def _warn(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _progress(args) -> bool:
    return not getattr(args, "quiet", False)


def _open(path: str):
    from connote.study import Study

    return Study.open(path)


def _print_skipped(skipped: list[tuple[str, str]], limit: int = 50) -> None:
    if not skipped:
        return
    _warn(f"Skipped {len(skipped)} file(s) that are not usable images:")
    for path, reason in skipped[:limit]:
        _warn(f"  {path}: {reason}")
    if len(skipped) > limit:
        _warn(f"  ... and {len(skipped) - limit} more (see `connote status`)")


# --------------------------------------------------------------------------------------------- commands
def cmd_init(args) -> int:
    from connote import steps

    study = steps.init(args.study, args.images, progress=_progress(args))
    s = steps.init_summary(study)
    _say(f"Study {study.path}: {s.ok} usable image(s) ({s.distinct} distinct) of {s.found} file(s) found.")
    _print_skipped(s.skipped)
    if s.ok == 0:
        _warn(f"error: no usable images under {args.images}")
        return 1
    return 0


def cmd_describe(args) -> int:
    from connote import steps

    study = _open(args.study)
    options = {}
    if args.batch_size:
        options["batch_size"] = args.batch_size
    for opt in (
        "concurrency",
        "base_url",
        "api_key_env",
        "max_side",
        "detail",
        "max_tokens",
        "temperature",
        "timeout",
        "device",
    ):
        if getattr(args, opt, None) is not None:
            options[opt] = getattr(args, opt)
    prompt = _read_prompt(args.prompt)
    summary = steps.describe(
        study,
        args.describer,
        prompt=prompt,
        name=args.name,
        retry_flagged=args.retry_flagged,
        max_cost=args.max_cost,
        progress=_progress(args),
        dry_run=args.dry_run,
        batch=args.batch,
        batch_poll=args.batch_poll,
        batch_wait=not args.no_wait,
        **options,
    )
    _report_describe(summary, args)
    return 0


def _read_prompt(value: str | None) -> str | None:
    if value and value.startswith("@"):
        from connote.errors import UserError

        path = Path(value[1:])
        if not path.is_file():
            raise UserError(f"{path}: prompt file not found")
        return path.read_text(encoding="utf-8").strip()
    return value


def _report_describe(summary, args) -> None:
    if hasattr(summary, "images") and not hasattr(summary, "described"):  # --dry-run: a DescribeEstimate
        mode = " with the Batch API" if summary.batch else ""
        _say(
            f"Dry run: nothing was sent. Describer {summary.describer}{mode} "
            f"(description set {summary.set_name!r})."
        )
        _say(
            f"Would describe {summary.images} image(s); {summary.already} of {summary.total} are done already."
        )
        _say(f"Estimated tokens: {summary.input_tokens:,} in, {summary.output_tokens:,} out.")
        cost = "unknown" if summary.cost_usd is None else f"${summary.cost_usd:.4f}"
        _say(f"Estimated cost: {cost}")
        for note in summary.notes:
            _warn(f"note: {note}")
        return
    _say(f"Describer: {summary.describer} (description set {summary.set_name!r}).")
    if summary.describer == "offline":
        _say(
            "  The offline describer writes what is written in the image (OCR) and what an ImageNet CNN sees."
        )
        _say(
            "  For the paper's connotative descriptions choose a vision LLM: --describer openai:gpt-4-turbo "
            "or --describer hf:llava-hf/llava-1.5-7b-hf"
        )
    _say(
        f"Described {summary.described} image(s) now; {summary.already} were already described; "
        f"{summary.total} distinct image(s) in all."
    )
    if summary.cost_usd:
        _say(f"Cost of this run: ${summary.cost_usd:.4f}")
    if summary.flagged or summary.failed:
        _warn(f"{summary.flagged} description(s) flagged for review and {summary.failed} failed:")
        for path, reason in summary.problems[:50]:
            _warn(f"  {path}: {reason}")
    if getattr(summary, "retried_flagged", 0):
        _say(f"{summary.retried_flagged} output(s) failed a check and were asked for once more.")
    if summary.flagged:
        _warn("Flagged descriptions are kept apart (not used); ask for them again with --retry-flagged.")
    if summary.stopped:
        _warn(f"Stopped early: {summary.stopped}. Run the same command again to continue.")


def cmd_import_descriptions(args) -> int:
    from connote import steps

    study = _open(args.study)
    r = steps.import_descriptions(study, args.file, name=args.name, check=not args.no_check)
    _say(
        f"Imported {r.imported} description(s) into set {r.set_name!r} ({r.flagged} flagged); "
        f"{r.total} distinct image(s) in the study, {r.missing} without a description."
    )
    for row, reason in r.problems[:50]:
        _warn(f"  {row}: {reason}")
    if len(r.problems) > 50:
        _warn(f"  ... and {len(r.problems) - 50} more")
    return 0


def cmd_embed(args) -> int:
    from connote import steps

    study = _open(args.study)
    text = None if args.no_text else args.text
    options = {}
    if args.image_weights:
        options["weights_path"] = args.image_weights
    if args.no_fallback:
        options["fallback"] = False
    import warnings

    from connote.embedders.image import WeightsFallbackWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeightsFallbackWarning)  # printed below, plainly
        results = steps.embed(
            study, text, args.image, description_set=args.descriptions, progress=_progress(args), **options
        )
    for r in results:
        if getattr(r, "notice", None):
            _warn(f"NOTE: {r.notice}")
        _say(
            f"{r.embedder}: {r.total} input(s), {r.computed} embedded now, {r.reused} reused"
            + (f", {r.dim} dimensions" if r.dim else "")
            + "."
        )
        for path, reason in r.failed:
            _warn(f"  skipped {path}: {reason}")
    return 0


def cmd_cluster(args) -> int:
    from connote import steps

    study = _open(args.study)
    res = steps.cluster(
        study,
        args.features,
        reduce=args.reduce,
        min_cluster_size=args.min_cluster_size,
        min_samples=args.min_samples,
        selection=args.selection,
        seed=args.seed,
        text=args.text,
        image=args.image,
        description_set=args.descriptions,
    )
    for note in res.notes:
        _warn(f"note: {note}")
    verb = "Reused" if res.reused else "Made"
    _warn(
        f"{verb} run {res.run_id}: {res.n_clusters} cluster(s), {res.n_outliers} outlier(s) of {res.n_items} "
        f"image(s), min cluster size {res.min_cluster_size}."
    )
    _say(str(res.run_id))
    return 0


def cmd_sweep(args) -> int:
    from connote import steps
    from connote.errors import UserError

    study = _open(args.study)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds takes numbers separated by commas, not {args.seeds!r}") from None
    features = [f.strip() for f in args.features.split(",") if f.strip()]
    bad = set(features) - {"text", "image"}
    if bad:
        raise UserError(f"--features takes text and/or image, not {', '.join(sorted(bad))}")
    res = steps.sweep(
        study,
        args.grid,
        features=features,
        seeds=seeds,
        text=args.text,
        image=args.image,
        description_set=args.descriptions,
        min_samples=args.min_samples,
        selection=args.selection,
        workers=args.workers,
        progress=_progress(args),
        say=_warn,
    )
    _say(res.table())
    _warn(
        f"Sweep {res.grid}: {res.computed} run(s) made, {res.reused} reused; {res.reductions} reduction(s), "
        f"{res.knn_graphs} shared kNN graph(s). See `connote runs {args.study}`."
    )
    return 0


def cmd_explain(args) -> int:
    from connote import steps

    study = _open(args.study)
    extra = [w.strip() for w in (args.stop_words or "").split(",") if w.strip()]
    keywords = steps.explain(
        study, args.run_id, top_k=args.top_k, extra_stop_words=extra, filler=not args.keep_filler
    )
    for c in sorted(keywords):
        _say(f"cluster {c}: {', '.join(t for t, _ in keywords[c])}")
    return 0


def cmd_report(args) -> int:
    from connote import steps

    path = steps.report(args.study, args.run_id, progress=_progress(args))
    _say(f"Report: {path}")
    return 0


def cmd_runs(args) -> int:
    from connote import steps

    rows = steps.runs(args.study)
    if args.json:
        _say(json.dumps(rows, indent=2))
        return 0
    if not rows:
        _say("No runs yet.")
        return 0
    head = (
        f"{'id':>4}  {'features':8}  {'describer':22}  {'embedder':24}  {'reduce':34}  {'mcs':>4}  {'seed':>5}  "
        f"{'clusters':>8}  {'outliers':>8}"
    )
    _say(head)
    for r in rows:
        _say(
            f"{r['id']:>4}  {r['features']:8}  {str(r['describer'] or '-')[:22]:22}  {r['embedder'][:24]:24}  "
            f"{r['reduce'][:34]:34}  {r['min_cluster_size']:>4}  {str(r['seed']):>5}  {r['n_clusters']:>8}  "
            f"{r['n_outliers']:>8}"
        )
    return 0


def cmd_export(args) -> int:
    from connote import steps

    path = steps.export(args.study, args.run_id, format=args.format, path=args.output)
    _say(f"Wrote {path}")
    return 0


def cmd_status(args) -> int:
    study = _open(args.study)
    images = study.images(status=None)
    ok = [r for r in images if r["status"] == "ok"]
    _say(f"Study {study.path} (images from {study.get_meta('images_root')})")
    _say(
        f"  images: {len(ok)} usable ({len({r['sha256'] for r in ok})} distinct), "
        f"{len(images) - len(ok)} skipped"
    )
    for s in study.description_sets():
        _say(
            f"  descriptions {s['name']!r} ({s['describer']}): {s['n_ok']} ok, {s['n_bad']} flagged or failed"
        )
    for e in study.embedders():
        _say(f"  vectors {e['name']} ({e['dim']} dimensions)")
    _say(
        f"  runs: {len(study.runs())}; model calls logged: {len(study.calls())}; "
        f"cost so far: ${study.total_cost():.4f}"
    )

    def who(rows, role: str) -> str:
        names = sorted({r[role] for r in rows})
        return f"{len(names)} {role}(s)" + (": " + ", ".join(names) if names else "")

    for ps in study.pair_samples():
        rows = study.ratings(ps["id"])
        n = len(study.pairs(ps["id"]))
        _say(f"  rated pairs {ps['name']!r}: {n} pairs, {len(rows)} rating(s) by {who(rows, 'coder')}")
    for ss in study.set_samples():
        rows = study.set_answers(ss["id"])
        n = len(study.image_sets(ss["id"]))
        _say(
            f"  image sets {ss['name']!r} (run {ss['run_id']}): {n} sets, {len(rows)} answer(s) by "
            f"{who(rows, 'evaluator')}"
        )
    _print_skipped([(r["path"], r["reason"]) for r in images if r["status"] == "skipped"], limit=10_000)
    return 0


def cmd_run(args) -> int:
    from connote import steps

    progress = _progress(args)
    study = steps.init(args.output, args.images, progress=progress)
    s = steps.init_summary(study)
    _say(f"Found {s.ok} usable image(s) ({s.distinct} distinct) of {s.found} file(s) under {args.images}.")
    _print_skipped(s.skipped)
    if s.ok == 0:
        _warn(f"error: no usable images under {args.images}")
        return 1
    summary = steps.describe(study, args.describer, prompt=_read_prompt(args.prompt), progress=progress)
    _report_describe(summary, args)
    steps.embed(study, args.text, progress=progress)
    res = steps.cluster(
        study,
        "text",
        reduce=args.reduce,
        min_cluster_size=args.min_cluster_size,
        min_samples=args.min_samples,
        selection=args.selection,
        seed=args.seed,
        text=args.text,
    )
    for note in res.notes:
        _warn(f"note: {note}")
    keywords = steps.explain(study, res.run_id, top_k=args.top_k)
    _say(
        f"Run {res.run_id}: {res.n_clusters} cluster(s), {res.n_outliers} outlier(s) of {res.n_items} image(s)."
    )
    for c in sorted(keywords):
        _say(f"  cluster {c}: {', '.join(t for t, _ in keywords[c][:8])}")
    path = steps.report(study, res.run_id, progress=progress)
    _say(f"Report: {path}")
    return 0


# --------------------------------------------------------------------------------------------- parser
def cmd_pairs_sample(args) -> int:
    from connote.coding.pairs import sample_pairs

    res = sample_pairs(
        args.study,
        args.n,
        seed=args.seed,
        name=args.name,
        thumb_size=args.thumb_size,
        progress=_progress(args),
    )
    for note in res.notes:
        _say(f"note: {note}")
    _say(f"Pair sample {res.name!r}: {res.n_pairs} random pair(s) of {res.n_images} distinct image(s).")
    _say(f"Coding sheet for the coders (open in a browser): {res.sheet}")
    _say(f"The same as a spreadsheet: {res.template}")
    _say(f"Then: connote pairs import {args.study} RATINGS.csv [--coder NAME]")
    return 0


def _import_files(args, do_import, noun: str) -> int:
    """Import each file; report its skipped lines. Exit 1 when any line was skipped."""
    status = 0
    for path in args.files:
        res = do_import(path)
        for problem in res.problems:
            _warn(f"  skipped {problem}")
        who = ", ".join(res.names) or "nobody"
        _say(f"{path}: {res.count} {noun}(s) by {who} into sample {res.sample!r}.")
        if res.problems:
            _warn(f"{path}: {len(res.problems)} line(s) skipped; fix them and import the file again")
            status = 1
    return status


def cmd_pairs_import(args) -> int:
    from connote.coding.pairs import import_ratings

    return _import_files(
        args,
        lambda path: import_ratings(
            args.study, path, name=args.name, coder=args.coder, consensus=args.consensus
        ),
        "rating",
    )


def cmd_pairs_score(args) -> int:
    from connote.coding.pairs import DIMENSIONS, score_pairs

    runs = [r for r in args.runs.split(",") if r.strip()] if args.runs else None
    rep = score_pairs(args.study, name=args.name, runs=runs)
    if args.json:
        _say(json.dumps({"sample": rep.sample, "runs": rep.to_rows(), "notes": rep.notes}, indent=2))
        return 0

    def f(x) -> str:
        return "   -  " if x is None else f"{x:6.3f}"

    _say(
        f"Pair sample {rep.sample!r}: {rep.n_pairs} pairs; rated: "
        + ", ".join(f"{d} {rep.n_rated[d]}" for d in DIMENSIONS)
    )
    for a in rep.agreement:
        alpha = "-" if a.alpha != a.alpha else f"{a.alpha:.3f}"
        _say(
            f"  {a.dimension:12} Krippendorff's alpha (ordinal) {alpha}: {a.coders} coder(s), "
            f"{a.pairs} pair(s) rated by two or more"
        )
    _say("")
    _say(
        f"{'run':>4}  {'features':8}  {'reduce':34}  {'mcs':>4}  {'seed':>5}  {'clusters':>8}  "
        f"{'den.':>6}  {'conn.':>6}  {'same/diff':>9}  {'F1 conn.':>8}"
    )
    for row in rep.to_rows():
        sd = f"{row['connotative_pairs_same']}/{row['connotative_pairs_different']}"
        _say(
            f"{row['run']:>4}  {row['features']:8}  {row['reduce'][:34]:34}  {row['min_cluster_size']:>4}  "
            f"{str(row['seed']):>5}  {row['clusters']:>8}  {f(row['denotative_quality'])}  "
            f"{f(row['connotative_quality'])}  {sd:>9}  {f(row['connotative_f1']):>8}"
        )
    for note in rep.notes:
        _say(f"note: {note}")
    out = rep.folder
    _say(f"Wrote {out / 'scores.csv'} and {out / 'quality.svg'} (box plots per setting over seeds).")
    return 0


def cmd_sets_sample(args) -> int:
    from connote.coding.sets import sample_sets

    res = sample_sets(
        args.study,
        int(args.run_id) if args.run_id else None,
        per_cluster=args.per_cluster,
        size=args.size,
        seed=args.seed,
        name=args.name,
        top_k=args.top_k,
        progress=_progress(args),
    )
    for note in res.notes:
        _say(f"note: {note}")
    _say(
        f"Set sample {res.name!r}: {res.n_sets} set(s) from {res.n_clusters} cluster(s) of run {res.run_id}."
    )
    _say(f"Matching sheet for the evaluators (open in a browser): {res.sheet}")
    _say(f"The same as a spreadsheet: {res.template}")
    _say(f"Then: connote sets import {args.study} ANSWERS.csv [--evaluator NAME]")
    return 0


def cmd_sets_import(args) -> int:
    from connote.coding.sets import import_answers

    return _import_files(
        args,
        lambda path: import_answers(args.study, path, name=args.name, evaluator=args.evaluator),
        "answer",
    )


def _merge_option(text: str | None) -> dict[int, int]:
    from connote.errors import UserError

    out = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        src, sep, dst = part.partition("=")
        try:
            out[int(src)] = int(dst)
        except ValueError:
            raise UserError(f"--merge {text!r}: give CLUSTER=INTO pairs, e.g. --merge 7=3,9=3") from None
    return out


def cmd_sets_score(args) -> int:
    from connote.coding.sets import score_sets

    rep = score_sets(args.study, name=args.name, merge=_merge_option(args.merge))
    s = rep.scores
    if args.json:
        _say(
            json.dumps(
                {
                    "sample": rep.sample,
                    "run": rep.run_id,
                    "evaluators": rep.evaluators,
                    "kappa": None if rep.kappa != rep.kappa else rep.kappa,
                    "accuracy": s.accuracy,
                    "macro_precision": s.macro_precision,
                    "macro_recall": s.macro_recall,
                    "clusters": rep.clusters,
                    "notes": rep.notes,
                },
                indent=2,
            )
        )
        return 0
    _say(
        f"Set sample {rep.sample!r} (run {rep.run_id}): {rep.answered} of {rep.n_sets} set(s) answered by "
        f"{len(rep.evaluators)} evaluator(s): {', '.join(rep.evaluators)}"
    )
    for (a, b), k in rep.pairwise_kappa.items():
        _say(f"  Cohen's kappa {a} / {b}: {k:.3f}")
    for e, acc in rep.accuracy_by_evaluator.items():
        _say(f"  accuracy of {e} alone: {acc:.3f}")
    _say(
        f"Majority label: {rep.with_majority} of {rep.answered} set(s) had a strict majority (ties: the first "
        "evaluator by name)."
    )
    merged = (
        f" after merging {', '.join(f'{k} into {v}' for k, v in rep.merged.items())}" if rep.merged else ""
    )
    _say(
        f"Accuracy {s.accuracy:.3f}, macro precision {s.macro_precision:.3f}, macro recall "
        f"{s.macro_recall:.3f}{merged}"
    )
    _say("")
    _say(f"{'cluster':>7}  {'descr.':6}  {'sets':>4}  {'precision':>9}  {'recall':>6}  keywords")
    for c in rep.clusters:
        _say(
            f"{c['cluster']:>7}  {c['description']:6}  {c['sets']:>4}  {c['precision']:>9.3f}  "
            f"{c['recall']:>6.3f}  {c['keywords'][:60]}"
        )
    for note in rep.notes:
        _say(f"note: {note}")
    _say(f"Wrote {rep.scores_csv}")
    return 0


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _add_hdbscan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-samples", type=int, help="HDBSCAN min samples (default: = min cluster size)")
    p.add_argument(
        "--selection",
        choices=["eom", "leaf"],
        help="HDBSCAN cluster selection (default: leaf below 500 images, else eom as in the paper)",
    )


def _add_feature_sources(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text", default="minilm", help="text embedder whose vectors to use")
    p.add_argument("--image", default="efficientnet-lite0", help="image embedder whose vectors to use")
    p.add_argument("--descriptions", help="description set (default: the latest)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="connote",
        description="Cluster images by what they mean: describe (S1), embed (S2), reduce (S3), cluster (S4), "
        "explain (S5), report.",
    )
    parser.add_argument("--version", action="version", version=f"connote {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("run", help="the whole pipeline on a folder of images, offline by default")
    p.add_argument("images", help="folder of images (searched recursively)")
    p.add_argument("-o", "--output", required=True, help="study folder to create or reuse")
    p.add_argument(
        "--describer", default="offline", help="offline (default), openai:MODEL, ollama:MODEL, hf:REPO"
    )
    p.add_argument("--prompt", help="describer prompt, or @file.txt (default: the paper's prompt)")
    p.add_argument("--text", default="minilm", help="text embedder (default minilm = all-MiniLM-L6-v2)")
    p.add_argument("--reduce", default=DEFAULT_REDUCE, help=f"default {DEFAULT_REDUCE}")
    p.add_argument("--min-cluster-size", type=int, help="HDBSCAN min cluster size (default: ~1%% of images)")
    _add_hdbscan_options(p)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--top-k", type=int, default=10, help="keywords per cluster")
    _add_common(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("init", help="make a study folder and register the images")
    p.add_argument("study")
    p.add_argument("--images", required=True, help="folder of images (searched recursively)")
    _add_common(p)
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("describe", help="S1: describe every image as text")
    p.add_argument("study")
    p.add_argument(
        "--describer", default="offline", help="offline (default), openai:MODEL, ollama:MODEL, hf:REPO"
    )
    p.add_argument("--prompt", help="prompt text or @file.txt (default: the paper's prompt)")
    p.add_argument("--name", help="name of the description set (default: the describer, plus a prompt hash)")
    p.add_argument("--batch-size", type=int, help="images per model call (local models)")
    p.add_argument("--max-cost", type=float, metavar="USD", help="stop cleanly once this much is spent")
    p.add_argument("--retry-flagged", action="store_true", help="describe flagged and failed images again")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the image count, estimated tokens and cost; send nothing",
    )
    p.add_argument("--concurrency", type=int, help="requests in flight at once (API describers; default 8)")
    p.add_argument("--base-url", help="any OpenAI-compatible server, e.g. http://localhost:8000/v1")
    p.add_argument("--api-key-env", help="environment variable holding the API key (default OPENAI_API_KEY)")
    p.add_argument(
        "--max-side",
        type=int,
        help="downscale images to this many pixels on the long side before "
        "upload (default 1024; 512 with --detail low)",
    )
    p.add_argument("--detail", choices=["low", "high", "auto"], help="image detail level (default low)")
    p.add_argument("--max-tokens", type=int, help="most output tokens per description (default 400)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default: the model's)")
    p.add_argument("--timeout", type=float, help="seconds per request (default 120)")
    p.add_argument("--device", help="local models: cuda, cpu, ... (default: a GPU when present)")
    p.add_argument(
        "--batch",
        action="store_true",
        help="use the OpenAI Batch API (half price, within 24 h); "
        "resumable: run the same command again to pick the batch up",
    )
    p.add_argument("--batch-poll", type=float, default=30.0, metavar="S", help="seconds between batch polls")
    p.add_argument("--no-wait", action="store_true", help="with --batch: submit and return; collect later")
    _add_common(p)
    p.set_defaults(func=cmd_describe)

    p = sub.add_parser(
        "import-descriptions",
        help="S1 from elsewhere: captions from a CSV or JSONL file (columns image,text)",
    )
    p.add_argument("study")
    p.add_argument("file", help="CSV or JSONL; image = path relative to the images root, file name or sha256")
    p.add_argument("--name", help="description set name (default: imported:FILE_STEM)")
    p.add_argument("--no-check", action="store_true", help="do not flag refusals, empty or repetitive texts")
    p.set_defaults(func=cmd_import_descriptions)

    p = sub.add_parser("embed", help="S2: embed descriptions (and/or images) as vectors")
    p.add_argument("study")
    p.add_argument(
        "--text",
        default="minilm",
        help="minilm (default), a sentence-transformers name or path, "
        "or openai:MODEL (e.g. openai:text-embedding-3-small)",
    )
    p.add_argument("--no-text", action="store_true", help="embed images only")
    p.add_argument(
        "--image",
        help="image embedder: vgg16 (the paper's CNN baseline, torchvision weights), any "
        "torchvision model name, efficientnet-lite0 (packaged, offline), "
        "open_clip:MODEL[@PRETRAINED]",
    )
    p.add_argument(
        "--image-weights",
        metavar="FILE",
        help="a saved state_dict for the torchvision model (instead of downloading its ImageNet weights)",
    )
    p.add_argument(
        "--no-fallback",
        action="store_true",
        help="fail instead of using efficientnet-lite0 when torchvision weights cannot be had",
    )
    p.add_argument("--descriptions", help="description set (default: the latest)")
    _add_common(p)
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("cluster", help="S3+S4: reduce and cluster; prints the new run id")
    p.add_argument("study")
    p.add_argument("--features", default="text", choices=["text", "image"])
    p.add_argument(
        "--reduce",
        default=DEFAULT_REDUCE,
        help="umap:components=5,neighbors=15 (default) | pca:components=10 | pca:variance=0.8",
    )
    p.add_argument("--min-cluster-size", type=int, help="HDBSCAN min cluster size (default: ~1%% of images)")
    _add_hdbscan_options(p)
    p.add_argument("--seed", type=int, default=42)
    _add_feature_sources(p)
    _add_common(p)
    p.set_defaults(func=cmd_cluster)

    p = sub.add_parser("sweep", help="S3+S4 over a grid (the paper's by default): every setting is a run")
    p.add_argument("study")
    p.add_argument(
        "--grid",
        default="paper",
        help="paper (default: UMAP 5/10 x 5/15/30, PCA 5/10/20/80%%, "
        "min cluster size 50/100/200) or a TOML file",
    )
    p.add_argument("--features", default="text", help="text, image or text,image (default text)")
    p.add_argument("--seeds", default="42", help="comma-separated seeds, e.g. 42,48,112 (default 42)")
    _add_hdbscan_options(p)
    p.add_argument("--workers", type=int, help="parallel processes (default: from cores and free memory)")
    _add_feature_sources(p)
    _add_common(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("explain", help="S5: TF-IDF keywords per cluster")
    p.add_argument("study")
    p.add_argument("run_id", nargs="?", help="run id (default: the latest)")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--stop-words", help="extra words to leave out, comma-separated")
    p.add_argument("--keep-filler", action="store_true", help="keep words such as 'conveys', 'suggests'")
    _add_common(p)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("report", help="write the HTML report (STUDY/report/index.html)")
    p.add_argument("study")
    p.add_argument("run_id", nargs="?", help="run id (default: the latest)")
    _add_common(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("runs", help="list the clustering runs")
    p.add_argument("study")
    p.add_argument("--json", action="store_true")
    _add_common(p)
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("export", help="one row per image: image, cluster, keywords, description")
    p.add_argument("study")
    p.add_argument("run_id", nargs="?", help="run id (default: the latest)")
    p.add_argument("--format", default="csv", choices=["csv", "parquet"])
    p.add_argument("-o", "--output", help="file to write (default: STUDY/run-ID.FORMAT)")
    _add_common(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("status", help="what the study holds: images, skipped files, descriptions, runs, cost")
    p.add_argument("study")
    _add_common(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("pairs", help="validation with rated image pairs (RQ1): sample, import, score")
    pairs = p.add_subparsers(dest="pairs_command", metavar="ACTION")
    pairs.required = True
    q = pairs.add_parser("sample", help="draw random image pairs and write the coding sheet")
    q.add_argument("study")
    q.add_argument("--n", type=int, default=500, help="number of pairs (default 500, as in the study)")
    q.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    q.add_argument("--name", help="name of this sample (default 'pairs')")
    q.add_argument("--thumb-size", type=int, default=320, help="longest side of the images shown (px)")
    _add_common(q)
    q.set_defaults(func=cmd_pairs_sample)
    q = pairs.add_parser("import", help="store a coder's ratings (CSV from the coding sheet or template)")
    q.add_argument("study")
    q.add_argument("files", nargs="+", metavar="FILE.csv")
    q.add_argument("--coder", help="the coder's name, when the file has no coder column")
    q.add_argument("--consensus", action="store_true", help="these are ratings agreed in a consensus round")
    q.add_argument("--name", help="pair sample (default: the latest)")
    q.set_defaults(func=cmd_pairs_import)
    q = pairs.add_parser("score", help="agreement between coders and the quality of every run")
    q.add_argument("study")
    q.add_argument("--name", help="pair sample (default: the latest)")
    q.add_argument("--runs", help="comma-separated run ids (default: all)")
    q.add_argument("--json", action="store_true", help="print the scores as JSON")
    q.set_defaults(func=cmd_pairs_score)

    p = sub.add_parser("sets", help="interpretability test (RQ2): match image sets to cluster descriptions")
    sets = p.add_subparsers(dest="sets_command", metavar="ACTION")
    sets.required = True
    q = sets.add_parser("sample", help="draw image sets per cluster of a run and write the matching sheet")
    q.add_argument("study")
    q.add_argument("run_id", nargs="?", help="run id (default: the latest)")
    q.add_argument("--per-cluster", type=int, default=5, help="sets per cluster (default 5, as in the study)")
    q.add_argument("--size", type=int, default=3, help="images per set (default 3, as in the study)")
    q.add_argument("--top-k", type=int, default=10, help="keywords per description (default 10)")
    q.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    q.add_argument("--name", help="name of this sample (default 'sets-runID')")
    _add_common(q)
    q.set_defaults(func=cmd_sets_sample)
    q = sets.add_parser("import", help="store an evaluator's answers (CSV from the sheet or template)")
    q.add_argument("study")
    q.add_argument("files", nargs="+", metavar="FILE.csv")
    q.add_argument("--evaluator", help="the evaluator's name, when the file has no evaluator column")
    q.add_argument("--name", help="set sample (default: the latest)")
    q.set_defaults(func=cmd_sets_import)
    q = sets.add_parser("score", help="agreement, majority labels, per-cluster precision/recall, accuracy")
    q.add_argument("study")
    q.add_argument("--name", help="set sample (default: the latest)")
    q.add_argument("--merge", help="merge near-twin clusters first: CLUSTER=INTO[,...], e.g. 7=3")
    q.add_argument("--json", action="store_true", help="print the scores as JSON")
    q.set_defaults(func=cmd_sets_score)

    for extend in _EXTENSIONS:
        extend(sub)
    return parser


#: Functions ``f(subparsers)`` that add more sub-commands (kept in their own modules).
_EXTENSIONS: list = []


def main(argv: list[str] | None = None) -> int:
    from connote.errors import UserError

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # connote shows its own progress bars
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        _warn(f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        _warn("Interrupted. Everything finished so far is saved; run the same command again to continue.")
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
