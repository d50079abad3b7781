"""An output read by its grammar's exports as they are, for the tests of the grammar: its regex
(``answer.parse.regex``) with promptc's diagnosis where it does not match (:func:`strict_items`:
what ``strict`` mode does, without reading lookalikes as ASCII), the regex alone
(:func:`regex_items`), and its lark grammar (:func:`lark_items`: ``answer.lark``, which promptc
runs only to say why an output fails, and which users may parse with).
"""

from __future__ import annotations

from functools import lru_cache

import lark
from promptc.errors import Location, OutputParseError
from promptc.grammar.answer import AnswerGrammar
from promptc.grammar.items import ParsedItem
from promptc.ir import Value
from promptc.parse.diagnosis import diagnose_output
from promptc.parse.strict import View, whole_reader
from promptc.text import LineTable, Span
from promptc.values import ValueOutOfBounds, read_value

__all__ = ["lark_items", "regex_items", "strict_items"]

_ASCII_WS = " \t\n\r\f\v"


def strict_items(g: AnswerGrammar, output: str) -> list[ParsedItem]:
    """The output read by the grammar's regex.

    Raises:
        OutputParseError: At the output's line:col, with the expected tokens and what was
            found there (:func:`~promptc.parse.diagnosis.diagnose_output`), or a value past
            its bounds.
    """
    items = whole_reader(g).read(output, View(output))
    if items is None:
        raise diagnose_output(g, output)
    return items


def regex_items(g: AnswerGrammar, output: str) -> list[ParsedItem]:
    """The output read by the grammar's regex alone (no lookalikes normalised).

    Raises:
        OutputParseError: It does not match (no position), or a value is past its bounds.
    """
    items = whole_reader(g).read(output, View(output))
    if items is None:
        raise OutputParseError(
            "the output does not match", location=Location("<output>"), code="output-mismatch"
        )
    return items


def lark_items(g: AnswerGrammar, output: str) -> list[ParsedItem]:
    """The output read by the grammar's lark export (LALR, contextual lexer).

    Raises:
        OutputParseError: Lark refuses it (promptc's diagnosis), or a value is past its bounds.
    """
    try:
        tree = _parser(g.lark).parse(output)
    except lark.UnexpectedInput:
        raise diagnose_output(g, output) from None
    lines = LineTable(output)
    trees = [tree] if g.kind.one_item else [c for c in tree.children if isinstance(c, lark.Tree)]
    return [_item(g, output, lines, i, t) for i, t in enumerate(trees, start=1)]


@lru_cache(maxsize=32)
def _parser(source: str) -> lark.Lark:
    """An LALR parser per grammar text (building one for 64 items takes most of a second)."""
    return lark.Lark(source, parser="lalr", lexer="contextual")


def _item(g: AnswerGrammar, output: str, lines: LineTable, i: int, item: lark.Tree) -> ParsedItem:
    question: tuple[str, Span] | None = None
    answer = item
    start: int | None = None
    q_start: int | None = None
    for child in item.children:
        if isinstance(child, lark.Token):
            at = child.start_pos
            assert at is not None and child.end_pos is not None
            start = at if start is None else start
            if child.type == "QUESTION":
                # Indexed inputs: one QUESTION per input; the question runs from the first to
                # the end of the last, later inputs' markers included.
                q_start = at if q_start is None else q_start
                q = output[q_start : child.end_pos].rstrip(_ASCII_WS)
                question = (g.read_question(q), lines.span(q_start, q_start + len(q)))
        elif child.data == "answer" or str(child.data).startswith("answer_"):
            answer = child
    values: dict[str, Value] = {}
    spans: dict[str, Span] = {}
    end = 0
    fields = {f.name: f for f in g.fields}
    for tok, part in zip(answer.children, g.blueprint.parts):
        assert isinstance(tok, lark.Token)
        assert tok.start_pos is not None and tok.end_pos is not None
        at, end = tok.start_pos, tok.end_pos
        start = at if start is None else start
        if part.field is not None:
            name = part.field.name
            try:
                values[name] = read_value(fields[name], str(tok))
            except ValueOutOfBounds as e:
                line, col, _ = lines.position(at)
                raise OutputParseError(
                    f"cannot read {name}: {e}",
                    offset=at,
                    expected=(f"{name}: {e.expected}",),
                    found=e.found,
                    location=Location("<output>", line, col),
                    code="value-out-of-bounds",
                ) from None
            spans[name] = lines.span(at, end)
    assert start is not None
    return ParsedItem(
        i,
        values,
        lines.span(start, end),
        spans,
        question[0] if question else None,
        question[1] if question else None,
    )
