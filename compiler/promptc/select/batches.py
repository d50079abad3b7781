"""What every selection method produces and shares: :class:`SelectionResult`, the batch size of
a task and cutting an order of items into batches.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from promptc import ir

#: Strategies that send exactly one item per request.
ONE_ITEM_KINDS: tuple[ir.StrategyKind, ...] = ("single", "few-shot")


@dataclass(frozen=True)
class SelectionResult:
    """The batches of a task, in request order, and what the manifest should say about them.

    Attributes:
        batches: Every batch; ``batches[i].index == i``.
        info: JSON-ready facts about the selection (``method``, ``seed``, ``batch_size``,
            ``requests`` …), recorded verbatim in ``manifest.json``.
    """

    batches: tuple[ir.Batch, ...]
    info: Mapping[str, object] = field(default_factory=dict)


SelectionFn = Callable[[ir.Task], SelectionResult]


def batch_size(task: ir.Task) -> int:
    """Items per request: 1 for ``single`` and ``few-shot``, else ``strategy.batch_size``."""
    if task.strategy.kind in ONE_ITEM_KINDS:
        return 1
    return max(1, task.strategy.batch_size)


def chunk(task: ir.Task, order: Sequence[int]) -> tuple[ir.Batch, ...]:
    """Cuts item positions (into ``task.items``), in the given order, into batches."""
    size = batch_size(task)
    items = task.items
    batches = []
    for b, start in enumerate(range(0, len(order), size)):
        positions = order[start : start + size]
        batches.append(
            ir.Batch(
                index=b,
                item_ids=tuple(items[p].id for p in positions),
                item_indices=tuple(items[p].index for p in positions),
            )
        )
    return tuple(batches)
