"""The rows of a data file, one reader per format: JSONL, CSV with a header, a JSON array.

Each reader takes the open file (binary), a hasher that every byte read is fed to, the file's
name as diagnostics show it and the error collector, and yields one tuple per row: its values,
where it starts (a line number; a JSON array's rows, which may start anywhere on a line, a
whole :class:`~promptc.errors.Location`), and the byte offset and length of its text, by which
:class:`~promptc.spec.item_table.ItemTable` reads the row back. Bad rows are reported at their
file:line:col and skipped.

JSONL and CSV are read a line at a time, so that memory does not grow with the file. A JSON
array is read whole, then walked an element at a time with the standard library's decoder,
which locates every element and every error exactly; data that does not fit in memory is what
JSONL is for (docs/spec.md).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from typing import Any, BinaryIO

from promptc.errors import ErrorCollector, Location
from promptc.spec.rows import TOO_MANY_DIGITS, data_error, kind, written_number
from promptc.text import Hasher

_BOM = b"\xef\xbb\xbf"


class NotFinite(ValueError):
    """A bare ``NaN``, ``Infinity`` or ``-Infinity``: Python's json reads them, JSON has no
    such number, and nothing promptc writes could hold one (a build's items.jsonl would be
    unreadable)."""


def _not_finite(name: str) -> Any:
    raise NotFinite(name)


#: A bare NaN or ±Infinity outside a string, where :class:`NotFinite` says the row has one.
_CONSTANT = re.compile(r'"(?:[^"\\]|\\.)*"|(-?Infinity|NaN)')

#: The ``bad-json`` problem of a row with a bare ``NaN`` or ``Infinity`` (``{name}``).
NOT_FINITE = "{name} is not a JSON number; expected a finite number (or a string)"

#: The longest CSV field read (characters): a data value as long as the file may hold, where
#: Python's csv stops at 131,072 by default.
MAX_CSV_FIELD = 100_000_000
csv.field_size_limit(MAX_CSV_FIELD)  # the process's csv module: promptc reads no other CSV

# One decoder for every row: json.loads(parse_float=…) would build a new one per call.
_DECODER = json.JSONDecoder(parse_float=written_number, parse_constant=_not_finite)


def _constant_at(text: str, start: int) -> int:
    """The index of the first bare NaN or ±Infinity at or after ``start`` (strings skipped)."""
    for m in _CONSTANT.finditer(text, start):
        if m.group(1):
            return m.start(1)
    return start


def decode_row(text: str) -> Any:
    """The JSON value of one row's text (numbers with a point as :class:`~decimal.Decimal`).

    ``raw_decode`` first: a row is nearly always exactly one value, for which it takes half
    of ``decode``'s time (a microsecond less a row; a build decodes each of a million rows
    twice); ``decode``, with its checks and its error, for the rest.
    """
    try:
        value, end = _DECODER.raw_decode(text)
    except json.JSONDecodeError:
        end = -1
    if end != len(text):
        return _DECODER.decode(text)
    return value


class NotUtf8(Exception):
    """A byte that is not UTF-8, at its line and column (characters, as an editor counts)."""

    def __init__(self, line: int, col: int, byte: int) -> None:
        super().__init__(line, col, byte)
        self.line, self.col, self.byte = line, col, byte


def _not_utf8(raw: bytes, e: UnicodeDecodeError, line: int) -> NotUtf8:
    """Where the first bad byte of a line is."""
    good = raw[: e.start].decode("utf-8", errors="replace")
    return NotUtf8(line, len(good) + 1, raw[e.start])


def _breaks(text: str) -> int:
    """The line breaks in ``text``: ``\\n``, ``\\r\\n`` or a lone ``\\r``."""
    n = text.count("\n")
    if "\r" in text:
        n += text.count("\r") - text.count("\r\n")
    return n


def _column_after(text: str) -> int:
    """The column of the character after ``text``, counted from its last line break."""
    return len(text) - max(text.rfind("\n"), text.rfind("\r"))


# ---------------------------------------------------------------- JSONL


#: How deep a data row's values may nest: far past any real data set's, and far within the
#: stack of what reads them after (a value 500 levels deep ended the reading of a mapped
#: input in a RecursionError).
MAX_DEPTH = 100
#: The ``bad-json`` problem of a row nested deeper.
TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"


def too_deep(row: dict[str, Any]) -> bool:
    """Whether a row's values nest deeper than :data:`MAX_DEPTH` (the row itself is level 1),
    found without recursion."""
    stack: list[tuple[Any, int]] = [(v, 2) for v in row.values() if isinstance(v, (dict, list))]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        children = value.values() if isinstance(value, dict) else value
        stack.extend((v, depth + 1) for v in children if isinstance(v, (dict, list)))
    return False


def _undecodable(e: RecursionError | ValueError) -> str:
    """The ``bad-json`` problem of a value the decoder reads but Python cannot hold: nested
    past the recursion limit, or an integer past Python's digit limit."""
    return "nested too deeply" if isinstance(e, RecursionError) else TOO_MANY_DIGITS


def jsonl_rows(
    f: BinaryIO, sha: Hasher, display: str, c: ErrorCollector
) -> Iterator[tuple[dict[str, Any], int, int, int]]:
    """JSONL rows: the object, its line, and the byte offset and length of its text. Lines end
    at ``\\n``, ``\\r\\n`` or a lone ``\\r``; a BOM before the first line is skipped."""
    offset = 0
    line = 0
    for raw_line, raw in enumerate(f, start=1):
        sha.update(raw)
        start = offset
        offset += len(raw)
        if raw_line == 1 and raw.startswith(_BOM):
            raw = raw[3:]
            start += 3
        body = raw[:-2] if raw.endswith(b"\r\n") else raw[:-1] if raw.endswith(b"\n") else raw
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _not_utf8(raw, e, raw_line) from None
        pieces = zip(text.split("\r"), body.split(b"\r")) if "\r" in text else [(text, body)]
        for piece, piece_bytes in pieces:
            line += 1
            piece_start = start
            start += len(piece_bytes) + 1
            value = _jsonl_value(piece, line, display, c)
            if value is not None:
                yield value, line, piece_start, len(piece_bytes)


def _jsonl_value(text: str, line: int, display: str, c: ErrorCollector) -> dict[str, Any] | None:
    """The object on one line, or ``None`` (a blank line; a bad one, reported)."""
    try:
        value = decode_row(text)
    except json.JSONDecodeError as e:
        if text.strip():
            where = Location(display, e.lineno + line - 1, e.colno)
            c.add(data_error("bad-json", where, problem=e.msg))
        return None
    except NotFinite as e:
        where = Location(display, line, _constant_at(text, 0) + 1)
        c.add(data_error("bad-json", where, problem=NOT_FINITE.format(name=e)))
        return None
    except (RecursionError, ValueError) as e:
        c.add(data_error("bad-json", Location(display, line, 1), problem=_undecodable(e)))
        return None
    if type(value) is not dict:
        c.add(data_error("not-an-object", Location(display, line, 1), found=kind(value)))
        return None
    if too_deep(value):
        c.add(data_error("bad-json", Location(display, line, 1), problem=TOO_DEEP))
        return None
    return value


# ---------------------------------------------------------------- CSV

_LINE_ENDS = re.compile(r"(?<=\n)|(?<=\r)(?!\n)")


def _csv_lines(text: str) -> list[str]:
    return [p for p in _LINE_ENDS.split(text) if p]


def csv_row(text: str) -> list[str]:
    """The fields of one CSV row's text; ``ValueError`` when it does not read as one."""
    try:
        return next(csv.reader(_csv_lines(text), strict=True))
    except csv.Error as e:
        raise ValueError(str(e)) from None


class _CsvLines:
    """The lines of a CSV file for :func:`csv.reader`, split as ``newline=""`` text would be;
    :attr:`offset` is the byte offset of the next line."""

    def __init__(self, f: BinaryIO, sha: Hasher) -> None:
        self.f = f
        self.sha = sha
        self.offset = 0

    def __iter__(self) -> Iterator[str]:
        for raw_line, raw in enumerate(self.f, start=1):
            self.sha.update(raw)
            if raw_line == 1 and raw.startswith(_BOM):
                raw = raw[3:]
                self.offset += 3
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise _not_utf8(raw, e, raw_line) from None
            parts = _csv_lines(text) if "\r" in text else [text]
            for part in parts:
                self.offset += len(raw) if len(parts) == 1 else len(part.encode("utf-8"))
                yield part


def csv_header(
    f: BinaryIO, sha: Hasher, display: str, c: ErrorCollector
) -> tuple[list[str], Iterator[tuple[dict[str, Any], int, int, int]]] | None:
    """The header of a CSV file and a reader of its rows, or ``None`` when it has no header
    (reported)."""
    lines = _CsvLines(f, sha)
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as e:
        c.add(data_error("csv-error", Location(display, reader.line_num or 1), problem=str(e)))
        return None
    if not header or not any(h.strip() for h in header):
        c.add(data_error("csv-no-header", Location(display, 1, 1)))
        return None
    seen: set[str] = set()
    for h in header:
        if h in seen:
            c.add(data_error("csv-duplicate-column", Location(display, 1, 1), column=h))
        seen.add(h)
    return header, _csv_rows(header, lines, reader, display, c)


def _csv_rows(
    header: list[str],
    lines: _CsvLines,
    reader: Any,  # the csv module's reader, which has no public type
    display: str,
    c: ErrorCollector,
) -> Iterator[tuple[dict[str, Any], int, int, int]]:
    """CSV rows: the row, its first line, and the byte offset and length of its text."""
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


# ---------------------------------------------------------------- a JSON array

_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def _space(text: str, i: int) -> int:
    """The index of the first character at or after ``i`` that is not JSON space."""
    return _JSON_SPACE.match(text, i).end()  # type: ignore[union-attr]


class _Cursor:
    """A point in a text that only moves forward, with its byte offset, line and column (line
    breaks are ``\\n``, ``\\r\\n`` or a lone ``\\r``; columns count characters, as an editor
    does). It stops only at an element's start or end, or at an error: never between the
    ``\\r`` and ``\\n`` of one break."""

    def __init__(self, text: str, display: str, byte: int) -> None:
        self.text, self.display = text, display
        self.at, self.byte, self.line, self.col = 0, byte, 1, 1

    def where(self, index: int) -> Location:
        """The location of ``index``, moving the point there."""
        seg = self.text[self.at : index]
        if seg:
            self.byte += len(seg) if seg.isascii() else len(seg.encode("utf-8"))
            breaks = _breaks(seg)
            if breaks:
                self.line += breaks
                self.col = _column_after(seg)
            else:
                self.col += len(seg)
            self.at = index
        return Location(self.display, self.line, self.col)


def json_array_rows(
    f: BinaryIO, sha: Hasher, display: str, c: ErrorCollector
) -> Iterator[tuple[dict[str, Any], Location, int, int]]:
    """Each object of a JSON array file: its value, location, byte offset and byte length.

    The file's text is held whole while its elements are decoded one at a time, and let go
    after the last: a JSON array of a given size takes about twice that much memory.
    """
    raw = f.read()
    sha.update(raw)
    try:
        text = raw.decode("utf-8-sig")  # a BOM at the start is skipped
    except UnicodeDecodeError as e:
        before = raw[: e.start].decode("utf-8-sig")
        raise NotUtf8(_breaks(before) + 1, _column_after(before), raw[e.start]) from None
    at = _Cursor(text, display, 3 if raw.startswith(_BOM) else 0)
    del raw
    i = _space(text, 0)
    if not text.startswith("[", i):
        c.add(data_error("not-an-array", at.where(i), found=_found(text, i)))
        return
    i = _space(text, i + 1)
    if text.startswith("]", i):
        return
    while True:
        where = at.where(i)
        start = at.byte
        try:
            value, end = _DECODER.raw_decode(text, i)
        except json.JSONDecodeError as e:
            c.add(data_error("bad-json", at.where(max(e.pos, i)), problem=e.msg))
            return
        except NotFinite as e:
            problem = NOT_FINITE.format(name=e)
            c.add(data_error("bad-json", at.where(_constant_at(text, i)), problem=problem))
            return
        except (RecursionError, ValueError) as e:
            c.add(data_error("bad-json", where, problem=_undecodable(e)))
            return
        at.where(end)
        if type(value) is dict and too_deep(value):
            c.add(data_error("bad-json", where, problem=TOO_DEEP))
        elif type(value) is dict:
            yield value, where, start, at.byte - start
        else:
            c.add(data_error("not-an-object", where, found=kind(value)))
        i = _space(text, end)
        if text.startswith(",", i):
            i = _space(text, i + 1)
            continue
        if text.startswith("]", i):
            rest = _space(text, i + 1)
            if rest < len(text):
                c.add(data_error("bad-json", at.where(rest), problem="extra data after the array"))
            return
        problem = "expected ',' or ']'" if i < len(text) else "the array is not closed"
        c.add(data_error("bad-json", at.where(i), problem=problem))
        return


def _found(text: str, i: int) -> str:
    """What a JSON file that is not an array holds, as ``not-an-array`` names it."""
    if i >= len(text):
        return "an empty file"
    try:
        return kind(_DECODER.raw_decode(text, i)[0])
    except (ValueError, RecursionError):
        return kind(None)
