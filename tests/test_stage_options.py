"""Describers and embedders follow scikit-learn's parameter conventions: an option a stage does not take
is refused by name (with the ones it takes), get_params() reads the options back, and what a study records
about a stage is plain JSON: never a secret, never a repr with a memory address."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from connote import registry, steps
from connote.cli import main
from connote.describers.base import Describer, Description
from connote.describers.offline import OfflineDescriber
from connote.describers.openai_api import OpenAIDescriber
from connote.embedders.image import FunctionImageEmbedder, TorchvisionEmbedder
from connote.errors import UserError
from connote.params import recorded_params

ADDRESS = re.compile(r"0x[0-9a-f]{6,}")


@pytest.mark.parametrize(
    ("make", "spec", "options", "unknown", "accepted"),
    [
        (
            registry.describer,
            "offline",
            {"detail": "high"},
            "detail",
            "top_labels",
        ),
        (registry.describer, "openai:gpt-4o", {"max_tokenz": 5}, "max_tokenz", "max_tokens"),
        (registry.describer, "ollama:llava", {"batch_size": 4}, "batch_size", "concurrency"),
        (registry.describer, "hf:some/model", {"max_token": 5}, "max_token", "max_new_tokens"),
        (registry.text_embedder, "minilm", {"weights_path": "x.pth"}, "weights_path", "normalize"),
        (
            registry.text_embedder,
            "openai:text-embedding-3-small",
            {"dimension": 64},
            "dimension",
            "dimensions",
        ),
        (registry.image_embedder, "vgg16", {"dimensions": 3}, "dimensions", "weights_path"),
        (registry.image_embedder, "efficientnet-lite0", {"device": "cuda"}, "device", "batch_size"),
    ],
)
def test_an_unknown_option_is_refused_by_name(make, spec, options, unknown, accepted):
    with pytest.raises(UserError) as err:
        make(spec, **options)
    msg = str(err.value)
    assert f"option {unknown!r}" in msg and accepted in msg.split("known:")[1] and repr(spec) in msg


def test_every_unknown_option_is_named():
    with pytest.raises(UserError) as err:
        registry.describer("offline", detail="high", device="cuda", max_tokenz=5)
    msg = str(err.value)
    assert "options 'detail', 'device', 'max_tokenz' (known: batch_size," in msg and "top_labels" in msg


def test_an_argument_where_none_is_taken_is_refused():
    with pytest.raises(UserError, match="takes no argument after ':'"):
        registry.describer("offline:fast")
    with pytest.raises(UserError, match="takes no argument after ':'"):
        registry.image_embedder("efficientnet-lite0:b3")


def test_get_params_reads_back_the_options():
    d = registry.describer("openai:gpt-4o", detail="high", max_tokens=99)
    params = d.get_params()
    assert params["model"] == "gpt-4o" and params["detail"] == "high" and params["max_tokens"] == 99
    assert OpenAIDescriber(**params).get_params() == params
    off = OfflineDescriber(top_labels=2).set_params(ocr=False)
    params = off.get_params()
    assert {k: params[k] for k in ("top_labels", "min_label_prob", "ocr", "batch_size")} == {
        "top_labels": 2,
        "min_label_prob": 0.05,
        "ocr": False,
        "batch_size": 8,
    }
    assert OfflineDescriber(**params).get_params() == params
    with pytest.raises(UserError, match="did you mean 'ocr'"):
        off.set_params(ocrr=True)
    emb = registry.text_embedder("openai:text-embedding-3-small,dimensions=64", api_key="sk-secret-1")
    assert emb.get_params()["dimensions"] == 64 and "sk-secret-1" not in json.dumps(recorded_params(emb))


def test_recorded_params_are_plain_json_without_secrets_or_addresses():
    d = registry.describer("openai:gpt-4o", base_url="https://user:pw@example.org/v1?key=k")
    rec = recorded_params(d)
    assert rec["base_url"] == "https://example.org/v1" and "pw" not in json.dumps(rec)
    assert recorded_params(TorchvisionEmbedder("vgg16"))["weights"] == "DEFAULT"

    class Mine:  # a describer of one's own, not derived from Describer
        spec = "mine"

        def __init__(self):
            self.model_obj = object()
            self.threshold = 0.5
            self.fn = lambda x: x

        def describe(self, items, prompt):
            return [Description("a text") for _ in items]

    rec1, rec2 = recorded_params(registry.describer(Mine())), recorded_params(registry.describer(Mine()))
    assert rec1 == rec2 and not ADDRESS.search(json.dumps(rec1))
    assert rec1["threshold"] == 0.5 and rec1["class"].endswith("Mine")

    emb = FunctionImageEmbedder(lambda imgs: np.zeros((len(imgs), 2)), name="zeros", params={"v": object()})
    assert not ADDRESS.search(json.dumps(recorded_params(emb)))


def test_a_custom_describer_runs_with_the_declared_defaults(tmp_path):
    from conftest import make_noise_images

    class Plain:  # only describe(): every hook has its default
        spec = "plain"

        def describe(self, items, prompt):
            return [
                Description(f"A crowded beach at noon, people swimming, photo {i.sha256[:6]}.") for i in items
            ]

    make_noise_images(tmp_path / "images", 3)
    study = steps.init(tmp_path / "s", tmp_path / "images", progress=False)
    est = steps.describe(study, Plain(), dry_run=True, progress=False)
    assert est.images == 3 and est.cost_usd == 0.0
    s = steps.describe(study, Plain(), progress=False, max_cost=1.0)
    assert s.described == 3
    row = study.description_sets()[0]
    assert json.loads(row["params"])["class"].endswith("Plain") and not ADDRESS.search(row["params"])

    class Sub(Describer):
        spec = "sub"

        def __init__(self, *, loud: bool = False):
            self.loud = loud

        def describe(self, items, prompt):
            word = "loud" if self.loud else "quiet"
            return [
                Description(f"A {word} street scene with people marching under banners at dusk.")
                for _ in items
            ]

    assert steps.describe(study, Sub(loud=True), progress=False).described == 3
    assert json.loads(study.description_sets()[1]["params"]) == {
        "class": f"{__name__}.{Sub.__qualname__}",
        "loud": True,
    }


def test_the_cli_names_the_unknown_option(tmp_path, capsys):
    from conftest import make_noise_images

    make_noise_images(tmp_path / "images", 2)
    steps.init(tmp_path / "s", tmp_path / "images", progress=False)
    assert main(["describe", str(tmp_path / "s"), "--detail", "high", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown 'offline' describer option 'detail' (known: batch_size")
    assert main(["embed", str(tmp_path / "s"), "--image-weights", "x.pth", "-q"]) == 2
    assert "go with --image" in capsys.readouterr().err
