"""import-descriptions: captions made elsewhere (CSV or JSONL, columns image,text) become a description set."""

from __future__ import annotations

import csv
import json

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
    assert r.set_name == "imported:captions" and r.imported == 2 and r.flagged == 1 and r.missing == 1
    reasons = dict(r.problems)
    assert any("not an image" in v for v in reasons.values()) and any(
        "ambiguous" in v for v in reasons.values()
    )
    ds = study.resolve_description_set()  # the latest set: embed/cluster use it by default
    assert ds["name"] == "imported:captions" and ds["describer"] == "import"
    texts = study.descriptions(ds["id"])
    assert texts[imgs["a/img_000.png"]] == GOOD and len(texts) == 2


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
