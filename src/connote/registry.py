"""Spec strings -> stage objects, in one small table per stage.

``openai:gpt-4-turbo``, ``hf:llava-hf/llava-1.5-7b-hf``, ``offline``, ``minilm``, ``vgg16``,
``umap:components=5,neighbors=15``: the part before ':' picks the backend, the rest is its argument.
Backends are imported only when asked for, so ``connote --help`` stays instant. An option a backend does
not take is refused with the ones it takes. Any object that already has the stage's method can be passed
instead of a spec (pluggable sub-models); the defaults of the stage's base class fill in what it lacks.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from connote import numbers
from connote.defaults import DEFAULT_SEED
from connote.errors import UserError
from connote.params import check_options
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

REDUCERS = {
    "umap": "connote.reduce:UMAPReducer",
    "pca": "connote.reduce:PCAReducer",
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


def options_of(cls: type) -> list[str]:
    """The options a stage class takes: the keyword-only parameters of its ``__init__`` (a positional one
    is the argument of the spec string, e.g. the model name)."""
    params = list(inspect.signature(cls).parameters.values())
    return [p.name for p in params if p.kind is p.KEYWORD_ONLY]


def build(target: str, arg: str, options: dict, what: str):
    """Make the stage class ``target`` names from the spec's argument and options, refusing an option it
    does not take (with the ones it takes) and an argument after ':' when it takes none."""
    cls = _load(target)
    check_options(what, options, options_of(cls))
    options = numbers.stage_options(options, what)
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    if any(p.kind is p.POSITIONAL_OR_KEYWORD for p in params):
        return cls(arg, **options)
    if arg:
        raise UserError(f"{what} takes no argument after ':' (got {arg!r})")
    return cls(**options)


def _own_object(obj: Any, options: dict, wrap: str, noun: str):
    """An object of the user's own given for a stage, wrapped by ``wrap`` (its stage's defaults filled in);
    options belong to a spec string, so any given with an object are refused."""
    if options:
        raise UserError(f"options ({', '.join(sorted(options))}) go to {noun} spec, not to an object")
    return _load(wrap)(obj)


def describer(spec: Any, **options: Any):
    """A describer from its spec (``offline``, ``openai:MODEL``, ``ollama:MODEL``, ``hf:REPO``) and options,
    or an object of your own (wrapped when it does not derive from :class:`~connote.describers.base.Describer`)."""
    if not isinstance(spec, str):
        return _own_object(spec, options, "connote.describers.base:as_describer", "a describer")
    kind, arg = split_spec(spec)
    if kind not in DESCRIBERS:
        raise UserError(
            f"unknown describer {spec!r}; choose one of: offline, openai:MODEL, ollama:MODEL, hf:REPO_OR_PATH"
        )
    return build(DESCRIBERS[kind], arg, options, f"{spec!r} describer")


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
    """A text embedder from its spec (``minilm``, ``openai:MODEL``, a sentence-transformers name or path)
    and options, or an object of your own."""
    if not isinstance(spec, str):
        return _own_object(spec, options, "connote.embedders.base:as_text_embedder", "an embedder")
    kind, arg = split_spec(spec)
    what = f"{spec!r} text embedder"
    if kind in TEXT_EMBEDDERS and kind != "minilm":
        return build(TEXT_EMBEDDERS[kind], arg, options, what)
    if kind == "minilm":  # minilm:openvino | minilm:openvino-bf16 | minilm:torch name the runtime
        return build(TEXT_EMBEDDERS["minilm"], "", {**({"runtime": arg} if arg else {}), **options}, what)
    # Anything else is a sentence-transformers model name or local path.
    return build(TEXT_EMBEDDERS["st"], spec, options, what)


def image_embedder(spec: Any, **options: Any):
    """An image embedder from its spec (``vgg16`` or another torchvision model, ``efficientnet-lite0``,
    ``open_clip:MODEL[@PRETRAINED]``) and options, or an object of your own."""
    if not isinstance(spec, str):
        return _own_object(spec, options, "connote.embedders.base:as_image_embedder", "an embedder")
    kind, arg = split_spec(spec)
    what = f"{spec!r} image embedder"
    if kind in IMAGE_EMBEDDERS and kind != "torchvision":
        return build(IMAGE_EMBEDDERS[kind], arg, options, what)
    if kind == "torchvision":
        spec = arg
    # Anything else is a torchvision classification model name (vgg16, resnet50, ...).
    return build(IMAGE_EMBEDDERS["torchvision"], spec, options, what)


def reducer(spec: Any, seed: int | None = DEFAULT_SEED):
    """'umap:components=5,neighbors=15' | 'umap' | 'pca:components=10' | 'pca:variance=0.8' | an object.
    The options a spec may set are the reducer class's ``spec_options`` (:class:`connote.reduce.Reducer`);
    the seed defaults to connote's."""
    if not isinstance(spec, str):
        return spec
    kind, arg = split_spec(spec)
    if kind not in REDUCERS:
        raise UserError(
            f"unknown reduction {spec!r}; use umap:components=5,neighbors=15, pca:components=10 "
            "or pca:variance=0.8"
        )
    cls = _load(REDUCERS[kind])
    others = tuple(_load(t) for k, t in REDUCERS.items() if k != kind)
    return cls.from_options(parse_options(arg), seed=seed, spec=spec, others=others)
