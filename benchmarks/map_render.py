"""The run page's map at 50,000 points in headless Chromium: load time and frame time.

Builds a synthetic study (N images in 40 Gaussian clusters plus 10% outliers; descriptions, 16-d vectors,
one run), seeds the 2-D map cache with the blobs' own coordinates (the benchmark measures the page, not
UMAP), renders the report with connote's renderer, then opens the run page in Debian's Chromium
(headless, --no-sandbox --disable-background-networking, no request leaves the machine) and measures

- load: navigation start until the map has drawn its first frame (data files parsed, index built);
- frame: the time of one full redraw of every point and label (``connoteMap.drawTimed``), over zoom steps;
- wheel: frames per second while zooming with the mouse wheel (requestAnimationFrame intervals);
- hover: time to find the point under the cursor and show its tooltip.

The images have no files (thumbnails show "no preview"), so thumbnail making is not measured.

    python benchmarks/map_render.py [--n 50000]

Writes benchmarks/results/map_render.json and .md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
CHROMIUM = "/usr/bin/chromium"


def build_study(folder: Path, n: int, seed: int = 0):
    from connote import layout
    from connote.study import Study, reporting, text_key

    rng = np.random.default_rng(seed)
    k = 40
    centres = rng.uniform(0.05, 0.95, (k, 2))
    labels = rng.integers(0, k, n)
    labels[rng.random(n) < 0.1] = -1
    xy = np.where(labels[:, None] >= 0, centres[np.maximum(labels, 0)], rng.uniform(0, 1, (n, 2)))
    xy = np.clip(xy + rng.normal(0, 0.02, (n, 2)), 0, 1).astype(np.float32)
    words = ["flood", "protest", "solar", "forest", "ice", "city", "chart", "speaker", "ocean", "storm"]

    root = folder / "images"
    root.mkdir(parents=True)
    study = Study.create(folder / "study", root)
    shas = [f"{i:064x}" for i in range(n)]
    study.upsert_images(
        {
            "path": f"img/{i:06d}.jpg",
            "sha256": s,
            "status": "ok",
            "reason": None,
            "width": 64,
            "height": 64,
            "format": "JPEG",
            "bytes": 1000,
        }
        for i, s in enumerate(shas)
    )
    set_id = study.description_set("bench", "offline", "none", "Describe this image.", {})
    texts = {}
    with study.transaction():
        for i, s in enumerate(shas):
            w = words[labels[i] % len(words)] if labels[i] >= 0 else "misc"
            texts[s] = f"Image {i}: a {w} scene, conveying urgency about climate change and its human toll."
            study.put_description(set_id, s, texts[s])
    vecs = rng.normal(0, 1, (n, 16)).astype(np.float32)
    for i, s in enumerate(shas):
        study.save_vector("text:bench", text_key(texts[s]), vecs[i])
    run_id = study.add_run(
        {
            "key": "bench",
            "features": "text",
            "description_set": "bench",
            "embedder": "text:bench",
            "reduce": "umap:5",
            "min_cluster_size": 50,
            "min_samples": None,
            "seed": 42,
            "n_items": n,
            "n_clusters": k,
            "n_outliers": int((labels == -1).sum()),
            "params": "{}",
        },
        labels=dict(zip(shas, labels.tolist())),
        probabilities=dict(zip(shas, rng.uniform(0.3, 1, n).tolist())),
    )
    study.set_keywords(run_id, {c: [(words[c % 10], 0.5), (f"theme{c}", 0.3)] for c in range(k)}, {})
    # the map cache, in the features' order, so rendering does not run UMAP
    feats = reporting.run_features(study, study.get_run(run_id))
    order = {s: i for i, s in enumerate(shas)}
    coords = xy[[order[s] for s in feats.shas]]
    path = layout.map_cache_path(study, feats.key)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        np.savez(fh, xy=coords, shas=np.array(feats.shas), method=np.array("synthetic blobs"))
    return study, run_id


def measure(page_path: Path, repeats: int) -> dict:
    from playwright.sync_api import sync_playwright

    out: dict = {"load_ms": [], "frame_ms": [], "wheel_fps": [], "hover_ms": []}
    remote: list[str] = []
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
            headless=True,
        )
        try:
            for _ in range(repeats):
                page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.route(
                    "**/*",
                    lambda r: (
                        r.continue_()
                        if r.request.url.startswith("file:")
                        else (remote.append(r.request.url), r.abort())
                    ),
                )
                page.goto(page_path.as_uri())
                page.wait_for_function("window.connoteMap !== undefined", timeout=120_000)
                page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
                out["load_ms"].append(page.evaluate("performance.now()"))
                out["frame_ms"].extend(page.evaluate("connoteMap.drawTimed(30)")[5:])
                box = page.locator("#map").bounding_box()
                cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
                page.mouse.move(cx, cy)
                page.evaluate(
                    """() => { window.__frames = []; let last = performance.now();
                       (function tick(t) { window.__frames.push(t - last); last = t;
                         if (window.__frames.length < 400) requestAnimationFrame(tick); })(last); }"""
                )
                t0 = time.perf_counter()
                for i in range(30):
                    page.mouse.wheel(0, -120 if i < 15 else 120)
                    page.wait_for_timeout(30)
                elapsed = time.perf_counter() - t0
                frames = page.evaluate("window.__frames.length")
                out["wheel_fps"].append(min(frames, 400) / elapsed)
                t1 = time.perf_counter()
                for dx in range(20):
                    page.mouse.move(cx + dx * 7, cy + dx * 3)
                out["hover_ms"].append((time.perf_counter() - t1) * 1000 / 20)
                page.close()
        finally:
            browser.close()
    out["remote_requests"] = remote
    out["errors"] = errors
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", help="output stem (default benchmarks/results/map_render)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    from connote.reports import render_report

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        study, run_id = build_study(Path(tmp), args.n)
        t_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        page = render_report(study, run_id, progress=False)
        t_render = time.perf_counter() - t0
        sizes = {
            "map_data_mb": sum(p.stat().st_size for p in (page.parent.parent / "maps").glob("*.js")) / 1e6,
            "run_js_mb": (page.parent / "run.js").stat().st_size / 1e6,
            "cluster_pages": len(list(page.parent.glob("*.html"))) - 1,
        }
        load_before = os.getloadavg()[0]
        m = measure(page, args.repeats)
        load_after = os.getloadavg()[0]

    med = statistics.median
    result = {
        "n_points": args.n,
        "machine": f"{os.cpu_count()} cores, {platform.python_version()}, {CHROMIUM} headless (software rendering)",
        "build_study_s": round(t_build, 1),
        "render_report_s": round(t_render, 1),
        **{k: round(v, 2) for k, v in sizes.items()},
        "load_ms_median": round(med(m["load_ms"]), 1),
        "frame_ms_median": round(med(m["frame_ms"]), 2),
        "frame_ms_p95": round(sorted(m["frame_ms"])[int(0.95 * (len(m["frame_ms"]) - 1))], 2),
        "wheel_fps_median": round(med(m["wheel_fps"]), 1),
        "hover_ms_median": round(med(m["hover_ms"]), 2),
        "machine_load": [round(load_before, 2), round(load_after, 2)],
        "remote_requests": len(m["remote_requests"]),
        "javascript_errors": m["errors"],
    }
    stem = (
        Path(args.out)
        if args.out
        else RESULTS / ("map_render" if args.n == 50_000 else f"map_render-n{args.n}")
    )
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# The run page's map at {args.n:,} points in headless Chromium",
        "",
        f"- machine: {result['machine']}",
        f"- report rendered in {result['render_report_s']} s ({result['cluster_pages']} cluster pages; map data "
        f"{result['map_data_mb']} MB, run labels {result['run_js_mb']} MB)",
        f"- **load** (navigation to first map frame): median {result['load_ms_median']} ms over {args.repeats} loads",
        f"- **frame** (one full redraw of every point and label): median {result['frame_ms_median']} ms, "
        f"p95 {result['frame_ms_p95']} ms",
        f"- wheel zoom: {result['wheel_fps_median']} frames per second (requestAnimationFrame while zooming)",
        f"- hover (find the point under the cursor, show its tooltip): {result['hover_ms_median']} ms per move "
        "(including Playwright's round trip)",
        f"- requests leaving the machine: {result['remote_requests']}; JavaScript errors: {len(m['errors'])}",
        f"- machine load (1-minute load average, {os.cpu_count()} cores) {load_before:.2f} -> {load_after:.2f}: "
        "other processes on a shared machine slow every number above",
        "",
        "Measured with `python benchmarks/map_render.py`; the study is synthetic (40 Gaussian clusters, 10% "
        "outliers) and the 2-D layout is given, so UMAP and thumbnails are not timed.",
    ]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
