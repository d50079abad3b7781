"""The ``answer_format`` mini-language: parse it, and write answers in it.

``answer_format`` is literal text with ``{field}`` placeholders naming outputs, e.g.
``"{reasoning} The answer is {answer}."``; ``{{`` and ``}}`` are literal braces. Its grammar
is ``grammars/answer_format.lark``. The writer here (:func:`write_answer`) renders demos and
canonical outputs; the grammar module reads what it writes, from the same segments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING

from promptc.errors import GrammarError, Location
from promptc.ir import AnswerFormat, Literal_, OutputField, Placeholder, Segment, Value
from promptc.resources import read_grammar

if TYPE_CHECKING:
    import lark


@lru_cache(maxsize=1)
def _parser() -> lark.Lark:
    import lark

    return lark.Lark(read_grammar("answer_format.lark"), parser="lalr", propagate_positions=True)


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
    import lark

    def at(offset: int) -> Location:
        return locate(offset) if locate is not None else _at(location, source, offset)

    if source == "":
        raise GrammarError(
            "answer_format is empty; expected text with at least one {field} placeholder",
            location=location,
            path=("answer_format",),
            code="empty-answer-format",
        )
    try:
        tree = _parser().parse(source)
    except lark.UnexpectedInput as e:
        offset = e.pos_in_stream if e.pos_in_stream is not None else 0
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
        ) from None

    segments: list[Segment] = []
    for node in tree.children:
        assert isinstance(node, lark.Tree)
        meta = node.meta
        offset = getattr(meta, "start_pos", 0)
        where = at(offset)
        if node.data == "placeholder":
            segments.append(Placeholder(str(node.children[0]), where))
            continue
        text = {"escaped_open": "{", "escaped_close": "}"}.get(str(node.data))
        if text is None:
            text = str(node.children[0])
        # Merge runs of literal text (escaped braces split them) into one segment.
        if segments and isinstance(segments[-1], Literal_):
            segments[-1] = Literal_(segments[-1].text + text, segments[-1].location)
        else:
            segments.append(Literal_(text, where))
    return AnswerFormat(source, tuple(segments), location)


def write_answer(
    fmt: AnswerFormat, outputs: Sequence[OutputField], values: Mapping[str, Value]
) -> str:
    """Writes one answer in the format, each value in its canonical form."""
    from promptc.values import write_value

    by_name = {o.name: o for o in outputs}
    parts = []
    for seg in fmt.segments:
        if isinstance(seg, Literal_):
            parts.append(seg.text)
        else:
            parts.append(write_value(by_name[seg.field], values[seg.field]))
    return "".join(parts)
