"""The hand-written answer-format reader against its grammar, ``grammars/answer_format.lark``:
on every string of up to five characters over the language's alphabet, it accepts what the
grammar accepts, with the same segments and positions, and rejects the rest at the character
lark's LALR parser stops at (which is what the error messages point to)."""

from __future__ import annotations

import itertools
from functools import lru_cache

import lark
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from promptc.errors import GrammarError
from promptc.ir import Literal_, Placeholder
from promptc.resources import read_grammar
from promptc.spec.answer_format import parse_answer_format


@lru_cache(maxsize=1)
def _lark() -> lark.Lark:
    return lark.Lark(read_grammar("answer_format.lark"), parser="lalr", propagate_positions=True)


def _by_lark(source: str) -> list[tuple[str, str, int]] | int:
    """Segments as (kind, text, offset), literal runs merged, or the error offset."""
    try:
        tree = _lark().parse(source)
    except lark.UnexpectedInput as e:
        return e.pos_in_stream if e.pos_in_stream is not None else 0
    out: list[tuple[str, str, int]] = []
    for node in tree.children:
        assert isinstance(node, lark.Tree)
        offset = node.meta.start_pos
        if node.data == "placeholder":
            out.append(("field", str(node.children[0]), offset))
            continue
        text = {"escaped_open": "{", "escaped_close": "}"}.get(str(node.data))
        text = text if text is not None else str(node.children[0])
        if out and out[-1][0] == "text":
            out[-1] = ("text", out[-1][1] + text, out[-1][2])
        else:
            out.append(("text", text, offset))
    return out


def _by_promptc(source: str) -> list[tuple[str, str, int]] | int:
    try:
        fmt = parse_answer_format(source)
    except GrammarError as e:
        assert e.location is not None
        return e.location.col - 1  # one line: the column is the offset + 1
    out: list[tuple[str, str, int]] = []
    for seg in fmt.segments:
        if isinstance(seg, Placeholder):
            out.append(("field", seg.field, seg.location.col - 1))
        else:
            assert isinstance(seg, Literal_)
            out.append(("text", seg.text, seg.location.col - 1))
    return out


ALPHABET = "{}a1_ ."


def test_every_short_string_reads_as_the_grammar_says() -> None:
    checked = 0
    for n in range(1, 6):
        for chars in itertools.product(ALPHABET, repeat=n):
            source = "".join(chars)
            assert _by_promptc(source) == _by_lark(source), source
            checked += 1
    assert checked > 19_000


@settings(deadline=None)  # lark's parse of one example can exceed 200 ms on a loaded machine
@given(st.text(alphabet="{}ab_9 x\u00e9", max_size=30))
def test_longer_strings_read_as_the_grammar_says(source: str) -> None:
    if source:
        assert _by_promptc(source) == _by_lark(source)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("a}", "unmatched '}'"),
        ("{ x}", "unclosed or empty '{'"),
        ("{ab", "unclosed or empty '{'"),
        ("{a b}", "unexpected ' ' in answer_format placeholder"),
    ],
)
def test_errors_say_what_was_expected(source: str, message: str) -> None:
    with pytest.raises(GrammarError, match=message):
        parse_answer_format(source)
