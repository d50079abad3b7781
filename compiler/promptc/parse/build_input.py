"""What parsing reads about a build: its task and the shape of each request, from a build
folder (read by :mod:`promptc.build`'s readers, beside their writers) or from a spec compiled
in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptc import markers
from promptc.build import iter_requests, read_requests, read_task
from promptc.errors import PromptcError, PromptcErrors, UsageError
from promptc.ir import Task
from promptc.parse.scan import scan_markers
from promptc.parse.shape import RequestShape, items_by_id, request_shape


@dataclass(frozen=True)
class Build:
    """What parsing needs from a build or a spec: the task and its requests, by id."""

    task: Task
    requests: Mapping[str, RequestShape]
    source: str


def _read_requests(build_dir: Path, task: Task) -> dict[str, RequestShape]:
    """Request shapes of a build's ``requests.jsonl`` (read by :func:`promptc.build.read_requests`).

    Raises:
        PromptcErrors: Every malformed line, at its file:line:col.
    """
    requests: dict[str, RequestShape] = {}
    errors: list[PromptcError] = []
    for r in read_requests(build_dir, errors=errors):
        record: dict[str, Any] = {
            "id": r.id,
            "kind": r.kind or task.strategy.kind,
            "item_ids": list(r.item_ids) if r.item_ids else None,
            "messages": [dict(m) for m in r.messages],
            "target_item": r.target_item,
        }
        if record["kind"].repeats_questions:
            record["questions"] = _questions(task, record)
        try:
            shape = request_shape(task, record)
        except PromptcError as e:
            errors.append(UsageError(e.message, location=r.location, code=e.code))
            continue
        requests[shape.id] = shape
    if errors:
        raise PromptcErrors(errors)
    return requests


def _questions(task: Task, request: Mapping[str, Any]) -> list[str]:
    """Each item's question: from the task's items, else as the request's prompt shows it."""
    by_id = items_by_id(task)
    ids = [str(i) for i in request.get("item_ids") or []]
    shown = _questions_in_messages(request.get("messages"), task)
    out = []
    for k, i in enumerate(ids, 1):
        it = by_id.get(i)
        if it is not None:
            try:
                out.append(markers.question_text(task.inputs, it.inputs))
                continue
            except KeyError:
                pass
        out.append(shown.get(k, ""))
    return out


def _questions_in_messages(messages: object, task: Task) -> dict[int, str]:
    """The questions the last user message (the prompt of a built request) shows after the
    task's question markers (``Q[i]:``; with indexed inputs ``Premise[i]:`` and the later
    inputs' lines, read back as :func:`promptc.markers.question_text` writes them)."""
    if not isinstance(messages, list):
        return {}
    users = [m for m in messages if isinstance(m, Mapping) and m.get("role") == "user"]
    if not users or not isinstance(users[-1].get("content"), str):
        return {}
    text: str = users[-1]["content"]
    shown = markers.shown_markers(task.inputs, task.markers)
    prefixes = markers.question_prefixes(task.inputs, task.markers)
    marks = scan_markers(text, shown)
    out: dict[int, str] = {}
    for k, m in enumerate(marks):
        if m.kind != markers.QUESTION_PREFIX:
            continue
        end = marks[k + 1].cut if k + 1 < len(marks) else len(text)
        body = text[m.end : end].strip()
        out[m.index] = markers.read_question(body.split("\n\n", 1)[0].strip(), prefixes)[0]
    return out


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
        return Build(task, _read_requests(path, task), str(path))
    if not path.is_file():
        raise UsageError(f"no such build directory or spec file: {str(path)!r}", code="not-found")
    # Imported here: a build folder needs no spec compiled, and the front end's import is
    # about 30 ms of promptc parse's.
    from promptc.spec.lower import compile_spec

    task = compile_spec(path)
    return Build(task, _spec_requests(task), str(path))


def _spec_requests(task: Task) -> dict[str, RequestShape]:
    """The requests a build of this spec would write, made in memory."""
    out: dict[str, RequestShape] = {}
    for r in iter_requests(task):
        shape = request_shape(task, r)
        out[shape.id] = shape
    return out
