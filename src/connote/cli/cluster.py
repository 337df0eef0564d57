"""S3-S5: ``cluster`` (one run), ``sweep`` (a grid of runs), ``explain`` (keywords), and ``run`` (the
whole pipeline on a folder of images)."""

from __future__ import annotations

from connote.cli.common import (
    DEFAULT_REDUCE,
    add_describer_option,
    add_executor_option,
    add_feature_sources,
    add_hdbscan_options,
    add_min_cluster_size_option,
    add_quiet_option,
    add_run_id_argument,
    open_study,
    print_skipped,
    read_prompt,
    say,
    show_progress,
    warn,
)
from connote.cli.describe import print_describe_summary


def cmd_run(args) -> int:
    from connote import steps

    progress = show_progress(args)
    study = steps.init(args.output, args.images, progress=progress)
    s = steps.init_summary(study)
    say(f"Found {s.ok} usable image(s) ({s.distinct} distinct) of {s.found} file(s) under {args.images}.")
    print_skipped(s.skipped)
    if s.ok == 0:
        warn(f"error: no usable images under {args.images}")
        return 1
    summary = steps.describe(study, args.describer, prompt=read_prompt(args.prompt), progress=progress)
    print_describe_summary(summary)
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
        warn(f"note: {note}")
    keywords = steps.explain(study, res.run_id, top_k=args.top_k)
    say(
        f"Run {res.run_id}: {res.n_clusters} cluster(s), {res.n_outliers} outlier(s) of {res.n_items} image(s)."
    )
    for c in sorted(keywords):
        say(f"  cluster {c}: {', '.join(t for t, _ in keywords[c][:8])}")
    path = steps.report(study, res.run_id, progress=progress)
    say(f"Report: {path}")
    return 0


def add_run(sub) -> None:
    p = sub.add_parser("run", help="the whole pipeline on a folder of images, offline by default")
    p.add_argument("images", help="folder of images (searched recursively)")
    p.add_argument("-o", "--output", required=True, help="study folder to create or reuse")
    add_describer_option(p)
    p.add_argument("--prompt", help="describer prompt, or @file.txt (default: the paper's prompt)")
    p.add_argument("--text", default="minilm", help="text embedder (default minilm = all-MiniLM-L6-v2)")
    p.add_argument("--reduce", default=DEFAULT_REDUCE, help=f"default {DEFAULT_REDUCE}")
    add_min_cluster_size_option(p)
    add_hdbscan_options(p)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--top-k", type=int, default=10, help="keywords per cluster")
    add_quiet_option(p)
    p.set_defaults(func=cmd_run)


def cmd_cluster(args) -> int:
    from connote import steps

    study = open_study(args.study)
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
        warn(f"note: {note}")
    verb = "Reused" if res.reused else "Made"
    warn(
        f"{verb} run {res.run_id}: {res.n_clusters} cluster(s), {res.n_outliers} outlier(s) of {res.n_items} "
        f"image(s), min cluster size {res.min_cluster_size}."
    )
    warn_left_out(study, res.run_id)
    say(str(res.run_id))
    return 0


def warn_left_out(study, run_id: int) -> None:
    """Name the images a run left out (the count is in its record), and where to see why."""
    from connote.study.reporting import run_record

    left = run_record(study.get_run(run_id)).get("left_out") or {}
    if left.get("total"):
        why = ", ".join(f"{n} {k}" for k, n in left.items() if k != "total" and n)
        warn(f"{left['total']} image(s) left out of this run ({why}); see `connote status {study.path}`.")


def add_cluster(sub) -> None:
    p = sub.add_parser("cluster", help="S3+S4: reduce and cluster; prints the new run id")
    p.add_argument("study")
    p.add_argument("--features", default="text", choices=["text", "image"])
    p.add_argument(
        "--reduce",
        default=DEFAULT_REDUCE,
        help="umap:components=5,neighbors=15 (default) | pca:components=10 | pca:variance=0.8",
    )
    add_min_cluster_size_option(p)
    add_hdbscan_options(p)
    p.add_argument("--seed", type=int, default=42)
    add_feature_sources(p)
    add_quiet_option(p)
    p.set_defaults(func=cmd_cluster)


def cmd_sweep(args) -> int:
    from connote import steps
    from connote.errors import UserError

    study = open_study(args.study)
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
        progress=show_progress(args),
        say=warn,
        executor=args.executor,
    )
    say(res.table())
    warn(
        f"Sweep {res.grid}: {res.computed} run(s) made, {res.reused} reused; {res.reductions} reduction(s), "
        f"{res.knn_graphs} shared kNN graph(s). See `connote runs {args.study}`."
    )
    return 0


def add_sweep(sub) -> None:
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
    add_hdbscan_options(p)
    p.add_argument("--workers", type=int, help="parallel processes (default: from cores and free memory)")
    add_feature_sources(p)
    add_executor_option(p)
    add_quiet_option(p)
    p.set_defaults(func=cmd_sweep)


def cmd_explain(args) -> int:
    from connote import steps

    study = open_study(args.study)
    extra = [w.strip() for w in (args.stop_words or "").split(",") if w.strip()]
    keywords = steps.explain(
        study,
        args.run_id,
        top_k=args.top_k,
        extra_stop_words=extra,
        filler=not args.keep_filler,
        method=args.method,
        diversity=args.diversity,
    )
    for c in sorted(keywords):
        say(f"cluster {c}: {', '.join(t for t, _ in keywords[c])}")
    return 0


def add_explain(sub) -> None:
    p = sub.add_parser("explain", help="S5: TF-IDF keywords per cluster")
    p.add_argument("study")
    add_run_id_argument(p)
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--stop-words", help="extra words to leave out, comma-separated")
    p.add_argument("--keep-filler", action="store_true", help="keep words such as 'conveys', 'suggests'")
    p.add_argument(
        "--method",
        choices=["tfidf", "ctfidf"],
        default="tfidf",
        help="tfidf (the paper's, default) or ctfidf (class-based TF-IDF, as BERTopic)",
    )
    p.add_argument(
        "--diversity", type=float, default=0.0, help="0-1: re-rank by maximal marginal relevance (default 0)"
    )
    add_quiet_option(p)
    p.set_defaults(func=cmd_explain)
