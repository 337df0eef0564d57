"""The derive commands as a user runs them (real subprocesses): merge --suggest / merge, assign-outliers,
label (offline, and through the loopback OpenAI-compatible server), metadata, explain --method, runs,
export, with text and --json from one result."""

from __future__ import annotations

import csv
import json

from conftest import run_cli
from derived_fixtures import build

from connote.testing.fake_openai import FakeOpenAI


def test_merge_assign_runs_and_export(tmp_path):
    d = build(tmp_path)
    study = str(d.study.path)
    d.study.close()
    run = str(d.run_id)
    out = run_cli("merge", study, run, "--suggest", check=True).stdout
    assert "0=1" in out or "1=0" in out
    assert "centroid similarity" in out and "keyword overlap" in out
    doc = json.loads(run_cli("merge", study, run, "--json", check=True).stdout)
    sug = doc["suggestions"]
    assert doc["run"] == d.run_id and {sug[0]["a"], sug[0]["b"]} == {0, 1} and sug[0]["nearest"]
    made = json.loads(run_cli("merge", study, run, "1=0", "--json", check=True).stdout)
    assert made["parent"] == d.run_id and made["n_clusters"] == 2 and not made["reused"]
    again = run_cli("merge", study, run, "1=0", check=True).stdout
    assert f"Run {made['run_id']} (reused)" in again
    bad = run_cli("merge", study, run, "9=0")
    assert bad.returncode == 2 and "no cluster 9" in bad.stderr and "Traceback" not in bad.stderr
    res = json.loads(
        run_cli(
            "assign-outliers", study, run, "--method", "knn", "--threshold", "0.6", "--json", check=True
        ).stdout
    )
    assert res["assigned"] == 1 and res["members"][0]["image"] == d.outlier_near_fire
    text = run_cli("assign-outliers", study, run, "--method", "centroid", check=True).stdout
    assert "2 outlier(s) assigned by centroid" in text and d.outlier_far in text
    runs = run_cli("runs", study, check=True).stdout
    assert f"merge of {d.run_id}: 1=0" in runs and f"assign-outliers of {d.run_id}: knn" in runs
    listed = json.loads(run_cli("runs", study, "--json", check=True).stdout)
    assert [r["parent"] for r in listed] == [None, d.run_id, d.run_id, d.run_id]
    path = tmp_path / "merged.csv"
    run_cli("export", study, str(made["run_id"]), "-o", path, check=True)
    with path.open() as fh:
        assert {r["cluster"] for r in csv.DictReader(fh)} == {"0", "2", "-1"}


def test_label_metadata_and_explain(tmp_path):
    d = build(tmp_path)
    study = str(d.study.path)
    d.study.close()
    run = str(d.run_id)
    offline = run_cli("label", study, run, check=True).stdout
    assert "cluster 2: fire, flames, heat" in offline or "cluster 2:" in offline
    answer = {"kind": "ok", "text": "Label: Smoke and flames\nSummary: Things burn."}
    with FakeOpenAI(decide=lambda info: answer) as srv:
        dry = run_cli(
            "label", study, run, "--llm", "openai:gpt-4o-mini", "--base-url", srv.base_url, "--dry-run"
        )
        assert dry.returncode == 0 and "Dry run" in dry.stdout and not srv.chat_requests()
        got = json.loads(
            run_cli(
                "label",
                study,
                run,
                "--llm",
                "openai:gpt-4o-mini",
                "--base-url",
                srv.base_url,
                "--json",
                "-q",
                check=True,
            ).stdout
        )
        assert [x["label"] for x in got["labels"]] == ["Smoke and flames"] * 3 and got["calls"] == 3
        again = run_cli("label", study, run, "--llm", "openai:gpt-4o-mini", "--base-url", srv.base_url, "-q")
        assert "3 from the call log, $0.0000" in again.stdout and len(srv.chat_requests()) == 3
    meta = tmp_path / "meta.csv"
    meta.write_text(
        "image,date,likes\n"
        + "".join(f"{p},2024-01-0{1 + i % 5},{i}\n" for i, p in enumerate(d.paths))
        + "ghost.png,2024-01-01,1\n"
    )
    imp = run_cli("metadata", study, meta)
    assert imp.returncode == 1 and "ghost.png' is not in the study" in imp.stderr
    assert "columns: date (date), likes (number)" in imp.stdout
    by = json.loads(run_cli("metadata", study, "--by", "date", "--run", run, "--json", check=True).stdout)
    assert by["breakdown"]["unit"] == "day"
    chosen = run_cli("metadata", study, "--report", "likes", check=True).stdout
    assert "The report breaks clusters down by: likes" in chosen
    text = run_cli("metadata", study, "--by", "likes", check=True).stdout
    assert "Clusters by likes (number)" in text and "mean" in text
    exported = tmp_path / "out.csv"
    run_cli("export", study, run, "-o", exported, check=True)
    with exported.open() as fh:
        row = next(csv.DictReader(fh))
    assert row["label"] in {"Smoke and flames", ""} and "likes" in row and "date" in row
    kw = run_cli("explain", study, run, "--method", "ctfidf", check=True).stdout
    assert "cluster 2:" in kw
    bad = run_cli("explain", study, run, "--diversity", "2")
    assert bad.returncode == 2 and "expected a number from 0 to 1" in bad.stderr


def test_json_carries_every_number_the_text_shows(tmp_path, capsys):
    from test_cli_results import assert_json_carries_text, both

    d = build(tmp_path)
    study, run = d.study.path, d.run_id
    meta = tmp_path / "meta.csv"
    meta.write_text(
        "image,n\n" + "".join(f"{p},{i * 1.5}\n" for i, p in enumerate(d.paths)) + "ghost.png,1\n"
    )
    cases = [
        ("merge", study, run, "--suggest"),
        ("merge", study, run, "1=0"),
        ("assign-outliers", study, run, "--method", "knn", "--show", "1"),
        ("label", study, run),
        ("metadata", study, meta),
        ("metadata", study, "--by", "n", "--run", run),
    ]
    for argv in cases:
        text, doc, code = both(capsys, *argv)
        assert code in (0, 1), (argv, text)
        assert_json_carries_text(text, doc)
