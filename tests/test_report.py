"""The static HTML report: content, escaping, thumbnails, and one real Chromium check."""

from __future__ import annotations

import hashlib
import html
import io
import json
import os
import re
import shutil
import sys
import types
from pathlib import Path

import pytest
from conftest import chromium_page
from PIL import Image, ImageDraw, ImageOps

from connote.reports import make_thumbnails, render_report
from connote.study import Study

EVIL = 'A red square <script>alert("x")</script> & "quotes"'


@pytest.fixture(autouse=True)
def image_loader(monkeypatch):
    """Use connote.images when it exists; until then a stand-in with the same contract."""
    try:
        import connote.images  # noqa: F401
    except ImportError:
        mod = types.ModuleType("connote.images")

        class ImageError(Exception):
            pass

        def load_image(path):
            try:
                with Image.open(path) as im:
                    return ImageOps.exif_transpose(im).convert("RGB")
            except Exception as exc:
                raise ImageError(f"{path}: {exc}") from exc

        mod.ImageError = ImageError
        mod.load_image = load_image
        monkeypatch.setitem(sys.modules, "connote.images", mod)


def png(color, size=(64, 48), mark=None) -> bytes:
    im = Image.new("RGB", size, color)
    if mark:
        ImageDraw.Draw(im).rectangle([4, 4, 20, 20], fill=mark)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


# path -> content; "sub/red copy.png" duplicates "red.png"; "broken.png" is not an image at all.
FILES = {
    "red.png": png("red"),
    "sub/red copy.png": png("red"),
    "crimson.png": png("red", mark="black"),
    "green.png": png("green", size=(40, 80)),
    "café #1 ünïcode.png": png("green", mark="white"),
    "blue.png": png("blue", size=(300, 200)),
    "broken.png": b"\x89PNG\r\n\x1a\n this is not really a png",
}
CLUSTER = {
    "red.png": 0,
    "crimson.png": 0,
    "broken.png": 0,
    "green.png": 1,
    "café #1 ünïcode.png": 1,
    "blue.png": -1,
}
TEXT = {
    "red.png": EVIL,
    "crimson.png": "A crimson square with a small black mark.",
    "green.png": "A tall green rectangle.",
    "café #1 ünïcode.png": "A green square with a white mark, named in Unicode.",
    "blue.png": "A wide blue rectangle, unlike the others.",
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_study(tmp_path: Path, *, features: str = "text", keywords: bool = True) -> tuple[Study, int]:
    root = tmp_path / "images"
    for rel, data in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    study = Study.create(tmp_path / "study", root)
    study.upsert_images(
        {
            "path": rel,
            "sha256": sha(data),
            "status": "ok",
            "reason": None,
            "width": 64,
            "height": 48,
            "format": "PNG",
            "bytes": len(data),
        }
        for rel, data in FILES.items()
    )
    set_name = None
    if features == "text":
        set_name = "offline-v1"
        set_id = study.description_set(set_name, "offline", "tiny-captioner", "Describe <this> image.", {})
        for rel, text in TEXT.items():
            study.put_description(set_id, sha(FILES[rel]), text)
    labels = {sha(FILES[rel]): c for rel, c in CLUSTER.items()}
    record = {
        "key": f"run-{features}-{keywords}",
        "features": features,
        "description_set": set_name,
        "embedder": "text:minilm" if features == "text" else "image:effnet",
        "reduce": "umap:5",
        "min_cluster_size": 2,
        "min_samples": None,
        "seed": 7,
        "n_items": len(labels),
        "n_clusters": 2,
        "n_outliers": 1,
        "params": json.dumps({"reducer": {"n_components": 5}, "note": "<b>not bold</b>"}),
    }
    run_id = study.add_run(record, labels=labels, probabilities=None)
    if keywords:
        study.set_keywords(
            run_id, {0: [("red", 0.9), ("square", 0.5)], 1: [("green", 0.8), ("<mark>", 0.1)]}, {}
        )
    return study, run_id


def sections(page: str) -> list[str]:
    return re.findall(r'<section class="card cluster[^"]*" id="([^"]+)"', page)


def test_report_content(tmp_path):
    study, run_id = make_study(tmp_path)
    out = render_report(study, progress=False)
    assert out == study.path / "report" / "index.html"
    page = out.read_text(encoding="utf-8")

    # Overview: run, counts, parameters, description set, chart bars linking to every section.
    assert f"Run {run_id}: 2 clusters of 6 images" in page
    for value in ("text:minilm", "umap:5", "offline-v1", "tiny-captioner", "min_cluster_size", ">7<"):
        assert value in page
    assert "16.7%" in page  # one outlier of six
    assert "(7 files)" in page  # the duplicate counts as a file, not an image
    assert "Describe &lt;this&gt; image." in page
    assert page.count('href="#cluster-0"') >= 2 and page.count('href="#outliers"') >= 2

    # Clusters largest first, outliers last; keywords shown and escaped.
    assert sections(page) == ["cluster-0", "cluster-1", "outliers"]
    assert "<h2>Outliers</h2>" in page
    assert "<li>red</li><li>square</li>" in page
    assert "<li>&lt;mark&gt;</li>" in page
    assert "connote explain" not in page

    # Escaping: the description and the run record never become markup.
    assert "<script>alert" not in page and "<b>not bold</b>" not in page
    assert html.escape(EVIL, quote=False).replace('"', "&#34;") in page

    # Thumbnails: one per readable content, relative links; the broken file shows "no preview".
    thumbs = study.path / "report" / "thumbs"
    made = {p.stem for p in thumbs.glob("*.jpg")}
    expected = {sha(d) for rel, d in FILES.items() if rel != "broken.png"}
    assert made == expected
    for s in expected:
        assert f'src="thumbs/{s}.jpg"' in page
        with Image.open(thumbs / f"{s}.jpg") as im:
            assert im.format == "JPEG" and max(im.size) <= 256
    assert "no preview" in page
    with Image.open(thumbs / f"{sha(FILES['blue.png'])}.jpg") as im:
        assert im.size == (256, 171)  # 300x200 scaled down, aspect kept

    # Both paths of the duplicate, and a percent-encoded link for the Unicode name.
    assert "sub/red copy.png" in page and "(+1 copy)" in page
    assert "caf%C3%A9%20%231%20%C3%BCn%C3%AFcode.png" in page
    assert "café #1 ünïcode.png" in page

    # Self-contained: nothing fetched from the network, no temp files left behind.
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert not [p for p in (study.path / "report").rglob("*") if p.name.endswith(".tmp")]


def test_without_keywords_says_how_to_get_them(tmp_path):
    study, run_id = make_study(tmp_path, keywords=False)
    page = render_report(study, run_id, progress=False).read_text(encoding="utf-8")
    assert f"connote explain {study.path} {run_id}" in page
    assert sections(page) == ["cluster-0", "cluster-1", "outliers"]


def test_image_feature_run_without_descriptions(tmp_path):
    study, run_id = make_study(tmp_path, features="image")
    page = render_report(study, str(run_id), progress=False).read_text(encoding="utf-8")
    assert "image:effnet" in page
    assert "used no descriptions" in page
    assert "No description for this image" not in page
    assert sections(page) == ["cluster-0", "cluster-1", "outliers"]


def test_latest_run_is_the_default(tmp_path):
    study, first = make_study(tmp_path)
    labels = {sha(FILES[rel]): 0 for rel in CLUSTER}
    second = study.add_run(
        {
            "key": "second",
            "features": "text",
            "description_set": "offline-v1",
            "embedder": "text:other",
            "reduce": "pca:10",
            "min_cluster_size": 5,
            "min_samples": 3,
            "seed": 1,
            "n_items": 6,
            "n_clusters": 1,
            "n_outliers": 0,
            "params": "{}",
        },
        labels=labels,
        probabilities={k: 0.5 for k in labels},
    )
    page = render_report(study, progress=False).read_text(encoding="utf-8")
    assert f"Run {second}: 1 cluster of 6 images" in page and "pca:10" in page
    assert sections(page) == ["cluster-0"]
    page = render_report(study, first, progress=False).read_text(encoding="utf-8")
    assert f"Run {first}:" in page and "pca:10" not in page


def test_empty_run(tmp_path):
    study, _ = make_study(tmp_path)
    record = {
        "key": "empty",
        "features": "image",
        "description_set": None,
        "embedder": "image:effnet",
        "reduce": "none",
        "min_cluster_size": 5,
        "min_samples": None,
        "seed": None,
        "n_items": 0,
        "n_clusters": 0,
        "n_outliers": 0,
        "params": "not json",
    }
    run_id = study.add_run(record, labels={}, probabilities=None)
    page = render_report(study, run_id, progress=False).read_text(encoding="utf-8")
    assert f"Run {run_id}: 0 clusters of 0 images" in page and "not json" in page
    assert sections(page) == []


def test_cap_per_cluster(tmp_path):
    study, _ = make_study(tmp_path)
    page = render_report(study, progress=False, max_per_cluster=1).read_text(encoding="utf-8")
    assert "+2 more" in page  # cluster 0 has three images
    assert "+1 more" in page  # cluster 1 has two
    # Only the shown images get thumbnails (cluster 0 shows broken.png, first by path: no preview).
    assert page.count('<div class="tile">') == 3
    assert len(list((study.path / "report" / "thumbs").glob("*.jpg"))) == 2


def test_thumbnails_are_reused_and_remade_on_size_change(tmp_path):
    study, _ = make_study(tmp_path)
    render_report(study, progress=False)
    thumb = study.path / "report" / "thumbs" / f"{sha(FILES['blue.png'])}.jpg"
    thumb.write_bytes(b"sentinel")  # a reused thumbnail is not touched
    render_report(study, progress=False)
    assert thumb.read_bytes() == b"sentinel"
    render_report(study, progress=False, thumb_size=64)
    with Image.open(thumb) as im:
        assert max(im.size) == 64


def test_make_thumbnails_directly(tmp_path):
    study, _ = make_study(tmp_path)
    dest = tmp_path / "out" / "thumbs"
    wanted = {sha(FILES["green.png"]): Path("green.png"), "0" * 64: tmp_path / "missing.png"}
    got = make_thumbnails(study, wanted, dest, 32, progress=False)
    assert got == {sha(FILES["green.png"]): f"thumbs/{sha(FILES['green.png'])}.jpg"}
    with Image.open(dest / f"{sha(FILES['green.png'])}.jpg") as im:
        assert im.size == (16, 32)


def test_browser_shows_thumbnails_and_descriptions(tmp_path):
    study, _ = make_study(tmp_path)
    out = render_report(study, progress=False)

    remote: list[str] = []
    with chromium_page(viewport={"width": 1200, "height": 900}) as (page, errors):
        page.on("request", lambda r: None if r.url.startswith("file:") else remote.append(r.url))
        page.goto(out.as_uri())

        # Every thumbnail loads (lazy images are asked to load eagerly first).
        page.evaluate(
            """() => Promise.all([...document.images].map(i => {
                   i.loading = 'eager';
                   return i.complete ? null : new Promise(r => { i.onload = i.onerror = r; });
               }))"""
        )
        sizes = page.eval_on_selector_all(
            "img", "imgs => imgs.map(i => [i.getAttribute('src'), i.naturalWidth])"
        )
        assert len(sizes) == 5
        assert all(w > 0 for _, w in sizes), sizes

        # A description is hidden until its image is clicked.
        details = page.locator('#cluster-0 details:has(summary[title="red.png"])')
        text = details.locator("p.text")
        assert not text.is_visible()
        details.locator("summary").click()
        assert text.is_visible()
        assert "<script>" in text.inner_text()  # shown as text, not run
        page.wait_for_timeout(200)

        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        if os.environ.get("CONNOTE_REPORT_SCREENSHOT"):  # to look at it: =/tmp/report_screenshot.png
            shutil.copy(shot, os.environ["CONNOTE_REPORT_SCREENSHOT"])
    assert errors == []
    assert remote == []
