"""The command line as users meet it: real subprocesses on a real study folder."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import cli_env, run_cli

from connote.study import Study
from connote.study.schema import SCHEMA_VERSION

RUN_FIELDS = {
    "id",
    "features",
    "describer",
    "embedder",
    "reduce",
    "min_cluster_size",
    "seed",
    "n_clusters",
    "n_outliers",
    "created",
}


def test_help_lists_the_commands():
    proc = run_cli("--help", timeout=120)
    assert proc.returncode == 0, proc.stderr
    for cmd in (
        "run",
        "init",
        "describe",
        "embed",
        "cluster",
        "explain",
        "report",
        "runs",
        "export",
        "status",
    ):
        assert cmd in proc.stdout
    sub = run_cli("cluster", "--help", timeout=120)
    assert sub.returncode == 0 and "pca:variance=0.8" in sub.stdout
    ver = run_cli("--version", timeout=120)
    assert ver.returncode == 0 and ver.stdout.startswith("connote ")


def test_importing_the_cli_does_not_import_heavy_libraries():
    code = "import connote.cli, sys; print('torch' in sys.modules, 'umap' in sys.modules, 'sklearn' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False", "False"]


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_missing_images_folder(tmp_path):
    proc = run_cli("init", tmp_path / "study", "--images", tmp_path / "no-such-folder", "-q")
    assert_one_line_error(proc, "no such folder")
    assert not (tmp_path / "study").exists()


def test_images_argument_is_a_file(tmp_path):
    (tmp_path / "photo.jpg").write_bytes(b"x")
    assert_one_line_error(
        run_cli("init", tmp_path / "study", "--images", tmp_path / "photo.jpg", "-q"), "not a folder"
    )


def test_empty_collection_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = run_cli("init", tmp_path / "study", "--images", tmp_path / "empty", "-q")
    assert_one_line_error(proc, "no usable images")
    run = run_cli("run", tmp_path / "empty", "-o", tmp_path / "study2", "-q")
    assert_one_line_error(run, "no usable images")


@pytest.mark.parametrize(
    "command", ["describe", "embed", "cluster", "explain", "report", "runs", "export", "status"]
)
def test_not_a_study_folder(tmp_path, command):
    assert_one_line_error(run_cli(command, tmp_path), "not a connote study")


def test_study_from_a_newer_connote(tmp_path):
    Study.create(tmp_path / "study").set_meta("schema_version", str(SCHEMA_VERSION + 1))
    assert_one_line_error(run_cli("status", tmp_path / "study"), "newer connote", "upgrade")


@pytest.mark.parametrize(
    "args, words",
    [
        (["cluster", "{study}", "--reduce", "pca:foo=1"], ["unknown reduce option 'foo'"]),
        (["cluster", "{study}", "--reduce", "tsne"], ["unknown reduction"]),
        (["cluster", "{study}", "--reduce", "pca:components=5,variance=0.8"], ["not both"]),
        (["describe", "{study}", "--describer", "nonesuch", "-q"], ["unknown describer 'nonesuch'"]),
        (["describe", "{study}", "--prompt", "@/no/such/prompt.txt", "-q"], ["prompt file not found"]),
        (["export", "{study}", "latest"], ["argument run_id: expected a whole number"]),
        (["export", "{study}", "999"], ["no run 999"]),
        (["explain", "{study}", "999"], ["no run 999"]),
        (["report", "{study}", "x1"], ["argument run_id: expected a whole number"]),
        (["embed", "{study}", "--descriptions", "nope", "-q"], ["no description set named 'nope'"]),
    ],
)
def test_user_mistakes_on_a_study(shared_study, args, words):
    proc = run_cli(*[a.format(study=shared_study.path) for a in args])
    assert_one_line_error(proc, *words)


def test_runs_json(shared_study):
    proc = run_cli("runs", shared_study.path, "--json", check=True)
    rows = json.loads(proc.stdout)
    assert len(rows) >= 1
    row = next(r for r in rows if r["id"] == shared_study.run_id)
    assert set(row) >= RUN_FIELDS
    assert row["features"] == "text"
    assert row["describer"] == "offline"
    assert row["embedder"] == "text:minilm-openvino"  # a new study: MiniLM on OpenVINO (the default)
    assert row["reduce"] == "pca:components=5"
    assert row["min_cluster_size"] == 3 and row["seed"] == 42
    assert row["n_clusters"] >= 1 and 0 <= row["n_outliers"] <= 12
    assert row["created"][:2] == "20"
    table = run_cli("runs", shared_study.path, check=True)
    assert "pca:components=5" in table.stdout and "offline" in table.stdout


def test_status(shared_study):
    proc = run_cli("status", shared_study.path, check=True)
    assert "12 usable (12 distinct), 0 skipped" in proc.stdout
    assert "descriptions 'offline'" in proc.stdout and "text:minilm" in proc.stdout


def test_export_parquet_and_csv(shared_study, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "run.parquet"
    proc = run_cli("export", shared_study.path, "--format", "parquet", "-o", out, check=True)
    assert str(out) in proc.stdout
    table = pq.read_table(out)
    assert table.column_names == ["image", "cluster", "keywords", "description"]
    assert str(table.schema.field("cluster").type) == "int64"
    rows = table.to_pylist()
    images = sorted(n for names in shared_study.groups.values() for n in names)
    assert sorted(r["image"] for r in rows) == images
    assert all(r["description"] and r["cluster"] is not None for r in rows)
    assert all(r["keywords"] for r in rows if r["cluster"] != -1)

    default = run_cli("export", shared_study.path, str(shared_study.run_id), check=True)
    csv_path = shared_study.path / f"run-{shared_study.run_id}.csv"
    assert str(csv_path) in default.stdout and csv_path.is_file()
    assert csv_path.read_text(encoding="utf-8").splitlines()[0] == "image,cluster,keywords,description"


def test_the_three_groups_become_three_clusters_named_by_their_word(shared_study):
    """The whole offline pipeline on 3 visually distinct groups: one cluster per group, and the word
    written in the images (read by OCR; 'fire' survives the stop-word list) is a top keyword."""
    study = Study.open(shared_study.path)
    try:
        by_path = {r["path"]: r["sha256"] for r in study.images()}
        assign = study.assignments(shared_study.run_id)
        keywords = study.keywords(shared_study.run_id)
    finally:
        study.close()
    clusters = {}
    for group, names in shared_study.groups.items():
        labels = {assign[by_path[n]] for n in names}
        assert len(labels) == 1 and -1 not in labels, (group, labels)
        clusters[group] = labels.pop()
    assert len(set(clusters.values())) == 3
    for group, c in clusters.items():
        assert group in keywords[c][:2], (group, keywords[c])
