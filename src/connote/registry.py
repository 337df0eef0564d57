"""Spec strings -> stage objects, in one small table per stage.

``openai:gpt-4-turbo``, ``hf:llava-hf/llava-1.5-7b-hf``, ``offline``, ``minilm``, ``vgg16``,
``umap:components=5,neighbors=15``: the part before ':' picks the backend, the rest is its argument.
Backends are imported only when asked for, so ``connote --help`` stays instant. An option a backend does
not take is refused with the ones it takes. Any object that already has the stage's method can be passed
instead of a spec (pluggable sub-models); the defaults of the stage's base class fill in what it lacks.
"""

from __future__ import annotations

import importlib
from typing import Any

from connote.errors import UserError

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


def split_spec(spec: str) -> tuple[str, str]:
    kind, _, arg = spec.partition(":")
    return kind.strip(), arg.strip()


def parse_options(arg: str) -> dict[str, str]:
    """'components=5,neighbors=15' -> {'components': '5', 'neighbors': '15'}."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in arg.split(","))):
        key, eq, value = part.partition("=")
        if not eq:
            raise UserError(f"expected key=value in {arg!r}, got {part!r}")
        out[key.strip()] = value.strip()
    return out


def describer_class(spec: str) -> type | None:
    """The class a describer spec names, or None when the spec is unknown or its packages are missing."""
    target = DESCRIBERS.get(split_spec(spec)[0])
    if not target:
        return None
    try:
        return _load(target)
    except UserError:
        return None


def build(target: str, arg: str, options: dict, what: str):
    """Make the stage class ``target`` names from the spec's argument and options, refusing an option it
    does not take (naming the ones it takes) and an argument after ':' when it takes none."""
    from connote.stages import check_options, init_params

    cls = _load(target)
    check_options(cls, options, what)
    if len(init_params(cls)) > len(init_params(cls, options_only=True)):  # it takes a positional argument
        return cls(arg, **options)
    if arg:
        raise UserError(f"{what} takes no argument after ':' (got {arg!r})")
    return cls(**options)


def describer(spec: Any, **options: Any):
    """A describer from its spec (``offline``, ``openai:MODEL``, ``ollama:MODEL``, ``hf:REPO``) and options,
    or an object of your own (wrapped when it does not derive from :class:`~connote.describers.base.Describer`)."""
    if not isinstance(spec, str):
        from connote.describers.base import as_describer

        if options:
            raise UserError(
                f"options ({', '.join(sorted(options))}) go to a describer spec, not to an object"
            )
        return as_describer(spec)
    kind, arg = split_spec(spec)
    if kind not in DESCRIBERS:
        raise UserError(
            f"unknown describer {spec!r}; choose one of: offline, openai:MODEL, ollama:MODEL, hf:REPO_OR_PATH"
        )
    return build(DESCRIBERS[kind], arg, options, f"describer {spec!r}")


def text_embedder(spec: Any, **options: Any):
    """A text embedder from its spec (``minilm``, ``openai:MODEL``, a sentence-transformers name or path)
    and options, or an object of your own."""
    if not isinstance(spec, str):
        from connote.embedders.base import as_text_embedder

        if options:
            raise UserError(
                f"options ({', '.join(sorted(options))}) go to an embedder spec, not to an object"
            )
        return as_text_embedder(spec)
    kind, arg = split_spec(spec)
    what = f"text embedder {spec!r}"
    if kind in TEXT_EMBEDDERS and kind != "minilm":
        return build(TEXT_EMBEDDERS[kind], arg, options, what)
    if spec == "minilm":
        return build(TEXT_EMBEDDERS["minilm"], "", options, what)
    # Anything else is a sentence-transformers model name or local path.
    return build(TEXT_EMBEDDERS["st"], spec, options, what)


def image_embedder(spec: Any, **options: Any):
    """An image embedder from its spec (``vgg16`` or another torchvision model, ``efficientnet-lite0``,
    ``open_clip:MODEL[@PRETRAINED]``) and options, or an object of your own."""
    if not isinstance(spec, str):
        from connote.embedders.base import as_image_embedder

        if options:
            raise UserError(
                f"options ({', '.join(sorted(options))}) go to an embedder spec, not to an object"
            )
        return as_image_embedder(spec)
    kind, arg = split_spec(spec)
    what = f"image embedder {spec!r}"
    if kind in IMAGE_EMBEDDERS and kind != "torchvision":
        return build(IMAGE_EMBEDDERS[kind], arg, options, what)
    if kind == "torchvision":
        spec = arg
    # Anything else is a torchvision classification model name (vgg16, resnet50, ...).
    return build(IMAGE_EMBEDDERS["torchvision"], spec, options, what)


def reducer(spec: Any, seed: int | None = None):
    """'umap:components=5,neighbors=15' | 'pca:components=10' | 'pca:variance=0.8' | an object."""
    if not isinstance(spec, str):
        return spec
    from connote import reduce

    return reduce.from_spec(spec, seed=seed)
