"""What parsing returns: one :class:`ItemResult` per item, with its status, values and span.

Results are NamedTuples (immutable and typed like frozen dataclasses, and about five times
cheaper to create) and spans compute line:col only when read: the fast path makes 8 results
per output for 10,000s of outputs, and this is most of its cost after the regex match.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from promptc.ir import Value

Status = Literal["ok", "missing", "malformed", "duplicate", "misaligned", "extra"]


STATUSES: tuple[Status, ...] = ("ok", "missing", "malformed", "duplicate", "misaligned", "extra")


Mode = Literal["recover", "strict"]


MODES: tuple[Mode, ...] = ("recover", "strict")


#: ``found`` shows at most this many characters of what the output had.
FOUND_CHARS = 40


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


# Results are NamedTuples (immutable and typed like frozen dataclasses, and about five times
# cheaper to create) and spans compute line:col only when read: the fast path makes 8 results
# per output for 10,000s of outputs, and this is most of its cost after the regex match.


class Position(NamedTuple):
    """A place in the original output: 1-based line and column (code points), 0-based offset."""

    line: int
    col: int
    offset: int

    def __str__(self) -> str:
        return f"{self.line}:{self.col}"


class Lines:
    """Offset → :class:`Position` in one output; the line table is built on first use.

    A line ends at ``\n``, ``\r\n`` or a lone ``\r`` (what an editor shows).
    """

    __slots__ = ("_starts", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._starts: list[int] | None = None

    def position(self, offset: int) -> Position:
        starts = self._starts
        if starts is None:
            ends = r"\r\n|\r|\n" if "\r" in self.text else "\n"
            starts = self._starts = [0] + [m.end() for m in re.finditer(ends, self.text)]
        line = bisect_right(starts, offset)
        return Position(line, offset - starts[line - 1] + 1, offset)


class Span:
    """A stretch of the output: ``start`` is its first character, ``end`` the position just
    after its last one.

    Spans hold offsets; lines and columns are worked out when read (from a line table shared
    by every span of the output), so that the fast path does not pay for positions per item.
    Two spans are equal when their offsets are.
    """

    __slots__ = ("_lines", "end_offset", "start_offset")

    def __init__(self, start_offset: int, end_offset: int, lines: Lines) -> None:
        self.start_offset = start_offset
        self.end_offset = end_offset
        self._lines = lines

    @property
    def start(self) -> Position:
        return self._lines.position(self.start_offset)

    @property
    def end(self) -> Position:
        return self._lines.position(self.end_offset)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Span):
            return NotImplemented
        return (self.start_offset, self.end_offset) == (other.start_offset, other.end_offset)

    def __hash__(self) -> int:
        return hash((self.start_offset, self.end_offset))

    def __repr__(self) -> str:
        return f"Span({self.start_offset}, {self.end_offset}: {self})"

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


class ItemResult(NamedTuple):
    """What the output says about one item of a request.

    Attributes:
        request_id: The request's id.
        item_id: The item's id; ``None`` for an ``extra`` answer (an index not in the request).
        index: The item's 1-based position in the request (the ``i`` of ``A[i]``).
        status: ``ok``, ``missing``, ``malformed``, ``duplicate``, ``misaligned`` or ``extra``.
        values: Output field → normalised value. Trust them when the status is ``ok``; for
            ``duplicate``, ``misaligned`` and ``extra`` they are what the first well-formed
            answer said, for inspection; empty otherwise.
        span: Where the item is in the output (from its first marker to the end of its
            answer); ``None`` when missing.
        expected: For a failure, what would have been accepted, as readable tokens.
        found: For a failure, the text found instead (abbreviated), or ``"end of output"``.
        message: One sentence for people.
    """

    request_id: str
    item_id: str | None
    index: int  # type: ignore[assignment]  # a field, shadowing tuple.index on purpose
    status: Status
    values: Mapping[str, Value] = MappingProxyType({})
    span: Span | None = None
    expected: tuple[str, ...] = ()
    found: str | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data. Numbers stay :class:`~decimal.Decimal`: write them with
        :func:`dumps` (exact JSON numbers), read them back with ``parse_float=Decimal``."""
        span = None
        if self.span is not None:
            span = {
                "start": {
                    "line": self.span.start.line,
                    "col": self.span.start.col,
                    "offset": self.span.start.offset,
                },
                "end": {
                    "line": self.span.end.line,
                    "col": self.span.end.col,
                    "offset": self.span.end.offset,
                },
            }
        return {
            "request_id": self.request_id,
            "item_id": self.item_id,
            "index": self.index,
            "status": self.status,
            "values": dict(self.values),
            "span": span,
            "expected": list(self.expected),
            "found": self.found,
            "message": self.message,
        }

    def to_json(self) -> str:
        """One JSON line (keys in a fixed order, Decimals as exact JSON numbers)."""
        return dumps(self.to_dict())


def dumps(data: object) -> str:
    """JSON text in which :class:`~decimal.Decimal` values are exact JSON numbers.

    ``Decimal("0.1")`` is written ``0.1`` (never ``0.1000000000000000055…``), in the canonical
    form of :func:`promptc.values.write_value` (no exponent). Everything else is written as
    :func:`json.dumps` writes it, with non-ASCII text kept as is.
    """
    if isinstance(data, Decimal):
        return decimal_text(data)
    if isinstance(data, Mapping):
        return (
            "{"
            + ", ".join(
                f"{json.dumps(str(k), ensure_ascii=False)}: {dumps(v)}" for k, v in data.items()
            )
            + "}"
        )
    if isinstance(data, (list, tuple)):
        return "[" + ", ".join(dumps(v) for v in data) + "]"
    return json.dumps(data, ensure_ascii=False)


def decimal_text(d: Decimal) -> str:
    if not d.is_finite():  # cannot come from read_value; JSON has no such numbers
        return json.dumps(str(d))
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def summarize(results: Iterable[ItemResult]) -> dict[str, int]:
    """Counts per status, every status present (zeros included), in :data:`STATUSES` order."""
    counts: dict[str, int] = {s: 0 for s in STATUSES}
    for r in results:
        counts[r.status] += 1
    return counts
