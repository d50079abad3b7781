"""The report of an eval: ``report.json`` (every figure), ``report.md`` (tables) and two charts.

``report.json`` is written with sorted keys and rounded figures and holds nothing that depends on
when or where it was made, so that identical results give a byte-identical file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from promptc import ir
from promptc.build import read_requests
from promptc.errors import BackendError, Location, UsageError
from promptc.eval.results import VariantResults
from promptc.eval.score import VariantScore, paired, pareto_front, pick_answers, score
from promptc.plan.tokenizers import tokenizer_for
from promptc.run.outputs import OUTPUTS_FILE, read_outputs_file
from promptc.strategies import NAMES, SINGLE, STRATEGIES, strategy

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
CHART_TOKENS = "accuracy-vs-tokens.png"
CHART_POSITION = "accuracy-by-position.png"
#: Both charts are drawn at this size: 8 × 5 inches at 100 dpi.
CHART_SIZE = (800, 500)


def _scored_items(task: ir.Task, v: VariantResults) -> dict[str, Mapping[str, ir.Value]]:
    """Gold of the items this variant's build covers (every item with gold, in data order)."""
    covered = set(v.item_ids) if v.item_ids else None
    return {i.id: i.gold for i in task.items if i.gold and (covered is None or i.id in covered)}


def _tokens(task: ir.Task, v: VariantResults) -> tuple[float | None, float | None, str]:
    """Input and output tokens per question, and where they came from."""
    n = len(_scored_items(task, v)) or 1
    if v.prompt_tokens is not None and v.completion_tokens is not None:
        return v.prompt_tokens / n, v.completion_tokens / n, "api usage"
    try:
        tok = tokenizer_for(task.model.name, spec_dir=task.spec_dir)
    except Exception:  # noqa: BLE001 - no tokenizer installed: the figures stay unknown
        return None, None, "unknown"
    try:
        inputs = sum(tok.count_messages(r.messages) for r in read_requests(v.folder))
        answers = read_outputs_file(v.folder / OUTPUTS_FILE).answers.values()
        outputs = sum(tok.count(str(a["output"])) for a in answers)
    finally:
        tok.close()
    mark = "" if tok.exact else " (estimate)"
    return inputs / n, outputs / n, f"tokenizer {tok.name}{mark}"


def _row(
    task: ir.Task, v: VariantResults, s: VariantScore, base: VariantScore, baseline: str
) -> dict[str, Any]:
    """One variant's row of the report: its score ``s`` beside the baseline's ``base``."""
    n = s.overall.n
    tin, tout, source = _tokens(task, v)
    return {
        "variant": v.name,
        "strategy": v.kind,
        "batch_size": v.batch_size,
        "selection": v.selection,
        "requests": v.requests,
        "answered_requests": v.answered,
        "items": n,
        "accuracy": s.overall.to_dict(),
        "per_output": {k: r.to_dict() for k, r in s.per_output.items()},
        "parse_rate": s.parse.to_dict(),
        "statuses": dict(s.statuses),
        "result_statuses": dict(v.statuses),
        "by_position": {str(p): r.to_dict() for p, r in s.by_position.items()},
        "calls_per_question": round(v.requests / n, 6) if n else None,
        "input_tokens_per_question": None if tin is None else round(tin, 2),
        "output_tokens_per_question": None if tout is None else round(tout, 2),
        "tokens_from": source,
        "seconds": None if v.seconds is None else round(v.seconds, 3),
        "questions_per_second": round(n / v.seconds, 3) if v.seconds else None,
        "paired": None if v.name == baseline else paired(base.correct, s.correct).to_dict(),
    }


def build_report(
    task: ir.Task,
    variants: Sequence[VariantResults],
    *,
    baseline: str = SINGLE.name,
    tolerance: Decimal | None = None,
) -> dict[str, Any]:
    """Every figure of the eval, JSON-ready and deterministic.

    Raises:
        UsageError: No item has a gold answer, or the baseline is not among the variants.
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
    scores: dict[str, VariantScore] = {}
    scored: set[str] = set()
    for v in variants:
        answers = pick_answers(v.results, v.targets)
        gold = _scored_items(task, v)
        scored.update(gold)
        scores[v.name] = score(task.outputs, gold, answers, tolerance)
    rows = [_row(task, v, scores[v.name], scores[baseline], baseline) for v in variants]
    points = [(r["input_tokens_per_question"] or 0.0, r["accuracy"]["accuracy"]) for r in rows]
    front = set(pareto_front(points))
    for k, r in enumerate(rows):
        r["pareto"] = k in front
    return {
        "spec": task.name,
        "items": len(scored),
        "baseline": baseline,
        "tolerance": None if tolerance is None else format(tolerance, "f"),
        "outputs_scored": sorted({k for i in task.items for k in i.gold}),
        "variants": rows,
    }


def report_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _pct(rate: Mapping[str, Any]) -> str:
    lo, hi = rate["ci95"]
    return f"{100 * rate['accuracy']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def table_rows(report: Mapping[str, Any]) -> list[list[str]]:
    """The summary table, header first (for report.md and the terminal)."""
    rows = [
        [
            "variant",
            "accuracy [95% CI]",
            "parsed",
            "calls/q",
            "in tok/q",
            "out tok/q",
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
                f"{r['calls_per_question']:.3f}" if r["calls_per_question"] is not None else "-",
                "-"
                if r["input_tokens_per_question"] is None
                else f"{r['input_tokens_per_question']:.1f}",
                "-"
                if r["output_tokens_per_question"] is None
                else f"{r['output_tokens_per_question']:.1f}",
                "-" if r["questions_per_second"] is None else f"{r['questions_per_second']:.2f}",
                "-" if p is None else f"{100 * p['difference']:+.1f} pts",
                "-" if p is None else f"{p['mcnemar_p']:.3g}",
            ]
        )
    return rows


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
    return "-" if rate is None else f"{100 * rate['accuracy']:.0f}% ({rate['n']})"


def report_md(report: Mapping[str, Any]) -> str:
    """report.md: the summary, statuses, per-output accuracy and accuracy by position."""
    parts = [
        f"# promptc eval: {report['spec']}\n\n",
        f"{report['items']} items with gold answers; baseline `{report['baseline']}`"
        + (f"; numbers within ±{report['tolerance']}" if report["tolerance"] else "")
        + ". `*` marks the Pareto front of accuracy against input tokens per question.\n",
        "\n![accuracy against input tokens per question](" + CHART_TOKENS + ")\n\n",
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
    positions = sorted({int(p) for r in report["variants"] for p in r["by_position"]})
    parts.append("\n## Accuracy by position in the batch\n\n")
    parts.append("![accuracy by position](" + CHART_POSITION + ")\n\n")
    parts.append(_per_variant(report, [str(p) for p in positions], _at_position))
    tokens = sorted({r["tokens_from"] for r in report["variants"]})
    parts.append(f"\nTokens from: {', '.join(tokens)}.\n")
    return "".join(parts)


def draw_charts(report: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """The two PNG charts, drawn with matplotlib's Agg backend.

    Raises:
        BackendError: matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BackendError(
            "promptc eval's charts need matplotlib, which is not installed",
            hint="pip install 'promptc-compiler[eval]'",
            code="missing-matplotlib",
        ) from None
    width, height = CHART_SIZE
    dpi = 100
    written = []
    for name, draw in ((CHART_TOKENS, _draw_tokens), (CHART_POSITION, _draw_positions)):
        fig, ax = plt.subplots(figsize=(width / dpi, height / dpi), dpi=dpi)
        draw(ax, report)
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path, dpi=dpi, metadata={"Software": None})
        plt.close(fig)
        written.append(path)
    return written


def _draw_tokens(ax: Any, report: Mapping[str, Any]) -> None:
    """Accuracy against input tokens per question, a colour per strategy, the Pareto front."""
    rows = report["variants"]
    xs = [float(r["input_tokens_per_question"] or 0.0) for r in rows]
    ys = [100 * r["accuracy"]["accuracy"] for r in rows]
    for kind in STRATEGIES.values():
        mine = [k for k, r in enumerate(rows) if r["strategy"] == kind.name]
        if not mine:
            continue
        rates = [rows[k]["accuracy"] for k in mine]
        ax.errorbar(
            [xs[k] for k in mine],
            [ys[k] for k in mine],
            yerr=[
                [100 * (a["accuracy"] - a["ci95"][0]) for a in rates],
                [100 * (a["ci95"][1] - a["accuracy"]) for a in rates],
            ],
            fmt="o",
            capsize=4,
            color=kind.colour,
            alpha=0.85,
            label=kind.name,
        )
    front = sorted((x, y) for x, y, r in zip(xs, ys, rows) if r["pareto"])
    if front:
        ax.plot(
            *zip(*front),
            "--",
            color="#d62728",
            linewidth=1,
            marker="o",
            markersize=13,
            markerfacecolor="none",
            label="Pareto front",
        )
    # Variants at the same point share one label, so that names do not print over each other.
    labels: dict[tuple[float, float], list[str]] = {}
    for x, y, r in zip(xs, ys, rows):
        labels.setdefault((x, y), []).append(r["variant"])
    for (x, y), names in labels.items():
        ax.annotate(", ".join(names), (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xlabel("input tokens per question")
    ax.set_ylabel("accuracy (%), 95% Wilson interval")
    ax.set_ylim(-5, 105)
    ax.set_title(f"{report['spec']}: accuracy against input tokens ({report['items']} items)")
    ax.grid(alpha=0.3)
    ax.margins(x=0.15)
    ax.legend(loc="best", fontsize=8)


def _draw_positions(ax: Any, report: Mapping[str, Any]) -> None:
    """Accuracy by position in the batch, a line per batched variant."""
    from matplotlib.ticker import MaxNLocator  # matplotlib is optional (see draw_charts)

    rows = report["variants"]
    longest = max((int(p) for r in rows for p in r["by_position"]), default=1)
    for r in rows:
        kind = strategy(r["strategy"])
        if kind.one_item:
            # One question a request: no positions, so its accuracy is drawn as a reference.
            ax.axhline(
                100 * r["accuracy"]["accuracy"],
                linestyle=":",
                color=kind.colour,
                label=f"{r['variant']} (one a request)",
            )
            continue
        pos = sorted(int(p) for p in r["by_position"])
        if not pos:
            continue
        acc = [100 * r["by_position"][str(p)]["accuracy"] for p in pos]
        ax.plot(pos, acc, marker="o", label=r["variant"])
    ax.set_xlabel("position in the batch (1 = first question)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(-5, 105)
    ax.set_xlim(0.5, longest + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{report['spec']}: accuracy by position in the batch")
    ax.grid(alpha=0.3)
    if rows:
        ax.legend(fontsize=8, loc="best")


def write_report(report: Mapping[str, Any], out_dir: Path, charts: bool = True) -> list[Path]:
    """Writes report.json, report.md and (with ``charts``) the two PNGs into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / REPORT_JSON).write_text(report_json(report), encoding="utf-8", newline="\n")
    (out_dir / REPORT_MD).write_text(report_md(report), encoding="utf-8", newline="\n")
    written = [out_dir / REPORT_JSON, out_dir / REPORT_MD]
    if charts:
        written += draw_charts(report, out_dir)
    return written
