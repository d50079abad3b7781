"""A compiled task made into a build: :func:`build` writes the folder, :func:`assemble` the
same files in memory (both run :func:`promptc.build.produce.write_build`).

Or a stage printed instead of written (``promptc build --emit ir|batches|requests``): ``ir``
is the compiled task as indented JSON (:func:`ir_json`); ``requests`` and ``batches`` are the
lines of ``requests.jsonl`` and ``batches.jsonl`` exactly as a build writes them, made one
request at a time (:func:`iter_lines`), so that a million requests print without being held.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from functools import partial
from pathlib import Path
from typing import Any

from promptc import ir
from promptc.build.batches import BATCHES_FILE
from promptc.build.files import held_lock, json_default
from promptc.build.produce import Producer, iter_requests, write_build
from promptc.build.requests import REQUESTS_FILE
from promptc.build.targets import NAMES, find_target
from promptc.build.writer import (
    BUILD_LOCK,
    FolderWriter,
    check_folder,
    check_inputs,
    not_writable,
)
from promptc.errors import Location, UsageError
from promptc.select.batches import SelectionResult


@dataclass(frozen=True)
class BuildResult:
    """What a build produced.

    Attributes:
        out_dir: The folder written (``None`` for :func:`assemble`, which writes nothing).
        files: File name → text, every file of the build (manifest included). For
            :func:`build`, a mapping that reads each file back from ``out_dir`` when asked
            (the requests' own grammars in ``grammars/`` left out: ``batches.jsonl`` lists
            them).
        requests: The rendered requests, in order. For :func:`build`, a sequence that
            renders each request again when read (nothing of a million requests is kept).
        selection: The batches and selection info.
        manifest: The manifest, as data.
    """

    out_dir: Path | None
    files: Mapping[str, str]
    requests: Sequence[ir.Request]
    selection: SelectionResult
    manifest: Mapping[str, object]

    @property
    def summary(self) -> str:
        """One line for people: what was built, and what it costs."""
        return summary(self.manifest, self.out_dir)


def summary(manifest: Mapping[str, object], out_dir: str | os.PathLike[str] | None) -> str:
    """A build's line for people, from its manifest: what was built, what it costs, where."""
    cost = manifest.get("cost")
    strategy = manifest.get("strategy")
    kind = strategy.get("kind") if isinstance(strategy, Mapping) else None
    where = f" → {out_dir}" if out_dir is not None else ""
    return f"built {manifest.get('name')} ({kind}): {cost}{where}"


def _building(out: Path, pid: str) -> UsageError:
    """``build-in-progress``: another process (``pid``) is writing a build into ``out``."""
    return UsageError(
        f"another promptc build (pid {pid}) is writing {str(out)!r}",
        location=Location(str(out)),
        hint="wait for it to finish, or give another folder with -o",
        code="build-in-progress",
    )


def build(
    task: ir.Task,
    out_dir: str | os.PathLike[str],
    *,
    target: str = "chat",
    vllm_grammar: str | None = None,
) -> BuildResult:
    """Builds a task into ``out_dir``: requests, batches, grammar files, task files and the
    manifest, streamed and put in place atomically (:class:`promptc.build.writer.FolderWriter`).

    Files an earlier build wrote that this one does not (``answer-3.lark`` when the last
    batch is now full) are removed, so the folder always holds exactly one build.

    Raises:
        PromptcError: A stage failed; the folder is left as it was then.
        UsageError: An unknown target or grammar form; ``out_dir`` exists and is not a
            folder, or cannot be written.
    """
    chosen = find_target(target).for_model(task.model.max_tokens_field)
    form = chosen.chosen_form(vllm_grammar)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(
            f"output path {str(out)!r} exists and is not a folder",
            location=Location(str(out)),
            code="out-not-dir",
        )
    check_folder(out, _inputs(task))
    try:
        out.mkdir(parents=True, exist_ok=True)
        # Two builds into one folder at once would remove each other's files as they go.
        with held_lock(out / BUILD_LOCK, partial(_building, out)):
            writer = FolderWriter(out, chosen, form)
            try:
                selection, manifest = write_build(task, writer)
                # The templates a template includes, imports or extends are known only once
                # rendered: none of them may be a file the build is about to replace.
                check_inputs(out, _templates_read(task, manifest))
            except BaseException:
                writer.discard()
                raise
            writer.commit()
    except OSError as e:
        raise not_writable(out, e) from None
    return BuildResult(
        out,
        _FolderFiles(out, list(writer.sinks)),  # the files put in place, not grammars/
        _Rendered(task, selection),
        selection,
        manifest,
    )


def _inputs(task: ir.Task) -> list[str]:
    """The files a build of ``task`` reads: its spec, the specs it extends, its data, its
    templates."""
    paths = [task.spec.path, *(f.path for f in task.extends)]
    if task.data is not None:
        paths.append(task.data.resolved)
    paths += [t.path for t in task.templates if t.path is not None]
    return [p for p in paths if p]


def _templates_read(task: ir.Task, manifest: Mapping[str, Any]) -> list[Path]:
    """The files of the templates a build read, as its manifest lists them."""
    listed = manifest.get("templates") or ()
    return [Path(task.spec_dir) / t["path"] for t in listed if isinstance(t.get("path"), str)]


def assemble(
    task: ir.Task, *, target: str = "chat", vllm_grammar: str | None = None
) -> BuildResult:
    """Every file of a build, in memory: the same bytes :func:`build` writes. Use it for
    small builds, ``--check``, diffs and tests; :func:`build` streams to disk instead.

    Raises:
        PromptcError: A stage failed (a template error at its file:line, a selection error…).
    """
    chosen = find_target(target).for_model(task.model.max_tokens_field)
    writer = FolderWriter(None, chosen, chosen.chosen_form(vllm_grammar))
    kept: list[ir.Request] = []
    selection, manifest = write_build(task, writer, kept)
    return BuildResult(None, writer.texts(), tuple(kept), selection, manifest)


class _Rendered(Sequence[ir.Request]):
    """A build's requests, rendered again when read: up to the one asked for, or all of them
    for a slice or an index from the end."""

    def __init__(self, task: ir.Task, selection: SelectionResult) -> None:
        self.task = task
        self.selection = selection

    def __len__(self) -> int:
        return len(self.selection.batches)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, int) and index >= 0:
            for request in itertools.islice(self, index, None):
                return request
            raise IndexError(index)
        return tuple(self)[index]

    def __iter__(self) -> Iterator[ir.Request]:
        return iter_requests(self.task, self.selection)


class _FolderFiles(Mapping[str, str]):
    """The files of a build folder by name, each read when asked for."""

    def __init__(self, folder: Path, names: Sequence[str]) -> None:
        self.folder = folder
        self.names = sorted(names)

    def __getitem__(self, name: str) -> str:
        if name not in self.names:
            raise KeyError(name)
        return (self.folder / name).read_text(encoding="utf-8")

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def iter_lines(
    task: ir.Task,
    file: str = REQUESTS_FILE,
    *,
    target: str = "chat",
    vllm_grammar: str | None = None,
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
    chosen = find_target(target).for_model(task.model.max_tokens_field)
    producer = Producer(task, chosen, chosen.chosen_form(vllm_grammar))
    for r in producer.requests():
        request, batch, constraint, _ = producer.outgoing(r)
        if file == BATCHES_FILE:
            yield batch.text() + "\n"
        else:
            yield chosen.line(request, constraint) + "\n"


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
    return value  # exact decimals are written as text by files.json_default


def ir_json(task: ir.Task) -> str:
    """The IR of a task as indented JSON (``promptc build --emit ir``)."""
    return json.dumps(to_data(task), ensure_ascii=False, indent=2, default=json_default) + "\n"
