"""The prompts of a run: a mapping in the config, or a sheet (.tsv/.csv).

``prompts:`` in the config is either a mapping (id -> settings) or the path of a
sheet with a header row (``prompt_id``, ``text``, optional ``negative_prompt`` and
``n_images``).  Both give the same thing: an ordered mapping from prompt id to
its settings, with the schema's defaults filled in.  A sheet is checked row by
row against the same rules as the mapping (config/schema.yaml, ``prompts``); a
bad row is refused with one line naming the file, the row and the column.  No text of a
prompt may hold a control character other than tab and line breaks (a NUL byte, an
escape, a backspace, ...): they would reach the PNGs' text chunks, the JSON and the CSV.

A sheet of 100,000 rows is read and checked quickly (benchmarks/dry_run_scale.py,
RESULTS.md §5): the schema's rules for one prompt are compiled once into plain
checks, and only a row that fails them goes through jsonschema, for its message.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sdcnn.config.check import ConfigError, check_prompt_ids, config_error_from
from sdcnn.config.values import WEIGHTS_TRAINED, weights_mode

SHEET_DELIMITERS = {".tsv": "\t", ".csv": ","}
ID_COLUMN = "prompt_id"
LABEL_COLUMN = "label"
PROMPTS_KEY = "prompts"  # the config key of the prompts (a mapping, or a sheet's path)


# ---- the schema's rules for one prompt


@dataclass(frozen=True)
class ColumnRule:
    """What the schema says of one prompt setting, as a plain check."""

    name: str
    kind: str  # "string" or "integer"
    required: bool
    default: Any
    nullable: bool = False  # None (an empty cell) is allowed
    choices: frozenset[str] | None = None  # the only values allowed, when set
    pattern: re.Pattern[str] | None = None
    max_length: int | None = None
    minimum: int | None = None
    maximum: int | None = None

    def parse(self, cell: str) -> Any:
        """The cell's value: integers parsed, an empty optional cell is the default."""
        if cell == "" and (not self.required or self.nullable):
            return self.default
        if self.kind == "integer":
            try:
                return int(cell.strip())
            except ValueError:
                return cell  # left as the string, so the check below names the problem
        return cell

    def accepts(self, value: Any) -> bool:
        return self.first_bad([value]) is None

    def parse_all(self, cells: list[str]) -> list[Any]:
        if self.kind != "integer":
            return [cell if cell or self.required else self.default for cell in cells]
        try:
            return [int(cell) if cell else self.default for cell in cells]
        except ValueError:
            return [self.parse(cell) for cell in cells]

    def first_bad(self, values: list[Any]) -> int | None:
        """The index of the first value this rule refuses, or None (one loop, no calls)."""
        if self.kind == "integer":
            low = -(2**63) if self.minimum is None else self.minimum
            high = 2**63 if self.maximum is None else self.maximum
            for index, value in enumerate(values):
                if type(value) is not int or not low <= value <= high:
                    return index
            return None
        search = self.pattern.search if self.pattern is not None else None
        longest = self.max_length if self.max_length is not None else 2**63
        for index, value in enumerate(values):
            if value is None and self.nullable:
                continue
            if type(value) is not str or len(value) > longest:
                return index
            if search is not None and search(value) is None:
                return index
            if self.choices is not None and value not in self.choices:
                return index
        return None


@dataclass(frozen=True)
class PromptRules:
    """The rules of ``prompts`` in config/schema.yaml: the id pattern and one rule a setting."""

    id_pattern: re.Pattern[str]
    columns: dict[str, ColumnRule]
    item_schema: dict[str, Any]
    id_schema: dict[str, Any]

    labels: tuple[str, ...] | None = None  # classifier.labels, the values a label may take

    @classmethod
    def from_schema(
        cls, schema: Mapping[str, Any], labels: Sequence[str] | None = None
    ) -> PromptRules:
        """The rules of one prompt; with ``labels``, a prompt's label must be one of them."""
        prompts = schema["properties"]["prompts"]
        item = prompts["additionalProperties"]
        required = set(item.get("required", ()))
        columns = {}
        for name, spec in item["properties"].items():
            kinds = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
            columns[name] = ColumnRule(
                name=name,
                kind=next(kind for kind in kinds if kind != "null"),
                required=name in required,
                default=spec.get("default"),
                nullable="null" in kinds,
                choices=frozenset(labels) if name == LABEL_COLUMN and labels else None,
                pattern=re.compile(spec["pattern"]) if "pattern" in spec else None,
                max_length=spec.get("maxLength"),
                minimum=spec.get("minimum"),
                maximum=spec.get("maximum"),
            )
        id_schema = prompts["propertyNames"]
        return cls(
            re.compile(id_schema["pattern"]),
            columns,
            item,
            id_schema,
            tuple(labels) if labels else None,
        )

    def choice_problem(self, name: str, value: Any) -> str:
        if name == LABEL_COLUMN and self.labels:
            return label_problem(value, self.labels)
        return f"{value!r} is not allowed"

    @property
    def sheet_columns(self) -> list[str]:
        return [ID_COLUMN, *self.columns]

    def problem(self, value: Any, schema: dict[str, Any]) -> str | None:
        """The schema's own message for ``value`` (the text after ``config key ...:``)."""
        from jsonschema import Draft202012Validator

        errors = list(Draft202012Validator(schema).iter_errors(value))
        if not errors:
            return None
        return config_error_from(errors[0]).problem


# C0 and C1 control characters and DEL, less tab, line feed and carriage return (white
# space, which a quoted CSV cell may hold): none belongs in a prompt's text or label
CONTROL_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
CONTROL_NAMES = {
    0x00: "NUL",
    0x08: "backspace",
    0x0B: "vertical tab",
    0x0C: "form feed",
    0x1B: "escape",
    0x7F: "DEL",
}


def control_problem(value: Any) -> str | None:
    """Why ``value`` is refused for holding a control character, or None."""
    found = CONTROL_CHARACTER.search(value) if isinstance(value, str) else None
    if found is None:
        return None
    code = ord(found.group())
    name = f" ({CONTROL_NAMES[code]})" if code in CONTROL_NAMES else ""
    return (
        f"contains the control character U+{code:04X}{name} at character {found.start() + 1}; "
        "a prompt's text holds printable characters, spaces, tabs and line breaks only"
    )


def first_with_control(values: Sequence[Any]) -> int | None:
    """The index of the first string of ``values`` holding a control character, or None
    (one regex search over all of them, and a loop only when one has one)."""
    if CONTROL_CHARACTER.search(" ".join(v for v in values if isinstance(v, str))) is None:
        return None
    return next(i for i, value in enumerate(values) if control_problem(value) is not None)


def check_control_characters(prompts: Mapping[str, Mapping[str, Any]]) -> None:
    """No prompt's text, negative prompt or label (of a mapping) holds a control character."""
    for prompt_id, prompt in prompts.items():
        for name, value in prompt.items():
            problem = control_problem(value)
            if problem is not None:
                raise ConfigError.of_key(f"prompts.{prompt_id}.{name}", problem)


def label_problem(label: Any, labels: Sequence[str]) -> str:
    guess = difflib.get_close_matches(str(label), list(labels), n=1)
    hint = f" (did you mean {guess[0]!r}?)" if guess else ""
    return f"{label!r} is not one of classifier.labels ({', '.join(labels)}){hint}"


def check_labels(prompts: Mapping[str, Mapping[str, Any]], labels: Sequence[str]) -> None:
    """Every prompt's label (where it has one) is one of ``labels``."""
    for prompt_id, prompt in prompts.items():
        label = prompt.get(LABEL_COLUMN)
        if label is not None and label not in labels:
            raise ConfigError.of_key(f"prompts.{prompt_id}.label", label_problem(label, labels))


# ---- sheets


class SheetError(ConfigError):
    """A problem in a prompt sheet; the message names the file, row and column.

    Its ``key`` is ``prompts`` (the config key that names the sheet); ``path``, ``row`` and
    ``column`` are where in the sheet, where the message names them
    (``SheetError.at`` writes them and the message together).
    """

    def __init__(
        self,
        message: str,
        *,
        key: str | None = PROMPTS_KEY,
        problem: str | None = None,
        path: str | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        super().__init__(message, key=key, problem=problem)
        self.path, self.row, self.column = path, row, column

    @classmethod
    def at(
        cls, path: str, problem: str, row: int | None = None, column: str | None = None
    ) -> SheetError:
        """The error ``prompt sheet <path>[, row <row>][, column <column>]: <problem>``."""
        return cls(
            f"{_where(path, row, column)}: {problem}",
            problem=problem,
            path=path,
            row=row,
            column=column,
        )


def _where(path: str, row: int | None = None, column: str | None = None) -> str:
    where = f"prompt sheet {path}"
    if row is not None:
        where += f", row {row}"
    if column is not None:
        where += f", column {column}"
    return where


def _decode(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # a byte-order mark, as spreadsheets write, is fine
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise SheetError.at(
            path,
            f"line {line} is not UTF-8 (byte 0x{data[error.start]:02x}); save the sheet as UTF-8",
        ) from None


def _header(path: str, names: list[str], rules: PromptRules) -> list[str]:
    header = [name.strip() for name in names]
    known = rules.sheet_columns
    for index, name in enumerate(header):
        if not name:
            raise SheetError.at(path, f"header cell {index + 1} is empty", row=1)
        if name in header[:index]:
            raise SheetError.at(path, "the column is given twice", row=1, column=name)
    unknown = [name for name in header if name not in known]
    if unknown:
        guesses = [difflib.get_close_matches(name, known, n=1) for name in unknown]
        hints = "".join(f" (did you mean {guess[0]}?)" for guess in guesses if guess)
        raise SheetError.at(
            path,
            f"unknown column(s) {', '.join(unknown)}{hints}; the columns are {', '.join(known)}",
            row=1,
        )
    missing = [name for name in (ID_COLUMN, *_required(rules)) if name not in header]
    if missing:
        raise SheetError.at(
            path,
            f"missing column(s) {', '.join(missing)}; a sheet needs "
            f"{ID_COLUMN} and {', '.join(_required(rules))}, and may have "
            f"{', '.join(name for name in rules.columns if name not in _required(rules))}",
            row=1,
        )
    return header


def _required(rules: PromptRules) -> list[str]:
    return [name for name, rule in rules.columns.items() if rule.required]


def _records(path: str, reader: Any, width: int) -> tuple[list[list[str]], list[int]]:
    """The sheet's non-blank records after the header, and the row number of each."""
    records, rows = [], []
    row = 1
    try:
        for fields in reader:
            row += 1
            if len(fields) == width:
                records.append(fields)
                rows.append(row)
            elif any(field.strip() for field in fields):
                raise SheetError.at(
                    path, f"{len(fields)} fields, but the header has {width}", row=row
                )
    except csv.Error as error:
        raise SheetError.at(
            path,
            f"line {reader.line_num}: {error} (a quoting problem: a "
            'field that contains quotes must be quoted as a whole, with "" for each ")',
        ) from None
    return records, rows


def _column_values(records: list[list[str]], index: int | None, rule: ColumnRule) -> list[Any]:
    if index is None:
        return [rule.default] * len(records)
    return rule.parse_all([record[index] for record in records])


def parse_prompt_sheet(path: str, text: str, rules: PromptRules) -> dict[str, dict[str, Any]]:
    """The prompts of a sheet's text, in row order; ``path`` names it in messages.

    Checked column by column (a row of 100,000 is a list comprehension, not a function
    call per cell); the first bad cell, in row order, is the error.
    """
    delimiter = SHEET_DELIMITERS[Path(path).suffix.lower()]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = _header(path, next(reader), rules)
    except StopIteration:
        raise SheetError.at(path, "the file is empty (it needs a header row)") from None
    except csv.Error as error:
        raise SheetError.at(path, f"line {reader.line_num}: {error}") from None
    records, rows = _records(path, reader, len(header))
    if not records:
        raise SheetError.at(path, "no prompts (at least one row after the header)")
    ids = [record[header.index(ID_COLUMN)] for record in records]
    columns = {
        name: _column_values(records, header.index(name) if name in header else None, rule)
        for name, rule in rules.columns.items()
    }
    id_ok = rules.id_pattern.search
    bad_id = next(
        (i for i, value in enumerate(ids) if id_ok(value) is None or value.endswith("\n")), None
    )
    problems = [] if bad_id is None else [(bad_id, ID_COLUMN, ids[bad_id])]
    problems += [
        (bad, name, columns[name][bad])
        for name, rule in rules.columns.items()
        for bad in [rule.first_bad(columns[name])]
        if bad is not None
    ]
    problems += [
        (bad, name, columns[name][bad])
        for name, rule in rules.columns.items()
        if rule.kind == "string"
        for bad in [first_with_control(columns[name])]
        if bad is not None
    ]
    if problems:
        bad, name, value = min(problems, key=lambda problem: problem[0])
        control = control_problem(value)
        if control is not None:
            raise SheetError.at(path, control, row=rows[bad], column=name)
        schema = (
            {"type": "string", **rules.id_schema}
            if name == ID_COLUMN
            else rules.item_schema["properties"][name]
        )
        problem = rules.problem(value, schema) or rules.choice_problem(name, value)
        raise SheetError.at(path, problem, row=rows[bad], column=name)
    names = list(rules.columns)
    rows_of_values = zip(*columns.values(), strict=True)
    settings = (dict(zip(names, values, strict=True)) for values in rows_of_values)
    prompts = dict(zip(ids, settings, strict=False))  # a repeated id: refused just below
    if len(prompts) < len(ids):
        _refuse_duplicate(path, ids, rows)
    try:
        check_prompt_ids(prompts)
    except ConfigError as error:
        raise SheetError.at(path, error.problem) from None
    return prompts


def _refuse_duplicate(path: str, ids: list[str], rows: list[int]) -> None:
    first_row: dict[str, int] = {}
    for prompt_id, row in zip(ids, rows, strict=True):
        if prompt_id in first_row:
            raise SheetError.at(
                path,
                f"{prompt_id!r} is given twice (rows {first_row[prompt_id]} and {row})",
                row=row,
                column=ID_COLUMN,
            )
        first_row[prompt_id] = row


def read_prompt_sheet(path: str, rules: PromptRules) -> dict[str, dict[str, Any]]:
    """The prompts of the sheet at ``path`` (relative to the working directory)."""
    suffix = Path(path).suffix.lower()
    if suffix not in SHEET_DELIMITERS:
        raise SheetError.of_key(
            PROMPTS_KEY,
            f"{path!r} is not a prompt sheet: a sheet's name ends in "
            f"{' or '.join(SHEET_DELIMITERS)} (or give the prompts as a mapping)",
        )
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise SheetError.of_key(
            PROMPTS_KEY, f"prompt sheet {path!r} does not exist (relative to {Path.cwd()})"
        ) from None
    except OSError as error:
        problem = f"cannot read prompt sheet {path!r}: {error}"
        raise SheetError.of_key(PROMPTS_KEY, problem) from None
    return parse_prompt_sheet(path, _decode(path, data), rules)


def load_prompts(prompts: Any, rules: PromptRules) -> dict[str, dict[str, Any]]:
    """The config's ``prompts``: the validated mapping itself, or the prompts of its sheet."""
    if isinstance(prompts, str):
        return read_prompt_sheet(prompts, rules)
    check_control_characters(prompts)
    return prompts


def checked_prompts(config: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """The prompts of a validated config (its mapping, or its sheet's rows), with their
    labels checked against ``classifier.labels``, and trained weights checked to have
    labelled prompts to learn from.  Raises ``ConfigError``."""
    labels = config["classifier"]["labels"]
    prompts = load_prompts(config["prompts"], PromptRules.from_schema(schema, labels))
    check_labels(prompts, labels)
    if weights_mode(config["classifier"]["weights"]) == WEIGHTS_TRAINED and not any(
        prompt.get(LABEL_COLUMN) is not None for prompt in prompts.values()
    ):
        raise ConfigError.of_key(
            "classifier.weights",
            "trained needs labelled prompts to train on, and none has a label "
            "(prompts.<id>.label, or a sheet's label column); label some, or use glorot or "
            "a weights file",
        )
    return prompts
