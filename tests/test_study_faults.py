"""Study folder faults, each through the real CLI on a real SQLite file: a damaged database (truncated,
header overwritten, 0 bytes, garbage pages), a read-only study folder (a read-only mount, or permissions
when not root), and a lock held too long. Each ends with one line naming the study and the reason, and
nothing is created over an existing database."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys

import pytest
from conftest import cli_env, connote_cmd, run_cli

from connote import steps
from connote.study import DB_NAME, Study
from connote.study.db import DamagedStudy, ReadOnlyStudy
from connote.testing import make_images


@pytest.fixture
def study_dir(shared_study, tmp_path):
    """A copy of the shared finished study (images, descriptions, vectors, a run)."""
    dest = tmp_path / "study"
    shutil.copytree(shared_study.path, dest)
    return dest


def one_error_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return lines[0]


def grow_database(study_dir, rows=400):
    """Make the database big enough that truncating it cuts real pages (the call log takes texts)."""
    with Study.open(study_dir) as s, s.transaction():
        for i in range(rows):
            s.record_call(stage="test", backend="x", output="y" * 1000, prompt=str(i))
    con = sqlite3.connect(study_dir / DB_NAME)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


@pytest.mark.parametrize("fault", ["truncated", "header", "empty", "garbage-pages"])
def test_damaged_database_is_named_with_how_to_recover(study_dir, fault):
    grow_database(study_dir)
    db = study_dir / DB_NAME
    size = db.stat().st_size
    if fault == "truncated":
        os.truncate(db, size // 3)
    elif fault == "header":
        with open(db, "r+b") as fh:
            fh.write(b"\0" * 100)
    elif fault == "empty":
        os.truncate(db, 0)
    else:  # pages in the middle overwritten: the header is fine, SQLite finds the damage while reading
        with open(db, "r+b") as fh:
            fh.seek(4096 * 2)
            fh.write(os.urandom(4096 * 20))
    before = db.read_bytes()
    commands = [["status"]]
    if fault == "garbage-pages":  # found only while reading: every reading command says so
        commands += [["runs"], ["export", "1", "-o", str(study_dir.parent / "x.csv")]]
    if fault == "empty":  # init never makes a new study over an existing database
        commands += [["init", "--images", str(study_dir.parent), "-q"]]
    for command in commands:
        line = one_error_line(run_cli(command[0], study_dir, *command[1:], timeout=120))
        assert str(study_dir) in line and "damaged" in line and ".recover" in line and "backup" in line, line
    assert db.read_bytes() == before  # nothing was written over it


def test_empty_database_is_not_turned_into_a_new_study(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / DB_NAME).write_bytes(b"")
    with pytest.raises(DamagedStudy, match="empty, 0 bytes"):
        Study.open(tmp_path / "s")
    with pytest.raises(DamagedStudy):
        Study.create(tmp_path / "s")
    assert (tmp_path / "s" / DB_NAME).stat().st_size == 0


def in_read_only_folder(folder, args: list[str]) -> subprocess.CompletedProcess:
    """Run connote with ``folder`` read-only: a read-only bind mount in a private mount namespace when
    root (root ignores permission bits), the permission bits otherwise."""
    cmd = connote_cmd(*args)
    if os.geteuid() == 0:
        if not shutil.which("unshare"):
            pytest.skip("needs unshare for a read-only mount")
        f = str(folder)
        script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && shift && exec "$@"'
        probe = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", f, "true"], capture_output=True)
        if probe.returncode != 0:
            pytest.skip(f"cannot make a read-only mount here: {probe.stderr.decode()[-200:]}")
        full = ["unshare", "-m", "sh", "-c", script, "sh", f, *cmd]
        return subprocess.run(full, capture_output=True, text=True, timeout=300, env=cli_env())
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            os.chmod(os.path.join(root, name), 0o555 if name in dirs else 0o444)
    os.chmod(folder, 0o555)
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=cli_env())
    finally:
        for root, dirs, _files in os.walk(folder):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o755)
        os.chmod(folder, 0o755)


def test_read_only_study_reads_and_refuses_writes_with_a_clear_line(study_dir, tmp_path):
    out_csv = tmp_path / "out" / "export.csv"
    out_csv.parent.mkdir()
    snapshot = {p: p.read_bytes() for p in study_dir.rglob("*") if p.is_file()}
    status = in_read_only_folder(study_dir, ["status", study_dir])
    assert status.returncode == 0 and "images: 12 usable" in status.stdout, status.stderr[-2000:]
    runs = in_read_only_folder(study_dir, ["runs", study_dir, "--json"])
    assert runs.returncode == 0 and '"n_clusters"' in runs.stdout, runs.stderr[-2000:]
    export = in_read_only_folder(study_dir, ["export", study_dir, "-o", out_csv])
    assert export.returncode == 0 and out_csv.read_text().startswith("image,cluster"), export.stderr[-2000:]
    # the default export file would go inside the study: say so, in one line
    line = one_error_line(in_read_only_folder(study_dir, ["export", study_dir]))
    assert "cannot write" in line and "read-only" in line
    line = one_error_line(in_read_only_folder(study_dir, ["report", study_dir, "-q"]))
    assert "cannot write" in line or "read-only" in line, line
    for args in (["describe", study_dir, "-q"], ["embed", study_dir, "-q"]):
        line = one_error_line(in_read_only_folder(study_dir, args))
        assert str(study_dir) in line and "read-only" in line, line
    line = one_error_line(
        in_read_only_folder(
            study_dir, ["cluster", study_dir, "--reduce", "pca:components=3", "--min-cluster-size", "2"]
        )
    )
    assert "read-only" in line
    after = {p: p.read_bytes() for p in study_dir.rglob("*") if p.is_file()}
    assert after == snapshot  # nothing in the folder changed


def test_read_only_study_with_unmerged_wal_says_to_copy_it(study_dir):
    with Study.open(study_dir) as s:  # a writer that is still running when the folder is archived
        s.set_meta("note", "x")
        keep = sqlite3.connect(study_dir / DB_NAME)
        keep.execute("PRAGMA wal_autocheckpoint=0")
        keep.execute("INSERT OR REPLACE INTO meta VALUES ('late', 'y')")
        if not (study_dir / (DB_NAME + "-wal")).stat().st_size:
            pytest.skip("no WAL content to test with")
        shutil.copytree(study_dir, study_dir.parent / "archived")
        keep.close()
    # without its -shm file SQLite cannot read the WAL from a read-only folder (with it, it can)
    (study_dir.parent / "archived" / (DB_NAME + "-shm")).unlink()
    line = one_error_line(
        in_read_only_folder(study_dir.parent / "archived", ["status", study_dir.parent / "archived"])
    )
    assert "read-only" in line and "connote.db-wal" in line and "copy" in line


def test_locked_database_is_named_not_a_traceback(tmp_path):
    """Readers never wait in WAL mode; a writer waits for the lock, then says who holds it."""
    from connote.study import db

    make_images(tmp_path / "images", 2)
    steps.init(tmp_path / "s", tmp_path / "images", progress=False).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
            "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(30)",
            str(tmp_path / "s" / DB_NAME),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        code = (
            "import sys; from connote.study import db; db.BUSY_TIMEOUT_S = 1; "
            "from connote.cli import main; sys.exit(main(sys.argv[1:]))"
        )
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                code,
                "init",
                str(tmp_path / "s"),
                "--images",
                str(tmp_path / "images"),
                "-q",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env=cli_env(),
        )
    finally:
        holder.kill()
        holder.wait()
    line = one_error_line(proc)
    assert "locked by another connote process for 1 s" in line and str(tmp_path / "s") in line, line
    assert db.explain(sqlite3.OperationalError("database is locked"), "S").startswith(
        "S: the study's database"
    )


def test_file_errors_are_one_line(tmp_path):
    from connote.study.db import explain

    assert explain(IsADirectoryError(21, "Is a directory", "/tmp"), "S") == "/tmp: is a directory"
    missing = FileNotFoundError(2, "No such file or directory", "/no/such/dir/x.csv")
    assert explain(missing, "S") == "/no/such/dir/x.csv: no such file or directory"
    assert explain(OSError("no file named"), "S") is None  # not a known fault: the traceback stays


def test_read_only_errors_in_the_library(tmp_path):
    with pytest.raises(ReadOnlyStudy):
        s = Study.__new__(Study)
        s.path, s.readonly = tmp_path, True
        s.require_writable("describe")
