"""Producing a build's requests: select → render → grammar, one request at a time, in memory.

:class:`Producer` chains the back-end stages — :func:`promptc.select.methods.select`,
:class:`promptc.render.renderer.Renderer` and :mod:`promptc.grammar.answer` — and turns each
rendered request into what the build folder says of it (:meth:`Producer.outgoing`): the
request in the form every target writes, its line of ``batches.jsonl``, its own grammar files
and the constraint its body carries. :func:`write_build` hands them to a
:class:`~promptc.build.writer.FolderWriter` with the task files and the manifest. Nothing is
kept per request, so a million items build in memory that does not grow with them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from promptc import ir
from promptc.build.batches import BatchLine, prompt_hash
from promptc.build.files import Sink, relative
from promptc.build.grammars import (
    ConstraintCache,
    Grammars,
    RequestGrammars,
    constraint,
    grammar_stem,
    grammars,
)
from promptc.build.rounds import with_rounds
from promptc.build.targets import BuiltRequest, Constraint, GrammarForm, Target
from promptc.build.task_file import ITEMS_FILE, TASK_FILE, item_line, item_lines, task_text
from promptc.build.writer import FolderWriter
from promptc.render.output_budget import fit_params
from promptc.select.batches import SelectionResult, batch_size
from promptc.select.methods import select
from promptc.text import sha256_text
from promptc.version import VERSION

#: What the build folder says of one request: the request, its line of ``batches.jsonl``,
#: the constraint its body carries and its own grammar files (FolderWriter.add's arguments).
Outgoing = tuple[BuiltRequest, BatchLine, Constraint | None, dict[str, str]]


class Producer:
    """select → render → grammar of a task, one request at a time.

    Args:
        task: The compiled task.
        chosen: The build's target.
        form: The grammar form a body carries, for a target whose bodies carry one.
    """

    def __init__(self, task: ir.Task, chosen: Target, form: GrammarForm | None = None) -> None:
        # Imported here, when a build is made: the readers of a build (parse, run, collect)
        # import promptc.build and never render, and Jinja's import is about 20 ms of theirs.
        from promptc.render.renderer import Renderer

        self.task = task
        self.target = chosen
        self.form = form
        self.selection = with_rounds(task, select(task))
        self.renderer = Renderer(task)
        self.nominal = batch_size(task)
        self.counts: set[int] = set()
        self.constraints = ConstraintCache() if form is not None else None
        self.own = RequestGrammars(task) if RequestGrammars.needed(task) else None

    def requests(self) -> Iterator[ir.Request]:
        """The rendered requests, in order."""
        return self.renderer.iter_render(self.selection)

    def outgoing(self, r: ir.Request) -> Outgoing:
        """What the build folder says of request ``r``."""
        batch = r.batch
        n = len(batch.item_ids)
        self.counts.add(n)
        stem = grammar_stem(n, self.nominal)
        messages = tuple({"role": m.role, "content": m.content} for m in r.messages)
        own = self.own.files(r) if self.own is not None else {}
        # By position, as the renderer reads them: no lookup that grows with the items.
        items = [self.task.items[i] for i in batch.item_indices] if self.form is not None else []
        made: Constraint | None = None
        if self.constraints is not None and self.form is not None:
            # Each body carries its own grammar: with requests' own grammars, the very text
            # of grammars/<id>.gbnf or .schema.json.
            made = (
                RequestGrammars.constraint(own, self.form)
                if own
                else constraint(self.task, r.kind, items, self.form, self.constraints)
            )
        target_item = batch.item_ids[batch.target] if batch.target is not None else None
        params = r.params
        if self.form == "json_schema":  # answered in the JSON form: its budget fitted to it
            params = fit_params(self.task, items, r.params, json_form=True)
        request = BuiltRequest(
            id=r.id,
            kind=r.kind,
            item_ids=batch.item_ids,
            messages=messages,
            params=params,
            grammar=stem,
            location=ir.NOWHERE,
            target_item=target_item,
        )
        line = BatchLine(
            index=batch.index,
            request=r.id,
            item_ids=batch.item_ids,
            target=batch.target,
            similarities=batch.similarities,
            prompt_sha256=prompt_hash(messages),
            grammar=stem,
            grammar_files={name: sha256_text(text) for name, text in own.items()},
            round=batch.round if task_votes(self.task) else None,
        )
        return request, line, made, own

    def grammars(self) -> Grammars:
        """The shared grammar files of the request sizes produced so far."""
        return grammars(self.task, sorted(self.counts))

    def manifest(self) -> dict[str, object]:
        """What the manifest says of the task, its sources and its selection."""
        task = self.task
        spec_dir = task.spec_dir
        templates = [
            {
                "name": t.name,
                "origin": t.origin,
                **({"path": relative(t.file, spec_dir)} if t.file is not None else {}),
                "sha256": t.sha256,
            }
            for t in sorted(self.renderer.loader.used.values(), key=lambda t: t.name)
        ]
        data = task.data
        return {
            "promptc": VERSION,
            "name": task.name,
            "strategy": {"kind": task.strategy.kind.name, "batch_size": self.nominal},
            "selection": dict(self.selection.info),
            "model": task.model.request_params(),
            "spec": {"path": relative(task.spec.path, spec_dir), "sha256": task.spec.sha256},
            "extends": [
                {"path": relative(s.path, spec_dir), "sha256": s.sha256} for s in task.extends
            ],
            "data": None
            if data is None
            else {"path": data.path, "format": data.format, "sha256": data.sha256},
            "templates": templates,
            "cost": self.selection.info.get("cost"),
        }


def task_votes(task: ir.Task) -> bool:
    """Whether the task's items are asked in several voting rounds."""
    return task.strategy.rounds > 1


def write_build(
    task: ir.Task, writer: FolderWriter, kept: list[ir.Request] | None = None
) -> tuple[SelectionResult, dict[str, Any]]:
    """Produces every file of a build into ``writer``: the requests and batches, the
    requests' own grammars, the shared grammar files, the task files and the manifest.
    ``kept`` gets the rendered requests, if given. Returns the selection and the manifest.
    """
    producer = Producer(task, writer.target, writer.form)
    items = ItemsInOrder(task, writer)
    for r in producer.requests():
        writer.add(*producer.outgoing(r))
        items.add(r.batch)
        if kept is not None:
            kept.append(r)
    writer.write(TASK_FILE, task_text(task))
    items.finish()
    manifest = writer.finish(
        producer.manifest(),
        producer.grammars(),
        {"items": len(task.items), "demos": len(task.demos)},
    )
    return producer.selection, manifest


class ItemsInOrder:
    """``items.jsonl``, written in the render pass while the requests take the items in data
    order, one request after another (sequential selection): each item is then read from the
    data file once, not once more for this file — a fifth of a million-item build's time. At
    the first request out of that order the file is given up, and :meth:`finish` writes it in
    a pass of its own."""

    def __init__(self, task: ir.Task, writer: FolderWriter) -> None:
        self.task = task
        self.writer = writer
        self.sink: Sink | None = writer.open(ITEMS_FILE)
        self.next = 0
        self.paths: dict[str, str] = {}

    def add(self, batch: ir.Batch) -> None:
        """The items of the next request (its batch)."""
        if self.sink is None:
            return
        taken = tuple(batch.item_indices)
        if taken != tuple(range(self.next, self.next + len(taken))):
            self.writer.drop(ITEMS_FILE)
            self.sink = None
            return
        items = self.task.items
        self.sink.write("".join(item_line(self.task, items[i], self.paths) for i in taken))
        self.next += len(taken)

    def finish(self) -> None:
        """The file complete: as written, or in a pass of its own."""
        if self.sink is not None and self.next == len(self.task.items):
            self.sink.close()
            return
        if self.sink is not None:
            self.writer.drop(ITEMS_FILE)
        self.writer.write_lines(ITEMS_FILE, item_lines(self.task))


def iter_requests(task: ir.Task, selection: SelectionResult | None = None) -> Iterator[ir.Request]:
    """The rendered requests of a task, one at a time (nothing kept): for callers that need
    every request without holding them all, as ``promptc build --emit requests`` does."""
    from promptc.render.renderer import Renderer  # see Producer: readers never render

    return Renderer(task).iter_render(selection if selection is not None else select(task))
