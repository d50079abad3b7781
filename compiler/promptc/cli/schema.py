"""``promptc schema``: the JSON Schema of task specs."""

from __future__ import annotations

import sys

import click


@click.command("schema")
def schema_command() -> None:
    """Print the JSON Schema of task specs (for editors and yaml-language-server)."""
    from promptc.resources import read_schema

    text = read_schema()
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
