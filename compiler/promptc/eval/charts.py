"""The eval's two charts, drawn with matplotlib's Agg backend from ``report.json``'s figures:
accuracy against total cost per question (with the Pareto front), and accuracy by position in
the batch (with Wilson intervals; items lost to ``max_tokens`` are left out, so that a budget
cut does not look like a position effect)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from promptc.errors import BackendError
from promptc.strategies import STRATEGIES, strategy

CHART_TOKENS = "accuracy-vs-tokens.png"
CHART_POSITION = "accuracy-by-position.png"
#: Both charts are drawn at this size: 8 × 5 inches at 100 dpi.
CHART_SIZE = (800, 500)
INSTALL_EVAL = "pip install 'promptc-compiler[eval]'"


def require_matplotlib() -> None:
    """Says, before anything is sent, that the charts cannot be drawn.

    Raises:
        BackendError: matplotlib is not installed.
    """
    try:
        import matplotlib  # noqa: F401  (optional and heavy: imported only to draw)
    except ImportError:
        raise BackendError(
            "promptc eval's charts need matplotlib, which is not installed",
            hint=f"{INSTALL_EVAL}, or pass --no-charts",
            code="missing-matplotlib",
        ) from None


def draw_charts(report: Mapping[str, Any]) -> dict[str, bytes]:
    """The two PNG charts, by file name.

    Raises:
        BackendError: matplotlib is not installed.
    """
    require_matplotlib()
    import matplotlib  # optional and heavy (about 0.3 s): only when charts are drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width, height = CHART_SIZE
    dpi = 100
    drawn = {}
    for name, draw in ((CHART_TOKENS, _draw_cost), (CHART_POSITION, _draw_positions)):
        fig, ax = plt.subplots(figsize=(width / dpi, height / dpi), dpi=dpi)
        draw(ax, report)
        fig.tight_layout()
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=dpi, metadata={"Software": None})
        plt.close(fig)
        drawn[name] = png.getvalue()
    return drawn


def _cost(row: Mapping[str, Any], unit: str) -> float:
    # Dollars a question are millionths: drawn per 1,000 questions, as the table says them.
    return float(row["cost"]["per_question"] or 0.0) * (1000 if unit == "USD" else 1)


def _draw_cost(ax: Any, report: Mapping[str, Any]) -> None:
    """Accuracy against total cost per question, a colour per strategy, the Pareto front."""
    rows = report["variants"]
    unit = report["cost_unit"]
    xs = [_cost(r, unit) for r in rows]
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
        cut = " (truncated)" if r["truncated"] else ""
        labels.setdefault((x, y), []).append(r["variant"] + cut)
    for (x, y), names in labels.items():
        ax.annotate(", ".join(names), (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    per = "USD per 1,000 questions" if unit == "USD" else "tokens per question"
    ax.set_xlabel(f"total cost, input + output ({per})")
    ax.set_ylabel("accuracy (%), 95% Wilson interval")
    ax.set_ylim(-5, 105)
    ax.set_title(f"{report['spec']}: accuracy against cost ({report['items']} items)")
    ax.grid(alpha=0.3)
    ax.margins(x=0.15)
    ax.legend(loc="best", fontsize=8)


def _draw_positions(ax: Any, report: Mapping[str, Any]) -> None:
    """Accuracy by position in the batch with Wilson intervals, a line per batched variant."""
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
        rates = [r["by_position"][str(p)] for p in pos]
        cut = f", {r['truncated']} truncated left out" if r["truncated"] else ""
        ax.errorbar(
            pos,
            [100 * a["accuracy"] for a in rates],
            yerr=[
                [100 * (a["accuracy"] - a["ci95"][0]) for a in rates],
                [100 * (a["ci95"][1] - a["accuracy"]) for a in rates],
            ],
            marker="o",
            capsize=3,
            alpha=0.85,
            label=r["variant"] + cut,
        )
    ax.set_xlabel("position in the batch (1 = first question)")
    ax.set_ylabel("accuracy (%), 95% Wilson interval")
    ax.set_ylim(-5, 105)
    ax.set_xlim(0.5, longest + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{report['spec']}: accuracy by position (items lost to max_tokens left out)")
    ax.grid(alpha=0.3)
    if rows:
        ax.legend(fontsize=8, loc="best")
