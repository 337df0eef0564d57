"""import-descriptions: captions made elsewhere (CSV or JSONL, columns image,text) become a description set."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from connote import cli, steps
from connote.errors import UserError
from connote.testing import make_images

GOOD = "The image evokes calm and quiet reflection, suggesting a peaceful moment that is shared with others."


@pytest.fixture
def study(tmp_path):
    make_images(tmp_path / "images" / "a", 3)
    make_images(tmp_path / "images" / "b", 1, size=(30, 30))
    return steps.init(tmp_path / "study", tmp_path / "images", progress=False)


def test_csv_import_by_path_name_and_sha(study, tmp_path):
    imgs = {r["path"]: r["sha256"] for r in study.images()}
    f = tmp_path / "captions.csv"
    with open(f, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "text"])
        w.writerow(["a/img_000.png", GOOD])
        w.writerow([imgs["a/img_001.png"], GOOD.replace("calm", "joy")])
        w.writerow(["img_002.png", "I'm sorry, I can't describe this image."])
        w.writerow(["missing.png", GOOD])
        w.writerow(["img_000.png", GOOD])  # ambiguous: a/img_000.png and b/img_000.png
    r = steps.import_descriptions(study, f)
    # Stored as given: no output checks unless asked.
    assert r.set_name == "imported:captions" and r.imported == 3 and r.flagged == 0 and r.missing == 1
    reasons = dict(r.problems)
    assert any("not an image" in v for v in reasons.values()) and any(
        "ambiguous" in v for v in reasons.values()
    )
    ds = study.resolve_description_set()  # the latest set: embed/cluster use it by default
    assert ds["name"] == "imported:captions" and ds["describer"] == "import"
    texts = study.descriptions(ds["id"])
    assert texts[imgs["a/img_000.png"]] == GOOD and len(texts) == 3


@pytest.mark.parametrize("exclude", [False, True])
def test_checks_flag_only_when_asked_and_exclude_only_when_told(study, tmp_path, exclude):
    imgs = {r["path"]: r["sha256"] for r in study.images()}
    f = tmp_path / "caps.csv"
    refusal = "I'm sorry, but I can't describe this image."
    meme = "The meme reads: HUMANS: DESTROY CLIMATE / Climate: destroy humans. Humans destroy environment"
    with open(f, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "text"])
        w.writerow(["a/img_000.png", GOOD])
        w.writerow(["a/img_001.png", refusal])
        w.writerow(["a/img_002.png", meme])
        w.writerow(["b/img_000.png", "Anger."])
    r = steps.import_descriptions(study, f, check=not exclude, exclude_flagged=exclude)
    assert r.flagged == 1 and r.excluded == (1 if exclude else 0) and r.imported == (3 if exclude else 4)
    assert any("refusal" in why and ("left out" if exclude else "kept") in why for _, why in r.problems)
    rows = {row["sha256"]: row for row in study.description_rows(r.set_id)}
    flagged = rows[imgs["a/img_001.png"]]
    assert flagged["reason"] == "refusal" and flagged["text"] == refusal
    assert flagged["status"] == ("flagged" if exclude else "ok")
    used = study.descriptions(r.set_id)
    assert (imgs["a/img_001.png"] in used) is not exclude
    assert used[imgs["a/img_002.png"]] == meme and used[imgs["b/img_000.png"]] == "Anger."  # not flagged


SHARED = Path(os.environ.get("CONNOTE_SHARED") or Path(__file__).resolve().parents[2] / "shared")
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.skipif(not (SHARED / "datasets").is_dir(), reason="../shared/datasets is not here")
def test_bundled_examples_transcripts_are_not_flagged(tmp_path):
    """Issue 13: the 60 bundled MultiClimate frames with their transcripts, imported with --check."""
    with open(SHARED / "datasets/multiclimate_frames/labels.csv", encoding="utf-8", newline="") as fh:
        transcripts = {Path(r["filename"]).name: r["transcript"] for r in csv.DictReader(fh)}
    names = sorted(p.name for p in (EXAMPLES / "images").glob("*.jpg"))
    f = tmp_path / "transcripts.csv"
    with open(f, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "text"])
        w.writerows([n, transcripts[n]] for n in names if transcripts.get(n, "").strip())
    study = steps.init(tmp_path / "study", EXAMPLES / "images", progress=False)
    r = steps.import_descriptions(study, f, check=True)
    assert r.imported >= 50 and r.flagged == 0, r.problems


def test_jsonl_import_via_cli(study, tmp_path, capsys):
    f = tmp_path / "caps.jsonl"
    f.write_text("\n".join(json.dumps({"image": r["path"], "text": GOOD}) for r in study.images()) + "\n")
    assert cli.main(["import-descriptions", str(study.path), str(f), "--name", "blip2"]) == 0
    assert "Imported 4 description(s) into set 'blip2'" in capsys.readouterr().out
    assert len(study.descriptions(study.resolve_description_set("blip2")["id"])) == 4
    # Re-importing replaces, it does not duplicate.
    assert cli.main(["import-descriptions", str(study.path), str(f), "--name", "blip2"]) == 0


def test_bad_files(study, tmp_path):
    f = tmp_path / "x.csv"
    f.write_text("name,caption\nimg_000.png,hello\n")
    with pytest.raises(UserError, match="image and text"):
        steps.import_descriptions(study, f)
    g = tmp_path / "x.jsonl"
    g.write_text("{not json}\n")
    with pytest.raises(UserError, match="not a JSON line"):
        steps.import_descriptions(study, g)
    with pytest.raises(UserError, match="not found"):
        steps.import_descriptions(study, tmp_path / "nope.csv")


def test_too_few_descriptions_to_cluster_names_the_set_and_the_way_out(study, tmp_path):
    """Captions for two images, imported under a name, become the latest set: clustering it says which set
    it used and how to choose another, instead of only 'too few items'."""
    paths = [r["path"] for r in study.images()][:2]
    f = tmp_path / "two.csv"
    with open(f, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("image", "text"), *((p, GOOD) for p in paths)])
    steps.import_descriptions(study, f, name="captions")
    steps.embed(study, progress=False)
    with pytest.raises(
        UserError, match=r"only 2 text item\(s\) to cluster in description set 'captions'.*--descriptions"
    ):
        steps.cluster(study, reduce="pca:components=2")
