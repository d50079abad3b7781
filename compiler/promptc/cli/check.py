"""``promptc check``: every diagnostic of a spec, then a summary."""

from __future__ import annotations

import io
import json
import sys
from typing import IO

import click

from promptc.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    batch_size_option,
    compile_task,
    data_option,
    plural,
    stderr,
    strategy_option,
)
from promptc.errors import PromptcError, PromptcErrors, flatten
from promptc.render.checks import check_templates
from promptc.select.batches import batch_size as size_of
from promptc.select.methods import missing_requirements


def run_check(
    spec: str,
    fmt: str,
    max_errors: int | None,
    out: IO[str],
    err: IO[str],
    strategy: str | None = None,
    batch_size: int | None = None,
    data: str | None = None,
) -> int:
    """``promptc check``: every diagnostic of a spec, then a summary; returns the exit status."""
    errors: list[PromptcError] = []
    omitted = 0
    task = None
    try:
        # check names no digest: the spec and data files are read without hashing them.
        task = compile_task(spec, strategy, batch_size, max_errors, data, digests=False)
    except PromptcErrors as e:
        errors, omitted = list(e.errors), e.omitted
    if task is not None:
        errors = flatten(check_templates(task)) + list(missing_requirements(task))
        if max_errors is not None and len(errors) > max_errors:
            omitted, errors = len(errors) - max_errors, errors[:max_errors]
    if errors:
        errors = list(PromptcErrors(errors).errors)  # sorted by location
    usage = bool(errors) and all(e.stage == "usage" for e in errors)
    status = EXIT_OK if not errors else (EXIT_USAGE if usage else EXIT_INVALID)
    total = len(errors) + omitted
    if status == EXIT_OK and task is not None:
        gold = task.data.gold if task.data is not None else {}
        with_gold = f" with gold {', '.join(gold)}" if gold else ""
        summary = (
            f"{spec}: valid: {plural(len(task.items), 'item')}{with_gold}, strategy "
            f"{task.strategy.kind}, {size_of(task)} per request"
        )
    else:
        summary = f"{spec}: {plural(total, 'error')}"
    if fmt == "json":
        doc = {
            "spec": spec,
            "valid": status == EXIT_OK,
            "errors": [e.to_dict() for e in errors],
            "omitted": omitted,
            "summary": summary,
        }
        out.write(json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n")
        return status
    for error in errors:
        err.write(error.format() + "\n")
    if omitted:
        err.write(f"… and {omitted} more\n")
    (out if status == EXIT_OK else err).write(summary + "\n")
    return status


@click.command("check")
@click.argument(
    "specs",
    metavar="SPEC...",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, readable=True),
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("text", "json")),
    default="text",
    show_default=True,
    help="Diagnostics as lines for people or JSON for tools.",
)
@click.option(
    "--max-errors",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    metavar="N",
    help="Report at most N errors (then '… and M more').",
)
@strategy_option
@batch_size_option
@data_option
def check_command(
    specs: tuple[str, ...],
    fmt: str,
    max_errors: int,
    strategy: str | None,
    batch_size: int | None,
    data: str | None,
) -> None:
    """Validate each SPEC: schema, semantic checks, data and templates.

    Prints every problem as file:line:col: key.path: message (on stderr), then a summary per
    spec. Exit status 0 if every spec is valid, 1 if one is not, 2 for usage errors. Several
    specs (as pre-commit passes them) are checked one after the other; with --format json
    their reports come as one JSON list.
    """
    if len(specs) == 1 or fmt != "json":
        codes = [
            run_check(spec, fmt, max_errors, sys.stdout, stderr(), strategy, batch_size, data)
            for spec in specs
        ]
        sys.exit(max(codes))
    reports, codes = [], []
    for spec in specs:
        buffer = io.StringIO()
        codes.append(run_check(spec, fmt, max_errors, buffer, stderr(), strategy, batch_size, data))
        reports.append(json.loads(buffer.getvalue()))
    sys.stdout.write(json.dumps(reports, ensure_ascii=False, indent=2, sort_keys=True) + "\n")
    sys.exit(max(codes))
