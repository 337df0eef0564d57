"""``connote codes``: every run scored against codes a team already has. The measures are checked against
scikit-learn and a hand-computed quality; on a study (a few MultiClimate frames with their labels.csv, or
generated images) the command's numbers equal scikit-learn's computed independently on ``connote export``;
the study index shows them (generated HTML, and sorting in real Chromium)."""

from __future__ import annotations

import csv
import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import add_run, chromium_page, make_noise_images, run_cli
from sklearn import metrics
from test_cli_results import assert_json_carries_text, both

from connote import steps
from connote.coding.codes import CODES_META_KEY, load_codes, score_codes
from connote.errors import UserError
from connote.evaluate.codes import (
    CodeColumn,
    code_pairs,
    codes_quality,
    label_scores,
    pair_from_index,
    pair_similarity,
)
from connote.metadata import import_metadata

FRAMES = Path("/work/shared/datasets/multiclimate_frames")


# ---------------------------------------------------------------------------------------------- pure parts
def test_label_scores_equal_scikit_learn():
    rng = np.random.default_rng(7)
    cases = [([0, 0, 1, 1], [1, 1, 0, 0]), ([0, 0, 0, 0], [0, 1, 2, 3]), ([0, 1, 2, 3], [5, 5, 5, 5])]
    cases += [([0, 0, 0], [1, 1, 1]), (["a", "b", "a", "c", "b"], [3, 3, 1, 1, 2])]
    for _ in range(100):
        n = int(rng.integers(2, 80))
        cases.append(
            (rng.integers(0, rng.integers(1, 6), n).tolist(), rng.integers(0, rng.integers(1, 8), n).tolist())
        )
    for codes, clusters in cases:
        s = label_scores(codes, clusters)
        assert s.n == len(codes)
        assert s.ari == pytest.approx(metrics.adjusted_rand_score(codes, clusters), abs=1e-12)
        assert s.nmi == pytest.approx(metrics.normalized_mutual_info_score(codes, clusters), abs=1e-12)
        assert s.homogeneity == pytest.approx(metrics.homogeneity_score(codes, clusters), abs=1e-12)
        assert s.completeness == pytest.approx(metrics.completeness_score(codes, clusters), abs=1e-12)
        if all(isinstance(x, int) for x in codes):  # integer arrays take the fast path: the same numbers
            assert label_scores(np.array(codes), np.array(clusters)) == s


def test_pairs_every_pair_or_a_fixed_seed_sample():
    for n in (2, 3, 17, 400):
        i, j = pair_from_index(n, np.arange(n * (n - 1) // 2))
        ti, tj = np.triu_indices(n, k=1)
        assert (i == ti).all() and (j == tj).all()
    every = code_pairs(30, all_up_to=40)
    assert not every.sampled and len(every.i) == 435 and "all 435 pairs of the 30" in every.describe()
    a = code_pairs(300, all_up_to=100, size=5000, seed=3)
    b = code_pairs(300, all_up_to=100, size=5000, seed=3)
    assert a.sampled and len(a.i) == 5000 and (a.i == b.i).all() and (a.j == b.j).all()
    assert len(set(zip(a.i.tolist(), a.j.tolist()))) == 5000 and (a.i < a.j).all() and (a.j < 300).all()
    assert "a sample of 5,000 of the 44,850 pairs" in a.describe() and "seed 3" in a.describe()
    assert not code_pairs(300, all_up_to=100, size=10**6).sampled  # fewer pairs than the sample: all


def test_quality_by_hand_with_a_multi_code_column():
    # images A B C D E: stance s s o o s; frames 'cause;impact' 'cause' 'impact' (none) 'cause'
    stance = CodeColumn(["s", "s", "o", "o", "s"])
    frames = CodeColumn(["cause;impact", "cause", "impact", None, " cause "])
    assert frames.multi and not stance.multi
    pairs = code_pairs(5)
    sim = pair_similarity([stance, frames], pairs.i, pairs.j)
    by_pair = dict(zip(zip(pairs.i.tolist(), pairs.j.tolist()), sim.tolist()))
    assert by_pair[(0, 1)] == pytest.approx(1.5)  # stance agrees, frames Jaccard 1/2: 2 * 1.5 / 2
    assert by_pair[(2, 3)] == pytest.approx(2.0)  # D has no frame: stance only
    assert by_pair[(0, 2)] == pytest.approx(0.5)  # stance 0, frames 1/2
    assert by_pair[(1, 4)] == pytest.approx(2.0)  # ' cause ' is 'cause'
    # clusters A B | C D, E an outlier: same-cluster 1.5, 2.0; different 0.5, 0, 0, 0
    q = codes_quality([0, 0, 1, 1, -1], sim, pairs, min_pairs=1)
    assert (q.n_same, q.n_different, q.n_excluded) == (2, 4, 4)
    assert q.mean_same == pytest.approx(1.75) and q.mean_different == pytest.approx(0.125)
    assert q.score == pytest.approx(1.625)
    assert np.isnan(codes_quality([0, 0, 1, 1, -1], sim, pairs).score)  # the study's 25 pairs a side
    # no column in common: the pair is left out
    none = pair_similarity([CodeColumn(["a", None]), CodeColumn([None, "b"])], np.array([0]), np.array([1]))
    assert np.isnan(none[0])


# ---------------------------------------------------------------------------------------------- a study
def make_coded_study(tmp_path: Path, source: str):
    """A study of 40 images (4 groups of 10: MultiClimate frames of 4 videos, or generated images) with a
    codes CSV imported as metadata, one image copied under a second name with other codes, one image left
    uncoded; returns (study, {path: group})."""
    images = tmp_path / "images"
    images.mkdir()
    rows = []
    if source == "multiclimate":
        if not (FRAMES / "labels.csv").is_file():
            pytest.skip(f"{FRAMES} is not here")
        with (FRAMES / "labels.csv").open(newline="", encoding="utf-8") as fh:
            table = list(csv.DictReader(fh))
        videos = sorted({r["video_id"] for r in table})[:4]
        for r in table:
            if r["video_id"] in videos:
                shutil.copy(FRAMES / r["filename"], images / Path(r["filename"]).name)
                rows.append(r)
        header = list(table[0])
    else:
        names = [p.name for p in make_noise_images(images, 40)]
        stances = ["support", "neutral", "oppose"]
        rows = [
            {"filename": f"images/{n}", "video_id": f"V{i // 10}", "frame_stance": stances[(i * 7) % 3]}
            for i, n in enumerate(names)
        ]
        header = list(rows[0])
    first = Path(rows[0]["filename"]).name
    shutil.copy(images / first, images / "copy-of-first.jpg")  # the same content under a second name
    rows.append({**rows[0], "filename": "images/copy-of-first.jpg", "frame_stance": "oppose"})
    rows[5] = {**rows[5], "frame_stance": "", "video_id": ""}  # an uncoded image
    with (tmp_path / "labels.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, header)
        w.writeheader()
        w.writerows(rows)
    study = steps.init(tmp_path / "study", images, progress=False)
    res = import_metadata(study, tmp_path / "labels.csv", image_column="filename")
    assert not res.problems and res.rows == len(rows)
    group = {Path(r["filename"]).name: i // 10 for i, r in enumerate(rows[:40])}
    return study, group


def add_runs(study, group: dict[str, int]) -> list[int]:
    """Three runs: by group with two outliers, a noisy one (seed 2), and one of a single image."""
    paths = [r["path"] for r in study.unique_images()]
    rng = np.random.default_rng(0)
    by_group = {p: (-1 if k < 2 else group[p]) for k, p in enumerate(paths)}
    noisy = {p: (int(rng.integers(0, 3)) if k % 9 else -1) for k, p in enumerate(paths)}
    return [
        add_run(study, by_group, seed=1),
        add_run(study, noisy, seed=2),
        add_run(study, {paths[0]: 0}, seed=3, reduce="umap:components=5,neighbors=15"),
    ]


def expected_from_export(csv_path: Path, columns: list[str]) -> dict:
    """What ``connote codes`` must say, computed here independently: scikit-learn on the exported rows
    (one per image file), the quality over every pair of coded files by plain loops."""
    with csv_path.open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["cluster"] != "" and any(r[c] for c in columns)]
    out = {"coded": len(rows), "outliers": sum(r["cluster"] == "-1" for r in rows), "columns": {}}
    kept = [r for r in rows if r["cluster"] != "-1"]
    for c in columns:
        sub = [r for r in kept if r[c]]
        truth, pred = [r[c] for r in sub], [r["cluster"] for r in sub]
        out["columns"][c] = {
            "ari": metrics.adjusted_rand_score(truth, pred),
            "nmi": metrics.normalized_mutual_info_score(truth, pred),
            "homogeneity": metrics.homogeneity_score(truth, pred),
            "completeness": metrics.completeness_score(truth, pred),
            "n": len(sub),
        }
    same, diff = [], []
    for a, b in itertools.combinations(kept, 2):
        both = [c for c in columns if a[c] and b[c]]
        if not both:
            continue
        sim = 2 * sum(a[c] == b[c] for c in both) / len(both)
        (same if a["cluster"] == b["cluster"] else diff).append(sim)
    ok = len(same) >= 25 and len(diff) >= 25
    out["quality"] = (sum(same) / len(same) - sum(diff) / len(diff)) if ok else None
    out["pairs"] = (len(same), len(diff))
    return out


@pytest.mark.parametrize("source", ["multiclimate", "synthetic"])
def test_codes_equal_scikit_learn_on_the_export(tmp_path, source):
    study, group = make_coded_study(tmp_path, source)
    run_ids = add_runs(study, group)
    study.close()
    s = tmp_path / "study"
    proc = run_cli("codes", s, "frame_stance", "video_id", "--json", check=True)
    got = json.loads(proc.stdout)
    assert [r["run"] for r in got["runs"]] == run_ids
    assert got["pairs"]["coded_images"] == 40 and not got["pairs"]["sampled"]  # 41 files, one uncoded
    for rid in run_ids:
        exported = tmp_path / f"run-{rid}.csv"
        run_cli("export", s, str(rid), "-o", exported, check=True)
        want = expected_from_export(exported, ["frame_stance", "video_id"])
        r = next(x for x in got["runs"] if x["run"] == rid)
        assert (r["coded"], r["outliers"]) == (want["coded"], want["outliers"])
        assert (r["pairs_same"], r["pairs_different"]) == want["pairs"]
        if want["quality"] is None:
            assert r["quality"] is None
        else:
            assert r["quality"] == pytest.approx(want["quality"], abs=1e-9)
        for c in ("frame_stance", "video_id"):
            for k, v in want["columns"][c].items():
                assert r["columns"][c][k] == pytest.approx(v, abs=1e-9), (rid, c, k)
    first = next(x for x in got["runs"] if x["run"] == run_ids[0])
    assert first["columns"]["video_id"]["ari"] == pytest.approx(1.0) and first["quality"] > 0.9
    assert got["runs"][2]["quality"] is None and any("fewer than 25" in n for n in got["notes"])
    # the text shows the same numbers
    text = run_cli("codes", s, "frame_stance", "video_id", "--runs", str(run_ids[0]), check=True)
    assert "ARI frame_stance" in text.stdout and f"{first['quality']:.3f}" in text.stdout
    assert f"{first['columns']['video_id']['nmi']:.3f}" in text.stdout
    assert "all 780 pairs of the 40 coded images" in text.stdout


def test_the_json_carries_everything_the_text_shows(tmp_path, capsys):
    study, group = make_coded_study(tmp_path, "synthetic")
    add_runs(study, group)
    (tmp_path / "frames.csv").write_text(
        "image,frames\n" + "".join(f"{n},a;b\n" if group[n] else f"{n},b\n" for n in group), encoding="utf-8"
    )
    import_metadata(study, tmp_path / "frames.csv")
    study.close()
    text, doc, code = both(capsys, "codes", tmp_path / "study", "video_id", "frame_stance", "frames")
    assert code == 0 and "several codes in a cell" in text and len(doc["runs"]) == 3
    assert_json_carries_text(text, doc)


def test_one_line_messages_and_notes(tmp_path):
    study, group = make_coded_study(tmp_path, "synthetic")
    add_runs(study, group)
    s = tmp_path / "study"
    for args, message in [
        (["nosuch"], "no metadata column 'nosuch' (columns: video_id, frame_stance)"),
        (["video_id", "video_id"], "named more than once"),
        (["video_id", "--runs", "99"], "99"),
    ]:
        proc = run_cli("codes", s, *args)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    # one code only
    (tmp_path / "one.csv").write_text(
        "image,topic\n" + "".join(f"{p},climate\n" for p in group), encoding="utf-8"
    )
    import_metadata(study, tmp_path / "one.csv")
    with pytest.raises(UserError, match="column 'topic' has one code only \\('climate' on 40 image"):
        score_codes(study, ["topic"])
    # a run that holds no coded image: a note, the others are scored
    coded = {f["path"] for f in load_codes(study, ["video_id"])[0]}
    other = [r["path"] for r in study.unique_images() if r["path"] not in coded]
    empty = add_run(study, {other[0]: 0}, seed=9)
    rep = score_codes(study, ["video_id"], runs=f"1,{empty}")
    assert [r.run_id for r in rep.runs] == [1, empty]
    assert f"run {empty}: none of the 40 coded image(s) is in this run" in rep.notes
    assert rep.runs[1].quality is None and rep.runs[1].columns == {}
    proc = run_cli("codes", s, "video_id", "--json")
    assert proc.returncode == 0 and any("none of the" in n for n in json.loads(proc.stdout)["notes"])


def test_a_multi_code_column_counts_by_jaccard_and_is_left_out_of_ari(tmp_path):
    study, group = make_coded_study(tmp_path, "synthetic")
    run_id = add_runs(study, group)[0]
    names = sorted(group)
    frames = {n: ("cause;impact" if group[n] % 2 else "impact") for n in names}
    (tmp_path / "frames.csv").write_text(
        "image,frames\n" + "".join(f"{n},{v}\n" for n, v in frames.items()), encoding="utf-8"
    )
    import_metadata(study, tmp_path / "frames.csv")
    rep = score_codes(study, ["frames", "video_id"], runs=[run_id])
    assert [c.multi for c in rep.columns] == [True, False]
    assert any("'frames' holds several codes in a cell" in n for n in rep.notes)
    assert set(rep.runs[0].columns) == {"video_id"}
    q = rep.runs[0].quality
    # same cluster = same video: both columns agree (2.0); different clusters: video never agrees, frames
    # agree fully (1) or by Jaccard 1/2 -> similarity 1.0 or 0.5
    assert q.mean_same == pytest.approx(2.0) and 0.5 < q.mean_different < 1.0


# ---------------------------------------------------------------------------------------------- report
def test_the_index_shows_the_codes_and_report_keeps_them_current(tmp_path):
    study, group = make_coded_study(tmp_path, "synthetic")
    run_ids = add_runs(study, group)
    study.close()
    s = tmp_path / "study"
    run_cli("codes", s, "video_id", "frame_stance", check=True)
    from connote.study import Study

    study = Study.open(s)
    assert json.loads(study.get_meta(CODES_META_KEY)) == ["video_id", "frame_stance"]
    # a run made after `codes` is scored by the next report
    paths = [r["path"] for r in study.unique_images()]
    late = add_run(study, {p: group.get(p, -1) for p in paths}, seed=4)
    study.close()
    run_cli("report", s, "--runs", "none", check=True)
    html = (s / "report" / "index.html").read_text(encoding="utf-8")
    assert "ARI video_id</th>" in html and "ARI frame_stance</th>" in html and "codes quality</th>" in html
    assert 'id="codes"' in html and "Agreement with the codes per setting over seeds" in html
    rep = score_codes(s, ["video_id", "frame_stance"], remember=False)
    late_row = next(r for r in rep.runs if r.run_id == late).to_dict()
    assert f'data-v="{late_row["columns"]["video_id"]["ari"]}"' in html
    assert f'data-v="{late_row["quality"]}"' in html
    assert len(run_ids) == 3

    with chromium_page() as (page, errors):
        page.goto((s / "report" / "index.html").as_uri())
        heads = page.locator("#run-table thead th")
        col = [heads.nth(k).inner_text() for k in range(heads.count())].index("ARI video_id")
        heads.nth(col).click()
        heads.nth(col).click()  # descending: the best agreement with the videos first
        first = page.locator("#run-table tbody tr").first.get_attribute("data-run")
        best = max(rep.runs, key=lambda r: r.columns["video_id"].ari if r.columns else -9)
        assert int(first) == best.run_id
        assert page.locator("#codes svg").count() == 1
        assert errors == []


def test_derived_runs_are_scored_with_the_others(tmp_path):
    from derived_fixtures import build

    from connote import derive

    d = build(tmp_path)  # clusters 0 and 1 about floods, 2 about fire, two outliers
    topic = {0: "flood", 1: "flood", 2: "fire", -1: "other"}
    (tmp_path / "codes.csv").write_text(
        "image,topic\n" + "".join(f"{p},{topic[c]}\n" for p, c in d.cluster_of.items()), encoding="utf-8"
    )
    import_metadata(d.study, tmp_path / "codes.csv")
    merged = derive.merge(d.study, d.run_id, {1: 0}).run_id
    rep = score_codes(d.study, ["topic"])
    assert [r.run_id for r in rep.runs] == [d.run_id, merged]
    parent, child = (r.columns["topic"] for r in rep.runs)
    assert child.ari == pytest.approx(1.0) and parent.ari < 1.0  # the merge joins the two flood clusters
    assert parent.homogeneity == pytest.approx(1.0) and child.completeness == pytest.approx(1.0)
    assert rep.runs[1].outliers == 2 and rep.runs[1].coded == len(d.paths)
