"""What ``pairs rate --llm`` and ``sets answer --llm`` share: their options and how a run is shown."""

from __future__ import annotations

import math

from connote.cli.common import (
    add_json_option,
    add_max_cost_option,
    add_quiet_option,
    describer_options,
    finish,
    positive_int,
    read_prompt,
    say,
    show_progress,
    warn,
)


def add_llm_options(q, size: int, who: str) -> None:
    q.add_argument("study")
    q.add_argument(
        "--llm", required=True, help="openai:MODEL (with --base-url for any server), ollama:MODEL, hf:MODEL"
    )
    q.add_argument("--name", help="sample (default: the latest)")
    q.add_argument(f"--{who}", help=f"store the answers as this {who} (default llm:MODEL)")
    q.add_argument("--base-url", help="any OpenAI-compatible server")
    q.add_argument("--concurrency", type=positive_int, help="requests at once (default: the describer's)")
    q.add_argument("--prompt", help="prompt text or @file (recorded with every answer)")
    q.add_argument(
        "--size",
        type=positive_int,
        default=size,
        help=f"longest side of the images sent (px, default {size})",
    )
    q.add_argument(
        "--max-tokens", type=positive_int, default=60, help="most output tokens per answer (default 60)"
    )
    add_max_cost_option(q, "stop before spending more than this many USD")
    q.add_argument("--dry-run", action="store_true", help="estimate tokens and cost; send nothing")
    q.add_argument("--retry-flagged", action="store_true", help="ask again where the answer was flagged")
    q.add_argument(
        "--describer-option",
        action="append",
        default=[],
        dest="describer_options",
        metavar="KEY=VALUE",
        help="any other option of the model's describer, repeatable (e.g. detail=high)",
    )
    add_json_option(q)
    add_quiet_option(q)


def run_llm_command(args, do, who: str) -> int:
    """Call ``do`` (rate_pairs or answer_sets) with the command's options and show the result."""
    options = describer_options(args, do)
    res = do(
        args.study,
        args.llm,
        name=args.name,
        prompt=read_prompt(args.prompt),
        size=args.size,
        concurrency=args.concurrency,
        max_tokens=args.max_tokens,
        base_url=args.base_url,
        max_cost=args.max_cost,
        dry_run=args.dry_run,
        retry_flagged=args.retry_flagged,
        progress=show_progress(args),
        options=options,
        **{who: getattr(args, who)},
        **({"both_orders": args.both_orders} if hasattr(args, "both_orders") else {}),
    )
    status = 1 if res.stopped or (res.failed and not (res.answered or res.from_log)) else 0
    return finish(args, res, render_coding, status)


def render_coding(r) -> None:
    if r.dry_run or r.estimate_cost_usd is not None:
        cost = "unknown" if r.estimate_cost_usd is None else f"${r.estimate_cost_usd:.4f}"
        say(
            f"Dry run, sample {r.sample!r} as {r.coder}: {r.asks} ask(s), {r.already} answered already; about "
            f"{r.input_tokens} input and {r.output_tokens} output tokens, {cost} (the budget holds each call's worst case)."
        )
        for note in r.notes:
            say(f"  {note}")
        return
    say(
        f"Sample {r.sample!r} as {r.coder}: {r.asks} ask(s); {r.already} answered before, {r.answered} "
        f"answered now, {r.from_log} from the call log, {r.flagged} flagged, {r.failed} failed; "
        f"{r.calls} call(s), ${r.cost_usd:.4f}."
    )
    if r.elsewhere:
        say(f"  {r.elsewhere} answered by another connote process meanwhile")
    for row in r.order_agreement:
        alpha = "-" if math.isnan(row["alpha"]) else f"{row['alpha']:.3f}"
        say(
            f"  {row['dimension']:12} (A,B) vs (B,A): the same answer for {row['same']} of {row['pairs']} "
            f"pair(s); Krippendorff's alpha (ordinal) {alpha}"
        )
    for problem in r.problems[:20]:
        warn(f"  {problem}")
    if len(r.problems) > 20:
        warn(f"  ... and {len(r.problems) - 20} more (see the call log)")
    for note in r.notes:
        warn(f"note: {note}")
    if r.stopped:
        warn(f"Stopped: {r.stopped}. Run the same command again to continue.")
