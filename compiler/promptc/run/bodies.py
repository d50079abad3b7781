"""Request bodies for the API from a build's requests, their cache keys, and JSON answers read back.

What is sent is a function of the build alone (plus the grammar mode and the model name), so
that the cache key of a body names exactly what was asked.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

from promptc import markers
from promptc.build import (
    BuildGrammars,
    BuiltRequest,
    ConstraintCache,
    constraint,
    grammar_text,
    prompt_hash,
    read_task,
)
from promptc.build.targets import strict_schema
from promptc.errors import Location, UsageError
from promptc.parse.shape import items_by_id
from promptc.render.output_budget import fit_params
from promptc.text import canonical_json

if TYPE_CHECKING:
    from promptc.ir import Item, Task
    from promptc.run.engine import Engine
    from promptc.run.options import RunOptions


GrammarMode = Literal["auto", "gbnf", "json_schema", "none"]


GRAMMAR_MODES: tuple[GrammarMode, ...] = ("auto", "gbnf", "json_schema", "none")


def grammar_mode(name: str) -> GrammarMode:
    """A grammar mode as ``--grammar`` spells it (``json-schema``), as the code spells it
    (``json_schema``).

    Raises:
        UsageError: ``bad-grammar-mode``: not one of :data:`GRAMMAR_MODES`.
    """
    mode = name.replace("-", "_")
    if mode not in GRAMMAR_MODES:
        raise UsageError(
            f"unknown grammar mode {name!r}; expected auto, gbnf, json-schema or none",
            code="bad-grammar-mode",
        )
    return mode


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
    made: bool = False,
    cache: ConstraintCache | None = None,
    files: BuildGrammars | None = None,
) -> dict[str, Any]:
    """The JSON body sent to ``POST {base_url}/chat/completions`` for one request.

    Its grammar is the build's file for the request (:func:`promptc.build.grammar_text`: its
    own, where each item admits its own options, else the shared one of its size), except
    that an Auto-Demo request gets its own grammar, in which each ``Q[i]:`` must repeat item
    i's question exactly (:func:`promptc.build.constraint`): the build's ``.gbnf``, shared by
    every request of that size, lets a question be any line, and a small model constrained by
    it writes questions of its own, which the parser then rightly calls ``misaligned``. That
    needs the build's task: ``task``, else the build folder's (:func:`promptc.build.read_task`).

    A request the build does not hold (``made``: a repair request) gets the grammar of its
    own items, made from the task, the same way. ``cache`` keeps what is the same for every
    request of the build (:class:`promptc.build.ConstraintCache`), ``files`` the build's
    grammar files read and checked (:class:`promptc.build.BuildGrammars`).

    Raises:
        UsageError: A grammar file missing; a task that does not match the build
            (:func:`check_questions`).
    """
    body: dict[str, Any] = dict(request.params)
    if model is not None:
        body["model"] = model
    body["messages"] = [dict(m) for m in request.messages]
    if mode == "none":
        return body
    if request.kind.repeats_questions or made:
        task = task if task is not None else read_task(build)
        check_questions(task, request, build)
        items = request_items(task, request, build)
        grammar = constraint(task, request.kind, items, mode, cache).value
    else:
        suffix = ".gbnf" if mode == "gbnf" else ".schema.json"
        text = grammar_text(build, request, suffix, files)
        grammar = text if mode == "gbnf" else json.loads(text)
    if mode == "gbnf":
        body["grammar"] = grammar
    elif server == "llama-cpp-python":
        # Its server accepts only "text" and "json_object" (with a schema) as the type.
        body["response_format"] = {"type": "json_object", "schema": grammar}
    else:
        body["response_format"] = strict_schema(grammar)
    return body


def as_sent(task: Task, request: BuiltRequest, mode: GrammarMode | SendMode) -> BuiltRequest:
    """``request`` with the parameters it is sent with in ``mode``: the build's, but that its
    ``max_tokens`` is fitted to the JSON form when the model is made to answer in it and the
    spec gives the budget per item (:func:`promptc.render.output_budget.fit_params`; a chat
    build fits it to the text form, which ``gbnf`` and ``none`` ask for)."""
    if mode != "json_schema" or task.model.max_tokens_per_item is None:
        return request
    by_id = items_by_id(task)
    items = [by_id[i] for i in request.item_ids if i in by_id]
    if len(items) != len(request.item_ids):
        return request  # a stale build: request_body says so where it matters
    params = fit_params(task, items, request.params, json_form=True)
    return request if params is request.params else dataclasses.replace(request, params=params)


def request_items(task: Task, request: BuiltRequest, build: Path) -> list[Item]:
    """The items of a request of the build ``build``, in its order, from ``task`` by id.

    Raises:
        UsageError: The task lacks one of them (the spec has changed since the build).
    """
    by_id = items_by_id(task)
    missing = [i for i in request.item_ids if i not in by_id]
    if missing:
        raise UsageError(
            f"request {request.id} names item(s) the spec does not have: "
            + ", ".join(missing[:5])
            + (" …" if len(missing) > 5 else ""),
            location=_line_of(request, build),
            hint=STALE_HINT,
            code="stale-build",
        )
    return [by_id[i] for i in request.item_ids]


def check_questions(task: Task, request: BuiltRequest, build: Path) -> None:
    """Checks that an Auto-Demo request's prompt shows its items' questions as ``task`` has
    them, so that a grammar pinning them asks the model to repeat what it was shown.

    Raises:
        UsageError: The task does not match the build: an item it lacks, or a question other
            than the request's prompt shows (the spec has changed since the build).
    """
    if not request.kind.repeats_questions:
        return
    items = request_items(task, request, build)
    shown = "\n".join(str(m.get("content")) for m in request.messages)
    shown_as = markers.shown_markers(task.inputs, task.markers)
    for i, (item_id, item) in enumerate(zip(request.item_ids, items, strict=True), 1):
        # The grammar must make the model repeat what the prompt shows, not what the spec
        # says now (as a batch shows it, in the spec's markers: Q[i]: or Premise[i]: …).
        if markers.question_block(task.inputs, item.inputs, i, task.markers) not in shown:
            raise UsageError(
                f"request {request.id}: the question of item {item_id} in the spec is not the "
                f"one its prompt shows as {markers.question_marker(i, shown_as)}",
                location=_line_of(request, build),
                hint=STALE_HINT,
                code="stale-build",
            )


STALE_HINT = "rebuild: the spec has changed since the build"


def _line_of(request: BuiltRequest, build: Path) -> Location:
    """The request's line in the build given (which may have moved since it was read)."""
    return Location(str(build / Path(request.location.file).name), request.line)


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
        options: The run's options: its grammar mode, the model name to send instead of the
            build's (else the engine's own, if any), the field that carries ``max_tokens``
            (:func:`token_field`).
        engine: What the run sends through: its name and cache scope
            (:attr:`promptc.run.engine.Engine.cache_scope`).
    """

    def __init__(self, build: Path, task: Task, options: RunOptions, engine: Engine) -> None:
        self.build = build
        self.task = task
        self.mode = options.grammar_mode
        self.model = options.model or engine.model
        self.field = token_field(options.max_tokens_field, task, engine.name)
        self.scope = engine.cache_scope
        self.answer_scope = engine.answer_scope
        #: The grammar mode and the engine's form, once resolved.
        self.resolved: tuple[SendMode, ServerKind] | None = None
        #: Requests whose grammar is made for their item count (repair requests): the build
        #: holds none for them.
        self.made: set[str] = set()
        self.constraints = ConstraintCache()
        self.grammar_files = BuildGrammars(build)

    def modes(self) -> list[tuple[SendMode, ServerKind]]:
        """The modes (and engine forms) a request may be sent in."""
        if self.resolved is not None:
            return [self.resolved]
        if self.mode == "auto":
            return [("gbnf", "other"), ("none", "other")]
        if self.mode == "json_schema":
            return [("json_schema", "other"), ("json_schema", "llama-cpp-python")]
        return [(self.mode, "other")]

    def params(self, request: BuiltRequest, mode: SendMode) -> Mapping[str, Any]:
        """The parameters sent with ``request`` in ``mode`` (:func:`as_sent`)."""
        return as_sent(self.task, request, mode).params

    def body(self, request: BuiltRequest, mode: SendMode, server: ServerKind) -> dict[str, Any]:
        """The body of ``request`` in ``mode`` for an engine of form ``server``."""
        made = request.id in self.made
        request = as_sent(self.task, request, mode)
        body = request_body(
            request,
            self.build,
            mode,
            server,
            self.model,
            self.task,
            made,
            self.constraints,
            self.grammar_files,
        )
        if self.field == "max_completion_tokens" and "max_tokens" in body:
            body["max_completion_tokens"] = body.pop("max_tokens")
        return body

    def answers(self, request: BuiltRequest, record: Mapping[str, Any]) -> bool:
        """Whether an answer recorded in ``outputs.jsonl`` is one to what this run would send
        for ``request``: to one of its bodies (``body_sha256``, :meth:`body_keys`: the same
        body, wherever the server that answered it was), or, recorded without that, under
        one of its cache keys (:meth:`keys`); or taken by ``promptc collect`` from the
        build's batch (no ``request_sha256``) for this very prompt (``prompt_sha256``) of
        the model the run sends."""
        if record.get("request_sha256") is None:
            return record.get("prompt_sha256") == prompt_hash(request.messages) and (
                self.model is None or self.model == request.params.get("model")
            )
        return self.answered_key(request, record) is not None

    def answered_key(self, request: BuiltRequest, record: Mapping[str, Any]) -> str | None:
        """The cache key, in this run, of the body of ``request`` that an answer recorded in
        ``outputs.jsonl`` by ``promptc run`` answers; ``None`` if it answers none of them."""
        keys = self.keys(request)
        body = record.get("body_sha256")
        if body is not None:
            found = self.body_keys(request)
            return keys[found.index(body)] if body in found else None
        key = record.get("request_sha256")
        return key if key in keys else None

    def keys(self, request: BuiltRequest, scope: str | None = None) -> list[str]:
        """The cache keys of every body this run may send for ``request`` (with another
        ``scope`` than the engine's cache scope, if given)."""
        out: list[str] = []
        for mode, server in self.modes():
            try:
                body = self.body(request, mode, server)
                out.append(cache_key(self.scope if scope is None else scope, body))
            except UsageError:
                if self.mode != "auto":
                    raise  # auto falls back to no grammar when a build has none
        return out

    def body_keys(self, request: BuiltRequest) -> list[str]:
        """The hashes of every body this run may send for ``request``, in the engine's
        answer scope (``outputs.jsonl``'s ``body_sha256``)."""
        return self.keys(request, self.answer_scope)
