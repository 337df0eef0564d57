"""The text-heavy benchmark images (benchmarks/text_images.py): the same seed gives the same pixels, each
kind within its sizes, and a kind already made is not made again."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
text_images = pytest.importorskip("text_images")


def test_the_same_seed_gives_the_same_images(tmp_path):
    if not text_images.FONT_DIR.is_dir():
        pytest.skip("no DejaVu fonts here")
    photos = ROOT / "examples" / "images"
    counts = {"memes": 2, "screenshots": 1, "posters": 1}
    a = text_images.generate(tmp_path / "a", counts, photos, seed=3)
    b = text_images.generate(tmp_path / "b", counts, photos, seed=3)
    other = text_images.generate(tmp_path / "c", {"memes": 2}, photos, seed=4)
    files = {kind: sorted((a[kind] / "images").glob("*.jpg")) for kind in counts}
    assert {k: len(v) for k, v in files.items()} == counts
    for kind, paths in files.items():
        for p in paths:
            assert p.read_bytes() == (b[kind] / "images" / p.name).read_bytes()
            w, h = Image.open(p).size
            assert 400 <= max(w, h) <= 1000
    assert files["memes"][0].read_bytes() != (other["memes"] / "images" / "meme-0000.jpg").read_bytes()
    made = files["memes"][0].stat().st_mtime_ns
    text_images.generate(tmp_path / "a", {"memes": 2}, photos, seed=3)  # already there: kept
    assert files["memes"][0].stat().st_mtime_ns == made
