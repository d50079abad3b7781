"""The GBNF export of an answer grammar (``answer.gbnf``), for llama.cpp constrained decoding.

GBNF constrains what a model may *write*, so it spells the canonical layout only: one space
after each marker, one line break between lines, no white space before or after the output,
the literals of the answer format exactly as written. Every output it admits is accepted by the
lark grammar and the regex with the same values. The value types are converted from the very
regexes of ``grammars/*.lark`` (:func:`regex_to_gbnf`), so they admit what the parser reads.

GBNF has no lookahead, so a text field is "characters other than a line break" and the model
stops it by writing the literal that follows (``" The answer is "``): llama.cpp's grammar
engine keeps every reading alive, so a text that contains the literal is still fine. To keep a
constrained model from running on forever, text is bounded here (and only here):
:data:`TEXT_MAX_CHARS` characters in a one-line answer, :data:`MULTILINE_TEXT_MAX_CHARS` in a
``single``/``few-shot`` answer, :data:`QUESTION_MAX_CHARS` per line of a repeated question.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from promptc import markers
from promptc.errors import GrammarError
from promptc.grammar.lark_source import Blueprint

# The regex parser of the standard library (``re._parser`` since 3.11, ``sre_parse`` before).
_c: Any
_p: Any
try:
    _c = importlib.import_module("re._constants")
    _p = importlib.import_module("re._parser")
except ImportError:  # pragma: no cover - Python 3.10
    _c = importlib.import_module("sre_constants")
    _p = importlib.import_module("sre_parse")

#: Longest text value a constrained model may write in a one-line answer.
TEXT_MAX_CHARS = 400
#: Longest text value in a ``single``/``few-shot`` answer (which may span lines).
MULTILINE_TEXT_MAX_CHARS = 2000
#: Longest line of a repeated Auto-Demo question.
QUESTION_MAX_CHARS = 1000

_WS_CLASS = "[ \\t\\n\\r\\x0B\\x0C]"
_NOT_WS_CLASS = "[^ \\t\\n\\r\\x0B\\x0C]"


def gbnf_string(text: str) -> str:
    """A GBNF string literal."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _class_char(ch: str) -> str:
    if ch in "\\]^[-":
        return "\\" + ch if ch != "-" else "\\x2D"
    if ch == "\n":
        return "\\n"
    if ch == "\r":
        return "\\r"
    if ch == "\t":
        return "\\t"
    if ord(ch) < 0x20 or ord(ch) == 0x7F:
        return f"\\x{ord(ch):02X}"
    return ch


def _class(items: Iterable[tuple[int, int]], negate: bool) -> str:
    """A GBNF character class from (low, high) code point ranges."""
    spans = sorted(set(items))
    body = []
    for lo, hi in spans:
        if lo == hi:
            body.append(_class_char(chr(lo)))
        else:
            body.append(_class_char(chr(lo)) + "-" + _class_char(chr(hi)))
    return "[" + ("^" if negate else "") + "".join(body) + "]"


_CATEGORIES = {
    _c.CATEGORY_DIGIT: [(ord("0"), ord("9"))],
    _c.CATEGORY_SPACE: [(ord(c), ord(c)) for c in " \t\n\r\x0b\x0c"],
    _c.CATEGORY_WORD: [
        (ord("a"), ord("z")),
        (ord("A"), ord("Z")),
        (ord("0"), ord("9")),
        (ord("_"), ord("_")),
    ],
}


def _cases(lo: int, hi: int) -> list[tuple[int, int]]:
    out = [(lo, hi)]
    for a, b, shift in ((ord("a"), ord("z"), -32), (ord("A"), ord("Z"), 32)):
        x, y = max(lo, a), min(hi, b)
        if x <= y:
            out.append((x + shift, y + shift))
    return out


def regex_to_gbnf(regex: str) -> str:
    """Converts a regex without anchors or lookarounds to one GBNF expression.

    Handles what the value fragments use: literals, classes, ``\\d``, alternation, groups,
    inline ``(?i:…)``, repetition. ``\\d`` becomes ``[0-9]`` (GBNF is ASCII here).

    Raises:
        GrammarError: The regex uses a construct GBNF cannot express (anchors, lookarounds,
            back-references).
    """
    return _seq(_p.parse(regex), False)


def _seq(items: Any, icase: bool) -> str:
    out: list[str] = []
    buf: list[str] = []

    def flush() -> None:
        if buf:
            out.append(gbnf_string("".join(buf)))
            buf.clear()

    for op, av in items:
        if op is _c.LITERAL:
            ch = chr(av)
            if icase and ch.lower() != ch.upper():
                flush()
                out.append(_class(_cases(av, av), False))
            else:
                buf.append(ch)
            continue
        flush()
        out.append(_atom(op, av, icase))
    flush()
    return " ".join(out) if out else '""'


def _atom(op: Any, av: Any, icase: bool) -> str:
    if op is _c.NOT_LITERAL:
        return _class(_cases(av, av) if icase else [(av, av)], True)
    if op is _c.ANY:
        return "[^\\n]"
    if op is _c.IN:
        negate = False
        spans: list[tuple[int, int]] = []
        for iop, iav in av:
            if iop is _c.NEGATE:
                negate = True
            elif iop is _c.LITERAL:
                spans.extend(_cases(iav, iav) if icase else [(iav, iav)])
            elif iop is _c.RANGE:
                spans.extend(_cases(*iav) if icase else [iav])
            elif iop is _c.CATEGORY and iav in _CATEGORIES:
                spans.extend(_CATEGORIES[iav])
            else:
                raise GrammarError(f"cannot express the character class item {iop} in GBNF")
        return _class(spans, negate)
    if op is _c.BRANCH:
        return "(" + " | ".join(_seq(b, icase) for b in av[1]) + ")"
    if op is _c.SUBPATTERN:
        _, add, _, sub = av
        return "(" + _seq(sub, icase or bool(add & re.IGNORECASE)) + ")"
    if op is _c.ATOMIC_GROUP:
        return "(" + _seq(av, icase) + ")"
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
        lo, hi, sub = av
        inner = _seq(sub, icase)
        if " " in inner and not (inner.startswith("(") and inner.endswith(")")):
            inner = "(" + inner + ")"
        if (lo, hi) == (0, 1):
            return inner + "?"
        if (lo, hi) == (0, _c.MAXREPEAT):
            return inner + "*"
        if (lo, hi) == (1, _c.MAXREPEAT):
            return inner + "+"
        if hi == _c.MAXREPEAT:
            return f"{inner}{{{lo},}}"
        if lo == hi:
            return f"{inner}{{{lo}}}"
        return f"{inner}{{{lo},{hi}}}"
    raise GrammarError(f"cannot express the regex construct {op} in GBNF")


def _rule_name(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "-", name).strip("-").lower() or "x"


def _text(max_chars: int, multiline: bool) -> str:
    char = "[^\\x00]" if multiline else "[^\\n]"
    return f"{_NOT_WS_CLASS} ({char}{{0,{max_chars - 2}}} {_NOT_WS_CLASS})?"


def _question(blueprint: Blueprint, i: int, questions: Sequence[str] | None) -> str:
    """The symbols of item ``i``'s repeated question: ``"Q[i]: " question``, or pinned
    ``"Q[i]: <its question>"``; with indexed inputs one ``"Label[i]: "`` line per input."""
    prefixes = blueprint.question_prefixes or (blueprint.markers.question,)
    if questions is not None:
        values = [gbnf_string(v) for v in markers.split_question(questions[i - 1], prefixes)]
    elif blueprint.indexed:
        values = ["question-line"] * len(prefixes)
    else:
        values = ["question"]
    return f" {gbnf_string(markers.FIELD_SEPARATOR)} ".join(
        gbnf_string(markers.marker(p, i) + markers.MARKER_SEPARATOR) + " " + v
        for p, v in zip(prefixes, values)
    )


def gbnf_source(
    blueprint: Blueprint,
    task_name: str,
    text_max_chars: int | None = None,
    question_max_chars: int = QUESTION_MAX_CHARS,
    questions: Sequence[str] | None = None,
    item_choices: Sequence[Mapping[str, Sequence[str]]] | None = None,
) -> str:
    """The GBNF grammar of a blueprint, rule ``root`` first.

    Args:
        blueprint: The answer blueprint.
        task_name: Named in the header comment.
        text_max_chars: Longest text value; default by the blueprint's layout.
        question_max_chars: Longest line of a repeated Auto-Demo question.
        questions: Auto-Demo only: the exact question of each item, as
            :func:`promptc.markers.question_text` writes it. Each ``Q[i]:`` must then be
            followed by that literal text (with indexed inputs, each input's line its value,
            :func:`promptc.markers.question_lines`) (a small model left free writes questions of its
            own, which the parser rightly calls ``misaligned``); ``None`` admits any question.
        item_choices: Per item, enum field → the choices that item admits (an enum whose
            choices are the item's own options, ``choices_from``): each item then gets its
            own answer rule; ``None`` shares one answer rule.
    """
    from promptc.grammar.lark_source import value_regex

    if item_choices is None and blueprint.item_choices is not None:
        item_choices = [dict(c) for c in blueprint.item_choices]
    if text_max_chars is None:
        text_max_chars = MULTILINE_TEXT_MAX_CHARS if blueprint.multiline else TEXT_MAX_CHARS
    rules: list[tuple[str, str]] = []
    type_rules: dict[str, str] = {}
    sep = gbnf_string(markers.ITEM_SEPARATOR)
    if blueprint.kind in ("single", "few-shot"):
        rules.append(("root", "answer"))
    else:
        rules.append(
            ("root", f" {sep} ".join(f"item-{i}" for i in range(1, blueprint.n_items + 1)))
        )
        for i in range(1, blueprint.n_items + 1):
            own = "answer" if item_choices is None else f"answer-{i}"
            answer = (
                gbnf_string(markers.answer_marker(i, blueprint.markers) + markers.MARKER_SEPARATOR)
                + f" {own}"
            )
            if blueprint.kind == "auto-demo":
                answer = f"{_question(blueprint, i, questions)} {sep} {answer}"
            rules.append((f"item-{i}", answer))
    parts: list[str] = []
    taken = {"root", "answer", "question", "question-line", "text"}
    for p in blueprint.parts:
        if p.field is None:
            parts.append(gbnf_string(p.text))
            continue
        f = p.field
        name = "field-" + _rule_name(f.name)
        while name in taken:
            name += "-x"
        taken.add(name)
        parts.append(name)
        if f.type == "text":
            type_rules["text"] = _text(text_max_chars, blueprint.multiline)
            rules.append((name, "text"))
        elif f.type == "enum":
            rules.append((name, regex_to_gbnf(value_regex(f, blueprint.multiline))))
        else:
            type_rules[f.type] = regex_to_gbnf(value_regex(f, blueprint.multiline))
            rules.append((name, f.type))
    at = 1 if blueprint.kind in ("single", "few-shot") else 1 + blueprint.n_items
    if item_choices is None:
        rules.insert(at, ("answer", " ".join(parts)))
    else:
        # One answer rule per item, its per-item enum fields spelled with its own choices.
        names = [p.field.name if p.field is not None else None for p in blueprint.parts]
        for i, choices in enumerate(item_choices, 1):
            own_parts = [
                "(" + " | ".join(gbnf_string(c) for c in choices[n]) + ")"
                if n is not None and n in choices
                else part
                for n, part in zip(names, parts)
            ]
            name = "answer" if blueprint.kind in ("single", "few-shot") else f"answer-{i}"
            rules.insert(at + i - 1, (name, " ".join(own_parts)))
    if blueprint.kind == "auto-demo" and questions is None and blueprint.indexed:
        rules.append(("question-line", f"{_NOT_WS_CLASS} [^\\n]{{0,{question_max_chars - 1}}}"))
    elif blueprint.kind == "auto-demo" and questions is None:
        labels = blueprint.question_labels
        line = "question-line"
        if len(labels) <= 1:
            rules.append(("question", line))
        else:
            fsep = gbnf_string(markers.FIELD_SEPARATOR)
            rules.append(
                (
                    "question",
                    f" {fsep} ".join(
                        gbnf_string(lab + markers.LABEL_SEPARATOR) + " " + line for lab in labels
                    ),
                )
            )
        rules.append(("question-line", f"{_NOT_WS_CLASS} [^\\n]{{0,{question_max_chars - 1}}}"))
    for name in sorted(type_rules):
        rules.append((name, type_rules[name]))
    head = (
        f"# Answer grammar of task '{task_name}': {blueprint.kind}, {blueprint.n_items} item(s).\n"
        "# Generated by promptc; canonical layout only (see docs/parsing.md).\n"
    )
    return head + "".join(f"{n} ::= {body}\n" for n, body in rules)
