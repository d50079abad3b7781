"""The portable regex export of an answer grammar (``answer.regex``), for constrained decoding.

Engines that constrain a model by a regular expression (vLLM's ``regex`` structured output,
xgrammar's and outlines-core's regex front ends) each read a small common dialect, not
Python's: no named groups, no lookarounds, no atomic groups, no inline flags such as
``(?i:…)``, no ``\\Z``. The whole text must match; the one anchor is the final ``$``
(:data:`END`). This module
writes the grammar in that dialect. Like the GBNF export (:mod:`promptc.grammar.gbnf`) it
spells the canonical layout only: one space after each marker, one line break between lines,
the literals of the answer format exactly as written, each value as its type spells it
(:meth:`promptc.values.ValueType.portable_regex`: the forms of ``grammars/*.lark``, converted
from the very same regexes by :data:`promptc.values.dialects.PORTABLE`). Text is unbounded
here; bound the length of an output with ``max_tokens``.

Parsing uses the Python regex (:attr:`promptc.grammar.answer.AnswerGrammar.parse_regex`,
``answer.parse.regex``), which allows the slack the parser accepts.
"""

from __future__ import annotations

from collections.abc import Sequence

from promptc import markers
from promptc.grammar.lark_source import Blueprint
from promptc.values.dialects import PORTABLE_NOT_WS, escape

#: The end of the output, written after every portable regex although engines match the whole
#: text: outlines-core (0.2) drops every transition out of a state where a match may already
#: end into one where it may not (``a(?:bc)?`` refuses "abc"), so without it an answer format
#: ending in ``{answer}.`` refuses every decimal answer ("is 7." matches, "is 7.5" does not
#: yet). No spelling of the same language avoids that state; with ``$`` no match ends before
#: the text does. xgrammar and llguidance read ``$`` as the end as well (tests/test_engines.py).
END = "$"


def portable_regex(blueprint: Blueprint, questions: Sequence[str] | None = None) -> str:
    """The portable regex of a blueprint's canonical outputs (the text ``answer.regex`` holds).

    Args:
        blueprint: The answer blueprint.
        questions: Auto-Demo only: each item's exact question, as
            :func:`promptc.markers.question_text` writes it; ``None`` admits any question.
    """

    def answer_of(index: int) -> str:
        return "".join(
            escape(p.text)
            if p.field is None
            else p.field.type.portable_regex(p.field, blueprint.multiline)
            for p in blueprint.parts_of(index)
        )

    answer = answer_of(1)
    if blueprint.kind.one_item:
        return answer + END
    line = f"{PORTABLE_NOT_WS}[^\\n]*"
    labels = blueprint.question_labels
    question = (
        escape(markers.FIELD_SEPARATOR).join(
            escape(lab + markers.LABEL_SEPARATOR) + line for lab in labels
        )
        if len(labels) > 1
        else line
    )
    items = []
    for i in range(1, blueprint.n_items + 1):
        own = answer if blueprint.item_parts is None else answer_of(i)
        item = escape(markers.answer_marker(i, blueprint.markers) + markers.MARKER_SEPARATOR) + own
        if blueprint.kind.repeats_questions:
            if questions is not None:
                q = escape(markers.question_lines(questions[i - 1], i, blueprint.question_prefixes))
            elif blueprint.indexed:  # one marked line per input
                q = escape(markers.FIELD_SEPARATOR).join(
                    escape(markers.marker(p, i) + markers.MARKER_SEPARATOR) + line
                    for p in blueprint.question_prefixes
                )
            else:
                q_marker = escape(
                    markers.question_marker(i, blueprint.markers) + markers.MARKER_SEPARATOR
                )
                q = q_marker + question
            item = q + escape(markers.ITEM_SEPARATOR) + item
        items.append(item)
    return escape(markers.ITEM_SEPARATOR).join(items) + END
