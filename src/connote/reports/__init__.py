"""The static HTML report of a study (stage "report"): pages that open from disk (file://).

``STUDY/report/`` holds the study index (``index.html``: every run in one sortable table, stability
across seeds, validation scores and progress), ``compare.html`` (two runs side by side), one folder per
run (``run-N/index.html`` with the 2-D map of every image; ``cluster-C.html`` pages with members in order
of typicality; ``outliers.html``), the data the map reads (``maps/``, ``details/``), shared ``assets/``
(CSS and our own JavaScript, no CDN) and JPEG thumbnails (``thumbs/<sha256>.jpg``, one per distinct
image content, reused across renders and runs; a change of ``thumb_size`` remakes them). Every file is
written atomically, so an interrupted render never leaves half a page. Links to the original images are
absolute ``file://`` URLs.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from connote.errors import UserError
from connote.reports.jinja import template_environment
from connote.reports.thumbnails import atomic_write_bytes, make_thumbnails
from connote.safe_write import keep_mode

OUTLIER = -1


# ---------------------------------------------------------------------------------------------- pages
ASSETS = Path(__file__).parent / "assets"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("connote")
    except Exception:
        return "unknown"


def write_file(path: Path, data: bytes) -> None:
    """Write atomically; a file that already holds exactly ``data`` is left alone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return keep_mode(path)
    except OSError:
        pass
    atomic_write_bytes(path, data)


def _copy_assets(out_dir: Path) -> None:
    for src in sorted(ASSETS.rglob("*")):
        if src.is_file():
            write_file(out_dir / "assets" / src.relative_to(ASSETS), src.read_bytes())


def _common(study) -> dict:
    return {
        "study_path": str(study.path.absolute()),
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "version": _version(),
    }


def _select_runs(study, runs) -> list:
    if runs is None or runs == "all":
        return study.runs()
    if isinstance(runs, str):
        runs = [r for r in runs.split(",") if r.strip()]
    return [study.get_run(r) for r in runs]


def render_study(
    study,
    runs="all",
    *,
    progress: bool = True,
    thumb_size: int = 256,
    per_page: int = 120,
    labels: dict[int, dict[int, str]] | None = None,
) -> Path:
    """Write the study index (``STUDY/report/index.html``), the run comparison page and the pages of
    ``runs`` ("all", a list of run ids, or "3,5"); returns the index's path.

    ``labels`` (run id -> cluster -> label) names clusters where labels exist."""
    if per_page < 1:
        raise UserError(f"images per page must be at least 1, not {per_page}")
    chosen = _select_runs(study, runs)
    out_dir = study.path / "report"
    try:
        return _render(study, chosen, out_dir, progress, thumb_size, per_page, labels)
    except OSError as exc:  # a read-only or full disk: one clear line, not a traceback
        where = exc.filename or out_dir
        raise UserError(f"{where}: cannot write the report ({exc.strerror or exc})") from None


def _render(study, chosen, out_dir: Path, progress, thumb_size, per_page, labels) -> Path:
    from tqdm.auto import tqdm

    from connote.reports.index import index_context
    from connote.reports.pages import RunPages

    out_dir.mkdir(parents=True, exist_ok=True)
    _copy_assets(out_dir)
    env = template_environment()
    common = _common(study)

    def thumbs_for(need: dict[str, Path]) -> dict[str, str]:
        return make_thumbnails(study, need, out_dir / "thumbs", thumb_size, progress=progress)

    for run in tqdm(chosen, desc="run reports", unit="run", disable=not progress or len(chosen) < 2):
        RunPages(
            study,
            run,
            out_dir,
            thumbs_for=thumbs_for,
            write=write_file,
            env=env,
            per_page=per_page,
            labels=(labels or {}).get(int(run["id"])),
        ).write_all(common)
    ctx = {**common, **index_context(study, out_dir)}
    write_file(
        out_dir / "index.html", env.get_template("index.html.j2").render(**ctx).encode("utf-8", "replace")
    )
    write_file(
        out_dir / "compare.html", env.get_template("compare.html.j2").render(**ctx).encode("utf-8", "replace")
    )
    return out_dir / "index.html"


def render_report(
    study,
    run_id: int | str | None = None,
    *,
    progress: bool = True,
    thumb_size: int = 256,
    per_page: int = 120,
    labels: dict[int, str] | None = None,
) -> Path:
    """Write the pages of one run (the latest when ``run_id`` is None) and refresh the study index;
    returns the run page, ``STUDY/report/run-N/index.html``. ``labels``: cluster -> label."""
    run = study.get_run(run_id)
    rid = int(run["id"])
    render_study(
        study,
        [rid],
        progress=progress,
        thumb_size=thumb_size,
        per_page=per_page,
        labels={rid: labels} if labels else None,
    )
    return study.path / "report" / f"run-{rid}" / "index.html"


__all__ = ["make_thumbnails", "render_report", "render_study", "write_file"]
