"""What every command shares: printing, opening a study, and the option groups used by more than one
command (one helper each)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from connote.printable import safe_line, shown

DEFAULT_REDUCE = "umap:components=5,neighbors=15"


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
        from connote.errors import UserError

        path = Path(value[1:])
        if not path.is_file():
            raise UserError(f"{path}: prompt file not found")
        return path.read_text(encoding="utf-8").strip()
    return value


# --------------------------------------------------------------------------------------------- option groups
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
        "--describer", default="offline", help="offline (default), openai:MODEL, ollama:MODEL, hf:REPO"
    )


def add_min_cluster_size_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-cluster-size", type=int, help="HDBSCAN min cluster size (default: ~1%% of images)")


def add_hdbscan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--min-samples", type=int, help="HDBSCAN min samples (default: = min cluster size)")
    p.add_argument(
        "--selection",
        choices=["eom", "leaf"],
        help="HDBSCAN cluster selection (default: leaf below 500 images, else eom as in the paper)",
    )


def add_feature_sources(p: argparse.ArgumentParser) -> None:
    p.add_argument("--text", default="minilm", help="text embedder whose vectors to use")
    p.add_argument("--image", default="efficientnet-lite0", help="image embedder whose vectors to use")
    p.add_argument("--descriptions", help="description set (default: the latest)")


def add_run_id_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_id", nargs="?", help="run id (default: the latest)")


def import_files(args, do_import, noun: str) -> int:
    """Import each of ``args.files``; report its skipped lines and the lines that override earlier ones.
    Exit 1 when any line was skipped."""
    status = 0
    for path in args.files:
        res = do_import(path)
        for problem in res.problems:
            warn(f"  skipped {problem}")
        for note in getattr(res, "notes", []):
            warn(f"  note: {note}")
        who = ", ".join(shown(n) for n in res.names) or "nobody"
        say(f"{path}: {res.count} {noun}(s) by {who} into sample {res.sample!r}.")
        if res.problems:
            warn(f"{path}: {len(res.problems)} line(s) skipped; fix them and import the file again")
            status = 1
    return status
