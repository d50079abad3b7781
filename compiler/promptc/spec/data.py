"""Read a spec's data file into items: JSONL, a JSON array of objects, or CSV with a header.

``read_data`` resolves ``data.path`` relative to the folder of the spec that declares it, refuses
paths that leave that folder (absolute paths, ``..``, symlinks pointing outside), reads every row,
maps columns to inputs (``data.fields``), computes item ids (``data.id``) and reports every bad row
at its file:line:col through the caller's :class:`~promptc.errors.ErrorCollector`.

Values that are not strings are turned into text deterministically: integers and decimals as
written in the file (``1.50`` stays ``1.50``), booleans as ``true``/``false``, null as an error,
lists and objects as compact JSON with sorted keys.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from promptc.errors import DataError, ErrorCollector, Location
from promptc.ir import DataSource, Item, OutputField, Value
from promptc.markers import options_text
from promptc.spec.load import COMMAND_LINE, KeyPath, SpecDocument
from promptc.text import LineTable

DataFormat = Literal["jsonl", "json", "csv"]

EXTENSIONS: dict[str, DataFormat] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
}

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
    "null-field": "field {column!r} (for input {input!r}) is null; expected text",
    "missing-id": "row has no id field {column!r}",
    "lone-surrogate": "field {column!r} (for input {input!r}) holds a lone surrogate {escape}, "
    "which is not a character; expected text",
    "lone-surrogate-id": "the item id holds a lone surrogate, which is not a character",
    "bad-id": "item id expression failed: {problem}",
    "bad-id-template": "invalid item id expression: {problem}",
    "empty-id": "item id is empty",
    "duplicate-id": "duplicate item id {id!r}; first used at line {line}",
    "no-rows": "data file has no rows",
    "missing-gold": "row has no gold field {column!r} (for output {output!r})",
    "null-gold": "gold field {column!r} (for output {output!r}) is null; expected a value",
    "bad-gold": "gold value for {type} output {output!r}: {problem}",
    "bad-gold-expression": "gold expression for output {output!r} failed: {problem}",
    "bad-gold-template": "invalid gold expression for output {output!r}: {problem}",
}

HINTS: dict[str, str] = {
    "escapes-folder": "keep data files inside the spec's folder",
    "missing-gold": "map data.gold to the column holding the answer, or to an expression",
    "unknown-format": "set data.format to jsonl, json or csv",
}


def data_error(code: str, location: Location, key_path: KeyPath = (), **kw: object) -> DataError:
    """A :class:`DataError` with the message of ``code`` from :data:`MESSAGES`."""
    return DataError(
        MESSAGES[code].format(**kw),
        location=location,
        path=key_path,
        hint=HINTS.get(code),
        code=code,
    )


def option_list(value: Any) -> tuple[str, ...] | None:
    """An ``options`` value: a list of 1 to 26 non-empty strings, or ``None``."""
    from promptc.markers import MAX_OPTIONS

    if not isinstance(value, list) or not 1 <= len(value) <= MAX_OPTIONS:
        return None
    if not all(isinstance(v, str) and v.strip() for v in value):
        return None
    return tuple(value)


#: A lone surrogate, which a JSON escape (``"\\ud800"``) can write but no UTF-8 text can hold.
_SURROGATE = re.compile("[\ud800-\udfff]")


def to_text(value: Any) -> str:
    """A data value as input text, deterministically (see the module docstring)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return json.dumps(_jsonable(value), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


@dataclass(frozen=True)
class Row:
    """One row of a data file: its values and where it starts."""

    values: Mapping[str, Any]
    location: Location


def _json_error(display: str, e: json.JSONDecodeError, line_offset: int = 0) -> DataError:
    return data_error("bad-json", Location(display, e.lineno + line_offset, e.colno), problem=e.msg)


TOO_MANY_DIGITS = "an integer has more digits than can be read"


# One decoder for every line: json.loads(parse_float=…) would build a new one per call.
_DECODER = json.JSONDecoder(parse_float=Decimal)


def _jsonl_rows(display: str, text: str, c: ErrorCollector) -> Iterator[Row]:
    decode = _DECODER.decode
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = decode(line)
        except json.JSONDecodeError as e:
            c.add(_json_error(display, e, n - 1))
            continue
        except RecursionError:
            c.add(data_error("bad-json", Location(display, n, 1), problem="nested too deeply"))
            continue
        except ValueError:  # an integer past Python's digit limit
            c.add(data_error("bad-json", Location(display, n, 1), problem=TOO_MANY_DIGITS))
            continue
        if not isinstance(value, dict):
            c.add(data_error("not-an-object", Location(display, n, 1), found=_kind(value)))
            continue
        yield Row(value, Location(display, n, 1))


def _json_rows(display: str, text: str, c: ErrorCollector) -> Iterator[Row]:
    decoder = _DECODER
    starts = LineTable(text).starts

    def where(index: int) -> Location:
        line = _bisect(starts, index)
        return Location(display, line, index - starts[line - 1] + 1)

    i = _skip_ws(text, 0)
    if i >= len(text) or text[i] != "[":
        try:
            value, _ = decoder.raw_decode(text, i)
        except (ValueError, RecursionError):
            value = None
        c.add(
            data_error(
                "not-an-array",
                where(min(i, max(len(text) - 1, 0))),
                found=_kind(value) if i < len(text) else "an empty file",
            )
        )
        return
    i = _skip_ws(text, i + 1)
    if i < len(text) and text[i] == "]":
        return
    while True:
        try:
            value, end = decoder.raw_decode(text, i)
        except json.JSONDecodeError as e:
            c.add(_json_error(display, e))
            return
        except RecursionError:
            c.add(data_error("bad-json", where(i), problem="nested too deeply"))
            return
        except ValueError:  # an integer past Python's digit limit
            c.add(data_error("bad-json", where(i), problem=TOO_MANY_DIGITS))
            return
        if isinstance(value, dict):
            yield Row(value, where(i))
        else:
            c.add(data_error("not-an-object", where(i), found=_kind(value)))
        i = _skip_ws(text, end)
        if i < len(text) and text[i] == ",":
            i = _skip_ws(text, i + 1)
            continue
        if i < len(text) and text[i] == "]":
            rest = _skip_ws(text, i + 1)
            if rest < len(text):
                c.add(data_error("bad-json", where(rest), problem="extra data after the array"))
            return
        problem = "expected ',' or ']'" if i < len(text) else "the array is not closed"
        c.add(data_error("bad-json", where(min(i, len(text))), problem=problem))
        return


def _csv_rows(display: str, text: str, c: ErrorCollector) -> Iterator[Row]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
    except csv.Error as e:
        c.add(data_error("csv-error", Location(display, reader.line_num or 1), problem=str(e)))
        return
    if not header or not any(h.strip() for h in header):
        c.add(data_error("csv-no-header", Location(display, 1, 1)))
        return
    seen: set[str] = set()
    for h in header:
        if h in seen:
            c.add(data_error("csv-duplicate-column", Location(display, 1, 1), column=h))
        seen.add(h)
    previous_end = reader.line_num
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            c.add(data_error("csv-error", Location(display, reader.line_num), problem=str(e)))
            return
        start = previous_end + 1
        previous_end = reader.line_num
        if not fields:
            continue  # a blank line (a quoted "" is a row with one empty field)
        where = Location(display, start, 1)
        if len(fields) > len(header):
            c.add(data_error("csv-extra-fields", where, found=len(fields), expected=len(header)))
            continue
        yield Row(dict(zip(header, fields)), where)


def _kind(value: object) -> str:
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


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\n\r":
        i += 1
    return i


def _bisect(starts: Sequence[int], index: int) -> int:
    from bisect import bisect_right

    return bisect_right(starts, index)


MAX_ID_LENGTH = 1000
"""Longest value an id expression's operators may build (``'x' * 10**9`` would take a gigabyte)."""


def _id_environment() -> Any:
    """An immutable Jinja sandbox whose ``*`` and ``**`` cannot build huge values."""
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class IdEnvironment(ImmutableSandboxedEnvironment):
        intercepted_binops = frozenset(["*", "**"])

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "**" and isinstance(right, int) and abs(right) > 64:
                raise SecurityError("exponent too large in an item id expression")
            if operator == "*":
                count = right if isinstance(right, int) else left if isinstance(left, int) else 1
                other = left if isinstance(right, int) else right
                if isinstance(other, (str, list, tuple)) and count * len(other) > MAX_ID_LENGTH:
                    raise SecurityError("repetition too long in an item id expression")
            return super().call_binop(context, operator, left, right)

    from jinja2 import StrictUndefined

    return IdEnvironment(undefined=StrictUndefined, autoescape=False)


def _id_template(expr: str, where: Location, c: ErrorCollector) -> Any:
    """Compiles a Jinja id expression in a sandbox, or reports it."""
    from jinja2 import TemplateError

    try:
        return _id_environment().from_string(expr)
    except TemplateError as e:
        c.add(data_error("bad-id-template", where, ("data", "id"), problem=str(e)))
        return None


def read_data(
    doc: SpecDocument,
    input_names: Sequence[str],
    c: ErrorCollector,
    outputs: Sequence[OutputField] = (),
    option_inputs: frozenset[str] = frozenset(),
) -> tuple[DataSource, tuple[Item, ...]] | None:
    """Reads the data file named by the spec.

    A ``data.path`` given on the command line (``--data PATH``, located at ``<command line>``)
    is the user's own choice of file: it is read relative to the working folder and is not
    confined to the spec's folder.

    Args:
        doc: The loaded spec; ``data`` must be a mapping with a string ``path``.
        input_names: The declared inputs, in order.
        c: Receives every problem found.
        outputs: The declared outputs, whose types read the gold answers of ``data.gold``
            (an output not among them was reported by validation and is skipped here).
        option_inputs: The inputs of type ``options``, whose values are lists of options.

    Returns:
        The data source and its items, or ``None`` if the file could not be read at all.
    """
    from promptc.spec.validate import resolve_inside

    data = doc.get(("data",))
    if not isinstance(data, dict) or not isinstance(data.get("path"), str):
        return None
    rel: str = data["path"]
    pp: KeyPath = ("data", "path")
    where = doc.value_location(pp)
    if "\0" in rel:
        c.add(data_error("nul-in-path", where, pp, path=rel))
        return None
    from_command_line = where.file == COMMAND_LINE
    if from_command_line:
        target = Path(rel).expanduser().resolve()
    else:
        if os.path.isabs(rel) or rel.startswith("~"):
            c.add(data_error("absolute-path", where, pp, path=rel))
            return None
        resolved = resolve_inside(doc.folder_of(pp), rel)
        if resolved is None:
            c.add(data_error("escapes-folder", where, pp, path=rel))
            return None
        target = resolved
    fmt = data.get("format")
    if fmt is not None and fmt not in ("jsonl", "json", "csv"):
        return None  # validation reported it
    fmt = fmt or EXTENSIONS.get(os.path.splitext(rel)[1].lower())
    if fmt not in ("jsonl", "json", "csv"):
        c.add(data_error("unknown-format", where, pp, path=rel))
        return None
    if not target.exists():
        c.add(data_error("not-found", where, pp, path=rel))
        return None
    if not target.is_file():
        c.add(data_error("not-a-file", where, pp, path=rel))
        return None
    try:
        raw = target.read_bytes()
    except OSError as e:
        c.add(data_error("unreadable", where, pp, path=rel, reason=e.strerror or str(e)))
        return None
    if from_command_line:
        display = os.path.normpath(rel)
        # Written to the manifest: relative to the spec's folder, so that it names no machine.
        rel = os.path.relpath(target, doc.files[0].resolved.parent).replace(os.sep, "/")
    else:
        display = os.path.normpath(os.path.join(os.path.dirname(where.file), rel))
    sha = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        good = raw[: e.start].decode("utf-8", errors="replace")
        line = good.count("\n") + 1
        col = len(good) - (good.rfind("\n") + 1) + 1
        c.add(data_error("not-utf8", Location(display, line, col), byte=raw[e.start]))
        return None
    if fmt != "csv":
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    rows = {"jsonl": _jsonl_rows, "json": _json_rows, "csv": _csv_rows}[fmt](display, text, c)

    raw_fields = data.get("fields")
    mapping = dict(raw_fields) if isinstance(raw_fields, dict) else {}
    # An input whose mapping is not a column name was reported by validation: skip it here.
    columns = {
        name: mapping.get(name, name)
        for name in input_names
        if isinstance(mapping.get(name, name), str)
    }
    id_spec = data.get("id") if isinstance(data.get("id"), str) else None
    id_template = None
    if id_spec is not None and "{{" in id_spec:
        id_template = _id_template(id_spec, doc.value_location(("data", "id")), c)
    gold = _gold_readers(doc, outputs, c)
    items: list[Item] = []
    first_line: dict[str, int] = {}
    index = 0
    for row in rows:
        ok = True
        inputs: dict[str, str] = {}
        options: dict[str, tuple[str, ...]] = {}
        for name, column in columns.items():
            if column not in row.values:
                c.add(data_error("missing-field", row.location, column=column, input=name))
                ok = False
            elif row.values[column] is None:
                c.add(data_error("null-field", row.location, column=column, input=name))
                ok = False
            elif name in option_inputs:
                listed = option_list(row.values[column])
                if listed is None:
                    c.add(
                        data_error(
                            "bad-options",
                            row.location,
                            column=column,
                            input=name,
                            found=_kind(row.values[column]),
                        )
                    )
                    ok = False
                else:
                    options[name] = listed
                    inputs[name] = options_text(listed)
            else:
                inputs[name] = to_text(row.values[column])
                bad = _SURROGATE.search(inputs[name])
                if bad is not None:  # from a JSON escape: no character, cannot be sent as UTF-8
                    c.add(
                        data_error(
                            "lone-surrogate",
                            row.location,
                            column=column,
                            input=name,
                            escape=f"\\u{ord(bad.group()):04x}",
                        )
                    )
                    ok = False
        item_id = _item_id(row, index, id_spec, id_template, c)
        if item_id is not None and _SURROGATE.search(item_id):
            c.add(data_error("lone-surrogate-id", row.location))
            item_id = None
        golds: dict[str, Value] = {}
        for reader in gold:
            value = reader.read(row, index, c)
            if value is None:
                ok = False
            else:
                golds[reader.output.name] = value
        index += 1
        if item_id is None or not ok:
            continue
        if item_id in first_line:
            c.add(data_error("duplicate-id", row.location, id=item_id, line=first_line[item_id]))
            continue
        first_line[item_id] = row.location.line
        items.append(
            Item(
                id=item_id,
                index=len(items),
                inputs=inputs,
                location=row.location,
                gold=golds,
                options=options,
            )
        )
    if index == 0 and not c.errors:
        c.add(
            data_error(
                "no-rows",
                Location(display),
            )
        )
    source = DataSource(
        path=rel,
        resolved=str(target),
        format=fmt,
        fields=columns,
        id=id_spec,
        sha256=sha,
        location=where,
        gold={r.output.name: r.spec for r in gold},
    )
    return source, tuple(items)


@dataclass(frozen=True)
class GoldReader:
    """Reads one output's gold answer from a row: a column, or a Jinja expression over it."""

    output: OutputField
    spec: str
    template: Any  # a compiled Jinja template for an expression, else None
    location: Location

    def read(self, row: Row, index: int, c: ErrorCollector) -> Value | None:
        """The row's gold value, normalised by the output's type, or ``None`` (reported)."""
        from promptc.values import coerce_value, expected

        name = self.output.name
        raw: object
        if self.template is not None:
            try:
                raw = str(self.template.render(row=row.values, index=index, loop_index=index + 1))
            except Exception as e:  # noqa: BLE001 - any Jinja failure is the user's expression
                c.add(
                    data_error(
                        "bad-gold-expression",
                        row.location,
                        ("data", "gold", name),
                        output=name,
                        problem=str(e),
                    )
                )
                return None
            raw = raw.strip() if self.output.type != "text" else raw
        else:
            if self.spec not in row.values:
                c.add(data_error("missing-gold", row.location, column=self.spec, output=name))
                return None
            raw = row.values[self.spec]
            if raw is None:
                c.add(data_error("null-gold", row.location, column=self.spec, output=name))
                return None
        if isinstance(raw, Decimal):
            raw = to_text(raw)  # a JSON number as written: 51.0 reads as a number or integer
        elif isinstance(raw, (list, dict)):
            raw = to_text(raw)
        try:
            return coerce_value(self.output, raw)
        except ValueError:
            c.add(
                data_error(
                    "bad-gold",
                    row.location,
                    ("data", "gold", name),
                    type=self.output.type,
                    output=name,
                    problem=f"expected {expected(self.output)}, found {to_text(raw)!r}",
                )
            )
            return None


def _gold_readers(
    doc: SpecDocument, outputs: Sequence[OutputField], c: ErrorCollector
) -> list[GoldReader]:
    """One reader per ``data.gold`` entry that names a declared output, in output order."""
    from jinja2 import TemplateError

    raw = doc.get(("data", "gold"))
    if not isinstance(raw, dict):
        return []
    readers = []
    for field in outputs:
        spec = raw.get(field.name)
        if not isinstance(spec, str) or not spec:
            continue
        p: KeyPath = ("data", "gold", field.name)
        where = doc.value_location(p)
        template = None
        if "{{" in spec:
            try:
                template = _id_environment().from_string(spec)
            except TemplateError as e:
                c.add(data_error("bad-gold-template", where, p, output=field.name, problem=str(e)))
                continue
        readers.append(GoldReader(field, spec, template, where))
    return readers


def _item_id(
    row: Row, index: int, id_spec: str | None, template: Any, c: ErrorCollector
) -> str | None:
    if id_spec is None:
        return str(index + 1)
    if "{{" in id_spec:
        if template is None:
            return None
        try:
            value = str(template.render(row=row.values, index=index, loop_index=index + 1))
        except Exception as e:  # noqa: BLE001 - any Jinja failure is the user's expression
            c.add(data_error("bad-id", row.location, ("data", "id"), problem=str(e)))
            return None
        value = value.strip()
    else:
        if id_spec not in row.values or row.values[id_spec] is None:
            c.add(data_error("missing-id", row.location, column=id_spec))
            return None
        value = to_text(row.values[id_spec]).strip()
    if not value:
        c.add(data_error("empty-id", row.location))
        return None
    return value
