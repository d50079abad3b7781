"""What reading an output with its grammar gives: items with their values and spans, and
answer mismatches.

:class:`ParsedItem` (its places in the output are :class:`~promptc.text.Span` objects) is what
:func:`promptc.parse.strict.parse_strict` returns and
:meth:`~promptc.grammar.answer.AnswerGrammar.to_json` writes; :class:`AnswerMismatch` what
:meth:`promptc.parse.reader.AnswerReader.parse` raises for one answer body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

from promptc.ir import Value
from promptc.text import Span


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
