"""Votes: the answers an item got in its voting rounds (``strategy.vote``), combined.

Every item of a build with votes is asked once a round, at another position each time
(:mod:`promptc.build.rounds`). Its result is then

- the **majority** of its ``ok`` answers (two answers agree when each value is the same by
  its type's comparison, as ``eval`` compares it; a reasoning beside a typed answer does not
  decide, as no two rounds write it word for word); a **tie** goes to the answer of the earliest round among those
  tied — the round asked first, in which the item sat where the selection put it;
- with that answer's result (the earliest round that gave it: its request id, position and
  span), and ``ok``; when no round answered ``ok``, the first round's result as it was.

``results.jsonl`` keeps the voted result where a one-round result has its fields, and beside
them ``votes`` (how many rounds gave the winning answer) and ``rounds`` (each round's
``round``, ``request_id``, ``status`` and ``values``, in round order).

**Early stop** (SEAS, Lin et al., 2023): an item whose last ``early_stop`` answers are ``ok``
and agree is asked no more (:func:`settled`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from promptc.ir import OutputField, round_of
from promptc.parse.results import ItemResult
from promptc.values import agree

__all__ = ["combine", "settled"]


def _same(fields: Sequence[OutputField], a: ItemResult, b: ItemResult) -> bool:
    """Whether two ``ok`` answers of an item agree (:func:`promptc.values.agree`: each value
    by its type's comparison; a reasoning beside a typed answer does not decide)."""
    return agree(fields, a.values, b.values)


def settled(
    answers: Sequence[ItemResult], early_stop: int | None, fields: Sequence[OutputField] = ()
) -> bool:
    """Whether an item's last ``early_stop`` answers (in round order) are ``ok`` and agree."""
    if early_stop is None or len(answers) < early_stop:
        return False
    last = answers[-early_stop:]
    return all(x.ok for x in last) and all(_same(fields, last[0], x) for x in last[1:])


def _winner(answers: Sequence[ItemResult], fields: Sequence[OutputField]) -> tuple[ItemResult, int]:
    """The voted result of an item's answers in round order, and its votes."""
    groups: list[list[ItemResult]] = []  # answers that agree, each group in round order
    for x in answers:
        if not x.ok:
            continue
        group = next((g for g in groups if _same(fields, g[0], x)), None)
        if group is None:
            groups.append([x])
        else:
            group.append(x)
    if not groups:
        return answers[0], 0
    # max() keeps the first of equal sizes: the groups are in the order of their first round.
    best = max(groups, key=len)
    return best[0], len(best)


def combine(
    rows: Iterable[tuple[ItemResult, int]], fields: Sequence[OutputField] = ()
) -> tuple[list[tuple[ItemResult, int]], dict[str, dict[str, Any]]]:
    """An item's rows of every round → its one voted row (in the order of the items' first
    rows; a result for no item stays where it was), and per item id what ``results.jsonl``
    writes beside it (``votes``, ``rounds``). ``fields``: the task's outputs, by whose types
    answers are compared (without them, values as they are)."""
    by_item: dict[str, list[tuple[ItemResult, int]]] = {}
    order: list[tuple[ItemResult, int] | str] = []
    for x, n in rows:
        if x.item_id is None:
            order.append((x, n))
            continue
        if x.item_id not in by_item:
            by_item[x.item_id] = []
            order.append(x.item_id)
        by_item[x.item_id].append((x, n))
    out: list[tuple[ItemResult, int]] = []
    extra: dict[str, dict[str, Any]] = {}
    for entry in order:
        if not isinstance(entry, str):
            out.append(entry)
            continue
        got = sorted(by_item[entry], key=lambda row: round_of(row[0].request_id))
        answers = [x for x, _ in got]
        winner, votes = _winner(answers, fields)
        out.append((winner, sum(n for _, n in got)))
        extra[entry] = {"votes": votes, "rounds": [_round_record(x) for x in answers]}
    return out, extra


def _round_record(x: ItemResult) -> Mapping[str, Any]:
    return {
        "round": round_of(x.request_id),
        "request_id": x.request_id,
        "status": x.status,
        "values": dict(x.values),
    }
