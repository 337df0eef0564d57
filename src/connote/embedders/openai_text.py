"""OpenAI text embeddings: ``--text openai:text-embedding-3-small`` (or ``-3-large``, ``ada-002``).

Batched (``batch_size`` texts per request) and resumable (the runner saves each batch's vectors as it
returns; a run that stops is continued by running it again). Each request is reported with its tokens and
cost (:meth:`take_calls`; prices in ``describers/prices.toml``) for the runner to log (stage 'embed').
The key comes from OPENAI_API_KEY (or ``api_key=``) and is never stored. ``base_url=`` (or
OPENAI_BASE_URL) points at any OpenAI-compatible server.
Options in the spec: ``openai:text-embedding-3-small,dimensions=256``.
"""

from __future__ import annotations

import os
import time

import numpy as np

from connote.describers.pricing import price_for
from connote.embedders.base import TextEmbedder
from connote.errors import UserError
from connote.study.calls import ModelCall


def parse_model(model: str, dimensions: int | None, batch_size: int) -> tuple[str, int | None, int]:
    """``text-embedding-3-small,dimensions=64,batch_size=4`` -> the model and the options it names."""
    from connote.registry import parse_options

    name, _, rest = (model or "text-embedding-3-small").partition(",")
    opts = parse_options(rest)
    bad = set(opts) - {"dimensions", "batch_size"}
    if bad:
        raise UserError(
            f"unknown openai embedding option(s) {', '.join(sorted(bad))}; known: dimensions, batch_size"
        )
    try:
        dimensions = int(opts["dimensions"]) if "dimensions" in opts else dimensions
        batch_size = int(opts.get("batch_size", batch_size))
    except ValueError as exc:
        raise UserError(f"bad number in openai:{model}: {exc}") from None
    return name.strip(), dimensions, batch_size


class OpenAITextEmbedder(TextEmbedder):
    secret_params = ("api_key",)

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        batch_size: int = 256,
        dimensions: int | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        max_retries: int = 5,
        timeout: float = 60.0,
    ):
        model, dimensions, batch_size = parse_model(model, dimensions, batch_size)
        if not 1 <= batch_size <= 2048:
            raise UserError("batch_size must be between 1 and 2048 (the API's limit per request)")
        self.model = model
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.spec = f"openai:{self.model}" + (f",dimensions={dimensions}" if dimensions else "")
        self.name = f"text:openai:{self.model}" + (f"@{dimensions}" if dimensions else "")
        self.api_key = api_key  # never recorded (secret_params)
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        self.max_retries = max_retries
        self.timeout = timeout
        self._client = None
        self._calls: list[ModelCall] = []

    def provenance(self) -> dict:
        return {"backend": "openai"}

    def prepare(self, study=None):
        """Check that the openai package, a key and a valid price file are there before the first request."""
        self.client()
        price_for(self.model)  # a price that is no price (CONNOTE_PRICES) is named now, not after paying
        return self

    def client(self):
        if self._client is None:
            try:
                import openai
            except ImportError:
                raise UserError(
                    "OpenAI embeddings need the openai package: pip install 'connote[openai]'"
                ) from None
            key = self.api_key or os.environ.get("OPENAI_API_KEY")
            if not key:
                raise UserError("OpenAI embeddings need an API key: set OPENAI_API_KEY")
            self._client = openai.OpenAI(
                api_key=key, base_url=self.base_url, max_retries=self.max_retries, timeout=self.timeout
            )
        return self._client

    def price(self, tokens: int) -> float | None:
        """USD for ``tokens`` input tokens (prices.toml), or None when the model has no price there."""
        price = price_for(self.model)
        return price.cost(tokens, 0) if price is not None else None

    def take_calls(self) -> list[ModelCall]:
        calls, self._calls = self._calls, []
        return calls

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        import openai

        from connote.study import now, text_key

        kwargs = {"model": self.model, "input": list(texts), "encoding_format": "float"}
        if self.dimensions:
            kwargs["dimensions"] = self.dimensions
        started, t0 = now(), time.perf_counter()
        call = ModelCall(
            backend="openai",
            model=self.model,
            input_ref=f"{len(texts)} text(s), first {text_key(texts[0])[:12]}" if texts else "0 texts",
            params={"dimensions": self.dimensions, "batch": self.batch_size},
            started=started,
        )
        self._calls.append(call)
        try:
            resp = self.client().embeddings.create(**kwargs)
        except openai.APIError as exc:
            status = getattr(exc, "status_code", None)
            msg = f"{type(exc).__name__}" + (f" {status}" if status else "") + f": {str(exc)[:300]}"
            call.status, call.error, call.latency_s = "error", msg, time.perf_counter() - t0
            hint = (
                " Check OPENAI_API_KEY."
                if status in (401, 403)
                else " Run the same command again to continue."
            )
            raise UserError(
                f"OpenAI embeddings failed after {self.max_retries} retries: {msg}.{hint}"
            ) from None
        call.latency_s = time.perf_counter() - t0
        data = sorted(resp.data, key=lambda d: d.index)
        if len(data) != len(texts):
            call.status, call.error = "error", "wrong number of vectors"
            raise UserError(f"OpenAI returned {len(data)} vectors for {len(texts)} texts")
        X = np.asarray([d.embedding for d in data], dtype=np.float32)
        tokens = int(getattr(resp.usage, "prompt_tokens", 0) or 0) if resp.usage is not None else 0
        call.input_tokens, call.cost_usd = tokens, self.price(tokens)
        call.params["dim"] = X.shape[1]
        return X
