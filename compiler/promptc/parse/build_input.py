"""What parsing reads about a build: its task and the shape of each request, from a build
folder (read by :mod:`promptc.build`'s readers, beside their writers) or from a spec compiled
in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptc.build import iter_requests, prompt_hash, read_requests, read_task
from promptc.errors import PromptcError, PromptcErrors, UsageError
from promptc.ir import Task
from promptc.parse.shape import RequestShape, items_by_id, request_shape


@dataclass(frozen=True)
class Build:
    """What parsing needs from a build or a spec: the task and its requests, by id."""

    task: Task
    requests: Mapping[str, RequestShape]
    source: str
    #: The prompt hash of each request (``batches.jsonl``'s ``prompt_sha256``): an answer
    #: recorded with another one was produced for another prompt, and is not credited.
    prompts: Mapping[str, str] = field(default_factory=dict)


def _read_requests(build_dir: Path, task: Task, prompts: dict[str, str]) -> dict[str, RequestShape]:
    """Request shapes of a build's ``requests.jsonl`` (read by :func:`promptc.build.read_requests`);
    each request's prompt hash goes to ``prompts``.

    Raises:
        PromptcErrors: Every malformed line, at its file:line:col.
    """
    requests: dict[str, RequestShape] = {}
    errors: list[PromptcError] = []
    by_id = items_by_id(task)
    for r in read_requests(build_dir, errors=errors):
        prompts[r.id] = prompt_hash(r.messages)
        # An empty list of items is refused as none (request_shape says what is expected).
        line: dict[str, Any] = {
            "id": r.id,
            "kind": r.kind,
            "item_ids": r.item_ids or None,
            "target_item": r.target_item,
        }
        unknown = [i for i in r.item_ids if i not in by_id]
        if unknown:  # results for an item the task lacks would be invented ones
            errors.append(
                UsageError(
                    f"request {r.id} names item {unknown[0]!r}, which items.jsonl does not hold",
                    location=r.location,
                    hint="rebuild it with promptc build SPEC -o DIR",
                    code="unknown-item",
                )
            )
            continue
        try:
            shape = request_shape(task, line)
        except PromptcError as e:
            errors.append(UsageError(e.message, location=r.location, code=e.code))
            continue
        requests[shape.id] = shape
    if errors:
        raise PromptcErrors(errors)
    return requests


def load_build(source: str | Path) -> Build:
    """The task and requests of a build directory or of a spec file.

    A build directory is read on its own: ``task.json`` and ``items.jsonl`` (checked against
    the manifest's hashes) give the task, and ``requests.jsonl`` the request shapes — no spec
    is needed. A spec file is compiled and rendered in memory.

    Raises:
        PromptcError: The build or spec cannot be read (a :class:`UsageError` for a missing
            file or a build of another format, the spec's own errors otherwise).
    """
    path = Path(source)
    if path.is_dir():
        task = read_task(path)
        prompts: dict[str, str] = {}
        return Build(task, _read_requests(path, task, prompts), str(path), prompts)
    if not path.is_file():
        raise UsageError(f"no such build directory or spec file: {str(path)!r}", code="not-found")
    # Imported here: a build folder needs no spec compiled, and the front end's import is
    # about 30 ms of promptc parse's.
    from promptc.spec.lower import compile_spec

    task = compile_spec(path)
    made: dict[str, str] = {}
    return Build(task, _spec_requests(task, made), str(path), made)


def _spec_requests(task: Task, prompts: dict[str, str]) -> dict[str, RequestShape]:
    """The requests a build of this spec would write, made in memory (their prompt hashes
    to ``prompts``)."""
    out: dict[str, RequestShape] = {}
    for r in iter_requests(task):
        shape = request_shape(task, r)
        out[shape.id] = shape
        prompts[shape.id] = prompt_hash(
            [{"role": m.role, "content": m.content} for m in r.messages]
        )
    return out
