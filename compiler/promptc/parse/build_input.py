"""What parsing reads about a build: its task and the shape of each request, from a build
folder (``requests.jsonl`` read by :func:`promptc.build.read_requests`, beside its writer) or
from a spec compiled in memory.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptc import markers
from promptc.errors import (
    Location,
    PromptcError,
    PromptcErrors,
    UsageError,
)
from promptc.ir import Task
from promptc.parse.shape import RequestShape, items_by_id, request_shape


@dataclass(frozen=True)
class Build:
    """What parsing needs from a build or a spec: the task and its requests, by id."""

    task: Task
    requests: Mapping[str, RequestShape]
    source: str


# --------------------------------------------------------------------------------------------
# Reading the build or spec
# --------------------------------------------------------------------------------------------


def _compile(spec_path: Path) -> Task:
    from promptc.spec.lower import compile_spec

    return compile_spec(spec_path)


def _with_build_data(task: Task, manifest: Mapping[str, Any]) -> Task:
    """The task with the data the build was made from: a build made with ``--data PATH``
    records that file (relative to the spec's folder) in its manifest, and its items, not the
    spec's own, are the ones its answers are about."""
    data = manifest.get("data")
    if not isinstance(data, Mapping) or task.data is None:
        return task
    rel, sha = data.get("path"), data.get("sha256")
    if not isinstance(rel, str) or sha == task.data.sha256:
        return task
    target = (Path(task.spec_dir) / rel).resolve()
    if not target.is_file():
        return task
    from promptc.spec.lower import compile_spec

    return compile_spec(task.spec.path, overrides={("data", "path"): str(target)})


def _manifest_spec_path(build_dir: Path, manifest: Mapping[str, Any]) -> Path:
    """The spec a build was made from: ``spec.path_from_build`` (relative to the build), else
    ``spec.path`` relative to the build's parent folder or the current one."""
    spec = manifest.get("spec")
    candidates: list[Path] = []
    if isinstance(spec, Mapping):
        from_build = spec.get("path_from_build")
        if isinstance(from_build, str) and from_build:
            candidates.append(build_dir / from_build)
        raw = spec.get("path")
        if isinstance(raw, str) and raw:
            p = Path(raw)
            candidates += [p] if p.is_absolute() else [build_dir.parent / p, Path.cwd() / p]
    if not candidates:
        raise UsageError(
            "manifest.json names no spec; expected a 'spec' entry with its path",
            location=Location(str(build_dir / "manifest.json")),
            hint="pass the spec file instead of the build directory",
            code="no-spec-in-manifest",
        )
    for c in candidates:
        if c.is_file():
            return c
    raise UsageError(
        "the spec named by manifest.json was not found (looked at "
        + ", ".join(repr(str(c)) for c in candidates)
        + ")",
        location=Location(str(build_dir / "manifest.json")),
        hint="pass the spec file instead of the build directory",
        code="spec-not-found",
    )


def _read_requests(
    build_dir: Path, task: Task, manifest: Mapping[str, Any]
) -> dict[str, RequestShape]:
    """Request shapes of a build's ``requests.jsonl`` (read by :func:`promptc.build.read_requests`).

    Raises:
        PromptcErrors: Every malformed line, at its file:line:col.
    """
    from promptc.build import read_requests

    requests: dict[str, RequestShape] = {}
    errors: list[PromptcError] = []
    for r in read_requests(build_dir, manifest=manifest, errors=errors):
        record: dict[str, Any] = {
            "id": r.id,
            "kind": r.kind or task.strategy.kind,
            "item_ids": list(r.item_ids) if r.item_ids else None,
            "messages": [dict(m) for m in r.messages],
            "target_item": r.target_item,
        }
        if record["kind"] == "auto-demo":
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
    shown = _questions_in_messages(request.get("messages"))
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


def _questions_in_messages(messages: object) -> dict[int, str]:
    """``Q[i]:`` texts of the last user message (the prompt of a built request)."""
    from promptc.parse.scan import scan_markers as _scan

    if not isinstance(messages, list):
        return {}
    users = [m for m in messages if isinstance(m, Mapping) and m.get("role") == "user"]
    if not users or not isinstance(users[-1].get("content"), str):
        return {}
    text: str = users[-1]["content"]
    marks = _scan(text)
    out: dict[int, str] = {}
    for k, m in enumerate(marks):
        if m.kind != markers.QUESTION_PREFIX:
            continue
        end = marks[k + 1].cut if k + 1 < len(marks) else len(text)
        body = text[m.end : end].strip()
        out[m.index] = body.split("\n\n", 1)[0].strip()
    return out


def load_build(source: str | Path) -> Build:
    """The task and requests of a build directory (``requests.jsonl`` + the spec named by
    ``manifest.json``) or of a spec file (compiled and rendered in memory).

    Raises:
        PromptcError: The build or spec cannot be read (a :class:`UsageError` for a missing
            file, the spec's own errors otherwise).
    """
    from promptc.build import MANIFEST_FILE, REQUESTS_FILE

    path = Path(source)
    if path.is_dir():
        manifest_path = path / MANIFEST_FILE
        requests_path = path / REQUESTS_FILE
        for p in (manifest_path, requests_path):
            if not p.is_file():
                raise UsageError(
                    f"{p.name} not found in build directory {str(path)!r}",
                    location=Location(str(p)),
                    hint="run promptc build first, or pass the spec file",
                    code="not-a-build",
                )
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as e:  # ValueError: decoding, digits
            raise UsageError(
                f"cannot read manifest.json: {e}",
                location=Location(str(manifest_path)),
                code="bad-manifest",
            ) from None
        if not isinstance(manifest, dict):
            raise UsageError(
                "manifest.json is not a JSON object",
                location=Location(str(manifest_path)),
                code="bad-manifest",
            )
        task = _with_build_data(_compile(_manifest_spec_path(path, manifest)), manifest)
        return Build(task, _read_requests(path, task, manifest), str(path))
    if not path.is_file():
        raise UsageError(f"no such build directory or spec file: {str(path)!r}", code="not-found")
    task = _compile(path)
    return Build(task, _spec_requests(task), str(path))


def _spec_requests(task: Task) -> dict[str, RequestShape]:
    """The requests a build of this spec would write, made in memory."""
    from promptc.render.renderer import render
    from promptc.select.methods import select

    out: dict[str, RequestShape] = {}
    for r in render(task, select(task)):
        shape = request_shape(task, r)
        out[shape.id] = shape
    return out
