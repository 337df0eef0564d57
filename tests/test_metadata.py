"""The user's own columns per image: validation (unknown images named, types inferred, re-import
updates), the join into the export, and each cluster's breakdown by a column."""

from __future__ import annotations

import csv
from datetime import date

import pytest
from derived_fixtures import build

from connote import labels, metadata, steps
from connote.errors import UserError


def write(path, header, rows):
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_pure_parts():
    assert metadata.infer_type(["1", "2.5", None, "", "-3e2"]) == "number"
    assert metadata.infer_type(["2024-05-01", "2024-05-02T10:00:00Z"]) == "date"
    assert metadata.infer_type(["2024-05-01", "soon"]) == "text"
    assert metadata.infer_type(["nan"]) == "text" and metadata.infer_type([]) == "text"
    assert metadata.parse_date("2024-13-01") is None and metadata.parse_date("20240501") is None
    days = [date(2024, 1, 1), date(2024, 1, 20)]
    assert metadata.period(days) == "day" and metadata.period([date(2020, 1, 1), date(2021, 6, 1)]) == "month"
    assert metadata.period([date(2010, 1, 1), date(2024, 1, 1)]) == "year"
    assert metadata.bin_date(date(2024, 3, 9), "month") == "2024-03"


def test_import_validates_infers_types_and_updates(tmp_path):
    d = build(tmp_path)
    p = d.paths
    f = write(
        tmp_path / "posts.csv",
        ["image", "date", "likes", "account"],
        [
            [p[0], "2024-01-05", "10", "@a"],
            [f"./{p[1]}", "2024-02-07", "12", "@b"],
            ["nowhere.png", "2024-02-07", "1", "@c"],  # unknown: named, skipped
            [p[2], "2024-03-01", "", "@a"],
            ["", "", "", ""],  # blank line: ignored
            [p[0], "2024-01-06", "11", "@a"],  # again: noted, the later values kept
        ],
    )
    res = metadata.import_metadata(d.study, f)
    assert res.columns == {"date": "date", "likes": "number", "account": "text"}
    assert res.rows == 3
    assert any(":4: image 'nowhere.png' is not in the study" in x for x in res.problems)
    assert any(":7:" in x and "again" in x for x in res.problems)
    stored = d.study.metadata()
    assert stored[p[0]] == {"date": "2024-01-06", "likes": "11", "account": "@a"}
    assert stored[p[2]]["likes"] is None
    # re-import updates one value and adds text to 'likes': its type becomes text over all stored values
    again = metadata.import_metadata(
        d.study, write(tmp_path / "fix.csv", ["image", "likes"], [[p[1], "many"]])
    )
    assert again.updated == 1 and again.columns == {"likes": "text"}
    assert d.study.metadata()[p[1]] == {"date": "2024-02-07", "likes": "many", "account": "@b"}
    assert d.study.metadata()[p[0]]["date"] == "2024-01-06"  # untouched
    with pytest.raises(UserError, match="no 'image' column"):
        metadata.import_metadata(d.study, write(tmp_path / "bad.csv", ["file", "x"], [[p[0], "1"]]))
    with pytest.raises(UserError, match="missing.csv: file not found"):
        metadata.import_metadata(d.study, tmp_path / "missing.csv")
    other = metadata.import_metadata(
        d.study,
        write(tmp_path / "f.csv", ["file", "x"], [[p[0].upper(), "1"], [p[3], "2"]]),
        image_column="file",
    )
    assert other.rows == 1 and len(other.problems) == 1


def test_export_joins_labels_and_metadata(tmp_path):
    d = build(tmp_path)
    p = d.paths
    metadata.import_metadata(
        d.study, write(tmp_path / "m.csv", ["image", "likes", "account"], [[p[0], "5", "@a"]])
    )
    labels.label(d.study, d.run_id, progress=False)
    rows = steps.export_rows(d.study, d.run_id)
    assert list(rows[0]) == [
        "image",
        "cluster",
        "keywords",
        "description",
        "label",
        "summary",
        "likes",
        "account",
    ]
    first = next(r for r in rows if r["image"] == p[0])
    assert first["likes"] == 5.0 and first["account"] == "@a" and first["label"]
    assert next(r for r in rows if r["image"] == d.outlier_far)["label"] == ""
    out = steps.export(d.study, d.run_id, path=tmp_path / "out.csv")
    with out.open() as fh:
        reader = csv.reader(fh)
        assert next(reader)[-2:] == ["likes", "account"]
        assert ["5", "@a"] in [row[-2:] for row in reader]  # a whole number as written, not 5.0
    pq = pytest.importorskip("pyarrow.parquet")
    table = pq.read_table(steps.export(d.study, d.run_id, format="parquet", path=tmp_path / "out.parquet"))
    assert str(table.schema.field("likes").type) == "double"


def test_breakdown_by_text_number_and_date(tmp_path):
    d = build(tmp_path)
    rows = [
        [path, f"2024-0{1 + i % 3}-01", str(i), "@a" if i % 2 else "@b"] for i, path in enumerate(d.paths)
    ]
    metadata.import_metadata(d.study, write(tmp_path / "m.csv", ["image", "date", "n", "who"], rows))
    by_who = metadata.breakdown(d.study, d.run_id, "who")
    clusters = {path: c for path, c in d.cluster_of.items()}
    want = {}
    for i, path in enumerate(d.paths):
        want.setdefault(clusters[path], {}).setdefault("@a" if i % 2 else "@b", 0)
        want[clusters[path]]["@a" if i % 2 else "@b"] += 1
    assert by_who.clusters == want and by_who.missing[0] == 0
    by_date = metadata.breakdown(d.study, d.run_id, "date")
    assert by_date.unit == "day" and sum(sum(v.values()) for v in by_date.clusters.values()) == len(d.paths)
    by_n = metadata.breakdown(d.study, d.run_id, "n")
    zero = [i for i, path in enumerate(d.paths) if clusters[path] == 0]
    assert by_n.clusters[0]["n"] == len(zero) and by_n.clusters[0]["mean"] == pytest.approx(
        sum(zero) / len(zero)
    )
    with pytest.raises(UserError, match="no metadata column 'x'"):
        metadata.breakdown(d.study, d.run_id, "x")


def test_the_report_columns_can_be_chosen(tmp_path):
    d = build(tmp_path)
    rows = [[p, "2024-01-01", str(i), "@a"] for i, p in enumerate(d.paths)]
    metadata.import_metadata(d.study, write(tmp_path / "m.csv", ["image", "date", "n", "who"], rows))
    assert metadata.report_columns(d.study) == ["date", "n", "who"]
    assert metadata.choose_report_columns(d.study, ["who", "date"]) == ["who", "date"]
    assert list(metadata.breakdowns(d.study, d.run_id)) == ["who", "date"]
    assert list(metadata.map_columns(d.study, sorted(d.study.assignments(d.run_id)))) == ["who", "date"]
    with pytest.raises(UserError, match="no metadata column 'likes'"):
        metadata.choose_report_columns(d.study, ["likes"])
    assert metadata.choose_report_columns(d.study, []) == ["date", "n", "who"]  # back to the default
