"""Peak memory of reading huge 16-bit greyscale PNGs for a model (issue 19: eight 6300 x 6300 PNGs, under
the decode budget, took 7.67 GB in `describe`, 2.19 GB in `pairs sample --n 5` and 1.26 GB for one
image in the offline describer: a float64 copy of each image).

Each case runs in a fresh process whose peak resident memory (VmHWM) is read back:

* ``load-whole``: ``load_image`` of one image at full size (RGB);
* ``load-describer``: ``load_image(max_side=768, sha256=...)``, what a describer reads (hash checked);
* ``describe-openai-8``: ``connote describe`` of the eight images through the loopback fake OpenAI
  server, eight calls in flight;
* ``pairs-sample-5``: ``connote pairs sample --n 5`` (thumbnails of up to ten images, 8 threads);
* ``describe-offline-1``: ``connote describe --describer offline`` of a study of one such image (the
  models' own memory included).

    python benchmarks/decode_memory.py [--out DIR] [--label NAME] [--src DIR]

``--src`` runs the cases against another checkout's ``src`` (e.g. main's, for the numbers before).
Writes decode_memory[-LABEL].json and .md to benchmarks/results/ (or --out), with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from connote.images import sha256_file
from connote.testing import PEAK_PROBE, FakeOpenAI, gray16_png, peak_mb

SIDE = 6300
N_IMAGES = 8


def measure(args: list[str], env: dict) -> tuple[float | None, float, int, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", PEAK_PROBE, *args], capture_output=True, text=True, timeout=900, env=env
    )
    return peak_mb(proc.stderr), time.perf_counter() - t0, proc.returncode, (proc.stdout + proc.stderr)[-300:]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--label", default="")
    ap.add_argument("--src", help="the src folder of the connote to measure (default: this one)")
    args = ap.parse_args(argv)
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", OPENAI_API_KEY="sk-bench")
    if args.src:
        env["PYTHONPATH"] = str(Path(args.src).resolve())
    load_before = os.getloadavg()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, FakeOpenAI() as srv:
        tmp = Path(tmp)
        images = tmp / "images"
        images.mkdir()
        paths = [gray16_png(images / f"huge-{i}.png", SIDE, variant=i) for i in range(N_IMAGES)]
        one = tmp / "one"
        one.mkdir()
        gray16_png(one / "huge.png", SIDE, variant=99)
        study, study1 = tmp / "study", tmp / "study1"
        for s, folder in ((study, images), (study1, one)):
            subprocess.run(
                [sys.executable, "-m", "connote", "init", str(s), "--images", str(folder), "-q"],
                check=True,
                env=env,
                capture_output=True,
            )
        first, sha = str(paths[0]), sha256_file(paths[0])
        cases = {
            "load-whole": [f"from connote.images import load_image\nload_image({first!r})"],
            "load-describer": [  # main's load_image had no sha256 check
                "import inspect\nfrom connote.images import load_image\n"
                f"kw = dict(sha256={sha!r}) if 'sha256' in inspect.signature(load_image).parameters else {{}}\n"
                f"load_image({first!r}, max_side=768, **kw)"
            ],
            "describe-openai-8": [
                "-m", "connote", "describe", str(study), "--describer", "openai:gpt-4o-mini",
                "--base-url", srv.base_url, "--concurrency", str(N_IMAGES), "-q",
            ],
            "pairs-sample-5": ["-m", "connote", "pairs", "sample", str(study), "--n", "5", "-q"],
            "describe-offline-1": ["-m", "connote", "describe", str(study1), "--describer", "offline", "-q"],
        }  # fmt: skip
        for name, case in cases.items():
            mb, seconds, rc, tail = measure(case, env)
            rows.append({"case": name, "peak_mb": mb, "seconds": round(seconds, 1), "exit": rc})
            if rc != 0:
                rows[-1]["error"] = tail
            print(rows[-1], flush=True)
    meta = {
        "label": args.label or "this branch",
        "src": args.src or "this checkout",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "images": f"{N_IMAGES} x {SIDE}x{SIDE} 16-bit greyscale PNG (ramps)",
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "decode_memory" + (f"-{args.label}" if args.label else "")
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "cases": rows}, indent=2) + "\n")
    render(out, stem)


def render(out: Path, stem: str) -> None:
    """Write STEM.md from STEM.json, with the peaks of decode_memory-main.json beside them if present."""
    data = json.loads((out / f"{stem}.json").read_text())
    meta, rows = data["meta"], data["cases"]
    main_file = out / "decode_memory-main.json"
    before = {}
    if stem != "decode_memory-main" and main_file.is_file():
        before = {r["case"]: r["peak_mb"] for r in json.loads(main_file.read_text())["cases"]}
    lines = [
        f"# Peak memory reading huge 16-bit PNGs ({meta['label']})",
        "",
        f"{meta}",
        "",
        "| case | peak MB | seconds | exit |" + (" main's peak MB |" if before else ""),
        "|---|---:|---:|---:|" + ("---:|" if before else ""),
        *(
            f"| {r['case']} | {r['peak_mb']} | {r['seconds']} | {r['exit']} |"
            + (f" {before.get(r['case'])} |" if before else "")
            for r in rows
        ),
    ]
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
