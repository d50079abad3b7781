"""The ``promptc`` command.

::

    promptc check SPEC [--format text|json] [--max-errors N]
    promptc build SPEC -o DIR [--strategy K] [--batch-size N]
                  [--target chat|openai-batch|vllm-batch]
    promptc build SPEC --emit ir|batches|requests        (print a stage instead of writing)
    promptc build SPEC -o DIR --check                    (is DIR current? writes nothing)
    promptc show SPEC --request K | --batches
    promptc parse BUILD_DIR_OR_SPEC OUTPUTS …            (see promptc.cli.parse)
    promptc run BUILD_DIR [--base-url URL | --local] …   (see promptc.cli.run)
    promptc collect BUILD_DIR OUTPUT.jsonl [ERRORS.jsonl] (see promptc.cli.collect)
    promptc diff SPEC --against REV | BUILD_A BUILD_B    (see promptc.cli.diff)
    promptc init [DIR] [--strategy K] [--task text|number|enum]
    promptc plan SPEC [--strategies …] [--batch-sizes …] (see promptc.cli.plan)
    promptc eval SPEC [--base-url URL | --results DIR…]  (see promptc.cli.eval)
    promptc schema [-o FILE] [--wiring]
    promptc model fetch | path                           (the embedded model of --local)
    promptc --version

Exit status: 0 success, 1 the spec (or a template, or the data) has errors, 2 usage error,
3 internal error. Every promptc error is printed as ``file:line:col: path: message`` on
stderr, never as a traceback.

One module per command lives beside this one (:mod:`promptc.cli.check`,
:mod:`promptc.cli.build` …), imported only when its command runs (the command table,
:attr:`LazyGroup.lazy`): with every command imported, ``promptc --help`` or a mistyped
command would first load the whole pipeline (YAML, Jinja, lark, jsonschema, rich), about
150 ms, where this module and click take about 25 ms.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import sys
from collections.abc import Mapping, Sequence
from typing import IO, Any, NoReturn

import click

from promptc.cli.common import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    plural,
    write_errors,
)
from promptc.errors import PromptcError
from promptc.version import VERSION


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when run.

    ``promptc --help`` shows their one-line help from :attr:`lazy` without importing them
    (``tests/test_cli.py`` checks that each line is the first line of its command's help).
    """

    #: name → one-line help. The command is ``<name>_command`` of the module
    #: ``promptc.cli.<name>``.
    lazy: Mapping[str, str] = {
        "check": "Validate SPEC: schema, semantic checks, data and templates.",
        "build": "Compile SPEC into requests, batches, answer grammars and a manifest in DIR.",
        "show": "Show one rendered request of SPEC, or its batches, readably.",
        "schema": "Print the JSON Schema of task specs (for editors and yaml-language-server).",
        "parse": "Parse model outputs item by item with a build's answer grammar.",
        "run": "Send a build's requests to a model (embedded or any OpenAI-compatible API).",
        "collect": "Read Batch API results into per-item results and a repair build.",
        "diff": "Compare two builds, or a spec with itself at a git revision.",
        "init": "Write a commented starter spec, its data and its schema.",
        "plan": "Count every strategy's requests, tokens and cost, without a model.",
        "eval": "Run every strategy and score it against the gold answers.",
        "model": "Fetch the embedded model of `promptc run --local`, or say where it is.",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(self.lazy)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy:
            return None
        module = importlib.import_module(f"promptc.cli.{cmd_name}")
        command: click.Command = getattr(module, f"{cmd_name}_command")
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # The reader went away (`promptc show … | head`): what is left goes nowhere, and
            # the command succeeded as far as anyone can read (click would exit 1 here).
            # stdout points at /dev/null from now on, so that the interpreter's last flush
            # does not fail again (the standard library's advice for SIGPIPE).
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_OK

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # click's own asks each command for its help, which would import them all.
        with formatter.section("Commands"):
            formatter.write_dl([(name, self.lazy[name]) for name in self.list_commands(ctx)])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    VERSION, "--version", "-V", prog_name="promptc", message="%(prog)s %(version)s"
)
def cli() -> None:
    """promptc: compile YAML prompt specs into single, few-shot, batch and Auto-Demo requests,
    with answer grammars that parse model output item by item."""


# ---------------------------------------------------------------- entry point


def os_error(e: OSError) -> str:
    """An error of the system in words, with the file it concerns when it names one."""
    name = e.filename if e.filename is not None else e.filename2
    why = e.strerror or str(e)
    return f"{name}: {why}" if name is not None else why


def _report(error: PromptcError, err: IO[str]) -> int:
    errors = write_errors(error, err)
    total = len(errors) + getattr(error, "omitted", 0)
    if total > 1:
        err.write(f"promptc: {plural(total, 'error')}\n")
    return EXIT_USAGE if all(e.stage == "usage" for e in errors) else EXIT_INVALID


def run(argv: Sequence[str] | None = None) -> int:
    """Runs the command line and returns its exit status (for tests and :func:`main`)."""
    err = sys.stderr
    try:
        rv: Any = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="promptc",
            standalone_mode=False,
        )
        return rv if isinstance(rv, int) else EXIT_OK
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (EXIT_OK if e.code is None else EXIT_INVALID)
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show(file=err)
        return EXIT_USAGE if isinstance(e, click.UsageError) else EXIT_INVALID
    except click.Abort as e:
        if isinstance(e.__cause__, KeyboardInterrupt):  # click's word for Ctrl-C
            err.write("promptc: interrupted\n")
            return EXIT_INTERRUPTED
        err.write("promptc: aborted\n")
        return EXIT_INVALID
    except PromptcError as e:
        return _report(e, err)
    except KeyboardInterrupt:
        err.write("promptc: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK
    except OSError as e:
        # What a disk or the system refuses (full, read-only, a name too long, a file where a
        # folder is expected) is the user's to fix: said with the file, never exit 3.
        err.write(f"error: {os_error(e)}\n")
        return EXIT_INVALID
    except MemoryError:
        # What the input asks for outgrows the memory the process may have (a limit set on
        # it, or the machine's): the user's to change, never exit 3.
        err.write(
            "error: out of memory: the input asks for more than this process may hold "
            "(make the spec, data or build smaller, or raise the memory limit)\n"
        )
        return EXIT_INVALID
    except Exception as e:  # noqa: BLE001 - anything else is a promptc bug: said plainly, no traceback
        err.write(f"promptc: internal error: {type(e).__name__}: {e}\n")
        return EXIT_INTERNAL


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``promptc`` console script."""
    # A terminal or pipe whose encoding cannot spell promptc's punctuation (→, …, ×) or a
    # model's text (PYTHONIOENCODING=ascii, a cp1252 console) gets those characters escaped,
    # never an encoding error after the work is done.
    # A stream closed when promptc started (`promptc parse … >&-`) is None in Python: what
    # would go there goes nowhere, as it would to a reader that went away.
    if sys.stdout is None:
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - the process's own
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - the process's own
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    sys.stderr = Unread(sys.stderr)
    sys.exit(run(argv))


class Unread:
    """stderr, whose reader may go away (``promptc run … 2>&1 | head``): what is written after
    that goes nowhere, and the command goes on. Progress and notes are for a reader; the run's
    answers and its exit status are not theirs to stop (stdout's reader going away ends a
    command that writes there, exit 0: :meth:`LazyGroup.invoke`)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                return self.stream.write(text)
            except BrokenPipeError:
                self.gone = True
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self.gone = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)
