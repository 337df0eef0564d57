"""The transformers describer, with a tiny randomly initialised LLaVA built from a config (no hub access)."""

from __future__ import annotations

import json

import pytest

from connote import steps
from connote.testing import make_images

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory):
    """A LLaVA-architecture model a few hundred kB in size, saved like a hub checkpoint."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from connote.testing.tiny_models import tiny_llava as build

    return build(tmp_path_factory.mktemp("tiny-llava"))


def test_hf_describer_plumbing(tiny_llava, tmp_path, monkeypatch):
    from connote.describers import hf
    from connote.describers import runner as runner_mod

    monkeypatch.setattr(runner_mod, "BACKOFF_BASE", 0.01)
    make_images(tmp_path / "images", 5)
    study = steps.init(tmp_path / "study", tmp_path / "images", progress=False)
    sizes = []
    real = hf.HFDescriber.describe

    def spy(self, items, prompt):
        sizes.append(len(items))
        return real(self, items, prompt)

    monkeypatch.setattr(hf.HFDescriber, "describe", spy)
    s = steps.describe(study, f"hf:{tiny_llava}", batch_size=2, max_new_tokens=6, progress=False)
    # Random weights write gibberish: every output is stored, most are flagged (truncated / word salad).
    assert s.total == 5 and s.described + s.flagged == 5 and s.failed == 0
    assert sizes == [2, 2, 1]  # batch size honoured; greedy decoding: flagged outputs are not asked twice
    rows = study.description_rows(s.set_id)
    assert len(rows) == 5 and all(r["text"] for r in rows)
    assert all(r["status"] == "ok" or r["reason"] for r in rows)
    ds = study.resolve_description_set()
    assert ds["describer"] == f"hf:{tiny_llava}" and ds["model"] == str(tiny_llava)
    params = json.loads(ds["params"])
    assert params["batch_size"] == 2 and params["max_new_tokens"] == 6 and params["do_sample"] is False
    calls = study.calls("describe")
    assert all(c["output_tokens"] and c["output_tokens"] <= 6 and c["cost_usd"] == 0 for c in calls)
    assert {json.loads(c["params"])["response"]["finish_reason"] for c in calls} <= {"stop", "length"}
    # Resume: nothing left to do.
    assert (
        steps.describe(study, f"hf:{tiny_llava}", batch_size=2, max_new_tokens=6, progress=False).described
        == 0
    )


def test_hf_device_choice(monkeypatch):
    import torch

    from connote.describers.hf import HFDescriber

    d = HFDescriber("llava-hf/llava-1.5-7b-hf")
    assert d.spec == "hf:llava-hf/llava-1.5-7b-hf" and d.batch_size == 4
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert d._resolve_device() == "cuda"
    assert HFDescriber("x", device="cpu")._resolve_device() == "cpu"
