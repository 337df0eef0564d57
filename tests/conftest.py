"""Shared helpers and fixtures: running the real CLI as a subprocess, generated image sets, and one small
study (offline describer, MiniLM, PCA) built once per test session and reused by read-only tests."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("NUMBA_CACHE_DIR", "/tmp/numba_cache")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", "/tmp/numba_cache")
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def connote_cmd(*args: str | os.PathLike) -> list[str]:
    return [sys.executable, "-m", "connote", *map(str, args)]


def run_cli(
    *args: str | os.PathLike, timeout: float = 600, check: bool = False
) -> subprocess.CompletedProcess:
    """``python -m connote ARGS`` in a real subprocess; stdout and stderr captured as text."""
    proc = subprocess.run(connote_cmd(*args), capture_output=True, text=True, timeout=timeout, env=cli_env())
    if check and proc.returncode != 0:
        raise AssertionError(
            f"connote {' '.join(map(str, args))} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


# Three visually distinct groups: a word written large on a coloured band (what the offline describer's
# OCR reads), each group with its own colour and word.
GROUPS = {"flood": ("FLOOD", (30, 60, 200)), "fire": ("FIRE", (220, 60, 20)), "vote": ("VOTE", (20, 160, 60))}


def make_group_images(folder: Path, per_group: int = 4) -> dict[str, list[str]]:
    """Write ``per_group`` PNGs for each group of :data:`GROUPS`; returns group -> file names."""
    from PIL import Image, ImageDraw, ImageFont

    folder.mkdir(parents=True, exist_ok=True)
    font = ImageFont.load_default(size=40)
    out: dict[str, list[str]] = {}
    for group, (word, colour) in GROUPS.items():
        for i in range(per_group):
            img = Image.new("RGB", (240, 120), "white")
            draw = ImageDraw.Draw(img)
            draw.rectangle([0, 0, 239, 20 + 2 * i], fill=colour)
            draw.text((20 + 6 * i, 45), word, fill="black", font=font)
            name = f"{group}-{i}.png"
            img.save(folder / name)
            out.setdefault(group, []).append(name)
    return out


def make_noise_images(folder: Path, n: int, size: int = 32, seed: int = 0) -> list[Path]:
    """``n`` small PNGs of random pixels, all with different content."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        path = folder / f"noise-{i:03d}.png"
        Image.fromarray(arr).save(path)
        paths.append(path)
    return paths


@dataclass
class SharedStudy:
    path: Path
    images: Path
    groups: dict[str, list[str]]
    run_id: int


@pytest.fixture(scope="session")
def shared_study(tmp_path_factory) -> SharedStudy:
    """One finished study (12 images in 3 groups; offline describer, MiniLM, PCA, HDBSCAN, keywords).

    Built in-process with the library once per session. Tests must not change it: copy it first.
    """
    from connote import steps

    base = tmp_path_factory.mktemp("shared")
    images = base / "images"
    groups = make_group_images(images)
    study_dir = base / "study"
    study = steps.init(study_dir, images, progress=False)
    steps.describe(study, "offline", progress=False)
    steps.embed(study, "minilm", progress=False)
    res = steps.cluster(study, "text", reduce="pca:components=5", min_cluster_size=3, seed=42)  # one run
    steps.explain(study, res.run_id)
    study.close()
    return SharedStudy(study_dir, images, groups, res.run_id)


def add_run(study, labels_by_path: dict[str, int], seed: int, reduce: str = "pca:components=5") -> int:
    """Store a clustering run with the given labels (image path -> cluster) directly, as a validation
    study would find it."""
    shas = {r["path"]: r["sha256"] for r in study.unique_images()}
    labels = {shas[p]: c for p, c in labels_by_path.items()}
    record = {
        "key": f"test-{reduce}-{seed}-{len(study.runs())}",
        "features": "text",
        "description_set": None,
        "embedder": "text:minilm",
        "reduce": reduce,
        "min_cluster_size": 5,
        "min_samples": None,
        "seed": seed,
        "n_items": len(labels),
        "n_clusters": len(set(labels.values()) - {-1}),
        "n_outliers": sum(1 for c in labels.values() if c == -1),
        "params": "{}",
    }
    return study.add_run(record, labels, None)


CHROMIUM = "/usr/bin/chromium"


@contextmanager
def chromium_page(**context_options):
    """``(page, errors)``: a page of Debian's headless Chromium driven by Playwright (never a downloaded
    browser), and the list its console errors and uncaught exceptions are collected in."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
            headless=True,
        )
        try:
            page = browser.new_context(**context_options).new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            yield page, errors
        finally:
            browser.close()


def fake_openai_env(monkeypatch, key: str, backoff_cap: float = 0.2) -> None:
    """Fast retries and a known API key (no base URL, no price table from the environment) for tests
    against the loopback fake OpenAI server."""
    from connote.describers import runner

    monkeypatch.setattr(runner, "BACKOFF_BASE", 0.02)
    monkeypatch.setattr(runner, "BACKOFF_CAP", backoff_cap)
    monkeypatch.setenv("OPENAI_API_KEY", key)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("CONNOTE_PRICES", raising=False)


def dead_pid() -> int:
    """The id of a process that has ended (what a process killed with -9 leaves behind)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def make_image_study(tmp_path: Path, n: int = 8):
    """A new study over ``n`` generated images (``tmp_path/images`` -> ``tmp_path/study``)."""
    from connote import steps
    from connote.testing import make_images

    make_images(tmp_path / "images", n)
    return steps.init(tmp_path / "study", tmp_path / "images", progress=False)


def describe_cmd(study: Path, srv, concurrency: int = 2, model: str = "gpt-4o-mini") -> list[str]:
    """``connote describe STUDY`` against a fake OpenAI server ``srv``, as a subprocess command line."""
    return connote_cmd(
        "describe", study, "--describer", f"openai:{model}", "--base-url", srv.base_url,
        "--concurrency", str(concurrency), "-q",
    )  # fmt: skip
