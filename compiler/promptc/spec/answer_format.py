"""The ``answer_format`` mini-language: parse it, and write answers in it.

``answer_format`` is literal text with ``{field}`` placeholders naming outputs, e.g.
``"{reasoning} The answer is {answer}."``; ``{{`` and ``}}`` are literal braces. Its grammar
is ``grammars/answer_format.lark``, read here by hand (:func:`_read`; a test holds it to the
grammar). The writer here (:func:`write_answer`) renders demos and canonical outputs; the
grammar module reads what it writes, from the same segments.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence

from promptc.errors import GrammarError, Location, SpecWarning
from promptc.ir import AnswerFormat, Literal_, OutputField, Placeholder, Segment, Value


def _at(base: Location, source: str, offset: int) -> Location:
    """The location of ``source[offset]`` given where ``source`` starts in its file."""
    before = source[:offset]
    newlines = before.count("\n")
    if base.line <= 0:
        return base
    if newlines == 0:
        return Location(base.file, base.line, base.col + offset)
    return Location(base.file, base.line + newlines, offset - before.rfind("\n"))


#: Where an answer format given without a location starts.
FORMAT_START = Location("<answer_format>", 1, 1)


def parse_answer_format(
    source: str,
    location: Location = FORMAT_START,
    *,
    locate: Callable[[int], Location] | None = None,
) -> AnswerFormat:
    """Parses an answer format.

    Args:
        source: The format text.
        location: Where the text's first character is in its file (for error positions).
        locate: Maps an offset into ``source`` to its file position; give it when the text
            is not written verbatim in its file (a quoted YAML scalar with escapes, a folded
            block), so that positions still point at the right column. Defaults to counting
            from ``location``.

    Raises:
        GrammarError: At the offending character, for an unmatched brace or a bad field name.
    """

    def at(offset: int) -> Location:
        return locate(offset) if locate is not None else _at(location, source, offset)

    if source == "":
        raise GrammarError(
            "answer_format is empty; expected text with at least one {field} placeholder",
            location=location,
            path=("answer_format",),
            code="empty-answer-format",
        )
    parts = _read(source)
    if isinstance(parts, int):
        offset = parts
        ch = source[offset] if offset < len(source) else None
        if ch == "}":
            msg = "unmatched '}' in answer_format; write '}}' for a literal brace"
        elif ch == "{" or (offset > 0 and source[offset - 1] == "{"):
            msg = (
                "unclosed or empty '{' in answer_format; expected {field_name} with a name of "
                "letters, digits and '_', or '{{' for a literal brace"
            )
        elif ch is None:
            msg = "answer_format ends inside a placeholder; expected '}'"
        else:
            msg = (
                f"unexpected {ch!r} in answer_format placeholder; expected a field name of "
                "letters, digits and '_' followed by '}'"
            )
        raise GrammarError(
            msg,
            location=at(offset),
            path=("answer_format",),
            code="answer-format-syntax",
        )

    think = _THINK_TAG.search(source)
    if think is not None:  # the parser blanks thinking: a literal holding it never matches
        raise GrammarError(
            f"answer_format holds {think.group()!r}, which the parser reads as a reasoning "
            "model's thinking and leaves out of every output; expected no thinking tag",
            location=at(think.start()),
            path=("answer_format",),
            hint="let the model think before its answer: the thinking is left out anyway",
            code="think-in-format",
        )
    segments: list[Segment] = []
    for offset, field, text in parts:
        where = at(offset)
        if field is not None:
            segments.append(Placeholder(field, where))
            continue
        # Merge runs of literal text (escaped braces split them) into one segment.
        if segments and isinstance(segments[-1], Literal_):
            segments[-1] = Literal_(segments[-1].text + text, segments[-1].location)
        else:
            segments.append(Literal_(text, where))
    return AnswerFormat(source, tuple(segments), location)


#: A reasoning model's thinking tag, in any case (as promptc.parse.output finds them).
_THINK_TAG = re.compile("</?think>", re.IGNORECASE)
#: One token of the grammar: ``{{``, ``}}``, a ``{field}`` placeholder, or a run of text.
_TOKEN = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}|[^{}]+")
#: A placeholder's opening brace and name, without its closing brace.
_OPENED = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*")


def _read(source: str) -> list[tuple[int, str | None, str]] | int:
    """Reads an answer format by ``grammars/answer_format.lark``, a token at a time: a
    language this small needs no parser generator, which takes longer to build its tables
    than every format of a spec takes to read.

    Returns the parts in order — ``(offset, field, "")`` for a placeholder, ``(offset, None,
    text)`` for literal text (``{{`` and ``}}`` give ``{`` and ``}``) — or the offset of the
    first character the grammar does not allow there (at an early end, of the last token
    read, as the LALR parser reports it).
    """
    parts: list[tuple[int, str | None, str]] = []
    i, n = 0, len(source)
    while i < n:
        token = _TOKEN.match(source, i)
        if token is None:  # a lone brace
            opened = _OPENED.match(source, i)
            if source[i] == "}":
                return i
            if opened is None:
                # At the end, the parser reports the last token read: this '{'.
                return i + 1 if i + 1 < n else i
            # At the end, after the name: reported at the name; else at what follows it.
            return i + 1 if opened.end() >= n else opened.end()
        text = token.group()
        if token.group(1) is not None:
            parts.append((i, token.group(1), ""))
        else:
            parts.append((i, None, text[0] if text in ("{{", "}}") else text))
        i = token.end()
    return parts


def write_answer(
    fmt: AnswerFormat, outputs: Sequence[OutputField], values: Mapping[str, Value]
) -> str:
    """Writes one answer in the format, each value in its canonical form."""
    by_name = {o.name: o for o in outputs}
    parts = []
    for seg in fmt.segments:
        if isinstance(seg, Literal_):
            parts.append(seg.text)
        else:
            field = by_name[seg.field]
            parts.append(field.type.write(field, values[seg.field]))
    return "".join(parts)


#: The separators a number's own text may hold, by the value types that read them: a literal
#: that is one of them alone, between a number and a value that may start with digits, lets
#: one answer be split two ways.
_NUMBER_SEPARATORS = {",": ("number", "integer"), ".": ("number",)}


def ambiguity_warnings(fmt: AnswerFormat, outputs: Sequence[OutputField]) -> list[SpecWarning]:
    """A warning for each literal of ``fmt`` that a number before it may read as its own
    (``{w},{h}``: ``1,234,567`` is ``1,234`` and ``567``, or ``1`` and ``234,567``); the
    parser reads the first way, without saying so."""
    types = {f.name: f.type for f in outputs}
    out = []
    segs = fmt.segments
    for before, lit, after in zip(segs, segs[1:], segs[2:]):
        if not (isinstance(before, Placeholder) and isinstance(lit, Literal_)):
            continue
        if not isinstance(after, Placeholder) or before.field not in types:
            continue
        first, then = types[before.field], types.get(after.field)
        digits_next = then is not None and (then.free_text or then.name in ("number", "integer"))
        if first.name in _NUMBER_SEPARATORS.get(lit.text, ()) and digits_next:
            out.append(
                SpecWarning(
                    f"{{{before.field}}}{lit.text}{{{after.field}}}: {lit.text!r} is also part "
                    f"of a number's own text, so an answer such as '1{lit.text}234{lit.text}567' "
                    "reads two ways; promptc takes the longest first number",
                    location=lit.location,
                    path=("answer_format",),
                    hint=f"separate them by {lit.text!r} and a space, or by another character",
                    code="ambiguous-separator",
                )
            )
    return out
