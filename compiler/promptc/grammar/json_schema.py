"""The JSON Schema export of an answer grammar (``answer.schema.json``), Draft 2020-12.

For ``single`` and ``few-shot`` it describes one answer: an object with the answer format's
fields, all required. For ``batch`` and ``auto-demo`` of N items: an object whose ``answers``
holds exactly N answers in order, each with its 1-based ``index`` (fixed by position), for
``auto-demo`` the repeated ``question``, and the typed fields (each in its type's JSON form,
:meth:`promptc.values.ValueType.json_value`). It is what a structured-output API is asked for.

:func:`json_answer_text` is its reader, beside it: the text form (``A[i]: …``) of an answer
written in this JSON form, which the output parser then reads like any other output.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal

from promptc import markers
from promptc.grammar.lark_source import Blueprint
from promptc.ir import AnswerFormat, Value
from promptc.spec.answer_format import write_answer

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _answer(blueprint: Blueprint, index: int | None, question: str | None) -> dict[str, object]:
    props: dict[str, object] = {}
    required: list[str] = []
    if index is not None:
        props["index"] = {"type": "integer", "const": index}
        required.append("index")
        if blueprint.kind.repeats_questions:
            # no minLength: mlc-ai/xgrammar#800
            props["question"] = (
                {"type": "string"} if question is None else {"type": "string", "const": question}
            )
            required.append("question")
    # A request's own blueprint (item_blueprint) has each item's fields with its own choices.
    for f in (p.field for p in blueprint.parts_of(index or 1) if p.field is not None):
        props[f.name] = f.type.json_schema(f)
        required.append(f.name)
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


def json_schema(
    blueprint: Blueprint, task_name: str, questions: Sequence[str] | None = None
) -> dict[str, object]:
    """The schema of the JSON form of an answer of ``blueprint``'s shape.

    With ``questions`` (``auto-demo``), each answer's ``question`` must be exactly its item's
    (a ``const``); a request's own blueprint (:func:`~promptc.grammar.lark_source.
    item_blueprint`) admits in each item's enum exactly its own choices: the JSON counterpart
    of the GBNF that pins them.
    """
    head: dict[str, object] = {
        "$schema": DRAFT,
        "title": f"{task_name} answer ({blueprint.kind}, {blueprint.n_items} item(s))",
    }
    if blueprint.kind.one_item:
        return {**head, **_answer(blueprint, None, None)}
    return {
        **head,
        "type": "object",
        "properties": {
            "answers": {
                "type": "array",
                "prefixItems": [
                    _answer(blueprint, i, questions[i - 1] if questions is not None else None)
                    for i in range(1, blueprint.n_items + 1)
                ],
                # Exactly n items by minItems and maxItems beside prefixItems: the same
                # language as a closing "items": false, which llama.cpp's JSON-Schema
                # converter refuses (HTTP 400: "schema must be an object").
                "minItems": blueprint.n_items,
                "maxItems": blueprint.n_items,
            }
        },
        "required": ["answers"],
        "additionalProperties": False,
    }


def schema_text(value: object, level: int = 0) -> str:
    """``json.dumps(value, indent=2)``, byte for byte, for the JSON values a schema holds.

    Python's own encoder with an indent is made of closures that refer to each other, so
    every call leaves a reference cycle for the garbage collector; a build writing one schema
    per request would hold thousands of them between collections. This one leaves none (its
    scalars go through the C encoder)."""
    pad = "  " * (level + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = ",\n".join(
            pad + json.dumps(str(k)) + ": " + schema_text(v, level + 1) for k, v in value.items()
        )
        return "{\n" + inner + "\n" + "  " * level + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        inner = ",\n".join(pad + schema_text(v, level + 1) for v in value)
        return "[\n" + inner + "\n" + "  " * level + "]"
    return json.dumps(value)


def json_answer_text(
    blueprint: Blueprint, fmt: AnswerFormat, output: str, questions: Sequence[str] = ()
) -> str | None:
    """The text form (``A[i]: …``, with ``Q[i]: …`` for Auto-Demo) of an output written in
    the JSON form of :func:`json_schema`, or ``None`` if it is not JSON of that shape (an
    object with the answer's fields; for several items, ``answers``, a list of such objects).

    Values are written back in the format as they came (a number as its JSON text, an empty
    string as empty text), so that the parser judges them as it judges any answer: a value
    the schema allows but the format does not (empty text) comes out ``malformed``, at the
    item it belongs to. An entry's ``index`` places it; without one, its position does.

    Args:
        blueprint: The answer blueprint (its kind and fields).
        fmt: The answer format the text form is written in.
        output: What the model wrote.
        questions: Auto-Demo: each item's question, for entries that leave it out.
    """
    if not output.lstrip().startswith("{"):
        return None
    try:
        data = json.loads(output, parse_float=Decimal)  # exact, as the text form reads numbers
    except (ValueError, RecursionError):
        return None
    if not isinstance(data, dict):
        return None

    def answer(values: object) -> str | None:
        if not isinstance(values, Mapping):
            return None
        try:
            typed: dict[str, Value] = {}
            for f in blueprint.fields:
                # Not a value of the type (an object, a list, null …): ValueError.
                raw = values[f.name]
                value = f.type.coerce(f, str(raw) if isinstance(raw, Decimal) else raw)
                if f.type.free_text and not blueprint.multiline and isinstance(value, str):
                    # The schema allows any string, but the text form holds each item on
                    # its line: a line break is read as a space, so that a string's second
                    # line ("…\nA[2]: 5") is never taken for another item's answer.
                    value = " ".join(line.strip(" \t") for line in value.splitlines())
                typed[f.name] = value
            return write_answer(fmt, blueprint.fields, typed).strip(" \t\n\r\f\v")
        except (KeyError, ValueError, TypeError):
            return None

    if blueprint.kind.one_item:
        return answer(data)
    answers = data.get("answers")
    if not isinstance(answers, list):
        return None
    lines: list[str] = []
    for k, entry in enumerate(answers, 1):
        index = entry.get("index", k) if isinstance(entry, Mapping) else k
        text = answer(entry)
        if text is None or not isinstance(index, int) or isinstance(index, bool):
            return None
        if blueprint.kind.repeats_questions:
            q = entry.get("question")
            if not isinstance(q, str):
                q = questions[index - 1] if 0 < index <= len(questions) else ""
            try:  # indexed inputs: one marked line per input, as the text form writes them
                lines.append(markers.question_lines(q, index, blueprint.question_prefixes))
            except ValueError:  # not the item's question's form: as written, to be judged
                lines.append(
                    markers.question_marker(index, blueprint.markers) + markers.MARKER_SEPARATOR + q
                )
        lines.append(
            markers.answer_marker(index, blueprint.markers) + markers.MARKER_SEPARATOR + text
        )
    return markers.ITEM_SEPARATOR.join(lines)
