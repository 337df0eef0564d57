"""What an image file name is: the extensions connote looks at, in any case. A leaf: :mod:`connote.images`
scans for these names and :mod:`connote.safe_write` never writes one under the images root."""

from __future__ import annotations

import os
from pathlib import Path

#: Extensions looked at, in any case (.JPG, .Jpeg ...).
IMAGE_EXTENSIONS = frozenset(
    {
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
)


def is_image_name(name: str | os.PathLike) -> bool:
    """True when ``name`` ends in an image extension (the file itself is not looked at)."""
    return Path(name).suffix.lower() in IMAGE_EXTENSIONS
