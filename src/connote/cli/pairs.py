"""Validation RQ1, rated image pairs: ``pairs sample``, ``pairs import``, ``pairs score``."""

from __future__ import annotations

from connote.cli.common import (
    add_json_option,
    add_quiet_option,
    add_seed_option,
    finish,
    import_files,
    positive_int,
    print_sample,
    say,
    show_progress,
)
from connote.cli.llmcoder import add_llm_options
from connote.defaults import DEFAULT_PAIRS

DIMS = ("denotative", "connotative")
WHOSE = {"humans": "humans'", "llm": "LLM's", "all": "humans' and the LLM's"}


def cmd_pairs_sample(args) -> int:
    from connote.coding.pairs import sample_pairs

    res = sample_pairs(
        args.study,
        args.n,
        seed=args.seed,
        name=args.name,
        thumb_size=args.thumb_size,
        progress=show_progress(args),
    )

    def render(r) -> None:
        print_sample(
            r,
            f"Pair sample {r.name!r}: {r.n_pairs} random pair(s) of {r.n_images} distinct image(s).",
            "Coding sheet for the coders",
            f"connote pairs import {args.study} RATINGS.csv [--coder NAME]",
        )

    return finish(args, res, render)


def cmd_pairs_import(args) -> int:
    from connote.coding.pairs import import_ratings

    return import_files(
        args,
        lambda path: import_ratings(
            args.study, path, name=args.name, coder=args.coder, consensus=args.consensus
        ),
        "rating",
    )


def cmd_pairs_rate(args) -> int:
    from connote.cli.llmcoder import run_llm_command
    from connote.coding.llm import rate_pairs

    return run_llm_command(args, rate_pairs, "coder")


def score_result(rep) -> dict:
    """Everything ``pairs score`` shows: the sample, the agreement between coders and every run's scores."""
    return {
        "sample": rep.sample,
        "n_pairs": rep.n_pairs,
        "n_rated": rep.n_rated,
        "agreement": rep.agreement,
        "runs": rep.to_rows(),
        "coders": rep.coders,
        "llm_coders": rep.llm_coders,
        "llm_agreement": rep.llm_agreement,
        "order_agreement": rep.order_agreement,
        "notes": rep.notes,
        "scores_csv": rep.folder / "scores.csv",
        "quality_svg": rep.folder / "quality.svg",
    }


def render_score(r: dict) -> None:
    def f(x) -> str:
        return "   -  " if x is None else f"{x:6.3f}"

    say(
        f"Pair sample {r['sample']!r}: {r['n_pairs']} pairs; rated: "
        + ", ".join(f"{d} {n}" for d, n in r["n_rated"].items())
    )
    for a in r["agreement"]:
        alpha = "-" if a.alpha != a.alpha else f"{a.alpha:.3f}"
        say(
            f"  {a.dimension:12} Krippendorff's alpha (ordinal) {alpha}: {a.coders} coder(s), "
            f"{a.pairs} pair(s) rated by two or more"
        )
    render_llm_agreement(r)
    say("")
    say(
        f"{'run':>4}  {'features':8}  {'reduce':34}  {'mcs':>4}  {'seed':>5}  {'clusters':>8}  "
        f"{'den.':>6}  {'conn.':>6}  {'same/diff':>9}  {'F1 conn.':>8}"
    )
    for row in r["runs"]:
        sd = f"{row['connotative_pairs_same']}/{row['connotative_pairs_different']}"
        say(
            f"{row['run']:>4}  {row['features']:8}  {row['reduce'][:34]:34}  {row['min_cluster_size']:>4}  "
            f"{str(row['seed']):>5}  {row['clusters']:>8}  {f(row['denotative_quality'])}  "
            f"{f(row['connotative_quality'])}  {sd:>9}  {f(row['connotative_f1']):>8}"
        )
    render_llm_quality(r)
    for note in r["notes"]:
        say(f"note: {note}")
    say(f"Wrote {r['scores_csv']} and {r['quality_svg']} (box plots per setting over seeds).")


def render_llm_agreement(r: dict) -> None:
    """The LLM coders' agreement with each human and with the humans' value, and between their orders."""
    if not r["llm_coders"]:
        return
    say(
        f"LLM coder(s), kept apart from the humans: {', '.join(r['llm_coders'])}; the quality below is "
        f"from the {WHOSE[r['coders']]} ratings"
    )
    for a in r["llm_agreement"]:
        alpha = "-" if a["alpha"] != a["alpha"] else f"{a['alpha']:.3f}"
        say(
            f"  {a['dimension']:12} alpha (ordinal) {a['llm']} / {a['with']}: {alpha} on {a['pairs']} pair(s)"
        )
    for coder, rows in r["order_agreement"].items():
        for a in rows:
            alpha = "-" if a["alpha"] != a["alpha"] else f"{a['alpha']:.3f}"
            say(
                f"  {a['dimension']:12} {coder} (A,B) / (B,A): alpha {alpha}, the same answer for "
                f"{a['same']} of {a['pairs']} pair(s)"
            )


def render_llm_quality(r: dict) -> None:
    """Every run's quality from the humans' ratings, the LLM's and both (with LLM ratings only)."""
    if not r["llm_coders"]:
        return

    def f(x) -> str:
        return "   -  " if x is None else f"{x:6.3f}"

    say("")
    say(
        f"{'run':>4}  "
        + "  ".join(f"{g + ' den.':>11}  {g + ' conn.':>11}" for g in ("humans", "llm", "all"))
    )
    for row in r["runs"]:
        cells = [f(row.get(f"{g}_{d}_quality")).rjust(11) for g in ("humans", "llm", "all") for d in DIMS]
        say(f"{row['run']:>4}  " + "  ".join(cells))


def cmd_pairs_score(args) -> int:
    from connote.coding.pairs import score_pairs

    runs = [r for r in args.runs.split(",") if r.strip()] if args.runs else None
    rep = score_pairs(args.study, name=args.name, runs=runs, coders=args.coders)
    return finish(args, score_result(rep), render_score)


def add_pairs(sub) -> None:
    p = sub.add_parser("pairs", help="validation with rated image pairs (RQ1): sample, import, score")
    pairs = p.add_subparsers(dest="pairs_command", metavar="ACTION")
    pairs.required = True
    q = pairs.add_parser("sample", help="draw random image pairs and write the coding sheet")
    q.add_argument("study")
    q.add_argument(
        "--n",
        type=positive_int,
        default=DEFAULT_PAIRS,
        help=f"number of pairs (default {DEFAULT_PAIRS}, as in the study)",
    )
    add_seed_option(q)
    q.add_argument("--name", help="name of this sample (default 'pairs')")
    q.add_argument(
        "--thumb-size", type=positive_int, default=320, help="longest side of the images shown (px)"
    )
    add_json_option(q)
    add_quiet_option(q)
    q.set_defaults(func=cmd_pairs_sample)
    q = pairs.add_parser("import", help="store a coder's ratings (CSV from the coding sheet or template)")
    q.add_argument("study")
    q.add_argument("files", nargs="+", metavar="FILE.csv")
    q.add_argument("--coder", help="the coder's name, when the file has no coder column")
    q.add_argument("--consensus", action="store_true", help="these are ratings agreed in a consensus round")
    q.add_argument("--name", help="pair sample (default: the latest)")
    add_json_option(q)
    q.set_defaults(func=cmd_pairs_import)
    q = pairs.add_parser("score", help="agreement between coders and the quality of every run")
    q.add_argument("study")
    q.add_argument("--name", help="pair sample (default: the latest)")
    q.add_argument("--runs", help="comma-separated run ids (default: all)")
    q.add_argument(
        "--coders",
        choices=["humans", "llm", "all"],
        help="whose ratings make the quality (default: humans when there are any)",
    )
    add_json_option(q)
    q.set_defaults(func=cmd_pairs_score)
    q = pairs.add_parser("rate", help="a vision LLM rates every pair as one more coder, kept apart")
    add_llm_options(q, 320, "coder")
    q.add_argument("--both-orders", action="store_true", help="ask each pair as (A,B) and (B,A)")
    q.set_defaults(func=cmd_pairs_rate)
