"""``promptc run``: send a build's requests to an OpenAI-compatible API.

::

    promptc run BUILD_DIR --base-url URL [--api-key-env NAME] [--concurrency N]
                [--grammar auto|gbnf|json-schema|none] [--limit N] [--parse] [--model NAME]
                [--timeout S] [--max-retries N] [--cache PATH | --no-cache] [-o OUTPUTS]

Writes ``BUILD_DIR/outputs.jsonl`` (one answer a line, appended as answers arrive) and, with
``--parse``, ``BUILD_DIR/results.jsonl`` (one parse result per item). Progress goes to stderr.
A run that is interrupted or fails part-way keeps every answer received; run it again to
resume. See docs/run.md.

Exit status: 0 every request answered; 1 some requests failed (each is reported on stderr
with what failed and what to check; the answers received are kept), or with ``--parse`` the
spec has errors; 2 usage error (not a build, a bad option, openai not installed);
130 interrupted.
"""

from __future__ import annotations

import sys

import click

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _say(line: str) -> None:
    click.echo(line, err=True)


@click.command("run")
@click.argument("build_dir", metavar="BUILD_DIR", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--base-url",
    required=True,
    metavar="URL",
    help="The OpenAI-compatible API, e.g. https://api.openai.com/v1 or http://127.0.0.1:8080/v1.",
)
@click.option(
    "--api-key-env",
    default="OPENAI_API_KEY",
    show_default=True,
    metavar="NAME",
    help="Environment variable holding the API key (read only; never written).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    metavar="N",
    help="Requests in flight at once.",
)
@click.option(
    "--grammar",
    type=click.Choice(("auto", "gbnf", "json-schema", "none")),
    default="auto",
    show_default=True,
    help="Constrain decoding with the build's grammar: GBNF (llama.cpp servers), "
    "JSON Schema (structured outputs), none, or auto (GBNF when the server is "
    "llama.cpp, else none).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Only the first N requests of the build.",
)
@click.option(
    "--parse", "parse", is_flag=True, help="Parse the answers item by item and write results.jsonl."
)
@click.option(
    "--spec",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="The spec of the build: to parse with, and to pin each Auto-Demo question in GBNF "
    "mode (default: the one named by the build's manifest).",
)
@click.option(
    "--model", default=None, metavar="NAME", help="Send this model name instead of the build's."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=600.0,
    show_default=True,
    metavar="S",
    help="Seconds to wait for one answer.",
)
@click.option(
    "--max-retries",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    metavar="N",
    help="Retries of a request after a connection error, timeout, "
    "rate limit or server error, with exponential backoff.",
)
@click.option(
    "--cache",
    "cache_path",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="PATH",
    help="SQLite response cache (default: "
    "$PROMPTC_CACHE_DIR or ~/.cache/promptc/responses.sqlite).",
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
    build_dir: str,
    base_url: str,
    api_key_env: str,
    concurrency: int,
    grammar: str,
    limit: int | None,
    parse: bool,
    spec: str | None,
    model: str | None,
    timeout: float,
    max_retries: int,
    cache_path: str | None,
    no_cache: bool,
    outputs_path: str | None,
) -> None:
    """Send the requests of BUILD_DIR to an OpenAI-compatible API and write outputs.jsonl.

    Answers are appended as they arrive, so an interrupted run loses nothing and the next
    run resumes; responses are cached by request. Exit status 0 when every request is
    answered, 1 when some failed, 2 for usage errors.
    """
    import signal

    from promptc.errors import BackendError, PromptcError, UsageError, flatten
    from promptc.run.orchestrate import run_build

    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        # Inherited, as a script's `cmd &` sets it so that Ctrl-C stops only the foreground
        # job: run keeps it (as Python does), and says so, rather than being stopped by a
        # Ctrl-C that was meant for something else.
        _say(
            "note: started with SIGINT ignored (a background job of a script?): Ctrl-C will "
            "not stop this run; stop it with kill (SIGTERM) — the answers received stay in "
            "outputs.jsonl"
        )
    try:
        result = run_build(
            build_dir,
            base_url=base_url,
            api_key_env=api_key_env,
            concurrency=concurrency,
            grammar=grammar,
            cache_path=cache_path,
            use_cache=not no_cache,
            timeout=timeout,
            max_retries=max_retries,
            limit=limit,
            model=model,
            parse=parse,
            spec=spec,
            outputs_path=outputs_path,
            progress=_say,
        )
    except KeyboardInterrupt:
        _say(
            "interrupted: every answer received so far is in outputs.jsonl; "
            "run the same command again to resume"
        )
        sys.exit(EXIT_INTERRUPTED)
    except PromptcError as e:
        for x in flatten([e]):
            _say(f"error: {x.format()}")
        # Bad arguments, not a build, openai missing: usage (2). The spec's own errors
        # (--parse compiles it): 1, as promptc check and build report them.
        sys.exit(EXIT_USAGE if isinstance(e, (UsageError, BackendError)) else EXIT_FAILED)
    for failure in result.failed:
        _say(f"error: {failure.format()}")
    _say(result.summary())
    if result.results_path is not None:
        _say(f"results: {result.results_path}")
    if result.failed:
        _say(
            f"{len(result.failed)} request(s) failed; the {result.answered} answer(s) received "
            f"are in {result.outputs_path}: fix the cause and run again to resume"
        )
        sys.exit(EXIT_FAILED)
    sys.exit(EXIT_OK)


if __name__ == "__main__":  # python -m promptc.cli.run BUILD_DIR --base-url …
    run_command()
