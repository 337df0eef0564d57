"""The vector store (connote.study.vectors): memory-mapped segment files + an index in the database,
damage found when read and repaired by embed, appends that survive kill -9, old studies migrated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from connote import embedders
from connote.errors import UserError
from connote.study import Study, text_key
from connote.study import vectors as vec

NAME = "text:toy"


class ToyEmbedder:
    """A deterministic text embedder: the vector is a function of the text (so repairs can be checked)."""

    name = NAME
    spec = "toy"
    batch_size = 7

    def __init__(self, dim: int = 8):
        self.dim = dim
        self.seen: list[str] = []

    def params(self) -> dict:
        return {"dim": self.dim}

    def embed_texts(self, texts):
        self.seen += list(texts)
        return np.stack([toy_vector(t, self.dim) for t in texts])


def toy_vector(text: str, dim: int = 8) -> np.ndarray:
    rng = np.random.default_rng(int(text_key(text)[:8], 16))
    return rng.standard_normal(dim).astype(np.float32)


@pytest.fixture
def study(tmp_path):
    s = Study.create(tmp_path / "study")
    yield s
    s.close()


def texts(n: int, prefix: str = "t") -> dict[str, str]:
    return {f"{prefix}{i}": f"description number {i} of {prefix}" for i in range(n)}


def segment_files(study: Study, name: str = NAME) -> list:
    return sorted(study.vector_dir(name).glob("seg-*.f32"))


def test_one_file_per_embedder_rows_read_back_in_any_order(study):
    t = texts(50)
    s = embedders.embed_texts(study, ToyEmbedder(), t, progress=False)
    assert (s.total, s.computed, s.reused, s.dim, s.repaired) == (50, 50, 0, 8, 0)
    files = segment_files(study)
    assert len(files) == 1 and files[0].stat().st_size == 50 * 8 * 4
    assert not list(study.vector_dir(NAME).glob("*/*.npy"))  # no file per vector any more
    keys = [text_key(x) for x in t.values()][::-1]
    X = study.load_vectors(NAME, keys)
    assert X.shape == (50, 8) and np.array_equal(X, np.stack([toy_vector(x) for x in list(t.values())[::-1]]))
    again = embedders.embed_texts(study, ToyEmbedder(), t, progress=False)
    assert (again.computed, again.reused) == (0, 50)


def test_segments_roll_over_and_replaced_vectors_win(study, monkeypatch):
    monkeypatch.setattr(vec, "SEGMENT_BYTES", 10 * 8 * 4)  # ten rows per file
    t = texts(25)
    embedders.embed_texts(study, ToyEmbedder(), t, progress=False)
    assert len(segment_files(study)) == 3
    key = text_key(t["t3"])
    study.save_vector(NAME, key, np.full(8, 5.0))
    X = study.load_vectors(NAME, [text_key(x) for x in t.values()])
    assert np.all(X[3] == 5.0) and np.array_equal(X[24], toy_vector(t["t24"]))
    assert study.vectors.count(NAME) == 25


def _damage_one_row(path, row, dim=8):
    with open(path, "r+b") as fh:
        fh.seek(row * dim * 4 + 5)
        fh.write(b"\xff\x00\xee")


@pytest.mark.parametrize("damage", ["random", "truncated", "empty", "deleted", "one_row"])
def test_damage_is_named_when_read_and_embed_recomputes_it(study, damage):
    t = texts(20)
    embedders.embed_texts(study, ToyEmbedder(), t, progress=False)
    (path,) = segment_files(study)
    keys = [text_key(x) for x in t.values()]
    if damage == "random":
        path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))
        expect = 20
    elif damage == "truncated":
        os.truncate(path, 12 * 8 * 4 + 3)
        expect = 8
    elif damage == "empty":
        path.write_bytes(b"")
        expect = 20
    elif damage == "deleted":
        path.unlink()
        expect = 20
    else:
        _damage_one_row(path, 6)
        expect = 1
    with pytest.raises(UserError) as err:
        study.load_vectors(NAME, keys)
    msg = str(err.value)
    assert "\n" not in msg and f"{expect} of 20 {NAME} vectors are damaged" in msg
    assert isinstance(err.value, vec.DamagedVectors) and len(err.value.keys) == expect
    if damage == "one_row":
        assert list(err.value.keys) == [keys[6]] and keys[6][:12] in msg and "checksum" in msg
    emb = ToyEmbedder()
    s = embedders.embed_texts(study, emb, t, progress=False)
    assert s.repaired == expect and s.computed == expect and s.reused == 20 - expect
    assert s.damage and f"{expect} stored {NAME} vector(s) were damaged" in s.damage
    assert sorted(emb.seen) == sorted(x for x in t.values() if text_key(x) in err.value.keys)
    X = study.load_vectors(NAME, keys)  # repaired: every vector reads back and is right
    assert np.array_equal(X, np.stack([toy_vector(x) for x in t.values()]))


def test_cluster_features_on_damaged_vectors_is_one_line(study):
    from connote import steps

    rec = {"status": "ok", "reason": None, "width": 1, "height": 1, "format": "PNG", "bytes": 1}
    study.upsert_images([{"path": f"{i}.png", "sha256": f"{i:064x}", **rec} for i in range(6)])
    emb_name = "image:efficientnet-lite0"
    study.save_vectors(emb_name, [f"{i:064x}" for i in range(6)], np.ones((6, 4)))
    (path,) = segment_files(study, emb_name)
    _damage_one_row(path, 2, dim=4)
    with pytest.raises(UserError, match=r"1 of 6 image:efficientnet-lite0 vectors are damaged .*checksum"):
        steps.features(study, "image")


WRITER = textwrap.dedent(
    """
    import sys, numpy as np
    from connote.study import Study
    study = Study.open(sys.argv[1])
    tag = sys.argv[2]
    for i in range(100000):
        keys = [f"{tag}-{i}-{j}" for j in range(50)]
        X = np.full((50, 16), float(i), dtype=np.float32) + np.arange(50, dtype=np.float32)[:, None]
        study.save_vectors("text:toy", keys, X)
        if i == 2:
            print("ready", flush=True)
    """
)


def _check_all_stored(study: Study) -> int:
    rows = study.con.execute("SELECT key FROM vectors WHERE embedder=?", (NAME,)).fetchall()
    keys = [r[0] for r in rows]
    X = study.load_vectors(NAME, keys)  # raises if any stored row was corrupted
    for key, row in zip(keys, X):
        _, i, j = key.rsplit("-", 2)
        assert np.all(row == float(i) + float(j)), key
    return len(keys)


def test_append_killed_mid_write_never_corrupts_what_was_stored(tmp_path):
    path = tmp_path / "study"
    Study.create(path).close()
    stored = 0
    for round_ in range(3):  # bounded: three kills at different moments
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), f"r{round_}"], stdout=subprocess.PIPE, text=True
        )
        try:
            assert proc.stdout.readline().strip() == "ready"
            time.sleep(0.05 + 0.07 * round_)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        with Study.open(path) as study:
            n = _check_all_stored(study)
            assert n > stored
            stored = n
    with Study.open(path) as study:  # appending after the kills still works and keeps everything
        study.save_vectors(NAME, ["after-0-0"], np.zeros((1, 16)))
        assert _check_all_stored(study) == stored + 1


def test_two_processes_append_at_once(tmp_path):
    path = tmp_path / "study"
    Study.create(path).close()
    script = WRITER.replace("range(100000)", "range(20)").replace('print("ready", flush=True)', "pass")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(path), tag]) for tag in ("a", "b")]
    for p in procs:
        assert p.wait(timeout=120) == 0
    with Study.open(path) as study:
        assert _check_all_stored(study) == 2 * 20 * 50


def test_old_studies_vector_files_move_into_the_store_on_open(tmp_path):
    path = tmp_path / "study"
    t = texts(12)
    with Study.create(path) as study:
        study.register_embedder(NAME, "text", "toy", 8, {})
        folder = study.vector_dir(NAME)
        for x in t.values():
            key = text_key(x)
            (folder / key[:2]).mkdir(parents=True, exist_ok=True)
            np.save(folder / key[:2] / f"{key}.npy", toy_vector(x))
        broken = text_key("broken")
        (folder / broken[:2]).mkdir(exist_ok=True)
        (folder / broken[:2] / f"{broken}.npy").write_bytes(b"\x93NUMPY junk")
        (folder / broken[:2] / "leftover.npy.tmp").write_bytes(b"partial")
    with Study.open(path) as study:
        assert any("moved 12 vector file(s)" in n and "1 unreadable" in n for n in study.migration_notes)
        assert not list(study.vector_dir(NAME).glob("*/*")) and len(segment_files(study)) == 1
        X = study.load_vectors(NAME, [text_key(x) for x in t.values()])
        assert np.array_equal(X, np.stack([toy_vector(x) for x in t.values()]))
        assert not study.has_vector(NAME, broken)
    with Study.open(path) as study:  # nothing left to move
        assert study.migration_notes == []


def test_cli_names_damaged_vectors_in_one_line_and_rejects_a_bad_executor(tmp_path):
    from conftest import run_cli

    path = tmp_path / "study"
    with Study.create(path) as study:
        rec = {"status": "ok", "reason": None, "width": 1, "height": 1, "format": "PNG", "bytes": 1}
        study.upsert_images([{"path": f"{i}.png", "sha256": f"{i:064x}", **rec} for i in range(8)])
        study.save_vectors("image:efficientnet-lite0", [f"{i:064x}" for i in range(8)], np.eye(8))
        (seg,) = segment_files(study, "image:efficientnet-lite0")
    seg.write_bytes(np.random.default_rng(1).bytes(seg.stat().st_size))
    proc = run_cli("cluster", path, "--features", "image", "--reduce", "pca:components=2", timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "damaged" in ln]
    assert len(lines) == 1 and "8 of 8 image:efficientnet-lite0 vectors are damaged" in lines[0]
    assert "checksum mismatch in" in lines[0] and "connote embed" in lines[0]
    proc = run_cli("sweep", path, "--executor", "spark", timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "unknown executor 'spark'; use local, ray or ray:ADDRESS" in proc.stderr


def test_old_vector_files_not_moved_in_are_still_read(tmp_path):
    """A study opened read-only keeps its old one-file-per-vector folder (nothing is moved): reads fall
    back to those files, name a damaged one, and mix with vectors already in the store."""
    import sqlite3

    path = tmp_path / "study"
    t = texts(6)
    keys = [text_key(x) for x in t.values()]
    with Study.create(path) as study:
        study.save_vectors(NAME, keys[:2], np.stack([toy_vector(x) for x in list(t.values())[:2]]))
        folder = study.vector_dir(NAME)
        for x in list(t.values())[2:]:
            key = text_key(x)
            (folder / key[:2]).mkdir(parents=True, exist_ok=True)
            np.save(folder / key[:2] / f"{key}.npy", toy_vector(x))
    con = sqlite3.connect(f"file:{path / 'connote.db'}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    ro = Study(path, con)  # as a read-only open leaves it: no migration of the files
    X = ro.load_vectors(NAME, keys)
    assert np.array_equal(X, np.stack([toy_vector(x) for x in t.values()]))
    (folder / keys[4][:2] / f"{keys[4]}.npy").write_bytes(b"junk")
    with pytest.raises(vec.DamagedVectors, match="1 of 6"):
        ro.load_vectors(NAME, keys)
    con.close()
