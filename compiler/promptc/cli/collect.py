"""``promptc collect``: turn Batch API or vLLM ``run_batch`` results into per-item results.

::

    promptc collect BUILD_DIR OUTPUT.jsonl [ERRORS.jsonl | MORE.jsonl]... [-o REPAIR_DIR]
                    [--format text|json]

Writes ``BUILD_DIR/outputs.jsonl`` and ``BUILD_DIR/results.jsonl`` and, when items are not
ok, a repair build (default ``BUILD_DIR/repair``) of just those items, to run or submit again.

Exit status: 0 every item ok; 4 items not ok (the repair build is written); 2 usage error
(not a build, a file that cannot be read).
"""

from __future__ import annotations

import json
import sys

import click

from promptc.api import collect
from promptc.cli.common import (
    EXIT_ITEMS,
    EXIT_OK,
    EXIT_USAGE,
    summary_format_option,
    write_errors,
)
from promptc.errors import PromptcError


@click.command("collect")
@click.argument("build_dir", metavar="BUILD_DIR", type=click.Path(exists=True, file_okay=False))
@click.argument("output_file", metavar="OUTPUT.jsonl", type=click.Path(exists=True, dir_okay=False))
@click.argument(
    "more_files",
    metavar="[ERRORS.jsonl | MORE.jsonl]...",
    nargs=-1,
    type=click.Path(exists=True, dir_okay=False),
)
@click.option(
    "-o",
    "--repair-dir",
    type=click.Path(file_okay=False),
    default=None,
    metavar="DIR",
    help="Where to write the repair build of the items not ok (default: BUILD_DIR/repair).",
)
@summary_format_option
def collect_command(
    build_dir: str,
    output_file: str,
    more_files: tuple[str, ...],
    repair_dir: str | None,
    fmt: str,
) -> None:
    """Read a batch's OUTPUT.jsonl (and ERRORS.jsonl) into BUILD_DIR's results.jsonl, and
    write a repair build of the items that are not ok.

    More files are read alike: the error file, and the output of the repair build's batch,
    whose answers are merged into the items' results."""
    try:
        result = collect(build_dir, output_file, *more_files, repair_dir=repair_dir)
    except PromptcError as e:
        write_errors(e, sys.stderr, "error: ")
        sys.exit(EXIT_USAGE)
    for rid, why in sorted(result.failed.items()):
        click.echo(f"request {rid}: no answer ({why})", err=True)
    for line in result.messages():
        click.echo(line, err=True)
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), sort_keys=True))
    else:
        click.echo(result.summary(), err=True)
    sys.exit(EXIT_ITEMS if result.not_ok else EXIT_OK)
