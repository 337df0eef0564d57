"""S2: ``embed`` descriptions (and/or images) as vectors."""

from __future__ import annotations

from connote.cli.common import (
    DEFAULT_TEXT_EMBEDDER,
    add_executor_option,
    add_json_option,
    add_quiet_option,
    finish,
    open_study,
    say,
    show_progress,
    warn,
)


def cmd_embed(args) -> int:
    import warnings

    from connote import steps
    from connote.embedders.image import WeightsFallbackWarning
    from connote.errors import UserError

    study = open_study(args.study)
    text = None if args.no_text else args.text
    image_options = {}
    if args.image_weights:
        image_options["weights_path"] = args.image_weights
    if args.no_fallback:
        image_options["fallback"] = False
    if image_options and not args.image:
        raise UserError("--image-weights and --no-fallback go with --image MODEL")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", WeightsFallbackWarning)  # printed below, plainly
        results = steps.embed(
            study,
            text,
            args.image,
            description_set=args.descriptions,
            progress=show_progress(args),
            image_options=image_options,
            executor=args.executor,
        )
    return finish(args, results, render_embed)


def render_embed(results) -> None:
    for r in results:
        if r.notice:
            warn(f"NOTE: {r.notice}")
        if getattr(r, "damage", None):
            warn(f"NOTE: {r.damage}")
        say(
            f"{r.embedder}: {r.total} input(s), {r.computed} embedded now, {r.reused} reused"
            + (f", {r.dim} dimensions" if r.dim else "")
            + "."
        )
        for path, reason in r.failed:
            warn(f"  skipped {path}: {reason}")


def add_embed(sub) -> None:
    p = sub.add_parser("embed", help="S2: embed descriptions (and/or images) as vectors")
    p.add_argument("study")
    p.add_argument(
        "--text",
        default=DEFAULT_TEXT_EMBEDDER,
        help="minilm (default; minilm:openvino, minilm:openvino-bf16 or minilm:torch name its runtime), a "
        "sentence-transformers name or path, or openai:MODEL (e.g. openai:text-embedding-3-small)",
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
    add_json_option(p)
    add_executor_option(p)
    add_quiet_option(p)
    p.set_defaults(func=cmd_embed)
