"""Writing never destroys what a study holds (issue 19): `export -o` onto the study's database, a vector
segment or an image is refused with one line naming the file and the reason; a study made inside its
images folder never scans its own thumbnails; a pair or set sample whose sheet could not be written is
not stored; written files follow the umask; a full disk is said as a full disk, naming the study. Real
files, real SQLite, the real CLI in a subprocess where the message is what is tested."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import add_run, make_group_images, make_noise_images, run_cli

from connote import steps
from connote.coding.pairs import sample_pairs
from connote.coding.sets import sample_sets
from connote.errors import UserError
from connote.reports import write_file
from connote.reports.thumbnails import make_thumbnails
from connote.safe_write import check_output, write_bytes
from connote.study import DB_NAME, Study


@pytest.fixture
def study(tmp_path):
    """A study over 8 noise images with one run of 2 clusters and its keywords (nothing described)."""
    make_noise_images(tmp_path / "images", 8)
    study = steps.init(tmp_path / "study", tmp_path / "images", progress=False)
    paths = sorted(r["path"] for r in study.unique_images())
    run = add_run(study, {p: i % 2 for i, p in enumerate(paths)}, seed=1)
    study.set_keywords(run, {c: [(f"word{c}", 1.0)] for c in range(2)}, {})
    keys = [r["sha256"] for r in study.unique_images()]
    study.save_vectors("text-test", keys, np.ones((len(keys), 4), dtype=np.float32))
    return study


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_export_refuses_the_study_and_its_images_and_loses_nothing(study, tmp_path):
    images = tmp_path / "images"
    segment = next((study.path / "vectors").rglob("seg-*"))
    (tmp_path / "db-link.csv").symlink_to(study.path / DB_NAME)
    study.con.execute("PRAGMA wal_checkpoint(FULL)")
    before_images = snapshot(images)
    before_vectors = segment.read_bytes()
    cases = {
        study.path / DB_NAME: "is the database of the study",
        study.path / f"{DB_NAME}-wal": "is the database of the study",
        segment: "is inside vectors/",
        study.path / "cache" / "reduce" / "x.npy": "is inside cache/",
        study.path / "journal" / "host-1.jsonl": "is inside journal/",
        study.path: "is a study folder",
        images / "noise-003.png": "is an image under the study's images folder",
        images / "new.JPG": "is an image file name under the study's images folder",
        tmp_path / "db-link.csv": "is the database of the study",
    }
    for target, reason in cases.items():
        with pytest.raises(UserError) as info:
            steps.export(study, path=target)
        msg = str(info.value)
        assert str(target) in msg and reason in msg and "\n" not in msg, msg
    # the real command: exit 2, one line, and the study still opens with its run and vectors
    proc = run_cli("export", study.path, "1", "-o", study.path / DB_NAME)
    assert proc.returncode == 2 and "Wrote" not in proc.stdout
    [line] = proc.stderr.strip().splitlines()
    assert f"{study.path / DB_NAME}: will not write there: it is the database of the study" in line
    with Study.open(study.path) as again:
        assert len(again.runs()) == 1 and again.count_unique_images() == 8
    assert segment.read_bytes() == before_vectors and snapshot(images) == before_images
    assert not list(images.glob("*.csv")) and not list(tmp_path.glob(".*.tmp"))
    # what may be written is: a file beside the images, a file in the study folder, a new file elsewhere
    for ok in (images / "clusters.csv", study.path / "run-1.csv", tmp_path / "out" / "run.parquet.csv"):
        assert steps.export(study, path=ok) == ok and ok.read_text().startswith("image,cluster")
    assert check_output(study.path / "report" / "thumbs" / "a.jpg", images_root=images)


def test_written_files_follow_the_umask(study, tmp_path):
    old = os.umask(0o022)
    try:
        exported = steps.export(study, path=tmp_path / "run.csv")
        sample = sample_pairs(study, 3, progress=False, thumb_size=16)
        thumbs = list((sample.sheet.parent / "thumbs").glob("*.jpg"))
        # files an earlier connote wrote 0600 and that are kept as they are get the umask's mode too
        for path in (thumbs[0], exported):
            path.chmod(0o600)
        paths = {r["sha256"]: study.image_file(r["path"]) for r in study.unique_images()}
        sha = thumbs[0].stem
        assert make_thumbnails(study, {sha: paths[sha]}, thumbs[0].parent, 16, progress=False)  # reused
        write_file(exported, exported.read_bytes())
        os.umask(0o077)
        private = write_bytes(tmp_path / "private.txt", b"x")
    finally:
        os.umask(old)
    for path in (exported, sample.sheet, sample.template, *thumbs):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert thumbs and stat.S_IMODE(private.stat().st_mode) == 0o600


def test_a_study_inside_its_images_folder_never_scans_itself(tmp_path):
    images = tmp_path / "images"
    make_noise_images(images, 6)
    inner = images / "study"
    study = steps.init(inner, images, progress=False)
    assert study.count_unique_images() == 6
    sample_pairs(study, 4, progress=False, thumb_size=16)  # JPEG thumbnails inside the images folder
    other = steps.init(images / "nested" / "other-study", images, progress=False)  # another study in it
    make_noise_images(images / "nested" / "other-study" / "report", 2, seed=7)
    other.close()
    assert list((inner / "validation").rglob("*.jpg"))
    again = steps.init(inner, images, progress=False)
    assert again.count_unique_images() == 6 and not [
        r["path"] for r in again.images(status=None) if "study" in r["path"]
    ]
    with pytest.raises(UserError, match="cannot be the images folder itself"):
        steps.init(images, images, progress=False)
    assert not (images / DB_NAME).exists()


def test_connote_run_twice_into_its_images_folder_keeps_its_images(tmp_path):
    """`connote run imgs -o imgs/study`, twice: the second run finds the same images, not its own report
    thumbnails too (before: 60 images became 120)."""
    images = tmp_path / "imgs"
    make_group_images(images, per_group=2)
    for _ in range(2):
        proc = run_cli("run", images, "-o", images / "study", "--min-cluster-size", "2", "-q", "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["init"]["found"] == 6
        assert list((images / "study" / "report" / "thumbs").glob("*.jpg"))


def test_a_sample_whose_sheet_fails_is_not_stored(study, tmp_path):
    good = sample_pairs(study, 3, name="good", progress=False, thumb_size=16)
    proc = run_cli("pairs", "sample", study.path, "--n", "3", "--thumb-size", "8", "--name", "bad")
    assert proc.returncode == 2 and "thumbnail size must be at least 16" in proc.stderr
    # a sheet that cannot be written (its file name taken by a folder): nothing stored either
    (study.path / "validation" / "bad2" / "coding.html").mkdir(parents=True)
    with pytest.raises(IsADirectoryError):
        sample_pairs(study, 3, name="bad2", progress=False, thumb_size=16)
    with Study.open(study.path) as s:
        assert [r["name"] for r in s.pair_samples()] == ["good"]
    # the coders' ratings go to the sample they rated (the latest stored one)
    ratings = tmp_path / "ann.csv"
    ratings.write_text("pair,coder,denotative,connotative\n1,ann,2,1\n2,ann,0,0\n")
    proc = run_cli("pairs", "import", study.path, ratings)
    assert proc.returncode == 0, proc.stderr
    with Study.open(study.path) as s:
        assert len(s.ratings(s.pair_sample("good")["id"])) == 4
    assert good.sheet.is_file()
    # the same for image sets
    with pytest.raises(UserError, match="thumbnail size must be at least 16"):
        sample_sets(study, per_cluster=1, size=2, name="badsets", progress=False, thumb_size=0)
    (study.path / "validation" / "badsets2" / "matching.html").mkdir(parents=True)
    with pytest.raises(IsADirectoryError):
        sample_sets(study, per_cluster=1, size=2, name="badsets2", progress=False, thumb_size=16)
    with Study.open(study.path) as s:
        assert s.set_samples() == []
    # a name in use is refused before any thumbnail of the new sample is made over the old one's
    marker = study.path / "validation" / "good" / "thumbs" / ".size"
    with pytest.raises(UserError, match="already a pair sample named 'good'"):
        sample_pairs(study, 3, name="good", progress=False, thumb_size=32)
    assert marker.read_text().strip() == "16"


FULL_SCRIPT = """
set -e
mount -t tmpfs -o size=2M tmpfs "$1"
"$2" -m connote init "$1/S" --images "$3" -q
dd if=/dev/zero of="$1/fill" bs=4k 2>/dev/null || true
"$2" -c "from connote.testing import make_images; make_images('$3', 300)"
set +e
"$2" -m connote init "$1/S" --images "$3" -q
echo "rc=$?"
"""


@pytest.mark.skipif(not shutil.which("unshare"), reason="needs unshare to mount a small file system")
def test_a_full_disk_is_said_as_such_naming_the_study(tmp_path):
    """A study on a 2 MB file system filled to the last byte: SQLite meets ENOSPC writing its WAL and
    reports an I/O error; connote says the disk is full and names the study."""
    mnt, images = tmp_path / "mnt", tmp_path / "images"
    mnt.mkdir()
    probe = subprocess.run(["unshare", "-r", "-m", "true"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip("user namespaces are not available here")
    make_noise_images(images, 3)
    proc = subprocess.run(
        ["unshare", "-r", "-m", "sh", "-c", FULL_SCRIPT, "sh", str(mnt), sys.executable, str(images)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    out = proc.stdout + proc.stderr
    assert "rc=2" in out, out
    assert f"error: {mnt}/S: the disk is full" in out and "network share" not in out, out
