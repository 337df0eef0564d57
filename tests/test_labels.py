"""Cluster labels through the loopback OpenAI-compatible server (with its faults): every call logged with
tokens and cost, cached, budget, dry run, prompt; offline the keywords stand in; answers parsed by hand."""

from __future__ import annotations

import pytest
from conftest import fake_openai_env
from derived_fixtures import build

from connote import derive, labels
from connote.errors import UserError
from connote.testing.fake_openai import FakeOpenAI

KEY = "sk-test-labels-123456"
ANSWER = "Label: Floods and rising water\nSummary: Rivers burst their banks and streets fill with water."


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch):
    fake_openai_env(monkeypatch, KEY)


def answer(_info):
    return {"kind": "ok", "text": ANSWER}


def test_parse_label_by_hand():
    assert labels.parse_label(ANSWER) == (
        "Floods and rising water",
        "Rivers burst their banks and streets fill with water.",
        None,
    )
    assert labels.parse_label('**Label:** "Climate protest"\n**Summary:** People march.')[:2] == (
        "Climate protest",
        "People march.",
    )
    assert labels.parse_label('{"label": "Solar power at home", "summary": "Panels."}')[2] is None
    assert "7 word" in labels.parse_label("Label: one two three four five six seven\nSummary: x")[2]
    assert "1 word" in labels.parse_label("Label: Floods\nSummary: x")[2]
    assert labels.parse_label("Label: Two words")[2] == "no 'Summary:' line"
    assert labels.parse_label("A paragraph with no form at all.")[2] == "no 'Label:' line"
    assert labels.parse_label("")[2] == "empty"
    prompt = labels.prompt_text("Name it.", ["flood", "water"], ["A river.", "Rain   falls"])
    assert prompt.endswith("Keywords: flood, water\n\nDescriptions:\n- A river.\n- Rain falls")


def test_offline_keywords_stand_in(tmp_path):
    d = build(tmp_path)
    res = labels.label(d.study, d.run_id, progress=False)
    assert res.labeller == "keywords" and len(res.labels) == 3
    stored = d.study.labels(d.run_id)
    kw = d.study.keywords(d.run_id)
    assert stored[2]["label"] == ", ".join(kw[2][:3]) and stored[2]["model"] is None
    assert not d.study.calls("label")


def test_llm_labels_logged_cached_and_reused(tmp_path):
    d = build(tmp_path)
    with FakeOpenAI(decide=answer, api_key=KEY, latency=0.05) as srv:
        res = labels.label(
            d.study, d.run_id, "openai:gpt-4o-mini", base_url=srv.base_url, concurrency=3, progress=False
        )
        assert [x.label for x in res.labels] == ["Floods and rising water"] * 3
        assert res.calls == 3 and res.cached == 0 and res.cost_usd > 0 and res.input_tokens > 0
        assert srv.max_inflight >= 2  # concurrency
        calls = d.study.calls("label")
        assert len(calls) == 3 and all(c["status"] == "ok" and c["cost_usd"] > 0 for c in calls)
        assert all(c["output_tokens"] and "Keywords: " in c["prompt"] and "- " in c["prompt"] for c in calls)
        assert KEY not in str([dict(c) for c in calls])
        stored = d.study.labels(d.run_id)
        assert stored[0]["model"] == "gpt-4o-mini" and stored[0]["prompt"] == labels.LABEL_PROMPT
        assert stored[0]["call_id"] in {c["id"] for c in calls}
        # asking again costs nothing
        again = labels.label(d.study, d.run_id, "openai:gpt-4o-mini", base_url=srv.base_url, progress=False)
        assert again.cached == 3 and again.calls == 0 and again.cost_usd == 0
        assert len(srv.chat_requests()) == 3
        # a derived run whose clusters read the same (typical descriptions, keywords) reuses the answers
        assigned = derive.assign_outliers(d.study, d.run_id, method="centroid", threshold=0.99)
        more = labels.label(
            d.study, assigned.run_id, "openai:gpt-4o-mini", base_url=srv.base_url, progress=False
        )
        assert more.cached == 3 and len(srv.chat_requests()) == 3
        # a dry run sends nothing and says what is left
        est = labels.label(
            d.study,
            d.run_id,
            "openai:gpt-4o-mini",
            base_url=srv.base_url,
            prompt="Name it: {keywords}",
            dry_run=True,
        )
        assert est.dry_run and est.estimate_cost_usd > 0 and est.cached == 0 and len(srv.chat_requests()) == 3


def test_faults_are_retried_and_bad_answers_flagged(tmp_path):
    d = build(tmp_path)
    with FakeOpenAI(decide=answer, api_key=KEY, retry_after=0.01) as srv:
        # cluster answers arrive in order with concurrency 1: 429, 500, drop then good; malformed then
        # good; a refusal twice (asked once more, then flagged)
        good = {"kind": "ok", "text": ANSWER}
        srv.push("429", "500", "drop", good, "malformed", good, "refusal", "refusal")
        res = labels.label(
            d.study, d.run_id, "openai:gpt-4o-mini", base_url=srv.base_url, concurrency=1, progress=False
        )
        status = {x.cluster: x.status for x in res.labels}
        assert sorted(status.values()) == ["flagged", "ok", "ok"]
        assert len(srv.chat_requests()) == 8
        calls = d.study.calls("label")
        assert [c["status"] for c in calls].count("flagged") == 2  # the first refusal and the kept one
        flagged = next(x for x in res.labels if x.status == "flagged")
        assert flagged.problem == "no 'Label:' line"
        # the flagged one is kept: a re-run asks nothing again (and says how to)
        for _ in range(3):
            again = labels.label(
                d.study, d.run_id, "openai:gpt-4o-mini", base_url=srv.base_url, progress=False
            )
            assert again.cached == 3 and again.calls == 0 and again.flagged_kept == 1
            assert "--retry-flagged" in " ".join(again.notes)
        assert len(srv.chat_requests()) == 8
        assert sorted(x.status for x in again.labels) == ["flagged", "ok", "ok"]
        # asked for explicitly: only the flagged one is asked again
        again = labels.label(
            d.study, d.run_id, "openai:gpt-4o-mini", base_url=srv.base_url, progress=False, retry_flagged=True
        )
        assert again.cached == 2 and again.calls == 1 and all(x.status == "ok" for x in again.labels)
        assert len(srv.chat_requests()) == 9


def test_permanent_errors_fall_back_to_keywords_and_budget_stops(tmp_path):
    d = build(tmp_path)
    with FakeOpenAI(decide=answer, api_key=KEY) as srv:
        srv.push("400", "400", "400")
        res = labels.label(
            d.study, d.run_id, "openai:gpt-4o-mini", base_url=srv.base_url, concurrency=1, progress=False
        )
        assert all(x.status == "failed" for x in res.labels) and len(srv.chat_requests()) == 3
        assert [c["status"] for c in d.study.calls("label")] == ["error"] * 3
        assert d.study.labels(d.run_id)[0]["status"] == "failed"
        # a budget smaller than one call's worst case: nothing is sent
        res = labels.label(
            d.study, d.run_id, "openai:gpt-4o-mini", base_url=srv.base_url, max_cost=1e-9, progress=False
        )
        assert res.stopped and "budget" in res.stopped and len(srv.chat_requests()) == 3
        with pytest.raises(UserError, match="price"):
            labels.label(
                d.study,
                d.run_id,
                "openai:unpriced-model",
                base_url=srv.base_url,
                max_cost=1.0,
                progress=False,
            )


def test_no_key_for_api_openai_com_is_one_clear_error(tmp_path, monkeypatch):
    d = build(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(UserError, match="OPENAI_API_KEY"):
        labels.label(d.study, d.run_id, "openai:gpt-4o-mini", progress=False)
    with pytest.raises(UserError, match="chat model"):
        labels.label(d.study, d.run_id, "offline", progress=False)


def test_kill_9_loses_no_paid_answer(tmp_path):
    import signal
    import sqlite3
    import subprocess
    import time

    from conftest import cli_env, connote_cmd

    d = build(tmp_path)
    study = d.study.path
    d.study.close()
    with FakeOpenAI(decide=answer, latency=0.6) as srv:
        cmd = connote_cmd("label", study, d.run_id, "--llm", "openai:gpt-4o-mini", "--base-url", srv.base_url)
        proc = subprocess.Popen([*cmd, "--concurrency", "1", "-q"], env=cli_env(), stdout=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            done = 0
            while time.monotonic() < deadline and proc.poll() is None:
                con = sqlite3.connect(study / "connote.db", timeout=5)
                try:
                    done = con.execute(
                        "SELECT COUNT(*) FROM calls WHERE stage='label' AND status='ok'"
                    ).fetchone()[0]
                except sqlite3.OperationalError:
                    done = 0
                finally:
                    con.close()
                if done >= 1:
                    break
                time.sleep(0.05)
            assert proc.poll() is None, "the label run ended before it could be killed"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert 1 <= done < 3
        from connote.study import Study

        with Study.open(study) as s:
            res = labels.label(s, d.run_id, "openai:gpt-4o-mini", base_url=srv.base_url, progress=False)
            paid = {c["input_ref"] for c in s.calls("label") if c["status"] == "ok"}
        assert res.cached >= done and len(res.labels) == 3 and all(x.status == "ok" for x in res.labels)
        # every cluster was paid for once: the answers logged before the kill were not asked again
        assert len(paid) == 3 and len(srv.chat_requests()) <= 3 + 1  # at most the call in flight at the kill


def test_prompt_holds_the_most_typical_distinct_descriptions(tmp_path):
    d = build(tmp_path)
    with FakeOpenAI(decide=answer) as srv:
        labels.label(
            d.study,
            d.run_id,
            "openai:gpt-4o-mini",
            base_url=srv.base_url,
            n_descriptions=2,
            progress=False,
            prompt="Name this cluster.",
        )
    prompts = [c["prompt"] for c in d.study.calls("label")]
    assert len(prompts) == 3 and all(p.startswith("Name this cluster.\n\nKeywords: ") for p in prompts)
    fire = next(p for p in prompts if "fire smoke flames heat" in p)
    lines = [x for x in fire.splitlines() if x.startswith("- ")]
    assert (
        len(lines) == 2 and len(set(lines)) == 2 and all("fire smoke flames heat number" in x for x in lines)
    )
    assert d.study.labels(d.run_id)[0]["prompt"] == "Name this cluster."
