"""Spec strings -> stage objects, in one small table per stage.

``openai:gpt-4-turbo``, ``hf:llava-hf/llava-1.5-7b-hf``, ``offline``, ``minilm``, ``vgg16``,
``umap:components=5,neighbors=15``: the part before ':' picks the backend, the rest is its argument.
Backends are imported only when asked for, so ``connote --help`` stays instant. Any object that already
has the stage's method is passed through unchanged (pluggable sub-models).
"""

from __future__ import annotations

import importlib
from typing import Any

from connote.defaults import DEFAULT_SEED
from connote.errors import UserError
from connote.specs import parse_options, split_spec

__all__ = [
    "describer",
    "describer_class",
    "image_embedder",
    "parse_options",
    "reducer",
    "split_spec",
    "text_embedder",
]

DESCRIBERS = {
    "offline": "connote.describers.offline:OfflineDescriber",
    "openai": "connote.describers.openai_api:OpenAIDescriber",
    "ollama": "connote.describers.openai_api:OllamaDescriber",
    "hf": "connote.describers.hf:HFDescriber",
}

TEXT_EMBEDDERS = {
    "minilm": "connote.embedders.text:MiniLMEmbedder",
    "st": "connote.embedders.text:SentenceTransformerEmbedder",
    "openai": "connote.embedders.openai_text:OpenAITextEmbedder",
}

IMAGE_EMBEDDERS = {
    "efficientnet-lite0": "connote.embedders.image:EfficientNetLiteEmbedder",
    "open_clip": "connote.embedders.image:OpenCLIPEmbedder",
    "torchvision": "connote.embedders.image:TorchvisionEmbedder",
}


def _load(target: str) -> Any:
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except ImportError as exc:
        raise UserError(
            f"{target.split(':')[0]} needs a package that is not installed: {exc.name or exc}. "
            "Install the extras with `pip install 'connote[all]'`"
        ) from None


def describer(spec: Any, **options: Any):
    if not isinstance(spec, str):
        return spec
    kind, arg = split_spec(spec)
    if kind not in DESCRIBERS:
        raise UserError(
            f"unknown describer {spec!r}; choose one of: offline, openai:MODEL, ollama:MODEL, hf:REPO_OR_PATH"
        )
    return _load(DESCRIBERS[kind])(arg, **options)


def describer_class(spec: str) -> type | None:
    """The class a describer spec names, or None when it names none (or its package is missing)."""
    target = DESCRIBERS.get(split_spec(spec)[0])
    if not target:
        return None
    try:
        return _load(target)
    except UserError:
        return None


def text_embedder(spec: Any, **options: Any):
    if not isinstance(spec, str):
        return spec
    kind, arg = split_spec(spec)
    if kind in TEXT_EMBEDDERS and kind != "minilm":
        return _load(TEXT_EMBEDDERS[kind])(arg, **options)
    if spec == "minilm":
        return _load(TEXT_EMBEDDERS["minilm"])(**options)
    # Anything else is a sentence-transformers model name or local path.
    return _load(TEXT_EMBEDDERS["st"])(spec, **options)


def image_embedder(spec: Any, **options: Any):
    if not isinstance(spec, str):
        return spec
    kind, arg = split_spec(spec)
    if kind in IMAGE_EMBEDDERS and kind != "torchvision":
        return (
            _load(IMAGE_EMBEDDERS[kind])(arg, **options) if arg else _load(IMAGE_EMBEDDERS[kind])(**options)
        )
    if kind == "torchvision":
        spec = arg
    # Anything else is a torchvision classification model name (vgg16, resnet50, ...).
    return _load(IMAGE_EMBEDDERS["torchvision"])(spec, **options)


def reducer(spec: Any, seed: int | None = DEFAULT_SEED):
    """'umap:components=5,neighbors=15' | 'pca:components=10' | 'pca:variance=0.8' | an object. The seed
    defaults to connote's (as :func:`connote.reduce.from_spec`)."""
    if not isinstance(spec, str):
        return spec
    from connote import reduce

    return reduce.from_spec(spec, seed=seed)
