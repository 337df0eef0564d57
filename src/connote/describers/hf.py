"""Local vision-language models through transformers: ``hf:llava-hf/llava-1.5-7b-hf``, Qwen2-VL, SmolVLM ...

One code path for every model that ``AutoModelForImageTextToText`` and ``AutoProcessor`` load (a hub
name or a local folder): the processor's chat template turns an image + text user message into the
model's prompt, images are processed in batches (``batch_size``), generation is greedy by default, and a
GPU is used when present (``device_map='auto'`` on CUDA; ``device`` overrides).
"""

from __future__ import annotations

import threading

from connote.describers.base import DescribeError, Describer, Description, ImageItem


class HFDescriber(Describer):
    concurrency = 1  # one model in memory: batches run one after another

    def __init__(
        self,
        model: str,
        *,
        batch_size: int = 4,
        max_new_tokens: int = 256,
        device: str | None = None,
        dtype: str | None = None,
        max_side: int = 768,
        do_sample: bool = False,
        temperature: float | None = None,
        revision: str | None = None,
        max_tokens: int | None = None,  # the CLI's --max-tokens (wins over max_new_tokens)
    ):
        if not model:
            from connote.errors import UserError

            raise UserError("give a model: --describer hf:REPO_OR_PATH, e.g. hf:llava-hf/llava-1.5-7b-hf")
        self.spec = f"hf:{model}"
        self.model = model
        self.batch_size = max(1, int(batch_size))
        self.max_tokens = max_tokens
        self.max_new_tokens = int(max_tokens if max_tokens is not None else max_new_tokens)
        self.device = device
        self.dtype = dtype
        self.max_side = int(max_side)
        self.do_sample = bool(do_sample) or bool(temperature)  # a temperature > 0 means sampling
        self.temperature = temperature
        self.revision = revision
        self._loaded = None
        self._lock = threading.Lock()

    @property
    def retry_bad_outputs(self) -> bool:
        """Greedy decoding gives the same text again: asking twice only helps when sampling."""
        return self.do_sample

    # ------------------------------------------------------------------ loading
    def _resolve_device(self) -> str:
        import torch

        if self.device:
            return self.device
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return "mps"
        return "cpu"

    def load(self):
        with self._lock:
            if self._loaded is None:
                import torch
                from transformers import AutoModelForImageTextToText, AutoProcessor

                device = self._resolve_device()
                if self.dtype:
                    dtype = getattr(torch, self.dtype)
                else:
                    dtype = (
                        torch.bfloat16
                        if device == "cuda" and torch.cuda.is_bf16_supported()
                        else (torch.float16 if device in {"cuda", "mps"} else torch.float32)
                    )
                kwargs = {"dtype": dtype}
                if self.revision:
                    kwargs["revision"] = self.revision
                if device == "cuda" and not self.device:
                    kwargs["device_map"] = "auto"
                processor = AutoProcessor.from_pretrained(
                    self.model, **({"revision": self.revision} if self.revision else {})
                )
                model = AutoModelForImageTextToText.from_pretrained(self.model, **kwargs)
                if "device_map" not in kwargs:
                    model = model.to(device)
                model.eval()
                tok = getattr(processor, "tokenizer", None)
                if tok is not None:
                    tok.padding_side = "left"  # batched generation of a decoder-only model
                    if tok.pad_token is None:
                        tok.pad_token = tok.eos_token
                self._loaded = (processor, model, device)
            return self._loaded

    # ------------------------------------------------------------------ describing
    def _prompt_text(self, processor, prompt: str, n_images: int = 1) -> str:
        content = [{"type": "image"} for _ in range(n_images)] + [{"type": "text", "text": prompt}]
        return processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True
        )

    def describe(self, items: list[ImageItem], prompt: str) -> list[Description | DescribeError]:
        from connote.images import ImageError, downscale, load_image

        processor, _model, _device = self.load()
        out: list[Description | DescribeError | None] = [None] * len(items)
        images, idx = [], []
        for i, item in enumerate(items):
            try:
                images.append(
                    downscale(
                        load_image(item.path, sha256=item.sha256, max_side=self.max_side), self.max_side
                    )
                )
                idx.append(i)
            except ImageError as exc:
                out[i] = DescribeError(f"cannot read image: {exc}", permanent=True)
        if images:
            text = self._prompt_text(processor, prompt)
            for i, d in zip(idx, self._generate(images, [text] * len(images)), strict=True):
                out[i] = d
        return out  # type: ignore[return-value]

    def describe_images(self, items: list[ImageItem], prompt: str) -> Description | DescribeError:
        """One answer about several images shown together (an LLM coder's pair or set)."""
        from connote.images import ImageError, downscale, load_image

        processor, _model, _device = self.load()
        try:
            images = [
                downscale(load_image(item.path, sha256=item.sha256, max_side=self.max_side), self.max_side)
                for item in items
            ]
        except ImageError as exc:
            return DescribeError(f"cannot read image: {exc}", permanent=True)
        return self._generate([images], [self._prompt_text(processor, prompt, len(images))])[0]

    def _generate(self, images: list, texts: list[str]) -> list[Description]:
        """Greedy (or sampled) generation for each prompt of ``texts`` with its image(s) of ``images``."""
        import time

        import torch

        processor, model, _device = self.load()
        t0 = time.perf_counter()
        inputs = processor(images=images, text=texts, return_tensors="pt", padding=True)
        target = next(model.parameters()).device
        inputs = {k: v.to(target) if hasattr(v, "to") else v for k, v in inputs.items()}
        if "pixel_values" in inputs and inputs["pixel_values"].is_floating_point():
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        gen = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample}
        if self.do_sample and self.temperature is not None:
            gen["temperature"] = float(self.temperature)
        with torch.inference_mode():
            generated = model.generate(**inputs, **gen)
        new = generated[:, inputs["input_ids"].shape[1] :]
        decoded = processor.batch_decode(new, skip_special_tokens=True)
        eos = _eos_ids(model, processor)
        pad = getattr(getattr(processor, "tokenizer", None), "pad_token_id", None)
        per = (time.perf_counter() - t0) / len(texts)
        n_in = int(inputs["attention_mask"].sum(dim=1).float().mean()) if "attention_mask" in inputs else None
        out = []
        for j in range(len(texts)):
            row = [int(t) for t in new[j].tolist()]
            stops = [k for k, t in enumerate(row) if t in eos]
            ended = bool(stops)
            if ended:
                n_out = stops[0] + 1
            else:
                n_out = len(row)
                while n_out and pad is not None and row[n_out - 1] == pad:
                    n_out -= 1
            finish = "stop" if ended or n_out < self.max_new_tokens else "length"
            out.append(
                Description(
                    decoded[j].strip(),
                    model=self.model,
                    input_tokens=n_in,
                    output_tokens=n_out,
                    cost_usd=0.0,
                    latency_s=per,
                    extra={"finish_reason": finish, "batch": len(texts)},
                )
            )
        return out


def _eos_ids(model, processor) -> set[int]:
    ids: set[int] = set()
    for cfg in (getattr(model, "generation_config", None), getattr(model, "config", None)):
        e = getattr(cfg, "eos_token_id", None) if cfg is not None else None
        if isinstance(e, int):
            ids.add(e)
        elif isinstance(e, list | tuple):
            ids.update(int(x) for x in e)
    tok = getattr(processor, "tokenizer", None)
    if tok is not None and tok.eos_token_id is not None:
        ids.add(int(tok.eos_token_id))
    return ids
