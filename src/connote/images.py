"""Find, validate, hash and safely decode images.

Every file under the images root is looked at. A file that is not a readable image (empty, truncated,
random bytes, a decompression bomb, a dangling link, a text file with an image extension ...) is recorded
as *skipped* with a reason that names what went wrong; the rest of the collection goes on. Anything that
is not a regular file once links are resolved (a named pipe, a device such as a link to /dev/zero, a
socket, a folder named like an image) is skipped before it is opened, so it can never hang a scan.

Memory is bounded in bytes, not pixels: decoding one image may hold at most :func:`decode_budget_bytes`
(8 bytes for each of :data:`DECODE_PIXELS` pixels, 320 MB): the decoded image at its mode's bytes per
pixel (1 for greyscale or palette, 2 for 16-bit greyscale, 4 for RGB, RGBA, CMYK and 32-bit) plus the 8-bit
RGB image made from it. 16- and 32-bit images are brought to 8 bits a block of rows at a time (never as a
whole float array), and a caller that needs no more than ``max_side`` pixels gets an image reduced before
its RGB copy is made. A large JPEG is decoded at 1/2, 1/4 or 1/8 of its size (libjpeg's scaled decoding,
Pillow's ``draft``); any other image over the budget is skipped with a reason that says how to allow more
(``CONNOTE_DECODE_PIXELS``).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from connote.image_names import is_image_name
from connote.printable import is_utf8, shown
from connote.safe_write import is_study_folder, replacing

#: Largest image, in pixels, that is decoded (about 16k x 10k); larger ones are refused as possible
#: decompression bombs.
MAX_PIXELS = 178_956_970

#: Sets the decode budget: 8 bytes for each of these pixels (an RGB image of this many pixels, which
#: Pillow keeps in 4 bytes a pixel, and one copy of it). Larger JPEGs are decoded scaled down; other
#: images over it are skipped. ``CONNOTE_DECODE_PIXELS`` changes it.
DECODE_PIXELS = 40_000_000

#: Bytes a pixel takes once decoded, by Pillow mode; any other mode takes 4 (three channels take four).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
_DEEP = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # brought to 8-bit greyscale first
_REDUCIBLE = {"L", "LA", "RGB", "RGBA", "CMYK", *_DEEP}  # reduced (after that) before the RGB copy

#: Largest file looked at: no image connote can decode within its pixel limit is this large.
MAX_FILE_BYTES = 1 << 30

_FORMATS = {"JPEG", "PNG", "WEBP", "GIF", "BMP", "DIB", "TIFF", "MPO"}
_SCALABLE = {"JPEG", "MPO"}  # libjpeg decodes these at 1/2, 1/4, 1/8 directly


class ImageError(Exception):
    """An image that cannot be used; the message is the reason shown to the user."""


class ImageChanged(ImageError):
    """The file no longer holds the content the study recorded for it (replaced after ``init``)."""


#: What to do about a changed image (the end of :class:`ImageChanged`'s message).
RESCAN = "rescan the images with `connote init STUDY --images FOLDER` and run the command again"


def decode_budget() -> int:
    """:data:`DECODE_PIXELS`, or ``CONNOTE_DECODE_PIXELS`` when set to a positive whole number."""
    raw = os.environ.get("CONNOTE_DECODE_PIXELS", "").replace("_", "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else DECODE_PIXELS


def decode_budget_bytes() -> int:
    """Most bytes decoding one image may hold: 8 x :func:`decode_budget` (320 MB by default)."""
    return 8 * decode_budget()


def reduce_factor(width: int, height: int, max_side: int | None) -> int:
    """The whole factor an image can be reduced by and keep at least ``max_side`` on its longest side."""
    return max(1, max(width, height) // max_side) if max_side else 1


def decode_bytes(mode: str, width: int, height: int, max_side: int | None = None, alpha: bool = False) -> int:
    """Bytes that :func:`load_image` holds at its peak for an image of this mode and size: the decoded
    image, its 8-bit copy (16- and 32-bit modes), and its RGB copy (reduced first for ``max_side`` where
    the mode allows; twice for a transparent image laid on white)."""
    px = width * height
    cost = px * _MODE_BYTES.get(mode, 4) + (px if mode in _DEEP else 0)
    if mode != "RGB":
        f = reduce_factor(width, height, max_side) if mode in _REDUCIBLE else 1
        out = 4 * -(-width // f) * -(-height // f)
        cost += out * (2 if alpha and mode != "RGBA" else 1)
    return cost


def iter_files(root: Path) -> Iterator[Path]:
    """Files under ``root`` with an image extension, recursively, in a stable order. Links are followed
    (dangling ones are yielded so that they can be reported); a folder reached twice (a link loop such as
    ``ln -s .. up``, or a second link to the same folder) is walked only once. A folder named like an
    image (``photo.jpg/``) is yielded, not walked, so that it is reported as not an image file. A study
    folder (one holding a connote database, e.g. a study made inside the images folder) is never entered:
    its report thumbnails are not images of the collection."""
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
        names = [n for n in filenames if not n.startswith(".") and is_image_name(n)]
        names += [d for d in dirnames if not d.startswith(".") and is_image_name(d)]
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".")
            and not is_image_name(d)
            and not is_study_folder(os.path.join(dirpath, d))
        )
        for name in sorted(names):
            yield Path(dirpath) / name


_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)


def check_regular(path: Path) -> os.stat_result:
    """The file's status after resolving links; :class:`ImageError` when it is not a regular file.

    Called before a file is opened: reading a named pipe waits forever for a writer, and a link to
    /dev/zero never ends."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise ImageError("broken link: the file it points to does not exist") from None
        raise ImageError("file vanished") from None
    if stat.S_ISREG(st.st_mode):
        if st.st_size > MAX_FILE_BYTES:  # e.g. a link to /proc/kcore: reading it would never end
            raise ImageError(
                f"file too large for an image: {st.st_size:,} bytes (over {MAX_FILE_BYTES:,}); skipped without reading it"
            )
        return st
    kind = next((k for test, k in _KINDS if test(st.st_mode)), "not a plain file")
    target = f"a link to {os.path.realpath(path)}, " if os.path.islink(path) else ""
    raise ImageError(f"not a regular file: {target}{kind}; skipped without reading it")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _open(path, max_pixels: int):
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


def _bound_decode(img, max_side: int | None = None, *, convert: bool = True) -> None:
    """Arrange for ``img`` (opened, not loaded) to decode within :func:`decode_budget_bytes`, counting
    its RGB copy when ``convert`` (see :func:`decode_bytes`): a JPEG is decoded scaled down by 2, 4 or 8
    when it is over the budget (or larger than the ``max_side`` the caller needs); anything else over
    the budget raises :class:`ImageError` with the reason. A progressive JPEG holds all its coefficients
    while decoding (up to 6 bytes a pixel), so its full size counts."""
    budget = decode_budget_bytes()
    w, h = img.size
    alpha = "transparency" in img.info or "A" in img.mode

    def cost(width: int, height: int) -> int:
        if not convert:
            return width * height * _MODE_BYTES.get(img.mode, 4)
        return decode_bytes(img.mode, width, height, max_side, alpha)

    jpeg = img.format in _SCALABLE
    progressive = jpeg and bool(img.info.get("progressive") or img.info.get("progression"))
    if jpeg:
        scale = 1
        for s in (2, 4, 8):
            if cost(-(-w // scale), -(-h // scale)) > budget or (
                max_side is not None and max(w, h) // s >= max_side
            ):
                scale = s
        if scale > 1:
            img.draft(None, (w // scale, h // scale))
    # a progressive JPEG holds every DCT coefficient of the whole image while decoding it (2 bytes each,
    # up to 3 full-size components), whatever size it is decoded at
    need = cost(*img.size) + (6 * w * h if progressive else 0)
    if need > budget:
        if progressive:
            kind = "a progressive JPEG, which holds all of its data while it is decoded"
        elif jpeg:
            kind = "a JPEG, even decoded at 1/8 of its size"
        else:
            kind = f"a {img.format or 'image'} file of mode {img.mode}, which cannot be decoded scaled down"
        raise ImageError(
            f"too large to decode within connote's memory budget: {w}x{h} = {w * h:,} pixels "
            f"({kind}) needs about {_mb(need)}, over "
            f"{_mb(budget)}; to allow it, set CONNOTE_DECODE_PIXELS={-(-need // 8)}"
        )


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n < 10e6 else f"{n / 1e6:,.0f} MB"


def _explain(exc: BaseException, path: Path) -> str:
    from PIL import UnidentifiedImageError

    if isinstance(exc, ImageError):
        return str(exc)
    if isinstance(exc, MemoryError):
        return "too large: ran out of memory decoding it"
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


def _to_8bit(img):
    """A 16-bit (0-65535) or 32-bit (its own min-max) greyscale image as 8-bit greyscale, a block of rows
    at a time in float32: never a float copy of the whole image."""
    import numpy as np
    from PIL import Image

    lo, hi = (0.0, 65535.0) if img.mode.startswith("I;16") else map(float, img.getextrema())
    scale = 255.0 / ((hi - lo) or 1.0)
    w, h = img.size
    out = np.empty((h, w), dtype=np.uint8)
    step = max(1, (1 << 20) // max(1, w))  # about a million pixels (4 MB of float32) a block
    for top in range(0, h, step):
        block = np.asarray(img.crop((0, top, w, min(h, top + step))), dtype=np.float32)
        block -= lo
        block *= scale
        np.clip(block, 0, 255, out=block)
        out[top : top + step] = block
    return Image.fromarray(out)


def to_rgb(img, max_side: int | None = None):
    """Any Pillow mode -> 8-bit RGB: CMYK, 16-bit, float, palette and alpha handled; transparency on white.
    With ``max_side``, an image is first reduced by the whole factor that keeps its longest side at
    least ``max_side`` (so that no full-size RGB copy of a large image is made for a small use)."""
    from PIL import Image

    if img.mode in _DEEP:
        img = _to_8bit(img)
    width, height = img.size
    factor = reduce_factor(width, height, max_side)
    if factor > 1 and img.mode in _REDUCIBLE:
        img = img.reduce(factor)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img if img.mode == "RGBA" else img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if img.mode != "RGB":
        img = img.convert("RGB")
    return img


def load_image(
    path: str | os.PathLike,
    *,
    max_pixels: int = MAX_PIXELS,
    max_side: int | None = None,
    sha256: str | None = None,
):
    """Decode one image as an upright 8-bit RGB Pillow image (first frame of animations).

    A JPEG larger than the decode budget (or, with ``max_side``, larger than the caller needs) comes back
    scaled down by 2, 4 or 8; callers that need an exact size resize anyway. Raises :class:`ImageError`
    with a user-readable reason for anything that cannot be used.

    With ``sha256`` (the content the study recorded for the file), the bytes read are hashed and the
    very bytes that match are decoded: a file replaced since it was scanned raises :class:`ImageChanged`,
    so that nothing made from other content is ever stored under the recorded hash.
    """
    from PIL import ImageOps

    path = Path(path)
    try:
        if check_regular(path).st_size == 0:
            raise ImageError("empty file (0 bytes)")
        with _checked(path, sha256) as source, _open(source, max_pixels) as img:
            _bound_decode(img, max_side)
            img.load()
            ImageOps.exif_transpose(img, in_place=True)  # no copy of an image already upright
            return to_rgb(img, max_side)
    except ImageChanged:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure becomes a reason
        raise ImageError(_explain(exc, path)) from None


#: Files up to this size are read into memory whole when checked, so that the bytes decoded are exactly
#: the bytes hashed; a larger one is hashed and then decoded through the same open file.
CHECK_IN_MEMORY = 64 << 20


@contextmanager
def _checked(path: Path, sha256: str | None) -> Iterator:
    """``path`` itself (no check), or a file object over its content once that hashes to ``sha256``;
    :class:`ImageChanged` if it does not."""
    if sha256 is None:
        yield path
        return
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size <= CHECK_IN_MEMORY:
            data = fh.read()
            source: IO[bytes] = io.BytesIO(data)
            digest = hashlib.sha256(data).hexdigest()
        else:
            h = hashlib.sha256()
            while block := fh.read(1 << 20):
                h.update(block)
            digest, source = h.hexdigest(), fh
            fh.seek(0)
        if digest != sha256:
            raise ImageChanged(
                f"changed since it was scanned: the file no longer holds the image the study recorded "
                f"(sha256 {sha256[:12]}...), so nothing is made or stored from it; {RESCAN}"
            )
        yield source


def inspect_file(path: Path, root: Path, *, max_pixels: int = MAX_PIXELS) -> dict:
    """A record for the ``images`` table: hash, size and format, or status 'skipped' and the reason."""
    rel = path.relative_to(root).as_posix()
    record: dict[str, Any] = {
        "path": rel,
        "sha256": None,
        "status": "skipped",
        "reason": None,
        "width": None,
        "height": None,
        "format": None,
        "bytes": None,
    }
    if not is_utf8(rel):  # SQLite and the terminal take UTF-8 only: keep a visible form of the name
        record.update(path=shown(rel), reason="the file name is not valid UTF-8 (rename the file to use it)")
        return record
    try:
        record["bytes"] = check_regular(path).st_size  # before anything opens it: a FIFO would hang
        record["sha256"] = sha256_file(path)
        width, height, fmt = verify(path, max_pixels=max_pixels)
        record.update(status="ok", width=width, height=height, format=fmt)
    except Exception as exc:  # noqa: BLE001
        record["reason"] = _explain(exc, path)
        if record["bytes"] == 0:
            record["reason"] = "empty file (0 bytes)"
    return record


def verify(path: Path, *, max_pixels: int = MAX_PIXELS) -> tuple[int, int, str]:
    """Decode the whole image data once, as cheaply as it allows (a JPEG at 1/8 of its size), to catch
    truncated or damaged files; returns its upright (width, height) and format."""
    if check_regular(path).st_size == 0:
        raise ImageError("empty file (0 bytes)")
    with _open(path, max_pixels) as img:
        fmt = img.format
        if fmt not in _FORMATS:
            raise ImageError(f"unsupported format {fmt}")
        width, height = img.size
        _bound_decode(img, max_side=1, convert=False)  # a JPEG at 1/8: every byte of its data is decoded
        img.load()
        try:  # after load: a PNG's EXIF is read by loading, which must raise when the data is damaged
            turned = img.getexif().get(0x0112) in (5, 6, 7, 8)
        except Exception:  # noqa: BLE001 - damaged EXIF: the image is upright as stored
            turned = False
    return (height, width, fmt) if turned else (width, height, fmt)


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
    img = load_image(path, max_side=size)
    img.thumbnail((size, size))
    dest.parent.mkdir(parents=True, exist_ok=True)
    with replacing(dest) as tmp:
        img.save(tmp, "JPEG", quality=85)
    return dest


def downscale(img, max_side: int):
    """A copy no larger than ``max_side`` on its longest side (for uploads and CNN inputs)."""
    if max(img.size) <= max_side:
        return img
    img = img.copy()
    img.thumbnail((max_side, max_side))
    return img
