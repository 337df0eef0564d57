"""Find, validate, hash and safely decode images.

Every file under the images root is looked at. A file that is not a readable image (empty, truncated,
random bytes, a decompression bomb, a dangling link, a text file with an image extension ...) is recorded
as *skipped* with a reason that names what went wrong; the rest of the collection goes on.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

#: Extensions looked at, in any case (.JPG, .Jpeg ...).
IMAGE_EXTENSIONS = {
    ".jpg",
    ".jpeg",
    ".jpe",
    ".jfif",
    ".png",
    ".webp",
    ".gif",
    ".bmp",
    ".dib",
    ".tif",
    ".tiff",
}

#: Largest image, in pixels, that is decoded (about 16k x 10k); larger ones are refused as possible
#: decompression bombs.
MAX_PIXELS = 178_956_970

_FORMATS = {"JPEG", "PNG", "WEBP", "GIF", "BMP", "DIB", "TIFF", "MPO"}


class ImageError(Exception):
    """An image that cannot be used; the message is the reason shown to the user."""


def iter_files(root: Path) -> Iterator[Path]:
    """Files under ``root`` with an image extension, recursively, in a stable order. Links are followed
    (dangling ones are yielded so that they can be reported); a folder reached twice (a link loop such as
    ``ln -s .. up``, or a second link to the same folder) is walked only once."""
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        try:
            st = os.stat(dirpath)
        except OSError:
            dirnames[:] = []
            continue
        if (st.st_dev, st.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            if Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                yield Path(dirpath) / name


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _open(path: Path, max_pixels: int):
    """Open (header only) and refuse images over ``max_pixels``. Pillow's global ``MAX_IMAGE_PIXELS`` is
    left alone (changing it per call is not thread-safe and leaks into every other Pillow user); its own
    hard limit (2x its default, the same as :data:`MAX_PIXELS`) still applies on top of ``max_pixels``."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise ImageError(f"too large, possible decompression bomb ({exc})") from None
    if img.width * img.height > max_pixels:
        img.close()
        raise ImageError(
            f"too large: {img.width}x{img.height} pixels is over the limit of {max_pixels:,} "
            "(possible decompression bomb)"
        )
    return img


def _explain(exc: BaseException, path: Path) -> str:
    from PIL import UnidentifiedImageError

    if isinstance(exc, ImageError):
        return str(exc)
    if type(exc).__name__ == "DecompressionBombError":
        return f"too large, possible decompression bomb ({exc})"
    if isinstance(exc, FileNotFoundError):
        return "broken link: the file it points to does not exist" if path.is_symlink() else "file vanished"
    if isinstance(exc, PermissionError):
        return "cannot read: permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a folder"
    if isinstance(exc, UnidentifiedImageError):
        return "not an image (unrecognised content)"
    msg = str(exc)
    if "truncated" in msg.lower():
        return "truncated or damaged image data"
    return f"cannot decode: {type(exc).__name__}: {msg}"[:300]


def to_rgb(img):
    """Any Pillow mode -> 8-bit RGB: CMYK, 16-bit, float, palette and alpha handled; transparency on white."""
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        lo, hi = (0.0, 65535.0) if img.mode.startswith("I;16") else (float(arr.min()), float(arr.max()))
        scaled = np.clip((arr - lo) / ((hi - lo) or 1.0) * 255.0, 0, 255).astype(np.uint8)
        img = Image.fromarray(scaled, mode="L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


def load_image(path: str | os.PathLike, *, max_pixels: int = MAX_PIXELS):
    """Decode one image as an upright 8-bit RGB Pillow image (first frame of animations).

    Raises :class:`ImageError` with a user-readable reason for anything that cannot be used.
    """
    from PIL import ImageOps

    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageError("empty file (0 bytes)")
        with _open(path, max_pixels) as img:
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
            img.load()
            img = ImageOps.exif_transpose(img) or img
            return to_rgb(img)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a reason
        raise ImageError(_explain(exc, path)) from None


def inspect_file(path: Path, root: Path, *, max_pixels: int = MAX_PIXELS) -> dict:
    """A record for the ``images`` table: hash, size and format, or status 'skipped' and the reason."""
    rel = path.relative_to(root).as_posix()
    record = {
        "path": rel,
        "sha256": None,
        "status": "skipped",
        "reason": None,
        "width": None,
        "height": None,
        "format": None,
        "bytes": None,
    }
    try:
        record["bytes"] = path.stat().st_size
        record["sha256"] = sha256_file(path)
        with _open(path, max_pixels) as probe:
            fmt = probe.format
        if fmt not in _FORMATS:
            raise ImageError(f"unsupported format {fmt}")
        img = load_image(path, max_pixels=max_pixels)  # full decode: catches truncation
        record.update(status="ok", width=img.width, height=img.height, format=fmt)
    except Exception as exc:  # noqa: BLE001
        record["reason"] = _explain(exc, path)
        if record["bytes"] == 0:
            record["reason"] = "empty file (0 bytes)"
    return record


def scan(
    root: str | os.PathLike,
    *,
    progress: bool = False,
    max_pixels: int = MAX_PIXELS,
    on_record: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Inspect every image file under ``root``; returns one record per file (see :func:`inspect_file`)."""
    root = Path(root).resolve()
    if not root.exists():
        from connote.errors import UserError

        raise UserError(f"{root}: no such folder")
    if not root.is_dir():
        from connote.errors import UserError

        raise UserError(f"{root}: not a folder")
    files = list(iter_files(root))
    if progress:
        from tqdm.auto import tqdm

        files_iter = tqdm(files, desc="Checking images", unit="img")
    else:
        files_iter = files
    records = []
    for f in files_iter:
        rec = inspect_file(f, root, max_pixels=max_pixels)
        records.append(rec)
        if on_record:
            on_record(rec)
    return records


def thumbnail(path: str | os.PathLike, dest: str | os.PathLike, size: int = 256) -> Path:
    """Write a JPEG thumbnail (longest side ``size``) of an image; returns ``dest``."""
    dest = Path(dest)
    img = load_image(path)
    img.thumbnail((size, size))
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    img.save(tmp, "JPEG", quality=85)
    os.replace(tmp, dest)
    return dest


def downscale(img, max_side: int):
    """A copy no larger than ``max_side`` on its longest side (for uploads and CNN inputs)."""
    if max(img.size) <= max_side:
        return img
    img = img.copy()
    img.thumbnail((max_side, max_side))
    return img
