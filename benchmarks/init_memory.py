"""Peak memory of ``connote init`` on folders of huge images (issue 9: a 688 KB PNG just under Pillow's
pixel limit took 2.9 GB).

Each case is a folder with one ordinary image and one huge one, checked by ``connote init`` in a fresh
process whose peak resident memory (``ru_maxrss``) is read back:

* ``png-144MP``: a 12,000 x 12,000 RGB PNG of one colour (a few hundred KB on disk): over the decode
  budget and not scalable on decode, so it is skipped with its reason, unread;
* ``jpeg-48MP``: an 8,000 x 6,000 JPEG: checked by decoding it at 1/8 of its size;
* ``jpeg-progressive-48MP``: the same, progressive (libjpeg holds every coefficient, counted as 6 bytes
  a pixel: 288 MB, within the 320 MB byte budget since issue 19, so checked too);
* ``png-35MP``: a 7,000 x 5,000 RGB PNG (140 MB decoded, within the budget): decoded whole;
* ``baseline``: the ordinary image alone.

    python benchmarks/init_memory.py [--out DIR]

Writes init_memory.json and .md to benchmarks/results/ (or --out). Target: every case under 400 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

from PIL import Image

from connote.testing import make_images

TARGET_MB = 400


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def flat_png(path: Path, width: int, height: int) -> None:
    comp = zlib.compressobj(9)
    row = b"\0" + b"\x80" * (3 * width)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")
    )


CASES = {
    "baseline": None,
    "png-144MP": lambda p: flat_png(p / "huge.png", 12_000, 12_000),
    "png-35MP": lambda p: flat_png(p / "big.png", 7_000, 5_000),
    "jpeg-48MP": lambda p: Image.new("RGB", (8000, 6000), (90, 120, 200)).save(p / "huge.jpg", quality=85),
    "jpeg-progressive-48MP": lambda p: Image.new("RGB", (8000, 6000), (90, 120, 200)).save(
        p / "huge-p.jpg", quality=85, progressive=True
    ),
}

# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent across exec.
PROBE = (
    "import sys; from connote.cli import main; rc = main(sys.argv[1:]); "
    "hwm = [ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0]; "
    "print('MAXRSS', hwm, flush=True); sys.exit(rc)"
)


def run_case(name: str, make, work: Path) -> dict:
    images = work / name / "images"
    make_images(images, 1)
    if make is not None:
        make(images)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, "init", str(work / name / "study"), "--images", str(images), "-q"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    seconds = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    rss_mb = int(out.split("MAXRSS")[1].split()[0]) / 1024 if "MAXRSS" in out else None
    skipped = [ln.strip() for ln in out.splitlines() if ln.startswith("  ") and ": " in ln]
    return {
        "case": name,
        "exit": proc.returncode,
        "peak_mb": round(rss_mb, 1) if rss_mb else None,
        "seconds": round(seconds, 2),
        "bytes_on_disk": sum(p.stat().st_size for p in images.iterdir()),
        "skipped": skipped,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_case(name, make, Path(tmp)) for name, make in CASES.items()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
    }
    (out / "init_memory.json").write_text(
        json.dumps({"meta": meta, "target_mb": TARGET_MB, "cases": rows}, indent=2)
    )
    lines = [
        "# Peak memory of `connote init` on huge images",
        "",
        f"Target: under {TARGET_MB} MB per case (before issue 9, a PNG like png-144MP took 2.9 GB). {meta}",
        "",
        "| case | peak MB | seconds | on disk | what init said |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rows:
        said = "; ".join(r["skipped"]) or "all usable"
        lines.append(
            f"| {r['case']} | {r['peak_mb']} | {r['seconds']} | {r['bytes_on_disk']:,} | {said[:160]} |"
        )
    (out / "init_memory.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
