"""The JSON Schema export of an answer grammar (``answer.schema.json``), Draft 2020-12.

For ``single`` and ``few-shot`` it describes one answer: an object with the answer format's
fields, all required. For ``batch`` and ``auto-demo`` of N items: an object whose ``answers``
holds exactly N answers in order, each with its 1-based ``index`` (fixed by position), for
``auto-demo`` the repeated ``question``, and the typed fields. It is the shape of
:meth:`promptc.grammar.answer.AnswerGrammar.to_json`, and what a structured-output API is asked for.
"""

from __future__ import annotations

from promptc.grammar.lark_source import Blueprint
from promptc.values import json_schema as value_schema

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _answer(blueprint: Blueprint, index: int | None) -> dict[str, object]:
    props: dict[str, object] = {}
    required: list[str] = []
    if index is not None:
        props["index"] = {"type": "integer", "const": index}
        required.append("index")
        if blueprint.kind == "auto-demo":
            props["question"] = {"type": "string", "minLength": 1}
            required.append("question")
    for f in blueprint.fields:
        props[f.name] = value_schema(f)
        required.append(f.name)
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


def json_schema(blueprint: Blueprint, task_name: str) -> dict[str, object]:
    """The schema of the JSON form of an answer of ``blueprint``'s shape."""
    head: dict[str, object] = {
        "$schema": DRAFT,
        "title": f"{task_name} answer ({blueprint.kind}, {blueprint.n_items} item(s))",
    }
    if blueprint.kind in ("single", "few-shot"):
        return {**head, **_answer(blueprint, None)}
    return {
        **head,
        "type": "object",
        "properties": {
            "answers": {
                "type": "array",
                "prefixItems": [_answer(blueprint, i) for i in range(1, blueprint.n_items + 1)],
                "items": False,
                "minItems": blueprint.n_items,
                "maxItems": blueprint.n_items,
            }
        },
        "required": ["answers"],
        "additionalProperties": False,
    }
