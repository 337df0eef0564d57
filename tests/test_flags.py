"""Flagged descriptions: listed with reason and text, accepted by a user, and counted when left out."""

from __future__ import annotations

import csv

import pytest

from connote import steps
from connote.errors import UserError
from connote.study import flags
from connote.testing import make_images

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


def test_accept_all(study):
    assert len(flags.accept(study, "caps")) == 2
    assert flags.left_out(study)["flagged"] == 0
    with pytest.raises(UserError, match="no description set named 'other'"):
        flags.accept(study, "other")
