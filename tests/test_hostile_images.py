"""Hostile files under the images root: special files that would hang a reader, and huge images that
would take gigabytes to decode. Each is skipped with its reason (or decoded within a memory budget)
and the rest of the collection goes on."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from conftest import cli_env, run_cli
from PIL import Image

from connote import images
from connote.testing import make_images


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def huge_png(path: Path, width: int, height: int) -> None:
    """A real, complete RGB PNG of ``width`` x ``height`` white pixels that is small on disk (its rows
    compress to almost nothing); written row by row so that the test itself stays small."""
    comp = zlib.compressobj(9)
    row = b"\0" + b"\xff" * (3 * width)
    parts = [comp.compress(row) for _ in range(height)]
    idat = b"".join(parts) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


@pytest.fixture
def special(tmp_path):
    root = tmp_path / "imgs"
    make_images(root, 2)
    os.mkfifo(root / "fifo.jpg")
    os.symlink("/dev/zero", root / "zeros.jpg")
    os.symlink("/dev/null", root / "null.png")
    (root / "folder.jpg").mkdir()
    Image.new("RGB", (8, 8), "red").save(root / "folder.jpg" / "inside.png")  # not walked
    with open(root / "sparse.png", "wb") as fh:  # 2 GiB that take no disk space
        fh.truncate(2 << 30)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock.png"))
    yield root
    sock.close()


def test_special_files_are_skipped_before_they_are_opened(special):
    recs = {r["path"]: r for r in images.scan(special)}
    assert recs["img_000.png"]["status"] == "ok" and recs["img_001.png"]["status"] == "ok"
    expect = {
        "fifo.jpg": "named pipe",
        "zeros.jpg": "character device",
        "null.png": "character device",
        "sock.png": "socket",
        "folder.jpg": "a folder",
    }
    for name, kind in expect.items():
        assert recs[name]["status"] == "skipped", name
        assert recs[name]["reason"].startswith("not a regular file") and kind in recs[name]["reason"], recs[
            name
        ]
    assert "/dev/zero" in recs["zeros.jpg"]["reason"]
    assert recs["sparse.png"]["status"] == "skipped" and "file too large" in recs["sparse.png"]["reason"]
    assert "folder.jpg/inside.png" not in recs
    for name in expect:
        with pytest.raises(images.ImageError, match="not a regular file"):
            images.load_image(special / name)


def test_init_on_special_files_ends_and_names_each(special, tmp_path):
    proc = run_cli("init", tmp_path / "study", "--images", special, "-q", timeout=60)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "2 usable image(s)" in out
    for name in ("fifo.jpg", "zeros.jpg", "null.png", "sock.png", "folder.jpg"):
        assert any(line.strip().startswith(f"{name}: not a regular file") for line in out.splitlines()), out


def test_decode_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("CONNOTE_DECODE_PIXELS", "10000")  # 100 x 100
    Image.new("RGB", (400, 300), "blue").save(tmp_path / "big.png")
    Image.new("RGB", (400, 300), "blue").save(tmp_path / "big.jpg", quality=90)
    Image.new("RGB", (400, 300), "blue").save(tmp_path / "prog.jpg", quality=90, progressive=True)
    Image.new("RGB", (90, 90), "blue").save(tmp_path / "small.png")
    recs = {r["path"]: r for r in images.scan(tmp_path)}
    assert recs["small.png"]["status"] == "ok"
    # a JPEG is checked and decoded scaled down; its record keeps its real size
    assert recs["big.jpg"]["status"] == "ok" and (recs["big.jpg"]["width"], recs["big.jpg"]["height"]) == (
        400,
        300,
    )
    img = images.load_image(tmp_path / "big.jpg")
    assert img.width * img.height <= 10000 and img.size == (100, 75)  # 1/4 of each side
    # the budget is in bytes (8 x the setting): 400 x 300 RGB takes 4 bytes a pixel, 480,000 bytes; a
    # progressive JPEG also holds its coefficients (6 bytes a pixel) while checked at 1/8 (50 x 38)
    for name, setting in (("big.png", 60000), ("prog.jpg", (720_000 + 4 * 50 * 38) // 8)):
        reason = recs[name]["reason"]
        assert recs[name]["status"] == "skipped" and "memory budget" in reason, reason
        assert "400x300" in reason and f"CONNOTE_DECODE_PIXELS={setting}" in reason, reason
    monkeypatch.setenv("CONNOTE_DECODE_PIXELS", "60000")
    assert images.load_image(tmp_path / "big.png").size == (400, 300)


def test_load_image_decodes_no_more_than_the_caller_needs(tmp_path):
    Image.new("RGB", (1600, 1200), "green").save(tmp_path / "photo.jpg")
    assert images.load_image(tmp_path / "photo.jpg", max_side=256).size == (400, 300)  # 1/4: >= 256
    assert images.load_image(tmp_path / "photo.jpg").size == (1600, 1200)
    dest = images.thumbnail(tmp_path / "photo.jpg", tmp_path / "t.jpg", size=100)
    with Image.open(dest) as im:
        assert im.size == (100, 75)


@pytest.mark.slow
def test_init_on_huge_images_stays_within_a_few_hundred_mb(tmp_path):
    """The issue's case: a small PNG just under Pillow's pixel limit took 2.9 GB during init."""
    root = tmp_path / "imgs"
    make_images(root, 1)
    huge_png(root / "huge.png", 12_000, 12_000)  # 144 million pixels, a few hundred KB on disk
    assert (root / "huge.png").stat().st_size < 2_000_000
    Image.new("RGB", (8000, 6000), "white").save(root / "huge.jpg", quality=80)  # 48 MP: decoded at 1/8
    code = (  # VmHWM: ru_maxrss would carry this test process's own peak over across exec
        "import sys; from connote.cli import main; rc = main(sys.argv[1:]); "
        "print('maxrss_kb', [ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0]); "
        "sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "init", str(tmp_path / "study"), "--images", str(root), "-q"],
        capture_output=True,
        text=True,
        timeout=300,
        env=cli_env(),
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "2 usable image(s)" in out  # img_000.png and huge.jpg
    assert any(ln.strip().startswith("huge.png: too large to decode") for ln in out.splitlines()), out
    rss_mb = int(out.split("maxrss_kb")[1].split()[0]) / 1024
    assert rss_mb < 300, f"init peaked at {rss_mb:.0f} MB"


def test_names_with_escape_codes_newlines_and_bad_bytes_are_printed_escaped(tmp_path):
    root = tmp_path / "imgs"
    make_images(root, 2)
    os.rename(root / "img_000.png", root / "evil\x1b[2J\nFAKE LINE \u202egnp.png")
    Image.new("RGB", (4, 4)).save(root / "x.png")
    (root / "x.png").write_bytes(b"not an image")
    os.rename(root / "x.png", os.fsencode(root) + b"/bad\xff\x1b[31m.png")  # not UTF-8
    (root / "junk\x1b[2J\nFAKE LINE.png").write_bytes(b"junk")  # printed: it is skipped
    study = tmp_path / "study"
    init = run_cli("init", study, "--images", root, "-q", timeout=60)
    assert init.returncode == 0, init.stderr
    for out in (init.stdout + init.stderr, run_cli("status", study, timeout=60).stderr):
        assert "\x1b" not in out and "\u202e" not in out and "FAKE LINE" not in out.split("\n", 1)[0]
        assert not any(line.startswith("FAKE LINE") for line in out.splitlines())
        assert "bad\\xff\\x1b[31m.png: the file name is not valid UTF-8" in out
        assert "junk\\x1b[2J\\nFAKE LINE.png: not an image" in out
    assert "2 usable image(s)" in init.stdout  # the escaped name is a usable image
    from connote.study import Study

    with Study.open(study) as s:
        paths = {r["path"] for r in s.images(status=None)}
    assert "evil\x1b[2J\nFAKE LINE \u202egnp.png" in paths  # stored as it is: it must still open


def test_shown_and_safe_line():
    from connote.printable import safe_line, shown

    assert shown("a\x1b[31mb\nc\u202ed é 洪水 \udcff\x00") == "a\\x1b[31mb\\nc\\u202ed é 洪水 \\xff\\x00"
    assert safe_line("x\ny\x1b\tz\x85") == "x\ny\\x1b\tz\\x85"
    assert shown("plain name-1.png") == "plain name-1.png"
