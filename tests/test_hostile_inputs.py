"""Numbers and files a careless or hostile user gives: each is refused up front with one line naming the
option, file or study and the reason (never a traceback, never accepted and acted on), or works.

Real parts: the command line (``connote.cli.main``, and one real process for ``--json``), real SQLite
studies, the loopback OpenAI-compatible server for what would be paid for, real price and grid files."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3

import pytest
from conftest import add_run, fake_openai_env, make_image_study, run_cli
from derived_fixtures import build

from connote import cli, derive, labels, numbers, registry, steps
from connote.describers import pricing
from connote.describers.runner import DescribeRunner
from connote.errors import UserError
from connote.study import Study
from connote.testing import FakeOpenAI

KEY = "sk-test-hostile-inputs-0123"
HUGE = "99999999999999999999999"  # over SQLite's int64


@pytest.fixture(scope="module")
def derived(tmp_path_factory):
    """A study with one run of 3 clusters and 2 outliers (vectors written directly: no model)."""
    return build(tmp_path_factory.mktemp("hostile-inputs"))


@pytest.fixture
def study_copy(derived, tmp_path):
    derived.study.con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copytree(derived.study.path, tmp_path / "study")
    return tmp_path / "study"


def one_line_error(capsys, *argv) -> str:
    """Run the command line in this process; it must end with exit 2 and one line 'error: ...'."""
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, (code, out, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# ---------------------------------------------------------------------------------------------- numbers
def test_one_check_per_kind_of_number():
    assert numbers.whole(" 5", low=1) == 5 and numbers.whole(5.0) == 5
    for bad in ("5.5", "abc", True, float("nan"), "1e3", "", None):
        with pytest.raises(UserError, match="expected a whole number"):
            numbers.whole(bad)
    assert numbers.real("-0", low=0) == 0.0 and str(numbers.real("-0", low=0)) == "0.0"
    for bad in ("nan", "inf", "-inf", "1e999", float("inf"), "x", "-1"):
        with pytest.raises(UserError, match="--max-cost: expected a number of at least 0"):
            numbers.budget(bad)
    assert numbers.budget(None) is None and numbers.budget("0.05") == 0.05
    assert numbers.seed(0) == 0 and numbers.seed(2**32 - 1) == 2**32 - 1
    for bad in (-1, 2**32, "4294967296"):
        with pytest.raises(UserError, match="from 0 to 4294967295"):
            numbers.seed(bad)
    assert numbers.run_id(2**63 - 1) == 2**63 - 1
    for bad in (HUGE, 0, -3, "x1"):
        with pytest.raises(UserError, match="run id: expected a whole number from 1"):
            numbers.run_id(bad)


OPTION_CASES = [
    # seeds: numpy, scikit-learn and UMAP take 0 .. 2**32-1
    (["cluster", "S", "--seed", "-1"], "--seed"),
    (["cluster", "S", "--seed", "4294967296"], "--seed"),
    (["cluster", "S", "--seed", "1e3"], "--seed"),
    (["run", "imgs", "-o", "S", "--seed", "-1"], "--seed"),
    (["pairs", "sample", "S", "--seed", "-5"], "--seed"),
    (["sets", "sample", "S", "--seed", "4294967296"], "--seed"),
    # run ids beyond SQLite's integers, and not numbers
    *[([cmd, "S", HUGE], "run_id") for cmd in ("explain", "export", "report", "label", "merge")],
    (["assign-outliers", "S", HUGE], "run_id"),
    (["sets", "sample", "S", HUGE], "run_id"),
    (["sets", "sample", "S", "abc"], "run_id"),
    (["metadata", "S", "--by", "x", "--run", HUGE], "--run"),
    (["sets", "score", "S", "--run", "-1"], "--run"),
    # counts that must be at least 1
    *[(["explain", "S", "--top-k", k], "--top-k") for k in ("0", "-1")],
    (["sets", "sample", "S", "--top-k", "0"], "--top-k"),
    (["run", "imgs", "-o", "S", "--top-k", "0"], "--top-k"),
    *[(["assign-outliers", "S", "--k", k], "--k") for k in ("0", "-1")],
    (["merge", "S", "1", "--suggest", "--top", "0"], "--top"),
    *[(["describe", "S", "--concurrency", k], "--concurrency") for k in ("0", "-1")],
    (["label", "S", "--concurrency", "0"], "--concurrency"),
    *[(["describe", "S", "--max-tokens", k], "--max-tokens") for k in ("0", "-1")],
    *[(["label", "S", "--descriptions", k], "--descriptions") for k in ("0", "-1")],
    *[(["describe", "S", "--max-side", k], "--max-side") for k in ("0", "-5", "5.5")],
    (["describe", "S", "--batch-size", "0"], "--batch-size"),
    (["sweep", "S", "--workers", "0"], "--workers"),
    (["cluster", "S", "--min-cluster-size", "1"], "--min-cluster-size"),
    (["cluster", "S", "--min-samples", "0"], "--min-samples"),
    (["pairs", "sample", "S", "--n", "0"], "--n"),
    (["sets", "sample", "S", "--per-cluster", "-2"], "--per-cluster"),
    # amounts: finite, in range
    *[(["describe", "S", "--temperature", t], "--temperature") for t in ("nan", "inf", "-1")],
    (["describe", "S", "--timeout", "0"], "--timeout"),
    (["describe", "S", "--batch-poll", "nan"], "--batch-poll"),
    (["explain", "S", "--diversity", "nan"], "--diversity"),
    (["assign-outliers", "S", "--threshold", "1.5"], "--threshold"),
    # budgets: the same option type on every paid command
    *[(["describe", "S", "--max-cost", b], "--max-cost") for b in ("nan", "-1", "inf", "1e999", "-0.5")],
    (["describe", "S", "--max-cost=-inf"], "--max-cost"),
    *[(["label", "S", "--max-cost", b], "--max-cost") for b in ("nan", "-0.01")],
    *[(["run", "imgs", "-o", "S", "--max-cost", b], "--max-cost") for b in ("nan", "-1")],
]


@pytest.mark.parametrize(
    "argv, option", OPTION_CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else v
)
def test_a_bad_number_is_one_line_naming_the_option(capsys, argv, option):
    line = one_line_error(capsys, *argv)
    assert f"argument {option}" in line and "expected a" in line, line


def all_parsers(parser, name="connote"):
    """(name, parser) of the command line and of every (sub-)command under it."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action.choices, dict):  # sub-commands
            for sub_name, sub in action.choices.items():
                yield from all_parsers(sub, f"{name} {sub_name}")


def test_budgets_everywhere_are_one_option_type():
    parsers = dict(all_parsers(cli.build_parser()))
    assert len(parsers) > 20
    with_budget = {
        name: a.type for name, p in parsers.items() for a in p._actions if "--max-cost" in a.option_strings
    }
    assert set(with_budget) >= {"connote describe", "connote label", "connote run"}
    assert {t.__name__ for t in with_budget.values()} == {"budget"}
    # no option takes a bare int or float: every number goes through one check of connote.numbers
    bare = [(name, a.dest) for name, p in parsers.items() for a in p._actions if a.type in (int, float)]
    assert not bare


def test_bad_numbers_in_the_library_too(derived):
    with pytest.raises(UserError, match="--top-k"):
        steps.explain(derived.study, derived.run_id, top_k=0)
    assert derived.study.keywords(derived.run_id)  # not wiped
    with pytest.raises(UserError, match="--k"):
        derive.assign_outliers(derived.study, derived.run_id, method="knn", k=-1)
    with pytest.raises(UserError, match="--top"):
        derive.suggest_merges(derived.study, derived.run_id, top=0)
    with pytest.raises(UserError, match="run id"):
        derived.study.get_run(int(HUGE))
    with pytest.raises(UserError, match="--max-cost"):
        labels.label(derived.study, derived.run_id, max_cost=float("nan"), progress=False)
    with pytest.raises(UserError, match="--max-cost"):
        DescribeRunner(registry.describer("openai:gpt-4o-mini"), max_cost=-1)


def test_run_ids_in_run_lists(capsys, study_copy):
    assert "run id" in one_line_error(capsys, "report", study_copy, "--runs", HUGE)
    assert "run id" in one_line_error(capsys, "report", study_copy, "--runs", "1,x")


# ---------------------------------------------------------------------------------------------- specs
@pytest.mark.parametrize(
    "spec, words",
    [
        ("umap:metric=notametric", "unknown UMAP metric 'notametric'"),
        ("umap:components=5,components=6", "given twice"),
        ("umap:components=5,n_components=6", "give it once"),
        ("umap:components=0", "components >= 1"),
        ("pca:variance=nan", "between 0 and 1"),
    ],
)
def test_bad_reduce_specs(capsys, study_copy, spec, words):
    assert words in one_line_error(capsys, "cluster", study_copy, "--reduce", spec)
    assert len(Study.open(study_copy).runs()) == 1  # nothing made


@pytest.mark.parametrize(
    "body, words",
    [
        ("min_cluster_size = [3]\n[umap]\ncomponents = [-5]\nneighbors = [5]\n", "components >= 1"),
        ("min_cluster_size = [3]\n[umap]\ncomponents = [5.5]\nneighbors = [5]\n", "[umap] components"),
        (
            'min_cluster_size = [3]\n[umap]\ncomponents = [2]\nneighbors = [5]\nmetric = "notametric"\n',
            "unknown UMAP metric",
        ),
        ("min_cluster_size = [3]\n[pca]\nvariance = [inf]\n", "[pca] variance"),
        ("min_cluster_size = [3\n", "not a valid grid file (TOML)"),
        (b"\x00\xff\xfe binary \x89PNG\r\n", "not a grid file"),
    ],
)
def test_bad_grid_files_name_the_file(capsys, study_copy, tmp_path, body, words):
    grid = tmp_path / "grid.toml"
    (grid.write_bytes if isinstance(body, bytes) else grid.write_text)(body)
    line = one_line_error(capsys, "sweep", study_copy, "--grid", grid, "-q")
    assert str(grid) in line and words in line, line


# ---------------------------------------------------------------------------------------------- paid
@pytest.fixture
def fake_env(monkeypatch):
    fake_openai_env(monkeypatch, KEY)
    return monkeypatch


@pytest.mark.parametrize(
    "prices, words",
    [
        ('[models."gpt-4o-mini"]\ninput = -1000\noutput = 0.6\n', '[models."gpt-4o-mini"] input'),
        ('[models."gpt-4o-mini"]\ninput = 0.15\noutput = nan\n', '[models."gpt-4o-mini"] output'),
        ('[models."gpt-4o-mini"]\ninput = 0.15\noutput = inf\n', "output"),
        ("[defaults]\nbatch_discount = 2\n", "[defaults] batch_discount"),
        ('[models."gpt-4o-mini"]\ninput = "cheap"\n', "input"),
        ("[models\ninput = 1\n", "not a valid price file"),
        (b"\xff\xfe\x00binary", "not a price file"),
    ],
)
def test_bad_price_files_are_refused_before_any_request(fake_env, tmp_path, prices, words):
    price_file = tmp_path / "prices.toml"
    (price_file.write_bytes if isinstance(prices, bytes) else price_file.write_text)(prices)
    fake_env.setenv("CONNOTE_PRICES", str(price_file))
    study = make_image_study(tmp_path, 3)
    with FakeOpenAI(api_key=KEY) as srv:
        for budget in (0.05, None):  # with a budget and without one (the cost is still counted)
            with pytest.raises(UserError) as err:
                steps.describe(
                    study, "openai:gpt-4o-mini", base_url=srv.base_url, max_cost=budget, progress=False
                )
            assert str(price_file) in str(err.value) and words in str(err.value), err.value
        assert not srv.chat_requests()
    assert study.total_cost() == 0 and not study.calls("describe")


def test_a_bad_price_file_stops_label_and_embed_before_any_request(fake_env, tmp_path):
    price_file = tmp_path / "prices.toml"
    price_file.write_text(
        '[models."gpt-4o-mini"]\noutput = nan\n[models."text-embedding-3-small"]\ninput = -1\n'
    )
    fake_env.setenv("CONNOTE_PRICES", str(price_file))
    d = build(tmp_path)
    with FakeOpenAI(api_key=KEY) as srv:
        with pytest.raises(UserError, match=r"prices\.toml: \[models\.\"gpt-4o-mini\"\] output"):
            labels.label(d.study, d.run_id, "openai:gpt-4o-mini", base_url=srv.base_url, progress=False)
        with pytest.raises(UserError, match="prices.toml"):
            steps.embed(d.study, "openai:text-embedding-3-small", base_url=srv.base_url, progress=False)
        assert not srv.requests
    assert not d.study.calls("label")


@pytest.mark.parametrize(
    "options, words",
    [
        ({"max_side": -5}, "max_side"),
        ({"max_side": 0}, "max_side"),
        ({"temperature": float("nan")}, "temperature"),
        ({"concurrency": 0}, "concurrency"),
        ({"max_tokens": -1}, "max_tokens"),
        ({"timeout": float("inf")}, "timeout"),
    ],
)
def test_bad_describer_options_are_refused_before_any_request(fake_env, tmp_path, options, words):
    study = make_image_study(tmp_path, 3)
    with FakeOpenAI(api_key=KEY) as srv:
        with pytest.raises(UserError, match=words):
            steps.describe(study, "openai:gpt-4o-mini", base_url=srv.base_url, progress=False, **options)
        assert not srv.chat_requests()
    assert not study.calls("describe")  # no error rows: nothing was tried


def test_describer_option_on_the_command_line_is_checked_too(capsys, fake_env, tmp_path):
    study = make_image_study(tmp_path, 2)
    study.close()
    with FakeOpenAI(api_key=KEY) as srv:
        line = one_line_error(
            capsys, "describe", tmp_path / "study", "--describer", "openai:gpt-4o-mini", "--base-url",
            srv.base_url, "--describer-option", "max_side=-5", "-q",
        )  # fmt: skip
        assert not srv.chat_requests()
    assert "max_side" in line and "-5" in line


def test_run_takes_the_budget_once_and_checks_it_as_describe_does(capsys, fake_env, tmp_path):
    from connote.testing import make_images

    make_images(tmp_path / "images", 3)
    with FakeOpenAI(api_key=KEY) as srv:
        common = ["run", tmp_path / "images", "-o", tmp_path / "s", "--describer", "openai:gpt-4o-mini",
                  "--describer-option", f"base_url={srv.base_url}", "-q"]  # fmt: skip
        line = one_line_error(capsys, *common, "--describer-option", "max_cost=2")
        assert "max_cost: an option of the command itself" in line
        assert cli.main([*map(str, common), "--max-cost", "0"]) == 2  # a budget below one request:
        assert "Stopped early: budget of $0 reached" in capsys.readouterr().err  # nothing described
        assert not srv.chat_requests()


def test_a_huge_label_is_cut_and_flagged(fake_env, tmp_path):
    d = build(tmp_path)
    huge = "Label: Floods " + "x" * 200_000 + "\nSummary: " + "y " * 100_000
    with FakeOpenAI(decide=lambda _i: {"kind": "ok", "text": huge}, api_key=KEY) as srv:
        res = labels.label(d.study, d.run_id, "openai:gpt-4o-mini", base_url=srv.base_url, progress=False)
    assert all(x.status == "flagged" and "cut to" in x.problem for x in res.labels)
    assert all(len(x.label) <= labels.MAX_LABEL_CHARS + 1 for x in res.labels)
    out = steps.export(d.study, d.run_id, path=tmp_path / "out.csv")
    with open(out, newline="", encoding="utf-8") as fh:  # the csv module's default field limit
        rows = list(csv.DictReader(fh))
    assert rows and max(len(r["label"]) + len(r["summary"]) for r in rows) < csv.field_size_limit()


# ---------------------------------------------------------------------------------------------- studies
def test_assign_outliers_on_a_run_without_clusters(capsys, study_copy):
    study = Study.open(study_copy)
    run = add_run(study, {r["path"]: -1 for r in study.unique_images()}, seed=7)
    study.close()
    line = one_line_error(capsys, "assign-outliers", study_copy, str(run))
    assert str(study_copy) in line and f"run {run} has no clusters" in line


@pytest.mark.parametrize("value", ["abc", "", "1.5", "-1"])
def test_a_damaged_schema_version(capsys, study_copy, value):
    con = sqlite3.connect(study_copy / "connote.db")
    con.execute("UPDATE meta SET value=? WHERE key='schema_version'", (value,))
    con.commit()
    con.close()
    line = one_line_error(capsys, "status", study_copy)
    assert str(study_copy) in line and "damaged" in line and "schema_version" in line


def test_a_dropped_table(capsys, study_copy):
    con = sqlite3.connect(study_copy / "connote.db")
    con.executescript("DROP TABLE assignments; DROP TABLE runs;")
    con.close()
    for command in ("runs", "status", "explain"):
        line = one_line_error(capsys, command, study_copy)
        assert "damaged" in line and "runs" in line, line


def test_export_parquet_with_metadata_columns_named_like_export_columns(capsys, study_copy, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    study = Study.open(study_copy)
    paths = [r["path"] for r in study.images()]
    study.close()
    meta = tmp_path / "meta.csv"
    with open(meta, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "cluster", "keywords", "Likes"])
        w.writerows([p, i * 3, f"k{i}", i] for i, p in enumerate(paths))
    assert cli.main(["metadata", str(study_copy), str(meta)]) == 0
    assert (
        cli.main(["export", str(study_copy), "--format", "parquet", "-o", str(tmp_path / "o.parquet")]) == 0
    )
    table = pq.read_table(tmp_path / "o.parquet")
    types = {f.name: str(f.type) for f in table.schema}
    assert types["cluster"] == "int64" and types["meta_cluster"] == "double"
    assert types["meta_keywords"] == "string" and types["likes"] == "double"
    assert sorted(table.column("meta_cluster").to_pylist()) == [i * 3.0 for i in range(len(paths))]
    capsys.readouterr()
    assert cli.main(["metadata", str(study_copy), "--by", "Likes"]) == 0  # as --report Likes
    assert "Clusters by likes (number)" in capsys.readouterr().out


def test_a_metadata_column_without_a_name_is_named(capsys, study_copy, tmp_path):
    study = Study.open(study_copy)
    paths = [r["path"] for r in study.images()]
    study.close()
    meta = tmp_path / "meta.csv"
    meta.write_text("image,likes,,year\n" + "".join(f"{p},{i},secret,2020\n" for i, p in enumerate(paths)))
    code = cli.main(["metadata", str(study_copy), str(meta), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1  # as every importer that left something out
    assert set(out["import"]["columns"]) == {"likes", "year"}
    assert out["import"]["problems"] == [
        f"{meta}: column 3 has values but no name in the header; name it to import them"
    ]


def test_import_descriptions_exits_1_when_it_skipped_lines(capsys, study_copy, tmp_path):
    study = Study.open(study_copy)
    paths = [r["path"] for r in study.images()]
    study.close()
    good = tmp_path / "good.csv"
    good.write_text("image,text\n" + "".join(f"{p},a text\n" for p in paths))
    assert cli.main(["import-descriptions", str(study_copy), str(good)]) == 0
    bad = tmp_path / "bad.csv"
    bad.write_text(f"image,text\n{paths[0]},fine\nnope.png,unknown image\n{paths[1]},\n")
    assert cli.main(["import-descriptions", str(study_copy), str(bad), "--name", "b"]) == 1
    err = capsys.readouterr().err
    assert "bad.csv:3" in err and "bad.csv:4" in err


def test_ratings_without_a_connotative_column_say_so(capsys, tmp_path):
    from connote.coding.pairs import sample_pairs

    study = make_image_study(tmp_path, 6)
    sample_pairs(study, 3, progress=False)
    study.close()
    f = tmp_path / "ratings.csv"
    f.write_text("pair,coder,denotative\n1,ann,1\n2,ann,2\n")
    assert cli.main(["pairs", "import", str(tmp_path / "study"), str(f), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out[0]["count"] == 2
    assert out[0]["notes"] == [
        f"{f}: no 'connotative' column: only denotative ratings were imported from this file"
    ]


# ---------------------------------------------------------------------------------------------- --json
def test_json_errors_are_a_json_object_on_stdout(capsys, derived):
    for argv in (
        ["explain", "S", "--top-k", "0", "--json"],  # refused by the option's type
        ["explain", str(derived.study.path), "999", "--json"],  # refused by the command
        ["nonesuch", "--json"],  # not a command at all
    ):
        code = cli.main(argv)
        out, err = capsys.readouterr()
        obj = json.loads(out)
        assert code == 2 and obj == {"error": err.strip().removeprefix("error: "), "exit_code": 2}, argv


def test_json_error_from_a_real_process(derived):
    proc = run_cli("explain", derived.study.path, "999", "--json", timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    obj = json.loads(proc.stdout)
    assert obj["exit_code"] == 2 and "no run 999" in obj["error"] and str(derived.study.path) in obj["error"]
    proc = run_cli("cluster", derived.study.path, "--seed", "-1", "--json", timeout=120)
    assert proc.returncode == 2 and json.loads(proc.stdout)["error"].startswith(
        "connote cluster: argument --seed"
    )


def test_prices_refused_when_read_not_only_when_paid(tmp_path, monkeypatch):
    price_file = tmp_path / "p.toml"
    price_file.write_text('[models."gpt-4o"]\ninput = -1000\noutput = 10\n')
    monkeypatch.setenv("CONNOTE_PRICES", str(price_file))
    with pytest.raises(
        UserError, match=r"p\.toml: \[models\.\"gpt-4o\"\] input: expected a number of at least 0"
    ):
        pricing.price_for("gpt-4o")
