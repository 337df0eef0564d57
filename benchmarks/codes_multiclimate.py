"""The paper's grid on the MultiClimate frames, scored against the codes the dataset already has.

    python benchmarks/codes_multiclimate.py [--n 998] [--seeds 42,48,112] [--study DIR]

Data: the 998 MultiClimate frames of ../shared/datasets/multiclimate_frames (100 climate-change videos, up
to 10 frames each). Two feature sets, as in the paper's comparison:

* text: each frame's transcript sentence as its description (imported, as `connote import-descriptions`
  does; frames with an empty transcript are left out of the text runs), embedded with MiniLM;
* image: the CNN baseline's image features (EfficientNet-Lite0, connote's offline CNN; the paper's VGG16
  weights need a download).

Grid: the paper's (src/connote/grids/paper.toml: UMAP 5/10 x 5/15/30, PCA 5/10/20/80%, min cluster size
50/100/200 scaled to the collection), seeds 42, 48 and 112. Every run is scored with `connote codes`
against `frame_stance` (support/neutral/oppose, a human label of the frame-transcript pair) and
`video_id` (which of the 100 videos a frame comes from), imported from labels.csv with `connote metadata`.

Writes benchmarks/results/codes_multiclimate.json (every run) and .md (per setting, over seeds), with the
machine and its load: 2 cores shared with other work, so the times are only indicative.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
COLUMNS = ["frame_stance", "video_id"]


def frames() -> Path:
    for base in [os.environ.get("CONNOTE_SHARED"), ROOT.parent / "shared", ROOT.parent.parent / "shared"]:
        if base and (Path(base) / "datasets" / "multiclimate_frames").is_dir():
            return Path(base) / "datasets" / "multiclimate_frames"
    raise SystemExit("../shared/datasets/multiclimate_frames not found (set CONNOTE_SHARED)")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def build(study_dir: Path, n: int, work: Path) -> tuple[object, dict]:
    """The study: the first ``n`` frames (whole videos first, in labels.csv order), transcripts as
    descriptions, labels.csv as metadata, MiniLM and EfficientNet-Lite0 vectors. Reused when it exists."""
    from connote import steps
    from connote.metadata import import_metadata

    src = frames()
    with (src / "labels.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[:n]
    images = work / "images"
    images.mkdir(parents=True, exist_ok=True)
    for r in rows:
        link = images / Path(r["filename"]).name
        if not link.exists():
            link.symlink_to(src / r["filename"])
    times = {}
    t = time.perf_counter()
    study = steps.init(study_dir, images, progress=False)
    with (work / "transcripts.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "text"])
        w.writerows([Path(r["filename"]).name, r["transcript"]] for r in rows)
    with (work / "codes.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", *COLUMNS])
        w.writerows([Path(r["filename"]).name, *(r[c] for c in COLUMNS)] for r in rows)
    if not study.description_sets():
        steps.import_descriptions(study, work / "transcripts.csv", name="transcripts")
    import_metadata(study, work / "codes.csv")
    times["init_import_s"] = time.perf_counter() - t
    t = time.perf_counter()
    steps.embed(study, "minilm", progress=False)
    times["embed_text_s"] = time.perf_counter() - t
    t = time.perf_counter()
    steps.embed(study, None, "efficientnet-lite0", progress=False)
    times["embed_image_s"] = time.perf_counter() - t
    return study, times


def summarise(rows: list[dict]) -> list[dict]:
    """Per setting (features, reduce, min cluster size): each measure's mean, min and max over seeds."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["features"], r["reduce"], r["min_cluster_size"]), []).append(r)

    def stat(vals):
        vals = [v for v in vals if v is not None]
        if not vals:
            return None
        return {"mean": statistics.fmean(vals), "min": min(vals), "max": max(vals), "n": len(vals)}

    out = []
    for (features, reduce, mcs), rs in groups.items():
        out.append(
            {
                "features": features,
                "reduce": reduce,
                "min_cluster_size": mcs,
                "seeds": len(rs),
                "clusters": [min(r["clusters"] for r in rs), max(r["clusters"] for r in rs)],
                "outlier_share": stat([r["outlier_share"] for r in rs]),
                "quality": stat([r["quality"] for r in rs]),
                **{
                    f"{m}_{c}": stat([r["columns"].get(c, {}).get(m) for r in rs])
                    for c in COLUMNS
                    for m in ("ari", "nmi")
                },
            }
        )
    return out


def fmt(s, digits: int = 3) -> str:
    if not s:
        return "-"
    lo, hi = f"{s['min']:.{digits}f}", f"{s['max']:.{digits}f}"
    if lo == hi:
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ({lo} to {hi})"


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"# `connote codes` on the MultiClimate frames: the paper's grid x {len(result['seeds'])} seeds (n={result['n']})",
        "",
        f"- data: {result['data']}",
        f"- codes: `frame_stance` (support/neutral/oppose per frame-transcript pair) and `video_id` (100 "
        "videos), from labels.csv through `connote metadata`; quality from the codes over "
        f"{result['pairs']}",
        f"- grid: the paper's (`src/connote/grids/paper.toml`), min cluster sizes scaled to "
        f"{result['min_cluster_sizes']}; seeds {', '.join(map(str, result['seeds']))}; "
        f"{result['n_runs']} runs",
        f"- machine: {m['cores']} cores shared with other engineers' work, Python {m['python']}, "
        f"{m['platform']}; load average before {m['load_before']}, after {m['load_after']}",
        f"- time: import {result['times']['init_import_s']:.0f} s, MiniLM {result['times']['embed_text_s']:.0f} s, "
        f"EfficientNet-Lite0 {result['times']['embed_image_s']:.0f} s, sweep {result['times']['sweep_s']:.0f} s, "
        f"`connote codes` over every run {result['times']['codes_s']:.1f} s (indicative only: shared machine)",
        "",
        "## What it shows",
        "",
        *result["findings"],
        "",
        "## Per setting (mean over seeds, lowest to highest in brackets)",
        "",
        "ARI and NMI over the coded frames each run clustered (outliers left out); quality: mean code "
        "similarity (0-2) of same-cluster pairs minus different-cluster pairs, '-' with fewer than 25 pairs "
        "on a side; chance level is about 0 for ARI and quality.",
        "",
        "| features | reduce | mcs | clusters | outliers | ARI frame_stance | ARI video_id | NMI video_id | quality |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in result["settings"]:
        out = s["outlier_share"]
        lines.append(
            f"| {s['features']} | {s['reduce']} | {s['min_cluster_size']} | {s['clusters'][0]}-{s['clusters'][1]} "
            f"| {100 * out['mean']:.0f}% | {fmt(s['ari_frame_stance'])} | {fmt(s['ari_video_id'])} "
            f"| {fmt(s['nmi_video_id'], 2)} | {fmt(s['quality'])} |"
            if out
            else f"| {s['features']} | {s['reduce']} | {s['min_cluster_size']} | - | - | - | - | - | - |"
        )
    return "\n".join(lines) + "\n"


def findings(settings: list[dict], rows: list[dict]) -> list[str]:
    def mean(key, pred):
        vals = [s[key]["mean"] for s in settings if pred(s) and s[key]]
        return (statistics.fmean(vals), len(vals)) if vals else (float("nan"), 0)

    out = []
    for feats in ("text", "image"):
        for key in ("ari_video_id", "ari_frame_stance", "quality"):
            for red in ("umap", "pca"):
                v, k = mean(key, lambda s, f=feats, r=red: s["features"] == f and s["reduce"].startswith(r))
                out.append((feats, key, red, v, k))
    text = []
    for key, what in (
        ("ari_video_id", "ARI against the video"),
        ("ari_frame_stance", "ARI against the frame's stance"),
        ("quality", "quality from both codes"),
    ):
        parts = [f"{f} {r.upper()} {v:.3f} ({k} settings)" for f, kk, r, v, k in out if kk == key and k]
        text.append(f"- mean {what} over the settings: " + "; ".join(parts))
    scored = [r for r in rows if r["quality"] is not None]
    if scored:
        best = max(scored, key=lambda r: r["quality"])
        text.append(
            f"- best single run by quality: run {best['run']} ({best['features']} {best['reduce']} "
            f"mcs={best['min_cluster_size']} seed {best['seed']}): quality {best['quality']:.3f}, "
            f"ARI video_id {best['columns']['video_id']['ari']:.3f}, ARI frame_stance "
            f"{best['columns']['frame_stance']['ari']:.3f}, {best['clusters']} clusters, "
            f"{100 * best['outlier_share']:.0f}% outliers"
        )
    text.append(
        f"- {len(rows) - len(scored)} of {len(rows)} runs have no quality (fewer than 25 coded pairs on a "
        "side, e.g. one cluster only)"
    )
    return text


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=998, help="frames (default: all 998)")
    ap.add_argument("--seeds", default="42,48,112")
    ap.add_argument("--study", help="study folder to make or reuse (default: a temporary one)")
    ap.add_argument("--out", default=str(HERE / "results" / "codes_multiclimate"), help="results stem")
    args = ap.parse_args(argv)
    import warnings

    warnings.filterwarnings("ignore")
    import connote
    from connote.coding.codes import score_codes

    seeds = [int(s) for s in args.seeds.split(",")]
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.study).parent / (Path(args.study).name + "-inputs") if args.study else Path(tmp)
        study_dir = Path(args.study) if args.study else Path(tmp) / "study"
        log(f"study of {args.n} frames at {study_dir}")
        study, times = build(study_dir, args.n, work)
        log(f"sweep: paper grid, text and image features, seeds {seeds}")
        t = time.perf_counter()
        res = connote.sweep(study, "paper", features=("text", "image"), seeds=seeds, progress=False, say=log)
        times["sweep_s"] = time.perf_counter() - t
        log("connote codes")
        t = time.perf_counter()
        rep = score_codes(study, COLUMNS)
        times["codes_s"] = time.perf_counter() - t
        rows = [r.to_dict() for r in rep.runs]
        sizes = sorted({r.min_cluster_size for r in res.rows})
        n_texts = study.con.execute("SELECT COUNT(*) FROM descriptions WHERE status='ok'").fetchone()[0]
    settings = summarise(rows)
    result = {
        "data": f"multiclimate_frames, first {args.n} frames; text = the transcript sentence ({n_texts} frames "
        "with one), MiniLM; image = EfficientNet-Lite0 features",
        "n": args.n,
        "seeds": seeds,
        "min_cluster_sizes": sizes,
        "n_runs": len(rows),
        "pairs": rep.pairs.describe(),
        "machine": {
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_before": load_before,
            "load_after": [round(x, 2) for x in os.getloadavg()],
        },
        "times": {k: round(v, 1) for k, v in times.items()},
        "notes": rep.notes,
        "settings": settings,
        "runs": rows,
    }
    result["findings"] = findings(settings, rows)
    stem = Path(args.out)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    stem.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    log(f"wrote {stem}.json and {stem}.md")
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
