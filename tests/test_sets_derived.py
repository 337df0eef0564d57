"""RQ2 with labels and derived runs: the sample records whether evaluators saw keywords or labels, and
`sets score` scores a run derived by merges with the merges it recorded (the study's .83 -> .87)."""

from __future__ import annotations

import csv
import json

import pytest
from conftest import add_run
from derived_fixtures import build

from connote import derive, labels
from connote.coding.sets import derived_merges, import_answers, sample_sets, score_sets
from connote.errors import UserError


def test_sheet_shows_labels_and_the_sample_records_it(tmp_path):
    d = build(tmp_path)
    with pytest.raises(UserError, match="no labels"):
        sample_sets(d.study, d.run_id, per_cluster=2, show="labels", progress=False)
    labels.label(d.study, d.run_id, progress=False)
    res = sample_sets(d.study, d.run_id, per_cluster=2, show="labels", name="by-label", progress=False)
    params = json.loads(d.study.set_sample("by-label")["params"])
    assert params["shown"] == "labels" and params["labeller"] == "keywords"
    assert all(
        text.startswith(", ".join(d.study.keywords(d.run_id)[params["codes"][code]][:3]) + ":")
        for code, text in params["descriptions"]
    )
    assert "Descriptions of these images often say" in res.sheet.read_text()
    sample_sets(d.study, d.run_id, per_cluster=2, name="by-keywords", progress=False)
    assert json.loads(d.study.set_sample("by-keywords")["params"])["shown"] == "keywords"


def test_score_a_merged_derived_run(tmp_path):
    d = build(tmp_path)
    sample_sets(d.study, d.run_id, per_cluster=2, size=3, progress=False)
    params = json.loads(d.study.set_sample()["params"])
    code_of = {c: code for code, c in params["codes"].items()}
    sets = d.study.image_sets(d.study.set_sample()["id"])
    # the evaluator tells the fire sets apart but confuses the two flood clusters (0 <-> 1)
    swap = {0: 1, 1: 0, 2: 2}
    path = tmp_path / "eva.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["set", "evaluator", "description"])
        for st in sets:
            w.writerow([st["pos"], "eva", code_of[swap[st["cluster"]]]])
    import_answers(d.study, path)
    plain = score_sets(d.study)
    assert plain.scores.accuracy == pytest.approx(1 / 3) and plain.scored_run == d.run_id
    merged = derive.merge(d.study, d.run_id, "1=0")
    chained = derive.assign_outliers(d.study, merged.run_id)  # a derived run of a derived run
    assert derived_merges(d.study, chained.run_id, d.run_id) == {1: 0}
    for run in (merged.run_id, chained.run_id):
        report = score_sets(d.study, run_id=run)
        assert report.scores.accuracy == pytest.approx(1.0) and report.merged == {1: 0}
        assert report.scored_run == run and report.shown == "keywords"
    other = derive.merge(d.study, d.run_id, "2=0")
    unrelated = add_run(d.study, {p: 0 for p in d.paths}, seed=1)
    with pytest.raises(UserError, match="not derived from"):
        score_sets(d.study, run_id=unrelated)
    assert score_sets(d.study, run_id=other.run_id).merged == {2: 0}
