"""Repair: re-asking the items whose answers came back ``missing``, ``malformed`` or ``misaligned``.

Round 1 asks, per request, just its failed items as a smaller request of the same kind
(``r0007.repair1``); later rounds ask each still-failed item alone (``r0007.repair2.3``, the
item at position 3 of ``r0007``). A prompt already asked is never asked again (at the same
parameters it would get the same answer), so a round may ask nothing.

A repair request keeps the build's system message (the instruction and demonstrations, the
same in every request) and the original user message with its question list cut down to the
failed items, renumbered ``Q[1]`` … in order: no template or spec is needed, only the build
folder. Its grammar is made for its own item count from the build's task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from promptc import markers
from promptc.build import BuiltRequest

if TYPE_CHECKING:
    from promptc.ir import Task
    from promptc.parse.results import ItemResult

#: The statuses that repair re-asks. ``duplicate`` and ``extra`` come with an answer for the
#: item (or for none), so there is nothing to re-ask.
REPAIRABLE = frozenset({"missing", "malformed", "misaligned"})


@dataclass(frozen=True)
class RepairRequest:
    """A request of a repair round, and where its items come from.

    Attributes:
        request: The request, in the build's own form (its ``grammar`` is ``None``: the
            grammar is made for it, see :func:`repair_grammar`).
        origin: The build request whose items it re-asks.
        positions: Each item's 1-based position in ``origin``.
        attempt: The repair round (1, 2, …).
    """

    request: BuiltRequest
    origin: str
    positions: tuple[int, ...]
    attempt: int

    def record(self) -> dict[str, Any]:
        """What ``outputs.jsonl`` keeps of the request beside its answer, so that the answer
        can be parsed again without the run (``promptc parse``)."""
        return {
            "attempt": self.attempt,
            "item_ids": list(self.request.item_ids),
            "kind": self.request.kind,
            "of": self.origin,
        }


def needs_repair(result: ItemResult) -> bool:
    return result.item_id is not None and result.status in REPAIRABLE


def _user_message_for(
    request: BuiltRequest, task: Task, positions: Sequence[int]
) -> list[dict[str, Any]] | None:
    """The request's messages with only the questions at ``positions``, renumbered; ``None``
    when the last user message does not show its questions as a batch does
    (:func:`promptc.markers.question_block`: ``Q[i]: question``, or with indexed inputs
    ``Premise[i]: …`` / ``Hypothesis[i]: …``) in order."""
    from promptc.parse.shape import items_by_id

    by_id = items_by_id(task)
    messages = [dict(m) for m in request.messages]
    users = [k for k, m in enumerate(messages) if m.get("role") == "user"]
    if not users or not isinstance(messages[users[-1]].get("content"), str):
        return None
    text: str = messages[users[-1]]["content"]
    spans: list[tuple[int, int]] = []
    start = 0
    inputs: list[Mapping[str, str]] = []
    for k, item_id in enumerate(request.item_ids, 1):
        item = by_id.get(item_id)
        if item is None:
            return None
        try:
            shown = markers.question_block(task.inputs, item.inputs, k, task.markers)
        except KeyError:
            return None
        at = text.find(shown, start)
        if at < 0:
            return None
        spans.append((at, at + len(shown)))
        inputs.append(item.inputs)
        start = at + len(shown)
    head, tail = text[: spans[0][0]], text[spans[-1][1] :]
    # The text between two questions, as the template wrote it (one line end by default).
    between = text[spans[0][1] : spans[1][0]] if len(spans) > 1 else markers.ITEM_SEPARATOR
    body = between.join(
        markers.question_block(task.inputs, inputs[p - 1], j, task.markers)
        for j, p in enumerate(positions, 1)
    )
    messages[users[-1]]["content"] = head + body + tail
    return messages


def repair_requests(
    task: Task,
    failed: Mapping[str, Sequence[int]],
    requests: Mapping[str, BuiltRequest],
    attempt: int,
) -> tuple[list[RepairRequest], list[str]]:
    """The requests of repair round ``attempt`` for the failed item positions of each request.

    Args:
        task: The build's task.
        failed: Build request id → the 1-based positions of its items still to repair.
        requests: The build's requests by id.
        attempt: The round, from 1.

    Returns:
        The repair requests, and the ids of build requests whose prompt could not be cut
        down (a template that does not show ``Q[i]: question``).
    """
    out: list[RepairRequest] = []
    refused: list[str] = []
    for rid, positions in failed.items():
        origin = requests[rid]
        single = origin.kind in ("single", "few-shot") or len(origin.item_ids) == 1
        if single:
            # Only one prompt can ask this item alone: the original, already asked at these
            # parameters, so re-sending it is left to a run with other parameters.
            continue
        groups: list[tuple[str, tuple[int, ...]]]
        if attempt == 1:
            groups = [(f"{rid}.repair1", tuple(positions))]
        else:
            groups = [(f"{rid}.repair{attempt}.{p}", (p,)) for p in positions]
        for new_id, group in groups:
            messages = _user_message_for(origin, task, group)
            if messages is None:
                refused.append(rid)
                break
            request = BuiltRequest(
                id=new_id,
                kind=origin.kind,
                item_ids=tuple(origin.item_ids[p - 1] for p in group),
                messages=tuple(messages),
                params=origin.params,
                grammar=None,
                location=origin.location,
            )
            out.append(RepairRequest(request, rid, group, attempt))
    return out, refused


def repair_grammar(task: Task, request: BuiltRequest, suffix: str) -> str:
    """The grammar file text (``.gbnf``, ``.schema.json``) for a repair request's item count."""
    from promptc.build import grammar_stem
    from promptc.grammar.answer import build_grammar

    n = len(request.item_ids)
    kind = request.kind or task.strategy.kind
    stem = grammar_stem(n, task.strategy.batch_size)
    files = build_grammar(task, n, kind).files(stem)  # type: ignore[arg-type]
    return files[stem + suffix]
