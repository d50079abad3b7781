"""The eval's verdict, on plain data: which variant to use, and how small a difference the
sample can tell apart.

- **Pareto front**: on total cost per question (input and output, priced; cached input at its
  own rate) against accuracy, both exact (a tie is a tie of the costs, not of figures rounded
  to show); a variant with requests that got no answer is on none (its cost is of the
  answered requests alone).
- **Recommendation**: the cheapest variant whose accuracy is not worse than the best's by more
  than ``margin`` — a paired one-sided non-inferiority test at alpha = 0.05 (the Agresti-Min
  bound of :func:`~promptc.eval.score.loss_bound` below the margin). Variants cut by
  ``max_tokens`` are never candidates: their accuracy is the budget's, not the strategy's.
  When the sample is too small for the test to show any variant within the margin
  (:func:`~promptc.eval.score.items_needed`), there is no recommendation.
- **Smallest detectable difference**: Connor's paired sample size solved for the difference
  (:func:`~promptc.eval.score.min_detectable_difference`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

from promptc.eval.score import (
    items_needed,
    loss_bound,
    min_detectable_difference,
    paired,
    pareto_front,
)

#: Each variant's exact cost per question (``None``: unknown), by name: what the front and
#: the recommendation compare, where the report's rows hold figures rounded to show.
Costs = Mapping[str, Fraction | None]


def _accuracy(row: Mapping[str, Any]) -> Fraction:
    """A row's accuracy, exact from its counts when it has them (never a rounded figure)."""
    acc = row["accuracy"]
    correct, n = acc.get("correct"), acc.get("n")
    if isinstance(correct, int) and isinstance(n, int) and n > 0:
        return Fraction(correct, n)
    return Fraction(acc["accuracy"])


def comparable(row: Mapping[str, Any]) -> bool:
    """Whether a variant's cost can be set against the others': not when requests of it got
    no answer (their items unparsed, their cost unpaid, so it would look cheap)."""
    return not row.get("unanswered_requests")


def mark_pareto(rows: Sequence[dict[str, Any]], costs: Costs) -> None:
    """Sets each row's ``pareto``: on the front of accuracy against total cost per question,
    on exact figures (``costs``; a tie is a tie of the costs, not of their rounding). A row
    whose cost is unknown, or not :func:`comparable`, is on no front."""
    known = [k for k, r in enumerate(rows) if costs[r["variant"]] is not None and comparable(r)]
    points = [(costs[rows[k]["variant"]] or Fraction(0), _accuracy(rows[k])) for k in known]
    front = {known[i] for i in pareto_front(points)}
    for k, r in enumerate(rows):
        r["pareto"] = k in front


def money_decimals(values: Sequence[float | None]) -> int:
    """Decimals to show money with: 4, or more (up to 12) until the smallest non-zero value
    shows 3 significant digits, so that a cheap model's costs do not all read 0.0000."""
    small = min((abs(v) for v in values if v), default=None)
    if small is None:
        return 4
    return max(4, min(12, 2 - math.floor(math.log10(small))))


def _money(value: float, unit: str) -> str:
    if unit == "USD":  # millionths of a dollar a question: said per 1,000 questions
        per_k = 1000 * value
        return f"USD {per_k:.{money_decimals([per_k])}f} per 1,000 questions"
    return f"{value:,.1f} tokens per question"


def recommend(
    rows: Sequence[Mapping[str, Any]],
    correct: Mapping[str, Mapping[str, bool]],
    items: int,
    margin: float,
    unit: str,
    costs: Costs,
) -> dict[str, Any]:
    """The recommended variant and the sentence that justifies it.

    Args:
        rows: The report's rows (``variant``, ``accuracy``, ``cost``, ``truncated``,
            ``unanswered_requests``).
        correct: Variant → item → whether it was right.
        items: Items scored.
        margin: Points of accuracy (0 to 100) a cheaper variant may lose.
        unit: ``USD`` or ``tokens``: what ``cost`` is counted in.
        costs: The exact cost per question of each variant, compared (a tie is a tie of the
            costs).
    """
    cut = [r["variant"] for r in rows if r["truncated"]]
    # A request that got no answer leaves its items unparsed and its cost unpaid: such a
    # variant's accuracy and cost are of the server's failures, not of the variant.
    failed = [r["variant"] for r in rows if not comparable(r) and not r["truncated"]]
    left_out = f" ({', '.join(cut)} left out: truncated)" if cut else ""
    if failed:
        left_out += f" ({', '.join(failed)} left out: requests that got no answer)"
    candidates = [
        r for r in rows if not r["truncated"] and comparable(r) and costs[r["variant"]] is not None
    ]
    need = items_needed(margin / 100)
    out: dict[str, Any] = {"variant": None, "margin_points": margin, "items_needed": need}
    if not candidates:
        why = "answered within its budget" if not failed else "answered whole"
        out["sentence"] = f"no recommendation: no variant {why}" + left_out
        return out
    if items < need:
        out["sentence"] = (
            f"no recommendation: too few items ({items} scored; a paired test can show a "
            f"variant within {margin:g} points of the best only from {need} items)" + left_out
        )
        return out

    def price(r: Mapping[str, Any]) -> Fraction:
        return costs[r["variant"]] or Fraction(0)  # a candidate's cost is known

    best = max(candidates, key=lambda r: (_accuracy(r), -price(r)))
    for r in sorted(candidates, key=lambda r: (price(r), r["variant"])):
        if r is not best and price(r) >= price(best):
            continue  # no cheaper than the best: dominated, or the best's equal at best
        p = paired(correct[best["variant"]], correct[r["variant"]])
        bound = 100 * loss_bound(p.only_baseline, p.only_variant, p.n)
        if r is not best and bound >= margin:
            continue
        cost = _money(r["cost"]["per_question"], unit)
        if r is best:
            out["sentence"] = (
                f"recommended: {r['variant']}, the most accurate variant "
                f"({100 * r['accuracy']['accuracy']:.1f}%) at {cost}; no cheaper "
                f"one is shown to be within {margin:g} points of it (paired one-sided test, "
                "alpha 0.05)" + left_out
            )
        else:
            out["sentence"] = (
                f"recommended: {r['variant']}, the cheapest variant not worse than the best, "
                f"{best['variant']} ({100 * best['accuracy']['accuracy']:.1f}%), by more than "
                f"{margin:g} points: a paired one-sided test (Agresti-Min, alpha 0.05) bounds "
                f"its loss at {bound:.1f} points, at {cost} against "
                f"{_money(best['cost']['per_question'], unit)}" + left_out
            )
        out.update(variant=r["variant"], best=best["variant"], loss_bound_points=round(bound, 3))
        return out
    raise AssertionError("the best variant is always a candidate")  # pragma: no cover


def detectable(rows: Sequence[Mapping[str, Any]], items: int) -> dict[str, Any]:
    """The smallest difference the sample can detect, at the largest share of items on which
    any variant disagrees with the baseline (the most conservative figure the data give)."""
    shares = [
        (r["paired"]["only_baseline_correct"] + r["paired"]["only_variant_correct"]) / items
        for r in rows
        if r["paired"] is not None and items
    ]
    share = max(shares, default=0.0)
    mdd = min_detectable_difference(items, share)
    how = (
        "McNemar's paired test, two-sided alpha 0.05, power 0.8 (Connor 1987), for variants "
        f"that disagree on {100 * share:.0f}% of the items (the most any variant here "
        "disagrees with the baseline)"
    )
    if not shares:
        sentence = "one variant: nothing to compare"
    elif mdd is None:
        sentence = f"with {items} items no difference is detectable by {how}"
    else:
        sentence = (
            f"with {items} items the smallest detectable difference is {100 * mdd:.1f} points, "
            f"by {how}; smaller differences may be noise"
        )
    return {
        "points": None if mdd is None else round(100 * mdd, 3),
        "discordant_share": round(share, 6),
        "sentence": sentence,
    }
