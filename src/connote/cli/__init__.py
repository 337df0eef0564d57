"""The command line: parse, call the library (:mod:`connote.steps`, :mod:`connote.coding`), print.
Nothing else lives here.

One module per command group, each command's options defined beside its handler: ``study`` (init, status,
runs, export, report), ``describe`` (describe, import-descriptions), ``embed``, ``cluster`` (run, cluster,
sweep, explain), ``derive`` (label, merge, assign-outliers, metadata), ``pairs`` and ``sets`` (the validation
studies), ``codes`` (runs against the team's own codes); ``common`` holds the printing helpers and
the option groups several commands share. Heavy modules are imported inside the handlers so that
``connote --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys

from connote import __version__
from connote.cli import cluster, codes, derive, describe, embed, pairs, sets, study
from connote.cli.common import warn

#: The sub-commands in the order ``connote --help`` lists them.
COMMANDS = (
    cluster.add_run,
    study.add_init,
    describe.add_describe,
    describe.add_import_descriptions,
    embed.add_embed,
    cluster.add_cluster,
    cluster.add_sweep,
    cluster.add_explain,
    derive.add_label,
    derive.add_merge,
    derive.add_assign_outliers,
    derive.add_metadata,
    study.add_report,
    study.add_runs,
    study.add_export,
    study.add_status,
    pairs.add_pairs,
    sets.add_sets,
    codes.add_codes,
)


class UsageError(Exception):
    """A command line argparse cannot read: shown as one line like any other user error."""


class Parser(argparse.ArgumentParser):
    """argparse, with its errors raised (as one line, and as JSON with ``--json``) instead of printed."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="connote",
        description="Cluster images by what they mean: describe (S1), embed (S2), reduce (S3), cluster (S4), "
        "explain (S5), report.",
    )
    parser.add_argument("--version", action="version", version=f"connote {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in COMMANDS:
        add(sub)
    return parser


def fail(message: str, code: int, as_json: bool) -> int:
    """A command's end in error: one line on stderr, and with ``--json`` the same as a JSON object on
    stdout (``{"error": ..., "exit_code": ...}``) so that a script reading stdout sees it too."""
    warn(f"error: {message}")
    if as_json:
        print(json.dumps({"error": message, "exit_code": code}), flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    from connote.errors import UserError

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # connote shows its own progress bars
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    argv = sys.argv[1:] if argv is None else list(argv)
    as_json = "--json" in argv
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        return fail(str(exc), 2, as_json)
    as_json = bool(getattr(args, "json", False))
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        return fail(str(exc), 2, as_json)
    except KeyboardInterrupt:
        warn("Interrupted. Everything finished so far is saved; run the same command again to continue.")
        return 130
    except BrokenPipeError:
        return 0
    except (sqlite3.DatabaseError, OSError) as exc:  # a damaged, locked, full or read-only study
        from connote.study.db import explain

        message = explain(exc, getattr(args, "study", None))
        if message is None:
            raise
        return fail(message, 2, as_json)


if __name__ == "__main__":
    sys.exit(main())
