"""Batch mode: OpenAI Batch API (files + batches) against the local fake server; resumable, half price."""

from __future__ import annotations

import json

import pytest

from connote import cli, steps
from connote.describers import batch as batch_mod
from connote.testing import FakeOpenAI, make_images

KEY = "sk-test-BATCH-0a1b2c3d4e5f"
MODEL = "gpt-4o-mini"


@pytest.fixture(autouse=True)
def env(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("CONNOTE_PRICES", raising=False)


@pytest.fixture
def study(tmp_path):
    make_images(tmp_path / "images", 6)
    return steps.init(tmp_path / "study", tmp_path / "images", progress=False)


def test_batch_end_to_end_half_price(study):
    with FakeOpenAI(api_key=KEY, batch_polls=3) as srv:
        srv.push("ok", "refusal")  # the second line of the batch is refused
        s = steps.describe(
            study, f"openai:{MODEL}", base_url=srv.base_url, batch=True, batch_poll=0.01, progress=False
        )
        assert srv.chat_requests() == []  # everything went through the batch
        (b,) = srv.batches.values()
        lines = [json.loads(x) for x in srv.files[b["obj"]["input_file_id"]]["content"].decode().splitlines()]
    assert s.described == 5 and s.flagged == 1 and s.stopped is None
    shas = {r["sha256"] for r in study.unique_images()}
    assert {x["custom_id"] for x in lines} == shas
    assert all(x["url"] == "/v1/chat/completions" and x["body"]["model"] == MODEL for x in lines)
    assert study.get_meta(f"describe_batch:{s.set_id}") is None  # collected: nothing left to resume
    calls = [c for c in study.calls("describe") if c["status"] == "ok"]
    from connote.describers.pricing import price_for

    p = price_for(MODEL)
    c = calls[0]
    assert c["cost_usd"] == pytest.approx(p.cost(c["input_tokens"], c["output_tokens"]) * 0.5)
    study.con.execute("PRAGMA wal_checkpoint(FULL)")
    data = b"".join(f.read_bytes() for f in study.path.rglob("*") if f.is_file())
    assert KEY.encode() not in data


def test_batch_resumes_across_processes(study, capsys):
    with FakeOpenAI(api_key=KEY, batch_polls=4) as srv:
        args = [
            "describe",
            str(study.path),
            "--describer",
            f"openai:{MODEL}",
            "--base-url",
            srv.base_url,
            "--batch",
            "--no-wait",
            "-q",
        ]
        assert cli.main(args) == 0  # submits and returns
        err = capsys.readouterr().err
        assert "run the same command again" in err
        set_id = study.resolve_description_set()["id"]
        state = json.loads(study.get_meta(f"describe_batch:{set_id}"))
        assert state["batch_id"] in srv.batches
        assert cli.main(args) == 0  # polls the same batch (still in progress)
        assert cli.main([*args[:-2], "--batch-poll", "0.01", "-q"]) == 0  # waits and collects
        assert (
            len(srv.batches) == 1 and len(srv.files) == 2
        )  # one input file, one output file: nothing paid twice
    assert len(study.descriptions(set_id)) == 6


def test_batch_lost_batch_id_is_found_by_file(study, monkeypatch):
    """A crash between creating the batch and recording its id: the next run finds it by its input file."""
    with FakeOpenAI(api_key=KEY) as srv:
        real_set_meta = study.set_meta
        calls = []

        def flaky(key, value):
            calls.append(value)
            if "batch_id" in value:
                raise KeyboardInterrupt  # the process dies right after batches.create
            real_set_meta(key, value)

        monkeypatch.setattr(study, "set_meta", flaky)
        with pytest.raises(KeyboardInterrupt):
            steps.describe(study, f"openai:{MODEL}", base_url=srv.base_url, batch=True, progress=False)
        monkeypatch.setattr(study, "set_meta", real_set_meta)
        s = steps.describe(
            study, f"openai:{MODEL}", base_url=srv.base_url, batch=True, batch_poll=0.01, progress=False
        )
        assert len(srv.batches) == 1
    assert s.described == 6


def test_batch_max_cost_sends_only_what_fits(study):
    est = steps.describe(study, f"openai:{MODEL}", dry_run=True, batch=True, progress=False)
    per = est.cost_usd / est.images
    with FakeOpenAI(api_key=KEY) as srv:
        s = steps.describe(
            study,
            f"openai:{MODEL}",
            base_url=srv.base_url,
            batch=True,
            batch_poll=0.01,
            max_cost=per * 2.5,
            progress=False,
        )
    assert s.described == 2 and "budget" in s.stopped


def test_batch_needs_an_openai_describer(study):
    from connote.errors import UserError

    with pytest.raises(UserError, match="--batch"):
        batch_mod._client(type("D", (), {"spec": "hf:x"})())
