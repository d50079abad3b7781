"""``promptc schema``: the JSON Schema of task specs, and how to wire it into an editor.

::

    promptc schema                      # print the schema
    promptc schema -o FILE              # write it (``promptc init`` writes one beside a spec)
    promptc schema --wiring [--format text|json]   # the yaml.schemas setting for editors

The schema's ``$id`` (``urn:promptc-compiler:spec:1``) is the same wherever the file is
copied. A spec names its schema by a modeline on its first line (``# yaml-language-server:
$schema=spec.schema.json``, which ``promptc init`` writes, relative to the spec), or an
editor maps globs to the schema file in its ``yaml.schemas`` setting (VS Code with Red Hat's
YAML extension, and every client of yaml-language-server): ``--wiring`` prints that setting
with the installed schema's path.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from importlib.resources import as_file, files

import click

from promptc.cli.common import json_format_option, write_json
from promptc.errors import Location, UsageError
from promptc.resources import read_schema
from promptc.text import write_output

#: The globs a ``yaml.schemas`` setting maps to the schema: the file ``promptc init`` writes,
#: and the specs of a ``specs/`` folder.
SPEC_GLOBS = ("task.yaml", "specs/*.yaml")


def wiring() -> dict[str, object]:
    """The schema's ``$id`` and installed path, and the ``yaml.schemas`` setting that maps
    :data:`SPEC_GLOBS` to that path."""
    with as_file(files("promptc.schema").joinpath("spec.schema.json")) as path:
        where = str(path)
    schema_id = json.loads(read_schema()).get("$id")
    return {"id": schema_id, "path": where, "yaml.schemas": {where: list(SPEC_GLOBS)}}


#: What ``--wiring`` says of the setting, on stderr: stdout is the setting alone, a JSON
#: object to paste into (or redirect to) settings.json.
_WIRING_NOTE = """\
The spec schema ({id}), installed at:
  {path}
VS Code (Red Hat's YAML extension: settings.json) and every yaml-language-server client
(Neovim's yamlls, Helix, Zed, Emacs lsp-mode: their "yaml.schemas" setting) validate the
files these globs match. Add your own globs; a path that must not move with the
environment: `promptc schema -o FILE` and put FILE here instead.
Or one spec at a time: its first line `# yaml-language-server: $schema=spec.schema.json`
(`promptc init` writes it, with the schema beside the spec).
"""


#: The most of a file -o names that is read to see whether it is a schema promptc wrote.
MAX_SCHEMA_BYTES = 4 << 20


def _holds_a_schema(path: str) -> bool:
    """Whether the schema may replace the file at ``path``: none there, empty, not a regular
    file (a pipe, a device or a link, written into or replaced by its name), or a spec schema
    of promptc's (any version: its ``$id`` is ``urn:promptc-compiler:spec:N``). A spec or any
    other file named by mistake is not."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return True
        with open(path, "rb") as f:
            head = f.read(MAX_SCHEMA_BYTES + 1)
    except OSError:  # none there, or unreadable: said where it is written
        return True
    if not head.strip():
        return True
    try:
        data = json.loads(head)
    except (ValueError, RecursionError):
        return False
    schema_id = data.get("$id") if isinstance(data, dict) else None
    return isinstance(schema_id, str) and schema_id.startswith("urn:promptc-compiler:spec:")


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
@click.option(
    "--wiring",
    "wiring_asked",
    is_flag=True,
    help="Print the yaml.schemas setting of VS Code and yaml-language-server for the schema.",
)
@json_format_option
def schema_command(out_file: str | None, wiring_asked: bool, fmt: str) -> None:
    """Print the JSON Schema of task specs (for editors and yaml-language-server)."""
    if wiring_asked and out_file is not None:
        raise click.UsageError(
            "--wiring prints the editors' setting; -o writes the schema: give one"
        )
    if wiring_asked:
        found = wiring()
        if fmt == "json":
            write_json(found)
        else:
            sys.stderr.write(_WIRING_NOTE.format(**found))
            sys.stdout.write(json.dumps({"yaml.schemas": found["yaml.schemas"]}, indent=2) + "\n")
        return
    text = read_schema()
    if out_file is None:
        sys.stdout.write(text)
        return
    if not _holds_a_schema(out_file):
        raise UsageError(
            "not a spec schema promptc wrote (no JSON object with the $id "
            f"{json.loads(text)['$id']!r}): the schema would replace what it holds",
            location=Location(out_file),
            path=("-o",),
            hint="give a new or empty file, or a spec.schema.json that promptc schema wrote",
            code="out-not-schema",
        )
    try:
        write_output(out_file, text.split("\n")[:-1])  # whole or not at all
    except OSError as e:
        raise UsageError(
            f"cannot write {out_file!r}: {e.strerror or e}",
            location=Location(out_file or "<command line>"),
            path=("-o",),
            code="out-not-writable",
        ) from None
