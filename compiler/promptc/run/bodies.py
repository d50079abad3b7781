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
from urllib.parse import urlparse

from promptc import markers
from promptc.build import BuiltRequest, grammar_text, read_task
from promptc.errors import Location, UsageError
from promptc.grammar.answer import build_grammar, item_choices
from promptc.parse.shape import items_by_id
from promptc.run.repair import repair_grammar
from promptc.text import canonical_json

if TYPE_CHECKING:
    from promptc.grammar.answer import AnswerGrammar
    from promptc.ir import Task


GrammarMode = Literal["auto", "gbnf", "json_schema", "none"]


GRAMMAR_MODES: tuple[GrammarMode, ...] = ("auto", "gbnf", "json_schema", "none")


#: A grammar mode a request is sent in (``auto`` resolved).
SendMode = Literal["gbnf", "json_schema", "none"]


ServerKind = Literal["llama-cpp-python", "llama.cpp", "other"]


# --------------------------------------------------------------------------------------------
# Request bodies and their cache keys
# --------------------------------------------------------------------------------------------


def request_body(
    request: BuiltRequest,
    build: Path,
    mode: SendMode,
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
    kind = request.kind or task.strategy.kind
    grammar = build_grammar(task, len(request.item_ids), kind)
    if not kind.repeats_questions:
        return grammar, [], item_choices(task, request.item_ids)
    by_id = items_by_id(task)
    # The request's line in the build given (which may have moved since it was read).
    where = Location(str(build / Path(request.location.file).name), request.line)
    hint = "rebuild: the spec has changed since the build"
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


#: Hosts whose chat API takes ``max_completion_tokens`` (its o-series models refuse
#: ``max_tokens``); every other server gets ``max_tokens``, which they all know.
COMPLETION_TOKENS_HOSTS = ("api.openai.com",)


def token_field(option: str, task: Task, url: str) -> str:
    """The field that carries ``max_tokens``: the option's, else the spec's
    ``model.max_tokens_field``, else ``max_completion_tokens`` for the hosts of
    :data:`COMPLETION_TOKENS_HOSTS` and ``max_tokens`` elsewhere."""
    if option != "auto":
        return option
    if task.model.max_tokens_field:
        return task.model.max_tokens_field
    host = urlparse(url).hostname or ""
    return "max_completion_tokens" if host in COMPLETION_TOKENS_HOSTS else "max_tokens"


class Bodies:
    """What a run sends for each request — the body in the run's grammar mode — and the cache
    keys under which it counts as asked.

    Until the grammar mode is resolved (``auto`` and ``json_schema`` ask the engine which form
    it takes), a request has a body in each mode it may be sent in, and an answer to any of
    them counts.

    Args:
        build: The build folder.
        task: The build's task.
        mode: The run's grammar mode.
        model: The model name to send instead of the build's, if any.
        field: The field that carries ``max_tokens`` (:func:`token_field`).
        scope: The engine's cache scope (:attr:`promptc.run.engine.Engine.cache_scope`).
    """

    def __init__(
        self, build: Path, task: Task, mode: GrammarMode, model: str | None, field: str, scope: str
    ) -> None:
        self.build = build
        self.task = task
        self.mode = mode
        self.model = model
        self.field = field
        self.scope = scope
        #: The grammar mode and the engine's form, once resolved.
        self.resolved: tuple[SendMode, ServerKind] | None = None
        #: Requests whose grammar is made for their item count (repair requests): the build
        #: holds none for them.
        self.made: set[str] = set()

    def modes(self) -> list[tuple[SendMode, ServerKind]]:
        """The modes (and engine forms) a request may be sent in."""
        if self.resolved is not None:
            return [self.resolved]
        if self.mode == "auto":
            return [("gbnf", "other"), ("none", "other")]
        if self.mode == "json_schema":
            return [("json_schema", "other"), ("json_schema", "llama-cpp-python")]
        return [(self.mode, "other")]

    def body(self, request: BuiltRequest, mode: SendMode, server: ServerKind) -> dict[str, Any]:
        """The body of ``request`` in ``mode`` for an engine of form ``server``."""
        files = None
        if request.id in self.made and mode in ("gbnf", "json_schema"):
            suffix = ".gbnf" if mode == "gbnf" else ".schema.json"
            files = {suffix: repair_grammar(self.task, request, suffix)}
        body = request_body(
            request,
            self.build,
            mode,
            server,
            self.model,
            self.task,
            files,
        )
        if self.field == "max_completion_tokens" and "max_tokens" in body:
            body["max_completion_tokens"] = body.pop("max_tokens")
        return body

    def keys(self, request: BuiltRequest) -> list[str]:
        """The cache keys of every body this run may send for ``request``."""
        out: list[str] = []
        for mode, server in self.modes():
            try:
                out.append(cache_key(self.scope, self.body(request, mode, server)))
            except UsageError:
                if self.mode != "auto":
                    raise  # auto falls back to no grammar when a build has none
        return out
