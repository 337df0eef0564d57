"""MiniLM on OpenVINO: the same vectors as sentence-transformers on PyTorch, its own name in the study,
and a study made before OpenVINO keeps its PyTorch vectors unless the new runtime is asked for."""

from __future__ import annotations

import numpy as np
import pytest

from connote import registry, steps
from connote.embedders.text import mean_pool
from connote.errors import UserError
from connote.models import openvino_runtime
from connote.study import Study, text_key

pytest.importorskip("openvino")

TEXTS = [
    "A protest march against climate change in a city street.",
    "",
    "   surrounded by spaces   ",
    "Émoji 🌍 and accents: café, naïve, Zürich.",
    "word " * 400,  # longer than 256 tokens: cut as sentence-transformers cuts it
    "short",
] + [f"Slide {i}: the share of renewable energy rose to {i * 3} percent in {1990 + i}." for i in range(70)]


def test_mean_pool_is_the_masked_mean_then_unit_length():
    tokens = np.array([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]]], dtype=np.float32)
    mask = np.array([[1, 1, 0]])
    np.testing.assert_allclose(mean_pool(tokens, mask, normalize=False), [[2.0, 2.0]])
    np.testing.assert_allclose(mean_pool(tokens, mask), [[2**-0.5, 2**-0.5]], rtol=1e-6)


def test_openvino_vectors_match_pytorch_for_every_text():
    ov = registry.text_embedder("minilm", runtime="openvino")
    torch = registry.text_embedder("minilm", runtime="torch")
    a = np.concatenate(
        [ov.embed_texts(TEXTS[i : i + ov.batch_size]) for i in range(0, len(TEXTS), ov.batch_size)]
    )
    b = torch.embed_texts(TEXTS)
    assert a.shape == b.shape == (len(TEXTS), 384) and a.dtype == np.float32
    assert np.sum(a * b, axis=1).min() >= 0.9999
    # rows stay in the order given, whatever order the batches ran in
    np.testing.assert_allclose(ov.embed_texts(TEXTS[::-1]), a[::-1], atol=1e-5)
    assert ov.embed_texts([]).shape == (0, 384)


def test_each_runtime_has_its_own_name_and_records_it():
    ov, torch = registry.text_embedder("minilm:openvino"), registry.text_embedder("minilm:torch")
    assert (ov.name, torch.name) == ("text:minilm-openvino", "text:minilm")
    assert registry.text_embedder("minilm").name == "text:minilm-openvino"  # the default for a new study
    assert registry.text_embedder("minilm: OpenVINO ").name == "text:minilm-openvino"  # one spelling
    assert ov.get_params()["runtime"] == "openvino" and torch.get_params()["runtime"] == "torch"
    assert ov.provenance()["precision"] == "f32" and "runtime" not in torch.provenance()
    assert registry.text_embedder("minilm:openvino").get_params()["runtime"] == "openvino"
    for bad in ({"spec": "minilm", "runtime": "onnx"}, {"spec": "minilm:onnx"}):
        with pytest.raises(UserError, match="runtime is one of openvino, openvino-bf16, torch"):
            registry.text_embedder(**bad)
    assert registry.text_embedder("minilm", device="cuda").name == "text:minilm"  # a GPU: PyTorch


def _study_with_texts(path, texts):
    study = Study.create(path)
    set_id = study.description_set("texts", "imported:test", None, None, {})
    for i, text in enumerate(texts):
        study.put_description(set_id, f"{i:064x}", text)
    return study


def test_a_study_made_before_keeps_its_pytorch_vectors(tmp_path):
    texts = TEXTS[6:30]
    old = _study_with_texts(tmp_path / "old", texts)
    # a study embedded before OpenVINO: its vectors under text:minilm, made by PyTorch
    (before,) = steps.embed(old, "minilm", runtime="torch", progress=False)
    assert before.embedder == "text:minilm" and before.computed == len(texts)
    (again,) = steps.embed(old, "minilm", progress=False)  # the default: nothing new is computed
    assert again.embedder == "text:minilm" and again.computed == 0
    assert steps.cluster(old, reduce="pca:components=5", min_cluster_size=3).run_id
    assert {r["embedder"] for r in old.con.execute("SELECT embedder FROM runs")} == {"text:minilm"}
    # asked for, the new runtime's vectors go under their own name beside the old ones
    (new,) = steps.embed(old, "minilm", runtime="openvino", progress=False)
    assert new.embedder == "text:minilm-openvino" and new.computed == len(texts)
    keys = [text_key(t) for t in texts]
    a, b = old.load_vectors("text:minilm-openvino", keys), old.load_vectors("text:minilm", keys)
    assert np.sum(a * b, axis=1).min() >= 0.9999 and not np.array_equal(a, b)

    # a study embedded on OpenVINO alone keeps using those vectors when no runtime is named
    fresh = _study_with_texts(tmp_path / "fresh", texts)
    (made,) = steps.embed(fresh, "minilm:openvino", progress=False)
    assert made.embedder == "text:minilm-openvino"
    (again,) = steps.embed(fresh, "minilm", progress=False)
    assert again.embedder == "text:minilm-openvino" and again.computed == 0
    run = steps.cluster(fresh, reduce="pca:components=5", min_cluster_size=3, seed=42)
    assert fresh.get_run(run.run_id)["embedder"] == "text:minilm-openvino"


needs_bf16 = pytest.mark.skipif(
    not openvino_runtime.has_bf16(), reason="this CPU does not compute in bfloat16 (AVX-512 BF16 or AMX)"
)


@needs_bf16
def test_bf16_vectors_are_within_the_issues_cosine_of_pytorch_and_named_apart():
    bf16 = registry.text_embedder("minilm:openvino-bf16")
    f32 = registry.text_embedder("minilm:openvino")
    assert bf16.name == "text:minilm-openvino-bf16" and bf16.get_params()["runtime"] == "openvino-bf16"
    assert bf16.provenance()["precision"] == "bf16" and bf16.provenance()["runtime"] == "openvino"
    a = bf16.embed_texts(TEXTS)
    b = registry.text_embedder("minilm:torch").embed_texts(TEXTS)
    c = f32.embed_texts(TEXTS)
    cos = np.sum(a * b, axis=1)
    assert a.dtype == np.float32 and cos.min() >= 0.9999
    # the float32 runtime is closer still: the two OpenVINO precisions really are different computations
    assert np.sum(c * b, axis=1).min() > cos.min() and not np.allclose(a, c, atol=1e-6)
    np.testing.assert_allclose(bf16.embed_texts(TEXTS[::-1]), a[::-1], atol=2e-3)


@needs_bf16
def test_bf16_is_refused_where_the_cpu_cannot_compute_in_it_but_its_vectors_are_read(tmp_path, monkeypatch):
    texts = TEXTS[6:20]
    study = _study_with_texts(tmp_path / "s", texts)
    steps.embed(study, "minilm:openvino-bf16", progress=False)  # made on a CPU with bfloat16
    monkeypatch.setattr(openvino_runtime, "has_bf16", lambda: False)  # the study moved to one without
    (again,) = steps.embed(study, "minilm", progress=False)  # nothing to compute: no refusal
    assert again.embedder == "text:minilm-openvino-bf16" and again.computed == 0
    run = steps.cluster(study, reduce="pca:components=5", min_cluster_size=3, seed=42)
    assert study.get_run(run.run_id)["embedder"] == "text:minilm-openvino-bf16"
    with pytest.raises(UserError, match="cannot compute in bfloat16.*minilm:openvino"):
        registry.text_embedder("minilm:openvino-bf16").embed_texts(["a new text"])
    with pytest.raises(UserError, match="runs on the CPU"):
        registry.text_embedder("minilm", runtime="openvino-bf16", device="cuda")


@needs_bf16
def test_a_study_keeps_the_runtime_it_was_embedded_with_last(tmp_path):
    texts = TEXTS[6:20]
    study = _study_with_texts(tmp_path / "s", texts)
    (made,) = steps.embed(study, "minilm:openvino-bf16", progress=False)
    assert made.embedder == "text:minilm-openvino-bf16" and made.computed == len(texts)
    (again,) = steps.embed(study, "minilm", progress=False)  # no runtime named: the study's own
    assert again.embedder == "text:minilm-openvino-bf16" and again.computed == 0
    (f32,) = steps.embed(study, "minilm:openvino", progress=False)
    assert f32.embedder == "text:minilm-openvino" and f32.computed == len(texts)
    (newest,) = steps.embed(study, "minilm", progress=False)  # two other runtimes: the newest
    assert newest.embedder == "text:minilm-openvino" and newest.computed == 0
    run = steps.cluster(
        study, text="minilm:openvino-bf16", reduce="pca:components=5", min_cluster_size=3, seed=42
    )
    assert study.get_run(run.run_id)["embedder"] == "text:minilm-openvino-bf16"
