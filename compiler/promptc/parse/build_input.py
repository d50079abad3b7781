"""A build read back: its task and requests, from a build folder (read by
:mod:`promptc.build`'s readers, beside their writers) or from a spec compiled in memory.

:class:`Build`, :func:`open_build` and :func:`parse_output` are names of the public API
(:data:`promptc.__all__`, documented in ``docs/api.md``). They live here, in the parse stage,
rather than in :mod:`promptc.api`, so that ``promptc parse`` — built on them — loads the
parser and the build readers only: :mod:`promptc.api` brings the whole compiler (the spec
front end, rendering, run, eval, plan), about 190 ms of imports measured with -X importtime,
against about 900 ms for the whole of ``promptc parse`` over 2,000 outputs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from promptc.build import each_request, is_build_file, prompt_hash, read_manifest, read_task
from promptc.build.files import read_lines
from promptc.build.make import summary
from promptc.build.produce import Producer
from promptc.build.targets import CHAT, BuiltRequest
from promptc.errors import Location, PromptcError, PromptcErrors, UsageError
from promptc.ir import Task
from promptc.parse.output import parse_output as parse_request
from promptc.parse.results import ItemResult, Mode
from promptc.parse.shape import RequestShape, items_by_id, request_shape


@dataclass(frozen=True)
class Build:
    """A build folder read back (:func:`open_build`) or just written (``write_build``), or a
    spec built in memory.

    Attributes:
        folder: The build folder (or the spec file).
        task: The task it was built from (read from ``task.json``: no spec needed).
        given: The requests of a spec built in memory (``None``: the folder's).
        described: What the manifest of a spec built in memory would say of it (its name,
            strategy, selection and cost; ``None``: the folder's manifest).
        hash_prompts: Hash every request's prompt (:attr:`prompts`) in the one reading of
            ``requests.jsonl`` that gives the shapes, for a reader that wants them all.
    """

    folder: Path
    task: Task
    given: Mapping[str, BuiltRequest] | None = field(default=None, repr=False, compare=False)
    described: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)
    hash_prompts: bool = field(default=False, repr=False, compare=False)

    @cached_property
    def requests(self) -> Mapping[str, BuiltRequest]:
        """Its requests, by id, as ``requests.jsonl`` holds them (any target): read whole
        when first asked for. parse and collect never ask: a million requests' prompts would
        be held in memory, where they need each request's shape and prompt hash only."""
        if self.given is not None:
            return self.given
        return {r.id: r for r in each_request(self.folder)}

    @property
    def shapes(self) -> Mapping[str, RequestShape]:
        """What parsing reads of each request (its kind, item ids and, for a strategy that
        repeats the questions, their text), by id."""
        return self._read[0]

    @cached_property
    def _read(self) -> tuple[Mapping[str, RequestShape], Mapping[str, str] | None]:
        """The requests' shapes (and, with :attr:`hash_prompts`, their prompts' hashes), read
        one request at a time when first asked for (:func:`open_build` asks at once; a build
        just written is not read back unless they are wanted).

        Raises:
            PromptcErrors: Every line of ``requests.jsonl`` that cannot be read, and every
                request naming an item the task lacks, at its file:line:col.
        """
        errors: list[PromptcError] = []
        hashes: dict[str, str] | None = {} if self.hash_prompts else None

        def each() -> Iterator[BuiltRequest]:
            for r in self._each(errors):
                if hashes is not None:
                    hashes[r.id] = prompt_hash(r.messages)
                yield r

        shapes = _shapes(self.task, each(), errors)
        if errors:
            raise PromptcErrors(errors)
        return shapes, hashes

    def _each(self, errors: list[PromptcError] | None = None) -> Iterator[BuiltRequest]:
        """The requests, one at a time (a malformed line's error into ``errors``)."""
        if self.given is not None:
            return iter(self.given.values())
        return each_request(self.folder, errors=errors)

    @cached_property
    def manifest(self) -> Mapping[str, Any]:
        """``manifest.json``, as data (name, strategy, target, counts, cost, sha256s); for a
        spec built in memory, what its manifest would say of the task, its sources, its
        selection and its cost (no files, no target)."""
        if self.described is not None:
            return self.described
        return read_manifest(self.folder) if self.folder.is_dir() else {}

    @cached_property
    def files(self) -> tuple[str, ...]:
        """The build's own files in the folder, by name (``grammars/`` left out)."""
        if not self.folder.is_dir():
            return ()
        return tuple(sorted(p.name for p in self.folder.iterdir() if is_build_file(p.name)))

    def summary(self) -> str:
        """One line for people: what was built, and what it costs (``promptc build``'s)."""
        # A spec built in memory was written nowhere: no folder is named.
        return summary(self.manifest, self.folder if self.folder.is_dir() else None)

    @cached_property
    def prompts(self) -> Mapping[str, str]:
        """The sha256 of each request's messages (``batches.jsonl``'s ``prompt_sha256``), by
        id: an answer recorded with another one was produced for another prompt, and is not
        credited. Hashed when first asked for, ``requests.jsonl`` read once more (unless
        :attr:`hash_prompts` hashed them with the shapes): only answers that ``promptc run``
        recorded carry a hash to compare (hashing 2,000 requests is about 35 ms of
        ``promptc parse``'s)."""
        hashed = self._read[1]
        if hashed is not None:
            return hashed
        return {r.id: prompt_hash(r.messages) for r in self._each()}

    @property
    def source(self) -> str:
        """The folder (or spec) as messages name it."""
        return str(self.folder)

    def parse(self, request_id: str, output: str, *, strict: bool = False) -> list[ItemResult]:
        """One model output for one request of the build, parsed into one result per item
        (then ``extra`` answers); never raises on the output text.

        Raises:
            UsageError: ``unknown-request``: no request of that id.
        """
        shape = self.shapes.get(request_id) if isinstance(request_id, str) else None
        if shape is None:
            raise UsageError(
                f"unknown request id {request_id!r:.60}; expected one of the ids in "
                f"{self.source} ({len(self.shapes)} request(s))",
                code="unknown-request",
            )
        return parse_output(self.task, shape, output, strict=strict)

    def results(self) -> list[dict[str, Any]]:
        """The rows of the build's ``results.jsonl`` (written by ``run_build`` with ``parse``,
        or ``collect``), numbers as :class:`~decimal.Decimal`; empty when there is none."""
        path = self.folder / "results.jsonl"  # promptc.run.outputs.RESULTS_FILE, a layer up
        if not os.path.lexists(path):
            return []
        rows: list[dict[str, Any]] = []
        # As every reader of a build folder reads: a regular file, never through a link.
        for lineno, text in read_lines(path):
            try:
                row = json.loads(text, parse_float=Decimal)
            except (ValueError, RecursionError) as e:
                raise UsageError(
                    f"results.jsonl is no JSON Lines file: {e}",
                    location=Location(str(path), lineno, 1),
                    code="bad-results",
                ) from None
            if not isinstance(row, dict):
                raise UsageError(
                    "results.jsonl holds a line that is no JSON object",
                    location=Location(str(path), lineno, 1),
                    code="bad-results",
                )
            rows.append(row)
        return rows


def open_build(source: str | os.PathLike[str], *, hash_prompts: bool = False) -> Build:
    """Reads a build folder back (its manifest, task, items and requests), or builds a spec
    file in memory.

    A build folder is read on its own: ``task.json`` and ``items.jsonl`` (checked against
    the manifest's hashes) give the task, and ``requests.jsonl`` the requests — no spec is
    needed. The requests are read one at a time, each checked and only its shape kept (and,
    with ``hash_prompts``, its prompt's hash): a reader holds no prompt unless it asks for
    :attr:`Build.requests`. A spec file is compiled and rendered in memory, nothing written.

    Raises:
        PromptcError: Not a build, a build of another format, a malformed file (a
            :class:`UsageError` for a missing file or a build of another format, the spec's
            own errors otherwise).
    """
    if not isinstance(source, str | os.PathLike):
        raise UsageError(
            f"source is {source!r:.60}; expected the path of a build folder or spec file",
            code="bad-argument",
        )
    path = Path(source)
    try:
        is_dir, is_file = path.is_dir(), path.is_file()
    except (OSError, ValueError) as e:  # a name too long, a NUL character
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise UsageError(f"cannot open {str(path)[:80]!r}: {why}", code="not-found") from None
    if is_dir:
        build = Build(path, read_task(path), hash_prompts=hash_prompts)
    elif not is_file:
        raise UsageError(f"no such build directory or spec file: {str(path)!r}", code="not-found")
    else:
        # Imported here: a build folder needs no spec compiled, and the front end's import
        # is about 30 ms of promptc parse's.
        from promptc.spec.lower import compile_spec

        task = compile_spec(path)
        producer = Producer(task, CHAT)
        made = (producer.outgoing(r)[0] for r in producer.requests())
        build = Build(path, task, {r.id: r for r in made}, producer.manifest())
    build.shapes  # noqa: B018 - read now: a malformed requests.jsonl is open_build's error
    return build


def _shapes(
    task: Task, requests: Iterable[BuiltRequest], errors: list[PromptcError]
) -> dict[str, RequestShape]:
    """Each request's shape; a request naming an item the task lacks, or otherwise
    unreadable, is added to ``errors`` at its file:line:col."""
    shapes: dict[str, RequestShape] = {}
    by_id = items_by_id(task)
    for r in requests:
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
        # An empty list of items is refused as none (request_shape says what is expected).
        line = {
            "id": r.id,
            "kind": r.kind,
            "item_ids": r.item_ids or None,
            "target_item": r.target_item,
        }
        try:
            shapes[r.id] = request_shape(task, line)
        except PromptcError as e:
            errors.append(UsageError(e.message, location=r.location, code=e.code))
    return shapes


class RequestLike(Protocol):
    """What :func:`parse_output` reads of a request: a :class:`promptc.Request`, one of
    :attr:`Build.requests` or :attr:`Build.shapes` (``kind``: the strategy or its name)."""

    @property
    def id(self) -> str: ...

    @property
    def kind(self) -> object: ...

    @property
    def item_ids(self) -> Sequence[str]: ...


def parse_output(
    task: Task,
    request: RequestLike,
    output: str,
    *,
    strict: bool = False,
    finish_reason: str | None = None,
) -> list[ItemResult]:
    """One model output for one request, parsed into one result per item (then ``extra``
    answers, by index): status ``ok``, ``missing``, ``malformed``, ``duplicate``,
    ``misaligned``, ``extra`` or ``truncated``, with typed values.

    Args:
        task: The request's task.
        request: A :class:`promptc.Request` (from :func:`promptc.iter_requests`), one of
            :attr:`Build.requests` or :attr:`Build.shapes`.
        output: What the model wrote (or its JSON form, when it was constrained by the
            request's JSON Schema). Never raises on it.
        strict: The whole output must match the grammar (default: recover what it can).
        finish_reason: Why the model stopped, as the server said, if known: with ``length``
            the items the cut reached are ``truncated``.

    Raises:
        OutputParseError: ``request`` is not usable (never for the output text).
        UsageError: ``unknown-item``: ``request`` names an item the task does not hold (a
            request of another build).
    """
    if not isinstance(task, Task):
        raise UsageError(f"task is {task!r:.60}; expected a Task", code="bad-argument")
    if not isinstance(output, str):
        raise UsageError(f"output is {output!r:.60}; expected the text", code="bad-argument")
    if finish_reason is not None and not isinstance(finish_reason, str):
        finish_reason = None  # a server's odd value says nothing of a cut
    mode: Mode = "strict" if strict else "recover"
    shape = request if isinstance(request, RequestShape) else request_shape(task, request)
    by_id = items_by_id(task)
    foreign = next((i for i in shape.item_ids if i not in by_id), None)
    if foreign is not None:  # a request of another build: its items read as this task's
        raise UsageError(
            f"request {shape.id} names item {foreign!r}, which the task does not hold; "
            "expected a request of this task's build",
            code="unknown-item",
        )
    return parse_request(task, shape, output, mode=mode, finish_reason=finish_reason)
