"""Vision-LLM describers over the OpenAI Chat Completions protocol.

``openai:MODEL`` talks to api.openai.com (key from ``OPENAI_API_KEY``, or the variable named by
``api_key_env``) or, with ``base_url``, to any OpenAI-compatible server (vLLM, Ollama, LM Studio, llama.cpp
server, OpenRouter). ``ollama:MODEL`` is a shorthand for Ollama's endpoint on localhost:11434.

The backend is thin: it downscales the image, sends it as a base64 JPEG data URL, and maps the client's
exceptions to :class:`DescribeError` (transient or permanent). The runner retries, logs and checks.
The API key is read from the environment when the client is made and is kept nowhere else: it is not
in the recorded parameters, the call log, the spec string or any message.
"""

from __future__ import annotations

import base64
import functools
import io
import os
import re
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from connote.describers.base import DescribeError, Describer, Description, ImageItem
from connote.describers.checks import check_response
from connote.describers.pricing import image_tokens, price_for, text_tokens
from connote.errors import UserError

PERMANENT_STATUS = {400, 401, 403, 404, 409, 413, 415, 422}
#: The key is refused: every other request would fail the same way, so the run stops at the first.
FATAL_STATUS = {401, 403}
OLLAMA_URL = "http://localhost:11434/v1"


def _safe_url(url: str | None) -> str | None:
    """A base URL without user:password or query (which could carry credentials)."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _retry_after(response) -> float | None:
    if response is None:
        return None
    headers = response.headers
    for name in ("retry-after-ms", "retry-after"):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value)
        except ValueError:
            from email.utils import parsedate_to_datetime

            try:
                seconds = parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError):
                continue
        return max(0.0, seconds / 1000 if name.endswith("ms") else seconds)
    return None


_KEYLIKE = re.compile(r"\b(?:sk|rk|pk)-[A-Za-z0-9_*\-.]{3,}")


def redact(message: str, secrets: tuple[str | None, ...] = ()) -> str:
    """A message without API keys: the given secrets and anything shaped like 'sk-...' (even masked)."""
    for secret in secrets:
        if secret and len(secret) >= 6:
            message = message.replace(secret, "[redacted]")
    return _KEYLIKE.sub("[redacted]", message)


def map_error(exc: Exception) -> DescribeError:
    """An ``openai`` exception as a transient or permanent :class:`DescribeError` (never with the key)."""
    import openai

    if isinstance(exc, openai.RateLimitError):
        return DescribeError(f"rate limited (429): {_message(exc)}", retry_after=_retry_after(exc.response))
    if isinstance(exc, openai.APIStatusError):
        code = exc.status_code
        msg = f"HTTP {code}: {_message(exc)}"
        if code in PERMANENT_STATUS:
            return DescribeError(msg, permanent=True, fatal=code in FATAL_STATUS)
        return DescribeError(msg, retry_after=_retry_after(exc.response) if code in {503, 529} else None)
    if isinstance(exc, openai.APITimeoutError):
        return DescribeError("request timed out")
    if isinstance(exc, openai.APIConnectionError):
        return DescribeError(f"connection error: {exc.__cause__ or exc}")
    if isinstance(exc, openai.APIResponseValidationError | ValueError):
        return DescribeError(f"malformed response: {exc}")
    return DescribeError(f"{type(exc).__name__}: {exc}", permanent=True)


def _message(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
    return str(getattr(exc, "message", exc))[:300]


class OpenAIDescriber(Describer):
    """A vision LLM behind an OpenAI-compatible Chat Completions endpoint."""

    kind = "openai"
    default_concurrency = 8
    default_key_env = "OPENAI_API_KEY"
    secret_params = ("base_url", "api_key_env")  # base_url is recorded without credentials (provenance)

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key_env: str | None = None,
        concurrency: int | None = None,
        max_side: int = 1024,
        detail: str = "low",
        max_tokens: int = 400,
        temperature: float | None = None,
        timeout: float = 120.0,
        jpeg_quality: int = 85,
    ):
        if not model:
            raise UserError(f"give a model name: --describer {self.kind}:MODEL")
        if detail not in {"low", "high", "auto"}:
            raise UserError(f"--detail must be low, high or auto, not {detail!r}")
        self.spec = f"{self.kind}:{model}"
        self.model = model
        self.base_url = base_url or self.default_base_url()
        self.api_key_env = api_key_env or self.default_key_env
        self.concurrency = max(1, int(concurrency or self.default_concurrency))
        self.detail = detail
        self.max_side = int(max_side)
        self.max_tokens = int(max_tokens)
        self.temperature = None if temperature is None else float(temperature)
        self.timeout = float(timeout)
        self.jpeg_quality = int(jpeg_quality)
        self._client = None
        self._lock = threading.Lock()

    def default_base_url(self) -> str | None:
        return os.environ.get("OPENAI_BASE_URL")

    # ------------------------------------------------------------------ setup
    def _api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) or None

    def prepare(self) -> None:
        """Fail early, with a clear message, when no key is set for api.openai.com, or when the price file
        (``CONNOTE_PRICES``) holds a price that is no price: before anything is sent and paid for."""
        if self._api_key() is None and self.base_url is None:
            raise UserError(
                f"set {self.api_key_env} to your OpenAI API key (or give --base-url for another "
                "OpenAI-compatible server)"
            )
        self.price  # noqa: B018 - reads and checks the price table

    def client(self):
        with self._lock:
            if self._client is None:
                import openai

                self.prepare()
                self._client = openai.OpenAI(
                    api_key=self._api_key() or "EMPTY",
                    base_url=self.base_url,
                    max_retries=0,
                    timeout=self.timeout,
                )
            return self._client

    def provenance(self) -> dict:
        return {"base_url": _safe_url(self.base_url), "upload_side": self.upload_side}

    @property
    def upload_side(self) -> int:
        # OpenAI fits a 'low' detail image in 512x512 anyway: sending more pixels only costs bandwidth.
        return min(self.max_side, 512) if self.detail == "low" else self.max_side

    @property
    def price(self):
        return price_for(self.model)

    def batch_discount(self) -> float:
        price = self.price
        return price.batch_discount if price is not None else 0.5

    # ------------------------------------------------------------------ requests
    def image_url(self, item: ImageItem) -> str:
        from connote.images import ImageError, downscale, load_image

        try:
            img = downscale(
                load_image(item.path, max_side=self.upload_side, sha256=item.sha256), self.upload_side
            )
        except ImageError as exc:
            raise DescribeError(f"cannot read image: {exc}", permanent=True) from None
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="JPEG", quality=self.jpeg_quality)
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")

    def request_body(self, item: ImageItem, prompt: str) -> dict:
        return self.images_body([item], prompt)

    def images_body(self, items: list[ImageItem], prompt: str, **extra) -> dict:
        """One user message: the prompt, then every image in order (an LLM coder sends two or three);
        ``extra`` adds request fields such as ``response_format``."""
        images = [
            {"type": "image_url", "image_url": {"url": self.image_url(it), "detail": self.detail}}
            for it in items
        ]
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}, *images]}],
            "max_tokens": self.max_tokens,
            **extra,
        }
        if self.temperature is not None:
            body["temperature"] = self.temperature
        return body

    def parse(self, body: dict, *, batch: bool = False) -> Description:
        """A Description from a chat.completion body (a dict: from the client or a batch output line)."""
        choices = body.get("choices") or []
        if not choices:
            raise DescribeError("malformed response: no choices")
        choice = choices[0]
        msg = choice.get("message") or {}
        text = msg.get("content")
        if not text and msg.get("refusal"):
            text = msg["refusal"]
        usage = body.get("usage") or {}
        tin, tout = usage.get("prompt_tokens"), usage.get("completion_tokens")
        price = self.price
        cost = price.cost(tin, tout, batch=batch) if price is not None and (tin or tout) else None
        finish = choice.get("finish_reason")
        extra = {"finish_reason": finish, "id": body.get("id")}
        problem = check_response(finish)
        if problem:
            extra["problem"] = problem
        return Description(
            (text or "").strip(),
            model=body.get("model") or self.model,
            input_tokens=tin,
            output_tokens=tout,
            cost_usd=cost,
            extra=extra,
        )

    def describe(self, items: list[ImageItem], prompt: str) -> list[Description | DescribeError]:
        return [self.complete(functools.partial(self.request_body, item, prompt)) for item in items]

    def complete(self, make_body: Callable[[], dict], *, fatal: bool = True) -> Description | DescribeError:
        """One chat completion of the request ``make_body()`` builds: the parsed answer with its latency,
        or the error mapped to transient/permanent with the key redacted (``fatal=False``: an
        authentication error does not stop the other workers)."""
        t0 = time.perf_counter()
        try:
            resp = self.client().chat.completions.create(**make_body())
            d = self.parse(resp.model_dump() if hasattr(resp, "model_dump") else dict(resp))
            d.latency_s = time.perf_counter() - t0
            return d
        except DescribeError as exc:
            return exc
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - mapped to transient/permanent
            err = map_error(exc)
            return DescribeError(
                redact(str(err), (self._api_key(),)),
                permanent=err.permanent,
                retry_after=err.retry_after,
                fatal=err.fatal and fatal,
            )

    # ------------------------------------------------------------------ estimates (dry run, budget)
    def estimate(
        self, item: ImageItem, prompt: str, size: tuple[int, int] | None = None
    ) -> tuple[int, int, float | None]:
        """(input tokens, output tokens, USD or None when the price is unknown) expected for one image."""
        price = self.price
        if size is None:
            try:
                from PIL import Image

                with Image.open(item.path) as im:
                    size = im.size
            except Exception:  # noqa: BLE001
                size = (self.upload_side, self.upload_side)
        scale = min(1.0, self.upload_side / max(size)) if max(size) else 1.0
        w, h = int(size[0] * scale), int(size[1] * scale)
        base, tile = (price.image_base, price.image_tile) if price else (85, 170)
        tin = image_tokens(w, h, self.detail, base=base, tile=tile) + text_tokens(prompt) + 10
        tout = min(self.max_tokens, price.expected_output_tokens if price else 150)
        # The budget guard reserves the worst case for output: max_tokens.
        return tin, tout, (price.cost(tin, tout) if price else None)

    def reserve(self, item: ImageItem, prompt: str) -> float | None:
        """The most one call may cost (max_tokens of output): what the budget keeps aside while in flight."""
        price = self.price
        if price is None:
            return None
        tin, _, _ = self.estimate(item, prompt)
        return price.cost(tin, self.max_tokens)


class OllamaDescriber(OpenAIDescriber):
    """``ollama:MODEL``: Ollama's OpenAI-compatible endpoint (OLLAMA_HOST or localhost:11434); no key, no cost."""

    kind = "ollama"
    default_concurrency = 4
    default_key_env = "OLLAMA_API_KEY"

    def default_base_url(self) -> str:
        host = os.environ.get("OLLAMA_HOST")
        if host:
            host = host if "://" in host else f"http://{host}"
            return host.rstrip("/") + "/v1"
        return OLLAMA_URL

    def prepare(self) -> None:
        pass

    @property
    def price(self):
        return price_for("ollama")
