"""The report shows what was done after the algorithm: labels and summaries, suggested merges, where a
derived run came from, which outliers were assigned and how close, each cluster's breakdown by the
metadata columns, and the map's colour-by choices from them."""

from __future__ import annotations

import json

from derived_fixtures import build

from connote import derive, labels, metadata, steps


def test_report_of_a_labelled_derived_run_with_metadata(tmp_path):
    d = build(tmp_path)
    meta = tmp_path / "meta.csv"
    meta.write_text(
        "image,date,account\n"
        + "".join(f"{p},2024-0{1 + i % 3}-01,@u{i % 2}\n" for i, p in enumerate(d.paths))
    )
    metadata.import_metadata(d.study, meta)
    labels.label(d.study, d.run_id, progress=False)
    page = steps.report(d.study, d.run_id, progress=False).read_text()
    assert "Suggested merges" in page and "Descriptions of these images often say" in page
    assigned = derive.assign_outliers(d.study, d.run_id, method="centroid")
    labels.label(d.study, assigned.run_id, progress=False)
    run_page = steps.report(d.study, assigned.run_id, progress=False)
    html = run_page.read_text()
    assert f'Derived from <a href="../run-{d.run_id}/index.html">run {d.run_id}</a>' in html
    assert "2 outliers assigned" in html
    fire = (run_page.parent / "cluster-2.html").read_text()
    assert "assigned outlier · " in fire and "By account" in fire and "By date (per day)" in fire
    assert "@u0" in fire and "2024-01-01" in fire and "Keywords (TF-IDF score)" in fire
    run_js = (run_page.parent / "run.js").read_text()
    data = json.loads(run_js[run_js.index("=") + 1 :].strip().rstrip(";"))
    assert set(data["columns"]) == {"date", "account"}
    assert len(data["columns"]["account"]) == len(data["labels"])
    assert set(data["columns"]["date"]) <= {"2024-01-01", "2024-02-01", "2024-03-01", "(none)"}
