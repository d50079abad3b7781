"""The GBNF export of an answer grammar (``answer.gbnf``), for llama.cpp constrained decoding.

GBNF constrains what a model may *write*, so it spells the canonical layout only: one space
after each marker, one line break between lines, no white space before or after the output,
the literals of the answer format exactly as written. Every output it admits is accepted by the
lark grammar and the regex with the same values. Each value is spelled by its type
(:meth:`promptc.values.ValueType.gbnf`), converted from the very regexes of ``grammars/*.lark``
(:func:`promptc.values.dialects.regex_to_gbnf`), so it admits what the parser reads.

GBNF has no lookahead, so a text field is "characters other than a line break" and the model
stops it by writing the literal that follows (``" The answer is "``): llama.cpp's grammar
engine keeps every reading alive, so a text that contains the literal is still fine. To keep a
constrained model from running on forever, text is bounded in GBNF (and only there):
:data:`TEXT_MAX_CHARS` characters in a one-line answer, :data:`MULTILINE_TEXT_MAX_CHARS` in a
``single``/``few-shot`` answer, :data:`QUESTION_MAX_CHARS` per line of a repeated question.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from promptc import markers
from promptc.grammar.lark_source import Blueprint
from promptc.values.dialects import GBNF_NOT_WS, gbnf_string

#: Longest text value a constrained model may write in a one-line answer.
TEXT_MAX_CHARS = 400
#: Longest text value in a ``single``/``few-shot`` answer (which may span lines).
MULTILINE_TEXT_MAX_CHARS = 2000
#: Longest line of a repeated Auto-Demo question.
QUESTION_MAX_CHARS = 1000


def _rule_name(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]+", "-", name).strip("-").lower() or "x"


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
    if item_choices is None and blueprint.item_choices is not None:
        item_choices = [dict(c) for c in blueprint.item_choices]
    if text_max_chars is None:
        text_max_chars = MULTILINE_TEXT_MAX_CHARS if blueprint.multiline else TEXT_MAX_CHARS
    rules: list[tuple[str, str]] = []
    type_rules: dict[str, str] = {}
    sep = gbnf_string(markers.ITEM_SEPARATOR)
    if blueprint.kind.one_item:
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
            if blueprint.kind.repeats_questions:
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
        value = f.type.gbnf(f, blueprint.multiline, text_max_chars)
        if f.type.gbnf_shared:  # one rule, named after the type, for every field of it
            type_rules[str(f.type)] = value
            rules.append((name, str(f.type)))
        else:
            rules.append((name, value))
    at = 1 if blueprint.kind.one_item else 1 + blueprint.n_items
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
            name = "answer" if blueprint.kind.one_item else f"answer-{i}"
            rules.insert(at + i - 1, (name, " ".join(own_parts)))
    if blueprint.kind.repeats_questions and questions is None and blueprint.indexed:
        rules.append(("question-line", f"{GBNF_NOT_WS} [^\\n]{{0,{question_max_chars - 1}}}"))
    elif blueprint.kind.repeats_questions and questions is None:
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
        rules.append(("question-line", f"{GBNF_NOT_WS} [^\\n]{{0,{question_max_chars - 1}}}"))
    for name in sorted(type_rules):
        rules.append((name, type_rules[name]))
    head = (
        f"# Answer grammar of task '{task_name}': {blueprint.kind}, {blueprint.n_items} item(s).\n"
        "# Generated by promptc; canonical layout only (see docs/parsing.md).\n"
    )
    return head + "".join(f"{n} ::= {body}\n" for n, body in rules)
