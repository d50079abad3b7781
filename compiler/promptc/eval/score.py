"""The arithmetic of ``promptc eval``, on plain data: nothing here reads files or calls models.

A prediction counts only when its item parsed ``ok``, and is compared with the gold answer
under the rule of its output's type (:meth:`promptc.values.ValueType.matches`: numbers as
exact decimals or within ``tolerance``, text after normalising, …).

An item is correct when every output that has a gold answer is correct. Accuracy is over the
items scored; items whose answer did not parse count as wrong. An item lost because its request
stopped at ``max_tokens`` (status :data:`TRUNCATED`) is wrong too, but counted apart from wrong
answers and from unparsed ones, and left out of accuracy by position: the budget cut it, not its
position. In a voting build accuracy by position counts each round's answer where that round
asked the item, not the voted answer (which sits where the earliest round agreeing with the
majority asked it: the positions whose answers lost the vote would drop out). Intervals are Wilson score intervals at 95 %; paired comparisons use the exact
(binomial) two-sided McNemar test on the items both variants answered.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from fractions import Fraction

from promptc.ir import OutputField, Value
from promptc.parse.results import STATUSES
from promptc.run.repair import origin_of

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal distribution
Z_POWER80 = 0.8416212335729143  # the 80th percentile: a test of power 0.8
Z_ONE_SIDED95 = 1.6448536269514722  # the 95th percentile: a one-sided test at alpha = 0.05
#: An item whose request stopped at ``max_tokens`` before its answer was complete.
TRUNCATED = "truncated"
#: Every status eval counts: the parser's, and :data:`TRUNCATED`.
EVAL_STATUSES: tuple[str, ...] = (*STATUSES, TRUNCATED) if TRUNCATED not in STATUSES else STATUSES


def wilson(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``correct / n`` (``(0.0, 1.0)`` when ``n`` is 0)."""
    if n <= 0:
        return (0.0, 1.0)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for ``b`` and ``c`` discordant pairs.

    Under the null hypothesis each discordant pair goes either way with probability 1/2, so
    ``p = min(1, 2 · P[X ≤ min(b, c)])`` with ``X ~ Binomial(b + c, 1/2)``, computed exactly.
    """
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
    return float(min(Fraction(1), Fraction(2 * tail, 2**n)))


@dataclass(frozen=True)
class Scored:
    """One item's answer that counts: its position in its request and what it said."""

    item_id: str
    position: int  # 1-based, in its request
    status: str
    values: Mapping[str, Value]
    request_id: str = ""
    #: In a voting build, each round's answer of the item, at its own position (in round
    #: order); accuracy by position counts these, not the voted answer (see :func:`score`).
    rounds: tuple[Scored, ...] = ()


@dataclass(frozen=True)
class Rate:
    """``correct`` of ``n``, with its Wilson 95 % interval."""

    correct: int
    n: int

    @property
    def value(self) -> float:
        return self.correct / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.correct, self.n)

    def to_dict(self) -> dict[str, object]:
        lo, hi = self.interval
        return {
            "correct": self.correct,
            "n": self.n,
            "accuracy": round(self.value, 6),
            "ci95": [round(lo, 6), round(hi, 6)],
        }


@dataclass(frozen=True)
class VariantScore:
    """Everything eval says about one variant's answers, before usage and timing."""

    overall: Rate
    per_output: Mapping[str, Rate]
    parse: Rate
    statuses: Mapping[str, int]
    by_position: Mapping[int, Rate]
    correct: Mapping[str, bool] = field(repr=False)
    truncated_by_position: Mapping[int, int] = field(default_factory=dict)
    #: Whether accuracy by position counts each voting round's answer (a voting build),
    #: rather than each item's one answer.
    by_position_rounds: bool = False

    @property
    def truncated(self) -> int:
        """Items lost to ``max_tokens``."""
        return self.statuses.get(TRUNCATED, 0)

    @property
    def unparsed(self) -> int:
        """Items with no usable answer for another reason than truncation."""
        return self.overall.n - self.parse.correct - self.truncated

    @property
    def wrong(self) -> int:
        """Items that parsed but whose answer is not the gold one."""
        return self.parse.correct - self.overall.correct


def pick_answers(
    results: Iterable[Mapping[str, object]],
    targets: Mapping[str, str] | None = None,
    positions: Mapping[str, Mapping[str, int]] | None = None,
) -> dict[str, Scored]:
    """The answer that counts for each item.

    Args:
        results: ``results.jsonl`` records (``request_id``, ``item_id``, ``index``, ``status``,
            ``values``), values already normalised.
        targets: For ``retrieval`` builds, request id → the item it was built for: only that
            item's answer in that request counts (the others are its demonstrations), or in a
            request ``promptc run`` asked in its stead (a repair, ``r0007.repair1``: the
            merged result of the target answered again).
        positions: Build request id → item id → its 1-based position there. An answer of a
            request ``promptc run`` asked in the build request's stead (a repair, a voting
            stand-in) is placed where the build asked its item, not at its index in the
            repair: accuracy by position is about the strategy's batches. Without it, the
            row's ``index``.

    Returns:
        Item id → its answer; an item answered in several requests without targets keeps the
        first. ``extra`` results (no item) are left out.
    """
    out: dict[str, Scored] = {}
    for r in results:
        item = r.get("item_id")
        if not isinstance(item, str):
            continue
        if targets is not None and targets.get(origin_of(str(r.get("request_id")))) != item:
            continue
        if item in out:
            continue
        rounds = r.get("rounds")
        out[item] = replace(
            _scored(item, r, positions),
            rounds=tuple(
                _scored(item, x, positions)
                for x in (rounds if isinstance(rounds, list) else ())
                if isinstance(x, Mapping)
            ),
        )
    return out


def _scored(
    item: str, r: Mapping[str, object], positions: Mapping[str, Mapping[str, int]] | None
) -> Scored:
    """Item ``item``'s answer in the result (or a voting round's record) ``r``."""
    values = r.get("values")
    position = r.get("index")
    if positions is not None:
        position = positions.get(origin_of(str(r.get("request_id"))), {}).get(item, position)
    return Scored(
        item_id=item,
        position=position if type(position) is int else 0,  # JSON true is no position
        status=str(r.get("status")),
        values=values if isinstance(values, Mapping) else {},
        request_id=str(r.get("request_id") or ""),
    )


def score(
    outputs: Sequence[OutputField],
    gold: Mapping[str, Mapping[str, Value]],
    answers: Mapping[str, Scored],
    tolerance: Decimal | None = None,
) -> VariantScore:
    """Scores answers against gold.

    Args:
        outputs: The task's outputs; those without a gold answer for an item are not scored.
        gold: Item id → output → gold value, for every item to score (an item with no answer
            counts as wrong, with status ``missing``).
        answers: Item id → its answer (:func:`pick_answers`).
        tolerance: Absolute tolerance for ``number`` outputs.
    """
    by_name = {o.name: o for o in outputs}
    per_output_correct: dict[str, int] = {}
    per_output_n: dict[str, int] = {}
    correct: dict[str, bool] = {}
    pos_correct: dict[int, int] = {}
    pos_n: dict[int, int] = {}
    parsed = 0
    counted: dict[str, int] = dict.fromkeys(EVAL_STATUSES, 0)
    cut: dict[int, int] = {}
    for item_id in gold:
        answer = answers.get(item_id)
        status = answer.status if answer is not None else "missing"
        counted[status] = counted.get(status, 0) + 1
        ok = status == "ok"
        parsed += ok
        all_right = True
        for name, g in gold[item_id].items():
            f = by_name.get(name)
            if f is None:
                continue
            per_output_n[name] = per_output_n.get(name, 0) + 1
            right = (
                ok
                and answer is not None
                and name in answer.values
                and f.type.matches(f, answer.values[name], g, tolerance)
            )
            per_output_correct[name] = per_output_correct.get(name, 0) + right
            all_right = all_right and right
        correct[item_id] = all_right
        # A voting build's answers at each position are its rounds': the voted one sits where
        # the earliest round agreeing with the majority asked it, which hides the positions
        # whose answers lost the vote.
        for said in (answer.rounds or (answer,)) if answer is not None else ():
            if said.status == TRUNCATED:
                cut[said.position] = cut.get(said.position, 0) + 1
            elif said.position > 0:
                right = _right(by_name, gold[item_id], said, tolerance)
                pos_n[said.position] = pos_n.get(said.position, 0) + 1
                pos_correct[said.position] = pos_correct.get(said.position, 0) + right
    n = len(gold)
    return VariantScore(
        overall=Rate(sum(correct.values()), n),
        per_output={
            o.name: Rate(per_output_correct[o.name], per_output_n[o.name])
            for o in outputs
            if o.name in per_output_n
        },
        parse=Rate(parsed, n),
        statuses=counted,
        by_position={p: Rate(pos_correct[p], pos_n[p]) for p in sorted(pos_n)},
        correct=correct,
        truncated_by_position=dict(sorted(cut.items())),
        by_position_rounds=any(a.rounds for a in answers.values()),
    )


def _right(
    by_name: Mapping[str, OutputField],
    gold: Mapping[str, Value],
    answer: Scored,
    tolerance: Decimal | None,
) -> bool:
    """Whether ``answer`` is ``ok`` and right in every output with a gold answer."""
    return answer.status == "ok" and all(
        name in answer.values and f.type.matches(f, answer.values[name], g, tolerance)
        for name, g in gold.items()
        if (f := by_name.get(name)) is not None
    )


@dataclass(frozen=True)
class Paired:
    """A variant against the baseline on the items both scored."""

    n: int
    baseline_accuracy: float
    accuracy: float
    only_baseline: int  # b: baseline right, variant wrong
    only_variant: int  # c: variant right, baseline wrong

    @property
    def difference(self) -> float:
        return self.accuracy - self.baseline_accuracy

    @property
    def p_value(self) -> float:
        return mcnemar_exact(self.only_baseline, self.only_variant)

    def to_dict(self) -> dict[str, object]:
        return {
            "n": self.n,
            "baseline_accuracy": round(self.baseline_accuracy, 6),
            "accuracy": round(self.accuracy, 6),
            "difference": round(self.difference, 6),
            "only_baseline_correct": self.only_baseline,
            "only_variant_correct": self.only_variant,
            "mcnemar_p": round(self.p_value, 6),
        }


def paired(baseline: Mapping[str, bool], variant: Mapping[str, bool]) -> Paired:
    """The paired comparison of two variants' per-item correctness."""
    shared = sorted(set(baseline) & set(variant))
    n = len(shared)
    b = sum(1 for i in shared if baseline[i] and not variant[i])
    c = sum(1 for i in shared if variant[i] and not baseline[i])
    base_acc = sum(baseline[i] for i in shared) / n if n else 0.0
    acc = sum(variant[i] for i in shared) / n if n else 0.0
    return Paired(n, base_acc, acc, b, c)


def pareto_front(points: Sequence[tuple[Fraction | float, Fraction | float]]) -> list[int]:
    """Indices of the points (cost, accuracy) that no other point beats on both: no cheaper
    point is at least as accurate, and no equally cheap point is more accurate. Give exact
    figures (:class:`~fractions.Fraction`): an equality of rounded ones is no tie."""
    front = []
    for i, (cost, acc) in enumerate(points):
        dominated = any(
            (c2 <= cost and a2 >= acc) and (c2 < cost or a2 > acc)
            for j, (c2, a2) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return front


def min_detectable_difference(n: int, discordant: float) -> float | None:
    """The smallest accuracy difference a paired test finds on ``n`` items.

    Connor's (1987) sample size of McNemar's test at two-sided alpha = 0.05 and power 0.8,
    ``n = (z_a sqrt(psi) + z_b sqrt(psi - d^2))^2 / d^2``, solved for ``d`` by bisection, where
    ``psi`` is the share of items on which the two variants disagree (``discordant``).

    Returns:
        The difference (0 to 1), or ``None`` when none is detectable: no disagreement, or even
        a difference as large as ``psi`` needs more items.
    """
    if n <= 0 or discordant <= 0:
        return None

    def short(d: float) -> float:
        need = Z95 * math.sqrt(discordant) + Z_POWER80 * math.sqrt(max(discordant - d * d, 0.0))
        return math.sqrt(n) * d - need

    if short(discordant) < 0:
        return None
    lo, hi = 0.0, discordant
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if short(mid) < 0 else (lo, mid)
    return hi


def loss_bound(best_only: int, candidate_only: int, n: int) -> float:
    """One-sided 95 % upper bound of how much less accurate a candidate is than the best.

    The Agresti-Min (2005) interval for paired proportions (a Wald interval with 0.5 added to
    each cell of the paired table): ``d = (b - c) / (n + 2)`` with ``b + 0.5`` and ``c + 0.5``
    discordant pairs, ``se = sqrt(((b + c + 1) / (n + 2) - d^2) / (n + 2))``, bound
    ``d + 1.645 se``.

    Args:
        best_only: Items the best variant got right and the candidate wrong.
        candidate_only: Items the candidate got right and the best wrong.
        n: Items both were scored on.
    """
    b, c, m = best_only + 0.5, candidate_only + 0.5, n + 2
    d = (b - c) / m
    return d + Z_ONE_SIDED95 * math.sqrt(max((b + c) / m - d * d, 0.0) / m)


def items_needed(margin: float) -> int:
    """The fewest items on which :func:`loss_bound` can fall below ``margin`` at all (two
    variants that agree on every item): ``1.645 / (n + 2) < margin``."""
    return max(1, math.floor(Z_ONE_SIDED95 / margin - 2) + 1) if margin > 0 else 1 << 62
