"""Peak memory of reading one huge 16-bit greyscale PNG (6300 x 6300, under the decode budget) the ways
connote reads images for a model, each in a fresh process (its VmHWM). Before issue 19 a float64 copy
made one whole decode take about 1.1 GB. These are memory bounds, not timings (speed and the measured
numbers are in benchmarks/decode_memory.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import cli_env

from connote.images import decode_bytes, sha256_file
from connote.testing import PEAK_PROBE, gray16_png, peak_mb

SIDE = 6300  # 39.7 million pixels: 79 MB decoded at 2 bytes a pixel, 159 MB as RGB


@pytest.fixture(scope="module")
def huge(tmp_path_factory):
    return gray16_png(tmp_path_factory.mktemp("huge") / "huge16.png", SIDE)


def peak(code: str) -> float:
    proc = subprocess.run(
        [sys.executable, "-c", PEAK_PROBE, code], capture_output=True, text=True, timeout=300, env=cli_env()
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    mb = peak_mb(proc.stderr)
    assert mb is not None, proc.stderr[-2000:]
    return mb


def test_a_whole_decode_stays_well_under_a_gigabyte(huge):
    code = (
        "from connote.images import load_image\n"
        f"img = load_image({str(huge)!r})\n"
        f"assert img.size == ({SIDE}, {SIDE}) and img.mode == 'RGB', (img.size, img.mode)\n"
    )
    assert peak(code) < 600  # 79 MB decoded + 40 MB at 8 bits + 159 MB as RGB, and Python itself


def test_a_describer_or_thumbnail_reads_it_reduced_before_any_rgb_copy(huge, tmp_path):
    sha = sha256_file(huge)
    code = (
        "from connote.images import load_image\n"
        "from connote.reports.thumbnails import make_one\n"
        f"img = load_image({str(huge)!r}, max_side=768, sha256={sha!r})\n"
        "assert 768 <= max(img.size) < 2 * 768 and img.mode == 'RGB', img.size\n"
        f"make_one({str(huge)!r}, {str(tmp_path / 't.jpg')!r}, 320, {sha!r})\n"
    )
    assert peak(code) < 400
    assert (tmp_path / "t.jpg").stat().st_size > 0


def test_the_budget_counts_bytes_by_mode():
    px = 1000 * 1000
    assert decode_bytes("RGB", 1000, 1000) == 4 * px  # Pillow keeps three channels in four bytes
    assert decode_bytes("I;16", 1000, 1000) == 2 * px + px + 4 * px  # decoded, 8-bit, RGB
    assert decode_bytes("I;16", 1000, 1000, max_side=100) == 3 * px + 4 * 100 * 100  # reduced by 10 first
    assert decode_bytes("L", 1000, 1000) == px + 4 * px
    assert decode_bytes("LA", 1000, 1000, alpha=True) == 4 * px + 2 * 4 * px  # RGBA copy and white ground
