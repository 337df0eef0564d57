"""S1: ``describe`` (a describer writes a text per image) and ``import-descriptions`` (texts from a file)."""

from __future__ import annotations

import argparse

from connote.cli.common import (
    add_describer_option,
    add_executor_option,
    add_json_option,
    add_max_cost_option,
    add_quiet_option,
    describer_options,
    finish,
    nonneg_float,
    open_study,
    positive_float,
    positive_int,
    read_prompt,
    say,
    show_progress,
    to_json,
    warn,
)
from connote.errors import UserError
from connote.printable import shown

#: Describer options that are passed on only when given (the describer has its own defaults).
DESCRIBER_OPTIONS = (
    "concurrency",
    "base_url",
    "api_key_env",
    "max_side",
    "detail",
    "max_tokens",
    "temperature",
    "timeout",
    "device",
)


def cmd_describe(args) -> int:
    from connote import steps
    from connote.describers.work import DescribeSummary

    study = open_study(args.study)
    if args.accept or args.accept_flagged:
        from connote.cli.flagged import accept_result, print_accept

        clash = [o for o, on in (("--dry-run", args.dry_run), ("--retry-flagged", args.retry_flagged)) if on]
        clash += ["--batch"] if args.batch else []
        clash += ["--cancel-batch"] if args.cancel_batch else []
        if clash or (args.accept and args.accept_flagged):
            both = clash or ["--accept-flagged"]
            raise UserError(f"--accept describes nothing: give it without {', '.join(both)}")

        return finish(
            args, accept_result(study, args.name, args.accept or None), lambda r: print_accept(args.study, r)
        )
    if args.cancel_batch and (
        clash := [o for o in ("batch", "dry_run", "retry_flagged") if getattr(args, o)]
    ):
        flags = ", ".join("--" + o.replace("_", "-") for o in clash)
        raise UserError(f"--cancel-batch sends nothing: give it without {flags}")
    options = {}
    if args.batch_size:
        options["batch_size"] = args.batch_size
    for opt in DESCRIBER_OPTIONS:
        if getattr(args, opt, None) is not None:
            options[opt] = getattr(args, opt)
    extra = describer_options(args, steps.describe)
    if clash := sorted(set(extra) & set(options)):
        raise UserError(f"{', '.join(clash)}: given both as a flag and with --describer-option; give it once")
    options.update(extra)
    summary = steps.describe(
        study,
        args.describer,
        prompt=read_prompt(args.prompt),
        name=args.name,
        retry_flagged=args.retry_flagged,
        max_cost=args.max_cost,
        progress=show_progress(args),
        dry_run=args.dry_run,
        batch=args.batch,
        batch_poll=args.batch_poll,
        batch_wait=not args.no_wait,
        cancel_batch=args.cancel_batch,
        executor=args.executor,
        **options,
    )
    error = None
    if isinstance(summary, DescribeSummary) and summary.nothing_described:
        error = f"{args.study}: not one image could be described ({summary.failed} failed; see above)"

    def render(_result) -> None:
        print_describe_summary(summary)
        if error:
            warn(f"error: {error}")

    result = summary if error is None else {**to_json(summary), "error": error}
    return finish(args, result, render, 1 if error else 0)


def print_describe_summary(summary) -> None:
    """What a describe run did (a DescribeSummary) or, for ``--dry-run``, would do and cost (a
    DescribeEstimate)."""
    from connote.describers.work import DescribeEstimate

    if isinstance(summary, DescribeEstimate):
        mode = " with the Batch API" if summary.batch else ""
        say(
            f"Dry run: nothing was sent. Describer {summary.describer}{mode} "
            f"(description set {summary.set_name!r})."
        )
        say(
            f"Would describe {summary.images} image(s); {summary.already} of {summary.total} are done already."
        )
        say(f"Estimated tokens: {summary.input_tokens:,} in, {summary.output_tokens:,} out.")
        cost = "unknown" if summary.cost_usd is None else f"${summary.cost_usd:.4f}"
        say(f"Estimated cost: {cost}")
        for note in summary.notes:
            warn(f"note: {note}")
        return
    say(f"Describer: {summary.describer} (description set {summary.set_name!r}).")
    if summary.describer == "offline":
        say(
            "  The offline describer writes what is written in the image (OCR) and what an ImageNet CNN sees."
        )
        say(
            "  For the paper's connotative descriptions choose a vision LLM: --describer openai:gpt-4-turbo "
            "or --describer hf:llava-hf/llava-1.5-7b-hf"
        )
    say(
        f"Described {summary.described} image(s) now; {summary.already} were already described; "
        f"{summary.total} distinct image(s) in all."
    )
    if getattr(summary, "from_journal", 0):
        say(
            f"{summary.from_journal} answer(s) paid for by an earlier run were stored from its journal (not asked again)."
        )
    if getattr(summary, "note", None):
        say(f"Batch: {summary.note}.")
    if summary.cost_usd:
        say(f"Cost of this run: ${summary.cost_usd:.4f}")
    if summary.flagged or summary.failed:
        warn(f"{summary.flagged} description(s) flagged for review and {summary.failed} failed:")
        for path, reason in summary.problems[:50]:
            warn(f"  {shown(path)}: {reason}")
    if summary.retried_flagged:
        say(f"{summary.retried_flagged} output(s) failed a check and were asked for once more.")
    if summary.flagged:
        warn("Flagged descriptions are kept apart (not used); ask for them again with --retry-flagged.")
    if getattr(summary, "elsewhere", 0):
        say(f"{summary.elsewhere} image(s) were described by another connote process working on this study.")
    if getattr(summary, "elsewhere_note", None):
        warn(f"note: {summary.elsewhere_note}")
    if summary.stopped:
        warn(f"Stopped early: {summary.stopped}. Run the same command again to continue.")


def add_describe(sub) -> None:
    p = sub.add_parser("describe", help="S1: describe every image as text")
    p.add_argument("study")
    add_describer_option(p)
    p.add_argument("--prompt", help="prompt text or @file.txt (default: the paper's prompt)")
    p.add_argument("--name", help="name of the description set (default: the describer, plus a prompt hash)")
    p.add_argument("--batch-size", type=positive_int, help="images per model call (local models)")
    add_max_cost_option(p)
    p.add_argument("--retry-flagged", action="store_true", help="describe flagged and failed images again")
    p.add_argument(
        "--accept",
        nargs="+",
        metavar="IMAGE",
        help="use these flagged descriptions after all (image path, file name or sha256 prefix; see "
        "`connote status`); describes nothing",
    )
    p.add_argument("--accept-flagged", action="store_true", help="use every flagged description of the set")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="print the image count, estimated tokens and cost; send nothing",
    )
    p.add_argument(
        "--concurrency",
        type=positive_int,
        help="requests in flight at once for API describers (default 8); images read at once for offline",
    )
    p.add_argument("--base-url", help="any OpenAI-compatible server, e.g. http://localhost:8000/v1")
    p.add_argument("--api-key-env", help="environment variable holding the API key (default OPENAI_API_KEY)")
    p.add_argument(
        "--max-side",
        type=positive_int,
        help="downscale images to this many pixels on the long side before "
        "upload (default 1024; 512 with --detail low)",
    )
    p.add_argument("--detail", choices=["low", "high", "auto"], help="image detail level (default low)")
    p.add_argument("--max-tokens", type=positive_int, help="most output tokens per description (default 400)")
    p.add_argument("--temperature", type=nonneg_float, help="sampling temperature (default: the model's)")
    p.add_argument("--timeout", type=positive_float, help="seconds per request (default 120)")
    p.add_argument("--device", help="local models: cuda, cpu, ... (default: a GPU when present)")
    p.add_argument(
        "--batch",
        action="store_true",
        help="use the OpenAI Batch API (half price, within 24 h); "
        "resumable: run the same command again to pick the batch up",
    )
    p.add_argument(
        "--batch-poll", type=positive_float, default=30.0, metavar="S", help="seconds between batch polls"
    )
    p.add_argument("--no-wait", action="store_true", help="with --batch: submit and return; collect later")
    p.add_argument(
        "--cancel-batch",
        action="store_true",
        help="cancel the set's batch in flight and store what it had finished (paid for); sends nothing else",
    )
    add_json_option(p)
    add_executor_option(p)
    add_quiet_option(p)
    p.set_defaults(func=cmd_describe)


def cmd_import_descriptions(args) -> int:
    from connote import steps

    study = open_study(args.study)
    res = steps.import_descriptions(
        study, args.file, name=args.name, check=args.check, exclude_flagged=args.exclude_flagged
    )
    checked = args.check or args.exclude_flagged
    # exit 1 when a line was skipped, as every importer (pairs import, sets import, metadata)
    return finish(args, res, lambda r: render_import(r, checked), 1 if res.skipped else 0)


def render_import(r, checked: bool) -> None:
    flagged = f" ({r.flagged} flagged, {r.excluded} of them left out)" if checked else ""
    say(
        f"Imported {r.imported} description(s) into set {r.set_name!r}{flagged}; "
        f"{r.total} distinct image(s) in the study, {r.missing} without a description."
    )
    for row, reason in r.problems[:50]:
        warn(f"  {row}: {reason}")
    if len(r.problems) > 50:
        warn(f"  ... and {len(r.problems) - 50} more")


def add_import_descriptions(sub) -> None:
    p = sub.add_parser(
        "import-descriptions",
        help="S1 from elsewhere: captions from a CSV or JSONL file (columns image,text)",
    )
    p.add_argument("study")
    p.add_argument("file", help="CSV or JSONL; image = path relative to the images root, file name or sha256")
    p.add_argument("--name", help="description set name (default: imported:FILE_STEM)")
    p.add_argument(
        "--check",
        action="store_true",
        help="run the output checks (refusal, empty, repetitive, word salad); flagged texts are still used",
    )
    p.add_argument(
        "--exclude-flagged", action="store_true", help="run the output checks and keep flagged texts apart"
    )
    p.add_argument("--no-check", action="store_true", help=argparse.SUPPRESS)  # the default now
    add_json_option(p)
    p.set_defaults(func=cmd_import_descriptions)
