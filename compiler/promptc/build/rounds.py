"""The voting rounds of a build (``strategy.vote``): every batch asked again, reordered.

Round 1 is the selection's batches as they are. Round ``r`` > 1 deals the same items again so
that each lands at another position and, with more than one batch, beside other neighbours
(BatchPrompt's Batch Permutation: Lin et al., 2023, arXiv 2309.00384). For a selection of B
batches of n items, the item at position p of batch b goes, in round r, to

    batch (b + (r - 1)·p) mod B,  position (p + r - 1) mod n

— a bijection of the B × n slots for every r (for a fixed new position the old one is fixed,
and b ↦ b + (r - 1)·p permutes the batches), so each round asks every item exactly once. Two
items of one batch (positions p ≠ q) share a batch again in round r only when
(r - 1)(p - q) ≡ 0 (mod B). A short last batch leaves empty slots; each new batch keeps its
items in their new positions' order, reordered where that would put an item back at a
position it had (:func:`_placed`). The positions differ round to round for up to n rounds,
wherever the batch sizes allow it.

Round n + 1 would put every item back at its round-1 position (with B = 1 or 2, beside the
same neighbours: the same prompts again, whose answers a cache replays as more votes). With a
short last batch, whose empty slots close up, an earlier round can come back sooner: a batch of
the same items in the same order. A task with more rounds than the widest batch of its data has
positions (``batch_size``, or the item count when the data is smaller) is therefore an error
at ``strategy.vote.rounds`` (``vote-rounds``) naming the most rounds the data allows, for
build, plan and eval alike (the spec's check refuses ``rounds`` above ``batch_size`` earlier;
plan and eval leave out the variants whose batches are too small). A round whose dealing would
ask such a batch again is dealt anew: the items shuffled with a seed of the selection's, the
round and the attempt (:func:`_shuffled`), its positions then no longer all new; it is refused
(``vote-rounds``) only when no shuffle avoids the repeat. A build that deals without a repeat
stays as it was.

A ``retrieval`` batch is for its target item, with that item's most similar items as its
neighbours: the selection deals its rounds itself (:func:`promptc.select.similarity.retrieval_groups`),
as only it holds the similarities that choose each round's other neighbours; such a selection
arrives here with its rounds and is kept as it is.

Requests of round r > 1 are named after their place in the round (``r0007.v2``,
:func:`promptc.ir.request_id`) and ``batches.jsonl`` says each one's round.
"""

from __future__ import annotations

import random
from typing import NoReturn

from promptc import ir
from promptc.errors import SelectionError
from promptc.select.batches import SelectionResult
from promptc.select.methods import select

MESSAGES = {
    "vote-rounds": "rounds {rounds} is more than this data allows: round {round} would {why}; "
    "expected at most {most}",
}
#: Why a round is one too many (``{why}`` of ``vote-rounds``).
WHY = {
    "positions": "put every item back at a position it had (the widest batch has {width})",
    "repeat": "ask again a batch an earlier round asked, the same items in the same order",
}
HINTS = {
    "vote-rounds": "its answers would count as more votes; lower strategy.vote.rounds, or "
    "raise strategy.batch_size",
}


def with_rounds(task: ir.Task, selection: SelectionResult) -> SelectionResult:
    """The selection's batches followed by those of every further voting round; the selection
    itself for one round.

    Raises:
        SelectionError: A round that would ask an item at a position it had, or a batch an
            earlier round asked (``vote-rounds``, see the module's docstring).
    """
    rounds = task.strategy.rounds
    if rounds == 1:
        return selection
    batches = list(selection.batches)
    first = [b for b in batches if b.round == 1]
    width = max((len(b.item_ids) for b in first), default=rounds)
    if rounds > width:
        _refuse(task, width + 1, WHY["positions"].format(width=width))
    if first and len(first) == len(
        batches
    ):  # not dealt by the selection (see the module's docstring)
        asked = {b.item_ids for b in first}
        had: dict[str, set[int]] = {i: {p} for b in first for p, i in enumerate(b.item_ids)}
        for r in range(2, rounds + 1):
            dealt = _round(first, r, had)
            for attempt in range(SHUFFLES):
                if not any(b.item_ids in asked for b in dealt):
                    break
                dealt = _shuffled(first, r, task.strategy.selection.seed, attempt)
            else:
                _refuse(task, r, WHY["repeat"])
            asked.update(b.item_ids for b in dealt)
            for b in dealt:
                for p, i in enumerate(b.item_ids):
                    had[i].add(p)
            batches += dealt
    info = {**selection.info, "requests": len(batches), "vote_rounds": rounds}
    if "cost" in info:  # the summary a build prints says what the rounds cost
        most = (
            "at most " if task.strategy.vote is not None and task.strategy.vote.early_stop else ""
        )
        info["cost"] = (
            f"{info['cost']}, asked in {rounds} voting rounds: {most}{len(batches)} requests"
        )
    return SelectionResult(batches, info)


def too_many_rounds(task: ir.Task) -> SelectionError | None:
    """``vote-rounds`` when the batches the task's data make (dealt by its selection) are too
    narrow for its voting rounds (three items with ``rounds: 4``), else ``None``: what
    :func:`with_rounds` would refuse, found before anything is built or sent.

    Raises:
        PromptcError: The selection fails otherwise.
    """
    if task.strategy.rounds == 1:
        return None
    try:
        with_rounds(task, select(task))
    except SelectionError as e:
        if e.code != "vote-rounds":
            raise
        return e
    return None


def _refuse(task: ir.Task, r: int, why: str) -> NoReturn:
    """Raises ``vote-rounds`` for a task whose round ``r`` is one too many."""
    vote = task.strategy.vote
    raise SelectionError(
        MESSAGES["vote-rounds"].format(rounds=task.strategy.rounds, round=r, why=why, most=r - 1),
        location=None if vote is None else vote.location,
        path=("strategy", "vote", "rounds"),
        hint=HINTS["vote-rounds"],
        code="vote-rounds",
    )


#: Seeded reshuffles tried for a round whose dealing repeats a batch, before it is refused.
SHUFFLES = 64


def _shuffled(first: list[ir.Batch], r: int, seed: int, attempt: int) -> list[ir.Batch]:
    """Round ``r`` dealt anew when :func:`_round` would repeat a batch an earlier round asked
    (a short last batch makes the dealing cycle sooner): the items shuffled with a seed of
    the selection's, the round and the attempt, and cut into batches of the first round's
    sizes. Deterministic; the positions are then no longer all new."""
    items = [it for b in first for it in zip(b.item_ids, b.item_indices, strict=True)]
    random.Random(f"{seed}:{r}:{attempt}").shuffle(items)
    out, start = [], 0
    for index, b in enumerate(first):
        out.append(_batch(index, items[start : start + len(b.item_ids)], r))
        start += len(b.item_ids)
    return out


def _round(first: list[ir.Batch], r: int, had: dict[str, set[int]]) -> list[ir.Batch]:
    """The batches of round ``r`` (see the module's docstring); ``had``: each item's
    positions in the earlier rounds."""
    width = max(len(b.item_ids) for b in first)
    count = len(first)
    slots: list[dict[int, tuple[str, int]]] = [{} for _ in first]
    for b, batch in enumerate(first):
        for p, item in enumerate(zip(batch.item_ids, batch.item_indices, strict=True)):
            slots[(b + (r - 1) * p) % count][(p + r - 1) % width] = item
    return [
        _batch(index, _placed([dealt[p] for p in sorted(dealt)], had), r)
        for index, dealt in enumerate(slots)
    ]


def _placed(items: list[tuple[str, int]], had: dict[str, set[int]]) -> list[tuple[str, int]]:
    """A new batch's items ordered so that each is at a position it has not had, where the
    batch's size allows it (a maximum matching of items to new positions, each item trying
    its dealt place first): with a short last batch the dealt places close up, and most items
    came back to a position they had. Items no new position is left for take the rest."""
    n = len(items)
    if all(k not in had[i] for k, (i, _) in enumerate(items)):
        return items  # the dealing's own order: every position new
    at: dict[int, int] = {}  # position -> item

    def seat(k: int, tried: set[int]) -> bool:
        for pos in (k, *range(n)):
            if pos in tried or pos in had[items[k][0]]:
                continue
            tried.add(pos)
            if pos not in at or seat(at[pos], tried):
                at[pos] = k
                return True
        return False

    for k in range(n):
        seat(k, set())
    rest = iter(k for k in range(n) if k not in at.values())
    return [items[at[pos]] if pos in at else items[next(rest)] for pos in range(n)]


def _batch(index: int, items: list[tuple[str, int]], r: int) -> ir.Batch:
    """Batch ``index`` of round ``r``: these (item id, item index) pairs, in order."""
    return ir.Batch(
        index=index,
        item_ids=tuple(i for i, _ in items),
        item_indices=tuple(k for _, k in items),
        round=r,
    )
