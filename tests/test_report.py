"""The static HTML report: run pages, cluster pages, the study index and the map data; content, order,
escaping, caching and thumbnails (the browser side is in test_report_browser.py)."""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from connote import layout
from connote.evaluate.stability import seed_stability
from connote.reports import make_thumbnails, render_report, render_study, typical
from connote.study import Study, reporting, text_key

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
# Membership probabilities for some of the files (the rest get none): borderline members on the pages.
PROBABILITIES = {
    "red.png": 0.6,
    "crimson.png": 1.0,
    "broken.png": 0.9,
    "green.png": 1.0,
    "café #1 ünïcode.png": 1.0,
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
    "broken.png": "A file that is not really a picture.",
}
# Feature vectors: cluster 0 along one axis, cluster 1 along another, the outlier between them.
VEC = {
    "red.png": [1.0, 0.0, 0.0],
    "crimson.png": [0.9, 0.2, 0.0],
    "broken.png": [0.6, 0.5, 0.1],
    "green.png": [0.0, 1.0, 0.0],
    "café #1 ünïcode.png": [0.1, 0.9, 0.1],
    "blue.png": [0.4, 0.4, 0.9],
}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_study(
    tmp_path: Path,
    *,
    features: str = "text",
    keywords: bool = True,
    vectors: bool = True,
    probabilities: dict | None = None,
) -> tuple[Study, int]:
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
    embedder = "text:minilm" if features == "text" else "image:effnet"
    if features == "text":
        set_name = "offline-v1"
        set_id = study.description_set(set_name, "offline", "tiny-captioner", "Describe <this> image.", {})
        for rel, text in TEXT.items():
            call = None
            if rel == "crimson.png":  # one description written by a logged model call
                call = study.record_call(
                    stage="describe",
                    backend="openai:gpt-4-turbo",
                    model="gpt-4-turbo",
                    input_ref=sha(FILES[rel]),
                    prompt="Describe <this> image.",
                    output=text,
                    input_tokens=812,
                    output_tokens=95,
                    cost_usd=0.0123,
                )
            study.put_description(set_id, sha(FILES[rel]), text, call_id=call)
    if vectors:
        for rel, v in VEC.items():
            key = text_key(TEXT[rel]) if features == "text" else sha(FILES[rel])
            study.save_vector(embedder, key, np.asarray(v, dtype=np.float32))
    labels = {sha(FILES[rel]): c for rel, c in CLUSTER.items()}
    record = {
        "key": f"run-{features}-{keywords}",
        "features": features,
        "description_set": set_name,
        "embedder": embedder,
        "reduce": "umap:5",
        "min_cluster_size": 2,
        "min_samples": None,
        "seed": 7,
        "n_items": len(labels),
        "n_clusters": 2,
        "n_outliers": 1,
        "params": json.dumps({"reducer": {"n_components": 5}, "note": "<b>not bold</b>", "seed": 7}),
    }
    probs = {sha(FILES[rel]): p for rel, p in (probabilities or {}).items()} or None
    run_id = study.add_run(record, labels=labels, probabilities=probs)
    if keywords:
        study.set_keywords(
            run_id, {0: [("red", 0.9), ("square", 0.5)], 1: [("green", 0.8), ("<mark>", 0.1)]}, {}
        )
    return study, run_id


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def js_data(path: Path) -> dict:
    """The JSON object a ``window.X = {...};`` data file carries."""
    text = read(path)
    return json.loads(text[text.index("=") + 1 : text.rindex(";")])


def tile_order(page: str) -> list[str]:
    members = page[page.index('id="members"') :]
    return re.findall(r'<div class="tile" id="img-([0-9a-f]{64})">', members)


# ---------------------------------------------------------------------------------------------- pure parts
def test_typicality_and_border_functions():
    U = typical.unit_rows(np.array([[1.0, 0], [0.8, 0.2], [0.55, 0.45], [0, 1], [0.1, 0.9], [0.5, 0.5]]))
    labels = np.array([0, 0, 0, 1, 1, -1])
    cents = typical.centroids(U, labels)
    close = typical.closeness(U, labels, cents)
    assert np.isnan(close[5]) and close[1] > close[2]  # the member half-way to cluster 1 is least typical
    other, margin = typical.nearest_other(U, labels, cents)
    assert other.tolist()[:5] == [1, 1, 1, 0, 0]
    assert np.argmin(margin[:3]) == 2  # ... and the one nearest the other cluster
    assert other[5] in (0, 1) and 0 < margin[5] <= 1  # an outlier: its nearest cluster and similarity
    # strength first, then closeness, then name
    assert typical.typical_order([1.0, 1.0, 0.5], [0.1, 0.9, 1.0], ["b", "a", "c"]) == [1, 0, 2]
    assert typical.typical_order([None, None], [0.2, 0.9], ["x", "y"]) == [1, 0]


def test_map_layout_is_cached_per_feature_set(tmp_path, monkeypatch):
    study, run_id = make_study(tmp_path)
    feats = reporting.run_features(study, study.get_run(run_id))
    assert feats is not None and len(feats.shas) == 6
    xy, method = layout.map_layout(study, feats)
    assert xy.shape == (6, 2) and xy.min() >= 0 and xy.max() <= 1 and "pca" in method
    monkeypatch.setattr(layout, "compute_layout", lambda X: (_ for _ in ()).throw(AssertionError("again")))
    xy2, _ = layout.map_layout(study, feats)  # from STUDY/cache/map2d, not computed again
    assert np.array_equal(xy, xy2)
    assert len(list((study.path / "cache" / "map2d").glob("*.npz"))) == 1


# ---------------------------------------------------------------------------------------------- pages
def test_report_pages(tmp_path):
    study, run_id = make_study(tmp_path, probabilities=PROBABILITIES)
    out = render_report(study, progress=False)
    rep = study.path / "report"
    assert out == rep / f"run-{run_id}" / "index.html"
    run_dir = out.parent
    for name in ("index.html", "compare.html", "assets/map.js", "assets/connote.css", "assets/table.js"):
        assert (rep / name).is_file(), name
    for name in ("cluster-0.html", "cluster-1.html", "outliers.html", "run.js"):
        assert (run_dir / name).is_file(), name

    page = read(out)
    assert f"Run {run_id}: 2 clusters of 6 images" in page
    assert "(7 files)" in page and "16.7%" in page and "Describe &lt;this&gt; image." in page
    assert '<script src="../maps/' in page and "connote explain" not in page
    assert (
        page.index('href="cluster-0.html"')
        < page.index('href="cluster-1.html"')
        < page.index('href="outliers.html"')
    )

    # Cluster page: keywords with scores, members in order of membership strength (not file order),
    # the most typical description quoted, the call that wrote a description, links back.
    c0 = read(run_dir / "cluster-0.html")
    assert "red<small>0.900</small>" in c0 and "square<small>0.500</small>" in c0
    assert tile_order(c0) == [sha(FILES[r]) for r in ("crimson.png", "broken.png", "red.png")]
    quotes = c0[c0.index("Most typical descriptions") : c0.index('id="members"')]
    assert quotes.index("A crimson square") < quotes.index("not really a picture")
    assert "gpt-4-turbo" in c0 and "$0.0123" in c0 and "812 in / 95 out" in c0
    assert 'href="../index.html"' in c0 and 'href="index.html"' in c0
    assert f'href="index.html#sha={sha(FILES["red.png"])}"' in c0
    c1 = read(run_dir / "cluster-1.html")
    assert "&lt;mark&gt;<small>" in c1 and "<mark>" not in c1
    outliers = read(run_dir / "outliers.html")
    assert "Outliers" in outliers and sha(FILES["blue.png"]) in outliers and "near cluster" in outliers

    # Escaping: no description, file name or run record becomes markup on any page.
    for html_file in rep.rglob("*.html"):
        text = read(html_file)
        assert "<script>alert" not in text and "<b>not bold</b>" not in text, html_file
    assert html.escape(EVIL, quote=False).replace('"', "&#34;") in c0

    # Map data: one map per feature set, the run's labels aligned with it, details chunks with the call.
    (map_file,) = (rep / "maps").glob("*.js")
    m = js_data(map_file)
    run_js = js_data(run_dir / "run.js")
    assert run_js["map"] == map_file.stem and len(run_js["labels"]) == len(m["shas"]) == 6
    assert dict(zip(m["shas"], run_js["labels"])) == {sha(FILES[r]): c for r, c in CLUSTER.items()}
    assert run_js["clusters"]["0"]["keywords"] == ["red", "square"] and run_js["columns"] == {}
    crimson = sha(FILES["crimson.png"])
    chunk = read(rep / m["details"] / f"{crimson[:2]}.js")
    assert "gpt-4-turbo" in chunk and "A crimson square" in chunk

    # Thumbnails: one per readable content, relative links; the broken file shows "no preview".
    made = {p.stem for p in (rep / "thumbs").glob("*.jpg")}
    assert made == {sha(d) for rel, d in FILES.items() if rel != "broken.png"}
    assert f'src="../thumbs/{crimson}.jpg"' in c0 and "no preview" in c0
    assert "caf%C3%A9%20%231%20%C3%BCn%C3%AFcode.png" in c1

    # Self-contained: nothing from the network, no temp files left behind.
    for f in rep.rglob("*"):
        if f.suffix in (".html", ".js", ".css"):
            assert not re.search(r"""(src|href)=["']?(https?:)?//""", read(f)), f
    assert not [p for p in rep.rglob("*") if p.name.endswith(".tmp")]


def test_labels_and_metadata_are_shown_where_they_exist(tmp_path):
    study, run_id = make_study(tmp_path)
    render_report(study, run_id, progress=False, labels={0: "Red <things>"})
    run_dir = study.path / "report" / f"run-{run_id}"
    assert "Cluster 0: Red &lt;things&gt;" in read(run_dir / "cluster-0.html")
    assert js_data(run_dir / "run.js")["clusters"]["0"]["label"] == "Red <things>"

    # labels stored by `connote label`, with a summary; the user's metadata becomes a map colouring
    study.put_labels(run_id, "llm", [{"cluster": 1, "label": "Greens", "summary": "All <green>."}])
    study.put_metadata({"account": "text"}, [("green.png", "account", "@eco")], "meta.csv")
    render_report(study, run_id, progress=False)
    c1 = read(run_dir / "cluster-1.html")
    assert "<h1>Cluster 1: Greens</h1>" in c1 and "All &lt;green&gt;." in c1
    data = js_data(run_dir / "run.js")
    (map_file,) = (study.path / "report" / "maps").glob("*.js")
    shas = js_data(map_file)["shas"]
    assert data["columns"]["account"][shas.index(sha(FILES["green.png"]))] == "@eco"
    assert data["columns"]["account"].count("(none)") == 5  # images without a value (grey on the map)


def test_paging_of_big_clusters(tmp_path):
    study, run_id = make_study(tmp_path)
    render_report(study, progress=False, per_page=2)
    run_dir = study.path / "report" / f"run-{run_id}"
    first, second = read(run_dir / "cluster-0.html"), read(run_dir / "cluster-0-2.html")
    assert len(tile_order(first)) == 2 and len(tile_order(second)) == 1
    assert 'href="cluster-0-2.html"' in first and 'href="cluster-0.html"' in second
    assert "Most typical descriptions" in first and "Most typical descriptions" not in second
    assert not (run_dir / "cluster-1-2.html").exists()


def test_without_vectors_or_keywords(tmp_path):
    study, run_id = make_study(tmp_path, keywords=False, vectors=False)
    page = read(render_report(study, run_id, progress=False))
    assert "No map" in page and "connote embed" in page
    assert f"connote explain {study.path} {run_id}" in page
    assert (study.path / "report" / f"run-{run_id}" / "cluster-0.html").is_file()
    assert not (study.path / "report" / "maps").exists()


def test_image_feature_run_without_descriptions(tmp_path):
    study, run_id = make_study(tmp_path, features="image")
    page = read(render_report(study, str(run_id), progress=False))
    assert "image:effnet" in page and "used no descriptions" in page
    assert '<script src="../maps/' in page  # the map of the image features
    cluster = read(study.path / "report" / f"run-{run_id}" / "cluster-0.html")
    assert "No description for this image" not in cluster


def add_seed_run(study, seed: int, labels_by_path: dict[str, int]) -> int:
    labels = {sha(FILES[r]): c for r, c in labels_by_path.items()}
    return study.add_run(
        {
            "key": f"seed-{seed}",
            "features": "text",
            "description_set": "offline-v1",
            "embedder": "text:minilm",
            "reduce": "umap:5",
            "min_cluster_size": 2,
            "min_samples": None,
            "seed": seed,
            "n_items": len(labels),
            "n_clusters": len(set(labels.values()) - {-1}),
            "n_outliers": sum(c == -1 for c in labels.values()),
            "params": json.dumps({"reducer": {"n_components": 5}, "note": "<b>not bold</b>", "seed": seed}),
        },
        labels=labels,
        probabilities=None,
    )


def test_study_index(tmp_path):
    study, first = make_study(tmp_path)
    same = add_seed_run(study, 8, {r: (5 if c == 0 else 6 if c == 1 else -1) for r, c in CLUSTER.items()})
    other = add_seed_run(study, 9, {r: 0 for r in CLUSTER})
    out = render_study(study, progress=False)
    assert out == study.path / "report" / "index.html"
    page = read(out)
    for rid in (first, same, other):
        assert f'href="run-{rid}/index.html"' in page
        assert (study.path / "report" / f"run-{rid}" / "index.html").is_file()
    expected = seed_stability(
        {
            7: {sha(FILES[r]): c for r, c in CLUSTER.items()},
            8: {sha(FILES[r]): c for r, c in CLUSTER.items()},
            9: {sha(FILES[r]): 0 for r in CLUSTER},
        }
    ).mean_ari
    assert f'{expected:.3f} <span class="muted">(3 seeds)</span>' in page
    assert "No rated pairs yet" in page and "compare.html" in page
    compare = read(study.path / "report" / "compare.html")
    assert compare.count("<option") == 6  # three runs in each of two lists


def test_index_of_a_study_without_runs(tmp_path):
    study = Study.create(tmp_path / "study", tmp_path)
    page = read(render_study(study, progress=False))
    assert "Study: 0 runs of 0 images" in page and "No clustering runs yet" in page


def test_index_links_only_rendered_runs(tmp_path):
    study, first = make_study(tmp_path)
    second = add_seed_run(study, 8, dict(CLUSTER))
    render_report(study, second, progress=False)
    page = read(study.path / "report" / "index.html")
    assert f'href="run-{second}/index.html"' in page and f'href="run-{first}/index.html"' not in page
    assert f"connote report STUDY {first}" in page


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


def test_cli_report_index_and_runs(tmp_path):
    from conftest import run_cli

    study, first = make_study(tmp_path)
    second = add_seed_run(study, 8, dict(CLUSTER))
    study.close()
    rep = tmp_path / "study" / "report"
    proc = run_cli("report", tmp_path / "study", "--runs", "none", "--json", "-q", timeout=300, check=True)
    out = json.loads(proc.stdout)
    assert out["index"] == out["page"] == str(rep / "index.html") and out["run_pages"] == {}
    assert "connote report STUDY" in read(rep / "index.html")  # rows say how to render their pages

    proc = run_cli("report", tmp_path / "study", "-q", timeout=300, check=True)  # index + every run
    assert f"Report: {rep / 'index.html'}" in proc.stdout and "2 run page(s)" in proc.stdout
    page = read(rep / "index.html")
    assert f'href="run-{first}/index.html"' in page and f'href="run-{second}/index.html"' in page

    proc = run_cli("report", tmp_path / "study", str(first), "--runs", "all", timeout=300)
    assert proc.returncode != 0 and "not both" in proc.stderr
    proc = run_cli("report", tmp_path / "study", "--runs", "1,x", timeout=300)
    assert (
        proc.returncode != 0
        and "run id: expected a whole number" in proc.stderr
        and "Traceback" not in proc.stderr
    )


def test_unwritable_report_folder_is_one_clear_error(tmp_path, monkeypatch):
    import connote.reports as reports
    from connote.errors import UserError

    study, _ = make_study(tmp_path)

    def refuse(path, data):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(reports, "atomic_write_bytes", refuse)
    with pytest.raises(UserError, match="cannot write the report \\(Permission denied\\)"):
        render_study(study, progress=False)


def test_index_shows_validation_scores_and_progress(tmp_path):
    """RQ1 quality per run with box plots per setting, RQ2 accuracy of the tested run, and the progress
    of both validation samples, on a study of 40 images in two groups (no files needed)."""
    from connote.coding import sets

    study = Study.create(tmp_path / "study", tmp_path)
    shas = [f"{i:064x}" for i in range(40)]
    study.upsert_images(
        {
            "path": f"{i}.png",
            "sha256": s,
            "status": "ok",
            "reason": None,
            "width": 1,
            "height": 1,
            "format": "PNG",
            "bytes": 1,
        }
        for i, s in enumerate(shas)
    )
    truth = {s: i // 20 for i, s in enumerate(shas)}
    set_id = study.description_set("d", "offline", "m", "p", {})
    for i, s in enumerate(shas):
        study.put_description(set_id, s, f"{'flood' if i < 20 else 'fire'} picture {i}")

    def run(seed: int, labels: dict, reduce: str = "umap:5") -> int:
        return study.add_run(
            {
                "key": f"{reduce}-{seed}",
                "features": "image",
                "description_set": None,
                "embedder": "image:x",
                "reduce": reduce,
                "min_cluster_size": 5,
                "min_samples": None,
                "seed": seed,
                "n_items": 40,
                "n_clusters": len(set(labels.values()) - {-1}),
                "n_outliers": 0,
                "params": "{}",
            },
            labels=labels,
            probabilities=None,
        )

    good = [run(1, truth), run(2, truth)]
    study.set_keywords(good[0], {0: [("flood", 1.0)], 1: [("fire", 1.0)]}, {})
    mixed = run(1, {s: i % 2 for i, s in enumerate(shas)}, reduce="pca:5")
    pairs = [(shas[i], shas[j]) for i in range(20) for j in range(i + 1, 20)][:30]
    pairs += [(shas[i], shas[20 + i]) for i in range(20)] + [(shas[i], shas[39 - i]) for i in range(10)]
    sid = study.add_pair_sample("pairs", 42, {}, pairs)
    ratings = [
        (pos, "ann", d, 2 if truth[a] == truth[b] else 0)
        for pos, (a, b) in enumerate(pairs, 1)
        for d in ("denotative", "connotative")
    ]
    study.put_ratings(sid, ratings[:110], "ann.csv")  # 55 of 60 pairs rated: 30 same, 25 different
    sample = sets.sample_sets(study, good[0], per_cluster=2, size=2, progress=False)
    codes = {int(c): code for code, c in json.loads(study.set_sample(sample.name)["params"])["codes"].items()}
    study.put_set_answers(
        study.set_sample(sample.name)["id"],
        [
            (st["pos"], "eva", codes[st["cluster"]])
            for st in study.image_sets(study.set_sample(sample.name)["id"])
        ][:3],
        "eva.csv",
    )

    page = read(render_study(study, progress=False))
    rows = dict(re.findall(r'<tr data-run="(\d+)">(.*?)</tr>', page, re.S))
    assert '<td class="num" data-v="2.0">2.000</td>' in rows[str(good[0])]  # quality: 2 - 0
    assert 'data-v="1.0">1.00</td>' in rows[str(good[0])]  # RQ2 accuracy of the tested run
    assert "1.000 <span" in rows[str(good[0])]  # stable across its two seeds
    assert '<td class="num" data-v="2.0">' not in rows[str(mixed)]
    assert "<svg" in page and "denotative quality" in page and "umap:5 mcs=5" in page
    assert "55 of 60 pairs rated (92%) by 1 coder" in page
    assert "3 of 4 sets answered (75%) by 1 evaluator" in page
    assert "pairs/coding.html" not in page  # no sheet was written for these pairs: no dead link
    assert f'href="../validation/{sample.name}/matching.html"' in page


def test_outliers_page_orders_by_nearness_to_a_cluster(tmp_path):
    study, run_id = make_study(tmp_path)
    labels = {sha(FILES[r]): (-1 if r in ("blue.png", "crimson.png") else c) for r, c in CLUSTER.items()}
    rid = study.add_run(
        {
            "key": "two-outliers",
            "features": "text",
            "description_set": "offline-v1",
            "embedder": "text:minilm",
            "reduce": "umap:5",
            "min_cluster_size": 2,
            "min_samples": None,
            "seed": 7,
            "n_items": 6,
            "n_clusters": 2,
            "n_outliers": 2,
            "params": "{}",
        },
        labels=labels,
        probabilities=None,
    )
    render_report(study, rid, progress=False)
    page = read(study.path / "report" / f"run-{rid}" / "outliers.html")
    # crimson sits right beside cluster 0's centre, blue far from every centre
    assert tile_order(page) == [sha(FILES["crimson.png"]), sha(FILES["blue.png"])]
    assert "nearest a cluster first" in page and "Most typical descriptions" not in page


def test_validation_progress_counts_each_sample(tmp_path):
    """The index page's validation table: per pair and set sample its size, how many items are rated or
    answered, and by how many people."""
    study = Study.create(tmp_path / "s")
    con = study.con
    con.execute("PRAGMA foreign_keys=OFF")  # samples without images and runs: only the counts matter here
    con.execute("INSERT INTO pair_samples(id, name, created, seed, params) VALUES (1, 'p', 't', 1, '{}')")
    con.execute("INSERT INTO pair_samples(id, name, created, seed, params) VALUES (2, 'q', 't', 1, '{}')")
    con.executemany(
        "INSERT INTO pairs(sample_id, pos, sha_a, sha_b) VALUES (1, ?, 'a', 'b')", [(i,) for i in range(3)]
    )
    con.executemany(
        "INSERT INTO ratings(sample_id, pos, coder, dimension, value, source, updated) VALUES (1, ?, ?, ?, 1, 's', 't')",
        [(0, "x", "denotative"), (1, "y", "denotative"), (1, "y", "connotative")],
    )
    con.execute(
        "INSERT INTO set_samples(id, name, run_id, created, seed, params) VALUES (5, 's', 7, 't', 1, '{}')"
    )
    con.executemany(
        "INSERT INTO image_sets(sample_id, pos, cluster, shas) VALUES (5, ?, 0, '[]')",
        [(i,) for i in range(4)],
    )
    con.execute(
        "INSERT INTO set_answers(sample_id, pos, evaluator, code, source, updated) VALUES (5, 2, 'e', 'c', 's', 't')"
    )
    assert reporting.validation_progress(study) == [
        {"kind": "pairs", "name": "p", "run_id": None, "size": 3, "done": 2, "people": 2},
        {"kind": "pairs", "name": "q", "run_id": None, "size": 0, "done": 0, "people": 0},
        {"kind": "sets", "name": "s", "run_id": 7, "size": 4, "done": 1, "people": 1},
    ]
