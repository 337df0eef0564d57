"""One result, two renderings: each command's ``--json`` carries every number its text shows.

The check is generic: every number printed in the text (on stdout or stderr) must be a value of the JSON
document (rounded as the text rounds it) or appear in one of its strings (paths, names)."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import add_run, make_noise_images

from connote import steps
from connote.cli import main

#: A number standing on its own (not part of a name such as gpt-4-turbo, llava-1.5 or F1).
NUMBER = re.compile(r"(?<![\w.\-/:@])-?\d+(?:\.\d+)?(?![\w\-/])")


def json_numbers(obj) -> list[float | str]:
    """Every number in a JSON document: its numeric values, the numbers written inside its strings, and the
    length of its lists (a text may count what the JSON lists)."""
    out: list = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += NUMBER.findall(str(k)) + json_numbers(v)
    elif isinstance(obj, list):
        out.append(float(len(obj)))
        for v in obj:
            out += json_numbers(v)
    elif isinstance(obj, bool) or obj is None:
        pass
    elif isinstance(obj, (int, float)):
        out.append(float(obj))
    elif isinstance(obj, str):
        out += NUMBER.findall(obj)
    return out


def shown_in(text_number: str, numbers: list) -> bool:
    decimals = len(text_number.partition(".")[2])
    want = float(text_number)
    for n in numbers:
        if isinstance(n, str):
            if n == text_number:
                return True
        elif round(n, decimals) == want or (decimals == 0 and n == want):
            return True
    return False


def both(capsys, *argv) -> tuple[str, object, int]:
    """(text on stdout and stderr, the parsed --json document, exit status): the same command twice."""
    code = main([*map(str, argv)])
    text = capsys.readouterr()
    json_code = main([*map(str, argv), "--json"])
    doc = capsys.readouterr()
    assert json_code == code, (code, json_code)
    return text.out + text.err, json.loads(doc.out), code


def assert_json_carries_text(text: str, doc) -> None:
    numbers = json_numbers(doc)
    missing = [n for n in NUMBER.findall(text) if not shown_in(n, numbers)]
    assert not missing, (
        f"numbers in the text but not in the JSON: {missing}\n{text}\n{json.dumps(doc)[:3000]}"
    )


@pytest.fixture
def study_copy(shared_study, tmp_path):
    dst = tmp_path / "study"
    shutil.copytree(shared_study.path, dst)
    return dst


def test_pipeline_commands(study_copy, shared_study, capsys):
    cases = [
        ("status", study_copy),
        ("runs", study_copy),
        ("explain", study_copy, "--top-k", "4"),
        ("cluster", study_copy, "--reduce", "pca:components=5", "--min-cluster-size", "3"),
        ("embed", study_copy, "-q"),
        ("describe", study_copy, "-q"),
        ("describe", study_copy, "--dry-run"),
        ("export", study_copy),
        ("init", study_copy, "--images", shared_study.images, "-q"),
    ]
    for argv in cases:
        text, doc, code = both(capsys, *argv)
        assert code == 0, argv
        assert_json_carries_text(text, doc)
    text, doc, _ = both(capsys, "status", study_copy)
    assert doc["images"] == {"usable": 12, "distinct": 12, "skipped": 0}
    assert doc["description_sets"][0]["ok"] == 12 and doc["calls"] == 12
    text, doc, _ = both(capsys, "explain", study_copy, "--top-k", "3")
    # terms in half the clusters' lists are named once, as common to the run, and left out of each list
    assert all(
        t not in [w["term"] for w in words] for t in doc["common_terms"] for words in doc["clusters"].values()
    )
    assert not doc["common_terms"] or ", ".join(doc["common_terms"]) in text
    text, doc, _ = both(capsys, "explain", study_copy, "--top-k", "3", "--keep-common")
    assert doc["common_terms"] == []
    doc = doc["clusters"]
    assert all(len(words) == 3 and {"term", "score"} <= set(words[0]) for words in doc.values())
    assert all(f"cluster {c}: " + ", ".join(w["term"] for w in words) in text for c, words in doc.items())


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_validation_scores_carry_everything_the_text_shows(tmp_path, capsys):
    """Before: pairs score --json had no Krippendorff's alpha, sets score --json no per-pair kappa,
    per-evaluator accuracy or ... ; now both carry every number of the text."""
    make_noise_images(tmp_path / "images", 18)
    study = steps.init(tmp_path / "study", tmp_path / "images", progress=False)
    paths = sorted(r["path"] for r in study.unique_images())
    run = add_run(study, {p: i % 3 for i, p in enumerate(paths)}, seed=42)
    add_run(study, {p: i % 2 for i, p in enumerate(paths)}, seed=43)
    study.set_keywords(run, {c: [(f"word{c}{k}", 1.0 - k / 10) for k in range(4)] for c in range(3)}, {})

    assert main(["pairs", "sample", str(study.path), "--n", "8", "-q", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_pairs"] == 8
    ratings = [
        write_csv(
            tmp_path / f"{coder}.csv",
            ["pair", "coder", "denotative", "connotative"],
            [[p, coder, (p + shift) % 3, (p * shift) % 3] for p in range(1, 9)],
        )
        for coder, shift in (("ann", 1), ("bo", 2))
    ]
    text, doc, code = both(capsys, "pairs", "import", study.path, *ratings)
    assert code == 0 and [d["count"] for d in doc] == [16, 16]
    text, doc, code = both(capsys, "pairs", "score", study.path)
    assert code == 0
    assert_json_carries_text(text, doc)
    assert {a["dimension"] for a in doc["agreement"]} == {"denotative", "connotative"}
    assert all("alpha" in a for a in doc["agreement"]) and len(doc["runs"]) == 2

    assert main(["sets", "sample", str(study.path), str(run), "--per-cluster", "2", "-q"]) == 0
    capsys.readouterr()
    answers = [
        write_csv(
            tmp_path / f"{e}-answers.csv",
            ["set", "evaluator", "description"],
            [[s, e, "ABC"[(s + k) % 3]] for s in range(1, 7)],
        )
        for e, k in (("cy", 0), ("dee", 0), ("eve", 1))
    ]
    text, doc, code = both(capsys, "sets", "import", study.path, *answers)
    assert code == 0
    text, doc, code = both(capsys, "sets", "score", study.path, "--merge", "2=1")
    assert code == 0
    assert_json_carries_text(text, doc)
    assert len(doc["pairwise_kappa"]) == 3 and set(doc["accuracy_by_evaluator"]) == {"cy", "dee", "eve"}
    assert doc["clusters"] and {"precision", "recall", "keywords"} <= set(doc["clusters"][0])
    assert doc["merged"] == {"2": 1}


def test_a_failing_import_says_so_in_both(tmp_path, capsys):
    make_noise_images(tmp_path / "images", 6)
    study = steps.init(tmp_path / "study", tmp_path / "images", progress=False)
    assert main(["pairs", "sample", str(study.path), "--n", "3", "-q"]) == 0
    capsys.readouterr()
    bad = write_csv(tmp_path / "bad.csv", ["pair", "coder", "denotative"], [[1, "cy", 5], [2, "cy", 1]])
    text, doc, code = both(capsys, "pairs", "import", study.path, bad)
    assert code == 1 and doc[0]["count"] == 1 and len(doc[0]["problems"]) == 1
    assert_json_carries_text(text, doc)


def test_init_without_images_fails_in_both(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    text, doc, code = both(capsys, "init", tmp_path / "study", "--images", tmp_path / "empty", "-q")
    assert code == 1 and doc["usable"] == 0 and "no usable images" in doc["error"]
    assert "error: no usable images" in text


def test_run_is_the_library_pipeline_in_both_renderings(shared_study, tmp_path, capsys):
    """`connote run` is connote.steps.run: every stage printed as it ends, all of it in the JSON."""
    out = tmp_path / "whole"
    argv = ("run", shared_study.images, "-o", out, "--reduce", "pca:components=5", "--min-cluster-size", "3")
    text, doc, code = both(capsys, *argv, "--min-samples", "2", "--top-k", "4", "-q")
    assert code == 0
    assert_json_carries_text(text, doc)
    assert set(doc) >= {"init", "describe", "embed", "cluster", "explain", "report"}
    assert doc["init"]["usable"] == 12 and doc["cluster"]["run_id"] >= 1
    # the README says: then open STUDY_DIR/report/index.html; `run` names it
    assert doc["study_index"] == str(out / "report" / "index.html") and Path(doc["study_index"]).is_file()
    assert f"Study index: {out / 'report' / 'index.html'}" in text
    assert all(len(words) <= 4 for words in doc["explain"].values())
    from connote.study import Study

    run = Study.open(out).get_run(doc["cluster"]["run_id"])
    assert run["min_samples"] == 2  # every option reaches steps.run
