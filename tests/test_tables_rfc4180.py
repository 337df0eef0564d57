"""CSV files as spreadsheets and scripts write them (RFC 4180: a quote inside a quoted cell is written
twice): written here by Python's csv module and by pandas, with quotes, delimiters, newlines and ';' inside
cells, read back by connote's one table reader and imported into a real study, every line kept."""

from __future__ import annotations

import csv

import pytest
from conftest import make_image_study

from connote import cli, steps
from connote.tables import parse_csv, read_table_file

#: Cells as memes and their descriptions hold them: quoted words, both delimiters, line breaks, a quote
#: at the start and at the end, and plain text.
TEXTS = [
    'He said "hi", then left',
    '"Quoted from the start" and on',
    'ends with a "quote"',
    "a, comma; a semicolon\tand a tab",
    'two\nlines, and a "quote" on the second',
    "plain text",
    '""',
    'It\'s a "meme": \'Not "this" again\', says the cat; "again"',
]


def rows() -> list[dict[str, str]]:
    return [{"image": f"img-{i}.png", "text": t, "likes": str(i)} for i, t in enumerate(TEXTS)]


def read_back(path):
    table = read_table_file(path)
    assert table.problems == []
    return [{k: r.values[k] for k in ("image", "text", "likes")} for r in table.rows]


@pytest.mark.parametrize(
    "options",
    [
        {},  # excel: the header unquoted, cells quoted only when needed
        {"delimiter": ";"},
        {"delimiter": "\t"},
        {"quoting": csv.QUOTE_ALL},
        {"quoting": csv.QUOTE_ALL, "delimiter": ";"},
        {"lineterminator": "\n"},
    ],
)
def test_files_written_by_pythons_csv_module(tmp_path, options):
    path = tmp_path / "t.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["image", "text", "likes"], **options)
        w.writeheader()
        w.writerows(rows())
    assert read_back(path) == rows()


@pytest.mark.parametrize("sep", [",", ";", "\t", "|"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_files_written_by_pandas(tmp_path, sep, encoding):
    pd = pytest.importorskip("pandas")
    path = tmp_path / "t.csv"
    pd.DataFrame(rows()).to_csv(path, sep=sep, index=False, encoding=encoding)
    assert read_back(path) == rows()


def test_the_header_without_quotes_no_longer_decides_the_quoting():
    # csv.Sniffer guesses doublequote=False from this header, which split the cell and skipped the line
    text = 'image,text\na.png,"He said ""hi"", then left"\nb.png,"x ""y"""\n'
    table = parse_csv(text, "t.csv")
    assert table.problems == []
    assert [r.values["text"] for r in table.rows] == ['He said "hi", then left', 'x "y"']


def test_a_cell_that_breaks_the_rules_is_still_one_named_line(tmp_path):
    # an unquoted delimiter in a text: named by its line and left out; the lines around it are read
    text = 'image,text\na.png,"fine"\nb.png,one, two\nc.png,"also ""fine"""\n'
    table = parse_csv(text, "t.csv")
    assert [r.values["image"] for r in table.rows] == ["a.png", "c.png"]
    assert len(table.problems) == 1 and table.problems[0].startswith("t.csv:3: 3 cells for 2 columns")


def test_import_descriptions_keeps_every_line_of_a_pandas_file(tmp_path, capsys):
    pd = pytest.importorskip("pandas")
    study = make_image_study(tmp_path, 8)
    paths = sorted(r["path"] for r in study.images())
    study.close()
    path = tmp_path / "memes.csv"
    pd.DataFrame({"image": paths, "text": TEXTS[: len(paths)]}).to_csv(path, index=False)
    assert cli.main(["import-descriptions", str(tmp_path / "study"), str(path)]) == 0
    assert "Imported 8 description(s)" in capsys.readouterr().out
    study = steps.Study.open(tmp_path / "study")
    by_path = {r["path"]: r["sha256"] for r in study.images()}
    stored = study.descriptions(study.resolve_description_set()["id"])
    assert {p: stored[by_path[p]] for p in paths} == {
        p: t.strip() for p, t in zip(paths, TEXTS, strict=False)
    }
