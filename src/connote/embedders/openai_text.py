"""OpenAI text embeddings: ``--text openai:text-embedding-3-small`` (or ``-3-large``, ``ada-002``).

Batched (``batch_size`` texts per request), resumable (each batch's vectors are saved as it returns; a run
that stops is continued by running it again), and every request is logged with its tokens and cost in the
study's call log (stage 'embed'). The key comes from OPENAI_API_KEY (or ``api_key=``) and is never
stored. ``base_url=`` (or OPENAI_BASE_URL) points at any OpenAI-compatible server.
Options in the spec: ``openai:text-embedding-3-small,dimensions=256``.
"""

from __future__ import annotations

import os
import time

import numpy as np

from connote.errors import UserError

#: USD per 1M input tokens (OpenAI list prices).
PRICES = {"text-embedding-3-small": 0.02, "text-embedding-3-large": 0.13, "text-embedding-ada-002": 0.10}


class OpenAITextEmbedder:
    def __init__(
        self,
        arg: str = "text-embedding-3-small",
        *,
        batch_size: int = 256,
        dimensions: int | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        max_retries: int = 5,
        timeout: float = 60.0,
        **_ignored,
    ):
        from connote.registry import parse_options

        model, _, rest = (arg or "text-embedding-3-small").partition(",")
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
            raise UserError(f"bad number in openai:{arg}: {exc}") from None
        if not 1 <= batch_size <= 2048:
            raise UserError("batch_size must be between 1 and 2048 (the API's limit per request)")
        self.model = model.strip()
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.spec = f"openai:{self.model}" + (f",dimensions={dimensions}" if dimensions else "")
        self.name = f"text:openai:{self.model}" + (f"@{dimensions}" if dimensions else "")
        self._api_key = api_key  # never written anywhere
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL")
        self.max_retries = max_retries
        self.timeout = timeout
        self.study = None
        self._client = None
        self.cost_usd = 0.0
        self.tokens = 0

    def params(self) -> dict:
        p = {"model": self.model, "dimensions": self.dimensions, "backend": "openai"}
        if self.base_url:
            p["base_url"] = self.base_url
        return p

    def prepare(self, study=None):
        """Bind the study whose call log records each request; check that a key is there."""
        self.study = study
        self.client()
        return self

    def client(self):
        if self._client is None:
            try:
                import openai
            except ImportError:
                raise UserError(
                    "OpenAI embeddings need the openai package: pip install 'connote[openai]'"
                ) from None
            key = self._api_key or os.environ.get("OPENAI_API_KEY")
            if not key:
                raise UserError("OpenAI embeddings need an API key: set OPENAI_API_KEY")
            self._client = openai.OpenAI(
                api_key=key, base_url=self.base_url, max_retries=self.max_retries, timeout=self.timeout
            )
        return self._client

    def price(self, tokens: int) -> float | None:
        per_m = PRICES.get(self.model)
        return tokens * per_m / 1e6 if per_m is not None else None

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        import openai

        from connote.study import now, text_key

        kwargs = {"model": self.model, "input": list(texts), "encoding_format": "float"}
        if self.dimensions:
            kwargs["dimensions"] = self.dimensions
        started, t0 = now(), time.perf_counter()
        ref = f"{len(texts)} text(s), first {text_key(texts[0])[:12]}" if texts else "0 texts"
        try:
            resp = self.client().embeddings.create(**kwargs)
        except openai.APIError as exc:
            status = getattr(exc, "status_code", None)
            msg = f"{type(exc).__name__}" + (f" {status}" if status else "") + f": {str(exc)[:300]}"
            self._log(ref, started, time.perf_counter() - t0, status="error", error=msg)
            hint = (
                " Check OPENAI_API_KEY."
                if status in (401, 403)
                else " Run the same command again to continue."
            )
            raise UserError(
                f"OpenAI embeddings failed after {self.max_retries} retries: {msg}.{hint}"
            ) from None
        data = sorted(resp.data, key=lambda d: d.index)
        if len(data) != len(texts):
            self._log(ref, started, time.perf_counter() - t0, status="error", error="wrong number of vectors")
            raise UserError(f"OpenAI returned {len(data)} vectors for {len(texts)} texts")
        X = np.asarray([d.embedding for d in data], dtype=np.float32)
        tokens = int(getattr(resp.usage, "prompt_tokens", 0) or 0) if resp.usage is not None else 0
        cost = self.price(tokens)
        self.tokens += tokens
        self.cost_usd += cost or 0.0
        self._log(ref, started, time.perf_counter() - t0, tokens=tokens, cost=cost, dim=X.shape[1])
        return X

    def _log(self, ref, started, latency, *, status="ok", error=None, tokens=None, cost=None, dim=None):
        if self.study is None:
            return
        self.study.record_call(
            stage="embed",
            backend="openai",
            model=self.model,
            input_ref=ref,
            params={"dimensions": self.dimensions, "batch": self.batch_size, "dim": dim},
            status=status,
            error=error,
            input_tokens=tokens,
            cost_usd=cost,
            latency_s=latency,
            started=started,
        )
