"""JPEG thumbnails of a study's images (``thumbs/<sha256>.jpg``, one per distinct content, remade when the
size changes); every report file is written through :func:`connote.safe_write.write_bytes`. A leaf: the report pages and
the coding sheets both use it."""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from connote.errors import UserError
from connote.safe_write import keep_mode
from connote.safe_write import write_bytes as atomic_write_bytes  # the report's name for it

log = logging.getLogger("connote.reports")

SIZE_MARKER = ".size"  # records the thumb_size the thumbnails in a folder were made at

__all__ = ["SIZE_MARKER", "atomic_write_bytes", "make_one", "make_thumbnails"]


def make_one(src: Path, dest: Path, size: int, sha256: str | None = None) -> None:
    """A JPEG thumbnail of ``src`` at ``dest``; with ``sha256``, only of that content (else ImageError)."""
    import io

    from PIL import Image

    from connote.images import load_image  # lazy: keeps `import connote.report` light

    img = load_image(src, max_side=size, sha256=sha256)
    if img.mode != "RGB":
        img = img.convert("RGB")
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85, optimize=True, progressive=True)
    atomic_write_bytes(dest, buf.getvalue())


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
            keep_mode(thumb)
            out[sha] = rel
            continue
        src = Path(path)
        if not src.is_absolute():
            src = study.image_file(str(path))
        todo.append((sha, src, thumb))

    def work(item: tuple[str, Path, Path]) -> tuple[str, str | None]:
        sha, src, thumb = item
        try:
            make_one(src, thumb, size, sha)
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
    atomic_write_bytes(marker, f"{size}\n".encode())
    return out
