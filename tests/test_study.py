"""The study folder: SQLite schema and migrations, description sets, vectors, runs, export rows."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from connote import steps
from connote.errors import UserError
from connote.study import DB_NAME, Study, slug, text_key
from connote.study.schema import MIGRATIONS, SCHEMA_VERSION, current_version

TABLES = {
    "meta",
    "images",
    "description_sets",
    "descriptions",
    "calls",
    "embedders",
    "runs",
    "assignments",
    "keywords",
}
SHA = {name: (name * 64)[:64] for name in "abcdef"}


def image_record(path: str, sha: str | None, status: str = "ok", reason: str | None = None) -> dict:
    ok = status == "ok"
    return {
        "path": path,
        "sha256": sha,
        "status": status,
        "reason": reason,
        "width": 10 if ok else None,
        "height": 8 if ok else None,
        "format": "PNG" if ok else None,
        "bytes": 100,
    }


@pytest.fixture
def study(tmp_path):
    (tmp_path / "images").mkdir()
    s = Study.create(tmp_path / "study", tmp_path / "images")
    yield s
    s.close()


# ------------------------------------------------------------------------------------------ schema
def test_schema_wal_and_version(study):
    con = sqlite3.connect(study.path / DB_NAME)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert tables >= TABLES
        assert con.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
        assert current_version(con) == SCHEMA_VERSION
        assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(
            SCHEMA_VERSION
        )
    finally:
        con.close()
    assert study.schema_version == SCHEMA_VERSION
    assert study.get_meta("created")
    assert study.images_root == (study.path.parent / "images").resolve()


def test_reopen_keeps_everything_and_does_not_migrate_again(study, tmp_path):
    study.upsert_images([image_record("a.png", SHA["a"])])
    study.set_meta("note", "kept")
    created = study.get_meta("created")
    study.close()
    again = Study.open(tmp_path / "study")
    try:
        assert [r["path"] for r in again.images()] == ["a.png"]
        assert again.get_meta("note") == "kept"
        assert again.get_meta("created") == created
        assert current_version(again.con) == SCHEMA_VERSION
    finally:
        again.close()
    # create() on an existing study reuses it; another images folder is refused
    same = Study.create(tmp_path / "study", tmp_path / "images")
    assert len(same.images()) == 1
    same.close()
    (tmp_path / "other").mkdir()
    with pytest.raises(UserError, match="already holds images"):
        Study.create(tmp_path / "study", tmp_path / "other")


def test_newer_schema_is_refused_with_a_clear_error(study, tmp_path):
    study.set_meta("schema_version", str(SCHEMA_VERSION + 1))
    study.close()
    with pytest.raises(UserError) as info:
        Study.open(tmp_path / "study")
    msg = str(info.value)
    assert "newer connote" in msg and f"schema {SCHEMA_VERSION + 1}" in msg and "upgrade" in msg


def test_older_database_is_migrated_forward(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    con = sqlite3.connect(folder / DB_NAME)  # a database of schema version 1
    con.executescript(MIGRATIONS[0] + "\nINSERT INTO meta VALUES ('schema_version', '1');")
    con.close()
    s = Study.open(folder)
    try:
        assert current_version(s.con) == SCHEMA_VERSION
    finally:
        s.close()


def test_not_a_study(tmp_path):
    with pytest.raises(UserError, match="not a connote study"):
        Study.open(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        Study.create(tmp_path / "file")
    bare = Study.create(tmp_path / "bare")
    with pytest.raises(UserError, match="no images added yet"):
        _ = bare.images_root
    bare.close()


def test_images_and_unique_images(study):
    study.upsert_images(
        [
            image_record("b/dup.png", SHA["a"]),
            image_record("a.png", SHA["a"]),
            image_record("c.png", SHA["b"]),
            image_record("bad.jpg", None, "skipped", "empty file (0 bytes)"),
        ]
    )
    assert [r["path"] for r in study.images()] == ["a.png", "b/dup.png", "c.png"]
    assert len(study.images(status=None)) == 4
    assert study.images(status="skipped")[0]["reason"] == "empty file (0 bytes)"
    uniq = [(r["sha256"], r["path"], r["copies"]) for r in study.unique_images()]
    assert uniq == [(SHA["a"], "a.png", 2), (SHA["b"], "c.png", 1)]
    # upsert updates in place
    study.upsert_images([image_record("c.png", SHA["c"])])
    assert {r["path"]: r["sha256"] for r in study.images()}["c.png"] == SHA["c"]


# ------------------------------------------------------------------------------------------ descriptions
def test_description_sets_side_by_side(study):
    s1 = study.description_set("offline", "offline", "m1", None, {"top_labels": 5})
    s2 = study.description_set("openai:gpt-4o", "openai:gpt-4o", "gpt-4o", "Describe.", {})
    assert s1 != s2
    assert study.description_set("offline", "offline", "m1", None, {}) == s1  # same name, same set
    with pytest.raises(UserError, match="another model or prompt"):
        study.description_set("offline", "offline", "m1", "Another prompt", {})
    study.put_description(s1, SHA["a"], "a red square")
    study.put_description(s2, SHA["a"], "danger and urgency")
    study.put_description(s2, SHA["b"], None, "failed", "refused")
    assert study.descriptions(s1) == {SHA["a"]: "a red square"}
    assert study.descriptions(s2) == {SHA["a"]: "danger and urgency"}
    assert study.descriptions(s2, status=None) == {SHA["a"]: "danger and urgency", SHA["b"]: None}
    assert study.resolve_description_set()["id"] == s2  # the latest is the default
    assert study.resolve_description_set("offline")["id"] == s1
    with pytest.raises(UserError, match="known: offline, openai:gpt-4o"):
        study.resolve_description_set("nope")
    counts = {r["name"]: (r["n_ok"], r["n_bad"]) for r in study.description_sets()}
    assert counts == {"offline": (1, 0), "openai:gpt-4o": (1, 1)}
    assert json.loads(study.description_sets()[0]["params"]) == {"top_labels": 5}
    # a new description replaces the old one of the same image in the same set
    study.put_description(s1, SHA["a"], "a crimson square", attempts=2)
    assert study.descriptions(s1) == {SHA["a"]: "a crimson square"}
    assert study.description_rows(s1)[0]["attempts"] == 2


def test_no_description_set_yet(study):
    with pytest.raises(UserError, match="no descriptions yet"):
        study.resolve_description_set()


def test_call_log(study):
    cid = study.record_call(
        stage="describe",
        backend="openai:gpt-4o",
        input_ref=SHA["a"],
        params={"t": 0},
        output="text",
        input_tokens=10,
        output_tokens=5,
        cost_usd=0.25,
        latency_s=1.5,
    )
    study.record_call(stage="embed", backend="minilm", cost_usd=0.5)
    study.record_call(stage="describe", backend="x", status="error", error="boom")
    rows = study.calls("describe")
    assert [r["id"] for r in rows][0] == cid and len(rows) == 2
    assert rows[0]["input_ref"] == SHA["a"] and json.loads(rows[0]["params"]) == {"t": 0}
    assert rows[1]["status"] == "error" and rows[1]["error"] == "boom"
    assert len(study.calls()) == 3
    assert study.total_cost() == pytest.approx(0.75)


def test_latest_call_a_good_answer_first_then_the_latest(study):
    """The call-log lookup of labels and the LLM coders: only the statuses asked for, a good answer before
    any flagged one (even a newer one), otherwise the newest; never another stage's or input's call."""

    def call(status: str, ref: str = "k", stage: str = "label") -> int:
        return study.record_call(stage=stage, backend="b", input_ref=ref, output=status, status=status)

    assert study.latest_call("label", "k") is None
    first_flagged = call("flagged")
    assert study.latest_call("label", "k") is None  # ok only, by default
    assert study.latest_call("label", "k", ("ok", "flagged"))["id"] == first_flagged
    good = call("ok")
    call("flagged")
    call("ok", ref="other")
    call("ok", stage="rate")
    call("error")
    assert study.latest_call("label", "k")["id"] == good
    assert study.latest_call("label", "k", ("ok", "flagged"))["id"] == good
    newest_flagged = call("flagged")
    assert study.latest_call("label", "k", ("flagged",))["id"] == newest_flagged
    assert study.latest_call("label", "k", ("ok", "flagged"))["output"] == "ok"


# ------------------------------------------------------------------------------------------ vectors
def test_vectors_saved_and_loaded(study):
    name = "text:minilm"
    key = text_key("a red square")
    v = np.arange(6, dtype=np.float64) / 7
    study.save_vector(name, key, v)
    assert study.vector_dir(name).name == slug(name) and ":" not in slug(name)
    assert study.has_vector(name, key)
    assert not study.has_vector(name, "f" * 64)
    k2 = text_key("another")
    study.save_vector(name, k2, np.ones(6))
    X = study.load_vectors(name, [key, k2])
    assert X.shape == (2, 6) and X.dtype == np.float32
    assert np.allclose(X[0], v.astype(np.float32))
    study.save_vector(name, key, np.zeros(6))  # overwrite
    assert np.all(study.load_vectors(name, [key])[0] == 0)
    with pytest.raises(UserError, match="1 of 2 inputs have no text:minilm vector"):
        study.load_vectors(name, [key, text_key("missing")])
    study.register_embedder(name, "text", "minilm", 6, {"normalize": True})
    study.register_embedder(name, "text", "minilm", None, {})  # the dimension is kept
    assert [(e["name"], e["dim"]) for e in study.embedders()] == [(name, 6)]


# ------------------------------------------------------------------------------------------ runs
def run_record(key: str, n_clusters: int = 2) -> dict:
    return {
        "key": key,
        "features": "text",
        "description_set": "offline",
        "embedder": "text:minilm",
        "reduce": "pca:components=5",
        "min_cluster_size": 2,
        "min_samples": None,
        "seed": 42,
        "n_items": 4,
        "n_clusters": n_clusters,
        "n_outliers": 1,
        "params": json.dumps({"seed": 42}),
    }


def test_runs_assignments_keywords_round_trip(study):
    labels = {SHA["a"]: 0, SHA["b"]: 0, SHA["c"]: 1, SHA["d"]: -1}
    r1 = study.add_run(run_record("k1"), labels, {SHA["a"]: 0.9, SHA["b"]: 1.0, SHA["c"]: 0.5, SHA["d"]: 0.0})
    r2 = study.add_run(run_record("k2", 1), {SHA["a"]: 0}, None)
    assert study.find_run("k1")["id"] == r1 and study.find_run("nope") is None
    assert study.get_run()["id"] == r2  # the latest by default
    assert study.get_run(str(r1))["n_clusters"] == 2
    assert study.assignments(r1) == labels
    probs = dict(
        study.con.execute("SELECT sha256, probability FROM assignments WHERE run_id=?", (r1,)).fetchall()
    )
    assert probs[SHA["a"]] == pytest.approx(0.9)
    assert (
        study.con.execute("SELECT probability FROM assignments WHERE run_id=?", (r2,)).fetchone()[0] is None
    )
    with pytest.raises(UserError, match="run id: expected a whole number"):
        study.get_run("latest")
    with pytest.raises(UserError, match=f"no run 99 .*runs: {r1}, {r2}"):
        study.get_run(99)
    # Same key twice (e.g. two processes computing one run): the stored run is returned, nothing added.
    assert study.add_run(run_record("k1"), {SHA["e"]: 0}, None) == r1
    assert study.add_run_if_new(run_record("k1"), {SHA["e"]: 0}, None) == (r1, False)
    assert [r["id"] for r in study.runs()] == [r1, r2]
    assert (
        study.con.execute("SELECT COUNT(*) FROM assignments WHERE sha256=?", (SHA["e"],)).fetchone()[0] == 0
    )

    study.set_keywords(r1, {0: [("flood", 0.9), ("water", 0.3)], 1: [("fire", 0.8)]}, {"top_k": 10})
    assert study.keywords(r1) == {0: ["flood", "water"], 1: ["fire"]}
    study.set_keywords(r1, {0: [("rain", 0.5)]}, {"top_k": 1})  # replaces
    assert study.keywords(r1) == {0: ["rain"]}
    assert study.keywords(r2) == {}


def test_export_rows_columns_and_content(study):
    study.upsert_images(
        [
            image_record("a.png", SHA["a"]),
            image_record("copy/a.png", SHA["a"]),
            image_record("b.png", SHA["b"]),
            image_record("c.png", SHA["c"]),
            image_record("nodesc.png", SHA["e"]),
            image_record("broken.jpg", None, "skipped", "truncated or damaged image data"),
        ]
    )
    sid = study.description_set("offline", "offline", None, None, {})
    for k, text in (("a", "flood water"), ("b", "flood river"), ("c", "a cat")):
        study.put_description(sid, SHA[k], text)
    run_id = study.add_run(run_record("k"), {SHA["a"]: 0, SHA["b"]: 0, SHA["c"]: -1}, None)
    study.set_keywords(run_id, {0: [("flood", 0.9), ("river", 0.4)]}, {})
    rows = steps.export_rows(study, run_id)
    assert steps.EXPORT_COLUMNS == ("image", "cluster", "keywords", "description")
    assert all(tuple(r) == steps.EXPORT_COLUMNS for r in rows)
    by = {r["image"]: r for r in rows}
    assert set(by) == {"a.png", "copy/a.png", "b.png", "c.png", "nodesc.png"}  # skipped files are not rows
    assert by["a.png"] == {
        "image": "a.png",
        "cluster": 0,
        "keywords": "flood, river",
        "description": "flood water",
    }
    assert by["copy/a.png"]["cluster"] == 0 and by["copy/a.png"]["description"] == "flood water"
    assert by["c.png"]["cluster"] == -1 and by["c.png"]["keywords"] == ""  # outliers get no keywords
    assert by["nodesc.png"] == {"image": "nodesc.png", "cluster": None, "keywords": "", "description": ""}
    assert steps.export_rows(study)[0].keys() == rows[0].keys()  # latest run by default


@pytest.mark.parametrize(
    ("shape", "dtype"), [((384,), "float32"), ((0,), "float32"), ((5,), "float64"), ((2, 3), "float32")]
)
def test_read_legacy_npy_matches_np_load(tmp_path, shape, dtype):
    from connote.study.vectors import read_npy

    a = np.arange(int(np.prod(shape)), dtype=dtype).reshape(shape)
    np.save(tmp_path / "v.npy", a)
    b = read_npy((tmp_path / "v.npy").read_bytes())
    assert b.dtype == a.dtype and b.shape == a.shape and np.array_equal(a, b)
