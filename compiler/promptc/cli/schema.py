"""``promptc schema``: the JSON Schema of task specs."""

from __future__ import annotations

import sys

import click

from promptc.errors import Location, UsageError
from promptc.resources import read_schema
from promptc.text import write_atomic


@click.command("schema")
@click.option(
    "-o",
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    metavar="FILE",
    help="Write the schema to FILE (for a spec's $schema modeline) instead of printing it.",
)
def schema_command(out_file: str | None) -> None:
    """Print the JSON Schema of task specs (for editors and yaml-language-server)."""
    text = read_schema()
    if out_file is None:
        sys.stdout.write(text)
        return
    try:
        write_atomic(out_file, text.split("\n")[:-1])  # whole or not at all
    except OSError as e:
        raise UsageError(
            f"cannot write {out_file!r}: {e.strerror or e}",
            location=Location(out_file),
            code="out-not-writable",
        ) from None
