"""The machine checks of the code, run by the test suite: ruff (style, and how long and tangled a function
may get: C901 and PLR09xx, limits in pyproject.toml) and mypy on src/ (configured in pyproject.toml)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_is_clean():
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert ruff, "ruff is in the test extra: pip install 'connote[test]'"
    out = run([ruff, "check", "src", "tests", "benchmarks"])
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_mypy_is_clean():
    assert importlib.util.find_spec("mypy"), "mypy is in the test extra: pip install 'connote[test]'"
    out = run([sys.executable, "-m", "mypy"])
    assert out.returncode == 0, out.stdout + out.stderr
