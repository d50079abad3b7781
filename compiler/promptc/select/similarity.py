"""Similarity-based batch selection: ``retrieval``, ``partition`` and ``diverse``.

Items are embedded (:mod:`promptc.select.embed`, cached), their nearest neighbours found
(:mod:`promptc.select.neighbors`, exact and memory-bounded; faiss above a size), and grouped:

``retrieval``
    The Auto-Demo paper's Algorithm 4 (Feng, Hong & Zhang, 2024, arXiv 2410.01724): one batch
    per item d_i, holding d_i and its N-1 most similar other items. It costs |D| requests, not
    |D|/N. d_i is the batch's *target* (:attr:`promptc.ir.Batch.target`); the others are
    demonstrations, and each item's answer is taken from its own batch. The target sits at
    ``target_position`` (``-1``, the default, is last); the neighbours fill the other places
    from the target outwards, most similar nearest, so with the target last they appear in
    increasing similarity and the most similar one comes right before it.
``partition``
    Disjoint batches of mutually similar items, covering every item once (⌈|D|/N⌉ requests).
    Greedy, densest first: items are taken as seeds in decreasing order of the mean similarity
    to their N-1 nearest neighbours (ties by item order); an unassigned seed forms a batch with
    its N-1 nearest *unassigned* items. Tight groups are claimed while they are intact, and
    outliers, whose neighbours are far anyway, are grouped last.
``diverse``
    Disjoint batches of mutually dissimilar items (Cheng, Kasai & Yu, 2023 compare similarity
    and diversity grouping), ⌈|D|/N⌉ requests. For unit vectors the summed pairwise similarity
    of a batch is ``(|S|² - n) / 2``, ``S`` the sum of its vectors, so items are dealt to keep
    batch sums small: most central item first, each into the batch (with room) whose sum it is
    least similar to; then, up to :data:`REFINE_LIMIT` items, pairs of items swap batches
    while a swap lowers the sum of ``|S|²``. The greedy part costs O(|D|²/N · d) arithmetic
    and each swap pass O(|D|²), with no neighbour search.

Ties are broken by item order throughout, and the arithmetic is fixed (float32 products in
fixed tile shapes, float64 for reported similarities, stable sorts), so selection is
deterministic. :attr:`~promptc.ir.Batch.similarities` holds each member's cosine similarity to
the target (``retrieval``) or to the batch centroid (``partition``, ``diverse``), rounded to
:data:`ROUND` decimals so that build outputs are byte-stable.

The core, :func:`find_groups`, works on a plain matrix of vectors; :func:`select_similar`
adapts it to a :class:`promptc.ir.Task`; :data:`promptc.select.methods.METHODS` calls it.
This module needs numpy (the ``embed`` extra): ``methods`` imports it only when a spec asks for
a similarity method.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from promptc import ir
from promptc.errors import Location, SelectionError
from promptc.markers import question_text
from promptc.select import neighbors as nb
from promptc.select.batches import SelectionResult
from promptc.select.batches import batch_size as size_of
from promptc.select.embed import embed_texts
from promptc.select.neighbors import ANN_THRESHOLD, normalize

#: Decimals of the similarities written into build outputs.
ROUND = 6
#: Nearest neighbours kept per item for ``partition`` seeds, as a multiple of the batch size;
#: a seed whose list runs out of unassigned items falls back to an exact scan.
CANDIDATES_PER_SLOT = 4
MIN_CANDIDATES = 32

#: ``diverse`` improves its greedy batches by swaps up to this many items (it holds their
#: |D|×|D| Gram matrix, 32 MiB at the limit); larger datasets keep the greedy batches.
REFINE_LIMIT = 2048
REFINE_PASSES = 5
#: A swap must lower the objective by more than this, so that rounding cannot cycle.
SWAP_EPSILON = 1e-9

#: How each method groups items, as the manifest says it.
ALGORITHMS = {
    "retrieval": "Auto-Demo Algorithm 4: each item with its N-1 most similar other items, "
    "by cosine similarity, ties by item order",
    "partition": "greedy, densest first: each unassigned seed (by decreasing mean similarity "
    "to its N-1 nearest neighbours) takes its N-1 nearest unassigned items",
    "diverse": "greedy balancing of batch vector sums, most central item first",
}

MESSAGES = {
    "target-position": "target_position {value} is outside the batch of {size} items; "
    "expected an integer from {low} to {high}",
    "not-similarity": "'{method}' is not a similarity method; expected one of {choices}",
}


@dataclass(frozen=True)
class Group:
    """A batch in terms of positions in the vector matrix.

    Attributes:
        members: Row positions, in prompt order.
        target: Index into ``members`` of the item the batch is for (``retrieval``), or None.
        similarities: Each member's cosine similarity to the target or the centroid, rounded.
        round: The voting round the batch is asked in, from 1 (``retrieval`` alone deals its
            rounds here: only it needs other neighbours per item).
    """

    members: tuple[int, ...]
    target: int | None = None
    similarities: tuple[float, ...] = ()
    round: int = 1


@dataclass(frozen=True)
class Grouping:
    """Groups plus how they were found, for the manifest."""

    groups: list[Group]
    neighbors: dict[str, object] = field(default_factory=dict)
    algorithm: str = ""


def _check_target_position(
    target_position: int, batch_size: int, location: Location | None = None
) -> None:
    if not -batch_size <= target_position < batch_size:
        raise SelectionError(
            MESSAGES["target-position"].format(
                value=target_position, size=batch_size, low=-batch_size, high=batch_size - 1
            ),
            location=location,
            path=("strategy", "selection", "target_position"),
            code="target-position",
        )


def place_target(length: int, target_position: int) -> list[int]:
    """Slots of a batch of ``length``: the target's first, then the neighbours' by rank.

    The target goes to ``target_position`` (Python-style, ``-1`` = last; clamped when the batch
    is shorter than ``batch_size``); neighbour ``r`` (0 = most similar) goes to the r-th
    nearest remaining slot, the earlier slot first when two are equally near.
    """
    t = target_position if target_position >= 0 else length + target_position
    t = min(max(t, 0), length - 1)
    rest = sorted((s for s in range(length) if s != t), key=lambda s: (abs(s - t), s))
    return [t, *rest]


def _round(values: NDArray[np.float64]) -> tuple[float, ...]:
    # float(round(x, 6)) of a float64 is stable across platforms; the +0.0 folds -0.0.
    return tuple(round(float(v), ROUND) + 0.0 for v in values)


def _to_centroid(vectors64: NDArray[np.float64], members: Sequence[int]) -> tuple[float, ...]:
    block = vectors64[list(members)]
    centroid = block.sum(axis=0)
    norm = float(np.linalg.norm(centroid))
    if norm == 0.0:
        return tuple(0.0 for _ in members)
    return _round(block @ (centroid / norm))


def retrieval_groups(
    vectors: NDArray[np.float32],
    batch_size: int,
    *,
    target_position: int = -1,
    seed: int = 0,
    ann_threshold: int = ANN_THRESHOLD,
    rounds: int = 1,
) -> Grouping:
    """The paper's Algorithm 4: for each item, itself plus its N-1 most similar items.

    With voting ``rounds`` (``strategy.vote``), every item has a batch in each round, each
    round's with other neighbours: round r takes the next N-1 of the item's
    (N-1)·``rounds`` nearest, by rank (round 1 the nearest, as without voting), wrapping
    around when the data holds fewer; and its target moves r - 1 slots on from
    ``target_position``, so that it is asked at another position each round. The groups
    come round by round, each round in item order.

    A batch of N items (of all n when n < N) has N positions: round N + 1 would put every
    target back where an earlier round had it, and with few neighbours beside the same ones,
    asking a prompt again. So at most N rounds are dealt, each target's batches all differ, and
    a task with more rounds is refused by the build (:func:`promptc.build.rounds.with_rounds`).
    """
    width = batch_size - 1
    rounds = min(rounds, batch_size, max(1, vectors.shape[0]))
    found = nb.all_neighbors(vectors, width * rounds, seed=seed, ann_threshold=ann_threshold)
    v64 = vectors.astype(np.float64)
    groups = []
    for r in range(1, rounds + 1):
        for i in range(vectors.shape[0]):
            ranked = found.indices[i].tolist()
            k = len(ranked)
            picked = sorted({((r - 1) * width + j) % k for j in range(min(width, k))})
            neigh = [ranked[x] for x in picked]
            length = 1 + len(neigh)
            first = place_target(length, target_position)[0]
            slots = place_target(length, (first + r - 1) % length)
            members = [0] * length
            for slot, item in zip(slots, [i, *neigh]):
                members[slot] = item
            groups.append(Group(tuple(members), slots[0], _round(v64[members] @ v64[i]), r))
    return Grouping(groups, found.describe(), ALGORITHMS["retrieval"])


def partition_groups(
    vectors: NDArray[np.float32],
    batch_size: int,
    *,
    seed: int = 0,
    ann_threshold: int = ANN_THRESHOLD,
) -> Grouping:
    """Disjoint batches of mutually similar items, greedy densest first; members and batches
    in item order."""
    n = vectors.shape[0]
    if batch_size <= 1 or n <= batch_size:
        trivial = [[i] for i in range(n)] if batch_size <= 1 else ([list(range(n))] if n else [])
        return _disjoint(vectors, trivial, {"search": "none"}, ALGORITHMS["partition"])
    k = min(n - 1, max(CANDIDATES_PER_SLOT * batch_size, MIN_CANDIDATES))
    found = nb.all_neighbors(vectors, k, seed=seed, ann_threshold=ann_threshold)
    # Density: mean similarity to the N-1 nearest neighbours, in float64 for a stable order.
    density = found.scores[:, : batch_size - 1].astype(np.float64).mean(axis=1)
    seeds = np.lexsort((np.arange(n), -density))
    assigned = np.zeros(n, dtype=bool)
    groups: list[list[int]] = []
    for s in seeds.tolist():
        if assigned[s]:
            continue
        assigned[s] = True
        members = [s]
        for j in found.indices[s].tolist():
            if not assigned[j]:
                members.append(j)
                if len(members) == batch_size:
                    break
        if len(members) < batch_size:
            # The candidate list ran out: scan every unassigned item exactly.
            free = np.nonzero(~assigned)[0]
            free = free[~np.isin(free, members)]
            if free.size:
                scores = (vectors[free] @ vectors[s])[None, :]
                _, best = nb.top_k(
                    scores, free[None, :].astype(np.int64), batch_size - len(members)
                )
                members.extend(best[0].tolist())
        assigned[members] = True
        groups.append(members)
    return _disjoint(vectors, groups, found.describe(), ALGORITHMS["partition"])


def _disjoint(
    vectors: NDArray[np.floating], members: list[list[int]], info: dict[str, object], algorithm: str
) -> Grouping:
    """Disjoint groups (empty ones dropped), members and groups in item order, each member's
    similarity to its group's centroid."""
    v64 = vectors.astype(np.float64)
    ordered = sorted((sorted(g) for g in members if g), key=lambda g: g[0])
    groups = [Group(tuple(g), None, _to_centroid(v64, g)) for g in ordered]
    return Grouping(groups, info, algorithm)


def diverse_groups(vectors: NDArray[np.float32], batch_size: int) -> Grouping:
    """Disjoint batches of mutually dissimilar items, by greedy balancing of batch sums.

    For unit vectors, a batch's summed pairwise similarity is ``(|S|² - n) / 2`` where ``S``
    is the sum of its vectors, so dissimilar batches are batches with small sums. Items are
    taken most central first (decreasing similarity to the mean of all items, ties by item
    order) and each joins the batch, among those with room, whose sum it is least similar to
    (ties by batch number); central items are spread first, and the outliers that come last
    fill the remaining places where they least repeat what a batch already holds.
    """
    n = vectors.shape[0]
    size = max(1, batch_size)
    v64 = vectors.astype(np.float64)
    n_batches = -(-n // size)
    centre = v64.mean(axis=0) if n else v64.sum(axis=0)
    order = np.lexsort((np.arange(n), -(v64 @ centre)))
    sums = np.zeros((n_batches, vectors.shape[1]), np.float64)
    room = np.full(n_batches, size)
    dealt: list[list[int]] = [[] for _ in range(n_batches)]
    for item in order.tolist():
        scores = sums @ v64[item]
        scores[room == 0] = np.inf
        b = int(np.argmin(scores))  # the first minimum: ties go to the lower batch number
        sums[b] += v64[item]
        room[b] -= 1
        dealt[b].append(item)
    algorithm = ALGORITHMS["diverse"]
    if n <= REFINE_LIMIT:
        swaps = _refine_by_swaps(v64, dealt, sums)
        algorithm += f", then {swaps} improving swaps between batches"
    return _disjoint(vectors, dealt, {}, algorithm)


def _refine_by_swaps(
    v64: NDArray[np.float64], batches: list[list[int]], sums: NDArray[np.float64]
) -> int:
    """Swaps items between batches while a swap lowers ``Σ|S_b|²``; returns how many were made.

    Swapping ``x`` (batch ``a``) with ``y`` (batch ``b``) changes the objective by
    ``2 (S_a - S_b)·(y - x) + 2 |x - y|²``. With the Gram matrix ``G`` and every item's
    similarity to every batch sum ``T`` (kept up to date), that is O(|D|) per item for all
    ``y`` at once. Items are visited in item order and each takes its best swap (ties by item
    order), for at most :data:`REFINE_PASSES` passes or until a pass changes nothing.
    """
    n = v64.shape[0]
    where = np.empty(n, dtype=np.int64)
    for b, members in enumerate(batches):
        where[members] = b
    gram = v64 @ v64.T
    sq = np.diagonal(gram).copy()
    to_sum = v64 @ sums.T  # to_sum[y, b] = S_b · y
    rows = np.arange(n)
    swaps = 0
    for _ in range(REFINE_PASSES):
        changed = False
        for x in range(n):
            a = int(where[x])
            own = to_sum[rows, where]
            delta = 2 * (to_sum[:, a] - to_sum[x, a] - own + to_sum[x, where])
            delta += 2 * (sq + sq[x] - 2 * gram[x])
            delta[where == a] = np.inf
            y = int(np.argmin(delta))  # the first minimum: ties go to the lower item
            if not delta[y] < -SWAP_EPSILON:
                continue
            b = int(where[y])
            step = gram[:, y] - gram[:, x]
            to_sum[:, a] += step
            to_sum[:, b] -= step
            sums[a] += v64[y] - v64[x]
            sums[b] += v64[x] - v64[y]
            batches[a][batches[a].index(x)] = y
            batches[b][batches[b].index(y)] = x
            where[x], where[y] = b, a
            swaps += 1
            changed = True
        if not changed:
            break
    return swaps


def find_groups(
    vectors: NDArray[np.floating],
    batch_size: int,
    method: str,
    *,
    seed: int = 0,
    target_position: int = -1,
    ann_threshold: int = ANN_THRESHOLD,
    location: Location | None = None,
    rounds: int = 1,
) -> Grouping:
    """Groups the rows of ``vectors`` into batches with a similarity method.

    Args:
        vectors: ``(n, d)`` embeddings, one row per item in item order (normalised here).
        batch_size: N, items per batch (at least 1).
        method: ``retrieval``, ``partition`` or ``diverse``.
        seed: Seed of the approximate index's clustering, used above the ANN threshold only.
        target_position: Where ``retrieval`` puts each batch's target (``-1`` = last).
        ann_threshold: Item count above which faiss is used.
        location: Where the spec chose the method, for errors.
        rounds: Voting rounds; ``retrieval`` gives every item a batch per round (the other
            methods' rounds are dealt from their batches by the build).

    Returns:
        The batches, in request order, with the neighbour search's details for a manifest.
    """
    batch_size = max(1, batch_size)
    v = normalize(vectors)
    if method == "retrieval":
        _check_target_position(target_position, batch_size, location)
        return retrieval_groups(
            v,
            batch_size,
            target_position=target_position,
            seed=seed,
            ann_threshold=ann_threshold,
            rounds=rounds,
        )
    if method == "partition":
        return partition_groups(v, batch_size, seed=seed, ann_threshold=ann_threshold)
    if method == "diverse":
        return diverse_groups(v, batch_size)
    raise SelectionError(
        MESSAGES["not-similarity"].format(
            method=method, choices=", ".join(repr(m) for m in ir.SIMILARITY_METHODS)
        ),
        location=location,
        path=("strategy", "selection", "method"),
        code="not-similarity",
    )


def mean_within_batch_similarity(
    vectors: NDArray[np.floating], groups: Sequence[Sequence[int]]
) -> float:
    """The mean, over batches of two or more items, of the mean pairwise cosine similarity."""
    v = normalize(vectors).astype(np.float64)
    means = []
    for g in groups:
        if len(g) < 2:
            continue
        block = v[list(g)]
        sims = block @ block.T
        means.append((sims.sum() - np.trace(sims)) / (len(g) * (len(g) - 1)))
    return float(np.mean(means)) if means else 0.0


# --- the task-level entry point, called through promptc.select.methods.METHODS ----------------------------

COST_RETRIEVAL = (
    "{n} requests for {n} items: retrieval builds one batch per item (|D| requests, "
    "not |D|/N = {disjoint}), each with its N-1 most similar items as demonstrations"
)
ANSWERS_FROM = {
    "retrieval": "each item's answer is taken from its own batch (the batch's target); the "
    "other answers in a batch are demonstrations only",
    "partition": "each item appears in exactly one batch, and its answer is taken from it",
    "diverse": "each item appears in exactly one batch, and its answer is taken from it",
}


def select_similar(task: ir.Task) -> SelectionResult:
    """Embeds the task's items and groups them with the spec's similarity method.

    Raises:
        SelectionError: The ``embed`` extra is missing, the model or cache folder is wrong, or
            ``target_position`` does not fit the batch size.
    """
    sel = task.strategy.selection
    size = size_of(task)
    if sel.method == "retrieval":
        # Checked before embedding, so that a wrong spec fails fast and loads no model.
        _check_target_position(sel.target_position, size, sel.location)
    texts = [question_text(task.inputs, item.inputs) for item in task.items]
    emb = embed_texts(
        texts,
        model=sel.model,
        cache_dir=sel.cache_dir,
        endpoint=sel.embeddings,
        spec_dir=task.spec_dir,
        location=sel.location,
    )
    result = find_groups(
        emb.vectors,
        size,
        sel.method,
        seed=sel.seed,
        target_position=sel.target_position,
        location=sel.location,
        rounds=task.strategy.rounds,
    )
    items = task.items
    n = len(items)
    batches = tuple(
        ir.Batch(
            index=b - (g.round - 1) * n,  # its place within its round
            item_ids=tuple(items[p].id for p in g.members),
            item_indices=tuple(items[p].index for p in g.members),
            target=g.target,
            similarities=g.similarities,
            round=g.round,
        )
        for b, g in enumerate(result.groups)
    )
    first = [g.members for g in result.groups if g.round == 1]
    info: dict[str, object] = {
        "embedding": {**emb.model.describe(emb.backend), "dimension": int(emb.vectors.shape[1])},
        "algorithm": result.algorithm,
        "answers_from": ANSWERS_FROM[sel.method],
        "similarities": f"cosine similarity of each item to the batch's "
        f"{'target' if sel.method == 'retrieval' else 'centroid'}, rounded to {ROUND} decimals",
        "mean_within_batch_similarity": round(
            mean_within_batch_similarity(emb.vectors, first), ROUND
        ),
    }
    if result.neighbors:
        info["neighbors"] = result.neighbors
    if sel.method == "retrieval":
        info["target_position"] = sel.target_position
        info["cost"] = COST_RETRIEVAL.format(n=n, disjoint=-(-n // size) if n else 0)
    return SelectionResult(batches, info)
