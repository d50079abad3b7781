"""A data file's rows: the messages of their errors, and their values as input text.

Every problem found in a data file is a :class:`~promptc.errors.DataError` made by
:func:`data_error` from one table, :data:`MESSAGES` (tested word for word, listed in
docs/spec.md).

Values that are not strings are turned into text deterministically (:func:`to_text`): integers
and decimals as written in the file (``1.50`` stays ``1.50``), booleans as ``true``/``false``,
lists and objects as compact JSON with sorted keys; null is an error.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import partial
from typing import Any, Literal

from promptc.errors import DataError
from promptc.markers import MAX_OPTIONS
from promptc.spec.load import coded_error
from promptc.text import canonical_json

DataFormat = Literal["jsonl", "json", "csv"]

MESSAGES: dict[str, str] = {
    "bad-options": "column {column!r} (input {input!r}, of type options) holds {found}; "
    "expected a list of 1 to 26 non-empty strings",
    "absolute-path": "data path {path!r} is absolute; expected a path relative to the spec's "
    "folder",
    "escapes-folder": "data path {path!r} leaves the spec's folder",
    "not-found": "data file {path!r} not found",
    "nul-in-path": "data path {path!r} contains a NUL character, which no file name can hold",
    "not-a-file": "data path {path!r} is not a file",
    "unreadable": "cannot read data file {path!r}: {reason}",
    "unknown-format": "cannot tell the format of {path!r} from its extension; expected .jsonl, "
    ".json or .csv",
    "not-utf8": "data file is not UTF-8 text: invalid byte 0x{byte:02x}",
    "bad-json": "invalid JSON: {problem}",
    "not-an-object": "expected a JSON object for each row, found {found}",
    "not-an-array": "expected a JSON array of objects, found {found}",
    "csv-error": "invalid CSV: {problem}",
    "csv-no-header": "CSV file has no header row; expected column names on the first line",
    "csv-duplicate-column": "duplicate column {column!r} in the CSV header",
    "csv-extra-fields": "row has {found} fields, but the header names {expected}",
    "missing-field": "row has no field {column!r} (for input {input!r})",
    "unknown-column": "no row has a column {column!r} (for input {input!r}); the rows have "
    "{columns}",
    "null-field": "field {column!r} (for input {input!r}) is null; expected text",
    "missing-id": "row has no id field {column!r}",
    "null-id": "id field {column!r} is null; expected a value",
    "lone-surrogate": "field {column!r} (for input {input!r}) holds a lone surrogate {escape}, "
    "which is not a character; expected text",
    "nul-in-data": "field {column!r} (for input {input!r}) holds a NUL character, which no "
    "prompt can carry; expected text",
    "input-too-long": "field {column!r} (for input {input!r}) holds {size} characters; a "
    "message holds at most {limit}",
    "lone-surrogate-id": "the item id holds a lone surrogate, which is not a character",
    "bad-id": "item id expression failed: {problem}",
    "bad-id-template": "invalid item id expression: {problem}",
    "empty-id": "item id is empty",
    "duplicate-id": "duplicate item id {id!r}; first used at line {line}",
    "no-rows": "data file has no rows",
    "missing-gold": "row has no gold field {column!r} (for output {output!r})",
    "unknown-gold-column": "no row has a gold column {column!r} (for output {output!r}); the "
    "rows have {columns}",
    "null-gold": "gold field {column!r} (for output {output!r}) is null; expected a value",
    "bad-gold": "gold value for {type} output {output!r}: {problem}",
    "bad-gold-expression": "gold expression for output {output!r} failed: {problem}",
    "bad-gold-template": "invalid gold expression for output {output!r}: {problem}",
}

HINTS: dict[str, str] = {
    "unknown-column": "map the input to one of those columns in data.fields",
    "escapes-folder": "keep data files inside the spec's folder",
    "missing-gold": "map data.gold to the column holding the answer, or to an expression",
    "unknown-gold-column": "map data.gold to the column holding the answer, or to an expression",
    "unknown-format": "set data.format to jsonl, json or csv",
}

#: The ``bad-json`` problem of an integer past Python's digit limit.
TOO_MANY_DIGITS = "an integer has more digits than can be read"


#: A :class:`DataError` with the message of ``code`` from :data:`MESSAGES`.
data_error = partial(coded_error, DataError, MESSAGES, HINTS)


def option_list(value: Any) -> tuple[str, ...] | None:
    """An ``options`` value: a list of 1 to 26 non-empty strings, or ``None``."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_OPTIONS:
        return None
    if not all(isinstance(v, str) and v.strip() for v in value):
        return None
    return tuple(value)


_SURROGATE = re.compile("[\ud800-\udfff]")


def surrogate(text: str) -> re.Match[str] | None:
    """The first lone surrogate in ``text``, which a JSON escape (``"\\ud800"``) can write but
    no UTF-8 text can hold. ASCII text (nearly all) has none: it is not searched."""
    if text.isascii():
        return None
    return _SURROGATE.search(text)


class WrittenNumber(Decimal):
    """A JSON number with a fraction or an exponent, exact, and its text as the file wrote it
    (``1e2``, ``0.0000001``, ``2.50``): an input shows it so, where ``str`` of the Decimal
    would write ``1E+2`` and ``1E-7``."""

    text: str


def written_number(token: str) -> Decimal:
    """The JSON decoder's ``parse_float``: the number, keeping its text."""
    number = WrittenNumber(token)
    number.text = token
    return number


def to_text(value: Any) -> str:
    """A data value as input text, deterministically (see the module docstring)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, WrittenNumber):
        return value.text
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return canonical_json(_jsonable(value))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def options_found(value: object) -> str:
    """What an ``options`` value that :func:`option_list` refuses holds, as ``bad-options``
    says it: ``a list of 27``, ``an empty string at [1]``, ``a number at [0]``, ``a string``."""
    if not isinstance(value, list):
        return kind(value)
    if not 1 <= len(value) <= MAX_OPTIONS:
        return f"a list of {len(value)}"
    for k, v in enumerate(value):
        if not isinstance(v, str):
            return f"{kind(v)} at [{k}]"
        if not v.strip():
            return f"an empty string at [{k}]"
    return "a list"


def kind(value: object) -> str:
    """What a JSON value is, as a message names it (``a list``, ``null``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"
