"""Flagged descriptions where a user decides: listed by ``status``, kept with ``describe --accept``.

One result object each (:func:`flagged_result`, :func:`accept_result`), rendered as text here.
"""

from __future__ import annotations

from connote.cli.common import say, warn
from connote.printable import shown

TEXT_SHOWN = 300  # characters of a flagged text shown in the listing (all of it in the result object)


def _line(text: str | None, limit: int = TEXT_SHOWN) -> str:
    """One printable line: control characters and line breaks become spaces; long texts are cut."""
    if text is None:
        return "(no text)"
    flat = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return flat if len(flat) <= limit else flat[:limit] + "..."


def flagged_result(study) -> dict:
    """Every flagged description by set: reason, text, image, and whether it is used or left out."""
    from connote.study import flags

    sets = []
    for s in study.description_sets():
        items = flags.flagged(study, s["name"])
        if not items:
            continue
        sets.append(
            {
                "name": s["name"],
                "left_out": sum(not f.used for f in items),
                "in_use": sum(f.used for f in items),
                "descriptions": [f.as_dict() for f in items],
            }
        )
    return {"sets": sets}


def print_flagged(study_path, result: dict, limit: int = 50) -> None:
    """The flagged descriptions, with how to keep them."""
    for s in result["sets"]:
        say(
            f"  flagged in {s['name']!r}: {s['left_out']} left out of every run, {s['in_use']} in use "
            "(accepted, or imported without --exclude-flagged)"
        )
        for f in s["descriptions"][:limit]:
            state = "in use" if f["used"] else "left out"
            say(f"    {shown(f['path'])} ({state}): {f['reason']}")
            say(f"      {_line(f['text'])}")
        if len(s["descriptions"]) > limit:
            say(f"    ... and {len(s['descriptions']) - limit} more")
    if any(s["left_out"] for s in result["sets"]):
        say(
            f"  To use a flagged description: connote describe {study_path} --accept IMAGE ... "
            "(or --accept-flagged for all of them); --retry-flagged asks the describer again."
        )


def accept_result(study, set_name: str | None, refs: list[str] | None) -> dict:
    """Accept flagged descriptions (``refs`` None: all of the set's); what was accepted and what is left out."""
    from connote.study import flags

    done = flags.accept(study, set_name, refs)
    name = done[0].set_name if done else set_name
    return {
        "set": name,
        "accepted": [f.as_dict() for f in done],
        "left_out": flags.left_out(study, name) if name else None,
    }


def print_accept(study_path, result: dict) -> None:
    if not result["accepted"]:
        say("No flagged descriptions left out: nothing to accept.")
        return
    say(
        f"Accepted {len(result['accepted'])} flagged description(s) of set {result['set']!r}; they are now used:"
    )
    for f in result["accepted"]:
        say(f"  {shown(f['path'])}: {f['reason']}")
    left = result["left_out"]
    if left and left["total"]:
        warn(
            f"Still left out of runs on this set: {left['total']} image(s) ({left['flagged']} flagged, "
            f"{left['failed']} failed, {left['not described']} not described)."
        )
    say(f"Run `connote embed {study_path}` and `connote cluster {study_path}` again to use them.")
