"""RQ2 interpretability: drawing image sets per cluster, the matching sheet in a real Chromium, importing
answers (with bad lines), and the scores, checked by hand on small cases."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from conftest import add_run, chromium_page, make_noise_images, run_cli

from connote import steps
from connote.coding.sets import codes, draw_sets, import_answers, sample_sets, score_sets
from connote.errors import UserError
from connote.study import Study

N_IMAGES = 24


@pytest.fixture
def study(tmp_path) -> Study:
    make_noise_images(tmp_path / "images", N_IMAGES)
    study = steps.init(tmp_path / "study", tmp_path / "images", progress=False)
    paths = sorted(r["path"] for r in study.unique_images())
    # three clusters of 8 (by image number mod 3), two outliers
    run = add_run(study, {p: (-1 if i < 2 else i % 3) for i, p in enumerate(paths)}, seed=42)
    study.set_keywords(run, {c: [(f"word{c}{k}", 1.0 - k / 10) for k in range(5)] for c in range(3)}, {})
    return study


def write_answers(path: Path, rows: list[list]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["set", "evaluator", "description"])
        w.writerows(rows)
    return path


def sample_params(study):
    import json

    return json.loads(study.set_sample()["params"])


def test_codes():
    assert codes(3) == ["A", "B", "C"]
    assert codes(28)[25:] == ["Z", "AA", "AB"]


def test_draw_sets_distinct_images_per_set_and_all_clusters():
    members = {0: [f"a{i}" for i in range(20)], 1: [f"b{i}" for i in range(7)], 2: ["c0", "c1"]}
    sets, notes = draw_sets(members, per_cluster=5, size=3, seed=1)
    assert sorted(c for c, _ in sets) == [0] * 5 + [1] * 5
    assert all(len(set(s)) == 3 and all(x[0] == "ab"[c] for x in s) for c, s in sets)
    # cluster 0 has enough images for 5 disjoint sets
    assert len({x for c, s in sets if c == 0 for x in s}) == 15
    assert any("cluster 2 has 2 image(s)" in n for n in notes) and any("1 (7)" in n for n in notes)
    assert draw_sets(members, 5, 3, seed=1) == (sets, notes)
    assert [c for c, _ in sets] != sorted(c for c, _ in sets)  # shown in random order


def test_sample_sets_stores_sets_and_descriptions(study):
    res = sample_sets(study, per_cluster=2, size=3, progress=False)
    assert (res.name, res.n_sets, res.n_clusters) == ("sets-run1", 6, 3)
    sets = study.image_sets(study.set_sample()["id"])
    assign = study.assignments(res.run_id)
    assert all(assign[s] == st["cluster"] for st in sets for s in st["shas"])  # never an outlier
    params = sample_params(study)
    descriptions = dict(params["descriptions"])
    assert list(descriptions) == codes(3) and sorted(params["codes"].values()) == [0, 1, 2]
    for code, c in params["codes"].items():
        assert descriptions[code].startswith(f"word{c}0, word{c}1")
    html = res.sheet.read_text()
    assert html.count('class="set"') == 6 and "word10" in html and "Download answers" in html
    with pytest.raises(UserError, match="already a set sample"):
        sample_sets(study, per_cluster=2, progress=False)


def test_more_than_26_descriptions_are_listed_a_to_z_then_aa(tmp_path):
    make_noise_images(tmp_path / "images", 56)
    study = steps.init(tmp_path / "study", tmp_path / "images", progress=False)
    paths = sorted(r["path"] for r in study.unique_images())
    run = add_run(study, {p: i // 2 for i, p in enumerate(paths)}, seed=1)  # 28 clusters of 2
    study.set_keywords(run, {c: [(f"w{c}", 1.0)] for c in range(28)}, {})
    sample_sets(study, run, per_cluster=1, size=2, progress=False)
    assert [code for code, _ in sample_params(study)["descriptions"]] == codes(28)
    html = (study.path / "validation" / "sets-run1" / "matching.html").read_text()
    assert html.index("<dt>B</dt>") < html.index("<dt>Z</dt>") < html.index("<dt>AA</dt>")


def test_sample_sets_computes_missing_keywords(shared_study, tmp_path):
    shutil.copytree(shared_study.path, tmp_path / "study")
    study = Study.open(tmp_path / "study")
    study.con.execute("DELETE FROM keywords")
    res = sample_sets(study, shared_study.run_id, per_cluster=1, size=2, progress=False)
    assert any("had no keywords yet" in n for n in res.notes)
    assert study.keywords(shared_study.run_id)


def test_import_names_bad_lines_and_keeps_the_rest(study, tmp_path):
    sample_sets(study, per_cluster=2, progress=False)
    path = write_answers(
        tmp_path / "eva.csv",
        [
            [1, "eva", "a"],
            [2, "eva", "Z"],
            [77, "eva", "A"],
            ["two", "eva", "B"],
            [3, "", "B"],
            [4, "eva", ""],
        ],
    )
    res = import_answers(study, path)
    assert res.count == 1 and res.names == ["eva"]
    assert [p.split(": ", 1)[0] for p in res.problems] == [f"{path}:3", f"{path}:4", f"{path}:5", f"{path}:6"]
    assert "'Z' is not one of the descriptions (A, B, C)" in res.problems[0]
    rows = study.set_answers(study.set_sample()["id"])
    assert [(r["pos"], r["evaluator"], r["code"]) for r in rows] == [(1, "eva", "A")]
    with pytest.raises(UserError, match="no 'description' column"):
        bad = tmp_path / "bad.csv"
        bad.write_text("set,evaluator\n1,eva\n")
        import_answers(study, bad)


def test_scores_by_hand(study, tmp_path):
    sample_sets(study, per_cluster=4, progress=False)
    params = sample_params(study)
    code_of = {c: code for code, c in params["codes"].items()}
    sets = study.image_sets(study.set_sample()["id"])
    # ann is always right; bo mistakes cluster 2 for cluster 1 everywhere; cy is right except on the
    # first set of cluster 0, where she answers cluster 1.
    first0 = next(st["pos"] for st in sets if st["cluster"] == 0)
    ann, bo, cy = [], [], []
    for st in sets:
        c = st["cluster"]
        ann.append([st["pos"], "ann", code_of[c]])
        bo.append([st["pos"], "bo", code_of[1 if c == 2 else c]])
        cy.append([st["pos"], "cy", code_of[1 if st["pos"] == first0 else c]])
    for name, rows in (("ann", ann), ("bo", bo), ("cy", cy)):
        import_answers(study, write_answers(tmp_path / f"{name}.csv", rows))
    rep = score_sets(study)
    assert rep.evaluators == ["ann", "bo", "cy"] and rep.answered == 12
    # majority: always the true cluster (ann and one other agree), so accuracy 1
    assert rep.scores.accuracy == 1.0 and rep.with_majority == 12
    assert rep.accuracy_by_evaluator == {
        "ann": 1.0,
        "bo": pytest.approx(8 / 12),
        "cy": pytest.approx(11 / 12),
    }
    from connote.evaluate import cohen_kappa

    def col(rows):
        return [r[2] for r in rows]

    assert rep.pairwise_kappa[("ann", "bo")] == pytest.approx(cohen_kappa(col(ann), col(bo)))
    assert rep.kappa == pytest.approx(
        (cohen_kappa(col(ann), col(bo)) + cohen_kappa(col(ann), col(cy)) + cohen_kappa(col(bo), col(cy))) / 3
    )

    # Two evaluators who disagree: ties go to the first by name (bo), so cluster 2's sets count as 1.
    tie = tmp_path / "tie"
    shutil.copytree(study.path, tie / "study")
    s2 = Study.open(tie / "study")
    s2.con.execute("DELETE FROM set_answers WHERE evaluator IN ('ann')")
    rep2 = score_sets(s2)
    assert rep2.evaluators == ["bo", "cy"]
    per = {c["cluster"]: c for c in rep2.clusters}
    assert per[2]["recall"] == 0.0 and per[1]["precision"] == pytest.approx(4 / 8)
    # cluster 2's 4 sets are lost to bo's tie-break; on cy's slip (first0) the tie-break to bo is right
    assert rep2.scores.accuracy == pytest.approx(8 / 12)
    # merging the near-twins 2 into 1 makes those answers right
    rep3 = score_sets(s2, merge={2: 1})
    assert rep3.scores.accuracy == 1.0
    assert {c["cluster"] for c in rep3.clusters} == {0, 1} and rep3.clusters[1]["merged_in"] == "2"
    with pytest.raises(UserError, match="not in this sample"):
        score_sets(s2, merge={9: 1})


def test_score_without_answers_says_what_to_do(study):
    with pytest.raises(UserError, match="no image-set sample yet"):
        score_sets(study)
    sample_sets(study, per_cluster=1, progress=False)
    with pytest.raises(UserError, match="matching.html"):
        score_sets(study)


def test_cli_and_matching_sheet_in_chromium(study, tmp_path):
    proc = run_cli("sets", "sample", study.path, "1", "--per-cluster", "2", "--name", "rq2", "-q", check=True)
    assert "6 set(s) from 3 cluster(s) of run 1" in proc.stdout
    sheet = study.path / "validation" / "rq2" / "matching.html"
    with chromium_page(accept_downloads=True) as (page, errors):
        page.goto(sheet.as_uri())
        page.fill("#evaluator", "dee")
        page.select_option("select[name=set-1]", "B")
        page.select_option("select[name=set-2]", "A")
        assert page.inner_text("#progress") == "2 / 6 matched"
        page.reload()
        assert page.input_value("select[name=set-1]") == "B"
        with page.expect_download() as info:
            page.click("#download")
        download = tmp_path / "answers.csv"
        info.value.save_as(download)
    assert errors == []
    assert download.read_text().splitlines() == ["set,evaluator,description", "1,dee,B", "2,dee,A"]
    proc = run_cli("sets", "import", study.path, download, check=True)
    assert "2 answer(s) by dee" in proc.stdout
    proc = run_cli("sets", "score", study.path, check=True)
    assert "Accuracy" in proc.stdout and "one evaluator" in proc.stdout
    proc = run_cli("sets", "score", study.path, "--json", check=True)
    assert '"sample": "rq2"' in proc.stdout
    proc = run_cli("status", study.path, check=True)
    assert "image sets 'rq2' (run 1): 6 sets, 2 answer(s) by 1 evaluator(s): dee" in proc.stdout
    proc = run_cli("sets", "score", study.path, "--merge", "x")
    assert proc.returncode == 2 and "CLUSTER=INTO" in proc.stderr
