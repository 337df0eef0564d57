"""Validation RQ1, rated image pairs: ``pairs sample``, ``pairs import``, ``pairs score``."""

from __future__ import annotations

import json

from connote.cli.common import add_quiet_option, import_files, say, show_progress


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
    for note in res.notes:
        say(f"note: {note}")
    say(f"Pair sample {res.name!r}: {res.n_pairs} random pair(s) of {res.n_images} distinct image(s).")
    say(f"Coding sheet for the coders (open in a browser): {res.sheet}")
    say(f"The same as a spreadsheet: {res.template}")
    say(f"Then: connote pairs import {args.study} RATINGS.csv [--coder NAME]")
    return 0


def cmd_pairs_import(args) -> int:
    from connote.coding.pairs import import_ratings

    return import_files(
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
        say(json.dumps({"sample": rep.sample, "runs": rep.to_rows(), "notes": rep.notes}, indent=2))
        return 0

    def f(x) -> str:
        return "   -  " if x is None else f"{x:6.3f}"

    say(
        f"Pair sample {rep.sample!r}: {rep.n_pairs} pairs; rated: "
        + ", ".join(f"{d} {rep.n_rated[d]}" for d in DIMENSIONS)
    )
    for a in rep.agreement:
        alpha = "-" if a.alpha != a.alpha else f"{a.alpha:.3f}"
        say(
            f"  {a.dimension:12} Krippendorff's alpha (ordinal) {alpha}: {a.coders} coder(s), "
            f"{a.pairs} pair(s) rated by two or more"
        )
    say("")
    say(
        f"{'run':>4}  {'features':8}  {'reduce':34}  {'mcs':>4}  {'seed':>5}  {'clusters':>8}  "
        f"{'den.':>6}  {'conn.':>6}  {'same/diff':>9}  {'F1 conn.':>8}"
    )
    for row in rep.to_rows():
        sd = f"{row['connotative_pairs_same']}/{row['connotative_pairs_different']}"
        say(
            f"{row['run']:>4}  {row['features']:8}  {row['reduce'][:34]:34}  {row['min_cluster_size']:>4}  "
            f"{str(row['seed']):>5}  {row['clusters']:>8}  {f(row['denotative_quality'])}  "
            f"{f(row['connotative_quality'])}  {sd:>9}  {f(row['connotative_f1']):>8}"
        )
    for note in rep.notes:
        say(f"note: {note}")
    out = rep.folder
    say(f"Wrote {out / 'scores.csv'} and {out / 'quality.svg'} (box plots per setting over seeds).")
    return 0


def add_pairs(sub) -> None:
    p = sub.add_parser("pairs", help="validation with rated image pairs (RQ1): sample, import, score")
    pairs = p.add_subparsers(dest="pairs_command", metavar="ACTION")
    pairs.required = True
    q = pairs.add_parser("sample", help="draw random image pairs and write the coding sheet")
    q.add_argument("study")
    q.add_argument("--n", type=int, default=500, help="number of pairs (default 500, as in the study)")
    q.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    q.add_argument("--name", help="name of this sample (default 'pairs')")
    q.add_argument("--thumb-size", type=int, default=320, help="longest side of the images shown (px)")
    add_quiet_option(q)
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
