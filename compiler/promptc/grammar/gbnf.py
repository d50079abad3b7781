"""The GBNF export of an answer grammar (``answer.gbnf``), for llama.cpp constrained decoding.

GBNF constrains what a model may *write*, so it spells the canonical layout only: one space
after each marker, one line break between lines, no white space before or after the output,
the literals of the answer format exactly as written. Every output it admits is accepted by the
lark grammar and the regex with the same values. Each value is spelled by its type
(:meth:`promptc.values.ValueType.gbnf`), converted from the very regexes of ``grammars/*.lark``
(:data:`promptc.values.dialects.GBNF`), so it admits what the parser reads.

GBNF has no lookahead, so a text field is "characters other than a line break" and the model
stops it by writing the literal that follows (``" The answer is "``): llama.cpp's grammar
engine keeps every reading alive, so a text that contains the literal is still fine. To keep a
constrained model from running on forever, text is bounded in GBNF (and only there):
:data:`TEXT_MAX_CHARS` characters in a one-line answer, :data:`MULTILINE_TEXT_MAX_CHARS` in a
``single``/``few-shot`` answer, :data:`QUESTION_MAX_CHARS` per line of a repeated question.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from promptc import markers
from promptc.errors import SpecWarning
from promptc.grammar.lark_source import Blueprint
from promptc.ir import Task
from promptc.values.dialects import GBNF_NOT_WS, gbnf_string

#: Longest text value a constrained model may write in a one-line answer.
TEXT_MAX_CHARS = 400
#: Longest text value in a ``single``/``few-shot`` answer (which may span lines).
MULTILINE_TEXT_MAX_CHARS = 2000
#: Longest line of a repeated Auto-Demo question.
QUESTION_MAX_CHARS = 1000


def text_cap(multiline: bool) -> int:
    """The longest text value a constrained model may write: in an answer that may span
    lines (``single``/``few-shot``), or in a one-line answer."""
    return MULTILINE_TEXT_MAX_CHARS if multiline else TEXT_MAX_CHARS


#: The warning of a demo longer than a constrained model may write (``{field}``, ``{length}``,
#: ``{cap}``, ``{kind}``). Tested word for word.
DEMO_PAST_CAP = (
    "demo value for output {field!r} is {length:,} characters, but a model constrained by the "
    "GBNF grammar (run --grammar gbnf, vllm-batch bodies) writes at most {cap:,} in an answer "
    "of strategy {kind}: it cannot answer as the demo shows"
)


def demo_warnings(task: Task) -> list[SpecWarning]:
    """A warning for each demo text value longer than the GBNF grammar lets a constrained
    model write in the task's strategy (:data:`TEXT_MAX_CHARS` a one-line answer,
    :data:`MULTILINE_TEXT_MAX_CHARS` a one-item one)."""
    kind = task.strategy.kind
    cap = text_cap(kind.one_item)  # a one-item answer is the one that may span lines
    out = []
    for k, demo in enumerate(task.demos):
        for f in task.outputs:
            value = demo.outputs.get(f.name)
            if f.type.free_text and isinstance(value, str) and len(value) > cap:
                message = DEMO_PAST_CAP.format(field=f.name, length=len(value), cap=cap, kind=kind)
                out.append(
                    SpecWarning(
                        message,
                        location=demo.location,
                        path=("demos", k, f.name),
                        hint="shorten it: the cap keeps a constrained model from writing on "
                        "without end",
                        code="demo-past-gbnf-cap",
                    )
                )
    return out


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
    blueprint: Blueprint, task_name: str, questions: Sequence[str] | None = None
) -> str:
    """The GBNF grammar of a blueprint, rule ``root`` first.

    A request's own blueprint (:func:`~promptc.grammar.lark_source.item_blueprint`: each item
    admits its own choices of an enum whose choices are its options, ``choices_from``) gets
    one answer rule per item; otherwise one answer rule is shared.

    Args:
        blueprint: The answer blueprint.
        task_name: Named in the header comment.
        questions: Auto-Demo only: the exact question of each item, as
            :func:`promptc.markers.question_text` writes it. Each ``Q[i]:`` must then be
            followed by that literal text (with indexed inputs, each input's line its value,
            :func:`promptc.markers.question_lines`) (a small model left free writes questions of its
            own, which the parser rightly calls ``misaligned``); ``None`` admits any question.
    """
    rules = _item_rules(blueprint, questions)
    parts, field_rules, type_rules = _field_rules(blueprint)
    rules += field_rules
    at = 1 if blueprint.kind.one_item else 1 + blueprint.n_items
    if blueprint.item_choices is None:
        rules.insert(at, ("answer", " ".join(parts)))
    else:
        # One answer rule per item, its per-item enum fields spelled with its own choices.
        names = [p.field.name if p.field is not None else None for p in blueprint.parts]
        for i, item in enumerate(blueprint.item_choices, 1):
            choices = dict(item)
            own_parts = [
                "(" + " | ".join(gbnf_string(c) for c in choices[n]) + ")"
                if n is not None and n in choices
                else part
                for n, part in zip(names, parts)
            ]
            name = "answer" if blueprint.kind.one_item else f"answer-{i}"
            rules.insert(at + i - 1, (name, " ".join(own_parts)))
    if blueprint.kind.repeats_questions and questions is None:
        rules += _free_question_rules(blueprint)
    for name in sorted(type_rules):
        rules.append((name, type_rules[name]))
    head = (
        # (the name on one line: a line break in it would end the comment)
        f"# Answer grammar of task '{' '.join(task_name.split())}': {blueprint.kind}, "
        f"{blueprint.n_items} item(s).\n"
        "# Generated by promptc; canonical layout only (see docs/parsing.md).\n"
    )
    return head + "".join(f"{n} ::= {body}\n" for n, body in rules)


def _item_rules(blueprint: Blueprint, questions: Sequence[str] | None) -> list[tuple[str, str]]:
    """``root`` and, for several items, one ``item-i`` rule each (its marker, its answer rule
    and, where the model repeats the questions, its question first)."""
    if blueprint.kind.one_item:
        return [("root", "answer")]
    sep = gbnf_string(markers.ITEM_SEPARATOR)
    n = blueprint.n_items
    rules = [("root", f" {sep} ".join(f"item-{i}" for i in range(1, n + 1)))]
    for i in range(1, n + 1):
        own = "answer" if blueprint.item_choices is None else f"answer-{i}"
        answer = (
            gbnf_string(markers.answer_marker(i, blueprint.markers) + markers.MARKER_SEPARATOR)
            + f" {own}"
        )
        if blueprint.kind.repeats_questions:
            answer = f"{_question(blueprint, i, questions)} {sep} {answer}"
        rules.append((f"item-{i}", answer))
    return rules


def _field_rules(
    blueprint: Blueprint,
) -> tuple[list[str], list[tuple[str, str]], dict[str, str]]:
    """The answer body's parts (literals and field rule names), each field's rule, and the
    rules shared by every field of a type (named after the type)."""
    text_max_chars = text_cap(blueprint.multiline)
    parts: list[str] = []
    rules: list[tuple[str, str]] = []
    type_rules: dict[str, str] = {}
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
    return parts, rules, type_rules


def _free_question_rules(blueprint: Blueprint) -> list[tuple[str, str]]:
    """The rules of a repeated question that any text may fill (no questions given)."""
    rules: list[tuple[str, str]] = []
    labels = blueprint.question_labels
    if not blueprint.indexed:
        fsep = f" {gbnf_string(markers.FIELD_SEPARATOR)} "
        question = (
            fsep.join(
                gbnf_string(lab + markers.LABEL_SEPARATOR) + " question-line" for lab in labels
            )
            if len(labels) > 1
            else "question-line"
        )
        rules.append(("question", question))
    rules.append(("question-line", f"{GBNF_NOT_WS} [^\\n]{{0,{QUESTION_MAX_CHARS - 1}}}"))
    return rules
