"""``promptc eval``: every strategy run and scored against the spec's gold answers.

::

    promptc eval SPEC [--strategies …] [--batch-sizes …] [--selection METHOD] [--data PATH]
                 [--base-url URL | --local [--model-path GGUF]] [--grammar MODE] [--limit N] [--baseline VARIANT]
                 [--tolerance X] [-o REPORT_DIR] [--format table|json] [--no-charts]
    promptc eval SPEC --results DIR [DIR …]       (score answered variant folders, no model)

Writes ``REPORT_DIR/report.md``, ``report.json``, ``accuracy-vs-tokens.png`` and
``accuracy-by-position.png``; each variant's build and answers live in
``REPORT_DIR/variants/NAME``. Exit status: 0 scored; 1 the spec has errors or requests failed;
2 usage error.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

import click

from promptc.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    compile_task,
    data_option,
    spec_argument,
    stderr,
    use_rich,
)
from promptc.errors import Location, UsageError
from promptc.eval.report import build_report, report_json, table_rows, write_report
from promptc.eval.results import read_variant
from promptc.eval.runner import run_variants
from promptc.plan.variants import (
    Variant,
    parse_batch_sizes,
    parse_selection,
    parse_strategies,
    variants,
)
from promptc.strategies import SINGLE

_TICK = re.compile(r"^\[(\d+)/(\d+)\]")


def _tolerance(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        d = Decimal(text)
    except InvalidOperation:
        d = Decimal("NaN")
    if not d.is_finite() or d < 0:
        raise UsageError(
            f"tolerance {text!r} is not a non-negative number",
            location=Location("<command line>"),
            path=("--tolerance",),
            code="bad-tolerance",
        )
    return d


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
    is_flag=True,
    default=False,
    help="Answer with promptc run's embedded llama.cpp model instead of a server.",
)
@click.option(
    "--model-path",
    default=None,
    type=click.Path(dir_okay=False),
    metavar="GGUF",
    help="With --local: the GGUF model (default: the bundled SmolLM2).",
)
@click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True, metavar="NAME")
@click.option(
    "--grammar",
    type=click.Choice(("auto", "gbnf", "json-schema", "none")),
    default="auto",
    show_default=True,
)
@click.option("--model", default=None, help="Send this model name instead of the spec's.")
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True)
@click.option(
    "--cache",
    "cache_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="The response cache (default: promptc's).",
)
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=600.0)
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
    help="Only the first N items of the data.",
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
@click.option(
    "-o",
    "--out",
    "out_dir",
    default="eval-report",
    show_default=True,
    type=click.Path(file_okay=False),
    metavar="REPORT_DIR",
)
@click.option(
    "--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True
)
@click.option("--no-charts", is_flag=True, help="Skip the PNG charts (no matplotlib needed).")
@click.argument("extra_results", nargs=-1, type=click.Path(file_okay=False), metavar="")
def eval_command(
    spec: str,
    strategies: str | None,
    batch_sizes: str | None,
    selection: str | None,
    data: str | None,
    base_url: str | None,
    local: bool,
    model_path: str | None,
    api_key_env: str,
    grammar: str,
    model: str | None,
    concurrency: int,
    cache_path: str | None,
    timeout: float,
    repair: int,
    limit: int | None,
    results: tuple[str, ...],
    baseline: str | None,
    tolerance: str | None,
    out_dir: str,
    fmt: str,
    no_charts: bool,
    extra_results: tuple[str, ...],
) -> None:
    """Run every strategy of SPEC and score its answers against the gold answers.

    Accuracy per output and overall (95% Wilson interval), parse statuses, calls and tokens
    per question, accuracy by position in the batch, and a paired McNemar comparison with
    the baseline, in REPORT_DIR/report.md, report.json and two charts.
    """
    tol = _tolerance(tolerance)
    folders = [*results, *extra_results] if results else []
    if extra_results and not results:
        raise click.UsageError(f"unexpected argument {extra_results[0]!r}")
    out = Path(out_dir)
    failed = 0
    if folders:
        task = compile_task(spec, data=data)
        read = [read_variant(f, task) for f in folders]
        baseline = baseline or _default_baseline([r.name for r in read])
    else:
        _check_model_choice(base_url, local)
        chosen = variants(
            parse_strategies(strategies),
            parse_batch_sizes(batch_sizes),
            parse_selection(selection),
        )
        baseline = _baseline_among(baseline, [v.name for v in chosen])
        task = compile_task(spec, data=data)  # every error of the spec before anything is sent
        if not any(i.gold for i in task.items):
            build_report(task, [], baseline=baseline)  # raises the no-gold error

        options: dict[str, Any] = {
            "base_url": base_url,
            "local": True if local else None,
            "model_path": model_path,
            "api_key_env": api_key_env,
            "grammar": grammar,
            "model": model,
            "concurrency": concurrency,
            "timeout": timeout,
            "cache_path": cache_path,
            "repair": repair,
        }
        ran = _run_with_progress(spec, chosen, out, options, data, limit)
        failed = _say_failures(r for _, _, r in ran)
        if limit is not None:
            task = dataclasses.replace(task, items=task.items[:limit])
        read = [read_variant(folder, task) for _, folder, _ in ran]
    report = build_report(task, read, baseline=baseline, tolerance=tol)
    written = write_report(report, out, charts=not no_charts)
    if fmt == "json":
        sys.stdout.write(report_json(report))
    else:
        _table(table_rows(report), sys.stdout)
        click.echo(f"report: {', '.join(str(p) for p in written)}", err=True)
    sys.exit(EXIT_INVALID if failed else EXIT_OK)


def _default_baseline(names: Sequence[str]) -> str:
    return SINGLE.name if SINGLE.name in names else names[0]


def _say_failures(runs: Iterable[Any]) -> int:
    """Prints each variant's requests that failed; returns how many."""
    failed = 0
    for run in runs:
        for f in run.failed:
            stderr().write(f.format() + "\n")
            failed += 1
    return failed


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


def _check_model_choice(base_url: str | None, local: bool) -> None:
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


def _run_with_progress(
    spec: str,
    chosen: Sequence[Variant],
    out: Path,
    options: dict[str, Any],
    data: str | None,
    limit: int | None,
) -> list[tuple[Variant, Path, Any]]:
    """Runs the variants with a rich progress bar on a terminal, plain lines otherwise."""
    err = stderr()
    if not use_rich(err):

        def say_variant(v: Variant, n: int) -> None:
            err.write(f"eval: {v.name}: {n} request(s)\n")

        def say(line: str) -> None:
            err.write(line + "\n")

        return run_variants(
            spec,
            chosen,
            out,
            run_options=options,
            data=data,
            limit=limit,
            on_variant=say_variant,
            progress=say,
        )
    # rich is imported for a terminal only: 30 to 60 ms that a pipe or a file does without.
    from rich.console import Console
    from rich.progress import Progress, TaskID

    with Progress(console=Console(file=err)) as bar:
        overall = bar.add_task("variants", total=len(chosen))
        current: list[TaskID] = []

        def on_variant(v: Variant, n: int) -> None:
            if current:
                bar.update(current[-1], visible=False)
                bar.advance(overall)
            current.append(bar.add_task(v.name, total=n))

        def progress(line: str) -> None:
            m = _TICK.match(line)
            if m and current:
                bar.update(current[-1], completed=int(m.group(1)))

        done = run_variants(
            spec,
            chosen,
            out,
            run_options=options,
            data=data,
            limit=limit,
            on_variant=on_variant,
            progress=progress,
        )
        bar.advance(overall)
    return done


def _table(rows: list[list[str]], stream: IO[str]) -> None:
    if use_rich(stream):
        # rich is imported for a terminal only: 30 to 60 ms that a pipe or a file does without.
        from rich.console import Console
        from rich.table import Table

        table = Table(*rows[0], title="promptc eval")
        for c in table.columns[1:]:
            c.justify = "right"
        for r in rows[1:]:
            table.add_row(*r)
        Console(file=stream).print(table)
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        stream.write("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() + "\n")
