"""Vision-LLM describers over the OpenAI protocol, against a real local HTTP server (connote.testing)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import describe_cmd, fake_openai_env, make_image_study

from connote import cli, steps
from connote.describers.openai_api import OllamaDescriber, OpenAIDescriber, map_error
from connote.errors import UserError
from connote.params import recorded_params
from connote.study import DB_NAME
from connote.testing import FakeOpenAI, make_images

KEY = "sk-test-SECRET-9f8e7d6c5b4a"
MODEL = "gpt-4o-mini"


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    fake_openai_env(monkeypatch, KEY)
    monkeypatch.setenv("NUMBA_CACHE_DIR", "/tmp/numba_cache")


make_study = make_image_study


def describe(study, srv, **kw):
    kw.setdefault("progress", False)
    return steps.describe(study, f"openai:{MODEL}", base_url=srv.base_url, **kw)


def all_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def test_describe_through_faults_stores_everything_and_logs_calls(tmp_path):
    import threading

    study = make_study(tmp_path, 16)
    plan = ["429", "500", "drop", "malformed", "refusal", "ok", "503", "ok"]
    order: dict[str, int] = {}
    attempts: dict[str, int] = {}
    lock = threading.Lock()

    def decide(info):  # each image: one fault on its first request (two for some), then good answers
        with lock:
            idx = order.setdefault(info["image"], len(order))
            n = attempts[info["image"]] = attempts.get(info["image"], 0) + 1
        kind = plan[idx % len(plan)]
        if n == 1:
            return kind
        if n == 2 and kind in {"500", "drop"}:
            return "429"
        return None

    with FakeOpenAI(latency=0.02, decide=decide, api_key=KEY, retry_after=0.05) as srv:
        s = describe(study, srv, concurrency=4)
        kinds = {r["fault"] for r in srv.chat_requests()}
    assert {"429", "500", "drop", "malformed", "refusal"} <= kinds  # the faults really happened
    assert s.described == 16 and s.flagged == 0 and s.failed == 0, s.problems
    assert s.retried_flagged == 2  # the refusals were asked for once more, and then answered
    assert srv.max_inflight <= 4
    ds = study.resolve_description_set()
    assert ds["name"] == f"openai:{MODEL}" and ds["model"] == MODEL
    texts = study.descriptions(ds["id"])
    assert len(texts) == s.described and all("evokes" in t for t in texts.values())
    ok_calls = [c for c in study.calls("describe") if c["status"] == "ok"]
    assert len(ok_calls) == s.described
    assert all(c["input_tokens"] > 0 and c["output_tokens"] > 0 and c["cost_usd"] > 0 for c in ok_calls)
    assert s.cost_usd == pytest.approx(study.total_cost())
    # The key never reaches the study folder (database, WAL, anything).
    study.con.execute("PRAGMA wal_checkpoint(FULL)")
    assert KEY.encode() not in all_bytes(study.path)
    assert KEY[-12:].encode() not in all_bytes(study.path)


def test_permanent_errors_are_not_retried_and_reported_per_image(tmp_path):
    study = make_study(tmp_path, 3)
    with FakeOpenAI(api_key=KEY) as srv:
        srv.push("400", "400", "404")
        s = describe(study, srv, concurrency=1)
        counts = srv.image_counts()
    assert s.failed == 3 and s.described == 0 and s.nothing_described
    assert sorted(counts.values()) == [1, 1, 1]  # one request each: no retries
    reasons = " ".join(r for _, r in s.problems)
    assert "HTTP 400" in reasons and "HTTP 404" in reasons
    rows = study.description_rows(s.set_id)
    assert {r["status"] for r in rows} == {"failed"}


def test_wrong_key_stops_at_the_first_401_and_key_not_in_messages(tmp_path, monkeypatch):
    study = make_study(tmp_path, 6)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-123456")
    with FakeOpenAI(api_key=KEY) as srv:
        with pytest.raises(UserError) as info:
            describe(study, srv, concurrency=1)
        sent = len(srv.requests)
    msg = str(info.value)
    assert sent == 1 and "401" in msg and "authentication" in msg and "OPENAI_API_KEY" in msg
    assert "sk-wro" not in msg and "3456" not in msg
    calls = study.calls("describe")
    assert len(calls) == 1 and calls[0]["status"] == "error"  # the request is in the call log
    # nothing is stored as failed: with the right key the next run describes every image
    assert not study.description_rows(study.resolve_description_set()["id"])
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeOpenAI(api_key=KEY) as srv:
        assert describe(study, srv).described == 6
    study.con.execute("PRAGMA wal_checkpoint(FULL)")
    assert b"3456" not in all_bytes(study.path)  # not even OpenAI's masked echo of the key


def test_retry_after_is_honoured(tmp_path):
    study = make_study(tmp_path, 1)
    with FakeOpenAI() as srv:
        srv.push({"kind": "429", "retry_after": 0.4})
        s = describe(study, srv)
        reqs = srv.chat_requests()
    assert s.described == 1 and len(reqs) == 2
    assert reqs[1]["t"] - reqs[0]["t"] >= 0.38


def test_flagged_output_retried_once_then_kept_apart_and_retry_flagged(tmp_path, capsys):
    study = make_study(tmp_path, 3)
    with FakeOpenAI() as srv:
        srv.push("refusal", "refusal")  # the first image: refused twice -> flagged
        s = describe(study, srv, concurrency=1)
        assert s.flagged == 1 and s.described == 2 and s.retried_flagged == 1
        assert max(srv.image_counts().values()) == 2
        flagged = [r for r in study.description_rows(s.set_id) if r["status"] == "flagged"]
        assert flagged[0]["reason"] == "refusal" and flagged[0]["text"].startswith("I'm sorry")
        assert len(study.descriptions(s.set_id)) == 2  # flagged texts are not used downstream
        # A plain re-run does not ask again; --retry-flagged does.
        assert describe(study, srv).described == 0
        srv.push("length", "length")
        rc = cli_describe(study, srv, "--retry-flagged", "-q")
        assert rc == 0
    err = capsys.readouterr().err
    assert "flagged" in err and "truncated" in err
    rows = study.description_rows(s.set_id)
    assert [r["reason"] for r in rows if r["status"] == "flagged"] == ["truncated (finish_reason 'length')"]


def test_concurrency_is_used_and_never_exceeded(tmp_path):
    study = make_study(tmp_path, 16)
    with FakeOpenAI(latency=0.25) as srv:
        s = describe(study, srv, concurrency=8)
        assert srv.max_inflight == 8  # eight requests overlapped, and never more
    assert s.described == 16


def test_dry_run_sends_nothing(tmp_path, capsys):
    study = make_study(tmp_path, 5)
    with FakeOpenAI() as srv:
        rc = cli_describe(study, srv, "--dry-run", "--detail", "high", "--max-side", "256")
        assert rc == 0 and srv.requests == []
    out = capsys.readouterr().out
    assert "Would describe 5 image(s)" in out and "Estimated cost: $" in out
    assert study.calls() == [] and study.description_sets() == []
    est = steps.describe(study, f"openai:{MODEL}", dry_run=True, batch=True, progress=False)
    full = steps.describe(study, f"openai:{MODEL}", dry_run=True, progress=False)
    assert est.cost_usd == pytest.approx(full.cost_usd * 0.5) and est.input_tokens > 5 * 2800


def test_dry_run_unknown_price(tmp_path, capsys):
    study = make_study(tmp_path, 2)
    rc = cli.main(
        [
            "describe",
            str(study.path),
            "--describer",
            "openai:my-local-vlm",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--dry-run",
        ]
    )
    assert rc == 0
    captured = capsys.readouterr()
    assert "Estimated cost: unknown" in captured.out and "no price known" in captured.err


def test_budget_below_one_request_says_why_nothing_was_sent(tmp_path):
    """--max-cost under one request's worst case: nothing is sent, and the message says why."""
    study = make_study(tmp_path, 2)
    with FakeOpenAI() as srv:
        s = describe(study, srv, concurrency=1, max_cost=0.0001)
        assert s.described == 0 and not srv.image_counts()
        assert "budget of $0.0001 reached (spent $0.0000; the next request could cost up to $" in s.stopped
        assert "more than the $0.0001 left" in s.stopped


def test_max_cost_stops_cleanly_and_resume_completes(tmp_path):
    study = make_study(tmp_path, 20)
    with FakeOpenAI(latency=0.02) as srv:
        s1 = describe(study, srv, concurrency=4, max_cost=0.0012)
        assert s1.stopped and "budget" in s1.stopped
        assert 0 < s1.described < 20
        assert study.total_cost() <= 0.0012
        s2 = describe(study, srv, concurrency=4)
        counts = srv.image_counts()
    assert s2.already == s1.described and s1.described + s2.described == 20
    assert set(counts.values()) == {1}  # resume: nothing was asked for twice


def test_max_cost_needs_a_price(tmp_path):
    study = make_study(tmp_path, 2)
    with FakeOpenAI() as srv, pytest.raises(UserError, match="price"):
        steps.describe(study, "openai:my-local-vlm", base_url=srv.base_url, max_cost=1.0, progress=False)


def test_prices_override_file(tmp_path, monkeypatch):
    from connote.describers import pricing

    table = tmp_path / "prices.toml"
    table.write_text('[models."my-local-vlm"]\ninput = 1.0\noutput = 2.0\n')
    monkeypatch.setenv("CONNOTE_PRICES", str(table))
    p = pricing.price_for("my-local-vlm-2024")
    assert p is not None and p.cost(1_000_000, 1_000_000) == pytest.approx(3.0)
    assert pricing.price_for("gpt-4o-2024-08-06").model == "gpt-4o"
    assert pricing.price_for("gpt-4o-mini-2024-07-18").model == "gpt-4o-mini"
    assert pricing.image_tokens(1024, 1024, "high") == 85 + 170 * 4
    assert pricing.image_tokens(4000, 4000, "low") == 85


def test_missing_key_is_a_clear_error(tmp_path, monkeypatch):
    study = make_study(tmp_path, 1)
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(UserError, match="OPENAI_API_KEY"):
        steps.describe(study, f"openai:{MODEL}", progress=False)


def test_api_key_env_and_ollama(tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEY", KEY)
    monkeypatch.delenv("OPENAI_API_KEY")
    study = make_study(tmp_path, 2)
    with FakeOpenAI(api_key=KEY) as srv:
        s = steps.describe(
            study, f"openai:{MODEL}", base_url=srv.base_url, api_key_env="MY_KEY", progress=False
        )
        assert s.described == 2
    d = OllamaDescriber("llava")
    assert d.base_url == "http://localhost:11434/v1" and d.spec == "ollama:llava"
    assert "key" not in str(recorded_params(d)).lower()
    with FakeOpenAI() as srv:
        s = steps.describe(study, "ollama:llava", base_url=srv.base_url, progress=False)
    assert s.described == 2 and s.cost_usd == 0.0
    assert {r["name"] for r in study.description_sets()} == {f"openai:{MODEL}", "ollama:llava"}


def test_images_are_downscaled_before_upload(tmp_path):
    import base64
    import io
    import json

    from PIL import Image

    from connote.describers.base import ImageItem
    from connote.images import sha256_file

    make_images(tmp_path, 1, size=(1600, 900))
    item = ImageItem(sha256_file(tmp_path / "img_000.png"), tmp_path / "img_000.png", "img_000.png")
    for detail, side, want in [("low", 1024, 512), ("high", 768, 768), ("auto", 300, 300)]:
        d = OpenAIDescriber(MODEL, detail=detail, max_side=side)
        body = d.request_body(item, "p")
        url = body["messages"][0]["content"][1]["image_url"]
        assert url["detail"] == detail
        img = Image.open(io.BytesIO(base64.b64decode(url["url"].split(",", 1)[1])))
        assert img.format == "JPEG" and max(img.size) == want
        assert KEY not in json.dumps(body)


def test_error_mapping():
    import httpx2
    import openai

    req = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")

    def status(code, headers=None):
        resp = httpx2.Response(code, headers=headers or {}, request=req)
        cls = {429: openai.RateLimitError, 400: openai.BadRequestError, 404: openai.NotFoundError}.get(
            code, openai.APIStatusError
        )
        return cls("x", response=resp, body=None)

    e = map_error(status(429, {"retry-after": "3"}))
    assert not e.permanent and e.retry_after == 3.0
    assert map_error(status(429, {"retry-after-ms": "250"})).retry_after == 0.25
    assert not map_error(status(500)).permanent and not map_error(status(502)).permanent
    assert map_error(status(400)).permanent and map_error(status(404)).permanent
    assert map_error(status(403)).permanent and map_error(status(422)).permanent
    assert not map_error(openai.APITimeoutError(request=req)).permanent
    assert not map_error(openai.APIConnectionError(request=req)).permanent


def test_embeddings_endpoint():
    import numpy as np
    import openai

    with FakeOpenAI() as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)
        r = client.embeddings.create(model="text-embedding-3-small", input=["a red square", "a blue circle"])
        r2 = client.embeddings.create(
            model="text-embedding-3-small", input="a red square", dimensions=64, encoding_format="float"
        )
        r3 = client.embeddings.create(model="text-embedding-3-small", input=["a red square"])
    v = np.array([d.embedding for d in r.data])
    assert v.shape == (2, 1536) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert np.allclose(v[0], r3.data[0].embedding)  # deterministic
    assert len(r2.data[0].embedding) == 64 and r.usage.prompt_tokens > 0


def _count_ok(db: Path) -> int:
    try:
        # a short busy timeout: a poll that waits on the writer's lock would miss the moment to act
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2)
        try:
            return con.execute("SELECT COUNT(*) FROM descriptions WHERE status='ok'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def cli_describe(study, srv, *options: str) -> int:
    """`connote describe` in-process against the fake server."""
    return cli.main(
        ["describe", str(study.path), "--describer", f"openai:{MODEL}", "--base-url", srv.base_url, *options]
    )


def test_kill_9_mid_run_then_resume_pays_at_most_inflight_twice(tmp_path):
    n, conc = 24, 4
    study = make_study(tmp_path, n)
    study.close()
    db = tmp_path / "study" / DB_NAME  # not a glob: it could pick the -wal or -shm file
    env = {**os.environ, "OPENAI_API_KEY": KEY, "PYTHONUNBUFFERED": "1"}
    with FakeOpenAI(latency=0.3, api_key=KEY) as srv:
        cmd = describe_cmd(tmp_path / "study", srv, conc, MODEL)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 40
        while _count_ok(db) < 6 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        first = _count_ok(db)
        assert 6 <= first < n, proc.stderr.read().decode()[-2000:]
        out = subprocess.run(cmd, env=env, capture_output=True, timeout=60, text=True)
        assert out.returncode == 0, out.stderr[-2000:]
        counts = srv.image_counts()
    assert _count_ok(db) == n and len(counts) == n
    twice = [h for h, c in counts.items() if c > 1]
    assert all(c <= 2 for c in counts.values())
    assert len(twice) <= conc  # only requests in flight at the kill were paid twice
    assert KEY not in out.stdout + out.stderr


def test_transient_failures_are_tried_again_by_a_rerun(tmp_path):
    study = make_study(tmp_path, 1)
    with FakeOpenAI() as srv:
        srv.push("500", "503", "drop", "500", "429")  # more than the runner's retries
        s1 = describe(study, srv)
        assert s1.failed == 1 and s1.problems[0][1].startswith("transient: ")
        assert len(srv.chat_requests()) == 5
        s2 = describe(study, srv)
    assert s2.described == 1 and s2.already == 0


def test_fake_server_random_faults_standalone():
    import openai

    with FakeOpenAI(faults={"500": 1.0}, seed=1) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    out = subprocess.run(
        [sys.executable, "-m", "connote.testing.fake_openai", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0 and "--latency" in out.stdout


def interruptible(cmd: list[str]) -> list[str]:
    """``python -m connote ARGS`` with Ctrl-C's default handling even where the test runs with SIGINT
    ignored (a background job of a non-interactive shell), which Python would pass on to the child."""
    assert cmd[1:3] == ["-m", "connote"]
    boot = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from connote.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    return [cmd[0], "-c", boot, *cmd[3:]]


def test_ctrl_c_keeps_what_is_in_flight(tmp_path):
    n, conc = 40, 4
    make_study(tmp_path, n).close()
    db = tmp_path / "study" / DB_NAME  # not a glob: it could pick the -wal or -shm file
    env = {**os.environ, "OPENAI_API_KEY": KEY, "PYTHONUNBUFFERED": "1"}
    with FakeOpenAI(latency=0.4, api_key=KEY) as srv:
        cmd = describe_cmd(tmp_path / "study", srv, conc, MODEL)
        proc = subprocess.Popen(
            interruptible(cmd), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 40
        while _count_ok(db) < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "describe finished before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 130 and "Interrupted" in err, err[-2000:]
        sent = len(srv.chat_requests())
        assert _count_ok(db) == sent < n  # every request sent before Ctrl-C was answered and stored
        out = subprocess.run(cmd, env=env, capture_output=True, timeout=60, text=True)
        assert out.returncode == 0, out.stderr[-2000:]
        counts = srv.image_counts()
    assert _count_ok(db) == n and set(counts.values()) == {1}  # nothing paid twice
