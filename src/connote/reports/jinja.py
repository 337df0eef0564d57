"""The Jinja environment of connote's HTML pages (report pages, coding sheets): autoescaped, strict."""

from __future__ import annotations

from pathlib import Path

__all__ = ["template_environment"]


def template_environment(templates: Path | None = None):
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates or Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
