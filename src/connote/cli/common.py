"""What every command shares: printing, opening a study, and the option groups used by more than one
command (one helper each)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

from connote import numbers
from connote.defaults import (
    DEFAULT_DESCRIBER,
    DEFAULT_IMAGE_EMBEDDER,
    DEFAULT_REDUCE,
    DEFAULT_SEED,
    DEFAULT_TEXT_EMBEDDER,
    DEFAULT_TOP_K,
)
from connote.errors import UserError
from connote.printable import safe_line, shown

__all__ = ["DEFAULT_REDUCE", "DEFAULT_SEED", "DEFAULT_TOP_K", "DEFAULT_TEXT_EMBEDDER"]


def say(msg: str = "") -> None:
    """A line of the command's result, on stdout (terminal escapes in it are printed escaped)."""
    print(safe_line(msg), flush=True)


def warn(msg: str) -> None:
    """A note, warning or problem, on stderr (terminal escapes in it are printed escaped)."""
    print(safe_line(msg), file=sys.stderr, flush=True)


def show_progress(args) -> bool:
    """Whether to draw progress bars (not with ``--quiet``)."""
    return not getattr(args, "quiet", False)


def open_study(path: str):
    from connote.study import Study

    return Study.open(path)


def print_skipped(skipped: list[tuple[str, str]], limit: int = 50) -> None:
    """Name the files that are not usable images, with the reason, up to ``limit`` of them."""
    if not skipped:
        return
    warn(f"Skipped {len(skipped)} file(s) that are not usable images:")
    for path, reason in skipped[:limit]:
        warn(f"  {shown(path)}: {reason}")
    if len(skipped) > limit:
        warn(f"  ... and {len(skipped) - limit} more (see `connote status`)")


def read_prompt(value: str | None) -> str | None:
    """A prompt given on the command line, or read from the file named after ``@``."""
    if value and value.startswith("@"):
        path = Path(value[1:])
        if not path.is_file():
            raise UserError(f"{path}: prompt file not found")
        return path.read_text(encoding="utf-8").strip()
    return value


# --------------------------------------------------------------------------------------------- results
def to_json(obj):
    """A command's result as plain JSON values: dataclasses and mappings as objects, paths as strings,
    NaN as null, tuple keys (pairs of names) joined with ' / '. A result with a ``to_dict()`` says itself
    what it carries (e.g. derived values such as a seed-stability verdict)."""
    if callable(getattr(obj, "to_dict", None)) and not isinstance(obj, type):
        return to_json(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {
            (" / ".join(map(str, k)) if isinstance(k, tuple) else str(k)): to_json(v) for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [to_json(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, sqlite3.Row):
        return {k: to_json(obj[k]) for k in obj.keys()}  # noqa: SIM118 - a Row iterates over its values
    if type(obj).__module__ == "numpy" and hasattr(obj, "item"):  # numpy scalars
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def finish(args, result, render: Callable[[object], None], status: int = 0) -> int:
    """Print a command's result: as JSON with ``--json`` (everything the text shows), else as text."""
    if getattr(args, "json", False):
        say(json.dumps(to_json(result), indent=2))  # non-ASCII as \u escapes: valid, and safe in a terminal
    else:
        render(result)
    return status


# --------------------------------------------------------------------------------------------- number types
def _option_type(check: Callable, name: str) -> Callable[[str], object]:
    """An argparse ``type=`` from a check of :mod:`connote.numbers`: its message is argparse's error."""

    def parse(text: str):
        try:
            return check(text)
        except UserError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name
    return parse


#: The one type per kind of number an option takes (every command uses these, never a bare int/float).
positive_int = _option_type(lambda t: numbers.whole(t, low=1), "positive_int")
nonneg_int = _option_type(lambda t: numbers.whole(t, low=0), "nonneg_int")
positive_float = _option_type(lambda t: numbers.real(t, above=0), "positive_float")
nonneg_float = _option_type(lambda t: numbers.real(t, low=0), "nonneg_float")
share = _option_type(lambda t: numbers.real(t, low=0, high=1), "share")  # 0-1
seed_int = _option_type(lambda t: numbers.seed(t, None), "seed")
run_id_int = _option_type(lambda t: numbers.run_id(t, None), "run_id")
budget_usd = _option_type(lambda t: numbers.budget(t, None), "budget")
min_cluster_size_int = _option_type(lambda t: numbers.whole(t, low=2), "min_cluster_size")


# --------------------------------------------------------------------------------------------- option groups
def add_seed_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--seed", type=seed_int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})"
    )


def add_top_k_option(p: argparse.ArgumentParser, what: str = "keywords per cluster") -> None:
    p.add_argument(
        "--top-k", type=positive_int, default=DEFAULT_TOP_K, help=f"{what} (default {DEFAULT_TOP_K})"
    )


def add_max_cost_option(
    p: argparse.ArgumentParser, help: str = "stop cleanly once this much is spent"
) -> None:
    """``--max-cost USD`` of every command that pays for model calls: a finite number >= 0."""
    p.add_argument("--max-cost", type=budget_usd, metavar="USD", help=help)


def add_json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the result as JSON (everything the text shows)")


def add_quiet_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def add_executor_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--executor",
        default="local",
        metavar="local|ray[:ADDRESS]",
        help="where the work runs: local (default), ray (RAY_ADDRESS, else Ray on this machine), "
        "ray:HOST:PORT or ray:ray://HOST:10001 (a Ray cluster)",
    )


def add_describer_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--describer",
        default=DEFAULT_DESCRIBER,
        help=f"{DEFAULT_DESCRIBER} (default), openai:MODEL, ollama:MODEL, hf:REPO",
    )
    p.add_argument(
        "--describer-option",
        action="append",
        default=[],
        dest="describer_options",
        metavar="KEY=VALUE",
        help="any other option of the describer, repeatable (e.g. runtime=bundled for the offline one)",
    )


def option_value(text: str):
    """A command-line option value: true/false, a whole number, a decimal number, else the text."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def describer_options(args, step) -> dict:
    """``--describer-option KEY=VALUE`` options as a dict for ``step`` (``steps.describe`` or ``steps.run``),
    with a clear message for one without '=' and for a name the step takes itself (``name``, ``prompt``)."""
    import inspect

    options = {}
    for item in getattr(args, "describer_options", None) or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UserError(f"--describer-option takes KEY=VALUE (e.g. runtime=bundled); got {item!r}")
        options[key.strip().replace("-", "_")] = option_value(value)
    params = inspect.signature(step).parameters
    own = {n for n, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
    if taken := sorted(set(options) & own):
        raise UserError(f"{', '.join(taken)}: an option of the command itself, not --describer-option")
    return options


def add_min_cluster_size_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--min-cluster-size",
        type=min_cluster_size_int,
        help="HDBSCAN min cluster size (default: ~1%% of images)",
    )


def add_hdbscan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--min-samples", type=positive_int, help="HDBSCAN min samples (default: = min cluster size)"
    )
    p.add_argument(
        "--selection",
        choices=["eom", "leaf"],
        help="HDBSCAN cluster selection (default: leaf below 500 images, else eom as in the paper)",
    )


def add_feature_sources(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text", default=DEFAULT_TEXT_EMBEDDER, help="text embedder whose vectors to use")
    p.add_argument("--image", default=DEFAULT_IMAGE_EMBEDDER, help="image embedder whose vectors to use")
    p.add_argument("--descriptions", help="description set (default: the latest)")


def add_run_id_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id", nargs="?", type=run_id_int, help="run id (default: the latest)")


def print_sample(sample, headline: str, sheet_for: str, then: str) -> None:
    """What ``pairs sample`` and ``sets sample`` made: notes, the sheet for the coders, what comes next."""
    for note in sample.notes:
        say(f"note: {note}")
    say(headline)
    say(f"{sheet_for} (open in a browser): {sample.sheet}")
    say(f"The same as a spreadsheet: {sample.template}")
    say(f"Then: {then}")


def import_files(args, do_import, noun: str) -> int:
    """Import each of ``args.files``; report its skipped lines and the lines that override earlier ones.
    Exit 1 when any line was skipped."""
    results = [{"file": path, **to_json(do_import(path))} for path in args.files]

    def render(rows: list[dict]) -> None:
        for r in rows:
            for problem in r["problems"]:
                warn(f"  skipped {problem}")
            for note in r.get("notes", []):
                warn(f"  note: {note}")
            who = ", ".join(shown(n) for n in r["names"]) or "nobody"
            say(f"{r['file']}: {r['count']} {noun}(s) by {who} into sample {r['sample']!r}.")
            if r["problems"]:
                warn(f"{r['file']}: {len(r['problems'])} line(s) skipped; fix them and import the file again")

    return finish(args, results, render, 1 if any(r["problems"] for r in results) else 0)
