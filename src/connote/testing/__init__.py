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


__all__ = ["FakeOpenAI", "make_images"]
