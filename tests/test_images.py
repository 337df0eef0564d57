"""connote.images on a folder of good, odd and broken files, then the whole CLI on that folder.

Every broken file must be skipped with a reason that names the problem; every readable oddity (CMYK,
16-bit, palette, transparency, animation, WebP, EXIF rotation, tiny, upper-case extension, non-ASCII
name, nested, duplicate, BMP, TIFF) must load as upright 8-bit RGB and go through the whole pipeline.
"""

from __future__ import annotations

import csv
import io
import os
import random
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from PIL import Image, ImageDraw

from connote import images
from connote.errors import UserError

NON_ASCII = "Überschwemmung 洪水.jpg"

# path -> word that the skip reason must contain (any of the alternatives)
BAD = {
    "empty.jpg": ("empty",),
    "truncated.jpg": ("truncated",),
    "truncated.png": ("truncated",),
    "corrupt.png": ("damaged", "cannot decode", "truncated", "broken"),
    "random-bytes.jpg": ("not an image",),
    "notes.png": ("not an image",),
    "bomb.png": ("too large", "decompression"),
    "dangling.jpg": ("broken link",),
}

GOOD = [
    "red.jpg",
    "cmyk.jpg",
    "gray16.png",
    "palette.png",
    "palette-transparent.png",
    "rgba.png",
    "anim.gif",
    "photo.webp",
    "rotated.jpg",
    "tiny.png",
    "UPPER.JPG",
    "Shout.PNG",
    NON_ASCII,
    "nested/deeper/level.png",
    "dup-a.png",
    "nested/dup-b.png",
    "picture.bmp",
    "scan.tiff",
    "link-to-red.jpg",
]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def bomb_png(width: int, height: int) -> bytes:
    """A valid-looking PNG of a few dozen bytes whose header claims ``width`` x ``height`` pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + _png_chunk(b"IEND", b"")
    )


def encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def noise(w: int, h: int, seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def build_folder(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "nested" / "deeper").mkdir(parents=True)

    # ---- broken
    (root / "empty.jpg").write_bytes(b"")
    jpg = encoded(noise(120, 90, 1), "JPEG")
    (root / "truncated.jpg").write_bytes(jpg[: len(jpg) // 2])
    png = encoded(noise(120, 90, 2), "PNG")
    (root / "truncated.png").write_bytes(png[: len(png) // 2])
    bad = bytearray(png)  # flip bytes inside the first IDAT: the CRC and the zlib stream no longer match
    idat = bytes(bad).index(b"IDAT")
    for i in range(idat + 20, idat + 60):
        bad[i] ^= 0xFF
    (root / "corrupt.png").write_bytes(bytes(bad))
    (root / "random-bytes.jpg").write_bytes(random.Random(7).randbytes(3000))
    (root / "notes.png").write_text("this is a text file, not a picture\n", encoding="utf-8")
    (root / "bomb.png").write_bytes(bomb_png(60_000, 60_000))
    os.symlink(root / "does-not-exist.jpg", root / "dangling.jpg")

    # ---- good and odd
    Image.new("RGB", (40, 30), (220, 20, 20)).save(root / "red.jpg", "JPEG", quality=95)
    Image.new("CMYK", (32, 24), (0, 255, 255, 0)).save(root / "cmyk.jpg", "JPEG", quality=95)
    Image.fromarray(np.full((24, 32), 40000, dtype=np.uint16)).save(root / "gray16.png")
    pal = Image.new("P", (30, 20), 0)
    pal.putpalette([0, 0, 255, 255, 255, 0] + [0] * 762)
    ImageDraw.Draw(pal).rectangle([0, 0, 14, 19], fill=1)
    pal.save(root / "palette.png")
    pal.save(root / "palette-transparent.png", transparency=0)  # index 0 (blue) is transparent
    rgba = Image.new("RGBA", (30, 20), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).rectangle([0, 0, 14, 19], fill=(200, 0, 0, 255))
    rgba.save(root / "rgba.png")
    frames = [Image.new("RGB", (24, 24), c) for c in ((0, 128, 0), (255, 0, 0), (0, 0, 255))]
    frames[0].save(root / "anim.gif", save_all=True, append_images=frames[1:], duration=80, loop=0)
    Image.new("RGB", (30, 30), (250, 200, 0)).save(root / "photo.webp", "WEBP", lossless=True)
    # Stored 60x20 with a red band on the left; orientation 6 = rotate 90 degrees clockwise to view, so the
    # upright image is 20x60 with the band along the top.
    rot = Image.new("RGB", (60, 20), "white")
    ImageDraw.Draw(rot).rectangle([0, 0, 11, 19], fill=(255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6
    rot.save(root / "rotated.jpg", "JPEG", exif=exif.tobytes(), quality=95)
    noise(3, 2, 3).save(root / "tiny.png")
    noise(40, 30, 4).save(root / "UPPER.JPG", "JPEG")
    noise(40, 30, 5).save(root / "Shout.PNG", "PNG")
    noise(40, 30, 6).save(root / NON_ASCII, "JPEG")
    noise(40, 30, 7).save(root / "nested" / "deeper" / "level.png")
    dup = encoded(noise(40, 30, 8), "PNG")
    (root / "dup-a.png").write_bytes(dup)
    (root / "nested" / "dup-b.png").write_bytes(dup)
    noise(40, 30, 9).save(root / "picture.bmp", "BMP")
    noise(40, 30, 10).save(root / "scan.tiff", "TIFF")
    os.symlink(root / "red.jpg", root / "link-to-red.jpg")

    # ---- ignored: not an image extension, hidden
    (root / "README.txt").write_text("not looked at")
    (root / ".hidden.png").write_bytes(png)
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return build_folder(tmp_path_factory.mktemp("collection") / "images")


@pytest.fixture(scope="module")
def records(folder) -> dict[str, dict]:
    return {r["path"]: r for r in images.scan(folder)}


# ------------------------------------------------------------------------------------------ scan
def test_scan_finds_every_file_with_an_image_extension(records):
    assert set(records) == set(BAD) | set(GOOD)  # README.txt and hidden files are not looked at


@pytest.mark.parametrize("path", sorted(BAD))
def test_bad_file_is_skipped_with_its_reason(records, path):
    rec = records[path]
    assert rec["status"] == "skipped"
    assert rec["reason"], path
    assert any(word in rec["reason"].lower() for word in BAD[path]), (path, rec["reason"])
    assert rec["width"] is None and rec["format"] is None


@pytest.mark.parametrize("path", GOOD)
def test_good_file_is_ok(records, folder, path):
    rec = records[path]
    assert rec["status"] == "ok", (path, rec["reason"])
    assert rec["reason"] is None
    assert len(rec["sha256"]) == 64
    assert rec["width"] > 0 and rec["height"] > 0
    assert rec["bytes"] == (folder / path).stat().st_size
    img = images.load_image(folder / path)
    assert img.mode == "RGB"
    assert img.size == (rec["width"], rec["height"])


def test_record_details(records):
    assert records["empty.jpg"]["bytes"] == 0
    assert records["dangling.jpg"]["sha256"] is None
    assert records["dup-a.png"]["sha256"] == records["nested/dup-b.png"]["sha256"]
    assert records["link-to-red.jpg"]["sha256"] == records["red.jpg"]["sha256"]
    assert records["nested/deeper/level.png"]["format"] == "PNG"
    assert records["picture.bmp"]["format"] == "BMP"
    assert records["scan.tiff"]["format"] == "TIFF"
    assert records["photo.webp"]["format"] == "WEBP"
    assert records["UPPER.JPG"]["format"] == "JPEG"
    assert records["tiny.png"]["width"] == 3 and records["tiny.png"]["height"] == 2
    assert records["rotated.jpg"]["width"] == 20 and records["rotated.jpg"]["height"] == 60  # upright size


# ------------------------------------------------------------------------------------------ decoding
def test_exif_rotation_is_applied(folder):
    with Image.open(folder / "rotated.jpg") as raw:
        assert raw.size == (60, 20)
    img = images.load_image(folder / "rotated.jpg")
    assert img.size == (20, 60)
    arr = np.asarray(img).astype(int)
    top, bottom = arr[:8].mean(axis=(0, 1)), arr[-30:].mean(axis=(0, 1))
    assert top[0] > 200 and top[1] < 60 and top[2] < 60, top  # the red band is now on top
    assert bottom.min() > 230, bottom  # the rest is white


def test_cmyk_jpeg_becomes_rgb(folder):
    with Image.open(folder / "cmyk.jpg") as raw:
        assert raw.mode == "CMYK"
    r, g, b = np.asarray(images.load_image(folder / "cmyk.jpg")).astype(int).mean(axis=(0, 1))
    assert r > 200 and g < 60 and b < 60


def test_16_bit_png_is_scaled_to_8_bit(folder):
    with Image.open(folder / "gray16.png") as raw:
        assert raw.mode in ("I;16", "I")
    arr = np.asarray(images.load_image(folder / "gray16.png"))
    assert arr.dtype == np.uint8
    assert np.all(np.abs(arr.astype(int) - round(40000 / 65535 * 255)) <= 1)


def test_palette_and_transparency(folder):
    with Image.open(folder / "palette.png") as raw:
        assert raw.mode == "P"
    pal = images.load_image(folder / "palette.png")
    assert pal.getpixel((2, 2)) == (255, 255, 0) and pal.getpixel((25, 2)) == (0, 0, 255)
    # transparent areas are put on white
    trans = images.load_image(folder / "palette-transparent.png")
    assert trans.getpixel((2, 2)) == (255, 255, 0) and trans.getpixel((25, 2)) == (255, 255, 255)
    rgba = images.load_image(folder / "rgba.png")
    assert rgba.getpixel((2, 2)) == (200, 0, 0) and rgba.getpixel((25, 2)) == (255, 255, 255)


def test_animated_gif_uses_the_first_frame(folder):
    with Image.open(folder / "anim.gif") as raw:
        assert raw.n_frames == 3
    r, g, b = images.load_image(folder / "anim.gif").getpixel((5, 5))
    assert g > 100 and r < 40 and b < 40


def test_webp_bmp_tiff_and_names(folder):
    assert images.load_image(folder / "photo.webp").getpixel((3, 3)) == (250, 200, 0)
    assert images.load_image(folder / "picture.bmp").size == (40, 30)
    assert images.load_image(folder / "scan.tiff").size == (40, 30)
    assert images.load_image(folder / NON_ASCII).size == (40, 30)
    assert images.load_image(folder / "tiny.png").size == (3, 2)


@pytest.mark.parametrize(
    "name, words",
    [
        ("empty.jpg", ("empty",)),
        ("truncated.jpg", ("truncated",)),
        ("truncated.png", ("truncated",)),
        ("random-bytes.jpg", ("not an image",)),
        ("notes.png", ("not an image",)),
        ("bomb.png", ("too large",)),
        ("dangling.jpg", ("broken link",)),
    ],
)
def test_load_image_raises_a_readable_reason(folder, name, words):
    with pytest.raises(images.ImageError) as info:
        images.load_image(folder / name)
    assert any(w in str(info.value).lower() for w in words), str(info.value)


def test_lowered_max_pixels_refuses_large_images(folder):
    with pytest.raises(images.ImageError, match="too large"):
        images.load_image(folder / "red.jpg", max_pixels=100)  # 40 x 30 = 1200 pixels
    small = {r["path"]: r for r in images.scan(folder, max_pixels=1000)}
    assert small["tiny.png"]["status"] == "ok"
    assert small["red.jpg"]["status"] == "skipped"
    assert "too large" in small["red.jpg"]["reason"] and "decompression" in small["red.jpg"]["reason"]
    # the limit is per call: Pillow's global limit is left alone and the next default call works
    assert Image.MAX_IMAGE_PIXELS == 89_478_485
    assert images.load_image(folder / "red.jpg").size == (40, 30)


def test_scan_survives_link_loops(tmp_path):
    (tmp_path / "a").mkdir()
    noise(8, 8, 1).save(tmp_path / "a" / "one.png")
    os.symlink("..", tmp_path / "a" / "up")  # a/up/a/up/... would never end
    os.symlink(tmp_path / "a", tmp_path / "alias")
    paths = [r["path"] for r in images.scan(tmp_path)]
    assert paths.count("a/one.png") == 1
    assert len(paths) <= 3


def test_scan_refuses_a_missing_folder(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        images.scan(tmp_path / "nope")
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(UserError, match="not a folder"):
        images.scan(tmp_path / "file.png")


def test_thumbnail_is_upright(folder, tmp_path):
    dest = images.thumbnail(folder / "rotated.jpg", tmp_path / "t" / "rot.jpg", size=30)
    with Image.open(dest) as im:
        assert im.size == (10, 30)
    assert not list((tmp_path / "t").glob("*.tmp"))


# ------------------------------------------------------------------------------------------ end to end
@pytest.mark.slow
def test_cli_end_to_end_on_a_messy_folder(folder, tmp_path):
    study = tmp_path / "study"
    init = run_cli("init", study, "--images", folder, "-q", check=True)
    out = init.stdout + init.stderr
    assert f"{len(GOOD)} usable image(s)" in out
    lines = out.splitlines()
    for path, words in BAD.items():
        hits = [ln for ln in lines if f"{path}: " in ln]
        assert hits, f"{path} is not named in the init output:\n{out}"
        assert any(w in hits[0].lower() for w in words), hits[0]
    for path in GOOD:
        assert not any(f"{path}: " in ln for ln in lines), f"{path} reported as skipped"

    run_cli("describe", study, "-q", check=True)
    run_cli("embed", study, "-q", check=True)
    clu = run_cli("cluster", study, "--reduce", "pca:components=5", "--min-cluster-size", "2", check=True)
    run_id = clu.stdout.strip().splitlines()[-1]
    assert run_id.isdigit()
    csv_path = tmp_path / "out.csv"
    run_cli("export", study, "-o", csv_path, check=True)

    with open(csv_path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    # three seeds by default: each cluster's stability against the other two is a column
    assert list(rows[0]) == ["image", "cluster", "keywords", "description", "cluster_stability"]
    by_path = {r["image"]: r for r in rows}
    assert len(by_path) == len(rows)
    assert set(by_path) == set(GOOD)  # every valid image, duplicates included; no broken file
    for path in GOOD:  # every valid image was described and clustered (or called an outlier)
        assert by_path[path]["description"], path
        assert by_path[path]["cluster"] != "", path
    assert by_path["dup-a.png"]["cluster"] == by_path["nested/dup-b.png"]["cluster"]
    assert by_path["dup-a.png"]["description"] == by_path["nested/dup-b.png"]["description"]
