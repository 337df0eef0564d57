"""Flagged descriptions: listed with reason and text, accepted by a user, and counted when left out."""

from __future__ import annotations

import csv
import json

import pytest

from connote import cli, steps
from connote.errors import UserError
from connote.study import flags
from connote.testing import FakeOpenAI, make_images
from connote.testing.fake_openai import REFUSAL as REFUSAL_FAKE

GOOD = "The image evokes calm and quiet reflection, suggesting a peaceful moment that is shared with others."
REFUSAL = "I'm sorry, but I can't describe this image."
LOOP = "It feels like " * 12


@pytest.fixture
def study(tmp_path):
    make_images(tmp_path / "images" / "a", 4)
    make_images(tmp_path / "images" / "b", 1, size=(30, 30))
    s = steps.init(tmp_path / "study", tmp_path / "images", progress=False)
    f = tmp_path / "caps.csv"
    with open(f, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "text"])
        w.writerows([["a/img_000.png", GOOD], ["a/img_001.png", REFUSAL], ["a/img_002.png", LOOP]])
        w.writerow(["b/img_000.png", GOOD])
    steps.import_descriptions(s, f, name="caps", exclude_flagged=True)
    return s


def test_flagged_listed_with_reason_and_text(study):
    got = flags.flagged(study)
    assert [(f.path, f.reason.split(" (")[0], f.used) for f in got] == [
        ("a/img_001.png", "refusal", False),
        ("a/img_002.png", "repetitive", False),
    ]
    assert got[0].text == REFUSAL and got[0].set_name == "caps" and len(got[0].sha256) == 64
    assert got[0].as_dict()["reason"] == "refusal"
    # One image not described, two flagged: three left out of any run on this set.
    assert flags.left_out(study, "caps") == {"flagged": 2, "failed": 0, "not described": 1, "total": 3}


def test_accept_by_path_name_or_sha_prefix(study):
    sha = {r["path"]: r["sha256"] for r in study.images()}
    with pytest.raises(UserError, match="not an image of the study.*nope.png"):
        flags.accept(study, "caps", ["nope.png"])
    with pytest.raises(UserError, match="not an image of the study.*img_000.png"):  # two files of that name
        flags.accept(study, "caps", ["img_000.png"])
    with pytest.raises(UserError, match="no flagged description.*a/img_000.png"):
        flags.accept(study, "caps", ["a/img_000.png"])
    assert study.descriptions(study.resolve_description_set("caps")["id"]).get(sha["a/img_001.png"]) is None

    done = flags.accept(study, "caps", [sha["a/img_001.png"][:8]])
    assert [f.path for f in done] == ["a/img_001.png"] and done[0].used
    used = study.descriptions(study.resolve_description_set("caps")["id"])
    assert used[sha["a/img_001.png"]] == REFUSAL  # now embedded and clustered like the others
    # The flag stays visible (the reason is kept), marked as in use.
    listed = {f.path: f for f in flags.flagged(study, "caps")}
    assert listed["a/img_001.png"].used and listed["a/img_001.png"].reason == "refusal"
    assert [f.path for f in flags.flagged(study, "caps", include_used=False)] == ["a/img_002.png"]

    assert [f.path for f in flags.accept(study, "caps", ["img_002.png"])] == ["a/img_002.png"]
    assert flags.left_out(study, "caps")["total"] == 1
    assert flags.accept(study, "caps") == []  # nothing left to accept


def test_accept_all(study, tmp_path):
    with pytest.raises(UserError, match="no description set named 'other'"):
        flags.accept(study, "other")
    f = tmp_path / "more.csv"
    f.write_text("image,text\na/img_003.png,\"I'm sorry, I can't help with that.\"\n")
    steps.import_descriptions(study, f, name="more", exclude_flagged=True)
    with pytest.raises(UserError, match="flagged descriptions in sets 'caps', 'more': choose one"):
        flags.accept(study)  # which set? the user says
    assert len(flags.accept(study, "caps")) == 2
    assert flags.left_out(study, "caps")["flagged"] == 0
    assert [f.path for f in flags.accept(study)] == ["a/img_003.png"]  # the only set left with any
    assert flags.accept(study) == []
    with pytest.raises(UserError, match="no flagged descriptions are left out"):
        flags.accept(study, refs=["a/img_003.png"])


def test_cli_import_check_status_and_accept(study, tmp_path, capsys):
    path = str(study.path)
    f = tmp_path / "again.csv"
    f.write_text(f'image,text\na/img_000.png,"{GOOD}"\na/img_001.png,"{REFUSAL}"\n')
    assert cli.main(["import-descriptions", path, str(f), "--name", "plain"]) == 0
    assert "Imported 2 description(s) into set 'plain';" in capsys.readouterr().out  # stored as given
    assert cli.main(["import-descriptions", path, str(f), "--name", "checked", "--check", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["imported"] == 2 and r["flagged"] == 1 and r["excluded"] == 0
    assert any("flagged (kept): refusal" in why for _, why in r["problems"])

    assert cli.main(["status", path]) == 0
    out = capsys.readouterr().out
    assert "flagged in 'caps': 2 left out of every run, 0 in use" in out
    assert "a/img_001.png (left out): refusal" in out and REFUSAL in out and LOOP.strip() in out
    assert "flagged in 'checked': 0 left out of every run, 1 in use" in out
    assert "--accept IMAGE" in out

    assert cli.main(["describe", path, "--name", "caps", "--accept", "a/img_002.png", "-q"]) == 0
    out = capsys.readouterr().out
    assert "Accepted 1 flagged description(s) of set 'caps'" in out and "a/img_002.png: repetitive" in out
    assert cli.main(["describe", path, "--name", "caps", "--accept", "a/img_002.png"]) != 0
    assert "error: no flagged description in set 'caps' for: a/img_002.png" in capsys.readouterr().err
    assert cli.main(["describe", path, "--accept-flagged", "--dry-run"]) != 0
    assert "--accept describes nothing: give it without --dry-run" in capsys.readouterr().err
    assert cli.main(["describe", path, "--accept-flagged"]) == 0  # the one set with any left out
    assert "a/img_001.png: refusal" in capsys.readouterr().out
    assert flags.left_out(study, "caps") == {"flagged": 0, "failed": 0, "not described": 1, "total": 1}
    assert cli.main(["status", path]) == 0
    assert "flagged in 'caps': 0 left out of every run, 2 in use" in capsys.readouterr().out


def test_describer_flags_listed_and_accepted(tmp_path, capsys, monkeypatch):
    """A vision LLM's refusal (asked twice) is kept apart, listed by status, and kept by --accept."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    make_images(tmp_path / "images", 2)
    study = steps.init(tmp_path / "study", tmp_path / "images", progress=False)
    first = study.unique_images()[0]
    with FakeOpenAI() as srv:
        srv.push("refusal", "refusal")
        rc = cli.main(
            ["describe", str(study.path), "--describer", "openai:gpt-4o-mini", "--base-url", srv.base_url]
            + ["--concurrency", "1", "-q"]
        )
    assert rc == 0
    assert cli.main(["status", str(study.path)]) == 0
    out = capsys.readouterr().out
    assert f"{first['path']} (left out): refusal" in out and REFUSAL_FAKE in out
    assert cli.main(["describe", str(study.path), "--accept", first["sha256"][:10]]) == 0
    ds = study.resolve_description_set()
    assert study.descriptions(ds["id"])[first["sha256"]] == REFUSAL_FAKE


def test_report_lists_the_run_sets_flagged_descriptions(shared_study, tmp_path):
    import shutil

    from connote.study import Study

    shutil.copytree(shared_study.path, tmp_path / "study")
    study = Study.open(tmp_path / "study")
    run = study.get_run(shared_study.run_id)
    ds = study.resolve_description_set(run["description_set"])
    first = study.unique_images()[0]
    evil = "I'm sorry, I can't <script>alert(1)</script> describe this."
    study.put_description(ds["id"], first["sha256"], evil, "flagged", "refusal", None, 1)
    study.con.commit()
    page = steps.report(study, shared_study.run_id, progress=False)
    html = page.read_text(encoding="utf-8")
    assert 'id="flagged"' in html and "1 flagged description (1 left out of runs)" in html
    assert first["path"] in html and "refusal" in html and "left out" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html
    assert "--accept IMAGE" in html


def test_a_run_records_the_images_it_left_out(tmp_path, capsys):
    make_images(tmp_path / "images", 7)
    study = steps.init(tmp_path / "study", tmp_path / "images", progress=False)
    paths = [r["path"] for r in study.unique_images()]
    moods = ["calm", "joy", "anger", "fear", "hope"]
    f = tmp_path / "caps.csv"
    with open(f, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "text"])
        w.writerows([p, GOOD.replace("calm", m)] for p, m in zip(paths, moods, strict=False))
        w.writerow([paths[5], REFUSAL])  # flagged and left out; paths[6]: no description at all
    steps.import_descriptions(study, f, name="caps", exclude_flagged=True)
    steps.embed(study, "minilm", progress=False)
    path = str(study.path)
    assert cli.main(["cluster", path, "--reduce", "pca:components=2", "--min-cluster-size", "2", "-q"]) == 0
    run_id = int(capsys.readouterr().out.strip().splitlines()[-1])
    record = json.loads(study.get_run(run_id)["params"])
    assert record["left_out"] == {"flagged": 1, "failed": 0, "not described": 1, "total": 2}
    assert study.get_run(run_id)["n_items"] == 5
    listed = {r["id"]: r for r in steps.runs(study)}
    assert listed[run_id]["left_out"]["total"] == 2  # and in `connote runs --json`
    # The same command again reuses the run, and says again what it left out.
    assert cli.main(["cluster", path, "--reduce", "pca:components=2", "--min-cluster-size", "2", "-q"]) == 0
    out = capsys.readouterr()
    assert int(out.out.strip()) == run_id
    assert "2 image(s) left out of this run (1 flagged, 1 not described)" in out.err
