"""``promptc check``: every diagnostic of a spec, then a summary."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from promptc.api import load_spec, spec_warnings
from promptc.build.rounds import too_many_rounds
from promptc.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    batch_size_option,
    data_option,
    format_option,
    plural,
    strategy_option,
    write_errors,
    write_json,
)
from promptc.errors import PromptcError, PromptcErrors, one_line
from promptc.ir import SIMILARITY_METHODS, Task
from promptc.select.batches import batch_size as size_of

#: A promptc spec, told from other YAML files: its top level holds the ``promptc:`` key (the
#: spec format version, which the schema requires of every spec, ``extends`` ones included),
#: plain or quoted, after a byte order mark or in a flow mapping's first line too; indented
#: and double-quoted, as JSON written with an indent has it; or as an explicit key (``? promptc``).
SPEC_MARKER = re.compile(
    r"^\ufeff?(?:\{[ \t]*)?([\"']?)promptc\1[ \t]*:"
    r"|^\ufeff?[ \t]*\{?[ \t]*\"promptc\"[ \t]*:"
    r"|^\ufeff?\?[ \t]+([\"']?)promptc\2[ \t]*$",
    re.MULTILINE,
)


#: A layer over a spec: its top level extends a file (``extends: base.yaml``), which need not
#: repeat ``promptc:`` (docs/spec.md's own example does not).
EXTENDS_LINE = re.compile(
    r"^\ufeff?([\"']?)extends\1[ \t]*:[ \t]*([\"']?)([^\"'#\n]+?)\2[ \t]*(?:#.*)?$", re.MULTILINE
)


def is_spec(path: str, depth: int = 0) -> bool:
    """Whether the YAML file at ``path`` is a promptc spec (:data:`SPEC_MARKER`), or a layer
    extending one (:data:`EXTENDS_LINE`, the base a spec); an unreadable file counts as one,
    so that checking it says why — as does anything but a regular file (a named pipe would
    block the read forever; the loader refuses it). So does a layer whose base is a YAML file
    that cannot be read (a misspelt or renamed base) or whose chain of bases does not end (a
    cycle): what the check exists to say. A base that is no YAML file's name
    (``extends: eslint:recommended``) makes a file of another tool's."""
    try:
        if not Path(path).is_file():
            return depth == 0 or path.endswith((".yaml", ".yml"))
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return depth == 0 or path.endswith((".yaml", ".yml"))
    if SPEC_MARKER.search(text) is not None:
        return True
    base = EXTENDS_LINE.search(text)
    if base is None:
        return False
    if depth >= 32:
        return True
    return is_spec(str(Path(path).parent / base.group(3).strip()), depth + 1)


def check_spec(
    spec: str,
    max_errors: int | None,
    strategy: str | None = None,
    batch_size: int | None = None,
    data: str | None = None,
) -> tuple[int, PromptcErrors | None, str, list[PromptcError]]:
    """One spec checked: its exit status, its diagnostics (sorted by location), its summary
    and the warnings of a valid spec (an output budget that may cut its requests off)."""
    try:
        # check names no digest: the spec and data files are read without hashing them.
        task = load_spec(
            spec,
            strategy=strategy,
            batch_size=batch_size,
            data=data,
            max_errors=max_errors,
            digests=False,
        )
    except PromptcErrors as found:
        status = EXIT_USAGE if all(e.stage == "usage" for e in found) else EXIT_INVALID
        return (
            status,
            found,
            f"{one_line(spec)}: {plural(len(found) + found.omitted, 'error')}",
            [],
        )
    narrow = _voting_rounds_error(task)
    if narrow is not None:
        return EXIT_INVALID, PromptcErrors([narrow]), f"{one_line(spec)}: 1 error", []
    gold = task.data.gold if task.data is not None else {}
    with_gold = f" with gold {', '.join(gold)}" if gold else ""
    summary = (
        f"{one_line(spec)}: valid: {plural(len(task.items), 'item')}{with_gold}, strategy "
        f"{task.strategy.kind}, {size_of(task)} per request"
        + (f", {task.strategy.rounds} voting rounds" if task.strategy.rounds > 1 else "")
    )
    warnings = spec_warnings(task)
    if warnings:
        summary += f" ({plural(len(warnings), 'warning')})"
    return EXIT_OK, None, summary, warnings


def _voting_rounds_error(task: Task) -> PromptcError | None:
    """``vote-rounds`` when the data make the batches too narrow for the voting rounds (three
    items with ``rounds: 4``): what build would refuse. Found by dealing the rounds, which
    a selection by similarity cannot do without embedding every item: not tried for those."""
    if task.strategy.selection.method in SIMILARITY_METHODS:
        return None
    return too_many_rounds(task)


@click.command("check")
@click.argument(
    "specs",
    metavar="SPEC...",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, readable=True),
)
@format_option("text", "json", help="Diagnostics as lines for people or JSON for tools.")
@click.option(
    "--max-errors",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    metavar="N",
    help="Report at most N errors (then '… and M more').",
)
@click.option(
    "--specs-only",
    is_flag=True,
    help="Skip YAML files that are not promptc specs (neither a top-level 'promptc:' key nor "
    "'extends:'), as a pre-commit hook over every YAML file passes them.",
)
@strategy_option
@batch_size_option
@data_option
def check_command(
    specs: tuple[str, ...],
    fmt: str,
    max_errors: int,
    specs_only: bool,
    strategy: str | None,
    batch_size: int | None,
    data: str | None,
) -> None:
    """Validate each SPEC: schema, semantic checks, data and templates.

    Prints every problem as file:line:col: key.path: message (on stderr), then a summary per
    spec. Exit status 0 if every spec is valid, 1 if one is not, 2 for usage errors. Several
    specs (as pre-commit passes them) are checked one after the other; with --format json
    their reports come as one JSON list. With --specs-only, files that are not specs are
    skipped (pre-commit's hook passes every staged YAML file).
    """
    codes, reports = [EXIT_OK], []
    for spec in (s for s in specs if not specs_only or is_spec(s)):
        status, found, summary, warnings = check_spec(spec, max_errors, strategy, batch_size, data)
        codes.append(status)
        if fmt == "json":
            reports.append(
                {
                    "spec": spec,
                    "valid": status == EXIT_OK,
                    "errors": [e.to_dict() for e in found or ()],
                    "omitted": found.omitted if found else 0,
                    "warnings": [w.to_dict() for w in warnings],
                    "summary": summary,
                }
            )
            continue
        if found is not None:
            write_errors(found, sys.stderr)
        for warning in warnings:
            write_errors(warning, sys.stderr)
        (sys.stdout if status == EXIT_OK else sys.stderr).write(summary + "\n")
    if fmt == "json":
        write_json(reports[0] if len(specs) == 1 and reports else reports)
    sys.exit(max(codes))
