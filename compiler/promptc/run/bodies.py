"""Request bodies for the API from a build's requests, their cache keys, and JSON answers read back.

What is sent is a function of the build alone (plus the grammar mode and the model name), so
that the cache key of a body names exactly what was asked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from promptc.build import BuiltRequest, grammar_text, read_task
from promptc.errors import Location, UsageError
from promptc.text import canonical_json

if TYPE_CHECKING:
    from promptc.grammar.answer import AnswerGrammar
    from promptc.ir import Task


GrammarMode = Literal["auto", "gbnf", "json_schema", "none"]


GRAMMAR_MODES: tuple[GrammarMode, ...] = ("auto", "gbnf", "json_schema", "none")


ServerKind = Literal["llama-cpp-python", "llama.cpp", "other"]


# --------------------------------------------------------------------------------------------
# Request bodies and their cache keys
# --------------------------------------------------------------------------------------------


def request_body(
    request: BuiltRequest,
    build: Path,
    mode: Literal["gbnf", "json_schema", "none"],
    server: ServerKind = "other",
    model: str | None = None,
    task: Task | None = None,
    grammar_files: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON body sent to ``POST {base_url}/chat/completions`` for one request.

    An Auto-Demo request in ``gbnf`` mode gets its own grammar, in which each ``Q[i]:`` must
    repeat item i's question exactly (:meth:`promptc.grammar.answer.AnswerGrammar.gbnf_for`): the
    build's ``.gbnf``, shared by every request of that size, lets a question be any line, and
    a small model constrained by it writes questions of its own, which the parser then rightly
    calls ``misaligned``. That needs the build's task: ``task``, else the build folder's
    (:func:`promptc.build.read_task`).

    ``grammar_files`` (suffix → text: ``.gbnf``, ``.schema.json``) stands in for the build's
    grammar files, for a request the build does not hold (a repair request).
    """

    def grammar_file(suffix: str) -> str:
        if grammar_files is not None:
            return grammar_files[suffix]
        return grammar_text(build, request, suffix)

    body: dict[str, Any] = dict(request.params)
    if model is not None:
        body["model"] = model
    body["messages"] = [dict(m) for m in request.messages]
    if mode == "gbnf":
        if request.kind.repeats_questions:
            gbnf = pinned_gbnf(task if task is not None else read_task(build), request, build)
        elif task is not None and any(o.choices_from for o in task.outputs):
            from promptc.grammar.answer import build_grammar, item_choices

            gbnf = grammar_file(".gbnf")
            choices = item_choices(task, request.item_ids)
            if choices is not None:
                kind = request.kind or task.strategy.kind
                g = build_grammar(task, len(request.item_ids), kind)
                gbnf = g.gbnf_for(item_choices=choices)
        else:
            gbnf = grammar_file(".gbnf")
        body["grammar"] = gbnf
    elif mode == "json_schema":
        if task is not None and (
            request.kind.repeats_questions or any(o.choices_from for o in task.outputs)
        ):
            # Pinned as the GBNF is: the request's own questions, each item's own options.
            schema = pinned_json_schema(task, request, build)
        elif request.kind.repeats_questions:
            schema = pinned_json_schema(read_task(build), request, build)
        else:
            schema = json.loads(grammar_file(".schema.json"))
        if server == "llama-cpp-python":
            # Its server accepts only "text" and "json_object" (with a schema) as the type.
            body["response_format"] = {"type": "json_object", "schema": schema}
        else:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema, "strict": True},
            }
    return body


def pinned_gbnf(task: Task, request: BuiltRequest, build: Path) -> str:
    """The GBNF of an Auto-Demo request with its own questions pinned (and each item's own
    options, where an enum's choices are the item's).

    Raises:
        UsageError: The task does not match the build (see :func:`pinned_json_schema`).
    """
    grammar, questions, choices = _pinned(task, request, build)
    return grammar.gbnf_for(questions, choices)


def pinned_json_schema(task: Task, request: BuiltRequest, build: Path) -> dict[str, object]:
    """The JSON Schema of a request, pinned as :func:`pinned_gbnf` pins its GBNF: an
    Auto-Demo answer's ``question`` must be its item's own (``const``), an enum whose
    choices are an item's options admits that item's.

    Raises:
        UsageError: The task does not match the build: an item it lacks, or a question other
            than the request's prompt shows (the spec has changed since the build).
    """
    grammar, questions, choices = _pinned(task, request, build)
    return grammar.json_schema_for(questions, choices)


def _pinned(
    task: Task, request: BuiltRequest, build: Path
) -> tuple[AnswerGrammar, list[str], list[dict[str, list[str]]] | None]:
    """The request's grammar, its questions (Auto-Demo; checked against its prompt) and its
    items' own choices."""
    from promptc import markers
    from promptc.grammar.answer import build_grammar, item_choices
    from promptc.parse.shape import items_by_id

    kind = request.kind or task.strategy.kind
    grammar = build_grammar(task, len(request.item_ids), kind)
    if not kind.repeats_questions:
        return grammar, [], item_choices(task, request.item_ids)
    by_id = items_by_id(task)
    # The request's line in the build given (which may have moved since it was read).
    where = Location(str(build / Path(request.location.file).name), request.line)
    hint = "rebuild: the spec has changed since the build, or pass its spec with --spec"
    missing = [i for i in request.item_ids if i not in by_id]
    if missing:
        raise UsageError(
            f"request {request.id} names item(s) the spec does not have: "
            + ", ".join(missing[:5])
            + (" …" if len(missing) > 5 else ""),
            location=where,
            hint=hint,
            code="stale-build",
        )
    questions = [markers.question_text(task.inputs, by_id[i].inputs) for i in request.item_ids]
    shown = "\n".join(str(m.get("content")) for m in request.messages)
    shown_as = markers.shown_markers(task.inputs, task.markers)
    for i, item_id in enumerate(request.item_ids, 1):
        # The grammar must make the model repeat what the prompt shows, not what the spec
        # says now (as a batch shows it, in the spec's markers: Q[i]: or Premise[i]: …).
        if markers.question_block(task.inputs, by_id[item_id].inputs, i, task.markers) not in shown:
            raise UsageError(
                f"request {request.id}: the question of item {item_id} in the spec is not the "
                f"one its prompt shows as {markers.question_marker(i, shown_as)}",
                location=where,
                hint=hint,
                code="stale-build",
            )
    return grammar, questions, item_choices(task, request.item_ids)


def cache_key(base_url: str, body: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of the endpoint and the body: what decides the answer.

    The API key is not part of it (it is in no body), so a key rotation keeps the cache.
    """
    endpoint = base_url.rstrip("/") + "/chat/completions"
    return hashlib.sha256(canonical_json({"body": body, "url": endpoint}).encode()).hexdigest()
