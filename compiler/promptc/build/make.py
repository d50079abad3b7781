"""A compiled task made into a build: :func:`build` writes the folder, :func:`assemble` the
same files in memory (both run :func:`promptc.build.produce.write_build`)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptc import ir
from promptc.build.produce import iter_requests, write_build
from promptc.build.targets import find_target, grammar_form
from promptc.build.writer import FolderWriter, not_writable
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
        cost = self.manifest.get("cost")
        strategy = self.manifest.get("strategy")
        kind = strategy.get("kind") if isinstance(strategy, Mapping) else None
        where = f" → {self.out_dir}" if self.out_dir is not None else ""
        return f"built {self.manifest.get('name')} ({kind}): {cost}{where}"


def build(
    task: ir.Task,
    out_dir: str | os.PathLike[str],
    *,
    target: str = "chat",
    vllm_grammar: str = "gbnf",
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
    chosen, form = find_target(target), grammar_form(vllm_grammar)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(
            f"output path {str(out)!r} exists and is not a folder",
            location=Location(str(out)),
            code="out-not-dir",
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        writer = FolderWriter(out, chosen, form)
        try:
            selection, manifest = write_build(task, writer)
        except BaseException:
            writer.discard()
            raise
        writer.commit()
    except OSError as e:
        raise not_writable(out, e) from None
    return BuildResult(
        out,
        _FolderFiles(out, writer.names()),
        _Rendered(task, selection),
        selection,
        manifest,
    )


def assemble(task: ir.Task, *, target: str = "chat", vllm_grammar: str = "gbnf") -> BuildResult:
    """Every file of a build, in memory: the same bytes :func:`build` writes. Use it for
    small builds, ``--check``, diffs and tests; :func:`build` streams to disk instead.

    Raises:
        PromptcError: A stage failed (a template error at its file:line, a selection error…).
    """
    writer = FolderWriter(None, find_target(target), grammar_form(vllm_grammar))
    kept: list[ir.Request] = []
    selection, manifest = write_build(task, writer, kept)
    return BuildResult(None, writer.texts(), tuple(kept), selection, manifest)


class _Rendered(Sequence[ir.Request]):
    """A build's requests, rendered again when read."""

    def __init__(self, task: ir.Task, selection: SelectionResult) -> None:
        self.task = task
        self.selection = selection

    def __len__(self) -> int:
        return len(self.selection.batches)

    def __getitem__(self, index: Any) -> Any:
        batches = self.selection.batches
        if isinstance(index, slice):
            picked = [batches[i] for i in range(*index.indices(len(batches)))]
        else:
            picked = [batches[index]]
        # The id width depends on the request count: render within the whole selection.
        one = SelectionResult(_Picked(picked, len(batches)), self.selection.info)
        out = tuple(iter_requests(self.task, one))
        return out if isinstance(index, slice) else out[0]

    def __iter__(self) -> Iterator[ir.Request]:
        return iter_requests(self.task, self.selection)


class _Picked(Sequence[ir.Batch]):
    """Some batches of a selection that still count as many as the whole (for id widths)."""

    def __init__(self, picked: list[ir.Batch], total: int) -> None:
        self.picked = picked
        self.total = total

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, index: Any) -> Any:
        return self.picked[index]

    def __iter__(self) -> Iterator[ir.Batch]:
        return iter(self.picked)


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
