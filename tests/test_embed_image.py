"""Image embedders: torchvision CNNs (the paper's VGG16 baseline) without hub access, the offline fallback,
and plugging in your own model."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_noise_images

import connote
from connote import registry, steps
from connote.cli import main as cli_main
from connote.embedders import image as image_mod
from connote.embedders.image import (
    FunctionImageEmbedder,
    TorchvisionEmbedder,
    WeightsFallbackWarning,
)
from connote.errors import UserError
from connote.params import recorded_params

torch = pytest.importorskip("torch")
models = pytest.importorskip("torchvision.models")


@pytest.fixture()
def study(tmp_path):
    make_noise_images(tmp_path / "images", 3, size=48)
    return steps.init(tmp_path / "study", tmp_path / "images", progress=False)


@pytest.fixture()
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch_home"
    (home / "hub" / "checkpoints").mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def _pil_images(n=3, size=64):
    from PIL import Image

    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (size, size + 8 * i, 3), dtype=np.uint8)) for i in range(n)]


def test_torchvision_weights_through_torchvision_own_loading(torch_home, study):
    """A state_dict placed where torchvision caches the ImageNet weights (TORCH_HOME/hub/checkpoints/<file
    name of Weights.url>) is loaded by get_model(name, weights="DEFAULT"): no network needed."""
    arch = "mobilenet_v3_small"
    weights = models.get_model_weights(arch).DEFAULT
    net = models.get_model(arch, weights=None)
    torch.save(net.state_dict(), torch_home / "hub" / "checkpoints" / Path(weights.url).name)

    emb = registry.image_embedder(arch)
    assert isinstance(emb, TorchvisionEmbedder) and emb.name == f"image:{arch}"
    assert emb.prepare() is emb  # weights found in the cache: no fallback
    assert recorded_params(emb)["weights"] == str(weights)
    X = emb.embed_images(_pil_images())
    assert X.shape == (3, 1024)  # penultimate layer: classifier minus its last Linear
    np.testing.assert_allclose(X, emb.embed_images(_pil_images()), rtol=1e-5, atol=1e-5)

    # Through the step: vectors cached by image hash, reused the second time.
    s1 = steps.embed(study, None, arch, progress=False)[0]
    assert (s1.embedder, s1.computed, s1.dim) == (f"image:{arch}", 3, 1024)
    assert s1.notice is None
    s2 = steps.embed(study, None, arch, progress=False)[0]
    assert (s2.computed, s2.reused) == (0, 3)
    feats = steps.features(study, "image", image=arch)
    assert feats.X.shape == (3, 1024)


@pytest.mark.slow
def test_vgg16_fc7_from_a_weights_file(tmp_path):
    """The paper's baseline: VGG16, 4,096-d fc7 activations. A state_dict that is not torchvision's own
    file is recorded under its own name (vgg16@sha), never mixed with the ImageNet-weights vectors."""
    path = tmp_path / "vgg16-mine.pth"
    torch.save(models.get_model("vgg16", weights=None).state_dict(), path)
    emb = registry.image_embedder("vgg16", weights_path=path)
    assert emb.name.startswith("image:vgg16@") and "sha256" in recorded_params(emb)["weights"]
    X = emb.embed_images(_pil_images(2))
    assert X.shape == (2, 4096)
    assert (X >= 0).all()  # fc7 after its ReLU
    # The classifier kept fc6, ReLU, Dropout, fc7, ReLU, Dropout: minus the last layer only.
    assert len(emb._model.classifier) == 6


def test_fallback_when_weights_cannot_be_had(torch_home, study, monkeypatch, capsys):
    """Nothing cached and no network: said on screen, and the vectors are stored as
    efficientnet-lite0 (not vgg16)."""
    # Deterministic whatever the machine's network: the probe reports the host unreachable.
    monkeypatch.setattr(image_mod, "_reachable", lambda url, timeout=5.0: "cannot reach host (test)")
    with pytest.warns(WeightsFallbackWarning, match="efficientnet-lite0"):
        summary = steps.embed(study, None, "vgg16", progress=False)[0]
    assert summary.embedder == "image:efficientnet-lite0" and summary.dim == 1280
    assert "vgg16" in summary.notice and "image:efficientnet-lite0" in summary.notice
    assert not study.vector_dir("image:vgg16").exists()
    registered = {e["name"]: e for e in study.embedders()}
    assert "image:vgg16" not in registered
    assert '"fallback_from": "vgg16"' in registered["image:efficientnet-lite0"]["params"]
    with pytest.raises(UserError, match="no image:vgg16 vectors"):
        steps.features(study, "image", image="vgg16")

    # CLI: the notice is printed plainly; --no-fallback fails instead.
    assert cli_main(["embed", str(study.path), "--no-text", "--image", "vgg16", "-q"]) == 0
    out = capsys.readouterr()
    assert (
        "NOTE: vgg16" in out.err
        and "image:efficientnet-lite0: 3 input(s), 0 embedded now, 3 reused" in out.out
    )
    assert cli_main(["embed", str(study.path), "--no-text", "--image", "vgg16", "--no-fallback", "-q"]) == 2
    assert "weights unavailable" in capsys.readouterr().err


def test_real_probe_fails_fast_offline():
    """The real reachability probe answers within its timeout (no long hang when there is no network)."""
    url = models.get_model_weights("vgg16").DEFAULT.url
    t0 = time.perf_counter()
    image_mod._reachable(url, timeout=3.0)
    assert time.perf_counter() - t0 < 10


def test_own_model_and_errors(study):
    emb = FunctionImageEmbedder(lambda imgs: [[img.width, img.height, 1.0] for img in imgs], name="size")
    summary = connote.embed(study, None, image=emb, progress=False)[0]
    assert (summary.embedder, summary.dim) == ("image:size", 3)
    assert steps.features(study, "image", image=emb).X.shape == (3, 3)

    with pytest.raises(UserError, match="unknown torchvision model"):
        TorchvisionEmbedder("not_a_model").prepare()
    with pytest.raises(UserError, match="not found"):
        TorchvisionEmbedder("vgg16", weights_path="/nonexistent.pth")
    try:
        import open_clip  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match="open_clip_torch"):
            registry.image_embedder("open_clip:ViT-B-32")
