"""Benchmark: the offline describer's settings before and after, side by side, on real images.

    python benchmarks/offline_describe.py                      # all 998 MultiClimate frames and COCO-128
    python benchmarks/offline_describe.py --n 100              # an evenly spaced subset of each dataset
    python benchmarks/offline_describe.py --configs legacy fast fast:runtime=bundled fast:ocr_scout_side=480

Arms (``--configs``): ``legacy`` is ``offline:legacy``, the settings connote used before (RapidOCR's
defaults, one image at a time); ``fast`` is today's default ``offline``; ``fast:KEY=VALUE,...`` passes
options to the describer (ocr_scout_side, ocr_scout_threshold, ocr_regions_only, ocr_margin_cells,
ocr_rec_per_line, ocr_rec_width_step, runtime, concurrency, batch_size).

Each dataset is registered once in a fresh study (``connote init``); then each arm describes it end to
end the way ``connote describe`` does (the runner, the SQLite store, model loading included) into its own
description set, in its own process so that peak memory is per arm. Reported per arm: seconds, images
per second, CPU seconds per image (all threads), peak resident memory, the load average around it (the
machine may be shared), and against the first arm: the character-level similarity of the OCR text per
image (1 - Levenshtein distance / longer length; 1 when both read nothing), mean and 5th percentile,
and whether the ImageNet tags agree (the same list; the same first tag).

Writes benchmarks/results/offline_describe.json and .md (offline_describe-nN.* with --n).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import text_images  # noqa: E402 - the generator of the text-heavy datasets, next to this file

HERE = Path(__file__).resolve().parent
DATASETS = ("multiclimate_frames", "coco128")
#: text-heavy images made by benchmarks/text_images.py (COCO-128 photos + rendered text), cached
GENERATED = ("memes", "screenshots", "posters")


# ------------------------------------------------------------------------------------------- metrics
def levenshtein(a: str, b: str) -> int:
    """Edit distance (insertions, deletions, substitutions of one character each cost 1).

    Row by row; within a row, cur[j] = min(x[j], cur[j-1] + 1) is a running minimum of x[k] - k, plus j.
    """
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    bb = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    steps = np.arange(len(b) + 1)
    prev = steps.copy()
    for i, ca in enumerate(np.frombuffer(a.encode("utf-32-le"), dtype=np.uint32), 1):
        x = np.empty_like(prev)
        x[0] = i
        x[1:] = np.minimum(prev[1:] + 1, prev[:-1] + (bb != ca))
        prev = np.minimum.accumulate(x - steps) + steps
    return int(prev[-1])


def similarity(a: str, b: str) -> float:
    """1 - edit distance / the longer length; 1.0 for two empty texts."""
    if not a and not b:
        return 1.0
    return 1.0 - levenshtein(a, b) / max(len(a), len(b))


_WRITTEN = re.compile(r'^Written: "(.*)"\.(?= Seen: | Colours: |$)', re.S)
_SEEN = re.compile(r"(?:^| )Seen: (.*?)\.(?= Colours: |$)")


def parse_description(text: str) -> tuple[str, list[str]]:
    """(OCR text, ImageNet tags) of an offline description ('Written: "...". Seen: a, b or c. Colours: ...')."""
    m = _WRITTEN.match(text)
    ocr = m.group(1) if m else ""
    rest = text[m.end() :] if m else text
    s = _SEEN.search(rest)
    tags = re.split(r", | or ", s.group(1)) if s else []
    return ocr, tags


# ------------------------------------------------------------------------------------------- one arm
def describer_for(config: str):
    from connote.describers.offline import OfflineDescriber

    kind, _, opts = config.partition(":")
    options = {}
    for part in filter(None, opts.split(",")):
        key, _, value = part.partition("=")
        options[key] = {"true": True, "false": False}.get(value.lower(), value)
        if isinstance(options[key], str):
            with contextlib.suppress(ValueError):  # else a word (runtime=bundled)
                options[key] = float(value) if "." in value else int(value)
    return OfflineDescriber("legacy" if kind == "legacy" else "", **options)


def child(study_dir: str, config: str, out: str) -> None:
    """Describe the study with one arm; write timings to ``out``."""
    from connote import steps
    from connote.params import recorded_params
    from connote.study import Study

    study = Study.open(study_dir)
    d = describer_for(config)
    load0 = os.getloadavg()[0]
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    summary = steps.describe(study, d, name=config, progress=False)
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    result = {
        "config": config,
        "model": d.model,
        "params": recorded_params(d),
        "workers": d.concurrency,
        "batch_size": d.batch_size,
        "described": summary.described,
        "failed": summary.failed,
        "seconds": round(wall, 2),
        "images_per_s": round(summary.described / wall, 3) if wall else None,
        "cpu_s_per_image": round(cpu / max(1, summary.described), 4),
        "peak_rss_mb": round(ru1.ru_maxrss / 1024, 1),
        "load_before": round(load0, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }
    Path(out).write_text(json.dumps(result))


# ------------------------------------------------------------------------------------------- driver
def subset(folder: Path, n: int | None) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if n and n < len(files):
        files = [files[i] for i in np.linspace(0, len(files) - 1, n).round().astype(int)]
    return files


def compare(study, base: str, other: str) -> dict:
    rows = {r["name"]: r["id"] for r in study.description_sets()}
    a, b = study.descriptions(rows[base]), study.descriptions(rows[other])
    paths = {r["sha256"]: r["path"] for r in study.unique_images()}
    sims, same_tags, same_top, worst = [], 0, 0, []
    common = sorted(set(a) & set(b))
    for sha in common:
        (ta, ga), (tb, gb) = parse_description(a[sha]), parse_description(b[sha])
        s = similarity(ta, tb)
        sims.append(s)
        same_tags += ga == gb
        same_top += ga[:1] == gb[:1]
        worst.append((s, paths.get(sha, sha), ta, tb))
    worst.sort(key=lambda w: w[0])
    n = max(1, len(common))
    return {
        "images_compared": len(common),
        "ocr_similarity_mean": round(float(np.mean(sims)), 4) if sims else None,
        "ocr_similarity_p5": round(float(np.percentile(sims, 5)), 4) if sims else None,
        "ocr_identical": round(sum(s == 1.0 for s in sims) / n, 4),
        "tags_identical": round(same_tags / n, 4),
        "top_tag_same": round(same_top / n, 4),
        "least_similar": [
            {"image": p, "similarity": round(s, 3), "before": ta, "after": tb} for s, p, ta, tb in worst[:10]
        ],
    }


def run_dataset(name: str, root: Path, n: int | None, configs: list[str], tmp: Path) -> dict:
    from connote import steps

    files = subset(root / name / "images", n)
    images = tmp / name / "images"
    images.mkdir(parents=True)
    for f in files:
        (images / f.name).symlink_to(f)
    study_dir = tmp / name / "study"
    steps.init(study_dir, images, progress=False).close()
    arms = []
    for config in configs:
        out = tmp / name / f"arm-{len(arms)}.json"
        cmd = [sys.executable, __file__, "--child", str(study_dir), config, str(out)]
        subprocess.run(cmd, check=True)
        arm = json.loads(out.read_text())
        print(
            f"{name:20s} {config:32s} {arm['described']:5d} img  {arm['seconds']:8.1f} s  "
            f"{arm['images_per_s']:6.2f} img/s  {arm['cpu_s_per_image']:.3f} CPU-s/img  "
            f"{arm['peak_rss_mb']:.0f} MB  (load {arm['load_before']}->{arm['load_after']})",
            flush=True,
        )
        arms.append(arm)
    from connote.study import Study

    study = Study.open(study_dir)
    base = arms[0]
    for arm in arms:
        arm["speedup"] = (
            round(arm["images_per_s"] / base["images_per_s"], 2) if base["images_per_s"] else None
        )
        arm["cpu_speedup"] = round(base["cpu_s_per_image"] / arm["cpu_s_per_image"], 2)
        if arm is not base:
            arm["vs_first"] = compare(study, base["config"], arm["config"])
            v = arm["vs_first"]
            print(
                f"{'':20s} {arm['config']:32s} OCR similarity mean {v['ocr_similarity_mean']} "
                f"p5 {v['ocr_similarity_p5']}; tags identical {v['tags_identical']}, "
                f"top tag {v['top_tag_same']}",
                flush=True,
            )
    study.close()
    return {"dataset": name, "images": len(files), "arms": arms}


def markdown(result: dict) -> str:
    lines = [
        "# Offline describer: settings before (`offline:legacy`) and after (`offline`)",
        "",
        f"{result['machine']}; {result['note']}",
        "",
        "| dataset | arm | images | seconds | images/s | speed-up | CPU s/image | peak MB | load avg | "
        "OCR similarity mean | 5th pct | OCR identical | tags identical | top tag same |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for ds in result["datasets"]:
        for arm in ds["arms"]:
            v = arm.get("vs_first") or {}
            lines.append(
                f"| {ds['dataset']} | `{arm['config']}` | {arm['described']} | {arm['seconds']} | "
                f"{arm['images_per_s']} | {arm['speedup']}x | {arm['cpu_s_per_image']} | {arm['peak_rss_mb']} | "
                f"{arm['load_before']}->{arm['load_after']} | {v.get('ocr_similarity_mean', '-')} | "
                f"{v.get('ocr_similarity_p5', '-')} | {v.get('ocr_identical', '-')} | "
                f"{v.get('tags_identical', '-')} | {v.get('top_tag_same', '-')} |"
            )
    lines += [
        "",
        "Seconds: the describe step end to end (model loading, reading, OCR, CNN, colours, storing each "
        "description in SQLite). Speed-up: images/s over the first arm's. CPU s/image: user + system time "
        "of all the arm's threads per image. Load avg: the machine's 1-minute load average before and after "
        "the arm (other work on a shared machine slows an arm down; CPU s/image is less affected). OCR "
        "similarity: per image, 1 - Levenshtein distance / longer length between the first arm's OCR text "
        "and this arm's. The least similar images are listed in the JSON file.",
        "",
        f"Reproduce: `{result['command']}`",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, help="images per dataset (evenly spaced; default: all)")
    ap.add_argument(
        "--datasets", nargs="+", default=list(DATASETS), choices=DATASETS + GENERATED + ("text-heavy",)
    )
    ap.add_argument(
        "--datasets-dir",
        type=Path,
        default=HERE.parent.parent / "shared" / "datasets",
        help="folder holding multiclimate_frames/ and coco128/ (default ../shared/datasets)",
    )
    ap.add_argument(
        "--text-dir",
        type=Path,
        default=text_images.DEFAULT_OUT,
        help=f"where the generated text-heavy images are cached (default {text_images.DEFAULT_OUT})",
    )
    ap.add_argument(
        "--configs", nargs="+", default=["legacy", "fast"], help="arms; the first is the baseline"
    )
    ap.add_argument(
        "--out", type=Path, help="results file stem (default benchmarks/results/offline_describe)"
    )
    args = ap.parse_args()
    datasets = [g for d in args.datasets for g in (GENERATED if d == "text-heavy" else (d,))]
    kinds = {d: text_images.KINDS[d] for d in datasets if d in GENERATED}
    needed = {d for d in datasets if d in DATASETS} | ({"coco128"} if kinds else set())  # photos for memes
    missing = sorted(d for d in needed if not (args.datasets_dir / d / "images").is_dir())
    if missing:
        sys.exit(f"{args.datasets_dir}: no {', '.join(missing)} here; pass --datasets-dir")
    roots = {d: args.datasets_dir for d in datasets if d in DATASETS}
    if kinds:  # made once, then read from the cache
        photos = args.datasets_dir / "coco128" / "images"
        roots |= {
            d: folder.parent for d, folder in text_images.generate(args.text_dir, kinds, photos).items()
        }
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = {
        "benchmark": "offline_describe",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}",
        "note": (f"an evenly spaced subset of {args.n} images per dataset" if args.n else "every image"),
        "command": "python benchmarks/offline_describe.py" + (f" --n {args.n}" if args.n else ""),
        "datasets": [],
    }
    with tempfile.TemporaryDirectory(prefix="connote-bench-") as tmp:
        for name in datasets:
            result["datasets"].append(run_dataset(name, roots[name], args.n, args.configs, Path(tmp)))
    stem = args.out or HERE / "results" / ("offline_describe" + (f"-n{args.n}" if args.n else ""))
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    print(f"wrote {stem.with_suffix('.md')} and .json")


if __name__ == "__main__":
    main()
