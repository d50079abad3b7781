"""The report of an eval: ``report.json`` (every figure), ``report.md`` (tables) and two charts.

``report.json`` is written with sorted keys and rounded figures and holds nothing that depends on
when or where it was made, so that identical results give a byte-identical file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from typing import Any

from promptc import ir
from promptc.build import read_requests
from promptc.errors import Location, UsageError
from promptc.eval.charts import CHART_POSITION, CHART_TOKENS, draw_charts
from promptc.eval.decide import detectable, mark_pareto, money_decimals, recommend
from promptc.eval.folder import REPORT_FORMAT, REPORT_JSON, REPORT_MD, check_report_dir
from promptc.eval.html import REPORT_HTML, report_html
from promptc.eval.results import MESSAGES, VariantResults
from promptc.eval.score import (
    VariantScore,
    min_detectable_difference,
    paired,
    pick_answers,
    score,
)
from promptc.plan.estimate import MICRO_USD, Pricing, cached_tokens
from promptc.plan.tokenizers import Tokenizer, tokenizer_for
from promptc.run.outputs import OUTPUTS_FILE, read_outputs_file
from promptc.run.repair import recorded_request
from promptc.strategies import NAMES, SINGLE
from promptc.text import write_all

#: The default ``--margin``: points of accuracy a cheaper variant may lose to be recommended.
DEFAULT_MARGIN = 2.0


#: Item ids an ``unpaired-items`` error lists before it says how many more there are.
LISTED_ITEMS = 5


def _scored_items(task: ir.Task, v: VariantResults) -> dict[str, Mapping[str, ir.Value]]:
    """Gold of the items this variant's build covers (every item with gold, in data order)."""
    covered = set(v.item_ids) if v.item_ids else None
    return {i.id: i.gold for i in task.items if i.gold and (covered is None or i.id in covered)}


def _paired_items(
    task: ir.Task, variants: Sequence[VariantResults]
) -> dict[str, Mapping[str, ir.Value]]:
    """Gold of the items every variant is scored on: the same items for all, or none.

    Accuracies over different items are not comparable, and the paired test, the too-few-items
    guard and the detectable difference all count items: a build of 2 items beside one of 20
    would be recommended on the 2. Nor can the others be cut down to the shared items, since a
    batch's tokens and calls are of all the items it holds.

    Raises:
        UsageError: ``unpaired-items``: two variants' builds cover different items with gold.
    """
    gold = [_scored_items(task, v) for v in variants]
    if all(set(g) == set(gold[0]) for g in gold):
        return gold[0] if gold else {}
    shared = set.intersection(*(set(g) for g in gold))
    differ = [i.id for i in task.items if i.id not in shared and any(i.id in g for g in gold)]
    listed = ", ".join(repr(i) for i in differ[:LISTED_ITEMS])
    more = f" and {len(differ) - LISTED_ITEMS} more" if len(differ) > LISTED_ITEMS else ""
    covers = ", ".join(
        f"{str(v.folder)!r} ({v.name}): {len(g)} item(s)" for v, g in zip(variants, gold)
    )
    raise UsageError(
        MESSAGES["unpaired-items"].format(covers=covers, shared=len(shared), differ=listed + more),
        location=Location("<command line>"),
        path=("--results",),
        hint="score folders built from the same spec and data: build every variant with the "
        "same --data, or let promptc eval build and run them all on the same items",
        code="unpaired-items",
    )


def _tokens(
    task: ir.Task, v: VariantResults, price: Pricing | None
) -> tuple[int | None, int | None, int | None, str]:
    """Input, output and cached input tokens in total, and where they came from.

    The server's usage when every answer carries it (and its ``cached_tokens`` when it says);
    else the plan's tokenizer. Cached tokens are counted with the tokenizer only when they
    would be priced (a cached-input rate is given), since for a GGUF model that means starting
    its server.
    """
    usage = v.prompt_tokens is not None and v.completion_tokens is not None
    if not usage and not os.path.lexists(v.folder / OUTPUTS_FILE):
        return None, None, None, "unknown"  # answers parsed elsewhere (promptc.ray): no texts
    need_tokenizer = not usage or (v.cached_tokens is None and price and price.cached is not None)
    tok: Tokenizer | None = None
    if need_tokenizer:
        try:
            tok = tokenizer_for(task.model.name, spec_dir=task.spec_dir)
        except Exception:  # noqa: BLE001 - no tokenizer installed: the figures stay unknown
            tok = None
    try:
        answers = read_outputs_file(v.folder / OUTPUTS_FILE).answers if tok is not None else {}
        messages = _sent_messages(task, v.folder, answers)
        cached = v.cached_tokens
        if cached is None and tok is not None and price is not None and price.cached is not None:
            cached = cached_tokens(messages, tok)
        if usage:
            return _clamped(v.prompt_tokens, v.completion_tokens, cached, "api usage")
        if tok is None:
            return None, None, None, "unknown"
        inputs = sum(tok.count_messages(m) for m in messages)
        outputs = sum(tok.count(str(a["output"])) for a in answers.values())
        mark = "" if tok.exact else " (estimate)"
        return _clamped(inputs, outputs, cached, f"tokenizer {tok.name}{mark}")
    finally:
        if tok is not None:
            tok.close()


def _sent_messages(
    task: ir.Task, folder: Path, answers: Mapping[str, Mapping[str, Any]]
) -> list[Sequence[Mapping[str, Any]]]:
    """The messages of each request the folder holds an answer to, as they were sent: a build
    request's own, a repair's or a voting round's stand-in's cut down from its build request
    (:func:`promptc.run.repair.recorded_request`, as the run made it). A request early stop did
    not send, or that got no answer, was never paid for and is not counted."""
    if not answers:
        return []
    requests = {r.id: r for r in read_requests(folder)}
    out: list[Sequence[Mapping[str, Any]]] = []
    for rid, answer in answers.items():
        if rid in requests:
            out.append(requests[rid].messages)
            continue
        # A record edited by hand is merged nowhere and counted nowhere.
        asked = recorded_request(task, requests, rid, answer.get("repair"))
        if asked is not None:
            out.append(asked.messages)
    return out


#: What ``tokens_from`` adds when cached input was counted above the input (``{inputs}``).
CLAMPED_NOTE = "; cached input clamped to the {inputs} input tokens"


def _clamped(
    inputs: int | None, outputs: int | None, cached: int | None, source: str
) -> tuple[int | None, int | None, int | None, str]:
    """The token counts with cached input within ``0 … inputs``: cached input is part of the
    input, so a count above it (the tokenizer's prefix against the server's prompt_tokens, or
    a server's cached_tokens above its own prompt_tokens) would price the input below zero.
    ``source`` says when it was clamped."""
    if cached is None or inputs is None:
        return inputs, outputs, cached, source
    if cached > inputs:
        return inputs, outputs, inputs, source + CLAMPED_NOTE.format(inputs=inputs)
    return inputs, outputs, max(cached, 0), source


def _per(total: Fraction | None, n: int) -> float | None:
    """A share of a total, for the report: 15 significant digits (a float's), never cut to
    a fixed number of decimals, which would round a small cost to nothing."""
    return None if total is None or not n else float(f"{float(total / n):.15g}")


def _usd(total: Decimal) -> str:
    """An exact cost in USD as text: every digit it has, and at least to the millionth."""
    micro = total.quantize(MICRO_USD)
    return format(micro if micro == total else total.normalize(), "f")


def _cost(
    tokens: tuple[int | None, int | None, int | None, str], price: Pricing | None, s: VariantScore
) -> tuple[dict[str, Any], Fraction | None]:
    """Total cost, per question and per correct answer (USD with a price, else tokens), for
    the report; and the exact cost per question, which the Pareto front and the
    recommendation compare (the report's figures are rounded for display only)."""
    tin, tout, cached, _ = tokens
    n = s.overall.n
    total: Decimal | int | None
    if tin is None or tout is None:
        total = None
    elif price is None:
        total = tin + tout
    else:
        total = price.exact_cost(tin, tout, cached or 0)
    exact = None if total is None else Fraction(total)
    shown = {
        "total": None if total is None else (_usd(total) if isinstance(total, Decimal) else total),
        "per_question": _per(exact, n),
        "per_correct": _per(exact, s.overall.correct),
    }
    return shown, (None if exact is None or not n else exact / n)


def _row(
    task: ir.Task,
    v: VariantResults,
    s: VariantScore,
    base: VariantScore,
    baseline: str,
    price: Pricing | None,
) -> tuple[dict[str, Any], Fraction | None]:
    """One variant's row of the report, its score ``s`` beside the baseline's ``base``; and
    its exact cost per question (:func:`_cost`)."""
    n = s.overall.n
    tokens = _tokens(task, v, price)
    tin, tout, cached, source = tokens
    pair = None if v.name == baseline else paired(base.correct, s.correct)
    cost, exact = _cost(tokens, price, s)
    row = {
        "variant": v.name,
        "strategy": v.kind,
        "batch_size": v.batch_size,
        "selection": v.selection,
        "requests": v.requests,
        "answered_requests": v.answered,
        "repair_requests": v.repair_requests,
        "items": n,
        "accuracy": s.overall.to_dict(),
        "per_output": {k: r.to_dict() for k, r in s.per_output.items()},
        "parse_rate": s.parse.to_dict(),
        "statuses": dict(s.statuses),
        "result_statuses": dict(v.statuses),
        "wrong": s.wrong,
        "unparsed": s.unparsed,
        "truncated": s.truncated,
        "unanswered_requests": v.unanswered,
        "truncated_requests": v.cut_requests,
        "truncated_by_position": {str(p): k for p, k in s.truncated_by_position.items()},
        "by_position": {str(p): r.to_dict() for p, r in s.by_position.items()},
        # A voting build's: each round's answer where that round asked it (n: answers).
        "by_position_counts": "rounds" if s.by_position_rounds else "items",
        # Every call the answers cost, as the tokens count them: each answer the folder holds
        # (the build's requests answered, the repairs and voting stand-ins promptc run asked
        # besides them), never a request that was not sent (early stop) or got no answer.
        "calls_per_question": round(v.answered / n, 6) if n else None,
        "input_tokens_per_question": None if tin is None else round(tin / max(n, 1), 2),
        "output_tokens_per_question": None if tout is None else round(tout / max(n, 1), 2),
        "cached_input_tokens_per_question": None
        if cached is None
        else round(cached / max(n, 1), 2),
        "tokens_from": source,
        "cost": cost,
        "seconds": None if v.seconds is None else round(v.seconds, 3),
        "questions_per_second": round(n / v.seconds, 3) if v.seconds else None,
        "paired": None
        if pair is None
        else {
            **pair.to_dict(),
            "min_detectable_difference": _round(
                min_detectable_difference(
                    pair.n, (pair.only_baseline + pair.only_variant) / max(pair.n, 1)
                )
            ),
        },
    }
    return row, exact


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def parse_tolerance(text: str | None) -> Decimal | None:
    """``--tolerance X``: an absolute tolerance for numbers, a non-negative number.

    Raises:
        UsageError: Not a non-negative number (``bad-tolerance``).
    """
    if text is None:
        return None
    try:
        d = Decimal(text)
    except InvalidOperation:
        d = Decimal("NaN")
    # (an exponent past 100 either way is no tolerance: written out, 1e999999999 would be a
    # billion digits in the report)
    if not d.is_finite() or d < 0 or (d and abs(d.adjusted()) > 100):
        raise UsageError(
            f"tolerance {text!r} is not a non-negative number from 1e-100 to 1e100",
            location=Location("<command line>"),
            path=("--tolerance",),
            code="bad-tolerance",
        )
    return d


def build_report(
    task: ir.Task,
    variants: Sequence[VariantResults],
    *,
    baseline: str = SINGLE.name,
    tolerance: Decimal | None = None,
    price: Pricing | None = None,
    margin: float = DEFAULT_MARGIN,
) -> dict[str, Any]:
    """Every figure of the eval, JSON-ready and deterministic.

    Args:
        price: What tokens cost; ``None``: cost is counted in tokens.
        margin: Points of accuracy the recommended variant may lose to the best.

    Raises:
        UsageError: No item has a gold answer, the baseline is not among the variants, or
            the variants' builds cover different items (``unpaired-items``).
    """
    if not any(i.gold for i in task.items):
        raise UsageError(
            f"no item of {task.name!r} has a gold answer, so nothing can be scored",
            location=task.data.location if task.data is not None else task.location,
            path=("data", "gold"),
            hint="map data.gold to the column holding the answers, e.g. gold: {answer: answer}",
            code="no-gold",
        )
    # One order whatever order the folders came in: strategies as promptc lists them, then
    # batch size, so that scoring the same folders always gives the same report.
    order: dict[str, int] = {k: n for n, k in enumerate(NAMES)}
    variants = sorted(
        variants, key=lambda v: (order.get(v.kind, len(order)), v.batch_size, v.selection)
    )
    names = [v.name for v in variants]
    for k, v in enumerate(variants):
        if v.name in names[:k]:
            raise UsageError(
                f"two result folders are both variant {v.name!r}: "
                f"{str(variants[names.index(v.name)].folder)!r} and {str(v.folder)!r}",
                location=Location(str(v.folder)),
                hint="score one folder per variant",
                code="repeated-variant",
            )
    if baseline not in names:
        raise UsageError(
            f"baseline {baseline!r} is not among the variants evaluated ({', '.join(names)})",
            location=Location("<command line>"),
            path=("--baseline",),
            code="unknown-baseline",
        )
    # Every variant on the same items: the figure each comparison below counts.
    gold = _paired_items(task, variants)
    scores = {
        v.name: score(
            task.outputs, gold, pick_answers(v.results, v.targets, v.positions), tolerance
        )
        for v in variants
    }
    made = [_row(task, v, scores[v.name], scores[baseline], baseline, price) for v in variants]
    rows = [row for row, _ in made]
    # The front and the recommendation compare exact costs: the rows' are rounded to show.
    costs = {row["variant"]: exact for row, exact in made}
    mark_pareto(rows, costs)
    unit = "USD" if price is not None else "tokens"
    correct = {name: s.correct for name, s in scores.items()}
    return {
        "report_format": REPORT_FORMAT,  # the marker of a report eval wrote (eval.folder)
        "spec": task.name,
        "items": len(gold),
        "baseline": baseline,
        "tolerance": None if tolerance is None else format(tolerance, "f"),
        "outputs_scored": sorted({k for i in task.items for k in i.gold}),
        "price": None if price is None else price.to_dict(),
        "cost_unit": unit,
        "truncated_variants": [r["variant"] for r in rows if r["truncated"]],
        "recommendation": recommend(rows, correct, len(gold), margin, unit, costs),
        "detectable": detectable(rows, len(gold)),
        "variants": rows,
    }


def report_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _pct(rate: Mapping[str, Any]) -> str:
    lo, hi = rate["ci95"]
    return f"{100 * rate['accuracy']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def _num(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def _scaled(x: float | None, scale: int) -> float | None:
    return None if x is None else x * scale


def table_rows(report: Mapping[str, Any]) -> list[list[str]]:
    """The summary table, header first (for report.md, report.html and the terminal)."""
    usd = report["cost_unit"] == "USD"
    # Dollars a question are millionths: the table shows them per 1,000 questions, with as
    # many decimals as the cheapest needs (a cheap model's costs must not all read 0.0000).
    unit, scale, money = ("USD", 1000, ".4f") if usd else ("tok", 1, ",.1f")
    if usd:
        shown = [
            _scaled(r["cost"][k], scale)
            for r in report["variants"]
            for k in ("per_question", "per_correct")
        ]
        money = f".{money_decimals(shown)}f"
    rows = [
        [
            "variant",
            "accuracy [95% CI]",
            "parsed",
            "wrong",
            "unparsed",
            "truncated",
            "calls/q",
            "in tok/q",
            "out tok/q",
            f"{unit}/1k q" if usd else f"{unit}/q",
            f"{unit}/1k correct" if usd else f"{unit}/correct",
            "q/s",
            f"vs {report['baseline']}",
            "McNemar p",
        ]
    ]
    for r in report["variants"]:
        p = r["paired"]
        rows.append(
            [
                r["variant"] + (" *" if r["pareto"] else ""),
                _pct(r["accuracy"]),
                f"{100 * r['parse_rate']['accuracy']:.1f}%",
                str(r["wrong"]),
                str(r["unparsed"]),
                str(r["truncated"]) + (" !" if r["truncated"] else ""),
                _num(r["calls_per_question"], ".3f"),
                _num(r["input_tokens_per_question"], ".1f"),
                _num(r["output_tokens_per_question"], ".1f"),
                _num(_scaled(r["cost"]["per_question"], scale), money),
                _num(_scaled(r["cost"]["per_correct"], scale), money),
                _num(r["questions_per_second"], ".2f"),
                "-" if p is None else f"{100 * p['difference']:+.1f} pts",
                "-" if p is None else f"{p['mcnemar_p']:.3g}",
            ]
        )
    return rows


def headline(report: Mapping[str, Any]) -> list[str]:
    """The report's first lines: truncation, the recommendation, what the sample can detect."""
    cut = [r for r in report["variants"] if r["truncated"]]
    if cut:
        names = ", ".join(
            f"{r['variant']} ({r['truncated']} of {r['items']} items, "
            f"{r['truncated_requests']} request(s))"
            for r in cut
        )
        first = (
            f"TRUNCATED: {names} stopped at max_tokens before answering every item: their "
            "accuracy is not comparable until the budget is raised (model.max_tokens, or "
            "model.max_tokens_per_item)"
        )
    else:
        first = "No variant was truncated: every answer ended before max_tokens."
    lines = [first]
    failed = [r for r in report["variants"] if r.get("unanswered_requests")]
    if failed:
        names = ", ".join(
            f"{r['variant']} ({r['unanswered_requests']} of {r['requests']} request(s))"
            for r in failed
        )
        lines.append(
            f"NO ANSWER: {names} got no answer from the server: their items count as unparsed "
            "and cost nothing, so accuracy and cost are not comparable until they are run again "
            "(promptc run resumes them); they are on no Pareto front (*) and never recommended."
        )
    return [*lines, *(_sentence(report[k]["sentence"]) for k in ("recommendation", "detectable"))]


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def _md_table(rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join("---" for _ in rows[0]) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out) + "\n"


def _per_variant(
    report: Mapping[str, Any], columns: Sequence[str], cell: Callable[[Mapping[str, Any], str], str]
) -> str:
    """A table of a row per variant and a column per ``columns``, each cell ``cell(row, column)``."""
    rows = [[r["variant"], *(cell(r, c) for c in columns)] for r in report["variants"]]
    return _md_table([["variant", *columns], *rows])


def _at_position(row: Mapping[str, Any], p: str) -> str:
    rate = row["by_position"].get(p)
    cut = row["truncated_by_position"].get(p)
    text = "-" if rate is None else f"{_pct(rate)} (n={rate['n']})"
    return text + (f", {cut} truncated" if cut else "")


def report_md(report: Mapping[str, Any], charts: bool = True) -> str:
    """report.md: the summary, statuses, per-output accuracy and accuracy by position (with
    ``charts``, the two charts beside them)."""
    price = report["price"]
    cost = (
        "total cost per question in tokens (input + output: no price given)"
        if price is None
        else f"total cost per question in USD ({price['input_usd_per_mtok']} in, "
        f"{price['output_usd_per_mtok']} out"
        + (
            ""
            if price["cached_input_usd_per_mtok"] is None
            else f", {price['cached_input_usd_per_mtok']} cached in"
        )
        + " per million tokens)"
    )
    parts = [
        f"# promptc eval: {report['spec']}\n\n",
        *(f"**{line}**\n\n" if k < 2 else f"{line}\n\n" for k, line in enumerate(headline(report))),
        f"{report['items']} items with gold answers; baseline `{report['baseline']}`"
        + (f"; numbers within ±{report['tolerance']}" if report["tolerance"] else "")
        + f". `*` marks the Pareto front of accuracy against {cost} (compared exactly, shown "
        "rounded; a variant with requests that got no answer is on none); `!` a variant cut by "
        "max_tokens. Truncated items count as wrong in accuracy, apart from wrong and unparsed "
        "answers.\n",
        "\n![accuracy against cost per question](" + CHART_TOKENS + ")\n\n" if charts else "\n",
        _md_table(table_rows(report)),
        "\n## Parse statuses\n\n",
    ]
    statuses = list(report["variants"][0]["statuses"]) if report["variants"] else []
    parts.append(_per_variant(report, statuses, lambda r, s: str(r["statuses"][s])))
    outputs = report["outputs_scored"]
    if len(outputs) > 1:
        parts.append("\n## Accuracy per output\n\n")
        parts.append(
            _per_variant(
                report,
                outputs,
                lambda r, o: _pct(r["per_output"][o]) if o in r["per_output"] else "-",
            )
        )
    positions = sorted(
        {
            int(p)
            for r in report["variants"]
            for p in (*r["by_position"], *r["truncated_by_position"])
        }
    )
    parts.append("\n## Accuracy by position in the batch\n\n")
    parts.append(
        "Items lost to max_tokens are left out here (the budget cut them, not their position).\n\n"
    )
    if any(r.get("by_position_counts") == "rounds" for r in report["variants"]):
        parts.append(
            "With voting rounds, each round's answer counts at the position where that round "
            "asked it (n counts answers): the voted answer sits where the earliest round that "
            "agrees with the majority asked it, which would hide the positions that lost the "
            "vote.\n\n"
        )
    if charts:
        parts.append("![accuracy by position](" + CHART_POSITION + ")\n\n")
    parts.append(_per_variant(report, [str(p) for p in positions], _at_position))
    tokens = sorted({r["tokens_from"] for r in report["variants"]})
    parts.append(f"\nTokens from: {', '.join(tokens)}.\n")
    return "".join(parts)


def write_report(
    report: Mapping[str, Any],
    out_dir: Path,
    charts: bool = True,
    *,
    variants: Sequence[VariantResults] = (),
    task: ir.Task | None = None,
) -> list[Path]:
    """Writes report.json, report.md, (with ``charts``) the two PNGs, and (given the variants
    and their task) report.html into ``out_dir``; returns their paths (:func:`report_paths`).

    Raises:
        UsageError: ``out-not-eval``: ``out_dir`` holds files eval did not write
            (:func:`promptc.eval.folder.check_report_dir`); nothing is written.
    """
    check_report_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn = draw_charts(report) if charts else {}
    files: dict[Path, list[str] | bytes] = {
        out_dir / REPORT_JSON: report_json(report).split("\n")[:-1],
        out_dir / REPORT_MD: report_md(report, charts).split("\n")[:-1],
        **{out_dir / name: png for name, png in drawn.items()},
    }
    html = task is not None and bool(variants)
    if html:
        assert task is not None
        page = report_html(report, task, variants, drawn, table_rows(report), headline(report))
        files[out_dir / REPORT_HTML] = page.split("\n")[:-1]
    # All or none, each replaced whole, never through a link left in the folder: a full disk
    # halfway never leaves a page of this eval beside a page of the last.
    write_all(files)
    # An earlier eval's files this one does not write would be read as this one's.
    for name in {REPORT_HTML, CHART_TOKENS, CHART_POSITION} - {p.name for p in files}:
        (out_dir / name).unlink(missing_ok=True)
    return report_paths(out_dir, charts=charts, html=html)


def report_paths(out_dir: Path, *, charts: bool = True, html: bool = True) -> list[Path]:
    """The files :func:`write_report` writes into ``out_dir``, in the order ``promptc eval``
    names them: report.json, report.md, (with ``charts``) the two PNGs, report.html."""
    names = [REPORT_JSON, REPORT_MD, *((CHART_TOKENS, CHART_POSITION) if charts else ())]
    return [out_dir / n for n in names + ([REPORT_HTML] if html else [])]
