"""The request being parsed: its id, kind, item ids and (for Auto-Demo) the questions the
model must repeat.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from promptc import markers
from promptc.errors import OutputParseError
from promptc.ir import Item, Request, Task
from promptc.strategies import NAMES, Strategy, find_strategy
from promptc.text import or_list

# --------------------------------------------------------------------------------------------
# The request being parsed
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestShape:
    """What parsing needs to know of a request: its id, strategy, items and their questions.

    ``questions[k]`` is the text item k's ``Q[k+1]`` must repeat in ``auto-demo`` (see
    :func:`promptc.markers.question_text`); empty strings when unknown. ``target_item`` is the
    item the request is for (``retrieval`` selection), ``None`` when it is for all its items.
    """

    id: str
    kind: Strategy
    item_ids: tuple[str, ...]
    questions: tuple[str, ...]
    target_item: str | None = None


_ITEMS: list[tuple[Task, dict[str, Item]]] = []


def items_by_id(task: Task) -> Mapping[str, Item]:
    """The task's items by id, made once per task (a build has one task and many requests)."""
    if _ITEMS and _ITEMS[0][0] is task:
        return _ITEMS[0][1]
    by_id = {it.id: it for it in task.items}
    _ITEMS[:] = [(task, by_id)]
    return by_id


def request_shape(task: Task, request: object) -> RequestShape:
    """Reads an :class:`~promptc.ir.Request`, a ``requests.jsonl`` line (a mapping) or any object
    with ``id``, ``kind`` and ``item_ids`` (and optionally ``questions``).

    Questions not given are looked up among ``task.items`` by item id.

    Raises:
        OutputParseError: The request lacks an id or item ids, or names an unknown strategy.
    """

    def get(name: str) -> Any:
        if isinstance(request, Mapping):
            return request.get(name)
        return getattr(request, name, None)

    rid = get("id") if get("id") is not None else get("request_id")
    named = get("kind") or task.strategy.kind
    kind = named if isinstance(named, Strategy) else find_strategy(named)
    target = get("target_item")
    if isinstance(request, Request):
        item_ids: Any = request.batch.item_ids
        if request.batch.target is not None:
            target = request.batch.item_ids[request.batch.target]
    else:
        item_ids = get("item_ids")
        batch = get("batch")
        if item_ids is None and batch is not None:
            item_ids = getattr(batch, "item_ids", None)
    if rid is None or item_ids is None or isinstance(item_ids, (str, bytes)):
        raise OutputParseError(
            "a request needs an 'id' and a list of 'item_ids'", code="bad-request"
        )
    if kind is None:
        raise OutputParseError(
            f"unknown strategy kind {named!r} in request {rid}; expected " + or_list(NAMES),
            code="bad-request",
        )
    try:
        ids = tuple(str(i) for i in item_ids)
    except TypeError:  # a number, not a list
        raise OutputParseError(
            f"request {rid}: 'item_ids' is {item_ids!r:.40}; expected a list", code="bad-request"
        ) from None
    questions = get("questions")
    if questions is not None and (
        isinstance(questions, (str, bytes)) or not isinstance(questions, Sequence)
    ):
        raise OutputParseError(
            f"request {rid}: 'questions' is {questions!r:.40}; expected a list of texts",
            code="bad-request",
        )
    if questions is None:
        by_id = items_by_id(task)
        qs = []
        for i in ids:
            it = by_id.get(i)
            try:
                qs.append(markers.question_text(task.inputs, it.inputs) if it else "")
            except KeyError:
                qs.append("")
        questions = qs
    target_item = str(target) if target is not None and str(target) in ids else None
    return RequestShape(str(rid), kind, ids, tuple(str(q) for q in questions), target_item)


# --- helpers shared by the paths ------------------------------------------------------------


def marker_label(prefix: str, index: int) -> str:
    """``A[3]`` (the marker without its colon), as messages name an answer or question."""
    return markers.marker(prefix, index)[: -len(markers.MARKER_END)]


def item_id_at(shape: RequestShape, index: int) -> str | None:
    return shape.item_ids[index - 1] if 1 <= index <= len(shape.item_ids) else None
