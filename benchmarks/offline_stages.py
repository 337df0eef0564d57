"""Profile: where the offline describer spends its CPU time per image, stage by stage, per kind of image.

    python benchmarks/offline_stages.py --n 30                 # 30 of each text-heavy kind
    python benchmarks/offline_stages.py --kinds memes --option ocr_rec_precision=bf16

Runs the default ``offline`` settings' steps one image at a time on one thread (as each of the describer's
workers does) and times each with the process's CPU clock: decoding, the CNN, colours, RapidOCR's
preprocessing, the detector's input, the detector, its post-processing, cropping, the angle classifier,
recognition (one call per line) and re-spacing. Also counts text lines per image and their recognition
input widths. The first two images of each kind are run once before timing (model compilation).
The images are those of benchmarks/text_images.py (made if missing).

Writes benchmarks/results/offline_stages.json and .md.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import text_images  # noqa: E402 - the generator of the text-heavy images, next to this file
from offline_describe import describer_for, subset  # noqa: E402

HERE = Path(__file__).resolve().parent
STAGES = (
    "decode",
    "cnn",
    "colours",
    "ocr_pre",
    "det_input",
    "det_model",
    "det_post",
    "crop",
    "angle",
    "recognise",
    "respace",
)


def profile(files: list[Path], d) -> dict:
    """CPU seconds per stage (summed over ``files``), lines and recognition widths."""
    import cv2

    from connote.describers.offline import IMAGE_MAX_SIDE, colour_words, respace
    from connote.images import downscale, load_image
    from connote.models import efficientnet, ocr

    settings = d.ocr_settings
    eng = ocr.engine(1, settings.runtime, settings.rec_precision, settings.det_precision)
    spent = collections.Counter()
    widths: list[int] = []
    clock = time.process_time
    for f in files:
        t = clock()

        def tick(stage: str) -> None:
            nonlocal t
            now = clock()
            spent[stage] += now - t
            t = now

        img = downscale(load_image(f, max_side=IMAGE_MAX_SIDE), IMAGE_MAX_SIDE)
        tick("decode")
        efficientnet.features_and_logits([img], runtime="openvino", threads=1)
        tick("cnn")
        colour_words(img)
        tick("colours")
        bgr, *_ = eng.preprocess(np.ascontiguousarray(np.asarray(img)[:, :, ::-1]))
        bgr, _ = eng.maybe_add_letterbox(bgr, {})
        tick("ocr_pre")
        det, (h, w) = eng.text_det, bgr.shape[:2]
        rh, rw = ocr.rapidocr_det_size(h, w)
        x = ocr._normalise(det, cv2.resize(bgr, (rw, rh)))
        tick("det_input")
        pred = det.infer(x)[0]
        tick("det_model")
        boxes, _ = det.postprocess_op(pred, (h, w))
        boxes = det.filter_tag_det_res(boxes, (h, w))
        boxes = eng.sorted_boxes(boxes) if len(boxes) else []
        tick("det_post")
        if not len(boxes):
            continue
        crops = eng.get_crop_img_list(bgr, boxes)
        tick("crop")
        crops, _, _ = eng.text_cls(crops)
        tick("angle")
        lines = [ocr._recognise(eng.text_rec, c, settings.rec_width_step) for c in crops]
        tick("recognise")
        [respace(text) for text, _score in lines]
        tick("respace")
        widths += [ocr.rec_width(c.shape[0], c.shape[1], settings.rec_width_step) for c in crops]
    n = max(1, len(files))
    return {
        "images": len(files),
        "cpu_s_per_image": round(sum(spent.values()) / n, 4),
        "ms_per_image": {s: round(1000 * spent[s] / n, 1) for s in STAGES},
        "lines_per_image": round(len(widths) / n, 1),
        "rec_width_median": float(np.median(widths)) if widths else 0.0,
        "rec_width_max": max(widths, default=0),
    }


def markdown(result: dict) -> str:
    head = "| kind | images | CPU s/image | lines/image | rec width median (max) | " + " | ".join(STAGES)
    lines = [
        "# Offline describer: CPU time per stage and kind of image",
        "",
        f"{result['machine']}; settings `{result['config']}`; load average {result['load_before']} -> "
        f"{result['load_after']}",
        "",
        head + " |",
        "|---|" + "---:|" * (4 + len(STAGES)),
    ]
    for kind, r in result["kinds"].items():
        stages = " | ".join(f"{r['ms_per_image'][s]:.0f}" for s in STAGES)
        lines.append(
            f"| {kind} | {r['images']} | {r['cpu_s_per_image']} | {r['lines_per_image']} | "
            f"{r['rec_width_median']:.0f} ({r['rec_width_max']}) | {stages} |"
        )
    lines += [
        "",
        "Stages in CPU milliseconds per image (one thread, one image at a time). Recognition runs once per "
        "text line at the model's height of 48 px, its width the line's own (at least 320 px) rounded up to "
        "64 px.",
        "",
        f"Reproduce: `{result['command']}`",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=30, help="images per kind (evenly spaced)")
    ap.add_argument("--kinds", nargs="+", default=list(text_images.KINDS), choices=list(text_images.KINDS))
    ap.add_argument("--config", default="fast", help="describer arm as in offline_describe.py")
    ap.add_argument("--text-dir", type=Path, default=text_images.DEFAULT_OUT)
    ap.add_argument(
        "--photos", type=Path, default=HERE.parent.parent / "shared" / "datasets" / "coco128" / "images"
    )
    ap.add_argument("--out", type=Path, default=HERE / "results" / "offline_stages")
    args = ap.parse_args()
    folders = text_images.generate(args.text_dir, {k: text_images.KINDS[k] for k in args.kinds}, args.photos)
    d = describer_for(args.config)
    d.prepare()
    result = {
        "benchmark": "offline_stages",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}",
        "config": args.config,
        "load_before": round(os.getloadavg()[0], 2),
        "command": f"python benchmarks/offline_stages.py --n {args.n}",
        "kinds": {},
    }
    for kind in args.kinds:
        files = subset(folders[kind] / "images", args.n)
        profile(files[:2], d)  # compile the models for this kind's first shapes
        result["kinds"][kind] = r = profile(files, d)
        print(kind, r, flush=True)
    result["load_after"] = round(os.getloadavg()[0], 2)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(f"wrote {args.out.with_suffix('.md')} and .json")


if __name__ == "__main__":
    main()
