"""Hostile import files for all three importers (import-descriptions, pairs import, sets import): huge
cells, binary junk, Latin-1, ids such as inf / 1e400 / 1.9, duplicate rows, a line with one bad
rating, files that store nothing. Each ends with rows stored and 'FILE:LINE: reason' for the rest, or
with one clear error naming the file; what is stored and what is said agree."""

from __future__ import annotations

import json
import os
import random

import pytest
from conftest import add_run, make_noise_images, run_cli

from connote import steps, tables
from connote.coding.pairs import import_ratings, sample_pairs
from connote.coding.sets import import_answers, sample_sets
from connote.errors import UserError

GOOD = "The image evokes calm and quiet reflection, suggesting a peaceful moment that is shared with others."
HUGE = "x" * (tables.MAX_CELL + 10)


@pytest.fixture
def study(tmp_path):
    make_noise_images(tmp_path / "images", 12)
    study = steps.init(tmp_path / "study", tmp_path / "images", progress=False)
    sample_pairs(study, 10, progress=False, thumb_size=16)
    paths = sorted(r["path"] for r in study.unique_images())
    run = add_run(study, {p: i % 3 for i, p in enumerate(paths)}, seed=1)
    study.set_keywords(run, {c: [(f"word{c}", 1.0)] for c in range(3)}, {})
    sample_sets(study, run, per_cluster=2, size=2, progress=False, thumb_size=16)
    return study


def ratings(study):
    return {
        (r["pos"], r["coder"], r["dimension"]): r["value"] for r in study.ratings(study.pair_sample()["id"])
    }


def where(problem: str) -> str:
    return problem.split(": ", 1)[0].rsplit(":", 1)[-1]


# ------------------------------------------------------------------------------------------ the reader
def test_reader_cells_encodings_and_numbers(tmp_path):
    f = tmp_path / "t.csv"
    f.write_bytes(
        b"Pair;Coder;Note\r\n1;ann;ok\r\n2;b\x00o;x\r\n3;cy;" + HUGE.encode() + b"\r\n4;d\x1b[31m;x\r\n"
        b'5;ed;"two\r\nlines"\r\n6;f\xe9e;caf\xe9\r\n7;gi;a;b\r\n'
    )
    t = tables.read_table_file(f)
    assert t.columns == ["pair", "coder", "note"] and t.encoding == "cp1252"
    assert [(r.line, r.values["pair"]) for r in t] == [(2, "1"), (6, "5"), (8, "6")]
    assert t.rows[1].where == f"{f}:6-7" and t.rows[1].values["note"] == "two\r\nlines"
    assert t.rows[2].values == {"pair": "6", "coder": "fée", "note": "café"}
    assert [where(p) for p in t.problems] == ["3", "4", "5", "9"]
    assert "NUL" in t.problems[0] and "over the limit" in t.problems[1] and "'\\x1b'" in t.problems[2]
    assert "4 cells for 3 columns" in t.problems[3]
    for raw, ok in [("3", 3), ("+3", 3), ("3.0", 3), (" 12 ", 12)]:
        assert tables_whole(raw) == ok
    for raw in ["1.9", "inf", "1e400", "nan", "-1", "0x3", "1e3", "", "٣", "3,0"]:
        with pytest.raises(ValueError, match="not a whole number"):
            tables_whole(raw)


def tables_whole(raw):
    from connote.coding.files import whole_number

    return whole_number(raw, "pair")


def test_reader_refuses_binary_and_empty_files(tmp_path):
    junk = tmp_path / "junk.csv"
    junk.write_bytes(random.Random(1).randbytes(5000))
    with pytest.raises(UserError, match="junk.csv:1: not a CSV header"):
        tables.read_table_file(junk)
    (tmp_path / "empty.csv").write_bytes(b"\n\n")
    with pytest.raises(UserError, match="empty"):
        tables.read_table_file(tmp_path / "empty.csv")
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(UserError, match="is a folder"):
        tables.read_table_file(tmp_path / "dir.csv")
    os.mkfifo(tmp_path / "pipe.csv")
    with pytest.raises(UserError, match="pipe.csv: not a regular file"):
        tables.read_table_file(tmp_path / "pipe.csv")  # returns at once: a FIFO is never opened


def test_jsonl_lines_numbers_and_utf16(tmp_path):
    f = tmp_path / "t.jsonl"
    lines = [
        json.dumps({"Image": "a.png", "text": "ok"}),
        "{broken",
        "[1, 2]",
        json.dumps({"image": 1.9, "text": "x"}),
        '{"image": 1e400, "text": "y"}',
        '{"image": "b", "text": "\\ud800"}',
        json.dumps({"image": "c", "text": HUGE}),
    ]
    f.write_text("\n".join(lines) + "\n")
    t = tables.read_table_file(f)
    assert [r.values["image"] for r in t] == ["a.png", "1.9", "inf"]
    assert [where(p) for p in t.problems] == ["2", "3", "6", "7"]
    assert "not a JSON line" in t.problems[0] and "not an object" in t.problems[1]
    assert "surrogate" in t.problems[2] and "over the limit" in t.problems[3]
    g = tmp_path / "u16.csv"
    g.write_bytes("image\ttext\r\nä.png\tüber\r\n".encode("utf-16"))
    t = tables.read_table_file(g)
    assert t.encoding == "utf-16" and t.rows[0].values == {"image": "ä.png", "text": "über"}


# ------------------------------------------------------------------------------------------ pairs import
def test_pairs_import_hostile_lines(study, tmp_path):
    f = tmp_path / "ann.csv"
    f.write_bytes(
        (
            "pair,coder,denotative,connotative\n"
            "1,ann,2,1\n"  # 2
            "inf,ann,1,1\n"  # 3
            "1e400,ann,1,1\n"  # 4
            "1.9,ann,1,1\n"  # 5
            "2,ann,1,7\n"  # 6: one bad rating: nothing of the line is stored
            f"3,ann,1,{'9' * 400}\n"  # 7
            "1,ann,0,1\n"  # 8: pair 1 again: overrides line 2
            "4,ann,1,nan\n"  # 9
        ).encode()
        + b"5,ann,\x00\x01\x02,1\n"  # 10: junk
        + b"6,ann,"
        + HUGE.encode()
        + b",1\n"  # 11: a huge cell
        + b"7,ann,2,2\n"  # 12
    )
    res = import_ratings(study, f)
    assert [where(p) for p in res.problems] == ["3", "4", "5", "6", "7", "9", "10", "11"]
    assert all(p.endswith("line skipped") for p in res.problems)
    assert "'inf' is not a whole number" in res.problems[0] and "'1.9'" in res.problems[2]
    assert "connotative: '7' is not a rating" in res.problems[3]
    assert len(res.notes) == 2 and all("overrides line 2" in n for n in res.notes)
    assert (
        res.notes[0].startswith(f"{f}:8: pair 1, coder 'ann', denotative again")
        and "(2 there, 0 here)" in res.notes[0]
    )
    got = ratings(study)
    assert got == {
        (1, "ann", "denotative"): 0,
        (1, "ann", "connotative"): 1,
        (7, "ann", "denotative"): 2,
        (7, "ann", "connotative"): 2,
    }
    assert res.count == len(got) == 4  # the count is what is stored


def test_pairs_import_latin1_and_nothing_stored(study, tmp_path):
    f = tmp_path / "zoé.csv"
    f.write_bytes("pair,coder,denotative\n1,Zoé,2\n".encode("latin-1"))
    assert import_ratings(study, f).names == ["Zoé"]
    before = ratings(study)
    bad = tmp_path / "bad.csv"
    bad.write_text("pair,coder,denotative\n1.5,ann,1\ninf,ann,2\n")
    with pytest.raises(
        UserError, match=r"bad.csv: nothing to import \(2 bad line\(s\): .*bad.csv:2: pair '1.5'"
    ):
        import_ratings(study, bad)
    assert ratings(study) == before
    assert not [p for p in (study.path / "validation" / "pairs" / "imported").iterdir() if "bad" in p.name]


# ------------------------------------------------------------------------------------------ sets import
def test_sets_import_hostile_lines(study, tmp_path):
    f = tmp_path / "eva.csv"
    f.write_text(
        "set,evaluator,description\n1,eva,A\n1e400,eva,A\n2.5,eva,B\n2,eva,B\n-3,eva,A\n1,eva,C\n2,eva,B\n"
    )
    res = import_answers(study, f)
    assert [where(p) for p in res.problems] == ["3", "4", "6"]
    assert [n.split(": ", 1)[0].rsplit(":", 1)[-1] for n in res.notes] == ["7", "8"]
    assert "overrides line 2 (A there, C here)" in res.notes[0] and "(the same value)" in res.notes[1]
    rows = study.set_answers(study.set_sample()["id"])
    assert [(r["pos"], r["code"]) for r in rows] == [(1, "C"), (2, "B")] and res.count == 2


# ------------------------------------------------------------------------------------------ descriptions
def test_import_descriptions_hostile_lines(study, tmp_path):
    imgs = sorted(r["path"] for r in study.images())
    f = tmp_path / "caps.csv"
    f.write_bytes(
        (f'image,text\n{imgs[0]},"{GOOD}"\n{imgs[1]},{HUGE}\n').encode()
        + f"{imgs[2]},Une image calme évoquant la réflexion paisible, partagée avec d'autres.\n".encode(
            "latin-1"
        )
        + f'{imgs[3]},"{GOOD}"\n{imgs[0]},"{GOOD} Again."\n'.encode()
    )
    r = steps.import_descriptions(study, f, check=False)
    problems = [(where(w), reason) for w, reason in r.problems]
    assert problems[0] == (
        "3",
        f"a cell of {len(HUGE):,} characters is over the limit of {tables.MAX_CELL:,}; line skipped",
    )
    assert problems[1][0] == "4" and "3 cells for 2 columns" in problems[1][1]  # unquoted comma
    assert problems[2][0] == "6" and "overrides line 2" in problems[2][1]
    texts = study.descriptions(r.set_id)
    assert len(texts) == 2 == r.imported and f"{GOOD} Again." in texts.values()


def test_import_descriptions_latin1_csv_and_jsonl(study, tmp_path):
    imgs = sorted(r["path"] for r in study.images())
    text = "Une scène calme évoquant la réflexion paisible et partagée avec d'autres personnes."
    f = tmp_path / "fr.csv"
    f.write_bytes(f"image,text\n{imgs[0]},{text}\n".encode("latin-1"))
    g = tmp_path / "fr2.jsonl"
    g.write_bytes((json.dumps({"image": imgs[1], "text": text}, ensure_ascii=False) + "\n").encode("latin-1"))
    for path in (f, g):
        r = steps.import_descriptions(study, path, check=False)
        assert list(study.descriptions(r.set_id).values()) == [text] and not r.problems


def test_import_descriptions_that_store_nothing_is_an_error_and_no_default(study, tmp_path):
    imgs = sorted(r["path"] for r in study.images())
    ok = tmp_path / "ok.csv"
    ok.write_text(f'image,text\n{imgs[0]},"{GOOD}"\n')
    steps.import_descriptions(study, ok, check=False)
    bad = tmp_path / "bad.csv"
    bad.write_text("image,text\nnope.png,hello\n,\nother.png,\n")
    proc = run_cli("import-descriptions", study.path, bad, timeout=120)
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()
    assert (
        len(err) == 1 and err[0].startswith(f"error: {bad}: nothing to import") and "bad.csv:2" in err[0]
    ), proc.stderr
    assert [s["name"] for s in study.description_sets()] == ["imported:ok"]
    # a set whose every text was flagged and left out exists (for review) but never becomes the default
    flagged = tmp_path / "flagged.csv"
    flagged.write_text(f"image,text\n{imgs[1]},\"I'm sorry, I can't help with that.\"\n")
    r = steps.import_descriptions(study, flagged, exclude_flagged=True)
    assert r.flagged == 1 and r.excluded == 1 and r.imported == 0
    assert study.resolve_description_set()["name"] == "imported:ok"


def test_pairs_import_cli_prints_overrides_and_escaped_names(study, tmp_path):
    f = tmp_path / "r.csv"
    f.write_text("pair,denotative\n1,2\n2,1\n1,0\n")
    evil = "\x1b[31mann\nFAKE"
    proc = run_cli("pairs", "import", study.path, f, "--coder", evil, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert (
        f"note: {f}:4: pair 1, coder '\\x1b[31mann\\nFAKE', denotative again: this line overrides line 2"
        in out
    )
    assert "2 rating(s) by \\x1b[31mann\\nFAKE into sample 'pairs'" in out and "\x1b" not in out
    status = run_cli("status", study.path, timeout=120).stdout
    assert "by 1 coder(s): \\x1b[31mann\\nFAKE" in status and "\x1b" not in status
    bad = tmp_path / "bad.csv"
    bad.write_text("pair,coder,denotative\n1.9,ann,1\n")
    proc = run_cli("pairs", "import", study.path, bad, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "nothing to import" in proc.stderr


@pytest.mark.parametrize("name", ["x" * 300, "has space", "a<b", "../up", ".hidden", "new\nline", "é"])
def test_sample_names_are_checked_before_anything_is_stored(study, name):
    before = [r["name"] for r in study.pair_samples()]
    folders = sorted(p.name for p in (study.path / "validation").iterdir())
    with pytest.raises(UserError, match="letters .* digits"):
        sample_pairs(study, 3, name=name, progress=False)
    assert [r["name"] for r in study.pair_samples()] == before
    assert sorted(p.name for p in (study.path / "validation").iterdir()) == folders


def test_sample_name_rule_accepts_what_it_says(study):
    assert (
        sample_pairs(study, 3, name="Round-2_final.v1", progress=False, thumb_size=16).name
        == "Round-2_final.v1"
    )
    assert sample_pairs(study, 3, name="x" * 64, progress=False, thumb_size=16).name == "x" * 64
