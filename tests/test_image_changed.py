"""An image replaced after `init` (issue 19: `cp imgs/A.jpg imgs/B.jpg`, then `describe`, stored A's
description under B's init-time hash). Every place that reads image bytes for a model or a coder checks
them against the hash the study recorded: the image is skipped with a message naming the file and saying
to rescan, and nothing made from the other content is stored under the old hash."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from conftest import fake_openai_env, make_image_study

from connote import images, steps
from connote.describers.base import ImageItem
from connote.describers.offline import OfflineDescriber
from connote.errors import DescribeError
from connote.executors.local import embed_batch
from connote.images import ImageChanged, load_image, sha256_file
from connote.reports.thumbnails import make_thumbnails
from connote.testing import FakeOpenAI

KEY = "sk-test-changed-1234"


@pytest.fixture
def replaced(tmp_path):
    """A study of 3 images whose second file was replaced by a copy of the first after init."""
    study = make_image_study(tmp_path, 3)
    files = sorted((tmp_path / "images").iterdir())
    old = {r["path"]: r["sha256"] for r in study.images()}
    shutil.copyfile(files[0], files[1])
    return study, files, old


def test_describe_skips_a_replaced_image_and_stores_nothing_from_it(replaced, monkeypatch):
    study, files, old = replaced
    fake_openai_env(monkeypatch, KEY)
    a, b = files[0].name, files[1].name
    with FakeOpenAI(api_key=KEY) as srv:
        s = steps.describe(study, "openai:gpt-4o-mini", base_url=srv.base_url, progress=False)
        sent = srv.image_counts()
    assert s.described == 2 and s.failed == 1, s.problems
    [(path, reason)] = s.problems
    assert path == b and "changed since it was scanned" in reason and "connote init" in reason
    assert sum(sent.values()) == 2  # nothing was sent for the replaced file
    texts = study.descriptions(s.set_id)
    assert old[b] not in texts and set(texts) == {old[a], old[files[2].name]}
    # after a rescan the file is known by its new content (the first image's), already described
    steps.init(study.path, files[0].parent, progress=False)
    assert {r["path"]: r["sha256"] for r in study.images()}[b] == old[a]
    with FakeOpenAI(api_key=KEY) as srv:
        s2 = steps.describe(study, "openai:gpt-4o-mini", base_url=srv.base_url, progress=False)
        assert not srv.chat_requests()
    assert s2.failed == 0 and s2.described == 0


def test_every_reader_checks_the_recorded_hash(replaced, tmp_path, monkeypatch):
    study, files, old = replaced
    b = files[1]
    stale = old[b.name]
    # the loader itself: the bytes read are the bytes checked
    with pytest.raises(ImageChanged, match="changed since it was scanned"):
        load_image(b, sha256=stale)
    assert load_image(b, sha256=sha256_file(b)).size == load_image(files[0]).size
    with (
        monkeypatch.context() as m
    ):  # a file too large to hold whole is hashed, then decoded, through one handle
        m.setattr(images, "CHECK_IN_MEMORY", 0)
        with pytest.raises(ImageChanged):
            load_image(b, sha256=stale)
        assert load_image(b, sha256=sha256_file(b)).size == load_image(files[0]).size
    # the offline describer: a per-image error, no models loaded for it
    [res] = OfflineDescriber().describe([ImageItem(stale, b, b.name)])
    assert isinstance(res, DescribeError) and res.permanent and "changed since it was scanned" in str(res)

    # an image embedder: the image is reported, the embedder never sees it
    class Never:
        def embed_images(self, images):
            raise AssertionError("a replaced image reached the embedder")

    keys, X, failed = embed_batch(Never(), "image", [(stale, str(b))])
    assert keys == [] and len(X) == 0 and failed[0][0] == stale and "changed" in failed[0][1]
    # thumbnails (report pages and coding sheets): no thumbnail of other content under the old hash
    good = old[files[2].name]
    thumbs = make_thumbnails(study, {stale: b, good: files[2]}, tmp_path / "thumbs", 64, progress=False)
    assert list(thumbs) == [good] and not (tmp_path / "thumbs" / f"{stale}.jpg").exists()
    assert np.asarray(load_image(tmp_path / "thumbs" / f"{good}.jpg")).size > 0
