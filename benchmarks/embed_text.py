"""Benchmark: MiniLM (S2) on PyTorch (sentence-transformers) against OpenVINO (float32 and bfloat16),
side by side.

    python benchmarks/embed_text.py                       # transcripts + 10,000 generated paragraphs
    python benchmarks/embed_text.py --generated 2000      # fewer generated paragraphs (a shared machine)

Texts: the 998 MultiClimate frames' video title + transcript sentence (../shared/datasets) and
``--generated`` near-unique paragraphs of the fake describer (connote.testing.fake_content.varied_text).
Each arm embeds the same texts the way ``connote embed`` does (the runner, its batches, a fresh SQLite
study), after its model is loaded (load time reported apart). Arms are interleaved, transcripts first.
Reported per arm and text set: texts/s, CPU ms per text (all threads), the load average before and
after; for each OpenVINO arm against PyTorch: the ratio, and the smallest cosine between the two vectors
of a text. On the transcripts, every arm's study is clustered with the same settings (UMAP + HDBSCAN seed
42, and PCA + HDBSCAN): the labels are compared with PyTorch's. The bfloat16 arm runs only on CPUs that
compute in bfloat16.

Writes benchmarks/results/embed_text.json and .md.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ARMS = ("torch", "openvino", "openvino-bf16")


def transcripts() -> list[str]:
    for base in [os.environ.get("CONNOTE_SHARED"), HERE.parent.parent / "shared", Path("/work/shared")]:
        path = Path(base or "-") / "datasets" / "multiclimate_frames" / "labels.csv"
        if path.is_file():
            with open(path, newline="", encoding="utf-8") as fh:
                return [f"{r['label']}. {r['transcript']}" for r in csv.DictReader(fh)]
    raise SystemExit("../shared/datasets/multiclimate_frames not found (set CONNOTE_SHARED)")


def generated(n: int) -> list[str]:
    from connote.testing.fake_content import varied_text

    return [varied_text(hashlib.sha256(str(i).encode()).hexdigest()) for i in range(n)]


def study_of(path: Path, texts: list[str]):
    """A fresh study holding ``texts`` as one imported description set (one image per text)."""
    from connote.study import Study

    study = Study.create(path)
    set_id = study.description_set("texts", "imported:benchmark", None, None, {})
    for i, text in enumerate(texts):
        study.put_description(set_id, hashlib.sha256(f"img{i}".encode()).hexdigest(), text)
    return study


def embedder(arm: str):
    from connote import registry

    emb = registry.text_embedder("minilm", runtime=arm)
    t = time.perf_counter()
    emb.embed_texts(["warm up"] * 8)  # loads the model (OpenVINO: reads the converted model, compiles)
    return emb, time.perf_counter() - t


def run_arm(emb, study, texts: list[str]) -> dict:
    from connote import embedders

    load0 = os.getloadavg()
    t, c = time.perf_counter(), time.process_time()
    embedders.embed_texts(study, emb, {i: x for i, x in enumerate(texts)}, progress=False)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    return {
        "texts": len(texts),
        "seconds": round(wall, 2),
        "texts_per_s": round(len(texts) / wall, 1),
        "cpu_ms_per_text": round(1000 * cpu / len(texts), 2),
        "load_before": [round(x, 2) for x in load0],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def vectors(study, emb, texts: list[str]) -> np.ndarray:
    from connote.study import text_key

    return study.load_vectors(emb.name, [text_key(t) for t in texts])


def assignments(study, **settings) -> np.ndarray:
    from connote import steps

    run = steps.cluster(study, **settings)  # each study holds one runtime's vectors: the default finds them
    rows = study.con.execute("SELECT cluster FROM assignments WHERE run_id=? ORDER BY sha256", (run.run_id,))
    return np.array([r[0] for r in rows])


def compare_labels(studies: dict) -> dict:
    """Each OpenVINO arm's labels against PyTorch's with the same settings: the default (UMAP + HDBSCAN)
    seed 42, and PCA (no randomness) + HDBSCAN; beside them the yardstick, PyTorch seed 42 against 48."""
    from sklearn.metrics import adjusted_rand_score

    out = {}
    for setting, kw in {
        "default (UMAP), seed 42": {"seed": 42},
        "pca:components=5": {"seed": 42, "reduce": "pca:components=5"},
    }.items():
        got = {arm: assignments(study, **kw) for arm, study in studies.items()}
        for arm in got:
            if arm != "torch":
                out[f"{setting}: {arm} vs torch"] = {
                    "identical": bool(np.array_equal(got["torch"], got[arm])),
                    "ari": round(float(adjusted_rand_score(got["torch"], got[arm])), 4),
                    "clusters": {a: int(len(set(got[a].tolist()) - {-1})) for a in ("torch", arm)},
                }
    seed48 = assignments(studies["torch"], seed=48)
    out["yardstick: torch seed 42 vs 48 (default)"] = {
        "ari": round(float(adjusted_rand_score(assignments(studies["torch"], seed=42), seed48)), 4)
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generated", type=int, default=10_000)
    ap.add_argument("--out", default=str(HERE / "results" / "embed_text"))
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    sets = {
        "MultiClimate transcripts": transcripts(),
        f"{args.generated} generated paragraphs": generated(args.generated),
    }
    from connote.models import openvino_runtime

    arms = [a for a in ARMS if a != "openvino-bf16" or openvino_runtime.has_bf16()]
    ems = {arm: embedder(arm) for arm in arms}
    results: dict = {"arms": arms, "load_seconds": {arm: round(ems[arm][1], 2) for arm in arms}, "sets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, texts in sets.items():
            out, got = {}, {}
            for arm in arms:
                study = study_of(Path(tmp) / f"{arm}-{len(out)}-{len(texts)}", texts)
                out[arm] = run_arm(ems[arm][0], study, texts)
                got[arm] = (study, vectors(study, ems[arm][0], texts))
                print(name, arm, out[arm], flush=True)
            out["vs_torch"] = {}
            for arm in arms[1:]:
                cos = np.sum(got["torch"][1] * got[arm][1], axis=1)
                out["vs_torch"][arm] = {
                    "texts_per_s_ratio": round(out[arm]["texts_per_s"] / out["torch"]["texts_per_s"], 2),
                    "cpu_ratio": round(out["torch"]["cpu_ms_per_text"] / out[arm]["cpu_ms_per_text"], 2),
                    "min_cosine": float(cos.min()),
                    "max_abs_difference": float(np.abs(got["torch"][1] - got[arm][1]).max()),
                }
            if name.startswith("MultiClimate"):
                out["labels"] = compare_labels({arm: got[arm][0] for arm in arms})
            print(name, out["vs_torch"], out.get("labels"), flush=True)
            results["sets"][name] = out
    results["machine"] = (
        f"{platform.machine()} ({platform.processor() or 'CPU'}), {os.cpu_count()} CPU(s), "
        f"Python {platform.python_version()}; the load average before and after each arm is in the table"
    )
    Path(args.out + ".json").write_text(json.dumps(results, indent=2) + "\n")
    Path(args.out + ".md").write_text(markdown(results))


def markdown(r: dict) -> str:
    lines = [
        "# MiniLM (S2): PyTorch against OpenVINO (float32, bfloat16)",
        "",
        "`python benchmarks/embed_text.py` — each arm embeds the same texts through connote's embed runner",
        "into a fresh study (batches, SQLite store included; model load apart). Machine: "
        + r["machine"]
        + ".",
        f"Model load (s): {r['load_seconds']}.",
        "",
        "| texts | arm | texts/s | CPU ms/text | load before | load after |",
        "|---|---|---:|---:|---|---|",
    ]
    for name, out in r["sets"].items():
        for arm in r["arms"]:
            a = out[arm]
            lines.append(
                f"| {name} | {arm} | {a['texts_per_s']} | {a['cpu_ms_per_text']} | "
                f"{a['load_before']} | {a['load_after']} |"
            )
    lines += [
        "",
        "| texts | arm against torch | texts/s ratio | CPU ratio | min cosine | max abs difference |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, out in r["sets"].items():
        for arm, o in out["vs_torch"].items():
            lines.append(
                f"| {name} | {arm} | {o['texts_per_s_ratio']} | {o['cpu_ratio']} | {o['min_cosine']:.7f} | "
                f"{o['max_abs_difference']:.2e} |"
            )
    for name, out in r["sets"].items():
        if out.get("labels"):
            lines += ["", f"Labels on the {name}, the same run settings on each runtime's vectors:", ""]
            lines += [f"* {setting}: {json.dumps(v)}" for setting, v in out["labels"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
