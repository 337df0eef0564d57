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

import logging
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from connote.errors import UserError

log = logging.getLogger(__name__)

SIZE_MARKER = ".size"  # records the thumb_size the thumbnails in a folder were made at
OUTLIER = -1


# ---------------------------------------------------------------------------------------------- thumbnails
def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _make_one(src: Path, dest: Path, size: int) -> None:
    import io

    from PIL import Image

    from connote.images import load_image  # lazy: keeps `import connote.report` light

    img = load_image(src)
    if img.mode != "RGB":
        img = img.convert("RGB")
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85, optimize=True, progressive=True)
    _atomic_write_bytes(dest, buf.getvalue())


def make_thumbnails(
    study,
    shas_to_paths: dict[str, Path],
    dest_dir: str | os.PathLike,
    size: int,
    *,
    progress: bool = True,
    workers: int | None = None,
) -> dict[str, str]:
    """Make a JPEG thumbnail ``dest_dir/<sha256>.jpg`` (longest side at most ``size``) for each image.

    ``shas_to_paths`` maps content hash to an image file; a relative path is taken relative to the
    study's images root. Thumbnails already in ``dest_dir`` at the same ``size`` are reused. Images
    that cannot be read are logged and left out. Returns ``{sha256: relpath}`` where ``relpath`` is
    '/'-separated and relative to ``dest_dir``'s parent (the report folder), e.g. ``thumbs/<sha>.jpg``.
    """
    from tqdm.auto import tqdm

    if size < 16:
        raise UserError(f"thumbnail size must be at least 16 pixels, not {size}")
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    marker = dest / SIZE_MARKER
    try:
        same_size = marker.read_text().strip() == str(size)
    except OSError:
        same_size = False
    if not same_size:
        # Existing thumbnails were made at another (or an unknown) size: remake every one we need.
        # The marker goes first, so a crash part-way leaves none and the next render remakes them again.
        marker.unlink(missing_ok=True)

    out: dict[str, str] = {}
    todo: list[tuple[str, Path, Path]] = []
    for sha, path in shas_to_paths.items():
        thumb = dest / f"{sha}.jpg"
        rel = f"{dest.name}/{sha}.jpg"
        if same_size and thumb.is_file():
            out[sha] = rel
            continue
        src = Path(path)
        if not src.is_absolute():
            src = study.image_file(str(path))
        todo.append((sha, src, thumb))

    def work(item: tuple[str, Path, Path]) -> tuple[str, str | None]:
        sha, src, thumb = item
        try:
            _make_one(src, thumb, size)
        except Exception as exc:  # ImageError, OSError, decompression bombs ...: skip the one image
            return sha, f"{src}: {exc}"
        return sha, None

    failed = 0
    if todo:
        n_workers = workers or min(8, os.cpu_count() or 1, len(todo))
        with (
            tqdm(total=len(todo), desc="thumbnails", unit="img", disable=not progress) as bar,
            ThreadPoolExecutor(max_workers=n_workers) as pool,
        ):
            for sha, error in pool.map(work, todo):
                bar.update(1)
                if error is None:
                    out[sha] = f"{dest.name}/{sha}.jpg"
                else:
                    failed += 1
                    log.warning("no thumbnail for %s", error)
    if failed:
        log.warning(
            "%d of %d thumbnails could not be made; their images show as 'no preview'", failed, len(todo)
        )
    _atomic_write_bytes(marker, f"{size}\n".encode())
    return out


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
            return
    except OSError:
        pass
    _atomic_write_bytes(path, data)


def template_environment(templates: Path | None = None):
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates or Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


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
