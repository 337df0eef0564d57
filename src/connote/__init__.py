"""connote: cluster image collections by what they mean.

The pipeline is a set of plain functions over a study folder (see :mod:`connote.steps`)::

    import connote
    study, run_id, report = connote.run("photos/", "study/")

Heavy libraries (torch, umap, rapidocr) are imported only when a step needs them.
"""

from __future__ import annotations

__version__ = "0.1.0"

_STEPS = (
    "init",
    "describe",
    "embed",
    "cluster",
    "explain",
    "report",
    "runs",
    "export",
    "export_rows",
    "run",
    "features",
    "sweep",
)

__all__ = [*_STEPS, "Study", "UserError", "PAPER_PROMPT", "__version__"]


def __getattr__(name: str):
    if name in _STEPS:
        from connote import steps

        return getattr(steps, name)
    if name == "Study":
        from connote.study import Study

        return Study
    if name == "UserError":
        from connote.errors import UserError

        return UserError
    if name == "PAPER_PROMPT":
        from connote.describers.base import PAPER_PROMPT

        return PAPER_PROMPT
    raise AttributeError(f"module 'connote' has no attribute {name!r}")
