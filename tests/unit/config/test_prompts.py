"""Prompt sheets (.tsv/.csv, sdcnn/config/prompts.py): the same rules as the mapping,
row-level messages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sdcnn.config.check import ConfigError, check_config, load_schema
from sdcnn.config.prompts import PromptRules, SheetError, load_prompts, read_prompt_sheet
from tests.support.workspace import REPO

SCHEMA_PATH = REPO / "config" / "schema.yaml"
RULES = PromptRules.from_schema(load_schema(SCHEMA_PATH))


def sheet(tmp_path: Path, text: str | bytes, name: str = "prompts.tsv") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return str(path)


def test_a_sheet_gives_the_mapping_with_defaults(tmp_path: Path) -> None:
    path = sheet(
        tmp_path,
        "prompt_id\ttext\tnegative_prompt\tn_images\n"
        "city\tA futuristic city at sunset\t\t3\n"
        "harbor\tA quiet harbor, watercolor\tblurry\t\n",
    )
    assert read_prompt_sheet(path, RULES) == {
        "city": {
            "text": "A futuristic city at sunset",
            "negative_prompt": "",
            "n_images": 3,
            "label": None,
        },
        "harbor": {
            "text": "A quiet harbor, watercolor",
            "negative_prompt": "blurry",
            "n_images": 1,
            "label": None,
        },
    }


def test_a_sheet_equals_the_mapping_the_schema_validates(tmp_path: Path) -> None:
    """The same prompts as a sheet and as a mapping give the same thing (defaults included)."""
    mapping = {"a": {"text": "one"}, "b": {"text": "two", "n_images": 2, "negative_prompt": "x"}}
    config = check_config({"prompts": mapping}, SCHEMA_PATH)
    text = 'prompt_id,text,n_images,negative_prompt\na,one,,\nb,two,2,"x"\n'
    path = sheet(tmp_path, text, "p.csv")
    assert load_prompts(path, RULES) == config["prompts"]
    assert list(load_prompts(path, RULES)) == ["a", "b"]  # the rows' order


def test_csv_quoting_keeps_commas_quotes_and_newlines(tmp_path: Path) -> None:
    path = sheet(tmp_path, 'prompt_id,text\nq,"a ""quoted"", comma\nand a newline"\n', "q.csv")
    assert read_prompt_sheet(path, RULES)["q"]["text"] == 'a "quoted", comma\nand a newline'


@pytest.mark.parametrize(
    ("cell", "named"),
    [
        ("a\x00b", "U+0000 (NUL) at character 2"),
        ("\x1b[31mred", "U+001B (escape) at character 1"),
        ("x\x7f", "U+007F (DEL) at character 2"),
        ("x\x85", "U+0085 at character 2"),
    ],
)
@pytest.mark.parametrize("column", ["text", "negative_prompt"])
def test_a_control_character_in_a_cell_is_refused_by_row_and_column(
    tmp_path: Path, cell: str, named: str, column: str
) -> None:
    rows = {"text": "fine", "negative_prompt": ""}
    bad = {**rows, column: cell}
    path = sheet(
        tmp_path,
        "prompt_id\ttext\tnegative_prompt\n"
        f"a\t{rows['text']}\t{rows['negative_prompt']}\n"
        f"b\t{bad['text']}\t{bad['negative_prompt']}\n",
    )
    with pytest.raises(SheetError) as error:
        read_prompt_sheet(path, RULES)
    assert str(error.value) == (
        f"prompt sheet {path}, row 3, column {column}: contains the control character "
        f"{named}; a prompt's text holds printable characters, spaces, tabs and line breaks only"
    )


def test_a_control_character_in_a_label_cell_is_refused(tmp_path: Path) -> None:
    rules = PromptRules.from_schema(load_schema(SCHEMA_PATH), ["cat", "dog"])
    path = sheet(tmp_path, 'prompt_id,text,label\na,one,cat\nb,two,"do\x00g"\n', "l.csv")
    with pytest.raises(SheetError, match=r"row 3, column label: .*U\+0000"):
        read_prompt_sheet(path, rules)


def test_a_control_character_in_the_mapping_names_the_key() -> None:
    mapping = {"a": {"text": "one"}, "b": {"text": "two", "negative_prompt": "bl\x08urry"}}
    with pytest.raises(ConfigError) as error:
        load_prompts(mapping, RULES)
    assert str(error.value).startswith(
        "config key prompts.b.negative_prompt: contains the control character U+0008 "
        "(backspace) at character 3"
    )


def test_tabs_and_line_breaks_in_a_quoted_cell_are_kept(tmp_path: Path) -> None:
    path = sheet(tmp_path, 'prompt_id,text\nq,"one\ttwo\r\nthree"\n', "w.csv")
    assert read_prompt_sheet(path, RULES)["q"]["text"] == "one\ttwo\r\nthree"


def test_blank_lines_and_a_byte_order_mark_are_fine(tmp_path: Path) -> None:
    path = sheet(tmp_path, b"\xef\xbb\xbfprompt_id\ttext\n\na\tone\n\n\nb\ttwo\n")
    assert list(read_prompt_sheet(path, RULES)) == ["a", "b"]


# (sheet text, the message: names the file, the row (header = row 1) and the column)
BAD_SHEETS = [
    (
        "prompt_id\ttext\na\tone\na\ttwo\n",
        r"row 3, column prompt_id: 'a' is given twice \(rows 2 "
        r"and 3\)",
    ),
    ("prompt_id\ttext\na\t  \n", r"row 2, column text: '  ' is empty or blank"),
    (
        "prompt_id\ttext\tn_images\na\tone\tmany\n",
        r"row 2, column n_images: 'many' is a string, "
        r"expected an integer",
    ),
    (
        "prompt_id\ttext\tn_images\na\tone\t0\n",
        r"row 2, column n_images: 0 is less than the "
        r"minimum 1",
    ),
    (
        "prompt_id\ttext\tn_images\na\tone\t1001\n",
        r"row 2, column n_images: 1001 is more than the "
        r"maximum 1000",
    ),
    (
        "prompt_id\ttext\nbad id\tone\n",
        r"row 2, column prompt_id: 'bad id' is not allowed; "
        r"expected a prompt id of 1 to 64",
    ),
    ("prompt_id\ttext\n../x\tone\n", r"row 2, column prompt_id: '\.\./x' is not allowed"),
    (
        "prompt_id\tprompt\na\tone\n",
        r"row 1: unknown column\(s\) prompt( \(did you mean .*\))?; "
        r"the columns are prompt_id, text",
    ),
    (
        "prompt_id\ttext\tn_imgs\na\tone\t2\n",
        r"row 1: unknown column\(s\) n_imgs \(did you mean "
        r"n_images\?\)",
    ),
    ("id\ttext\na\tone\n", r"row 1: unknown column\(s\) id"),
    ("text\nsomething\n", r"row 1: missing column\(s\) prompt_id"),
    ("prompt_id\nonly\n", r"row 1: missing column\(s\) text"),
    ("prompt_id\ttext\ttext\na\tone\ttwo\n", r"row 1, column text: the column is given twice"),
    ("prompt_id\ttext\na\tone\textra\n", r"row 2: 3 fields, but the header has 2"),
    ("prompt_id\ttext\na\n", r"row 2: 1 fields, but the header has 2"),
    ("prompt_id\ttext\n", r"no prompts \(at least one row after the header\)"),
    ("", r"the file is empty"),
    ("prompt_id\ttext\nCity\tone\ncity\ttwo\n", r"the ids 'City' and 'city' differ only in case"),
    ('prompt_id\ttext\na\t"unclosed\n', r"line \d+: .*quoting"),
]


@pytest.mark.parametrize("text, message", BAD_SHEETS, ids=[m[:30] for _, m in BAD_SHEETS])
def test_bad_sheet_gets_one_line_naming_file_row_and_column(
    tmp_path: Path, text: str, message: str
) -> None:
    path = sheet(tmp_path, text)
    with pytest.raises(SheetError) as caught:
        read_prompt_sheet(path, RULES)
    error = str(caught.value)
    assert "\n" not in error, f"more than one line: {error!r}"
    assert error.startswith(f"prompt sheet {path}"), error
    assert re.search(message, error), f"{error!r} does not match {message!r}"


def test_bad_csv_quote_is_named(tmp_path: Path) -> None:
    path = sheet(tmp_path, 'prompt_id,text\na,"one"x\n', "bad.csv")
    with pytest.raises(SheetError, match=r"prompt sheet .*bad\.csv: line 2: .*quot"):
        read_prompt_sheet(path, RULES)


def test_text_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    path = sheet(tmp_path, b"prompt_id\ttext\na\tone\nb\tcaf\xe9\n")
    with pytest.raises(SheetError, match=r"line 3 is not UTF-8 \(byte 0xe9\)"):
        read_prompt_sheet(path, RULES)


def test_missing_or_misnamed_sheet(tmp_path: Path) -> None:
    with pytest.raises(SheetError, match=r"config key prompts: prompt sheet .*nope\.tsv' does not"):
        read_prompt_sheet(str(tmp_path / "nope.tsv"), RULES)
    with pytest.raises(SheetError, match=r"is not a prompt sheet: a sheet's name ends in .tsv"):
        read_prompt_sheet(sheet(tmp_path, "x", "prompts.txt"), RULES)


def test_example_sheet_is_valid() -> None:
    prompts = read_prompt_sheet(str(REPO / "config" / "prompts.example.tsv"), RULES)
    assert len(prompts) >= 4


def test_a_large_sheet_reads_fast(tmp_path: Path) -> None:
    """100,000 rows: read and checked (timing is a benchmark's job; this checks it works)."""
    rows = "".join(f"p{i:06d}\tprompt number {i}\t\t10\n" for i in range(100_000))
    path = sheet(tmp_path, "prompt_id\ttext\tnegative_prompt\tn_images\n" + rows)
    prompts = read_prompt_sheet(path, RULES)
    assert len(prompts) == 100_000 and prompts["p099999"]["n_images"] == 10


# ---- a sheet's errors carry the key that names the sheet, and where in it


def test_a_cell_error_carries_the_key_row_and_column(tmp_path: Path) -> None:
    path = sheet(tmp_path, "prompt_id\ttext\tn_images\na\tone\t2\nb\ttwo\tmany\n")
    with pytest.raises(SheetError) as caught:
        read_prompt_sheet(path, RULES)
    error = caught.value
    assert (error.key, error.path, error.row, error.column) == ("prompts", path, 3, "n_images")
    assert str(error) == f"prompt sheet {path}, row 3, column n_images: {error.problem}"
    assert error.problem.startswith("'many'")


def test_an_id_error_of_the_whole_sheet_carries_its_problem_alone(tmp_path: Path) -> None:
    path = sheet(tmp_path, "prompt_id\ttext\nCity\tone\ncity\ttwo\n")
    with pytest.raises(SheetError) as caught:
        read_prompt_sheet(path, RULES)
    error = caught.value
    assert (error.key, error.path, error.row, error.column) == ("prompts", path, None, None)
    assert error.problem.startswith("the ids 'City' and 'city' differ only in case")
    assert str(error) == f"prompt sheet {path}: {error.problem}"


def test_a_missing_sheet_error_carries_the_key_prompts(tmp_path: Path) -> None:
    with pytest.raises(SheetError) as caught:
        read_prompt_sheet(str(tmp_path / "nope.tsv"), RULES)
    assert caught.value.key == "prompts" and caught.value.path is None
    assert str(caught.value) == f"config key prompts: {caught.value.problem}"
