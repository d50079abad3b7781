"""A stage of the build printed instead of written (``promptc build --emit ir|batches|requests``).

``ir`` is the compiled task as indented JSON (:func:`ir_json`); ``requests`` and ``batches``
are the lines of ``requests.jsonl`` and ``batches.jsonl`` exactly as a build writes them,
made one request at a time (:func:`iter_lines`), so that a million requests print without
being held.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import fields, is_dataclass
from decimal import Decimal

from promptc import ir
from promptc.build.batches import BATCHES_FILE
from promptc.build.files import json_default
from promptc.build.produce import Producer
from promptc.build.requests import REQUESTS_FILE
from promptc.build.targets import NAMES, find_target, grammar_form
from promptc.errors import Location, UsageError


def iter_lines(
    task: ir.Task,
    file: str = REQUESTS_FILE,
    *,
    target: str = "chat",
    vllm_grammar: str = "gbnf",
) -> Iterator[str]:
    """The lines of ``requests.jsonl`` or ``batches.jsonl`` (each with its ``\\n``), as
    :func:`promptc.build.build` writes them, one request at a time.

    Raises:
        UsageError: An unknown target or file name.
        PromptcError: A stage failed.
    """
    if target not in NAMES or file not in (REQUESTS_FILE, BATCHES_FILE):
        raise UsageError(
            f"cannot emit {file!r} for target {target!r}; expected {REQUESTS_FILE} or "
            f"{BATCHES_FILE} and " + " or ".join(map(repr, NAMES)),
            code="unknown-target",
        )
    chosen = find_target(target)
    producer = Producer(task, chosen, grammar_form(vllm_grammar))
    for r in producer.requests():
        out = producer.outgoing(r)
        if file == BATCHES_FILE:
            yield out.batch.text() + "\n"
        else:
            yield chosen.line(out.request, out.constraint) + "\n"


def to_data(value: object) -> object:
    """A deterministic JSON-ready form of IR values: dataclasses become objects with a
    ``"node"`` key naming their class, in field order; mappings are sorted by key."""
    if is_dataclass(value) and not isinstance(value, type):
        if isinstance(value, Location):
            return str(value)
        out: dict[str, object] = {"node": type(value).__name__.rstrip("_")}
        for f in fields(value):
            out[f.name] = to_data(getattr(value, f.name))
        return out
    if isinstance(value, Mapping):
        return {str(k): to_data(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [to_data(v) for v in value]  # lists, tuples, and the items of a data file
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def ir_json(task: ir.Task) -> str:
    """The IR of a task as indented JSON (``promptc build --emit ir``)."""
    return json.dumps(to_data(task), ensure_ascii=False, indent=2, default=json_default) + "\n"
