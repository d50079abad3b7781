"""Batch selection: which items share a request, in which order.

``select(task)`` looks up the task's ``strategy.selection.method`` in :data:`METHODS`, a
static table of selection functions, and returns a :class:`SelectionResult`: the batches, in request order, and a small
``info`` mapping that goes into the build manifest (method, seed, batch size, request count,
and whatever else a method wants recorded, such as an embedding model).

``sequential`` and ``random`` live here. The similarity methods (``retrieval``, ``partition``,
``diverse``) live in :mod:`promptc.select.similarity`, which needs the optional ``embed``
extra; the table's entry for them imports that module only when a spec asks for one of them.

``single`` and ``few-shot`` send one item per request, whatever ``batch_size`` says.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptc import ir
from promptc.errors import SelectionError

#: Strategies that send exactly one item per request.
ONE_ITEM_KINDS: tuple[ir.StrategyKind, ...] = ("single", "few-shot")

INSTALL_EMBED = "pip install 'promptc[embed]'"


@dataclass(frozen=True)
class SelectionResult:
    """The batches of a task, in request order, and what the manifest should say about them.

    Attributes:
        batches: Every batch; ``batches[i].index == i``. A sequence that may make each
            batch when it is read (:class:`Chunks`), so iterate it rather than keep a copy.
        info: JSON-ready facts about the selection (``method``, ``seed``, ``batch_size``,
            ``requests`` …), recorded verbatim in ``manifest.json``.
    """

    batches: Sequence[ir.Batch]
    info: Mapping[str, object] = field(default_factory=dict)


SelectionFn = Callable[[ir.Task], SelectionResult]


def batch_size(task: ir.Task) -> int:
    """Items per request: 1 for ``single`` and ``few-shot``, else ``strategy.batch_size``."""
    if task.strategy.kind in ONE_ITEM_KINDS:
        return 1
    return max(1, task.strategy.batch_size)


def select(task: ir.Task) -> SelectionResult:
    """Groups the task's items into batches with the spec's selection method.

    Raises:
        SelectionError: At ``strategy.selection.method`` when the method is unknown or its
            optional dependency is not installed.
    """
    sel = task.strategy.selection
    method = sel.method
    fn = METHODS.get(method)
    if fn is None:
        raise SelectionError(
            f"unknown selection method {method!r}; expected one of "
            + ", ".join(repr(m) for m in ir.SELECTION_METHODS),
            location=sel.location,
            path=("strategy", "selection", "method"),
            code="unknown-selection-method",
        )
    result = fn(task)
    info = {**base_info(task, len(result.batches)), **dict(result.info)}
    return SelectionResult(result.batches, info)


def similar(task: ir.Task) -> SelectionResult:
    """``retrieval``, ``partition`` and ``diverse``: imports the ``embed`` extra's code on use.

    Raises:
        SelectionError: At ``strategy.selection.method`` when the extra is not installed.
    """
    sel = task.strategy.selection
    try:
        from promptc.select.similarity import select_similar
    except ImportError as e:
        raise SelectionError(
            f"selection method {sel.method!r} needs sentence-transformers, which is not "
            f"installed ({e})",
            location=sel.location,
            path=("strategy", "selection", "method"),
            hint=f"install it with: {INSTALL_EMBED}",
            code="missing-embed-extra",
        ) from None
    return select_similar(task)


def base_info(task: ir.Task, n_requests: int) -> dict[str, object]:
    """The facts every selection records: method, seed, batch size, items, requests, cost."""
    n_items = len(task.items)
    size = batch_size(task)
    sel = task.strategy.selection
    info: dict[str, object] = {"method": sel.method}
    if sel.method != "sequential":  # the seed changes nothing in sequential order
        info["seed"] = sel.seed
    info.update(
        {
            "batch_size": size,
            "items": n_items,
            "requests": n_requests,
            "cost": cost_statement(n_items, n_requests, size),
        }
    )
    return info


def cost_statement(n_items: int, n_requests: int, size: int) -> str:
    """A plain sentence saying what a build costs, for the manifest and the CLI summary."""
    req = "request" if n_requests == 1 else "requests"
    itm = "item" if n_items == 1 else "items"
    per = "1 item per request" if size == 1 else f"up to {size} items per request"
    return f"{n_requests} {req} for {n_items} {itm} ({per})"


class Chunks(Sequence[ir.Batch]):
    """Item positions, in a given order, cut into batches — each made when asked for, so a
    million items need their order (8 bytes an item) and not a million batch objects."""

    def __init__(self, task: ir.Task, order: Sequence[int]) -> None:
        self.items = task.items
        self.order = order
        self.size = batch_size(task)

    def __len__(self) -> int:
        return (len(self.order) + self.size - 1) // self.size

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("batch index out of range")
        items = self.items
        start = index * self.size
        members = [items[p] for p in self.order[start : start + self.size]]
        return ir.Batch(
            index=index,
            item_ids=tuple(it.id for it in members),
            item_indices=tuple(it.index for it in members),
        )

    def __iter__(self) -> Iterator[ir.Batch]:
        for index in range(len(self)):
            yield self[index]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Chunks({len(self)} batches of up to {self.size})"


def chunk(task: ir.Task, order: Sequence[int]) -> Sequence[ir.Batch]:
    """Cuts item positions (into ``task.items``), in the given order, into batches
    (a :class:`Chunks`: each batch is made when read)."""
    return Chunks(task, order)


def sequential(task: ir.Task) -> SelectionResult:
    """Items in data-file order, cut into consecutive batches."""
    return SelectionResult(chunk(task, range(len(task.items))))


def random(task: ir.Task) -> SelectionResult:
    """Items shuffled with ``random.Random(seed)``, then cut into consecutive batches.

    ``Random.shuffle`` of a list of indices draws with ``randbelow``, which gives the same
    order for the same seed on every Python 3 version and platform.
    """
    from array import array

    # An array, not a list: 8 bytes an item. shuffle() swaps in place the same on either.
    order = array("q", range(len(task.items)))
    _random.Random(task.strategy.selection.seed).shuffle(order)
    return SelectionResult(chunk(task, order))


#: Every selection method by name. A static table: nothing registers itself at import time, so
#: importing a method's module has no side effects and the module graph has no cycle.
METHODS: Mapping[str, SelectionFn] = {
    "sequential": sequential,
    "random": random,
    "retrieval": similar,
    "partition": similar,
    "diverse": similar,
}
