"""``connote codes``: every run scored against codes the team already has (metadata columns)."""

from __future__ import annotations

from connote.cli.common import add_json_option, finish, open_study, say, to_json, warn


def render_codes(r: dict) -> None:
    def f(x) -> str:
        return "-" if x is None else f"{x:.3f}"

    cols = [c for c in r["columns"] if not c["multi"]]
    for c in r["columns"]:
        say(
            f"{c['name']}: {c['codes']} code(s) on {c['coded']} image(s)"
            + (" (several per cell)" if c["multi"] else "")
        )
    say(f"Quality from the codes over {r['pairs']['how']}.")
    say("")
    head = (
        f"{'run':>4}  {'features':8}  {'reduce':32}  {'mcs':>4}  {'seed':>5}  {'clust.':>6}  {'coded':>6}  "
    )
    head += f"{'outl.':>5}  {'quality':>7}  {'same/diff':>13}"
    say(head + "".join(f"  {'ARI ' + c['name']:>{max(7, len(c['name']) + 4)}}" for c in cols))
    for row in r["runs"]:
        share = f"{row['outlier_percent']:.0f}%" if row["outlier_percent"] is not None else "-"
        sd = f"{row['pairs_same']}/{row['pairs_different']}"
        line = (
            f"{row['run']:>4}  {row['features']:8}  {row['reduce'][:32]:32}  {row['min_cluster_size']:>4}  "
            f"{str(row['seed']):>5}  {row['clusters']:>6}  {row['coded']:>6}  {share:>5}  "
            f"{f(row['quality']):>7}  {sd:>13}"
        )
        for c in cols:
            ari = row["columns"].get(c["name"], {}).get("ari")
            line += f"  {f(ari):>{max(7, len(c['name']) + 4)}}"
        say(line)
    for c in cols:
        say("")
        say(f"{c['name']}, over the coded images each run clustered (outliers left out):")
        say(f"{'run':>4}  {'images':>6}  {'ARI':>6}  {'NMI':>6}  {'homogeneity':>11}  {'completeness':>12}")
        for row in r["runs"]:
            s = row["columns"].get(c["name"])
            if s:
                say(
                    f"{row['run']:>4}  {s['n']:>6}  {f(s['ari']):>6}  {f(s['nmi']):>6}  "
                    f"{f(s['homogeneity']):>11}  {f(s['completeness']):>12}"
                )
    say("")
    say(
        "coded: coded images the run placed; outl.: the share of them that are outliers (left out of every "
        "score); quality: mean code similarity (0-2) of same-cluster pairs minus different-cluster pairs."
    )
    for note in r["notes"]:
        warn(f"note: {note}")


def cmd_codes(args) -> int:
    from connote.coding.codes import score_codes

    study = open_study(args.study)
    return finish(args, score_codes(study, args.columns, runs=args.runs), lambda r: render_codes(to_json(r)))


def add_codes(sub) -> None:
    p = sub.add_parser(
        "codes",
        help="score every run against codes you already have (metadata columns): ARI, NMI, quality",
        description="Score runs against categorical metadata columns (stance, frame, topic ...): per column "
        "the adjusted Rand index, normalised mutual information, homogeneity and completeness over the "
        "coded, clustered images (outliers left out); per run the Grimmer & King quality with the codes as "
        "pair similarity. A cell 'a;b' holds several codes. The columns are remembered for `connote report`.",
    )
    p.add_argument("study")
    p.add_argument("columns", nargs="+", metavar="COLUMN", help="metadata column(s) holding the codes")
    p.add_argument("--runs", default="all", help="all (default, derived runs included) or run ids: 3,5")
    add_json_option(p)
    p.set_defaults(func=cmd_codes)
