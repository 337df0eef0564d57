"""RQ1 validation with rated pairs: drawing pairs, the coding sheet in a real Chromium, importing ratings
(with bad lines), and scoring runs; the numbers are checked by hand on small cases."""

from __future__ import annotations

import csv
import math
import sqlite3
from pathlib import Path

import pytest
from conftest import add_run, chromium_page, make_noise_images, run_cli

from connote import steps
from connote.coding.pairs import draw_pairs, import_ratings, sample_pairs, score_pairs
from connote.errors import UserError
from connote.evaluate import cluster_quality, krippendorff_alpha, rated_pair_scores
from connote.reports.svg import boxplot_svg, quartiles
from connote.study import Study

N_IMAGES = 24


def group_of(path: str) -> int:
    """The 'true' theme of a test image: its number mod 3."""
    return int(Path(path).stem.split("-")[1]) % 3


@pytest.fixture
def study(tmp_path) -> Study:
    make_noise_images(tmp_path / "images", N_IMAGES)
    return steps.init(tmp_path / "study", tmp_path / "images", progress=False)


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


# ---------------------------------------------------------------------------------------------- drawing
def test_draw_pairs_distinct_seeded_and_complete_when_asked_for_all():
    pairs = draw_pairs(30, 200, seed=1)
    keys = {tuple(sorted(p)) for p in pairs}
    assert len(keys) == 200 and all(a != b for a, b in pairs)
    assert pairs == draw_pairs(30, 200, seed=1)
    assert pairs != draw_pairs(30, 200, seed=2)
    assert {tuple(sorted(p)) for p in draw_pairs(6, 15, seed=0)} == {
        (a, b) for a in range(6) for b in range(a + 1, 6)
    }
    # left/right is random too, not always the lower index first
    assert any(a > b for a, b in pairs) and any(a < b for a, b in pairs)
    with pytest.raises(ValueError):
        draw_pairs(4, 7, seed=0)


def test_sample_pairs_stores_pairs_and_writes_sheet(study):
    res = sample_pairs(study, 40, seed=3, progress=False)
    assert (res.name, res.n_pairs, res.n_images) == ("pairs", 40, N_IMAGES)
    pairs = study.pairs(study.pair_sample("pairs")["id"])
    assert [p["pos"] for p in pairs] == list(range(1, 41))
    html = res.sheet.read_text()
    assert html.count('class="pair"') == 40 and "Download ratings" in html
    thumbs = list((res.sheet.parent / "thumbs").glob("*.jpg"))
    assert len(thumbs) == len({s for p in pairs for s in (p["sha_a"], p["sha_b"])})
    with res.template.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["pair"]) for r in rows] == list(range(1, 41)) and rows[0]["image_a"].endswith(".png")
    with pytest.raises(UserError, match="already a pair sample named 'pairs'"):
        sample_pairs(study, 5, progress=False)
    capped = sample_pairs(study, 10_000, name="all", progress=False)
    assert capped.n_pairs == N_IMAGES * (N_IMAGES - 1) // 2 and "only" in capped.notes[0]


# ---------------------------------------------------------------------------------------------- import
def test_import_reports_bad_lines_by_file_and_line_and_keeps_the_rest(study, tmp_path):
    sample_pairs(study, 10, progress=False)
    path = write_csv(
        tmp_path / "coder-a.csv",
        ["pair", "coder", "denotative", "connotative"],
        [
            [1, "ann", 2, 1],
            [2, "ann", "closely", "unrelated"],
            [3, "ann", 7, 1],  # denotative bad: the whole line is skipped
            [99, "ann", 1, 1],  # no such pair
            ["x", "ann", 1, 1],
            [4, "", 1, 1],  # no coder
            [5, "ann", "", 0],  # denotative not rated
            ["", "", "", ""],  # empty line
        ],
    )
    res = import_ratings(study, path)
    assert res.count == 5 and res.names == ["ann"]
    assert [p.split(": ", 1)[0] for p in res.problems] == [f"{path}:4", f"{path}:5", f"{path}:6", f"{path}:7"]
    assert "'7' is not a rating" in res.problems[0] and res.problems[0].endswith("line skipped")
    assert "no pair 99" in res.problems[1] and "no coder" in res.problems[3]
    got = {(r["pos"], r["dimension"]): r["value"] for r in study.ratings(study.pair_sample()["id"])}
    assert got == {
        (1, "denotative"): 2,
        (1, "connotative"): 1,
        (2, "denotative"): 2,
        (2, "connotative"): 0,
        (5, "connotative"): 0,
    }
    # the file is kept with the study, and every rating names it
    assert res.kept_copy.read_bytes() == path.read_bytes()
    # re-importing a corrected line updates that rating and leaves the others alone
    fix = write_csv(tmp_path / "fix.csv", ["pair", "denotative"], [[3, 0]])
    assert import_ratings(study, fix, coder="ann").count == 1
    got2 = {(r["pos"], r["dimension"]): r["value"] for r in study.ratings(study.pair_sample()["id"])}
    assert got2 == {**got, (3, "denotative"): 0}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("image,rating\n1,2\n", "no 'pair' column"),
        ("pair,coder\n1,ann\n", "no 'denotative' or 'connotative'"),
        ("pair,denotative\n1,2\n", "no 'coder' column"),
    ],
)
def test_import_refuses_files_it_cannot_read(study, tmp_path, content, message):
    sample_pairs(study, 5, progress=False)
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(UserError, match=message) as info:
        import_ratings(study, path)
    assert str(path) in str(info.value)


def test_semicolon_csv_with_bom_from_a_spreadsheet(study, tmp_path):
    sample_pairs(study, 5, progress=False)
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffPair;Coder;Denotative;Connotative\r\n1;bo;1;2\r\n".encode())
    res = import_ratings(study, path)
    assert res.count == 2 and res.names == ["bo"] and not res.problems


# ---------------------------------------------------------------------------------------------- scoring
def test_scores_match_the_metrics_computed_by_hand(study, tmp_path):
    sample_pairs(study, 150, seed=5, progress=False)
    sid = study.pair_sample()["id"]
    pairs = study.pairs(sid)
    path_of = {r["sha256"]: r["path"] for r in study.unique_images()}
    paths = sorted(path_of.values())
    truth = {p: group_of(p) for p in paths}
    # Run 1 follows the true themes; run 2 is arbitrary; run 3 puts two images out as outliers.
    good = add_run(study, truth, seed=42)
    bad = add_run(
        study, {p: i % 2 for i, p in enumerate(paths)}, seed=42, reduce="umap:components=5,neighbors=15"
    )
    with_outliers = add_run(study, {p: (-1 if i < 2 else truth[p]) for i, p in enumerate(paths)}, seed=48)

    # Two coders: 'closely related' for same-theme pairs, with one disagreement each on connotation.
    rows = {"ann": [], "bo": []}
    for p in pairs:
        same = truth[path_of[p["sha_a"]]] == truth[path_of[p["sha_b"]]]
        for coder in rows:
            conn = 2 if same else 0
            if (coder, p["pos"]) in {("ann", 1), ("bo", 2)}:
                conn = 1
            rows[coder].append([p["pos"], coder, 2 if same else 1, conn])
    for coder, r in rows.items():
        import_ratings(
            study, write_csv(tmp_path / f"{coder}.csv", ["pair", "coder", "denotative", "connotative"], r)
        )
    # A consensus round settles pair 1's connotation.
    import_ratings(study, write_csv(tmp_path / "c.csv", ["pair", "connotative"], [[1, 2]]), consensus=True)

    rep = score_pairs(study)
    by_run = {r.run_id: r for r in rep.runs}
    # by hand: the value of a pair is the consensus where there is one, else the coders' mean
    value = {}
    for p in pairs:
        same = truth[path_of[p["sha_a"]]] == truth[path_of[p["sha_b"]]]
        v = 2.0 if same else 0.0
        if p["pos"] == 1:
            v = 2.0  # the consensus
        elif p["pos"] == 2:
            v = (v + 1) / 2  # ann's own rating and bo's 1
        value[p["pos"]] = v
    for run_id in (good, bad, with_outliers):
        assign = study.assignments(run_id)
        expected = cluster_quality(
            [assign.get(p["sha_a"]) for p in pairs],
            [assign.get(p["sha_b"]) for p in pairs],
            [value[p["pos"]] for p in pairs],
        )
        assert by_run[run_id].quality["connotative"] == expected
        assert by_run[run_id].f1["connotative"] == rated_pair_scores(
            [assign.get(p["sha_a"]) for p in pairs],
            [assign.get(p["sha_b"]) for p in pairs],
            [value[p["pos"]] for p in pairs],
            threshold=1.5,
        )
    assert by_run[good].quality["connotative"].score > 1.5 > by_run[bad].quality["connotative"].score
    assert by_run[good].f1["denotative"].f1 == pytest.approx(1.0)
    assert by_run[good].f1["connotative"].f1 > 0.95 > by_run[bad].f1["connotative"].f1
    assert by_run[with_outliers].quality["denotative"].n_excluded > 0
    # agreement: alpha over the two coders' own ratings (not the consensus)
    conn = next(a for a in rep.agreement if a.dimension == "connotative")
    table = [[r[3] for r in rows["ann"]], [r[3] for r in rows["bo"]]]
    assert conn.alpha == pytest.approx(krippendorff_alpha(table, "ordinal"))
    assert conn.coders == 2 and conn.pairs == len(pairs)
    den = next(a for a in rep.agreement if a.dimension == "denotative")
    assert den.alpha == pytest.approx(1.0)
    # files: one row per run, and the box plots
    out = study.path / "validation" / "pairs"
    with (out / "scores.csv").open() as fh:
        assert [int(r["run"]) for r in csv.DictReader(fh)] == [good, bad, with_outliers]
    svg = (out / "quality.svg").read_text()
    assert svg.startswith("<svg") and "pca:components=5 mcs=5" in svg


def test_too_few_pairs_on_a_side_gives_no_score_and_says_why(study, tmp_path):
    sample_pairs(study, 20, progress=False)
    paths = sorted(r["path"] for r in study.unique_images())
    add_run(study, {p: group_of(p) for p in paths}, seed=1)
    pairs = study.pairs(study.pair_sample()["id"])
    import_ratings(
        study,
        write_csv(
            tmp_path / "a.csv", ["pair", "denotative", "connotative"], [[p["pos"], 1, 1] for p in pairs]
        ),
        coder="a",
    )
    rep = score_pairs(study)
    q = rep.runs[0].quality["connotative"]
    assert math.isnan(q.score) and q.n_same + q.n_different == 20
    assert rep.notes and "fewer than 25" in rep.notes[0]
    assert math.isnan(rep.agreement[0].alpha)  # one coder: no agreement to measure


def test_score_without_ratings_or_sample_says_what_to_do(study):
    with pytest.raises(UserError, match="no pair sample yet"):
        score_pairs(study)
    sample_pairs(study, 5, progress=False)
    with pytest.raises(UserError, match="coding.html"):
        score_pairs(study)
    with pytest.raises(UserError, match="run ids"):
        score_pairs(study, runs=["x"])


def test_old_study_is_migrated_with_its_data(tmp_path):
    from connote.study import DB_NAME
    from connote.study.schema import MIGRATIONS

    db = tmp_path / "old" / DB_NAME
    db.parent.mkdir()
    con = sqlite3.connect(db)
    con.executescript(MIGRATIONS[0] + "\nINSERT INTO meta VALUES ('schema_version', '1');")
    con.execute("INSERT INTO meta VALUES ('images_root', '/x')")
    con.commit()
    con.close()
    study = Study.open(db.parent)
    assert study.get_meta("images_root") == "/x"
    assert study.pair_samples() == []


# ---------------------------------------------------------------------------------------------- svg
def test_quartiles_and_boxplot():
    assert quartiles([1, 2, 3, 4, 5]) == (1, 2, 3, 4, 5)
    assert quartiles([1.0, 2.0]) == (1.0, 1.25, 1.5, 1.75, 2.0)
    svg = boxplot_svg([("q", {"a <b>": [0.1, 0.3, 0.2], "one": [0.5]})], title="T")
    assert "a &lt;b&gt;" in svg and "<circle" in svg and "<rect" in svg


# ---------------------------------------------------------------------------------------------- CLI + browser
def test_cli_and_coding_sheet_in_chromium(study, tmp_path):
    """The whole loop as a coder and a lead would do it: sample (CLI), rate in the real coding sheet
    (Chromium), reload the page (ratings kept), download, import (CLI), score (CLI)."""
    paths = sorted(r["path"] for r in study.unique_images())
    add_run(study, {p: group_of(p) for p in paths}, seed=42)
    proc = run_cli("pairs", "sample", study.path, "--n", "6", "--name", "rq1", "-q", check=True)
    assert "6 random pair(s)" in proc.stdout
    sheet = study.path / "validation" / "rq1" / "coding.html"

    with chromium_page(accept_downloads=True) as (page, errors):
        page.goto(sheet.as_uri())
        assert page.locator("img").first.evaluate("img => img.complete && img.naturalWidth > 0")
        page.fill("#coder", "cy")
        page.check("input[name=denotative-1][value='2']")
        page.check("input[name=connotative-1][value='1']")
        page.check("input[name=denotative-2][value='0']")
        assert page.inner_text("#progress") == "1 / 6 rated"
        page.reload()
        assert page.is_checked("input[name=connotative-1][value='1']")
        assert page.input_value("#coder") == "cy"
        page.check("input[name=connotative-2][value='0']")
        assert page.inner_text("#progress") == "2 / 6 rated"
        with page.expect_download() as info:
            page.click("#download")
        download = tmp_path / "download.csv"
        info.value.save_as(download)
    assert errors == []
    assert download.read_text().splitlines() == ["pair,coder,denotative,connotative", "1,cy,2,1", "2,cy,0,0"]

    proc = run_cli("pairs", "import", study.path, download, check=True)
    assert "4 rating(s) by cy" in proc.stdout
    proc = run_cli("status", study.path, check=True)
    assert "rated pairs 'rq1': 6 pairs, 4 rating(s) by 1 coder(s): cy" in proc.stdout
    proc = run_cli("pairs", "score", study.path, "--json", check=True)
    assert '"sample": "rq1"' in proc.stdout
    proc = run_cli("pairs", "score", study.path, check=True)
    assert "Krippendorff" in proc.stdout and "quality.svg" in proc.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("pair,coder,denotative\n1,cy,5\n")
    proc = run_cli("pairs", "import", study.path, bad)
    assert proc.returncode == 2 and f"{bad}:2" in proc.stderr and "nothing to import" in proc.stderr
