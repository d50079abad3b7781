"""``promptc eval``: every strategy run and scored against the spec's gold answers.

::

    promptc eval SPEC [--strategies …] [--batch-sizes …] [--selection METHOD] [--data PATH]
                 [--base-url URL | --local [--model-path GGUF]] [--grammar MODE] [--limit N] [--baseline VARIANT]
                 [--tolerance X] [--price-in USD --price-out USD] [--price-cached USD]
                 [--margin POINTS] [-o REPORT_DIR] [--format table|json] [--no-charts]
    promptc eval SPEC --results DIR [DIR …]       (score answered variant folders, no model)

Writes ``REPORT_DIR/report.md``, ``report.json``, ``report.html``, ``accuracy-vs-tokens.png``
and ``accuracy-by-position.png``; each variant's build and answers live in
``REPORT_DIR/variants/NAME``. Exit status: 0 scored; 1 the spec has errors or requests failed;
2 usage error.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from promptc.api import evaluate, run_variants
from promptc.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    FiniteRange,
    data_option,
    format_option,
    price_options,
    spec_argument,
    write_errors,
    write_table,
)
from promptc.cli.run import engine_options
from promptc.errors import Location, UsageError
from promptc.eval.charts import require_matplotlib
from promptc.eval.report import (
    DEFAULT_MARGIN,
    headline,
    parse_tolerance,
    report_json,
    report_paths,
    table_rows,
)
from promptc.plan.variants import (
    parse_batch_sizes,
    parse_selection,
    parse_strategies,
    variants,
)
from promptc.run.progress import cli_events
from promptc.strategies import SINGLE


@click.command("eval")
@spec_argument
@click.option("--strategies", default=None, metavar="LIST", help="Default: all four.")
@click.option(
    "--batch-sizes", default=None, metavar="LIST", help="For batch and auto-demo (default 4,8,16)."
)
@click.option("--selection", default=None, metavar="METHOD", help="For the batched variants.")
@data_option
@click.option("--base-url", default=None, metavar="URL", help="The OpenAI-compatible API.")
@click.option(
    "--local",
    flag_value=True,
    default=None,
    help="Answer with promptc run's embedded llama.cpp model instead of a server.",
)
@click.option(
    "--model-path",
    default=None,
    type=click.Path(dir_okay=False),
    metavar="GGUF",
    help="With --local: the GGUF model (default: the bundled SmolLM2).",
)
@engine_options
@click.option(
    "--repair",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="N",
    help="Re-ask failed items up to N rounds, as promptc run does. Off by default: a repaired "
    "item is answered by another request shape, which would blur the strategies compared.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Only the first N items of the data (with --results, folders holding other items "
    "are refused).",
)
@click.option(
    "--results",
    "results",
    multiple=True,
    type=click.Path(file_okay=False),
    metavar="DIR",
    help="Score these answered variant folders instead of running.",
)
@click.option(
    "--baseline",
    default=None,
    metavar="VARIANT",
    help="The variant others are compared with (default: single, else the first variant).",
)
@click.option("--tolerance", default=None, metavar="X", help="Absolute tolerance for numbers.")
@price_options
@click.option(
    "--margin",
    type=FiniteRange(min=0, max=100, min_open=True),
    default=DEFAULT_MARGIN,
    show_default=True,
    metavar="POINTS",
    help="Accuracy points the recommended variant may lose to the most accurate one.",
)
@click.option(
    "-o",
    "--out",
    "out_dir",
    default="eval-report",
    show_default=True,
    type=click.Path(file_okay=False),
    metavar="REPORT_DIR",
)
@format_option("table", "json")
@click.option("--no-charts", is_flag=True, help="Skip the PNG charts (no matplotlib needed).")
@click.argument("extra_results", nargs=-1, type=click.Path(file_okay=False), metavar="")
def eval_command(
    spec: str,
    strategies: str | None,
    batch_sizes: str | None,
    selection: str | None,
    data: str | None,
    limit: int | None,
    results: tuple[str, ...],
    baseline: str | None,
    tolerance: str | None,
    price_in: str | None,
    price_out: str | None,
    price_cached: str | None,
    margin: float,
    out_dir: str,
    fmt: str,
    no_charts: bool,
    extra_results: tuple[str, ...],
    **run_options: Any,
) -> None:
    """Run every strategy of SPEC and score its answers against the gold answers.

    Accuracy per output and overall (95% Wilson interval), wrong, unparsed and truncated
    items, calls, tokens and cost per question and per correct answer, accuracy by position in
    the batch, a paired McNemar comparison with the baseline, and a recommended variant, in
    REPORT_DIR/report.md, report.json, report.html and two charts.
    """
    folders = _folders(results, extra_results)
    tol = parse_tolerance(tolerance)
    if not no_charts:
        require_matplotlib()  # said before anything is sent, not after
    out = Path(out_dir)
    failures = []
    if not results:
        _check_model_choice(run_options["base_url"], run_options["local"])
        chosen = variants(
            parse_strategies(strategies),
            parse_batch_sizes(batch_sizes),
            parse_selection(selection),
        )
        baseline = _baseline_among(baseline, [v.name for v in chosen])
        ran = run_variants(
            spec,
            out,
            strategies=strategies,
            batch_sizes=batch_sizes,
            selection=selection,
            data=data,
            limit=limit,
            price_in=price_in,
            price_out=price_out,
            price_cached=price_cached,
            on_variant=lambda name, n: print(f"eval: {name}: {n} request(s)", file=sys.stderr),
            progress=cli_events(sys.stderr),  # each variant's run shows what promptc run shows
            warn=lambda w: write_errors(w, sys.stderr),
            **run_options,
        )
        failures = [f for _, _, r in ran for f in r.failed]
        sys.stderr.writelines(f.format() + "\n" for f in failures)
        folders = [str(b.folder) for _, b, _ in ran]
    report = evaluate(
        spec,
        folders,
        data=data,
        limit=limit,  # with --results: folders holding other items are refused, not cut
        baseline=baseline,
        tolerance=tol,
        price_in=price_in,
        price_out=price_out,
        price_cached=price_cached,
        margin=margin,
        report_dir=out,
        charts=not no_charts,
        answered=not results,  # after runs that all failed, no report of nothing
    )
    _print(report, report_paths(out, charts=not no_charts), fmt)
    sys.exit(EXIT_INVALID if failures else EXIT_OK)


def _print(report: dict[str, Any], written: Sequence[Path], fmt: str) -> None:
    if fmt == "json":
        sys.stdout.write(report_json(report))
        return
    write_table(
        table_rows(report), sys.stdout, "promptc eval", numbers=False, notes=headline(report)
    )
    click.echo(f"report: {', '.join(str(p) for p in written)}", err=True)


def _default_baseline(names: Sequence[str]) -> str:
    return SINGLE.name if SINGLE.name in names else names[0]


def _baseline_among(baseline: str | None, names: Sequence[str]) -> str:
    """The ``--baseline`` variant (or the default one), which must be one of ``names``."""
    baseline = baseline or _default_baseline(names)
    if baseline not in names:
        raise UsageError(
            f"baseline {baseline!r} is not among the variants ({', '.join(names)})",
            location=Location("<command line>"),
            path=("--baseline",),
            code="unknown-baseline",
        )
    return baseline


#: The options that apply with ``--results``: what is scored and how, where the report goes.
SCORING_OPTIONS = frozenset(
    {
        "spec",
        "data",
        "limit",
        "results",
        "extra_results",
        "baseline",
        "tolerance",
        "price_in",
        "price_out",
        "price_cached",
        "margin",
        "out_dir",
        "fmt",
        "no_charts",
    }
)


def _folders(results: tuple[str, ...], extra: tuple[str, ...]) -> list[str]:
    """The folders ``--results`` names (those after the first as arguments), with no option
    of a run beside them; none without ``--results``."""
    if not results:
        if extra:
            raise click.UsageError(f"unexpected argument {extra[0]!r}")
        return []
    _refuse_run_options(click.get_current_context())
    return [*results, *extra]


def _refuse_run_options(ctx: click.Context) -> None:
    """With ``--results`` nothing is built or run: an option of building or running the
    variants (``--strategies``, ``--base-url``, ``--repair`` …) given on the command line
    would be ignored, so it is refused, named (every option but :data:`SCORING_OPTIONS`).

    Raises:
        UsageError: ``option-with-results``.
    """
    for param in ctx.command.params:
        if param.name in SCORING_OPTIONS or param.name is None:
            continue
        if ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE:
            option = max(param.opts, key=len)
            raise UsageError(
                "this option applies only when promptc eval runs the variants; with --results "
                "the answered folders are scored as they are, and it would do nothing",
                location=Location("<command line>"),
                path=(option,),
                hint="leave it out; to score fewer variants, give --results only their folders",
                code="option-with-results",
            )


def _check_model_choice(base_url: str | None, local: bool | None) -> None:
    """A run needs one model: ``--base-url`` or ``--local``."""
    if base_url is None and not local:
        raise UsageError(
            "promptc eval needs a model: give --base-url URL or --local, or score "
            "existing answers with --results DIR…",
            location=Location("<command line>"),
            code="no-model",
        )
    if base_url is not None and local:
        raise UsageError(
            "give --base-url or --local, not both",
            location=Location("<command line>"),
            code="two-models",
        )
