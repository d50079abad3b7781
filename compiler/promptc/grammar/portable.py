"""The portable regex export of an answer grammar (``answer.regex``), for constrained decoding.

Engines that constrain a model by a regular expression (vLLM's ``regex`` structured output,
xgrammar's and outlines-core's regex front ends) each read a small common dialect, not
Python's: no named groups, no lookarounds, no atomic groups, no inline flags such as
``(?i:…)``, no ``\\Z``; the whole text must match, so there are no anchors either. This module
writes the grammar in that dialect. Like the GBNF export (:mod:`promptc.grammar.gbnf`) it
spells the canonical layout only: one space after each marker, one line break between lines,
the literals of the answer format exactly as written, values in the forms of
``grammars/*.lark`` (converted from the very same regexes by :func:`portable`). Text is
unbounded here; bound the length of an output with ``max_tokens``.

Parsing uses the Python regex (:attr:`promptc.grammar.answer.AnswerGrammar.parse_regex`,
``answer.parse.regex``), which allows the slack the parser accepts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from promptc import markers
from promptc.errors import GrammarError
from promptc.grammar.lark_source import Blueprint
from promptc.grammar.regex_tree import SRE, cases, class_spans, parse, quantifier

#: Characters with a meaning outside a character class, escaped with a backslash.
_SPECIAL = set("\\^$.|?*+()[]{}")
#: Characters with a meaning inside a character class.
_CLASS_SPECIAL = set("\\]^[-")
_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\f": "\\f", "\v": "\\v"}

_NOT_WS = "[^ \\t\\n\\r\\f\\v]"


def escape(text: str) -> str:
    """``text`` as a literal of the portable dialect."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch in _SPECIAL:
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def _class_char(code: int) -> str:
    ch = chr(code)
    if ch in _ESCAPES:
        return _ESCAPES[ch]
    if ch in _CLASS_SPECIAL:
        return "\\" + ch
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    return ch


def _class(spans: list[tuple[int, int]], negate: bool) -> str:
    body = "".join(
        _class_char(lo) if lo == hi else f"{_class_char(lo)}-{_class_char(hi)}"
        for lo, hi in sorted(set(spans))
    )
    return "[" + ("^" if negate else "") + body + "]"


def portable(regex: str) -> str:
    """A Python regex of a value fragment in the portable dialect.

    Handles what the value fragments use: literals, classes, ``\\d``, alternation, groups
    (written non-capturing), inline ``(?i:…)`` (each letter as a class of its two cases),
    repetition (lazy repetition as greedy: a constraint has no preference). ``\\d`` becomes
    ``[0-9]``.

    Raises:
        GrammarError: The regex uses a construct the dialect lacks (anchors, lookarounds,
            back-references).
    """
    return _seq(parse(regex), False)


def _seq(items: Any, icase: bool) -> str:
    return "".join(_atom(op, av, icase) for op, av in items)


def _atom(op: Any, av: Any, icase: bool) -> str:
    if op is SRE.LITERAL:
        if icase and chr(av).lower() != chr(av).upper():
            return _class(cases(av, av), False)
        return escape(chr(av))
    if op is SRE.NOT_LITERAL:
        return _class(cases(av, av) if icase else [(av, av)], True)
    if op is SRE.ANY:
        return "[^\\n]"
    if op is SRE.IN:
        return _class(*class_spans(av, icase, "portably"))
    if op is SRE.BRANCH:
        return "(?:" + "|".join(_seq(b, icase) for b in av[1]) + ")"
    if op is SRE.SUBPATTERN:
        _, add, _, sub = av
        return "(?:" + _seq(sub, icase or bool(add & SRE.SRE_FLAG_IGNORECASE)) + ")"
    if op is SRE.ATOMIC_GROUP:
        return "(?:" + _seq(av, icase) + ")"
    if op in (SRE.MAX_REPEAT, SRE.MIN_REPEAT, SRE.POSSESSIVE_REPEAT):
        lo, hi, sub = av
        inner = _seq(sub, icase)
        if not _is_atom(inner):
            inner = "(?:" + inner + ")"
        return inner + quantifier(lo, hi)
    raise GrammarError(f"cannot express the regex construct {op} portably")


def _is_atom(regex: str) -> bool:
    """Whether ``regex`` is one class, one (escaped) character or one group."""
    if regex.startswith("(?:") and regex.endswith(")") and _closes_at_end(regex):
        return True
    if regex.startswith("[") and regex.endswith("]") and _class_end(regex) == len(regex):
        return True
    return len(regex) == 1 or (len(regex) == 2 and regex[0] == "\\")


def _closes_at_end(regex: str) -> bool:
    depth, k = 0, 0
    while k < len(regex):
        ch = regex[k]
        if ch == "\\":
            k += 2
            continue
        if ch == "[":
            k = _class_end(regex, k)
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0 and k != len(regex) - 1:
                return False
        k += 1
    return True


def _class_end(regex: str, start: int = 0) -> int:
    """The offset just after the class that opens at ``start``."""
    k = start + 1
    if k < len(regex) and regex[k] == "^":
        k += 1
    while k < len(regex):
        if regex[k] == "\\":
            k += 2
            continue
        if regex[k] == "]":
            return k + 1
        k += 1
    return len(regex)


def _text(multiline: bool) -> str:
    char = "(?:[^\\n]|\\n)" if multiline else "[^\\n]"
    return f"{_NOT_WS}(?:{char}*{_NOT_WS})?"


def portable_regex(plan: Blueprint, questions: Sequence[str] | None = None) -> str:
    """The portable regex of a plan's canonical outputs (the text ``answer.regex`` holds).

    Args:
        plan: The answer plan.
        questions: Auto-Demo only: each item's exact question, as
            :func:`promptc.markers.question_text` writes it; ``None`` admits any question.
    """
    from promptc.grammar.lark_source import value_regex
    from promptc.values import text_answers

    def answer_of(index: int) -> str:
        parts: list[str] = []
        for p in plan.parts_of(index):
            if p.field is None:
                parts.append(escape(p.text))
            elif p.field.type == "text":
                parts.append(_text(plan.multiline))
            elif text_answers(p.field):
                # The shared grammar's any one-line text; a request's own spells its options.
                parts.append(portable(value_regex(p.field, plan.multiline)))
            elif p.field.type == "enum":
                # Constrained output is canonical: a choice as declared (aliases are for reading).
                parts.append("(?:" + "|".join(escape(c) for c in p.field.choices) + ")")
            elif p.field.type == "boolean":
                parts.append("(?:yes|no)")
            else:
                parts.append(portable(value_regex(p.field, plan.multiline)))
        return "".join(parts)

    answer = answer_of(1)
    if plan.kind.one_item:
        return answer
    line = f"{_NOT_WS}[^\\n]*"
    labels = plan.question_labels
    question = (
        escape(markers.FIELD_SEPARATOR).join(
            escape(lab + markers.LABEL_SEPARATOR) + line for lab in labels
        )
        if len(labels) > 1
        else line
    )
    items = []
    for i in range(1, plan.n_items + 1):
        own = answer if plan.item_parts is None else answer_of(i)
        item = escape(markers.answer_marker(i, plan.markers) + markers.MARKER_SEPARATOR) + own
        if plan.kind.repeats_questions:
            if questions is not None:
                q = escape(markers.question_lines(questions[i - 1], i, plan.question_prefixes))
            elif plan.indexed:  # one marked line per input
                q = escape(markers.FIELD_SEPARATOR).join(
                    escape(markers.marker(p, i) + markers.MARKER_SEPARATOR) + line
                    for p in plan.question_prefixes
                )
            else:
                q_marker = escape(
                    markers.question_marker(i, plan.markers) + markers.MARKER_SEPARATOR
                )
                q = q_marker + question
            item = q + escape(markers.ITEM_SEPARATOR) + item
        items.append(item)
    return escape(markers.ITEM_SEPARATOR).join(items)
