"""``promptc diff``: what a change to a spec did to its requests, request by request.

::

    promptc diff SPEC --against REV       the spec as it was at a git revision → as it is now
    promptc diff BUILD_A BUILD_B          two build folders (or spec files)

Exit status: 0 nothing changed, 1 something did, 2 an error (each printed as one
``file:line:col: message`` line, never a traceback).
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO

import click

from promptc.api import load_spec, overrides
from promptc.build import assemble
from promptc.build.targets import NAMES as TARGET_NAMES
from promptc.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    batch_size_option,
    format_option,
    strategy_option,
    use_rich,
    write_errors,
)
from promptc.diff import report
from promptc.diff.revision import resolve, view_at
from promptc.diff.views import (
    BuildView,
    compare,
    read_view,
    same_spec,
    tokenizer_of,
    view_of_result,
)
from promptc.errors import Location, PromptcError, UsageError
from promptc.text import printable


def _missing(path: str) -> PromptcError:
    return UsageError(
        f"no such spec file or build folder {path!r}",
        location=Location(path),
        code="no-such-path",
    )


def _view_now(path: str, strategy: str | None, batch_size: int | None, target: str) -> BuildView:
    """A build folder read back, or a spec compiled and built in memory."""
    if os.path.isdir(path):
        if strategy is not None or batch_size is not None:  # never dropped without a word
            raise UsageError(
                f"{path!r} is a build folder, built with its own strategy and batch size: "
                "--strategy and --batch-size apply to a spec compiled for the comparison",
                location=Location(path),
                code="diff-usage",
            )
        return read_view(path)
    if not os.path.isfile(path):
        raise _missing(path)
    task = load_spec(path, strategy=strategy, batch_size=batch_size)
    return view_of_result(assemble(task, target=target), path, task)


def run_diff(
    a: str,
    b: str | None,
    against: str | None,
    *,
    stat: bool,
    fmt: str,
    strategy: str | None,
    batch_size: int | None,
    target: str,
    out: IO[str],
) -> int:
    """``promptc diff``; returns the exit status (errors are raised)."""
    if against is not None:
        if b is not None:
            raise UsageError(
                "give either SPEC --against REV or two builds, not both", code="diff-usage"
            )
        if os.path.isdir(a):
            raise UsageError(
                f"{a!r} is a folder: --against REV needs a spec file",
                location=Location(a),
                code="diff-usage",
            )
        if not os.path.isfile(a):
            raise _missing(a)
        resolve(a, against)  # a bad revision is said before any compiling
        new = _view_now(a, strategy, batch_size, target)
        wanted = overrides(strategy, batch_size) or None
        old, read = view_at(a, against, overrides=wanted, target=target)
        sys.stderr.write(f"promptc diff: read at {against}: {', '.join(read)}\n")
    else:
        if b is None:
            raise UsageError(
                "give SPEC --against REV, or two build folders to compare",
                code="diff-usage",
                hint="e.g. promptc diff specs/task.yaml --against HEAD",
            )
        old = _view_now(a, strategy, batch_size, target)
        new = _view_now(b, strategy, batch_size, target)
        if os.path.isdir(a) or os.path.isdir(b):  # two spec files are compared as asked
            same_spec(old, new)
    tokenizer = tokenizer_of(new)
    try:
        diff = compare(old, new, tokenizer)
    finally:
        if tokenizer is not None:
            tokenizer.close()
    status = EXIT_INVALID if diff.changed else EXIT_OK
    if fmt == "json":
        data = report.to_json(diff)
        if stat:
            data = {k: data[k] for k in ("old", "new", "changed", "summary")}
        out.write(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n")
        return status
    # Control characters of the data, templates and ids (an escape sequence that moves the
    # cursor up and erases a line, U+202E) would hide or disguise lines of the diff under
    # review, on a terminal and in a CI log that renders them: written as escapes.
    lines = [(printable(text), style) for text, style in report.lines(diff, stat=stat)]
    if use_rich(out):
        # rich is imported for a terminal only: 30 to 60 ms that a pipe or a file does without.
        from rich.console import Console
        from rich.text import Text

        console = Console(file=out, highlight=False, soft_wrap=True)
        for text, style in lines:
            console.print(Text(text, style=style))
    else:
        out.write("".join(text + "\n" for text, _ in lines))
    return status


@click.command("diff")
@click.argument("a", metavar="SPEC_OR_BUILD")
@click.argument("b", metavar="[BUILD_B]", required=False)
@click.option(
    "--against",
    metavar="REV",
    default=None,
    help="A git revision: compare the spec as it was there with the spec as it is now.",
)
@click.option("--stat", is_flag=True, help="Print the summary alone.")
@format_option("text", "json", help="A readable diff, or JSON for tools.")
@strategy_option
@batch_size_option
@click.option(
    "--target",
    type=click.Choice(TARGET_NAMES),
    default="chat",
    show_default=True,
    help="Build target of specs compiled for the comparison.",
)
def diff_command(
    a: str,
    b: str | None,
    against: str | None,
    stat: bool,
    fmt: str,
    strategy: str | None,
    batch_size: int | None,
    target: str,
) -> None:
    """Show what changed between two builds, request by request.

    SPEC --against REV compares the spec as it was at a git revision (with the specs it
    extends, its templates and its data, read from git) with the spec as it is now.
    BUILD_A BUILD_B compares two build folders. Requests are matched by the items they
    hold. Exit status 0 when nothing changed, 1 when something did, 2 on errors.
    """
    try:
        code = run_diff(
            a,
            b,
            against,
            stat=stat,
            fmt=fmt,
            strategy=strategy,
            batch_size=batch_size,
            target=target,
            out=sys.stdout,
        )
    except PromptcError as e:
        # 1 means "changed" here: every error, the spec's own included, exits 2.
        write_errors(e, sys.stderr)
        code = EXIT_USAGE
    sys.exit(code)
