"""S3-S5: ``cluster`` (one run), ``sweep`` (a grid of runs), ``explain`` (keywords), and ``run`` (the
whole pipeline on a folder of images)."""

from __future__ import annotations

from pathlib import Path

from connote.cli.common import (
    DEFAULT_REDUCE,
    DEFAULT_TEXT_EMBEDDER,
    add_describer_option,
    add_executor_option,
    add_feature_sources,
    add_hdbscan_options,
    add_json_option,
    add_max_cost_option,
    add_min_cluster_size_option,
    add_quiet_option,
    add_run_id_argument,
    add_top_k_option,
    describer_options,
    finish,
    open_study,
    positive_int,
    print_skipped,
    read_prompt,
    say,
    seed_int,
    share,
    show_progress,
    to_json,
    warn,
)
from connote.cli.describe import print_describe_summary
from connote.cli.study import init_result
from connote.defaults import DEFAULT_SEEDS


def cmd_run(args) -> int:
    """The whole pipeline through :func:`connote.steps.run`; each stage is printed as soon as it ends."""
    from connote import steps

    done: dict = {"images": args.images}

    def on_stage(name: str, result) -> None:
        done[name] = init_result(args.output, result) if name == "init" else result
        if name == "report":  # the run's page; the study index beside it is what to open first
            done["study_index"] = str(Path(result).parent.parent / "index.html")
        if not args.json:
            render_run_stage(name, done[name], args.images)

    steps.run(
        args.images,
        args.output,
        describer=args.describer,
        prompt=read_prompt(args.prompt),
        text=args.text,
        reduce=args.reduce,
        min_cluster_size=args.min_cluster_size,
        min_samples=args.min_samples,
        selection=args.selection,
        seed=args.seed,
        seeds=parse_seeds(args.seeds) if args.seeds is not None else None,
        top_k=args.top_k,
        keep_common=args.keep_common,
        progress=show_progress(args),
        max_cost=args.max_cost,
        on_stage=on_stage,
        **describer_options(args, steps.run),
    )
    done["common_terms"] = list(getattr(done["explain"], "common", []))
    done["explain"] = keyword_lists(done["explain"])
    return finish(args, done, lambda _r: None)


def keyword_lists(keywords: dict) -> dict[int, list[dict]]:
    """Cluster -> its keywords with their scores, in rank order."""
    return {c: [{"term": t, "score": float(score)} for t, score in keywords[c]] for c in sorted(keywords)}


def say_common_terms(terms) -> None:
    """The terms left out of every cluster's keywords because half or more of the clusters had them."""
    if terms:
        say(f"  common to the whole run (left out of each cluster's keywords): {', '.join(terms)}")


def say_seeds(r) -> None:
    """Which seeds ran, which was kept and why, the seeds' stability and the least stable clusters."""
    if not r.runs:
        return
    for run in r.runs:
        mark = "  <- kept" if run.run_id == r.run_id else ""
        say(
            f"  seed {run.seed}: run {run.run_id}, {run.n_clusters} cluster(s), {run.n_outliers} outlier(s)"
            f"{' (reused)' if run.reused else ''}{mark}"
        )
    say(f"Kept run {r.run_id}: {r.kept_why}.")
    say(f"Seed stability: {r.stability.describe()}")
    say(f"Cluster stability (mean best Jaccard over the other seeds): {stability_line(r.cluster_stability)}")


def stability_line(per_cluster: dict) -> str:
    """'0: 0.91, 1: 0.42 (unstable), ...' in cluster order."""
    from connote.evaluate.stability import CLUSTER_UNSTABLE_BELOW

    if not per_cluster:
        return "no clusters"
    return ", ".join(
        f"{c}: {v:.2f}" + (" (unstable)" if v < CLUSTER_UNSTABLE_BELOW else "")
        for c, v in sorted(per_cluster.items(), key=lambda kv: int(kv[0]))
    )


def render_run_stage(name: str, result, images) -> None:
    """One stage of ``connote run``, printed as it ends."""
    if name == "init":
        say(
            f"Found {result['usable']} usable image(s) ({result['distinct']} distinct) of {result['found']} "
            f"file(s) under {images}."
        )
        print_skipped([(s["path"], s["reason"]) for s in result["skipped"]])
    elif name == "describe":
        print_describe_summary(result)
    elif name == "cluster":
        for note in result.notes:
            warn(f"note: {note}")
        say(
            f"Run {result.run_id}: {result.n_clusters} cluster(s), {result.n_outliers} outlier(s) of "
            f"{result.n_items} image(s)."
        )
        say_seeds(result)
    elif name == "explain":
        say_common_terms(getattr(result, "common", []))
        for c in sorted(result):
            say(f"  cluster {c}: {', '.join(t for t, _ in result[c][:8])}")
    elif name == "report":
        say(f"Report: {result}")
        say(f"Study index: {Path(result).parent.parent / 'index.html'}")


def add_run(sub) -> None:
    p = sub.add_parser("run", help="the whole pipeline on a folder of images, offline by default")
    p.add_argument("images", help="folder of images (searched recursively)")
    p.add_argument("-o", "--output", required=True, help="study folder to create or reuse")
    add_describer_option(p)
    p.add_argument("--prompt", help="describer prompt, or @file.txt (default: the paper's prompt)")
    p.add_argument(
        "--text", default=DEFAULT_TEXT_EMBEDDER, help="text embedder (default minilm = all-MiniLM-L6-v2)"
    )
    p.add_argument("--reduce", default=DEFAULT_REDUCE, help=f"default {DEFAULT_REDUCE}")
    add_min_cluster_size_option(p)
    add_hdbscan_options(p)
    add_seed_options(p)
    add_top_k_option(p)
    add_keep_common_option(p)
    add_max_cost_option(p, "with a paid describer: stop describing cleanly once this much is spent")
    add_json_option(p)
    add_quiet_option(p)
    p.set_defaults(func=cmd_run)


def add_seed_options(p) -> None:
    """--seed (exactly one run) and --seeds (these seeds, the representative one kept)."""
    default = ",".join(map(str, DEFAULT_SEEDS))
    p.add_argument(
        "--seed",
        type=seed_int,
        help=f"exactly one run, with this seed (default: one run per seed of {default}, the representative "
        "one kept: the seed whose labels agree best with the others')",
    )
    p.add_argument(
        "--seeds",
        metavar="S1,S2,...",
        help=f"one run per seed (default {default}); the representative one is kept, and how far the seeds "
        "agree is shown: pairwise ARI, cluster-count range, UNSTABLE when the mean ARI is below 0.5, and "
        "each kept cluster's stability",
    )


def add_keep_common_option(p) -> None:
    p.add_argument(
        "--keep-common",
        action="store_true",
        help="keep terms that half or more of the clusters have in their keywords (default: shown once, "
        "as common to the whole run, and left out of each cluster's list)",
    )


def parse_seeds(text: str) -> list[int]:
    """'42,48,112' -> [42, 48, 112]; a one-line error for anything else."""
    from connote import numbers
    from connote.errors import UserError

    seeds = [numbers.seed(s, "--seeds") for s in text.split(",") if s.strip()]
    if not seeds:
        raise UserError("--seeds needs at least one seed, e.g. --seeds 42,48,112")
    return seeds


def cmd_cluster(args) -> int:

    from connote import steps

    study = open_study(args.study)
    options = dict(
        reduce=args.reduce,
        min_cluster_size=args.min_cluster_size,
        min_samples=args.min_samples,
        selection=args.selection,
        text=args.text,
        image=args.image,
        description_set=args.descriptions,
    )
    if args.clusterer == "evoc":
        return cmd_cluster_evoc(args, study)
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None
    res = steps.cluster(study, args.features, seed=args.seed, seeds=seeds, **options)
    result = {**to_json(res), "study": study.path, "left_out": left_out(study, res.run_id)}
    return finish(args, result, render_cluster)


def _render_made(r: dict) -> None:
    verb = "Reused" if r["reused"] else "Made"
    warn(
        f"{verb} run {r['run_id']}: {r['n_clusters']} cluster(s), {r['n_outliers']} outlier(s) of "
        f"{r['n_items']} image(s), min cluster size {r['min_cluster_size']}, seed {r['seed']}."
    )


def render_cluster(r: dict) -> None:
    for note in r["notes"]:
        warn(f"note: {note}")
    for run in r["runs"] or [r]:
        _render_made(run)
    warn_left_out(r["study"], r["left_out"])
    if r["runs"]:  # on stderr, as the lines above: stdout is the run id alone (RUN=$(connote cluster S))
        for run in r["runs"]:
            kept = "  <- kept" if run["run_id"] == r["run_id"] else ""
            warn(
                f"run {run['run_id']}  seed {run['seed']}  {run['n_clusters']} cluster(s)  "
                f"{run['n_outliers']} outlier(s){kept}"
            )
        warn(f"Kept run {r['run_id']}: {r['kept_why']}.")
        warn(f"Seed stability: {r['stability_text']}")
        warn(
            f"Cluster stability (mean best Jaccard over the other seeds): {stability_line(r['cluster_stability'])}"
        )
    say(str(r["run_id"]))


def left_out(study, run_id: int) -> dict:
    """The images a run left out, by reason, with their total (from the run's record)."""
    from connote.study.reporting import run_record

    return run_record(study.get_run(run_id)).get("left_out") or {}


def warn_left_out(study_path, left: dict) -> None:
    """Name the images a run left out and where to see why."""
    if left.get("total"):
        why = ", ".join(f"{n} {k}" for k, n in left.items() if k != "total" and n)
        warn(f"{left['total']} image(s) left out of this run ({why}); see `connote status {study_path}`.")


def add_cluster(sub) -> None:
    p = sub.add_parser("cluster", help="S3+S4: reduce and cluster; prints the new run id")
    p.add_argument("study")
    p.add_argument("--features", default="text", choices=["text", "image"])
    p.add_argument(
        "--reduce",
        default=DEFAULT_REDUCE,
        help=f"{DEFAULT_REDUCE} (default) | pca:components=10 | pca:variance=0.8",
    )
    add_min_cluster_size_option(p)
    add_hdbscan_options(p)
    add_seed_options(p)
    p.add_argument(
        "--method",
        dest="clusterer",  # which clusterer; a run's "method" is how it was computed (connote.fitting)
        choices=["hdbscan", "evoc"],
        default="hdbscan",
        help="hdbscan (default): --reduce then HDBSCAN; evoc: EVoC on the vectors themselves, every layer "
        "(fine to coarse) stored as a run (--reduce, --min-cluster-size, --selection do not apply)",
    )
    add_feature_sources(p)
    add_json_option(p)
    add_quiet_option(p)
    p.set_defaults(func=cmd_cluster)


def cmd_cluster_evoc(args, study) -> int:
    """``cluster --method evoc``: one EVoC fit, one run per layer."""
    from connote import evoc
    from connote.defaults import DEFAULT_SEED

    res = evoc.cluster(
        study,
        args.features,
        seed=DEFAULT_SEED if args.seed is None else args.seed,
        text=args.text,
        image=args.image,
        description_set=args.descriptions,
    )
    result = {**res.to_dict(), "study": study.path}

    def render(r: dict) -> None:
        for layer in r["layers"]:
            verb = "Reused" if layer["reused"] else "Made"
            warn(
                f"{verb} run {layer['run_id']}: EVoC layer {layer['layer']} (0 = finest), "
                f"{layer['n_clusters']} cluster(s), {layer['n_outliers']} outlier(s) of {r['n_items']} item(s)."
            )
        say(" ".join(str(i) for i in r["run_ids"]))

    return finish(args, result, render)


def cmd_sweep(args) -> int:

    from connote import steps
    from connote.errors import UserError

    study = open_study(args.study)
    seeds = parse_seeds(args.seeds)
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

    def render(r) -> None:
        say(r.table())
        say("")
        say("Seed stability per setting:")
        say(r.stability_table())
        warn(
            f"Sweep {r.grid}: {r.computed} run(s) made, {r.reused} reused; {r.reductions} reduction(s), "
            f"{r.knn_graphs} shared kNN graph(s). See `connote runs {args.study}`."
        )

    return finish(args, res, render)


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
    p.add_argument(
        "--seeds",
        default=",".join(map(str, DEFAULT_SEEDS)),
        help=f"comma-separated seeds (default {','.join(map(str, DEFAULT_SEEDS))}): each setting reports "
        "how far its seeds agree",
    )
    add_hdbscan_options(p)
    p.add_argument(
        "--workers", type=positive_int, help="parallel processes (default: from cores and free memory)"
    )
    add_feature_sources(p)
    add_json_option(p)
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
        keep_common=args.keep_common,
    )
    common = list(getattr(keywords, "common", []))

    def render(r) -> None:
        say_common_terms(r["common_terms"])
        for c, words in r["clusters"].items():
            say(f"cluster {c}: {', '.join(w['term'] for w in words)}")

    return finish(args, {"clusters": keyword_lists(keywords), "common_terms": common}, render)


def add_explain(sub) -> None:
    p = sub.add_parser("explain", help="S5: TF-IDF keywords per cluster")
    p.add_argument("study")
    add_run_id_argument(p)
    add_top_k_option(p)
    p.add_argument("--stop-words", help="extra words to leave out, comma-separated")
    p.add_argument("--keep-filler", action="store_true", help="keep words such as 'conveys', 'suggests'")
    p.add_argument(
        "--method",
        choices=["tfidf", "ctfidf"],
        default="tfidf",
        help="tfidf (the paper's, default) or ctfidf (class-based TF-IDF, as BERTopic)",
    )
    p.add_argument(
        "--diversity", type=share, default=0.0, help="0-1: re-rank by maximal marginal relevance (default 0)"
    )
    add_keep_common_option(p)
    add_json_option(p)
    add_quiet_option(p)
    p.set_defaults(func=cmd_explain)
