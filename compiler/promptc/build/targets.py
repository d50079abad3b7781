"""The build targets: one class each, in one table — how a request is written as a line of
``requests.jsonl``, how that line is read back, and how a result line of a batch is read.

================  ============================================================================
target            a line of ``requests.jsonl``
================  ============================================================================
``chat``          promptc's own: ``id``, ``item_ids``, ``kind``, ``messages``, ``params``,
                  ``grammar`` (the stem of its grammar files), ``target_item`` (retrieval)
``openai-batch``  the OpenAI Batch API's input: ``custom_id``, ``method``, ``url`` and a
                  chat completion ``body``; sharded at the Batch API's limits per file; with
                  ``--grammar json-schema`` each body carries its own strict JSON Schema as
                  ``response_format`` (OpenAI's structured outputs)
``vllm-batch``    the same, each body carrying its own grammar in vLLM's
                  ``structured_outputs`` (``vllm run_batch``): GBNF, or a JSON Schema
================  ============================================================================

What a line of a batch target has no room for (the items, the grammar stem, the target item)
is in ``batches.jsonl``, line for line. The results of a batch come back in the Batch API's
output form for every target (:meth:`Target.answer`), as ``promptc collect`` reads them.

Adding a target: a subclass below and its entry in :data:`TARGETS` (the CLI's ``--target``
choices are read from it), and its tests.
"""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from promptc.build.files import dumps
from promptc.errors import Location, UsageError
from promptc.strategies import Strategy

#: How a body carries its request's grammar: GBNF text, or a JSON Schema.
GrammarForm = Literal["gbnf", "json_schema"]
FORMS: tuple[GrammarForm, ...] = ("gbnf", "json_schema")
OPENAI_BATCH_URL = "/v1/chat/completions"


def strict_schema(schema: object) -> dict[str, object]:
    """The ``response_format`` of OpenAI's structured outputs for a JSON Schema (strict): what
    an ``openai-batch`` body carries and ``promptc run --grammar json-schema`` sends."""
    return {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema, "strict": True},
    }


@dataclass(frozen=True, slots=True)
class BuiltRequest:
    """One request of a build, as a line of ``requests.jsonl`` says it (with what
    ``batches.jsonl`` says of it where the line's form has no room).

    Attributes:
        id: The request id (``id``, or ``custom_id`` in a batch target's line).
        kind: The strategy.
        item_ids: The items answered, in prompt order.
        messages: The chat messages (``role``, ``content``).
        params: The sampling parameters (``params``, or the batch ``body`` without its
            messages and grammar).
        grammar: Stem of the request's grammar files, e.g. ``"answer"`` or ``"answer-4"``.
        location: ``requests.jsonl:line:1`` of the line.
        target_item: The item the request is *for* (``retrieval``: its batch is this item
            and its neighbours); ``None`` when the batch is for all its items.
        grammar_files: The request's own grammar files (``grammars/<id>.gbnf`` …) with their
            sha256, as its line of ``batches.jsonl`` lists them; empty when it has none.
    """

    id: str
    kind: Strategy
    item_ids: tuple[str, ...]
    messages: tuple[Mapping[str, Any], ...]
    params: Mapping[str, Any]
    grammar: str | None
    location: Location
    target_item: str | None = None
    grammar_files: Mapping[str, str] = field(default_factory=dict)

    @property
    def line(self) -> int:
        """The line of ``requests.jsonl`` the request was read from."""
        return self.location.line


@dataclass(frozen=True, slots=True)
class Constraint:
    """A request's own grammar, as a body carries it: GBNF text, or a JSON Schema."""

    form: GrammarForm
    value: str | Mapping[str, object]


class Target:
    """What one build target means to the writer and the readers of a build. Instances are
    singletons (the values of :data:`TARGETS`); ``str()`` is the name."""

    #: The name of ``--target`` and of the manifest's ``target``.
    name: ClassVar[str]
    #: The grammar forms a body can carry (``build --grammar``); empty when its bodies
    #: carry none.
    grammars: ClassVar[tuple[GrammarForm, ...]] = ()
    #: The form its bodies carry when ``build --grammar`` says none (``None``: no grammar).
    default_form: ClassVar[GrammarForm | None] = None
    #: The most lines and bytes one requests file may hold (past either, the requests go to
    #: shards ``requests-0001.jsonl`` …, each within both).
    max_lines: ClassVar[int] = sys.maxsize
    max_bytes: ClassVar[int] = sys.maxsize
    #: The body field that carries a request's ``max_tokens`` when the spec's
    #: ``model.max_tokens_field`` names none (a target whose lines are bodies sent as they
    #: are); requests read back always hold it as ``max_tokens``.
    default_token_field: ClassVar[str] = "max_tokens"
    #: The field of this build's bodies (:meth:`for_model`).
    token_field: str = "max_tokens"

    def for_model(self, max_tokens_field: str | None) -> Target:
        """The target writing the bodies of a spec whose ``model.max_tokens_field`` is
        ``max_tokens_field``."""
        field = max_tokens_field or self.default_token_field
        if field == self.token_field:
            return self
        out = copy.copy(self)
        out.token_field = field
        return out

    def line(self, request: BuiltRequest, constraint: Constraint | None) -> str:
        """The line of ``requests.jsonl`` of a request (without its line end): the one
        writer of request lines. A JSON Schema a body carries keeps its properties' order
        (:func:`promptc.build.files.dumps`), as ``promptc run --grammar json-schema`` sends
        it."""
        schema = None if constraint is None or isinstance(constraint.value, str) else constraint
        return dumps(self.record(request, constraint), schema.value if schema else None)

    def record(self, request: BuiltRequest, constraint: Constraint | None) -> dict[str, object]:
        """The line of ``requests.jsonl`` of a request, as data."""
        raise NotImplementedError

    def fields(self, line: Mapping[str, Any]) -> dict[str, Any]:
        """What a line of ``requests.jsonl`` says, by :class:`BuiltRequest` field name (raw
        JSON values, checked by the reader); what the line's form lacks is left out."""
        raise NotImplementedError

    def manifest(self, form: GrammarForm | None) -> dict[str, object]:
        """What the manifest records of the target's options."""
        return {}

    def form(self, manifest: Mapping[str, Any]) -> GrammarForm | None:
        """The grammar form the bodies of a build carry, from its manifest (``None``: none)."""
        return None

    def chosen_form(self, asked: str | None) -> GrammarForm | None:
        """The form the bodies of a build carry, from ``build --grammar`` (``None``: the
        target's default).

        Raises:
            UsageError: A form the target's bodies cannot carry (``bad-grammar-mode``).
        """
        if asked is None:
            return self.default_form
        form = grammar_form(asked.replace("-", "_"))
        if form not in self.grammars:
            carried = " or ".join(f.replace("_", "-") for f in self.grammars) or "none"
            raise UsageError(
                f"--target {self.name} bodies cannot carry a {asked} grammar; they carry "
                f"{carried} (promptc run --grammar chooses how a run sends it)",
                code="bad-grammar-mode",
            )
        return form

    def answer(self, line: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """The answer of a line of a batch's output (or error) file, as ``promptc run``
        records answers, or ``None`` and why there is none::

            {"id": "batch_req_…", "custom_id": "r0001", "error": null,
             "response": {"status_code": 200, "body": {<a chat completion>}}}
        """
        error = line.get("error")
        response = line.get("response")
        if error:
            if isinstance(error, Mapping) and isinstance(error.get("error"), Mapping):
                error = error["error"]  # vLLM's ErrorResponse: {"error": {"message", …}}
            if isinstance(error, Mapping):
                code = error.get("code") or error.get("type")
                return None, f"error {code}: {error.get('message')}"
            return None, f"error: {error}"
        if not isinstance(response, Mapping):
            return None, "no response"
        status = response.get("status_code")
        body = response.get("body")
        if status != 200 and status != "200":  # (a status written as text is the same)
            message = body.get("error", body) if isinstance(body, Mapping) else body
            if isinstance(message, Mapping):
                message = message.get("message")
            return None, f"HTTP {status}" + (f": {message}" if message else " with no message")
        try:
            choice = body["choices"][0]  # type: ignore[index]
            message = choice["message"]
            content = message["content"]
        except (KeyError, IndexError, TypeError):
            return None, "the response has no choices[0].message.content"
        content = message_text(content)
        if not content:
            refusal = message.get("refusal") if isinstance(message, Mapping) else None
            if isinstance(refusal, str) and refusal:
                return None, f"the model refused: {refusal}"
            return None, "the answer is empty"
        usage = body.get("usage") if isinstance(body, Mapping) else None
        return {
            "output": content,
            "finish_reason": finish_reason(choice.get("finish_reason")),
            "usage": usage if isinstance(usage, Mapping) else None,
            "batch_request_id": line.get("id"),
        }, ""

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<target {self.name}>"


class Chat(Target):
    name = "chat"

    def record(self, request: BuiltRequest, constraint: Constraint | None) -> dict[str, object]:
        record: dict[str, object] = {
            "id": request.id,
            "item_ids": list(request.item_ids),
            "kind": request.kind.name,
            "messages": list(request.messages),
            "params": dict(request.params),
            "grammar": request.grammar,
        }
        if request.target_item is not None:
            record["target_item"] = request.target_item
        return record

    def fields(self, line: Mapping[str, Any]) -> dict[str, Any]:
        keys = ("id", "messages", "params", "item_ids", "kind", "grammar", "target_item")
        return {k: line[k] for k in keys if k in line}


class OpenAIBatch(Target):
    name = "openai-batch"
    grammars: ClassVar[tuple[GrammarForm, ...]] = ("json_schema",)
    # Sent to api.openai.com as written, whose o-series models refuse max_tokens.
    default_token_field = "max_completion_tokens"
    # The Batch API's limits per input file: 50,000 requests and "200 MB", read as 200,000,000
    # bytes (the smaller reading: a shard of 200 MiB is 4.9% over the other).
    max_lines = 50_000
    max_bytes = 200_000_000
    #: The fields of a body that carry its grammar (not sampling parameters).
    constraint_fields: ClassVar[tuple[str, ...]] = ("response_format",)

    def body(self, request: BuiltRequest, constraint: Constraint | None) -> dict[str, object]:
        body: dict[str, object] = {**self._params(request), "messages": list(request.messages)}
        if constraint is not None and isinstance(constraint.value, Mapping):
            body["response_format"] = strict_schema(constraint.value)
        return body

    def manifest(self, form: GrammarForm | None) -> dict[str, object]:
        # Which constraint each body carries: what collect's repair build writes again.
        return {"response_format": "json_schema"} if form is not None else {}

    def form(self, manifest: Mapping[str, Any]) -> GrammarForm | None:
        return "json_schema" if manifest.get("response_format") == "json_schema" else None

    def record(self, request: BuiltRequest, constraint: Constraint | None) -> dict[str, object]:
        return {
            "custom_id": request.id,
            "method": "POST",
            "url": OPENAI_BATCH_URL,
            "body": self.body(request, constraint),
        }

    def fields(self, line: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "custom_id" in line:
            out["id"] = line["custom_id"]
        body = line.get("body")
        if isinstance(body, Mapping):
            out["messages"] = body.get("messages")
            skip = ("messages", *self.constraint_fields)
            params = {k: v for k, v in body.items() if k not in skip}
            if "max_tokens" not in params and "max_completion_tokens" in params:
                params["max_tokens"] = params.pop("max_completion_tokens")
            out["params"] = params
        return out

    def _params(self, request: BuiltRequest) -> dict[str, object]:
        """A request's parameters with its ``max_tokens`` under :attr:`token_field`."""
        params = dict(request.params)
        field = self.token_field
        if field != "max_tokens" and "max_tokens" in params and field not in params:
            params[field] = params.pop("max_tokens")
        return params


class VllmBatch(OpenAIBatch):
    name = "vllm-batch"
    default_token_field = "max_tokens"  # what vLLM's run_batch has always taken
    grammars = FORMS
    default_form = "gbnf"
    # promptc run sends a request's grammar its own way, not in vLLM's field.
    constraint_fields = ("structured_outputs",)
    #: The ``structured_outputs`` key of each form (vLLM's ``StructuredOutputsParams``).
    FIELDS: ClassVar[dict[GrammarForm, str]] = {"gbnf": "grammar", "json_schema": "json"}

    def body(self, request: BuiltRequest, constraint: Constraint | None) -> dict[str, object]:
        body: dict[str, object] = {**self._params(request), "messages": list(request.messages)}
        if constraint is not None:
            body["structured_outputs"] = {self.FIELDS[constraint.form]: constraint.value}
        return body

    def manifest(self, form: GrammarForm | None) -> dict[str, object]:
        # Which constraint each body carries: what collect's repair build writes again.
        return {"structured_outputs": self.FIELDS[form or "gbnf"]}

    def form(self, manifest: Mapping[str, Any]) -> GrammarForm | None:
        return "json_schema" if manifest.get("structured_outputs") == "json" else "gbnf"


CHAT = Chat()
OPENAI_BATCH = OpenAIBatch()
VLLM_BATCH = VllmBatch()

#: Every target by name, in the order promptc lists them (``--target``).
TARGETS: dict[str, Target] = {t.name: t for t in (CHAT, OPENAI_BATCH, VLLM_BATCH)}
#: The names, in that order.
NAMES: tuple[str, ...] = tuple(TARGETS)


def message_text(content: object) -> str | None:
    """The text of a chat message's ``content`` in each form the OpenAI API documents: a
    string, or a list of parts whose ``text`` parts are joined (``None`` for anything else)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            p.get("text")
            for p in content
            if isinstance(p, Mapping) and p.get("type", "text") == "text"
        ]
        return "".join(t for t in texts if isinstance(t, str))
    return None


#: A ``finish_reason`` as the APIs write it (``stop``, ``length``, ``content_filter``,
#: ``tool_calls``, ``end_turn``): a word. Anything else a server sends there (a sentence, an
#: echoed key, megabytes) is not kept.
_FINISH_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,39}")


def finish_reason(value: object) -> str | None:
    """A reply's ``finish_reason`` as promptc records it: the word the server gave, or
    ``None`` when it gave none, or something that is not one."""
    return value if isinstance(value, str) and _FINISH_WORD.fullmatch(value) else None


def find_target(name: str) -> Target:
    """The target of a name.

    Raises:
        UsageError: ``unknown-target``.
    """
    found = TARGETS.get(name)
    if found is None:
        raise UsageError(
            f"unknown build target {name!r}; expected " + " or ".join(map(repr, NAMES)),
            code="unknown-target",
        )
    return found


def grammar_form(form: str) -> GrammarForm:
    """A grammar form by name.

    Raises:
        UsageError: ``bad-grammar-mode``.
    """
    for known in FORMS:
        if form == known:
            return known
    raise UsageError(
        f"unknown vllm-batch grammar {form!r}; expected gbnf or json-schema",
        code="bad-grammar-mode",
    )
