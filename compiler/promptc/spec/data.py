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

import json
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, Literal

from promptc.errors import DataError, ErrorCollector, Location, PromptcError
from promptc.ir import AnswerWith, DataSource, Item, OutputField, Value
from promptc.markers import options_text
from promptc.spec.load import COMMAND_LINE, KeyPath, SpecDocument
from promptc.text import Hasher, sha256_hasher

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


def _surrogate(text: str) -> re.Match[str] | None:
    """The first lone surrogate in ``text``, which a JSON escape (``"\\ud800"``) can write but
    no UTF-8 text can hold; ASCII text (nearly all) has none, and needs no regex."""
    if text.isascii():
        return None
    return _surrogate_pattern().search(text)


@cache
def _surrogate_pattern() -> re.Pattern[str]:
    # Compiled on first use: a range past Latin-1 compiles a map of the whole BMP.
    return re.compile("[\ud800-\udfff]")


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


@dataclass(frozen=True, slots=True)
class Row:
    """One row of a data file: its values and where it starts."""

    values: Mapping[str, Any]
    location: Location


def _json_error(display: str, e: json.JSONDecodeError, line_offset: int = 0) -> DataError:
    return data_error("bad-json", Location(display, e.lineno + line_offset, e.colno), problem=e.msg)


TOO_MANY_DIGITS = "an integer has more digits than can be read"


# One decoder for every line: json.loads(parse_float=…) would build a new one per call.
_DECODER = json.JSONDecoder(parse_float=Decimal)
_SCAN: Callable[[str, int], tuple[Any, int]] = _DECODER.scan_once  # type: ignore[attr-defined]


def _decode_row(text: str) -> Any:
    """``_DECODER.decode(text)``, faster for a line that is exactly one JSON value (the
    decoder's own checks, and its error, only for the others)."""
    try:
        value, end = _SCAN(text, 0)
    except StopIteration:
        end = -1
    if end != len(text):
        return _DECODER.decode(text)
    return value


#: The most text one element of a JSON array may take (its object and the space around it):
#: the stream holds an element whole while it decodes it.
MAX_JSON_ROW_BYTES = 64 << 20

_JSON_CHUNK = 1 << 20
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
_JSON_COMMA = re.compile(r"[ \t\n\r]*,[ \t\n\r]*")


class _RowTooLarge(Exception):
    """An element of a JSON array past ``MAX_JSON_ROW_BYTES``."""


class _JsonArrayStream:
    """The elements of a JSON array file, read a chunk at a time.

    Each element is decoded from a text buffer that holds at most the current element and
    one chunk of read-ahead, so memory does not grow with the file. Alongside, the reader
    keeps the byte offset, line and column of a point that only moves forward (line breaks
    are ``\n``, ``\r\n`` or a lone ``\r``; columns count characters, as an editor does).
    """

    def __init__(self, f: Any, sha: Hasher, display: str, c: ErrorCollector) -> None:
        import codecs

        self.f, self.sha, self.display, self.c = f, sha, display, c
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.buf = ""
        self.eof = False
        self.first = True
        # The tracked point: an index into buf, and its byte offset, line and column.
        self.at, self.byte, self.line, self.col = 0, 0, 1, 1

    def more(self, want: int = 0) -> None:
        """Reads at least ``want`` more bytes, and a chunk at least (or to the end)."""
        raw = self.f.read(max(want, _JSON_CHUNK, 3 if self.first else 0))  # 3: a whole BOM
        self.sha.update(raw)
        self.eof = not raw
        if self.first:
            self.first = False
            if raw.startswith(b"\xef\xbb\xbf"):
                raw, self.byte = raw[3:], 3
        pending = self.utf8.getstate()[0]
        try:
            self.buf += self.utf8.decode(raw, final=self.eof)
        except UnicodeDecodeError as e:
            data = pending + raw
            self.advance(len(self.buf))
            good = data[: e.start].decode("utf-8", errors="replace")
            self.buf += good
            self.advance(len(self.buf))
            raise _NotUtf8(self.line, self.col, data[e.start]) from None

    def advance(self, index: int) -> None:
        """Moves the tracked point forward to ``index`` of the buffer."""
        seg = self.buf[self.at : index]
        if not seg:
            return
        self.byte += len(seg) if seg.isascii() else len(seg.encode("utf-8"))
        breaks = seg.count("\n")
        if "\r" in seg:
            breaks += seg.count("\r") - seg.count("\r\n")
        if breaks:
            self.line += breaks
            self.col = len(seg) - max(seg.rfind("\n"), seg.rfind("\r"))
        else:
            self.col += len(seg)
        self.at = index

    def where(self, index: int) -> Location:
        self.advance(index)
        return Location(self.display, self.line, self.col)

    def space(self, i: int) -> int:
        """The index of the first character at or after ``i`` that is not JSON space
        (``len(buf)`` only at the end of the file)."""
        while True:
            end = _JSON_SPACE.match(self.buf, i).end()  # type: ignore[union-attr]
            if end < len(self.buf) or self.eof:
                return end
            # Keep a final \r: with the \n the next chunk may start with, it is one break.
            self.trim(end - 1 if self.buf.endswith("\r") else end)
            i = self.at
            self.more()

    def trim(self, keep: int) -> None:
        """Drops the buffer's text before ``keep`` (moving the tracked point there)."""
        self.advance(keep)
        if keep > _JSON_CHUNK:
            self.buf = self.buf[keep:]
            self.at = 0

    def decode(self, i: int) -> tuple[Any, int]:
        """The value that starts at ``i``, and the index after it; reads on while the value
        may run past the buffer (``MAX_JSON_ROW_BYTES`` at most)."""
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, i)
            except json.JSONDecodeError:
                if self.eof:
                    raise
                if len(self.buf) - i > MAX_JSON_ROW_BYTES:
                    raise _RowTooLarge from None
            else:
                if end < len(self.buf) or self.eof:
                    return value, end
            self.more(len(self.buf) - i)

    def rows(self) -> Iterator[tuple[dict[str, Any], Location, int, int]]:
        """Each object: its value, location, byte offset and byte length."""
        c = self.c
        self.more()
        i = self.space(0)
        if i >= len(self.buf) or self.buf[i] != "[":
            found = "an empty file"
            if i < len(self.buf):
                try:
                    found = _kind(self.decode(i)[0])
                except (ValueError, RecursionError):
                    found = _kind(None)
            c.add(data_error("not-an-array", self.where(i), found=found))
            return
        i = self.space(i + 1)
        if i < len(self.buf) and self.buf[i] == "]":
            return
        while True:
            where = self.where(i)
            start = self.byte
            try:
                value, end = self.decode(i)
            except json.JSONDecodeError as e:
                c.add(data_error("bad-json", self.where(max(e.pos, i)), problem=e.msg))
                return
            except RecursionError:
                c.add(data_error("bad-json", where, problem="nested too deeply"))
                return
            except _RowTooLarge:
                problem = f"an element takes more than {MAX_JSON_ROW_BYTES >> 20} MiB"
                c.add(data_error("bad-json", where, problem=problem))
                return
            except ValueError:  # an integer past Python's digit limit
                c.add(data_error("bad-json", where, problem=TOO_MANY_DIGITS))
                return
            self.advance(end)  # the tracked point is at i: its byte count is the element's
            if type(value) is dict:
                yield value, where, start, self.byte - start
            else:
                c.add(data_error("not-an-object", where, found=_kind(value)))
            # The common case in one step: a comma, and the next element in the buffer.
            m = _JSON_COMMA.match(self.buf, end)
            if m is not None and m.end() < len(self.buf):
                i = m.end()
                if end > _JSON_CHUNK:
                    self.trim(end)
                    i -= end
                continue
            self.trim(end)
            i = self.space(self.at)
            if i < len(self.buf) and self.buf[i] == ",":
                i = self.space(i + 1)
                continue
            if i < len(self.buf) and self.buf[i] == "]":
                rest = self.space(i + 1)
                if rest < len(self.buf):
                    problem = "extra data after the array"
                    c.add(data_error("bad-json", self.where(rest), problem=problem))
                return
            problem = "expected ',' or ']'" if i < len(self.buf) else "the array is not closed"
            c.add(data_error("bad-json", self.where(min(i, len(self.buf))), problem=problem))
            return


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
) -> tuple[DataSource, Sequence[Item]] | None:
    """Reads the data file named by the spec.

    Files are read as streams, a line at a time (JSONL, CSV) or an element at a time (a
    JSON array): what is kept per item is where its row starts in the file and its length
    (an :class:`ItemTable`), so memory does not grow with the text of the data.

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
    if from_command_line:
        display = os.path.normpath(rel)
        # Written to the manifest: relative to the spec's folder, so that it names no machine.
        rel = os.path.relpath(target, doc.files[0].resolved.parent).replace(os.sep, "/")
    else:
        display = os.path.normpath(os.path.join(os.path.dirname(where.file), rel))

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
    maker = _ItemMaker(columns, id_spec, id_template, display, gold, option_inputs)

    errors_before, omitted_before = len(c.errors), c.omitted
    try:
        scanned = _scan_lines(target, display, fmt, maker, c, doc.digests)
    except OSError as e:
        c.add(data_error("unreadable", where, pp, path=rel, reason=e.strerror or str(e)))
        return None
    except _NotUtf8 as e:
        # As if the file had been decoded before any row was read: only this error.
        del c.errors[errors_before:]
        c.omitted = omitted_before
        c.add(data_error("not-utf8", Location(display, e.line, e.col), byte=e.byte))
        return None
    items, sha, n_rows = scanned
    if n_rows == 0 and not c.errors:
        c.add(data_error("no-rows", Location(display)))
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
    return source, items


class _NotUtf8(Exception):
    def __init__(self, line: int, col: int, byte: int) -> None:
        self.line, self.col, self.byte = line, col, byte


def _not_utf8(raw: bytes, e: UnicodeDecodeError, line: int) -> _NotUtf8:
    """Where the first bad byte of a line is: columns counted in characters, as an editor does."""
    good = raw[: e.start].decode("utf-8", errors="replace")
    return _NotUtf8(line, len(good) + 1, raw[e.start])


class _ItemMaker:
    """Turns rows into items: the columns of the inputs, and the id (a column, a Jinja
    expression, or the 1-based row number). Locations are made only for errors: this runs
    once per row when the file is checked and once more when the item is read back."""

    def __init__(
        self,
        columns: Mapping[str, str],
        id_spec: str | None,
        template: Any,
        display: str,
        gold: Sequence[GoldReader] = (),
        option_inputs: frozenset[str] = frozenset(),
    ) -> None:
        self.columns = tuple(columns.items())
        self.id_spec = id_spec
        self.template = template
        self.display = display
        self.id_column = id_spec if id_spec is not None and "{{" not in id_spec else None
        self.gold = tuple(gold)
        self.option_inputs = option_inputs
        #: The options of the last row :meth:`inputs` read (``options`` inputs' lists).
        self.options: dict[str, tuple[str, ...]] = {}

    def golds(
        self, values: Mapping[str, Any], line: int | Location, index: int, c: ErrorCollector
    ) -> dict[str, Value] | None:
        """The row's gold answers (``data.gold``), or ``None`` if one is missing or bad."""
        out: dict[str, Value] = {}
        if not self.gold:
            return out
        row = Row(values, self.where(line))
        ok = True
        for reader in self.gold:
            value = reader.read(row, index, c)
            if value is not None and reader.output.choices_from:
                value = self._gold_option(reader, value, row, c)
            if value is None:
                ok = False
            else:
                out[reader.output.name] = value
        return out if ok else None

    def _gold_option(
        self, reader: GoldReader, value: Value, row: Row, c: ErrorCollector
    ) -> Value | None:
        """A gold answer naming one of the row's own options (``choices_from``): its letter,
        given as the letter or (``answer_with: text | either``) as the option's text."""
        from promptc.values import option_choices, resolve_option

        field = reader.output
        options = self.options.get(field.choices_from)
        if not options:
            return value  # the row's options are missing or bad, which is reported
        answer_with: AnswerWith = "either" if field.answer_with != "letter" else "letter"
        hits = resolve_option(answer_with, options, str(value), exact=False)
        if len(hits) == 1:
            return hits[0]
        names = f"names options {' and '.join(hits)}" if hits else "names none of its options"
        choices = ", ".join(repr(x) for x in option_choices(answer_with, options))
        c.add(
            data_error(
                "bad-gold",
                row.location,
                ("data", "gold", field.name),
                type=field.type,
                output=field.name,
                problem=f"{str(value)!r} {names}; expected one of {choices}",
            )
        )
        return None

    def where(self, line: int | Location) -> Location:
        """A row's location: given whole (a JSON array's rows have columns), or its line."""
        return line if isinstance(line, Location) else Location(self.display, line, 1)

    def inputs(
        self, values: Mapping[str, Any], line: int | Location, c: ErrorCollector
    ) -> dict[str, str] | None:
        """The row's inputs as text, or ``None`` if one is missing or bad (reported); the
        lists of its ``options`` inputs are left in :attr:`options`."""
        inputs: dict[str, str] = {}
        options: dict[str, tuple[str, ...]] = {}
        ok = True
        for name, column in self.columns:
            value = values.get(column, _ABSENT)
            if type(value) is str and name not in self.option_inputs:
                inputs[name] = value
                if _surrogate(value) is None:
                    continue
            elif value is _ABSENT:
                c.add(data_error("missing-field", self.where(line), column=column, input=name))
                ok = False
                continue
            elif value is None:
                c.add(data_error("null-field", self.where(line), column=column, input=name))
                ok = False
                continue
            elif name in self.option_inputs:
                listed = option_list(value)
                if listed is None:
                    c.add(
                        data_error(
                            "bad-options",
                            self.where(line),
                            column=column,
                            input=name,
                            found=_kind(value),
                        )
                    )
                    ok = False
                else:
                    options[name] = listed
                    inputs[name] = options_text(listed)
                continue
            else:
                inputs[name] = to_text(value)
            bad = _surrogate(inputs[name])
            if bad is not None:  # from a JSON escape: no character, cannot be sent as UTF-8
                c.add(
                    data_error(
                        "lone-surrogate",
                        self.where(line),
                        column=column,
                        input=name,
                        escape=f"\\u{ord(bad.group()):04x}",
                    )
                )
                ok = False
        self.options = options
        return inputs if ok else None

    def item_id(
        self, values: Mapping[str, Any], line: int | Location, index: int, c: ErrorCollector
    ) -> str | None:
        column = self.id_column
        if column is not None:
            value = values.get(column)
            if type(value) is str:
                text = value.strip()
                if text and _surrogate(text) is None:
                    return text
        item_id = _item_id(Row(values, self.where(line)), index, self.id_spec, self.template, c)
        if item_id is not None and _surrogate(item_id):
            c.add(data_error("lone-surrogate-id", self.where(line)))
            return None
        return item_id


_ABSENT: Any = object()


class _Duplicates:
    """Duplicate item ids, found in memory that does not grow with the ids' text: the hash of
    every id, in 256 arrays by its low bits. Equal hashes are checked against the ids
    themselves only when some turn up (a real duplicate, or a 64-bit collision)."""

    def __init__(self) -> None:
        from array import array

        self.buckets = [array("q") for _ in range(256)]

    def add(self, item_id: str) -> None:
        h = hash(item_id)
        self.buckets[h & 255].append(h)

    def suspects(self) -> set[int]:
        """The hashes seen more than once."""
        out: set[int] = set()
        for bucket in self.buckets:
            if len(set(bucket)) != len(bucket):
                seen: set[int] = set()
                for h in bucket:
                    if h in seen:
                        out.add(h)
                    seen.add(h)
        return out


def _split_cr(raw: bytes) -> list[bytes]:
    """A line's pieces between lone carriage returns (old Mac line ends count as lines)."""
    return raw.split(b"\r")


def _scan_lines(
    target: Any,
    display: str,
    fmt: DataFormat,
    maker: _ItemMaker,
    c: ErrorCollector,
    digest: bool = True,
) -> tuple[Sequence[Item], str, int]:
    """Reads a data file a row at a time, checking every row; keeps an offset table, and the
    file's sha256 (``""`` without ``digest``).

    JSONL and CSV are read a line at a time, a JSON array an element at a time.
    """
    from array import array

    # Offsets and lengths fit 4 bytes each in a file under 4 GiB (all but the largest).
    code = "I" if os.path.getsize(target) < 2**32 else "q"
    starts, lengths = array(code), array(code)
    lines = _Lines()
    # A JSON array's rows may start anywhere on a line: their columns too.
    cols = _Lines(step=0) if fmt == "json" else None
    dups = _Duplicates()
    sha = sha256_hasher(digest)
    n_rows = 0
    header: list[str] | None = None
    with open(target, "rb") as f:
        rows: Iterator[Any]
        if fmt == "json":
            rows = _JsonArrayStream(f, sha, display, c).rows()
        else:
            rows = (_jsonl_stream if fmt == "jsonl" else _csv_stream)(f, sha, display, c)
        if fmt == "csv":
            first = next(rows, None)
            if not isinstance(first, list):
                # No header (reported) or an empty file: read the rest for the sha only.
                for _ in rows:
                    pass
                while chunk := f.read(1 << 20):  # what the CSV reader did not get to
                    sha.update(chunk)
                return (), sha.hexdigest(), 0
            header = first
        inputs_of, id_of, golds_of = maker.inputs, maker.item_id, maker.golds
        add_id, add_start, add_length, add_line = (
            dups.add,
            starts.append,
            lengths.append,
            lines.append,
        )
        values: Any
        line: Any  # a line number (JSONL, CSV) or the row's Location (a JSON array)
        start: Any
        length: Any
        for values, line, start, length in rows:
            index = n_rows
            n_rows += 1
            inputs = inputs_of(values, line, c)
            item_id = id_of(values, line, index, c)
            golds = golds_of(values, line, index, c)
            if item_id is None or inputs is None or golds is None:
                continue
            add_id(item_id)
            if cols is not None:
                cols.append(len(starts), line.col)
                line = line.line
            add_line(len(starts), line)
            add_start(start)
            add_length(length)
        while chunk := f.read(1 << 20):  # what a reader stopped before (an error), for the sha
            sha.update(chunk)
    table = ItemTable(str(target), fmt, maker, header, starts, lengths, lines, cols)
    suspects = dups.suspects()
    if suspects:
        _report_duplicates(table, suspects, c)
    return table, sha.hexdigest(), n_rows


class _Lines:
    """The line (or column) of each item: nothing stored while item ``i`` is at
    ``i * step + base`` for the first item's ``base`` (JSONL without blank lines: line
    ``i + 1``; a JSON array one element a line: line ``i + 2``, column 1 throughout), an
    array from the first item that is not."""

    def __init__(self, step: int = 1) -> None:
        self.step = step
        self.base: int | None = None
        self.lines: Any = None

    def append(self, index: int, line: int) -> None:
        if self.lines is None:
            if self.base is None:
                self.base = line - index * self.step
            if line == index * self.step + self.base:
                return
            from array import array

            self.lines = array("q", (k * self.step + self.base for k in range(index)))
        self.lines.append(line)

    def __getitem__(self, index: int) -> int:
        if self.lines is None:
            return index * self.step + (self.base or 0)
        return int(self.lines[index])


def _report_duplicates(table: ItemTable, suspects: set[int], c: ErrorCollector) -> None:
    first_line: dict[str, int] = {}
    for item in table:
        if hash(item.id) not in suspects:
            continue
        if item.id in first_line:
            c.add(data_error("duplicate-id", item.location, id=item.id, line=first_line[item.id]))
        else:
            first_line[item.id] = item.location.line


def _jsonl_stream(
    f: Any, sha: Hasher, display: str, c: ErrorCollector
) -> Iterator[tuple[dict[str, Any], int, int, int]]:
    """JSONL rows: the object, its line, and the byte offset and length of its text. Lines end
    at ``\\n``, ``\\r\\n`` or a lone ``\\r``; a BOM before the first line is skipped."""
    decode = _decode_row
    update = sha.update
    offset = 0
    line = 0
    raw_line = 0
    for raw in f:
        update(raw)
        raw_line += 1
        start = offset
        offset += len(raw)
        if raw_line == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
            start += 3
        body = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _not_utf8(raw, e, raw_line) from None
        if "\r" in text:
            pieces = list(zip(text.split("\r"), body.split(b"\r")))
        else:
            pieces = [(text, body)]
        for piece, piece_bytes in pieces:
            line += 1
            piece_start = start
            start += len(piece_bytes) + 1
            try:
                value = decode(piece)
            except json.JSONDecodeError as e:
                if piece.strip():
                    c.add(_json_error(display, e, line - 1))
                continue
            except RecursionError:
                c.add(
                    data_error("bad-json", Location(display, line, 1), problem="nested too deeply")
                )
                continue
            except ValueError:  # an integer past Python's digit limit
                c.add(data_error("bad-json", Location(display, line, 1), problem=TOO_MANY_DIGITS))
                continue
            if type(value) is not dict:
                c.add(data_error("not-an-object", Location(display, line, 1), found=_kind(value)))
                continue
            yield value, line, piece_start, len(piece_bytes)


_LINE_ENDS = re.compile(r"(?<=\n)|(?<=\r)(?!\n)")


def _csv_lines(text: str) -> list[str]:
    return [p for p in _LINE_ENDS.split(text) if p]


def _csv_row(text: str) -> list[str]:
    """The fields of one CSV row's text; ``ValueError`` when it does not read as one."""
    import csv

    try:
        return next(csv.reader(_csv_lines(text), strict=True))
    except csv.Error as e:
        raise ValueError(str(e)) from None


class _CsvLines:
    """The lines of a CSV file for :func:`csv.reader`, split as ``newline=""`` text would be,
    counting the byte offset of the next line."""

    def __init__(self, f: Any, sha: Hasher) -> None:
        self.f = f
        self.sha = sha
        self.offset = 0
        self.raw_line = 0
        self.pending: list[tuple[str, int]] = []

    def __iter__(self) -> _CsvLines:
        return self

    def __next__(self) -> str:
        if self.pending:
            text, size = self.pending.pop()
            self.offset += size
            return text
        raw: bytes = self.f.readline()
        if not raw:
            raise StopIteration
        self.sha.update(raw)
        self.raw_line += 1
        size = len(raw)
        if self.raw_line == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
            self.offset += 3
            size -= 3
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _not_utf8(raw, e, self.raw_line) from None
        if "\r" in text:
            parts = _csv_lines(text)
            if len(parts) > 1:
                sizes = [len(p.encode("utf-8")) for p in parts]
                self.pending = list(zip(parts[1:], sizes[1:]))[::-1]
                self.offset += sizes[0]
                return parts[0]
        self.offset += size
        return text


def _csv_stream(
    f: Any, sha: Hasher, display: str, c: ErrorCollector
) -> Iterator[list[str] | tuple[dict[str, Any], int, int, int]]:
    """The header (first), then CSV rows: the row, its first line, and the byte offset and
    length of its text."""
    import csv  # here, not with the module: only CSV files need it

    lines = _CsvLines(f, sha)
    reader = csv.reader(lines, strict=True)
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
    yield header
    previous_end = reader.line_num
    width = len(header)
    while True:
        start_offset = lines.offset
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
        if len(fields) > width:
            where = Location(display, start, 1)
            c.add(data_error("csv-extra-fields", where, found=len(fields), expected=width))
            continue
        yield dict(zip(header, fields)), start, start_offset, lines.offset - start_offset


class ItemTable(Sequence[Item]):
    """The items of a data file, read back from the file when asked for.

    Holds, per item, where its row starts in the file and its length in bytes (8 bytes an
    item in a file under 4 GiB, else 16), its line only when items are not one a line from
    the first, its column in a JSON array, and the last few thousand items made: selection asks for an item's id
    and rendering for its inputs right after, so each row is decoded about once per pass.
    Iterating reads the file from start to end.
    """

    CACHE = 4096

    def __init__(
        self,
        path: str,
        fmt: DataFormat,
        maker: _ItemMaker,
        header: list[str] | None,
        starts: Any,
        lengths: Any,
        lines: Any,
        cols: Any = None,
    ) -> None:
        self.path = path
        self.format = fmt
        self._maker = maker
        self._header = header
        self._starts = starts
        self._lengths = lengths
        self._lines = lines
        self._cols = cols
        self._file: Any = None
        self._cache: dict[int, Item] = {}

    def __len__(self) -> int:
        return len(self._starts)

    def __repr__(self) -> str:
        return f"ItemTable({self.path!r}, {len(self)} items)"

    def __getitem__(self, index: Any) -> Any:
        if type(index) is int:  # an item read a moment ago (a build takes each three times)
            item = self._cache.get(index)
            if item is not None:
                return item
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self._starts)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("item index out of range")
        item = self._cache.get(index)
        if item is None:
            if self._file is None:
                self._file = open(self.path, "rb")  # noqa: SIM115 - kept open while in use
            self._file.seek(self._starts[index])
            item = self._make(index, self._file.read(self._lengths[index]))
            if len(self._cache) >= self.CACHE:
                self._cache.clear()
            self._cache[index] = item
        return item

    def __iter__(self) -> Iterator[Item]:
        with open(self.path, "rb") as f:
            position = 0
            for index in range(len(self._starts)):
                start = self._starts[index]
                if start != position:
                    f.seek(start)
                length = self._lengths[index]
                position = start + length
                yield self._make(index, f.read(length))

    def close(self) -> None:
        """Closes the file held open for reading items by position."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._cache.clear()

    def _make(self, index: int, raw: bytes) -> Item:
        line = self._lines[index]
        maker = self._maker
        c = _STRICT
        try:
            text = raw.decode("utf-8")
            values: Any
            if self._header is None:
                values = _decode_row(text)
            else:
                values = dict(zip(self._header, _csv_row(text)))
            inputs = maker.inputs(values, line, c)
            item_id = maker.item_id(values, line, index, c)
            golds = maker.golds(values, line, index, c)
        except (ValueError, AttributeError, StopIteration, PromptcError):
            inputs = item_id = golds = None
        location = Location(maker.display, line, 1 if self._cols is None else self._cols[index])
        if inputs is None or item_id is None or golds is None:
            raise DataError(
                "the data file changed while promptc was reading it; run the command again",
                location=location,
                code="data-changed",
            )
        options = maker.options
        return Item(
            id=item_id, index=index, inputs=inputs, location=location, gold=golds, options=options
        )


#: Raises at the first problem: a row read back was checked once already.
_STRICT = ErrorCollector(fail_fast=True)


@dataclass(frozen=True, slots=True)
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
            raw = raw.strip() if not self.output.type.free_text else raw
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
    """One reader per ``data.gold`` entry that names a declared output, in output order.

    Jinja is imported only for an entry that is an expression: a column name needs none.
    """
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
            from jinja2 import TemplateError

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
