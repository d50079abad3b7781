"""What strict parsing returns: items with their values and spans, and answer mismatches.

Split from :mod:`promptc.grammar.answer` (which re-exports these names): :class:`ParsedItem` and
:class:`Span` are what :meth:`~promptc.grammar.answer.AnswerGrammar.parse_strict` returns,
:class:`AnswerMismatch` what :meth:`~promptc.grammar.answer.AnswerGrammar.parse_answer` raises.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from promptc.ir import Value


class Span:
    """A stretch of a model's output: offsets (``end`` exclusive) and 1-based line:col.

    Line and column are worked out on first access (from a line table shared by every span of
    the same output), so that the fast path does not pay for positions nobody reads.
    """

    __slots__ = ("_lines", "end", "start")

    def __init__(self, start: int, end: int, lines: LineTable) -> None:
        self.start = start
        self.end = end
        self._lines = lines

    @property
    def line(self) -> int:
        return self._lines.at(self.start)[0]

    @property
    def col(self) -> int:
        return self._lines.at(self.start)[1]

    @property
    def end_line(self) -> int:
        return self._lines.at(self.end)[0]

    @property
    def end_col(self) -> int:
        return self._lines.at(self.end)[1]

    def _key(self) -> tuple[int, int, int, int, int, int]:
        line, col = self._lines.at(self.start)
        end_line, end_col = self._lines.at(self.end)
        return (self.start, self.end, line, col, end_line, end_col)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Span):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        s, e, line, col, end_line, end_col = self._key()
        return f"Span({s}-{e}, {line}:{col}-{end_line}:{end_col})"

    def to_dict(self) -> dict[str, int]:
        return dict(zip(("start", "end", "line", "col", "end_line", "end_col"), self._key()))


class ParsedItem(NamedTuple):
    """One parsed answer of an output.

    Attributes:
        index: Its 1-based position in the request (the ``i`` of ``A[i]``; 1 for ``single``).
        values: The normalised value of each field of the answer format, in format order.
        span: The whole item: from its first marker (or the answer's first character) to the
            end of its answer.
        field_spans: Where each field's value is.
        question: The repeated question of an ``auto-demo`` item (trailing spaces removed).
        question_span: Where it is.
    """

    index: int  # type: ignore[assignment]  # the contract's name; shadows tuple.index
    values: Mapping[str, Value]
    span: Span
    field_spans: Mapping[str, Span]
    question: str | None = None
    question_span: Span | None = None


class AnswerMismatch(ValueError):
    """An answer body does not match the answer format.

    Attributes:
        offset: Where in the body it stops matching (0-based).
        expected: What could have come there, by name (``"' The answer is '"``, ``"answer:
            a number such as 18, -3.5 or 1,234"``, ``"end of the answer"``).
        found: What is there instead (a short excerpt, or ``"end of the answer"``).
    """

    def __init__(self, offset: int, expected: Sequence[str], found: str) -> None:
        self.offset = offset
        self.expected = list(expected)
        self.found = found
        super().__init__(f"at offset {offset}: expected {one_of(self.expected)}, found {found}")


def one_of(names: Sequence[str]) -> str:
    if len(names) == 1:
        return names[0]
    return "one of " + ", ".join(names)


class LineTable:
    """Offset → 1-based line:col for one text; the line table is built on first use."""

    __slots__ = ("_starts", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._starts: list[int] | None = None

    def at(self, offset: int) -> tuple[int, int]:
        starts = self._starts
        if starts is None:
            starts = self._starts = [0] + [m.end() for m in re.finditer("\n", self.text)]
        i = bisect.bisect_right(starts, offset) - 1
        return i + 1, offset - starts[i] + 1

    def span(self, start: int, end: int) -> Span:
        return Span(start, end, self)


def excerpt(text: str, offset: int, limit: int = 40) -> str:
    """What is found at ``offset``, for error messages."""
    if offset >= len(text) or text[offset:].strip() == "" and "\n" not in text[offset:]:
        return "end of the answer" if offset >= len(text) else repr(text[offset:])
    rest = text[offset:]
    line = rest.split("\n", 1)[0]
    if line == "":
        return "a line break"
    return repr(line if len(line) <= limit else line[:limit] + "…")


def found_in_output(output: str, offset: int) -> str:
    if offset >= len(output):
        return "end of output"
    return excerpt(output, offset)
