"""A fake OpenAI-compatible server on 127.0.0.1, for tests and benchmarks.

It speaks just enough of the protocol for connote's clients (driven through the official ``openai``
package): ``POST /v1/chat/completions`` (image_url data URLs), ``POST /v1/embeddings``, ``POST /v1/files``,
``GET /v1/files/{id}/content``, ``POST /v1/batches``, ``GET /v1/batches[/{id}]``.

Faults are injected per chat request, from (in this order) a scripted queue (:meth:`FakeOpenAI.push`),
a ``decide(info)`` callback, or seeded probabilities::

    with FakeOpenAI(latency=0.05, faults={"429": 0.1, "500": 0.1}, seed=1) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="sk-test")
        ...
        srv.max_inflight, srv.image_counts()

Fault kinds: ``ok``, ``429`` (with Retry-After), ``500``, ``503``, ``drop`` (close the socket without a
response), ``malformed`` (200 with a body that is not JSON), ``refusal``, ``length`` (truncated text with
finish_reason 'length'), ``empty``, ``400``, ``401``, ``404``.

An LLM coder's requests are answered from a caption lookup (:mod:`connote.testing.fake_content`: a key read
from each image's pixels): two images with a rating prompt get ``{"denotative": v, "connotative": v}``, a set
of images with lettered descriptions ``{"answer": "X"}`` (``position_bias`` makes the order of a pair matter;
``json_mode=False`` refuses ``response_format`` as some servers do). A fault may be a dict with ``kind`` and any
of ``latency``, ``retry_after``, ``text``.

Run standalone: ``python -m connote.testing.fake_openai --port 8000 --latency 0.5``.
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import hashlib
import json
import random
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from connote.testing.fake_batches import FilesAndBatches
from connote.testing.fake_content import (
    EMBED_DIMS,
    REFUSAL,
    image_of,
    image_text,
    images_of,
    match_set,
    prompt_of,
    rate_pair,
    unit_vector,
    varied_text,
)

__all__ = ["EMBED_DIMS", "REFUSAL", "FakeOpenAI", "image_text", "main", "unit_vector"]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args) -> None:  # quiet
        pass

    # ------------------------------------------------------------------ plumbing
    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, payload, headers: dict | None = None, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if raw is None else "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, headers: dict | None = None, code: str | None = None) -> None:
        self._send(
            status,
            {"error": {"message": message, "type": "fake_error", "param": None, "code": code}},
            headers,
        )

    def _json(self, raw: bytes) -> dict | None:
        """The request's JSON body, or None after answering 400 when it is not JSON."""
        try:
            return json.loads(raw or b"{}")
        except ValueError:
            self._error(400, "could not parse the JSON body")
            return None

    def _drop(self) -> None:
        import socket

        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _authorised(self) -> bool:
        key = self.server.fake.api_key
        if key is None:
            return True
        got = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if got == key:
            return True
        masked = f"{got[:6]}{'*' * max(0, len(got) - 10)}{got[-4:]}" if len(got) > 10 else "***"
        self.server.fake._log({"path": "unauthorised", "image": None, "status": 401})
        self._error(401, f"Incorrect API key provided: {masked}.", code="invalid_api_key")
        return False

    # ------------------------------------------------------------------ routes
    def do_POST(self) -> None:  # noqa: N802
        body = self._body()
        if len(body) < int(self.headers.get("Content-Length") or 0):  # the client went away mid-request
            self.server.fake._log({"path": "incomplete", "image": None, "status": None})
            self.close_connection = True
            return
        if not self._authorised():
            return
        path = self.path.split("?")[0].rstrip("/")
        if path.endswith("/chat/completions"):
            self.server.fake._chat(self, body)
        elif path.endswith("/embeddings"):
            self.server.fake._embeddings(self, body)
        elif path.endswith("/files"):
            self.server.fake._upload(self, body)
        elif path.endswith("/batches"):
            self.server.fake._create_batch(self, body)
        elif path.endswith("/cancel") and "/batches/" in path:
            self.server.fake._get_batch(self, path.split("/")[-2], cancel=True)
        else:
            self._error(404, f"unknown path {self.path}")

    def do_GET(self) -> None:  # noqa: N802
        if not self._authorised():
            return
        path = self.path.split("?")[0].rstrip("/")
        parts = path.split("/")
        if path.endswith("/content") and "/files/" in path:
            self.server.fake._file_content(self, parts[-2])
        elif "/batches/" in path:
            self.server.fake._get_batch(self, parts[-1])
        elif path.endswith("/batches"):
            self.server.fake._list_batches(self)
        elif path.endswith("/models"):
            self._send(
                200,
                {
                    "object": "list",
                    "data": [{"id": "fake", "object": "model", "created": 0, "owned_by": "connote"}],
                },
            )
        else:
            self._error(404, f"unknown path {self.path}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256
    fake: FakeOpenAI


class FakeOpenAI(FilesAndBatches):
    """The server; a context manager that runs it in a background thread."""

    def __init__(
        self,
        *,
        latency: float = 0.0,
        faults: dict[str, float] | None = None,
        seed: int = 0,
        retry_after: float = 0.05,
        decide: Callable[[dict], str | dict | None] | None = None,
        api_key: str | None = None,
        known_models: set[str] | None = None,
        batch_polls: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        varied_texts: bool = False,
        json_mode: bool = True,
        position_bias: int = 0,
        embed_latency: float = 0.0,
    ):
        if host not in {"127.0.0.1", "localhost", "::1"}:
            raise ValueError("the fake server binds to loopback only")
        self.latency = latency
        self.faults = dict(faults or {})
        self.rng = random.Random(seed)
        self.retry_after = retry_after
        self.decide = decide
        self.api_key = api_key
        self.known_models = known_models
        self.batch_polls = batch_polls  # GETs of a batch before it completes
        self.host, self.port = host, port
        # False: one of 800 template paragraphs per image (tests); True: near-unique ones (benchmarks)
        self.varied_texts = varied_texts
        self.json_mode = json_mode  # False: response_format is refused (400), as some servers do
        self.position_bias = position_bias  # added to the connotative rating of some (A, B) orders
        self.embed_latency = embed_latency  # seconds per embeddings request (chat has ``latency``)
        self.requests: list[dict] = []
        self.inflight = 0
        self.max_inflight = 0
        self.files: dict[str, dict] = {}
        self.batches: dict[str, dict] = {}
        self._script: collections.deque = collections.deque()
        self._lock = threading.Lock()
        self._ids = 0
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FakeOpenAI:
        self._httpd = _Server((self.host, self.port), _Handler)
        self._httpd.fake = self
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    # ------------------------------------------------------------------ scripting and inspection
    def push(self, *faults: str | dict) -> None:
        """Queue faults for the next chat requests (in arrival order)."""
        with self._lock:
            self._script.extend(faults)

    def chat_requests(self) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if r["path"] == "chat"]

    def image_counts(self) -> collections.Counter:
        """Chat requests per image hash (every attempt counts)."""
        return collections.Counter(r["image"] for r in self.chat_requests() if r["image"] is not None)

    def request_counts(self) -> collections.Counter:
        """Chat requests per content asked (prompt and images; every attempt counts)."""
        return collections.Counter(r["key"] for r in self.chat_requests() if r.get("key"))

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            self._ids += 1
            return f"{prefix}-{self._ids:06d}"

    def _log(self, entry: dict) -> None:
        entry.setdefault("t", time.time())
        with self._lock:
            self.requests.append(entry)

    def _choose(self, info: dict) -> dict:
        with self._lock:
            fault = self._script.popleft() if self._script else None
        if fault is None and self.decide is not None:
            fault = self.decide(info)
        if fault is None and self.faults:
            with self._lock:
                r = self.rng.random()
            acc = 0.0
            for kind, p in self.faults.items():
                acc += p
                if r < acc:
                    fault = kind
                    break
        if fault is None:
            fault = "ok"
        return {"kind": fault} if isinstance(fault, str) else dict(fault)

    # ------------------------------------------------------------------ chat completions
    def completion(self, req: dict, fault: dict | None = None) -> tuple[int, dict]:
        """(status, body) of a chat completion (used directly and by batches)."""
        fault = fault or {"kind": "ok"}
        kind = fault["kind"]
        model = req.get("model", "fake")
        if self.known_models is not None and model not in self.known_models or kind == "404":
            return 404, {
                "error": {
                    "message": f"The model `{model}` does not exist",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "model_not_found",
                }
            }
        image, data = image_of(req)
        if req.get("response_format") and not self.json_mode:
            return 400, {
                "error": {
                    "message": "response_format is not supported by this server",
                    "type": "invalid_request_error",
                    "param": "response_format",
                    "code": None,
                }
            }
        if kind == "400" or (
            data is not None and not (data[:3] == b"\xff\xd8\xff" or data[:8] == b"\x89PNG\r\n\x1a\n")
        ):
            return 400, {
                "error": {
                    "message": "You uploaded an unsupported image.",
                    "type": "invalid_request_error",
                    "param": None,
                    "code": "invalid_image_format",
                }
            }
        text = fault.get("text")
        finish = "stop"
        if text is None:
            if kind == "refusal":
                text = REFUSAL
            elif kind == "empty":
                text = ""
            else:
                text = self.coding_answer(req)
            if text is None:
                writer = varied_text if self.varied_texts else image_text
                text = writer(image or hashlib.sha256(json.dumps(req).encode()).hexdigest())
        if kind == "length":
            text = " ".join(text.split()[:12])
            finish = "length"
        prompt_tokens = 85 + sum(len(str(m.get("content", ""))) // 400 for m in req.get("messages") or [])
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": max(1, len(text.split()) * 4 // 3)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        body = {
            "id": self._next_id("chatcmpl"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "finish_reason": finish,
                    "logprobs": None,
                }
            ],
            "usage": usage,
        }
        return 200, body

    def coding_answer(self, req: dict) -> str | None:
        """An LLM coder's answer (from the caption lookup) when the request is one: two images and a prompt
        that asks for denotative and connotative ratings, or images and lettered descriptions asking for
        an answer; None for any other request."""
        prompt = prompt_of(req)
        images = images_of(req)
        if len(images) == 2 and "denotative" in prompt and "connotative" in prompt:
            return json.dumps(rate_pair(*images, position_bias=self.position_bias))
        if images and '"answer"' in prompt:
            return json.dumps({"answer": match_set(images, prompt)})
        return None

    def _chat(self, h: _Handler, raw: bytes) -> None:
        req = h._json(raw)
        if req is None:
            return
        image, _ = image_of(req)
        info = {"path": "chat", "model": req.get("model"), "image": image, "t": time.time()}
        # what was asked (prompt and every image): two requests with one key asked the same thing
        info["key"] = hashlib.sha256(json.dumps(req.get("messages"), sort_keys=True).encode()).hexdigest()[
            :16
        ]
        fault = self._choose(info)
        info["fault"] = fault["kind"]
        with self._lock:
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            delay = fault.get("latency", self.latency)
            if delay:
                time.sleep(delay)
            kind = fault["kind"]
            if kind == "drop":
                info["status"] = "drop"
                h._drop()
            elif kind == "429":
                info["status"] = 429
                ra = fault.get("retry_after", self.retry_after)
                h._error(
                    429,
                    "Rate limit reached, please retry.",
                    {"Retry-After": f"{ra:g}"},
                    code="rate_limit_exceeded",
                )
            elif kind in {"500", "503"}:
                info["status"] = int(kind)
                h._error(int(kind), "The server had an error while processing your request.")
            elif kind == "401":
                info["status"] = 401
                h._error(401, "Incorrect API key provided.", code="invalid_api_key")
            elif kind == "malformed":
                info["status"] = 200
                h._send(200, None, raw=b'{"id": "chatcmpl-broken", "choices": [')
            else:
                status, body = self.completion(req, fault)
                info["status"] = status
                h._send(status, body)
        finally:
            with self._lock:
                self.inflight -= 1
            self._log(info)

    # ------------------------------------------------------------------ embeddings
    def _embeddings(self, h: _Handler, raw: bytes) -> None:
        req = h._json(raw)
        if req is None:
            return
        model = req.get("model", "text-embedding-3-small")
        inputs = req.get("input")
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs:
            h._error(400, "'input' must be a non-empty string or array")
            return
        dim = int(req.get("dimensions") or EMBED_DIMS.get(model, 1536))
        if self.embed_latency:
            time.sleep(self.embed_latency)
        b64 = req.get("encoding_format") == "base64"
        data, tokens = [], 0
        for i, text in enumerate(inputs):
            text = text if isinstance(text, str) else json.dumps(text)
            tokens += max(1, len(text.split()))
            vec = unit_vector(text, dim)
            emb = base64.b64encode(struct.pack(f"<{dim}f", *vec)).decode() if b64 else vec
            data.append({"object": "embedding", "index": i, "embedding": emb})
        self._log({"path": "embeddings", "model": model, "image": None, "n": len(inputs), "status": 200})
        h._send(
            200,
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Run connote's fake OpenAI-compatible server on 127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="KIND=P",
        help="random fault with probability P, e.g. 429=0.1 (repeatable)",
    )
    ap.add_argument("--retry-after", type=float, default=0.05)
    ap.add_argument("--log", help="write one JSON line per request here when stopped")
    ap.add_argument(
        "--varied-texts",
        action="store_true",
        help="near-unique descriptions per image (default: one of 800 template paragraphs)",
    )
    args = ap.parse_args(argv)
    faults = {k: float(v) for k, _, v in (f.partition("=") for f in args.fault)}
    srv = FakeOpenAI(
        latency=args.latency,
        faults=faults,
        seed=args.seed,
        retry_after=args.retry_after,
        port=args.port,
        varied_texts=args.varied_texts,
    )
    srv.start()
    print(srv.base_url, flush=True)
    try:
        while True:
            time.sleep(0.2)
            if args.log:
                with srv._lock:
                    lines = "".join(json.dumps(r) + "\n" for r in srv.requests)
                with open(args.log, "w", encoding="utf-8") as fh:
                    fh.write(lines)
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
