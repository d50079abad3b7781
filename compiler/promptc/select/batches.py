"""What every selection method produces and shares: :class:`SelectionResult`, the batch size of
a task and cutting an order of items into batches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptc import ir


@dataclass(frozen=True, slots=True)
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
    """Items per request: what the strategy holds at ``strategy.batch_size``."""
    return task.strategy.kind.items_per_request(max(1, task.strategy.batch_size))


def has_targets(batches: Sequence[ir.Batch]) -> bool:
    """Whether some batch is for one target item (``retrieval``): never a batch of
    :class:`Chunks`, whose batches are not read for it (each would be made again, its items
    read from the data file)."""
    return not isinstance(batches, Chunks) and any(b.target is not None for b in batches)


class Chunks(Sequence[ir.Batch]):
    """Item positions (into ``task.items``), in a given order, cut into batches — each made
    when asked for, so a million items need their order (8 bytes an item) and not a million
    batch objects."""

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

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Chunks({len(self)} batches of up to {self.size})"
