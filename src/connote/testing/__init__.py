"""Test helpers that ship with connote (so that tests and benchmarks can share them).

:mod:`connote.testing.fake_openai` is a small local server that speaks the OpenAI Chat Completions,
Embeddings, Files and Batches protocols, with scripted or random faults.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connote.testing.fake_openai import FakeOpenAI


def __getattr__(name: str):
    # Imported lazily so that `python -m connote.testing.fake_openai` runs without a double import.
    if name == "FakeOpenAI":
        from connote.testing.fake_openai import FakeOpenAI

        return FakeOpenAI
    raise AttributeError(name)


def make_images(folder: str | Path, n: int, size: tuple[int, int] = (64, 48)) -> list[Path]:
    """``n`` small, distinct PNG images (different colours and a stripe) in ``folder``."""
    from PIL import Image, ImageDraw

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        img = Image.new("RGB", size, ((37 * i) % 256, (91 * i + 40) % 256, (153 * i + 80) % 256))
        ImageDraw.Draw(img).rectangle([i % size[0], 0, i % size[0] + 3, size[1]], fill=(255 - i % 256, 0, 0))
        path = folder / f"img_{i:03d}.png"
        img.save(path)
        paths.append(path)
    return paths


def gray16_png(path: str | Path, side: int, variant: int = 0) -> Path:
    """A ``side`` x ``side`` 16-bit greyscale PNG (a diagonal ramp, quick to write and small on disk);
    ``variant`` shifts the ramp so that files of one size differ in content."""
    import numpy as np
    from PIL import Image

    ramp = np.arange(side, dtype=np.uint16) * np.uint16(7)
    arr = ramp[None, :] + ramp[:, None] * np.uint16(3) + np.uint16(variant)  # wraps: uint16 arithmetic
    Image.fromarray(arr).save(path, compress_level=1)
    return Path(path)


#: Python code that, run as ``python -c PEAK_PROBE CODE`` or ``python -c PEAK_PROBE -m MODULE ARGS``,
#: runs CODE (or the module) and prints 'PEAK_MB <n>' to stderr at exit: the process's own peak resident
#: memory (VmHWM; ru_maxrss would carry the forking parent's peak over across exec).
PEAK_PROBE = (
    "import atexit, runpy, sys\n"
    "def _peak():\n"
    "    kb = [ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0]\n"
    "    print('PEAK_MB', round(int(kb) / 1024, 1), file=sys.stderr, flush=True)\n"
    "atexit.register(_peak)\n"
    "if sys.argv[1] == '-m':\n"
    "    sys.argv = sys.argv[2:]\n"
    "    runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
    "else:\n"
    "    exec(sys.argv[1], {'__name__': '__main__'})\n"
)


def peak_mb(stderr: str) -> float | None:
    """The peak printed by :data:`PEAK_PROBE` in a process's stderr."""
    for line in stderr.splitlines()[::-1]:
        if line.startswith("PEAK_MB "):
            return float(line.split()[1])
    return None


__all__ = ["PEAK_PROBE", "FakeOpenAI", "gray16_png", "make_images", "peak_mb"]
