"""What the commands share: exit statuses, common options, writing errors, JSON and tables."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import IO, Any, TypeVar

import click

from promptc.errors import PromptcError, flatten
from promptc.limits import MAX_BATCH_SIZE
from promptc.strategies import NAMES
from promptc.text import printable

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
#: Items still not ok after a run or collect (documented in docs/cli.md); Ctrl-C.
EXIT_ITEMS, EXIT_INTERRUPTED = 4, 130


def write_errors(error: PromptcError, err: IO[str], prefix: str = "") -> list[PromptcError]:
    """Writes each error ``error`` holds as a line after ``prefix``, then ``… and N more`` for
    those it counted but left out; returns the errors written."""
    errors = flatten([error])
    for e in errors:
        err.write(f"{prefix}{printable(e.format())}\n")
    omitted = getattr(error, "omitted", 0)
    if omitted:
        err.write(f"… and {omitted} more\n")
    return errors


class FiniteRange(click.FloatRange):
    """click's ``FloatRange`` that also refuses ``nan`` and ``inf`` (which ``float()`` reads
    and every range comparison lets through): a timeout or a price is a finite number."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def plural(n: int, word: str) -> str:
    """``plural(1, "item")`` → ``1 item``; ``plural(3, "item")`` → ``3 items``."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def format_option(*choices: str, help: str | None = None) -> Callable[[F], F]:
    """``--format``, one of ``choices``: the first unless asked."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default=choices[0],
        show_default=True,
        help=help,
    )


def write_json(doc: object) -> None:
    """A command's result as ``--format json`` prints it: one JSON document on stdout, keys
    sorted, indented for people, non-ASCII text as written."""
    sys.stdout.write(json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n")


def write_json_rows(doc: Mapping[str, object], key: str, rows: Iterable[object]) -> None:
    """:func:`write_json` of ``doc`` with ``rows`` as its list ``key``, the same bytes, each
    row written as it comes: a list of a million rows is never held."""
    at = json.dumps(key + "\0", ensure_ascii=False)  # where the rows go: no field holds a NUL
    text = json.dumps({**doc, key: key + "\0"}, ensure_ascii=False, indent=2, sort_keys=True)
    head, tail = text.split(at, 1)
    sys.stdout.write(head + "[")
    rest = ""
    for row in rows:
        one = json.dumps(row, ensure_ascii=False, indent=2, sort_keys=True)
        sys.stdout.write(rest + "\n    " + one.replace("\n", "\n    "))
        rest = ","
    sys.stdout.write(("\n  ]" if rest else "]") + tail + "\n")


#: ``--format text|json`` of the commands that print a result (``build``, ``show``, ``init``,
#: ``model``, ``schema --wiring``).
json_format_option = format_option(
    "text", "json", help="The result: lines for people, or a JSON object on stdout."
)

#: ``--format text|json`` of the commands that end in a summary (``run``, ``collect``).
summary_format_option = format_option(
    "text", "json", help="The summary: a line on stderr, or a JSON object on stdout."
)

strategy_option = click.option(
    "--strategy",
    type=click.Choice(NAMES),
    default=None,
    help="Override strategy.kind of the spec.",
)
batch_size_option = click.option(
    "--batch-size",
    type=click.IntRange(min=1, max=MAX_BATCH_SIZE),
    default=None,
    metavar="N",
    help=f"Override strategy.batch_size of the spec (1 to {MAX_BATCH_SIZE}).",
)
data_option = click.option(
    "--data",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="PATH",
    help="Read the items from PATH instead of the spec's data.path (relative to the working "
    "folder; the format from its extension unless data.format says).",
)


def price_options(command: F) -> F:
    """``--price-in``, ``--price-out`` and ``--price-cached`` (USD per million tokens), as
    ``plan`` and ``eval`` take them; read by :func:`promptc.plan.estimate.price_of`."""
    command = click.option(
        "--price-cached",
        default=None,
        metavar="USD",
        help="USD per million input tokens served from the engine's prompt cache (the prefix "
        "every request repeats). Default: model.price.cached_input, else the input price.",
    )(command)
    command = click.option(
        "--price-out", default=None, metavar="USD", help="USD per million output tokens."
    )(command)
    return click.option(
        "--price-in", default=None, metavar="USD", help="USD per million input tokens."
    )(command)


spec_argument = click.argument("spec", type=click.Path(exists=True, dir_okay=False, readable=True))


def use_rich(stream: IO[str]) -> bool:
    """Whether to draw with rich: on a terminal.

    The commands import rich's console and tables only then: they take 30 to 60 ms to
    import, which output to a pipe or a file does without.
    """
    return stream.isatty()


def write_table(
    rows: Sequence[Sequence[str]],
    out: IO[str],
    title: str,
    *,
    numbers: bool,
    notes: Sequence[str] = (),
) -> None:
    """A table, header row first, then ``notes`` under it: drawn with rich on a terminal, in
    plain columns otherwise (the columns after the first right-aligned when ``numbers``)."""
    if use_rich(out):
        # rich is imported for a terminal only: 30 to 60 ms that a pipe or a file does without.
        from rich.console import Console
        from rich.table import Table

        table = Table(*rows[0], title=title)
        for c in table.columns[1:]:
            c.justify = "right"
        for r in rows[1:]:
            table.add_row(*r)
        console = Console(file=out)
        console.print(table)
        for n in notes:
            console.print(n, style="dim")
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        cells = [r[0].ljust(widths[0])]
        cells += [c.rjust(w) if numbers else c.ljust(w) for c, w in zip(r[1:], widths[1:])]
        out.write("  ".join(cells).rstrip() + "\n")
    out.writelines(n + "\n" for n in notes)
