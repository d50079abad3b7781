"""Repair: re-asking the items whose answers came back ``missing``, ``malformed``, ``misaligned``
or ``truncated``.

Round 1 asks, per request, just its failed items as a smaller request of the same kind
(``r0007.repair1``); later rounds ask each still-failed item alone (``r0007.repair2.3``, the
item at position 3 of ``r0007``). A prompt already asked is never asked again (at the same
parameters it would get the same answer), so a round may ask nothing.

A repair request keeps the build's system message (the instruction and demonstrations, the
same in every request) and the original user message with its question list cut down to the
failed items, renumbered ``Q[1]`` … in order: no template or spec is needed, only the build
folder. Its grammar is made for its own item count from the build's task, and, when the spec
gives the output budget per item, its ``max_tokens`` is fitted to its own items
(:func:`promptc.render.output_budget.request_budget`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from promptc import markers
from promptc.build import BuiltRequest
from promptc.ir import OutputField, round_of
from promptc.parse.output import parse_output, target_results
from promptc.parse.output_records import characters
from promptc.parse.results import ItemResult, dumps
from promptc.parse.shape import RequestShape, items_by_id, request_shape
from promptc.parse.vote import combine
from promptc.render.output_budget import request_budget
from promptc.strategies import NAMES as STRATEGY_NAMES

if TYPE_CHECKING:
    from promptc.ir import Task

#: The statuses that repair re-asks. ``duplicate`` and ``extra`` come with an answer for the
#: item (or for none), so there is nothing to re-ask.
REPAIRABLE = frozenset({"missing", "malformed", "misaligned", "truncated"})
#: The ``attempt`` of a request that stands in for a build request (a voting round's, asking
#: only the items not yet settled): its answers are the build request's own.
STAND_IN = 0
#: The id of a stand-in: ``r0007.v3.live``.
STAND_IN_SUFFIX = ".live"


@dataclass(frozen=True)
class RepairRequest:
    """A request of a repair round, and where its items come from.

    Attributes:
        request: The request, in the build's own form (its ``grammar`` is ``None``: the
            grammar is made for it, see :func:`promptc.run.bodies.request_body`).
        origin: The build request whose items it re-asks.
        positions: Each item's 1-based position in ``origin``.
        attempt: The repair round (1, 2, …), or 0 for a voting round's request asking only
            the items not yet settled: it stands in for ``origin``, which is not sent.
    """

    request: BuiltRequest
    origin: str
    positions: tuple[int, ...]
    attempt: int

    def record(self) -> dict[str, Any]:
        """What ``outputs.jsonl`` keeps of the request beside its answer, so that the answer
        can be parsed again without the run (``promptc parse``)."""
        record: dict[str, Any] = {
            "attempt": self.attempt,
            "item_ids": list(self.request.item_ids),
            "kind": self.request.kind.name,
            "of": self.origin,
        }
        if self.request.target_item is not None:
            record["target_item"] = self.request.target_item
        if self.attempt == STAND_IN:
            record["positions"] = list(self.positions)
        return record


def needs_repair(result: ItemResult) -> bool:
    return result.item_id is not None and result.status in REPAIRABLE


def _user_message_for(
    request: BuiltRequest, task: Task, positions: Sequence[int]
) -> list[dict[str, Any]] | None:
    """The request's messages with only the questions at ``positions``, renumbered; ``None``
    when the last user message does not show its questions as a batch does
    (:func:`promptc.markers.question_block`: ``Q[i]: question``, or with indexed inputs
    ``Premise[i]: …`` / ``Hypothesis[i]: …``) in order."""
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
        single = origin.kind.one_item or len(origin.item_ids) == 1
        if single:
            # Only one prompt can ask this item alone: the original, already asked at these
            # parameters, so re-sending it is left to a run with other parameters.
            continue
        groups: list[tuple[str, tuple[int, ...]]]
        if attempt == 1 and len(positions) < len(origin.item_ids):
            groups = [(f"{rid}.repair1", tuple(positions))]
        else:
            # Later rounds, and round 1 when every item failed: cut down to them, the
            # request would be its own prompt again (asked already, at these parameters).
            groups = [(f"{rid}.repair{attempt}.{p}", (p,)) for p in positions]
        for new_id, group in groups:
            request = subset_request(task, origin, group, new_id)
            if request is None:
                refused.append(rid)
                break
            out.append(RepairRequest(request, rid, group, attempt))
    return out, refused


def subset_request(
    task: Task, origin: BuiltRequest, positions: Sequence[int], new_id: str
) -> BuiltRequest | None:
    """The request ``origin`` asking only its items at ``positions`` (1-based, in order),
    renumbered, with a budget fitted to them when the spec gives one per item; ``None`` when
    its prompt does not show its questions as a batch does. What repair re-asks, and what a
    voting round asks of the items not yet settled."""
    messages = _user_message_for(origin, task, positions)
    if messages is None:
        return None
    item_ids = tuple(origin.item_ids[p - 1] for p in positions)
    return BuiltRequest(
        id=new_id,
        kind=origin.kind,
        item_ids=item_ids,
        messages=tuple(messages),
        params=_params(task, origin, item_ids),
        grammar=None,
        location=origin.location,
        # Still for its target, if it holds it (it does: only targets are re-asked).
        target_item=origin.target_item if origin.target_item in item_ids else None,
    )


def recorded_request(
    task: Task, requests: Mapping[str, BuiltRequest], rid: str, record: object
) -> BuiltRequest | None:
    """The request a ``repair`` record read back (from ``outputs.jsonl``, a repair build's
    manifest) says ``rid`` asked, made again as :func:`subset_request` made it (its build
    request whole where the prompt cannot be cut); ``None`` for a record of no request of
    ``requests``, or one edited by hand (:func:`valid_record`)."""
    if not isinstance(record, Mapping):
        return None
    origin = requests.get(str(record.get("of")))
    if origin is None or not valid_record(record, origin.item_ids):
        return None
    positions = record.get("positions") or [
        origin.item_ids.index(i) + 1 for i in record["item_ids"]
    ]
    return subset_request(task, origin, positions, rid) or origin


def _params(task: Task, origin: BuiltRequest, item_ids: Sequence[str]) -> Mapping[str, Any]:
    """The origin's parameters, with a ``max_tokens`` fitted to the repair request's items
    when the spec gives the budget per item."""
    by_id = items_by_id(task)
    budget = request_budget(task, [by_id[i] for i in item_ids])
    if budget is None or "max_tokens" not in origin.params:
        return origin.params
    return {**origin.params, "max_tokens": budget}


# --------------------------------------------------------------------------------------------
# Merging repair answers into one result per item (run --parse, collect and parse alike)
# --------------------------------------------------------------------------------------------


@dataclass
class Merged:
    """The results of a build's answers with its repair answers merged in.

    Attributes:
        rows: Each build request's results in build order (a retrieval request's: its target
            item's only), each item's replaced by its best answer (the first ``ok``, else the
            last attempt's), with how many answers asked for it.
        best: (build request id, 1-based position) → the item's best result.
        attempts: (build request id, position) → the answers that asked for the item.
        repaired: Items ok only thanks to a repair answer.
        unused: Repair answers that fit no answered build request (their origin has no
            answer, or names items it does not hold).
    """

    rows: list[tuple[ItemResult, int]]
    best: dict[tuple[str, int], ItemResult]
    attempts: dict[tuple[str, int], int]
    repaired: int = 0
    unused: list[str] = field(default_factory=list)
    #: Item id → its ``votes`` and ``rounds``, when the build votes (``rows`` then holds
    #: each item's voted result: :func:`promptc.parse.vote.combine`).
    rounds: dict[str, dict[str, Any]] = field(default_factory=dict)

    def line(self, result: ItemResult, attempts: int) -> str:
        """The row's line of ``results.jsonl``, its rounds beside it when the build votes."""
        return result_line(result, attempts, self.rounds.get(result.item_id or ""))

    def failed(self, every: bool = False) -> dict[str, list[int]]:
        """Build request id → the sorted positions of its items that repair re-asks (with
        ``every``, of every item not ok: what ``collect``'s repair build asks again)."""
        out: dict[str, list[int]] = {}
        for (rid, pos), x in self.best.items():
            if not x.ok if every else needs_repair(x):
                out.setdefault(rid, []).append(pos)
        return {rid: sorted(p) for rid, p in out.items()}


def repair_shape(task: Task, record: Mapping[str, Any], request_id: str) -> RequestShape:
    """The request shape of a repair answer from its ``repair`` record (``item_ids``,
    ``kind``), its questions looked up in the task."""
    target = record.get("target_item")
    return request_shape(
        task,
        {
            "id": request_id,
            "kind": record.get("kind") or task.strategy.kind,
            "item_ids": [str(i) for i in record.get("item_ids") or ()],
            "target_item": target if isinstance(target, str) else None,
        },
    )


def parse_answer(
    task: Task,
    shape: RequestShape,
    output: str,
    finish_reason: object = None,
    refusal: object = None,
) -> list[ItemResult]:
    """One answer's results as every command keeps them: ``recover`` mode, lone surrogates
    read as ``promptc parse`` reads them, the items an output cut off at ``max_tokens`` lost
    ``truncated``, and of a request for one target item (``retrieval``), that item's result
    only. An empty answer with the model's ``refusal`` leaves its items missing, saying
    so (:func:`refused_message`), as ``collect`` says it."""
    said = refused_message(output, refusal)
    if said is not None:
        return missing_results(shape, said)
    finish = finish_reason if isinstance(finish_reason, str) else None
    return target_results(
        parse_output(task, shape, characters(output), finish_reason=finish), {shape.id: shape}
    )


def refused_message(output: str, refusal: object) -> str | None:
    """What the items of an answer the model refused say (``no answer: the model refused:
    …``), or ``None`` when it did not (no ``refusal``, or an answer besides it)."""
    if isinstance(refusal, str) and refusal and not output.strip():
        return f"no answer: the model refused: {refusal}"
    return None


def result_line(result: ItemResult, attempts: int, rounds: Mapping[str, Any] | None = None) -> str:
    """One line of ``results.jsonl``: the result and how many answers asked for its item
    (and, when the build votes, its ``votes`` and ``rounds``)."""
    return dumps({**result.to_dict(), "attempts": attempts, **(rounds or {})})


def origin_of(rid: str) -> str:
    """The build request an answer of ``promptc run`` was asked for: a repair's
    (``r0003.repair1``) or a voting round's stand-in's (``r0007.v3.live``, asked of the
    round's unsettled items); ``rid`` itself for any other id."""
    if ".repair" in rid:
        return rid.split(".repair")[0]
    return rid.removesuffix(STAND_IN_SUFFIX)


def merge_answers(
    order: Sequence[str],
    parsed: Mapping[str, Sequence[ItemResult]],
    repairs: Mapping[str, Mapping[str, Any]],
    fields: Sequence[OutputField] = (),
) -> Merged:
    """Merges repair answers into the results of the build's answers.

    The one code path of ``promptc run --parse``, ``promptc collect`` and ``promptc parse``,
    so that the same answers give the same ``results.jsonl`` whichever wrote it.

    Args:
        order: The build's request ids, in build order.
        parsed: Request id → its results (:func:`parse_answer`), for the build's answered
            requests and for repair answers alike.
        repairs: Repair request id → its ``repair`` record (``attempt``, ``of``,
            ``item_ids``), for the repair answers in ``parsed``.
        fields: The task's outputs: a voting build's rounds agree by their types
            (:func:`promptc.parse.vote.combine`).

    Repair answers are applied by round, then in build order of their origin: an item's
    result is its first ``ok`` one, else the last attempt's.
    """
    best: dict[tuple[str, int], ItemResult] = {}
    attempts: dict[tuple[str, int], int] = {}
    #: (build request id, item id) → the item's position: a request holds an item once.
    at: dict[tuple[str, str], int] = {}
    parsed = _stand_ins(parsed, repairs)
    repairs = {k: v for k, v in repairs.items() if v.get("attempt") != STAND_IN}
    for rid in order:
        for x in parsed.get(rid, ()):
            if x.item_id is not None:
                best[(rid, x.index)] = x
                attempts[(rid, x.index)] = 1
                at.setdefault((rid, x.item_id), x.index)
    merged = Merged([], best, attempts)
    position: dict[str, int] = {rid: k for k, rid in enumerate(order)}

    def sort_key(rid: str) -> tuple[int, int, str]:
        attempt = repairs[rid].get("attempt")
        origin = str(repairs[rid].get("of"))
        return (attempt if isinstance(attempt, int) else 0, position.get(origin, -1), rid)

    for rid in sorted((r for r in repairs if r in parsed), key=sort_key):
        record = repairs[rid]
        origin = str(record.get("of"))
        wanted = [str(i) for i in record.get("item_ids") or ()]
        # Each repair item is at the position of the origin's item of that id; the origin's
        # results hold only what it is for (its target). An item the origin is not for (a
        # retrieval request's demonstration) is not merged.
        if not any((origin, i) in at for i in wanted):
            merged.unused.append(rid)
            continue
        for x in parsed[rid]:
            if x.item_id is None or not 1 <= x.index <= len(wanted):
                continue
            pos = at.get((origin, x.item_id))
            if pos is None or x.item_id != wanted[x.index - 1]:
                continue
            key = (origin, pos)
            attempts[key] += 1
            if not best[key].ok:
                if x.ok:
                    merged.repaired += 1
                best[key] = x
    for rid in order:
        for x in parsed.get(rid, ()):
            if x.item_id is None:
                merged.rows.append((x, 1))
            else:
                merged.rows.append((best[(rid, x.index)], attempts[(rid, x.index)]))
    if any(round_of(rid) > 1 for rid in order):
        merged.rows, merged.rounds = combine(merged.rows, fields)
    return merged


def valid_record(record: Mapping[str, Any], origin_items: Sequence[str]) -> bool:
    """Whether a ``repair`` record read back (from ``outputs.jsonl`` or a repair build's
    manifest) is one :meth:`RepairRequest.record` could have written for a request of
    ``origin_items``: a record edited by hand is not merged (its answer would be credited to
    items its request never asked, or fail a reader with a ``TypeError``)."""
    attempt, items = record.get("attempt"), record.get("item_ids")
    target, positions = record.get("target_item"), record.get("positions")
    if (
        not isinstance(attempt, int)
        or isinstance(attempt, bool)
        or attempt < 0
        or not isinstance(record.get("of"), str)
        or record.get("kind") not in STRATEGY_NAMES
        or not isinstance(items, list)
        or not items
        or not all(isinstance(i, str) and i in origin_items for i in items)
        or len(set(items)) != len(items)
        or (target is not None and target not in items)
    ):
        return False
    if attempt != STAND_IN:
        return True
    return (
        isinstance(positions, list)
        and len(positions) == len(items)
        and all(
            isinstance(p, int)
            and not isinstance(p, bool)
            and 1 <= p <= len(origin_items)
            and origin_items[p - 1] == i
            for p, i in zip(positions, items)
        )
    )


def missing_results(shape: RequestShape, why: str) -> list[ItemResult]:
    """The results of a request with no answer: each item it is for ``missing``, saying
    ``why`` (a repair answer may still answer them, as :func:`merge_answers` merges it)."""
    missing = [
        ItemResult(shape.id, item_id, k, "missing", message=why)
        for k, item_id in enumerate(shape.item_ids, 1)
    ]
    return target_results(missing, {shape.id: shape})


def stood_in(repairs: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The build requests a stand-in (:data:`STAND_IN`) was asked for instead."""
    return {str(r.get("of")) for r in repairs.values() if r.get("attempt") == STAND_IN}


def _stand_ins(
    parsed: Mapping[str, Sequence[ItemResult]], repairs: Mapping[str, Mapping[str, Any]]
) -> Mapping[str, Sequence[ItemResult]]:
    """``parsed`` with the answers of stand-ins (:data:`STAND_IN`) as their build requests'
    own, each at its position in the build request; the stand-in's id stays on them. A build
    request answered itself (asked whole by a later run of the build without early stop)
    keeps its own answer."""
    moved: dict[str, list[ItemResult]] = {}
    for rid, record in repairs.items():
        positions = record.get("positions")
        if (
            record.get("attempt") != STAND_IN
            or rid not in parsed
            or not isinstance(positions, list)
            or str(record.get("of")) in parsed  # the request itself was answered: it stands
        ):
            continue
        moved[str(record.get("of"))] = [
            x._replace(index=positions[x.index - 1])
            for x in parsed[rid]
            if x.item_id is not None and 1 <= x.index <= len(positions)
        ]
    return {**parsed, **moved} if moved else parsed
