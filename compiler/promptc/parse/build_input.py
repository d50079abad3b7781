"""What parsing reads about a build: its task and the shape of each request, from a build
folder (``requests.jsonl`` read by :func:`promptc.build.read_requests`, beside its writer) or
from a spec compiled in memory.
"""

from __future__ import annotations

import json
import os
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
    from promptc.parse.scan import scan_markers

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


def load_build(source: str | Path, spec: str | os.PathLike[str] | None = None) -> Build:
    """The task and requests of a build directory or of a spec file.

    A build directory is read on its own: ``task.json`` and ``items.jsonl`` (written by
    ``promptc build`` and checked against the manifest's hashes) give the task, and
    ``requests.jsonl`` the request shapes — no spec is needed. A build made by an older promptc,
    without ``task.json``, falls back to the spec its manifest names. A spec file is compiled
    and rendered in memory.

    Args:
        source: A build directory or a spec file.
        spec: With a build directory: a spec that must compile to this very build (checked by
            :func:`check_spec`); it is refused, naming what differs, when it does not.

    Raises:
        PromptcError: The build or spec cannot be read (a :class:`UsageError` for a missing
            file or a spec that does not match, the spec's own errors otherwise).
    """
    path = Path(source)
    if path.is_dir():
        manifest = read_manifest(path)
        if spec is not None:
            check_spec(path, manifest, Path(spec))
        from promptc.task_file import TASK_FILE

        if (path / TASK_FILE).is_file():
            check_hashes(path, manifest)
            from promptc.task_file import read_task

            task = read_task(path)
        else:
            spec_path = Path(spec) if spec is not None else _manifest_spec_path(path, manifest)
            task = _with_build_data(_compile(spec_path), manifest)
        return Build(task, _read_requests(path, task, manifest), str(path))
    if not path.is_file():
        raise UsageError(f"no such build directory or spec file: {str(path)!r}", code="not-found")
    task = _compile(path)
    return Build(task, _spec_requests(task), str(path))


def read_manifest(path: Path) -> dict[str, Any]:
    """A build folder's ``manifest.json``.

    Raises:
        UsageError: The folder has no manifest or requests (``not-a-build``), or the manifest
            is not a JSON object (``bad-manifest``).
    """
    from promptc.build import MANIFEST_FILE, REQUESTS_FILE, request_paths

    manifest_path = path / MANIFEST_FILE
    requests_path = path / REQUESTS_FILE
    for p in (manifest_path, requests_path):
        if not p.is_file() and not (p == requests_path and request_paths(path)):
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
    return manifest


def check_hashes(path: Path, manifest: Mapping[str, Any]) -> None:
    """Refuses a build whose task files were changed after building.

    Raises:
        UsageError: ``task.json`` or ``items.jsonl`` does not have the manifest's sha256
            (``build-modified``).
    """
    import hashlib

    from promptc.task_file import ITEMS_FILE, TASK_FILE

    listed = manifest.get("files")
    listed = listed if isinstance(listed, Mapping) else {}
    for name in (TASK_FILE, ITEMS_FILE):
        want = listed.get(name)
        try:
            got = hashlib.sha256((path / name).read_bytes()).hexdigest()
        except OSError:
            got = None
        if want != got:
            raise UsageError(
                f"{name} does not match the sha256 that manifest.json lists for it"
                + (" (it is not listed)" if want is None else "")
                + "; the build folder was changed after promptc build",
                location=Location(str(path / name)),
                hint="rebuild it with promptc build SPEC -o DIR",
                code="build-modified",
            )


def check_spec(path: Path, manifest: Mapping[str, Any], spec: Path) -> None:
    """Refuses a spec that does not compile to the build in ``path``, naming what differs.

    The spec is compiled and built in memory (:func:`promptc.build.plan`, with the build's own
    target) and its manifest compared with the build's: the strategy, the model parameters,
    the items, each request (its items and prompt) and each file's hash.

    Raises:
        UsageError: ``spec-mismatch``, naming each difference.
        PromptcError: The spec does not compile.
    """
    from promptc.build import assemble

    target = manifest.get("target", "chat")
    planned = assemble(
        _compile(spec),
        target=target if target in ("chat", "openai-batch", "vllm-batch") else "chat",
        # A vllm-batch build's bodies carry GBNF or JSON Schema: compare like with like.
        vllm_grammar="json_schema" if manifest.get("structured_outputs") == "json" else "gbnf",
    )
    other = planned.manifest
    diffs: list[str] = []
    for key in ("strategy", "model", "counts"):
        if manifest.get(key) != other.get(key):
            diffs.append(
                f"{key}: the build has {_short(manifest.get(key))}, "
                f"the spec gives {_short(other.get(key))}"
            )
    ours = {r.get("id"): r for r in manifest.get("requests") or [] if isinstance(r, Mapping)}
    planned_requests: Any = other.get("requests") or []
    theirs = {r["id"]: r for r in planned_requests if isinstance(r, Mapping)}
    changed = [
        str(i) for i in sorted(set(ours) | set(theirs), key=str) if ours.get(i) != theirs.get(i)
    ]
    if changed:
        diffs.append(
            f"{len(changed)} request(s) differ (items, prompt or grammar): "
            + ", ".join(changed[:5])
            + (" …" if len(changed) > 5 else "")
        )
    files_a = manifest.get("files") if isinstance(manifest.get("files"), Mapping) else {}
    files_b = other.get("files") if isinstance(other.get("files"), Mapping) else {}
    assert isinstance(files_a, Mapping) and isinstance(files_b, Mapping)
    gram_a, gram_b = manifest.get("grammar"), other.get("grammar")
    if isinstance(gram_a, Mapping) and isinstance(gram_b, Mapping):
        files_a = {**files_a, **(gram_a.get("files") or {})}
        files_b = {**files_b, **(gram_b.get("files") or {})}
    names = sorted(n for n in set(files_a) | set(files_b) if files_a.get(n) != files_b.get(n))
    if names:
        diffs.append("files that differ: " + ", ".join(names))
    if diffs:
        raise UsageError(
            f"the spec {str(spec)!r} does not compile to the build {str(path)!r}: "
            + "; ".join(diffs),
            location=Location(str(spec)),
            hint="leave out --spec (the build folder holds all it needs), or rebuild",
            code="spec-mismatch",
        )


def _short(value: object) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return text if len(text) <= 120 else text[:119] + "…"


def _spec_requests(task: Task) -> dict[str, RequestShape]:
    """The requests a build of this spec would write, made in memory."""
    from promptc.render.renderer import render
    from promptc.select.methods import select

    out: dict[str, RequestShape] = {}
    for r in render(task, select(task)):
        shape = request_shape(task, r)
        out[shape.id] = shape
    return out
