"""Why an output is not in its grammar: where the lark grammar stops on it, and what it expected.

The grammar's regex (:mod:`promptc.parse.strict`) says only whether an output matches. When it
does not and the caller needs to know why (``strict`` mode), the output is run through the
grammar's lark export (LALR, contextual lexer), whose failure names the place and the terminals
that could have come there; inside an answer body, the answer's own diagnosis
(:func:`promptc.grammar.diagnose.diagnose`) says more precisely what is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from promptc import markers
from promptc.errors import Location, OutputParseError
from promptc.grammar.answer import AnswerGrammar
from promptc.grammar.diagnose import diagnose
from promptc.grammar.items import one_of
from promptc.grammar.lark_source import input_marker_terminal
from promptc.text import LineTable, excerpt
from promptc.values import expected as expected_value

if TYPE_CHECKING:
    from lark import Lark, UnexpectedInput

#: Where in an output a parse error is reported when it has no better name.
OUTPUT_FILE = "<output>"


def output_error(
    output: str, offset: int, expected: Sequence[str], found: str, code: str
) -> OutputParseError:
    """An error at ``offset`` of the output, carrying ``offset``, ``expected`` and ``found``."""
    offset = min(offset, len(output))
    line, col, _ = LineTable(output).position(offset)
    return OutputParseError(
        f"expected {one_of(expected)}, found {found}",
        location=Location(OUTPUT_FILE, line, col),
        code=code,
        offset=offset,
        expected=expected,
        found=found,
    )


def diagnose_output(grammar: AnswerGrammar, output: str) -> OutputParseError:
    """Why ``output`` is not in ``grammar``: the error at the output's line:col where the lark
    grammar stopped, with the expected tokens by name and what was found there.

    Only for an output the grammar's regex refused: should lark accept it (the two exports
    disagree), the error says only that the output is not in the grammar.
    """
    # lark takes about 40 ms to import: only an output that fails strict parsing needs it.
    import lark

    try:
        _lark_parser(grammar.lark).parse(output)
    except lark.UnexpectedInput as e:
        return _lark_error(grammar, output, e)
    shape = (
        "single answer in the answer format"
        if grammar.kind.one_item
        else f"{grammar.kind} answer of {grammar.n_items} item(s)"
    )
    return OutputParseError(
        f"the output is not a {shape}", location=Location(OUTPUT_FILE), code="output-mismatch"
    )


@lru_cache(maxsize=32)
def _lark_parser(source: str) -> Lark:
    """An LALR parser per grammar text: building one for 64 items takes most of a second."""
    import lark  # about 40 ms: see diagnose_output

    return lark.Lark(source, parser="lalr", lexer="contextual")


def _terminal_names(grammar: AnswerGrammar) -> dict[str, str]:
    """The lark terminals of ``grammar`` as messages name them."""
    bp = grammar.blueprint
    names: dict[str, str] = {
        "_NL": "a new line",
        "_TRAIL": "end of output",
        "$END": "end of output",
        "_LEAD": "white space",
        "QUESTION": "the question text",
    }
    for i in range(1, grammar.n_items + 1):
        names[f"ANSWER_MARKER_{i}"] = repr(markers.answer_marker(i, bp.markers))
        names[f"QUESTION_MARKER_{i}"] = repr(markers.question_marker(i, bp.markers))
        for k, prefix in enumerate(bp.question_prefixes[1:], start=2):
            names[input_marker_terminal(i, k)] = repr(markers.marker(prefix, i))
    for p in bp.parts:
        if p.field is not None:
            names[p.terminal] = f"{p.field.name}: {expected_value(p.field)}"
        else:
            names[p.terminal] = repr(p.text)
    return names


def _lark_error(grammar: AnswerGrammar, output: str, e: UnexpectedInput) -> OutputParseError:
    import lark  # imported already: lark raised ``e``

    names = _terminal_names(grammar)
    offset: int
    if isinstance(e, lark.UnexpectedCharacters):
        offset = e.pos_in_stream if e.pos_in_stream is not None else len(output)
        expected = set(e.allowed or ())
    elif isinstance(e, lark.UnexpectedToken):
        start = e.token.start_pos if e.token.type != "$END" else None
        offset = start if isinstance(start, int) else len(output)
        expected = set(e.expected)
    else:
        assert isinstance(e, lark.UnexpectedEOF)
        offset = len(output)
        expected = set(e.expected)
    body_terms = {p.terminal for p in grammar.blueprint.parts}
    if expected & body_terms:
        return _in_body(grammar, output, offset)
    if expected & {"_NL", "_TRAIL", "$END"} and offset < len(output):
        # Report what stands where the output should have ended or gone on, not the blank.
        rest = output[offset:]
        offset += len(rest) - len(rest.lstrip())
    if "_NL" in expected:
        nxt = _next_marker(grammar, output, offset)
        names["_NL"] = f"a new line and {nxt}" if nxt else names["_NL"]
    if len(expected) > 1:
        expected.discard("_LEAD")  # optional white space is never what is missing
    want = sorted({names.get(t, t) for t in expected})
    return output_error(
        output, offset, want, excerpt(output, offset, end="end of output"), "unexpected-output"
    )


def _next_marker(grammar: AnswerGrammar, output: str, offset: int) -> str | None:
    """The marker of the item after the last complete answer before ``offset``."""
    mk = grammar.blueprint.markers
    prefix = re.escape(mk.answer + markers.INDEX_OPEN)
    done = len(re.findall(f"(?m)^[ \\t]*{prefix}", output[:offset]))
    if done >= grammar.n_items:
        return None
    if grammar.kind.repeats_questions:
        return repr(markers.question_marker(done + 1, mk))
    return repr(markers.answer_marker(done + 1, mk))


def _in_body(grammar: AnswerGrammar, output: str, offset: int) -> OutputParseError:
    """The error inside the answer body that contains ``offset``, from the answer's own
    diagnosis."""
    bp = grammar.blueprint
    if bp.multiline:
        start = len(output) - len(output.lstrip())
        end = len(output.rstrip())
    else:
        line_start = output.rfind("\n", 0, offset) + 1
        m = re.compile(
            "[ \\t]*"
            + re.escape(bp.markers.answer + markers.INDEX_OPEN)
            + "[0-9]+"
            + re.escape(markers.INDEX_CLOSE + markers.MARKER_END)
            + "[ \\t]*"
        ).match(output, line_start)
        start = m.end() if m else offset
        nl = output.find("\n", start)
        end = len(output) if nl < 0 else nl
    at, expected, found = diagnose(bp, output[start:end])
    return output_error(output, start + at, expected, found, "answer-mismatch")
