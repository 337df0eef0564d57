"""Validation RQ2, matching image sets to cluster descriptions: ``sets sample``, ``sets import``,
``sets score``."""

from __future__ import annotations

from connote.cli.common import (
    add_json_option,
    add_quiet_option,
    add_run_id_argument,
    add_seed_option,
    add_top_k_option,
    finish,
    import_files,
    positive_int,
    print_sample,
    run_id_int,
    say,
    show_progress,
)
from connote.cli.llmcoder import add_llm_options
from connote.defaults import DEFAULT_SET_SIZE, DEFAULT_SETS_PER_CLUSTER


def cmd_sets_sample(args) -> int:
    from connote.coding.sets import sample_sets

    res = sample_sets(
        args.study,
        args.run_id,
        per_cluster=args.per_cluster,
        size=args.size,
        seed=args.seed,
        name=args.name,
        top_k=args.top_k,
        progress=show_progress(args),
        show=args.show,
        labeller=args.labeller,
    )

    def render(r) -> None:
        print_sample(
            r,
            f"Set sample {r.name!r}: {r.n_sets} set(s) from {r.n_clusters} cluster(s) of run {r.run_id}.",
            "Matching sheet for the evaluators",
            f"connote sets import {args.study} ANSWERS.csv [--evaluator NAME]",
        )

    return finish(args, res, render)


def cmd_sets_import(args) -> int:
    from connote.coding.sets import import_answers

    return import_files(
        args,
        lambda path: import_answers(args.study, path, name=args.name, evaluator=args.evaluator),
        "answer",
    )


def cmd_sets_answer(args) -> int:
    from connote.cli.llmcoder import run_llm_command
    from connote.coding.llm import answer_sets

    return run_llm_command(args, answer_sets, "evaluator")


def parse_merge_option(text: str | None) -> dict[int, int]:
    """``--merge 7=3,9=3`` as ``{7: 3, 9: 3}``."""
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


def score_result(rep) -> dict:
    """Everything ``sets score`` shows: agreement, each evaluator's accuracy, the majority label's scores
    and the per-cluster table."""
    s = rep.scores
    return {
        "sample": rep.sample,
        "run": rep.run_id,
        "scored_run": rep.scored_run,
        "shown": rep.shown,
        "n_sets": rep.n_sets,
        "answered": rep.answered,
        "evaluators": rep.evaluators,
        "kappa": rep.kappa,
        "pairwise_kappa": [{"evaluators": [a, b], "kappa": k} for (a, b), k in rep.pairwise_kappa.items()],
        "accuracy_by_evaluator": rep.accuracy_by_evaluator,
        "llm_evaluators": rep.llm_evaluators,
        "llm_kappa": rep.llm_kappa,
        "llm_accuracy": rep.llm_accuracy,
        "with_majority": rep.with_majority,
        "accuracy": s.accuracy,
        "macro_precision": s.macro_precision,
        "macro_recall": s.macro_recall,
        "merged": rep.merged,
        "clusters": rep.clusters,
        "notes": rep.notes,
        "scores_csv": rep.scores_csv,
    }


def render_score(r: dict) -> None:
    scored = (
        f", scored as its derived run {r['scored_run']}" if r["scored_run"] not in (None, r["run"]) else ""
    )
    say(
        f"Set sample {r['sample']!r} (run {r['run']}{scored}; evaluators saw the clusters' {r['shown']}): "
        f"{r['answered']} of {r['n_sets']} set(s) answered by {len(r['evaluators'])} evaluator(s): "
        f"{', '.join(r['evaluators'])}"
    )
    for pk in r["pairwise_kappa"]:
        a, b = pk["evaluators"]
        say(f"  Cohen's kappa {a} / {b}: {pk['kappa']:.3f}")
    for e, acc in r["accuracy_by_evaluator"].items():
        say(f"  accuracy of {e} alone: {acc:.3f}")
    if r["llm_evaluators"]:
        say(f"LLM evaluator(s), kept apart from the majority: {', '.join(r['llm_evaluators'])}")
        for k in r["llm_kappa"]:
            kappa = "-" if k["kappa"] != k["kappa"] else f"{k['kappa']:.3f}"
            say(f"  Cohen's kappa {k['llm']} / {k['with']}: {kappa} on {k['sets']} set(s)")
        for e, acc in r["llm_accuracy"].items():
            say(f"  accuracy of {e} alone: {'-' if acc != acc else f'{acc:.3f}'}")
    say(
        f"Majority label: {r['with_majority']} of {r['answered']} set(s) had a strict majority (ties: the first "
        "evaluator by name)."
    )
    merges = ", ".join(f"{k} into {v}" for k, v in r["merged"].items())
    merged = f" after merging {merges}" if merges else ""
    say(
        f"Accuracy {r['accuracy']:.3f}, macro precision {r['macro_precision']:.3f}, macro recall "
        f"{r['macro_recall']:.3f}{merged}"
    )
    say("")
    say(f"{'cluster':>7}  {'descr.':6}  {'sets':>4}  {'precision':>9}  {'recall':>6}  keywords")
    for c in r["clusters"]:
        say(
            f"{c['cluster']:>7}  {c['description']:6}  {c['sets']:>4}  {c['precision']:>9.3f}  "
            f"{c['recall']:>6.3f}  {c['keywords'][:60]}"
        )
    for note in r["notes"]:
        say(f"note: {note}")
    say(f"Wrote {r['scores_csv']}")


def cmd_sets_score(args) -> int:
    from connote.coding.sets import score_sets

    rep = score_sets(args.study, name=args.name, merge=parse_merge_option(args.merge), run_id=args.run)
    return finish(args, score_result(rep), render_score)


def add_sets(sub) -> None:
    p = sub.add_parser("sets", help="interpretability test (RQ2): match image sets to cluster descriptions")
    sets = p.add_subparsers(dest="sets_command", metavar="ACTION")
    sets.required = True
    q = sets.add_parser("sample", help="draw image sets per cluster of a run and write the matching sheet")
    q.add_argument("study")
    add_run_id_argument(q)
    q.add_argument(
        "--per-cluster",
        type=positive_int,
        default=DEFAULT_SETS_PER_CLUSTER,
        help=f"sets per cluster (default {DEFAULT_SETS_PER_CLUSTER}, as in the study)",
    )
    q.add_argument(
        "--size",
        type=positive_int,
        default=DEFAULT_SET_SIZE,
        help=f"images per set (default {DEFAULT_SET_SIZE}, as in the study)",
    )
    add_top_k_option(q, "keywords per description")
    add_seed_option(q)
    q.add_argument("--name", help="name of this sample (default 'sets-runID')")
    q.add_argument(
        "--show", choices=["keywords", "labels"], default="keywords", help="what evaluators match sets to"
    )
    q.add_argument(
        "--labeller", help="with --show labels: whose labels (default: the latest `connote label`)"
    )
    add_json_option(q)
    add_quiet_option(q)
    q.set_defaults(func=cmd_sets_sample)
    q = sets.add_parser("import", help="store an evaluator's answers (CSV from the sheet or template)")
    q.add_argument("study")
    q.add_argument("files", nargs="+", metavar="FILE.csv")
    q.add_argument("--evaluator", help="the evaluator's name, when the file has no evaluator column")
    q.add_argument("--name", help="set sample (default: the latest)")
    add_json_option(q)
    q.set_defaults(func=cmd_sets_import)
    q = sets.add_parser("score", help="agreement, majority labels, per-cluster precision/recall, accuracy")
    q.add_argument("study")
    q.add_argument("--name", help="set sample (default: the latest)")
    q.add_argument("--merge", help="merge near-twin clusters first: CLUSTER=INTO[,...], e.g. 7=3")
    q.add_argument(
        "--run",
        type=run_id_int,
        help="score a run derived from the sample's run by `connote merge` (its merges)",
    )
    add_json_option(q)
    q.set_defaults(func=cmd_sets_score)
    q = sets.add_parser("answer", help="a vision LLM matches every set as one more evaluator, kept apart")
    add_llm_options(q, 240, "evaluator")
    q.set_defaults(func=cmd_sets_answer)
