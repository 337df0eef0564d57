"""Kill `connote describe` with SIGKILL part-way, run it again: only what was missing is described.

The offline describer stores each batch as it finishes (``--batch-size 2`` gives many commit points), so
after a kill the study holds whole descriptions only, and the next run picks up the rest. Every image is
described exactly once overall, as the call log shows.
"""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import time

import pytest
from conftest import cli_env, connote_cmd, make_noise_images, run_cli

N_IMAGES = 32
WAIT_S = 300  # upper bound on waiting for the first descriptions (model loading included)


def ro_connect(db):
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)


def count(db, sql: str) -> int:
    con = ro_connect(db)
    try:
        return int(con.execute(sql).fetchone()[0])
    except sqlite3.OperationalError:  # the describe set's tables may not be readable yet
        return 0
    finally:
        con.close()


@pytest.mark.slow
def test_killed_describe_resumes_without_describing_twice(tmp_path):
    images = tmp_path / "images"
    make_noise_images(images, N_IMAGES, seed=11)
    study = tmp_path / "study"
    run_cli("init", study, "--images", images, "-q", check=True)
    db = study / "connote.db"

    proc = subprocess.Popen(
        connote_cmd("describe", study, "-q", "--batch-size", "2"),
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and proc.poll() is None:
            if count(db, "SELECT COUNT(*) FROM descriptions") >= 4:
                break
            time.sleep(0.1)
        assert proc.poll() is None, f"describe ended before it could be killed:\n{proc.stdout.read()}"
        assert count(db, "SELECT COUNT(*) FROM descriptions") >= 4, "no descriptions within the time limit"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    done = count(db, "SELECT COUNT(*) FROM descriptions WHERE status='ok'")
    assert 4 <= done < N_IMAGES, done
    # a kill leaves whole descriptions only: every stored one has its text and its logged call
    assert count(db, "SELECT COUNT(*) FROM descriptions WHERE text IS NULL OR text = ''") == 0
    assert (
        count(
            db, "SELECT COUNT(*) FROM descriptions d LEFT JOIN calls c ON c.id = d.call_id WHERE c.id IS NULL"
        )
        == 0
    )

    again = run_cli("describe", study, "-q", "--batch-size", "2", check=True)
    m = re.search(r"Described (\d+) image\(s\) now; (\d+) were already described", again.stdout)
    assert m, again.stdout
    assert (int(m.group(1)), int(m.group(2))) == (N_IMAGES - done, done)

    con = ro_connect(db)
    try:
        shas = {r[0] for r in con.execute("SELECT sha256 FROM images WHERE status='ok'")}
        per_image = dict(
            con.execute(
                "SELECT input_ref, COUNT(*) FROM calls WHERE stage='describe' GROUP BY input_ref"
            ).fetchall()
        )
        n_desc = con.execute("SELECT COUNT(*) FROM descriptions WHERE status='ok'").fetchone()[0]
    finally:
        con.close()
    assert len(shas) == N_IMAGES
    assert set(per_image) == shas
    assert all(n == 1 for n in per_image.values()), {k[:8]: n for k, n in per_image.items() if n != 1}
    assert n_desc == N_IMAGES

    # a third run has nothing left to do
    third = run_cli("describe", study, "-q", check=True)
    assert f"Described 0 image(s) now; {N_IMAGES} were already described" in third.stdout
