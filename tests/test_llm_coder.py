"""A vision LLM as an extra coder (`pairs rate --llm`, `sets answer --llm`) against the loopback OpenAI
server, which answers from its caption lookup: every pair rated once (a rerun and a second process send
nothing more), faults retried, flagged answers kept apart; scoring keeps humans and LLM apart, and its
agreement figures equal the krippendorff package's and scikit-learn's on the exported ratings."""

from __future__ import annotations

import csv
import json
import math
import os
import random
import subprocess
from pathlib import Path

import pytest
from conftest import GROUPS, add_run, connote_cmd, fake_openai_env, make_group_images, run_cli

from connote import steps
from connote.coding import llm
from connote.coding.pairs import import_ratings, sample_pairs, score_pairs
from connote.coding.sets import import_answers, sample_sets, score_sets
from connote.study import Study
from connote.testing.fake_openai import FakeOpenAI

KEY = "sk-test-llmcoder"
N_PAIRS = 120
MODEL = "gpt-4o-mini"
CODER = f"llm:{MODEL}"


def group(path: str) -> int:
    return list(GROUPS).index(path.split("-")[0])


@pytest.fixture
def study_dir(tmp_path) -> Path:
    """24 images in three colour groups, two runs (the true groups, and a shuffled one), a pair sample and
    two human coders' ratings (the first close to the groups, the second noisier)."""
    make_group_images(tmp_path / "images", per_group=8)
    study = steps.init(tmp_path / "study", tmp_path / "images", progress=False)
    paths = sorted(r["path"] for r in study.unique_images())
    add_run(study, {p: group(p) for p in paths}, seed=1)
    rng = random.Random(5)
    add_run(study, {p: rng.randrange(3) for p in paths}, seed=2)
    sample_pairs(study, N_PAIRS, seed=3, progress=False)
    by_sha = {r["sha256"]: r["path"] for r in study.unique_images()}
    pairs = study.pairs(study.pair_sample()["id"])
    for coder, noise in (("ann", 0.1), ("bob", 0.3)):
        rows = []
        for p in pairs:
            same = group(by_sha[p["sha_a"]]) == group(by_sha[p["sha_b"]])
            values = [2 if same else 0, 2 if same else rng.choice([0, 1])]
            values = [rng.choice([0, 1, 2]) if rng.random() < noise else v for v in values]
            rows.append([p["pos"], coder, *values])
        path = tmp_path / f"{coder}.csv"
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["pair", "coder", "denotative", "connotative"])
            w.writerows(rows)
        import_ratings(study, path)
    study.close()
    return tmp_path / "study"


def cli_env() -> dict:
    return {
        **os.environ,
        "OPENAI_API_KEY": KEY,
        "PYTHONUNBUFFERED": "1",
        "NUMBA_CACHE_DIR": "/tmp/numba_cache",
    }


def rate_cmd(study: Path, srv, *extra: str) -> list[str]:
    return connote_cmd(
        "pairs", "rate", study, "--llm", f"openai:{MODEL}", "--base-url", srv.base_url, "-q", *extra
    )


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=cli_env())


def exported(study: Study, coder: str) -> dict[str, dict[int, int]]:
    """A coder's ratings as exported from the study (dimension -> pair -> value)."""
    out: dict[str, dict[int, int]] = {d: {} for d in llm.DIMENSIONS}
    for r in study.ratings(study.pair_sample()["id"]):
        if r["coder"] == coder:
            out[r["dimension"]][r["pos"]] = r["value"]
    return out


def reference_alpha(*coders: dict[int, float]) -> float:
    import krippendorff
    import numpy as np

    units = sorted(set().union(*coders))
    data = np.array([[c.get(u, np.nan) for u in units] for c in coders], dtype=float)
    return krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal")


# ---------------------------------------------------------------------------------------------- pure parts
def test_parse_rating_and_answer():
    assert llm.parse_rating('{"denotative": 2, "connotative": 0}') == (
        {"denotative": 2, "connotative": 0},
        None,
    )
    assert llm.parse_rating('```json\n{"denotative": "1", "connotative": 2}\n```')[0] == {
        "denotative": 1,
        "connotative": 2,
    }
    assert llm.parse_rating('{"denotative": 3, "connotative": 0}')[1] == "denotative is 3, not 0, 1 or 2"
    assert llm.parse_rating('{"denotative": true, "connotative": 0}')[0] is None
    assert llm.parse_rating("I would say 2 and 1")[1] == "not a JSON object"
    assert llm.parse_rating("")[1] == "empty"
    assert llm.parse_answer('{"answer": "b"}', {"A", "B"}) == ("B", None)
    assert "not one of A, B" in llm.parse_answer('{"answer": "Z"}', {"A", "B"})[1]
    assert llm.coder_name("openai:gpt-4o", llm.RATE_PROMPT, llm.RATE_PROMPT) == "llm:gpt-4o"
    assert llm.coder_name("openai:gpt-4o", "other", llm.RATE_PROMPT).startswith("llm:gpt-4o#")


# ---------------------------------------------------------------------------------------------- rating
def test_rate_every_pair_once_rerun_sends_nothing_and_score_keeps_them_apart(study_dir):
    with FakeOpenAI(api_key=KEY) as srv:
        proc = run(rate_cmd(study_dir, srv, "--json"))
        assert proc.returncode == 0, proc.stderr[-2000:]
        res = json.loads(proc.stdout)
        assert (res["asks"], res["answered"], res["calls"], res["coder"]) == (
            N_PAIRS,
            N_PAIRS,
            N_PAIRS,
            CODER,
        )
        assert len(srv.chat_requests()) == N_PAIRS and set(srv.request_counts().values()) == {1}
        assert all(r["status"] == 200 for r in srv.chat_requests())
        again = run(rate_cmd(study_dir, srv, "--json"))
        assert again.returncode == 0, again.stderr[-2000:]
        assert json.loads(again.stdout)["already"] == N_PAIRS
        assert len(srv.chat_requests()) == N_PAIRS  # the rerun sent nothing
    study = Study.open(study_dir)
    calls = study.calls("rate")
    assert len(calls) == N_PAIRS and all(
        c["status"] == "ok" and c["prompt"] == llm.RATE_PROMPT for c in calls
    )
    sources = {r["source"] for r in study.ratings(study.pair_sample()["id"]) if r["coder"] == CODER}
    assert sources == {f"call:{c['id']}" for c in calls}  # each rating names the call that made it
    assert not study.con.execute("SELECT COUNT(*) FROM claims").fetchone()[0]

    rep = score_pairs(study)
    assert rep.coders == "humans" and rep.llm_coders == [CODER]
    assert [a.coders for a in rep.agreement] == [2, 2]  # the LLM is not one of the humans
    ann, bob, machine = exported(study, "ann"), exported(study, "bob"), exported(study, CODER)
    for a in rep.agreement:
        assert a.alpha == pytest.approx(reference_alpha(ann[a.dimension], bob[a.dimension]))
    for row in rep.llm_agreement:
        d = row["dimension"]
        if row["with"] == "(humans)":
            mean = {p: (ann[d][p] + bob[d][p]) / 2 for p in ann[d]}
            assert row["alpha"] == pytest.approx(reference_alpha(machine[d], mean))
        else:
            assert row["alpha"] == pytest.approx(reference_alpha(machine[d], exported(study, row["with"])[d]))
        assert row["pairs"] == N_PAIRS
    # the fake's caption lookup follows the colour groups: the LLM agrees with the careful coder
    assert (
        next(r for r in rep.llm_agreement if r["with"] == "ann" and r["dimension"] == "denotative")["alpha"]
        > 0.5
    )
    true_run = rep.runs[0]
    assert set(true_run.by_coders) == {"humans", "llm", "all"}
    assert true_run.by_coders["llm"]["denotative"].score == pytest.approx(2.0)  # 2 within, 0 across
    assert true_run.quality["denotative"].score == true_run.by_coders["humans"]["denotative"].score
    assert rep.runs[1].by_coders["llm"]["denotative"].score < 0.5  # the shuffled run

    out = run_cli("pairs", "score", study_dir, check=True).stdout
    assert "ann" in out and f"{CODER} / ann" in out and f"{CODER} / (humans)" in out
    assert "llm den." in out and "humans conn." in out and "all den." in out
    j = json.loads(run_cli("pairs", "score", study_dir, "--coders", "llm", "--json", check=True).stdout)
    assert j["coders"] == "llm" and j["runs"][0]["denotative_quality"] == pytest.approx(2.0)
    assert {"humans_denotative_quality", "llm_connotative_quality", "all_denotative_quality"} <= set(
        j["runs"][0]
    )


def test_two_processes_rate_each_pair_once(study_dir):
    with FakeOpenAI(api_key=KEY, latency=0.05) as srv:
        cmd = rate_cmd(study_dir, srv, "--concurrency", "2", "--json")
        procs = [
            subprocess.Popen(cmd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=300) for p in procs]
        counts = srv.request_counts()
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    assert sum(counts.values()) == N_PAIRS and set(counts.values()) == {1}  # each pair asked once
    answered = [json.loads(out)["answered"] for out, _ in outs]
    assert sum(answered) == N_PAIRS
    study = Study.open(study_dir)
    assert len(study.calls("rate")) == N_PAIRS
    assert sum(len(v) for v in exported(study, CODER).values()) == 2 * N_PAIRS


def test_faults_retried_flagged_kept_apart_and_asked_again_only_when_told(study_dir, monkeypatch):
    fake_openai_env(monkeypatch, KEY)
    bad = {"kind": "ok", "text": "They look closely related, I would say 2."}
    with FakeOpenAI(api_key=KEY) as srv:
        # concurrency 1: the faults meet the first pairs in order
        srv.push("429", "500", "drop", "malformed", bad, bad)
        res = llm.rate_pairs(
            study_dir, f"openai:{MODEL}", base_url=srv.base_url, concurrency=1, progress=False
        )
        assert res.flagged == 1 and res.answered == N_PAIRS - 1 and res.failed == 0
        assert res.calls == N_PAIRS + 5 == len(srv.chat_requests())
        study = Study.open(study_dir)
        rated = exported(study, CODER)
        assert len(rated["denotative"]) == N_PAIRS - 1
        flagged = [c for c in study.calls("rate") if c["status"] == "flagged"]
        assert len(flagged) == 2 and all("not a JSON object" in c["error"] for c in flagged)
        again = llm.rate_pairs(study, f"openai:{MODEL}", base_url=srv.base_url, progress=False)
        assert again.calls == 0 and len(srv.chat_requests()) == N_PAIRS + 5  # a flagged answer is an answer
        retry = llm.rate_pairs(
            study, f"openai:{MODEL}", base_url=srv.base_url, retry_flagged=True, progress=False
        )
        assert retry.answered == 1 and retry.calls == 1
    assert len(exported(study, CODER)["denotative"]) == N_PAIRS


def test_both_orders_measures_position_bias(study_dir, monkeypatch):
    fake_openai_env(monkeypatch, KEY)
    with FakeOpenAI(api_key=KEY, position_bias=1) as srv:
        res = llm.rate_pairs(
            study_dir, f"openai:{MODEL}", base_url=srv.base_url, both_orders=True, progress=False
        )
        assert res.answered == 2 * N_PAIRS == len(srv.chat_requests())
    study = Study.open(study_dir)
    ab, ba = exported(study, CODER), exported(study, CODER + llm.REVERSED)
    by_dim = {row["dimension"]: row for row in res.order_agreement}
    assert by_dim["denotative"]["same"] == N_PAIRS  # the fake's denotative answer ignores the order
    con = by_dim["connotative"]
    assert con["same"] == sum(ab["connotative"][p] == ba["connotative"][p] for p in ab["connotative"])
    assert con["same"] < N_PAIRS
    assert con["alpha"] == pytest.approx(reference_alpha(ab["connotative"], ba["connotative"]))
    rep = score_pairs(study)
    assert rep.llm_coders == [CODER] and CODER in rep.order_agreement  # (B,A) is not another coder
    out = run_cli("pairs", "score", study_dir, check=True).stdout
    assert "(A,B) / (B,A)" in out


def test_json_mode_fallback_prompt_file_dry_run_and_budget(study_dir, tmp_path, monkeypatch):
    fake_openai_env(monkeypatch, KEY)
    prompt = tmp_path / "prompt.txt"
    prompt.write_text(llm.RATE_PROMPT + "\nBe strict.", encoding="utf-8")
    with FakeOpenAI(api_key=KEY, json_mode=False) as srv:
        dry = run(rate_cmd(study_dir, srv, "--prompt", f"@{prompt}", "--dry-run", "--json"))
        assert dry.returncode == 0, dry.stderr
        est = json.loads(dry.stdout)
        assert est["estimate_cost_usd"] > 0 and not srv.chat_requests()
        # the budget holds each call's worst case while it is in flight: room for one and a half, while
        # the fake's answers cost far less than that, so a part of the pairs is rated before it stops
        from connote.describers.pricing import price_for

        budget = 1.5 * price_for(MODEL).cost(est["input_tokens"] // N_PAIRS, 60)
        proc = run(rate_cmd(study_dir, srv, "--prompt", f"@{prompt}", "--max-cost", f"{budget}", "--json"))
        res = json.loads(proc.stdout)
        assert proc.returncode == 1 and "budget" in res["stopped"] and 0 < res["answered"] < N_PAIRS
        assert res["cost_usd"] <= budget
        # the server refuses response_format: each request in flight then is asked again without it, and
        # every later one goes without it
        refused = [r for r in srv.chat_requests() if r["status"] == 400]
        assert 1 <= len(refused) <= 8 and not res["failed"] and not res["problems"]
        taken = run(rate_cmd(study_dir, srv, "--coder", "ann"))
        assert taken.returncode == 2 and "a person's answers" in taken.stderr
    study = Study.open(study_dir)
    coder = res["coder"]
    assert coder.startswith(CODER + "#")  # another prompt, another coder name
    calls = [c for c in study.calls("rate") if c["status"] == "ok"]
    assert calls and all(c["prompt"] == prompt.read_text(encoding="utf-8").strip() for c in calls)


# ---------------------------------------------------------------------------------------------- sets
def test_sets_answer_and_score_keep_the_llm_apart(study_dir, tmp_path):
    from sklearn.metrics import cohen_kappa_score

    study = Study.open(study_dir)
    run_id = study.runs()[0]["id"]
    colours = {"flood": "blue", "fire": "red", "vote": "green"}
    study.set_keywords(run_id, {i: [(colours[g], 1.0), (g, 0.9)] for i, g in enumerate(GROUPS)}, {})
    sample_sets(study, run_id, per_cluster=4, size=3, seed=1, progress=False)
    params = json.loads(study.set_sample()["params"])
    code_of = {int(c): code for code, c in params["codes"].items()}
    sets = study.image_sets(study.set_sample()["id"])
    rng = random.Random(2)
    for who, noise in (("eve", 0.1), ("flo", 0.4)):
        path = tmp_path / f"{who}.csv"
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["set", "evaluator", "description"])
            for st in sets:
                code = (
                    code_of[st["cluster"]] if rng.random() >= noise else rng.choice(sorted(params["codes"]))
                )
                w.writerow([st["pos"], who, code])
        import_answers(study, path)
    study.close()
    with FakeOpenAI(api_key=KEY) as srv:
        cmd = connote_cmd(
            "sets",
            "answer",
            study_dir,
            "--llm",
            f"openai:{MODEL}",
            "--base-url",
            srv.base_url,
            "-q",
            "--json",
        )
        proc = run(cmd)
        assert proc.returncode == 0, proc.stderr[-2000:]
        res = json.loads(proc.stdout)
        assert res["answered"] == len(sets) == len(srv.chat_requests())
        assert json.loads(run(cmd).stdout)["already"] == len(sets) and len(srv.chat_requests()) == len(sets)
    study = Study.open(study_dir)
    rep = score_sets(study)
    assert rep.evaluators == ["eve", "flo"] and rep.llm_evaluators == [CODER]
    answers: dict[str, dict[int, str]] = {}
    for a in study.set_answers(study.set_sample()["id"]):
        answers.setdefault(a["evaluator"], {})[a["pos"]] = a["code"]
    for k in rep.llm_kappa:
        both = sorted(answers[k["llm"]])
        expected = cohen_kappa_score(
            [answers[k["llm"]][p] for p in both], [answers[k["with"]][p] for p in both]
        )
        assert k["kappa"] == pytest.approx(expected)
    truth = {st["pos"]: code_of[st["cluster"]] for st in sets}
    assert rep.llm_accuracy[CODER] == pytest.approx(
        sum(answers[CODER][p] == truth[p] for p in truth) / len(truth)
    )
    assert rep.llm_accuracy[CODER] == 1.0  # the captions name the colour the keywords name
    assert set(rep.accuracy_by_evaluator) == {"eve", "flo"}  # the majority is the humans'
    out = run_cli("sets", "score", study_dir, check=True).stdout
    assert f"Cohen's kappa {CODER} / eve" in out and f"accuracy of {CODER} alone: 1.000" in out
    assert not math.isnan(rep.kappa)


# ---------------------------------------------------------------------------------------------- frames
def test_multiclimate_frames_end_to_end_on_the_command_line(tmp_path):
    """Done as the issue states it, on 30 MultiClimate frames (three videos): a pair sample, two human
    coders' files and the loopback server; `pairs rate` rates every pair once, `pairs score` prints human,
    LLM and human-vs-LLM alpha and the three qualities of every run; `sets answer` and `sets score` the same
    for the sets."""
    import shutil

    from test_one_key_one_result import FRAMES

    if FRAMES is None:
        pytest.skip("../shared/datasets/multiclimate_frames is absent")
    with open(FRAMES / "labels.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    videos = sorted({r["video_id"] for r in rows})[:3]
    chosen = [r for r in rows if r["video_id"] in videos][:30]
    (tmp_path / "images").mkdir()
    for r in chosen:
        shutil.copyfile(FRAMES / r["filename"], tmp_path / "images" / Path(r["filename"]).name)
    info = {Path(r["filename"]).name: r for r in chosen}
    study_dir = tmp_path / "study"
    run_cli("init", study_dir, "--images", tmp_path / "images", "-q", check=True)
    study = Study.open(study_dir)
    paths = sorted(r["path"] for r in study.unique_images())
    add_run(study, {p: videos.index(info[p]["video_id"]) for p in paths}, seed=1)
    add_run(study, {p: i % 3 for i, p in enumerate(paths)}, seed=2)
    run_id = study.runs()[0]["id"]
    study.set_keywords(run_id, {i: [(v.lower(), 1.0)] for i, v in enumerate(videos)}, {})
    study.close()
    n = 150
    run_cli("pairs", "sample", study_dir, "--n", n, "-q", check=True)
    study = Study.open(study_dir)
    by_sha = {r["sha256"]: info[r["path"]] for r in study.unique_images()}
    pairs = study.pairs(study.pair_sample()["id"])
    rng = random.Random(7)
    for coder in ("ann", "bob"):
        path = tmp_path / f"{coder}.csv"
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["pair", "denotative", "connotative"])
            for p in pairs:
                a, b = by_sha[p["sha_a"]], by_sha[p["sha_b"]]
                den = 2 if a["video_id"] == b["video_id"] else 0
                con = 2 if a["frame_stance"] == b["frame_stance"] else 1
                w.writerow([p["pos"], min(2, den + (rng.random() < 0.2)), max(0, con - (rng.random() < 0.2))])
        run_cli("pairs", "import", study_dir, path, "--coder", coder, check=True)
    study.close()
    with FakeOpenAI(api_key=KEY) as srv:
        proc = run(rate_cmd(study_dir, srv))
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert len(srv.chat_requests()) == n and set(srv.request_counts().values()) == {1}
        assert run(rate_cmd(study_dir, srv)).returncode == 0 and len(srv.chat_requests()) == n
        out = run_cli("pairs", "score", study_dir, check=True).stdout
        for text in (
            "Krippendorff's alpha (ordinal)",
            f"{CODER} / ann",
            f"{CODER} / bob",
            f"{CODER} / (humans)",
        ):
            assert text in out, out
        table = out.split("humans den.")[1]
        assert all(f"\n{r:>4}  " in table for r in (1, 2))  # the three qualities of every run
        run_cli("sets", "sample", study_dir, str(run_id), "--per-cluster", "3", "-q", check=True)
        sets = Study.open(study_dir).image_sets(Study.open(study_dir).set_sample()["id"])
        answers = tmp_path / "eve.csv"
        params = json.loads(Study.open(study_dir).set_sample()["params"])
        code_of = {int(c): code for code, c in params["codes"].items()}
        answers.write_text(
            "set,description\n" + "".join(f"{st['pos']},{code_of[st['cluster']]}\n" for st in sets),
            encoding="utf-8",
        )
        run_cli("sets", "import", study_dir, answers, "--evaluator", "eve", check=True)
        ask = connote_cmd(
            "sets", "answer", study_dir, "--llm", f"openai:{MODEL}", "--base-url", srv.base_url, "-q"
        )
        proc = run(ask)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert len(srv.chat_requests()) == n + len(sets)
    out = run_cli("sets", "score", study_dir, check=True).stdout
    assert f"Cohen's kappa {CODER} / eve" in out and f"accuracy of {CODER} alone" in out
    assert "accuracy of eve alone: 1.000" in out


def test_a_paid_answer_that_could_not_be_stored_is_stored_by_the_next_run_without_a_request(
    study_dir, monkeypatch
):
    import sqlite3

    from connote.errors import UserError

    fake_openai_env(monkeypatch, KEY)
    real = llm._store
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise sqlite3.OperationalError("database or disk is full")
        return real(*args, **kwargs)

    with FakeOpenAI(api_key=KEY) as srv:
        monkeypatch.setattr(llm, "_store", failing)
        with pytest.raises(UserError, match="stopped sending at once"):
            llm.rate_pairs(study_dir, f"openai:{MODEL}", base_url=srv.base_url, concurrency=1, progress=False)
        sent = len(srv.chat_requests())
        assert sent == 3  # nothing more after the failed store
        assert list((study_dir / "journal").glob("*.jsonl"))
        monkeypatch.setattr(llm, "_store", real)
        res = llm.rate_pairs(study_dir, f"openai:{MODEL}", base_url=srv.base_url, progress=False)
        assert res.answered == N_PAIRS - 2 and len(srv.chat_requests()) == sent + N_PAIRS - 3
    assert len(exported(Study.open(study_dir), CODER)["connotative"]) == N_PAIRS
    assert not list(study_dir.glob("journal/*.jsonl"))  # the journal is gone once its answer is stored


def test_kill_9_loses_no_answer_that_came_back(study_dir):
    import signal
    import time

    with FakeOpenAI(api_key=KEY, latency=0.05) as srv:
        proc = subprocess.Popen(
            rate_cmd(study_dir, srv, "--concurrency", "2"),
            env=cli_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        deadline = time.time() + 120
        while len(srv.chat_requests()) < 20 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert 0 < len(srv.chat_requests()) < N_PAIRS
        again = run(rate_cmd(study_dir, srv, "--json"))
        assert again.returncode == 0, again.stderr[-2000:]
        counts = srv.request_counts()
    # every pair is rated; only the asks in flight when the process was killed were asked twice
    assert len(exported(Study.open(study_dir), CODER)["denotative"]) == N_PAIRS
    assert len(counts) == N_PAIRS and sum(n - 1 for n in counts.values()) <= 2


@pytest.mark.slow
def test_a_local_model_rates_pairs_through_the_same_path(study_dir, tmp_path):
    """hf:MODEL (a tiny random LLaVA, no hub): both images go into one prompt; its word salad is flagged,
    logged, and not asked again."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from connote.testing.tiny_models import tiny_llava

    model = tiny_llava(tmp_path / "tiny-llava")
    sample_pairs(study_dir, 4, seed=9, name="few", progress=False)
    res = llm.rate_pairs(study_dir, f"hf:{model}", name="few", max_tokens=8, progress=False)
    assert res.asks == 4 and res.answered + res.flagged == 4 and res.failed == 0
    study = Study.open(study_dir)
    calls = study.calls("rate")
    assert len(calls) == 4 and all(c["backend"] == f"hf:{model}" for c in calls)
    again = llm.rate_pairs(study, f"hf:{model}", name="few", max_tokens=8, progress=False)
    assert again.calls == 0 and len(study.calls("rate")) == 4


# ---------------------------------------------------------------------------------------------- index
def test_study_index_shows_llm_quality_in_its_own_columns(study_dir, monkeypatch):
    import re

    from connote.reports import render_study

    fake_openai_env(monkeypatch, KEY)
    study = Study.open(study_dir)
    page = render_study(study, progress=False).read_text(encoding="utf-8")
    assert "LLM denotative quality" not in page  # no LLM coded: no LLM columns
    human = dict(re.findall(r'<tr data-run="(\d+)">(.*?)</tr>', page, re.S))
    with FakeOpenAI(api_key=KEY) as srv:
        llm.rate_pairs(study, f"openai:{MODEL}", base_url=srv.base_url, progress=False)
    page = render_study(study, progress=False).read_text(encoding="utf-8")
    rows = dict(re.findall(r'<tr data-run="(\d+)">(.*?)</tr>', page, re.S))
    assert "LLM denotative quality" in page and "LLM connotative quality" in page
    for run_id, row in rows.items():  # the humans' columns are as they were
        without = re.sub(r'<td class="num llm"[^>]*>.*?</td>', "", row)
        assert without.split() == human[run_id].split()
    assert '<td class="num llm" data-v="2.0">2.000</td>' in rows["1"]  # the LLM's quality of the true run
    assert f"{CODER} / the humans, denotative: Krippendorff" in page


def test_a_describer_that_is_not_a_chat_model_is_refused_in_one_line(study_dir):
    from connote.errors import UserError

    with pytest.raises(UserError, match="needs a vision chat model"):
        llm.rate_pairs(study_dir, "offline", progress=False)
    proc = run_cli("sets", "answer", study_dir, "--llm", f"openai:{MODEL}", "--json")
    assert proc.returncode == 2 and "no image-set sample yet" in json.loads(proc.stdout)["error"]
