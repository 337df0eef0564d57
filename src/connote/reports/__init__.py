"""The static HTML report of one clustering run (stage "report").

``render_report`` writes ``STUDY/report/index.html`` and JPEG thumbnails under ``STUDY/report/thumbs/``,
one per distinct image content (``<sha256>.jpg``). The page is self-contained: all CSS is inline, it
needs no server and no network, and it refers to its thumbnails by relative paths, so the ``report``
folder can be opened from disk (``file://``), zipped or copied as it is. Links to the original images
are absolute ``file://`` URLs.

Thumbnails are reused across renders (they are keyed by content); a change of ``thumb_size`` remakes
them. Every file is written atomically, so an interrupted render never leaves half a report.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from connote.errors import UserError

log = logging.getLogger(__name__)

TEMPLATE = "report.html.j2"
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


# ---------------------------------------------------------------------------------------------- report data
def _version() -> str:
    try:
        from importlib.metadata import version

        return version("connote")
    except Exception:
        return "unknown"


def _file_uri(path: Path) -> str | None:
    try:
        return path.absolute().as_uri()  # percent-encodes non-ASCII, spaces, '#', '?'
    except ValueError:
        return None


def _probabilities(study, run_id: int) -> dict[str, float | None]:
    try:
        return {
            r[0]: r[1]
            for r in study.con.execute(
                "SELECT sha256, probability FROM assignments WHERE run_id=?", (run_id,)
            )
        }
    except Exception:
        return {}


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "0%"


def _run_params(study, run) -> tuple[list[tuple[str, str]], str]:
    """Rows for the parameter table and the pretty-printed full run record."""
    rows = [
        ("features", run["features"]),
        ("embedder", run["embedder"]),
        ("reduce", run["reduce"]),
        ("min_cluster_size", run["min_cluster_size"]),
        ("min_samples", "auto" if run["min_samples"] is None else run["min_samples"]),
        ("seed", "none" if run["seed"] is None else run["seed"]),
        ("created", run["created"]),
        ("run key", run["key"]),
    ]
    if run["label"]:
        rows.append(("label", run["label"]))
    try:
        record = json.dumps(json.loads(run["params"]), indent=2, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError):
        record = str(run["params"])
    return [(k, str(v)) for k, v in rows], record


def _sort_key(path: str) -> tuple:
    return (path.casefold(), path)


def _build_context(study, run, thumbs_for, max_per_cluster: int) -> dict:
    run_id = int(run["id"])
    labels = study.assignments(run_id)
    probs = _probabilities(study, run_id)

    paths: dict[str, list[str]] = {}
    for row in study.images():
        if row["sha256"] in labels:
            paths.setdefault(row["sha256"], []).append(row["path"])
    for p in paths.values():
        p.sort(key=_sort_key)

    desc_set = None
    desc_note = None
    descriptions: dict[str, str] = {}
    if run["description_set"] is not None:
        try:
            set_row = study.resolve_description_set(run["description_set"])
        except UserError as exc:
            desc_note = str(exc)
        else:
            descriptions = study.descriptions(set_row["id"])
            desc_set = {k: set_row[k] for k in ("name", "describer", "model", "prompt")}
    elif run["features"] == "image":
        desc_note = "this run clustered image features; it used no descriptions"
    else:
        desc_note = "this run records no description set"

    keywords = study.keywords(run_id)

    members: dict[int, list[str]] = {}
    for sha, c in labels.items():
        members.setdefault(int(c), []).append(sha)

    def member_order(sha: str) -> tuple:
        p = probs.get(sha)
        first = paths.get(sha, [""])[0]
        return (-(p if p is not None else -1.0), _sort_key(first), sha)

    order = sorted((c for c in members if c != OUTLIER), key=lambda c: (-len(members[c]), c))
    if OUTLIER in members:
        order.append(OUTLIER)

    # Only the shown members get thumbnails: a big cluster is capped at max_per_cluster tiles.
    ranked = {c: sorted(members[c], key=member_order) for c in order}
    shown = {c: ranked[c][:max_per_cluster] for c in order}
    need = {sha: study.image_file(paths[sha][0]) for c in order for sha in shown[c] if sha in paths}
    thumbs = thumbs_for(need)

    n_items = len(labels)
    n_outliers = len(members.get(OUTLIER, []))
    clusters = []
    for c in order:
        size = len(members[c])
        tiles = []
        for sha in shown[c]:
            ps = paths.get(sha, [])
            tiles.append(
                {
                    "sha": sha,
                    "thumb": thumbs.get(sha),
                    "title": ps[0] if ps else f"(no file for {sha[:12]})",
                    "name": PurePosixPath(ps[0]).name if ps else sha[:12],
                    "copies": [{"path": p, "href": _file_uri(study.image_file(p))} for p in ps],
                    "text": descriptions.get(sha),
                }
            )
        rest = ranked[c][max_per_cluster:]
        more = [
            {"path": p, "href": _file_uri(study.image_file(p))}
            for sha in rest
            for p in (paths.get(sha) or [])
        ]
        clusters.append(
            {
                "id": c,
                "outlier": c == OUTLIER,
                "anchor": "outliers" if c == OUTLIER else f"cluster-{c}",
                "title": "Outliers" if c == OUTLIER else f"Cluster {c}",
                "size": size,
                "share": _pct(size, n_items),
                "keywords": keywords.get(c, []),
                "tiles": tiles,
                "n_more": size - len(tiles),
                "more": more,
            }
        )

    biggest = max((cl["size"] for cl in clusters), default=0)
    for cl in clusters:
        cl["bar"] = round(100 * cl["size"] / biggest, 2) if biggest else 0

    params, record = _run_params(study, run)
    n_files = sum(len(p) for p in paths.values())
    return {
        "study_path": str(study.path.absolute()),
        "run": {"id": run_id, "n_items": n_items, "features": run["features"]},
        "n_clusters": sum(1 for c in order if c != OUTLIER),
        "n_outliers": n_outliers,
        "outlier_share": _pct(n_outliers, n_items),
        "n_files": n_files,
        "params": params,
        "record": record,
        "desc_set": desc_set,
        "desc_note": desc_note,
        "has_keywords": bool(keywords),
        "explain_cmd": f"connote explain {shlex.quote(str(study.path))} {run_id}",
        "clusters": clusters,
        "max_per_cluster": max_per_cluster,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "version": _version(),
    }


def _environment(templates: Path | None = None):
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates or Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_html(context: dict) -> str:
    """The report page for a context made by the report stage (exposed for tests and embedding)."""
    return _environment().get_template(TEMPLATE).render(**context)


def render_report(
    study,
    run_id: int | str | None = None,
    *,
    progress: bool = True,
    thumb_size: int = 256,
    max_per_cluster: int = 60,
) -> Path:
    """Write the static report of a run (the latest when ``run_id`` is None); returns ``STUDY/report/index.html``.

    Each cluster shows at most ``max_per_cluster`` thumbnails (the most confident members first); the
    rest are listed by path.
    """
    if max_per_cluster < 1:
        raise UserError(f"max_per_cluster must be at least 1, not {max_per_cluster}")
    run = study.get_run(run_id)
    out_dir = study.path / "report"
    out_dir.mkdir(parents=True, exist_ok=True)

    def thumbs_for(need: dict[str, Path]) -> dict[str, str]:
        return make_thumbnails(study, need, out_dir / "thumbs", thumb_size, progress=progress)

    html = render_html(_build_context(study, run, thumbs_for, max_per_cluster))
    target = out_dir / "index.html"
    # errors="replace": a file name with undecodable bytes still renders (its link is percent-encoded).
    _atomic_write_bytes(target, html.encode("utf-8", errors="replace"))
    return target


__all__ = ["make_thumbnails", "render_html", "render_report"]
