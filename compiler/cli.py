"""The ``promptc`` command.

::

    promptc check SPEC [--format text|json] [--max-errors N]
    promptc build SPEC -o DIR [--strategy K] [--batch-size N] [--target chat|openai-batch]
    promptc build SPEC --emit ir|batches|requests        (print a stage instead of writing)
    promptc show SPEC --request K | --batches
    promptc parse BUILD_DIR_OR_SPEC OUTPUTS …            (see promptc.cli_parse)
    promptc run BUILD_DIR --base-url URL …               (see promptc.cli_run)
    promptc schema
    promptc --version

Exit status: 0 success, 1 the spec (or a template, or the data) has errors, 2 usage error,
3 internal error. Every promptc error is printed as ``file:line:col: path: message`` on
stderr, never as a traceback.

Start-up matters (``promptc --help`` runs in a few tens of milliseconds): this module imports
only click; every stage is imported inside the command that needs it, and ``parse`` and
``run`` are lazily loaded subcommands.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, NoReturn

import click
from promptc import __version__

if TYPE_CHECKING:
    from promptc import ir
    from promptc.errors import PromptcError

STRATEGIES = ("single", "few-shot", "batch", "auto-demo")
TARGETS = ("chat", "openai-batch")
EMITS = ("ir", "batches", "requests")

EXIT_OK, EXIT_INVALID, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


class LazyGroup(click.Group):
    """A click group whose listed ``lazy`` subcommands are imported only when run.

    ``promptc --help`` shows their one-line help from :attr:`lazy` without importing them.
    """

    #: name → (``module:attribute`` of the click command, one-line help)
    lazy: Mapping[str, tuple[str, str]] = {
        "parse": (
            "promptc.cli_parse:parse_command",
            "Parse model outputs item by item with a build's answer grammar.",
        ),
        "run": (
            "promptc.cli_run:run_command",
            "Send a build's requests to an OpenAI-compatible API.",
        ),
    }

    def _available(self) -> list[str]:
        """The lazy commands whose module is part of this installation (found, not imported)."""
        from importlib.util import find_spec

        return [n for n, (target, _) in self.lazy.items() if find_spec(target.split(":")[0])]

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._available()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            if cmd_name not in self._available():
                return None
            target, _ = self.lazy[cmd_name]
            module, attr = target.split(":")
            command = getattr(importlib.import_module(module), attr)
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy and name not in self.commands:
                rows.append((name, self.lazy[name][1]))
                continue
            cmd = super().get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(formatter.width - 6 - len(name))))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(
    __version__, "--version", "-V", prog_name="promptc", message="%(prog)s %(version)s"
)
def cli() -> None:
    """promptc: compile YAML prompt specs into single, few-shot, batch and Auto-Demo requests,
    with answer grammars that parse model output item by item."""


# ---------------------------------------------------------------- helpers


def _err() -> IO[str]:
    return sys.stderr


def _overrides(strategy: str | None, batch_size: int | None) -> dict[tuple[str, ...], object]:
    out: dict[tuple[str, ...], object] = {}
    if strategy is not None:
        out[("strategy", "kind")] = strategy
    if batch_size is not None:
        out[("strategy", "batch_size")] = batch_size
    return out


def _compile(
    spec: str,
    strategy: str | None = None,
    batch_size: int | None = None,
    max_errors: int | None = 50,
) -> ir.Task:
    import gc

    from promptc.lower import compile_spec
    from promptc.render import gc_paused

    # Reading 10,000 items allocates many objects and no garbage cycles worth collecting;
    # and the task lives until the command ends: keep the collector from rescanning it.
    with gc_paused():
        task = compile_spec(
            spec, overrides=_overrides(strategy, batch_size) or None, max_errors=max_errors
        )
    gc.freeze()
    return task


def _compile_checked(spec: str, strategy: str | None, batch_size: int | None) -> ir.Task:
    """The task, after the template checks too: every error found is raised together."""
    from promptc.render import raise_template_errors

    task = _compile(spec, strategy, batch_size)
    raise_template_errors(task)
    return task


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


strategy_option = click.option(
    "--strategy",
    type=click.Choice(STRATEGIES),
    default=None,
    help="Override strategy.kind of the spec.",
)
batch_size_option = click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Override strategy.batch_size of the spec.",
)
spec_argument = click.argument("spec", type=click.Path(exists=True, dir_okay=False, readable=True))


# ---------------------------------------------------------------- check


def run_check(
    spec: str,
    fmt: str,
    max_errors: int | None,
    out: IO[str],
    err: IO[str],
    strategy: str | None = None,
    batch_size: int | None = None,
) -> int:
    """``promptc check``: every diagnostic of a spec, then a summary; returns the exit status."""
    import json

    from promptc.errors import PromptcErrors, flatten
    from promptc.render import check_templates

    errors: list[PromptcError] = []
    omitted = 0
    task = None
    try:
        task = _compile(spec, strategy, batch_size, max_errors)
    except PromptcErrors as e:
        errors, omitted = list(e.errors), e.omitted
    if task is not None:
        errors = flatten(check_templates(task))
        if max_errors is not None and len(errors) > max_errors:
            omitted, errors = len(errors) - max_errors, errors[:max_errors]
    if errors:
        errors = list(PromptcErrors(errors).errors)  # sorted by location
    usage = bool(errors) and all(e.stage == "usage" for e in errors)
    status = EXIT_OK if not errors else (EXIT_USAGE if usage else EXIT_INVALID)
    total = len(errors) + omitted
    if status == EXIT_OK and task is not None:
        from promptc.select import batch_size as size_of

        summary = (
            f"{spec}: valid: {_plural(len(task.items), 'item')}, strategy "
            f"{task.strategy.kind}, {size_of(task)} per request"
        )
    else:
        summary = f"{spec}: {_plural(total, 'error')}"
    if fmt == "json":
        doc = {
            "spec": spec,
            "valid": status == EXIT_OK,
            "errors": [e.to_dict() for e in errors],
            "omitted": omitted,
            "summary": summary,
        }
        out.write(json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n")
        return status
    for error in errors:
        err.write(error.format() + "\n")
    if omitted:
        err.write(f"… and {omitted} more\n")
    (out if status == EXIT_OK else err).write(summary + "\n")
    return status


@cli.command("check")
@spec_argument
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("text", "json")),
    default="text",
    show_default=True,
    help="Diagnostics as lines for people or JSON for tools.",
)
@click.option(
    "--max-errors",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    metavar="N",
    help="Report at most N errors (then '… and M more').",
)
@strategy_option
@batch_size_option
def check_command(
    spec: str, fmt: str, max_errors: int, strategy: str | None, batch_size: int | None
) -> None:
    """Validate SPEC: schema, semantic checks, data and templates.

    Prints every problem as file:line:col: key.path: message (on stderr), then a summary.
    Exit status 0 if the spec is valid, 1 if not, 2 for usage errors.
    """
    code = run_check(spec, fmt, max_errors, sys.stdout, _err(), strategy, batch_size)
    sys.exit(code)


# ---------------------------------------------------------------- build


@cli.command("build")
@spec_argument
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, writable=True),
    default=None,
    metavar="DIR",
    help="The build folder to write.",
)
@strategy_option
@batch_size_option
@click.option(
    "--target",
    type=click.Choice(TARGETS),
    default="chat",
    show_default=True,
    help="requests.jsonl form: promptc's chat records or the OpenAI Batch API's.",
)
@click.option(
    "--emit",
    type=click.Choice(EMITS),
    default=None,
    help="Print this stage to stdout (JSON / JSON lines) instead of writing files.",
)
def build_command(
    spec: str,
    out_dir: str | None,
    strategy: str | None,
    batch_size: int | None,
    target: str,
    emit: str | None,
) -> None:
    """Compile SPEC into requests, batches, answer grammars and a manifest in DIR.

    The build is deterministic: rebuilding the same spec and data gives byte-identical files.
    """
    if emit is None and out_dir is None:
        raise click.UsageError("give the build folder with -o DIR, or print a stage with --emit")
    task = _compile_checked(spec, strategy, batch_size)
    out = sys.stdout
    if emit == "ir":
        from promptc.build import ir_json

        out.write(ir_json(task))
        return
    from promptc import build as build_mod

    if emit is not None:
        result = build_mod.plan(task, target=target)  # type: ignore[arg-type]
        out.write(result.files["requests.jsonl" if emit == "requests" else "batches.jsonl"])
        return
    assert out_dir is not None
    result = build_mod.build(task, out_dir, target=target)  # type: ignore[arg-type]
    click.echo(result.summary)


# ---------------------------------------------------------------- show


def _pick(requests: Sequence[ir.Request], which: str) -> ir.Request:
    from promptc.errors import UsageError

    for r in requests:
        if r.id == which:
            return r
    if which.isdigit() and 1 <= int(which) <= len(requests):
        return requests[int(which) - 1]
    if not requests:
        raise UsageError(
            f"no request {which!r}: this build has no requests (no data items)",
            code="unknown-request",
        )
    ids = f"{requests[0].id} … {requests[-1].id}"
    raise UsageError(
        f"no request {which!r}; give a request id or a number from 1 to {len(requests)} "
        f"(ids: {ids})",
        code="unknown-request",
    )


def _use_rich(stream: IO[str]) -> bool:
    if not stream.isatty():
        return False
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def show_request(request: ir.Request, grammar: str | None, out: IO[str]) -> None:
    """One request, readably: a header, then each message under its role."""
    params = ", ".join(f"{k}={v}" for k, v in request.params.items())
    head = (
        f"request {request.id} · {request.kind} · {_plural(len(request.batch.item_ids), 'item')}: "
        + ", ".join(request.batch.item_ids)
    )
    meta = f"params: {params}" + (f" · grammar: {grammar}" if grammar else "")
    if _use_rich(out):
        from rich.console import Console
        from rich.panel import Panel
        from rich.text import Text

        console = Console(file=out, highlight=False)
        console.print(Text(head, style="bold"))
        console.print(Text(meta, style="dim"))
        for m in request.messages:
            console.print(Panel(Text(m.content), title=m.role, title_align="left"))
        return
    out.write(head + "\n" + meta + "\n")
    for m in request.messages:
        out.write(f"\n── {m.role} " + "─" * max(3, 60 - len(m.role)) + "\n")
        out.write(m.content + "\n")


def show_batches(
    batches: Sequence[ir.Batch],
    request_ids: Sequence[str],
    info: Mapping[str, object],
    out: IO[str],
) -> None:
    """Every batch with its items (target marked, similarities when a method computed them)."""

    def items(b: ir.Batch) -> str:
        parts = []
        for k, item_id in enumerate(b.item_ids):
            s = item_id + ("*" if b.target == k else "")
            if b.similarities is not None:
                s += f" ({b.similarities[k]:.3f})"
            parts.append(s)
        return ", ".join(parts)

    # Scalars only: nested records (an embedding model's details) are the manifest's to show.
    header = " · ".join(
        f"{k}: {v}" for k, v in info.items() if isinstance(v, (str, int, float, bool)) or v is None
    )
    note = (
        "* marks the target item, whose answer the batch is for"
        if any(b.target is not None for b in batches)
        else ""
    )
    if _use_rich(out):
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        console = Console(file=out, highlight=False)
        console.print(Text(header, style="dim"))
        table = Table(caption=note or None)
        table.add_column("batch", justify="right")
        table.add_column("request")
        table.add_column("items")
        for b, rid in zip(batches, request_ids):
            table.add_row(str(b.index + 1), rid, Text(items(b)))
        console.print(table)
        return
    out.write(header + "\n")
    if note:
        out.write(note + "\n")
    width = len(str(len(batches)))
    for b, rid in zip(batches, request_ids):
        out.write(f"{b.index + 1:>{width}}  {rid}  {items(b)}\n")


@cli.command("show")
@spec_argument
@click.option(
    "--request",
    "request",
    metavar="K",
    default=None,
    help="Show request K (its id, e.g. r0003, or its number from 1).",
)
@click.option("--batches", is_flag=True, help="Show every batch and its items.")
@strategy_option
@batch_size_option
def show_command(
    spec: str, request: str | None, batches: bool, strategy: str | None, batch_size: int | None
) -> None:
    """Show one rendered request of SPEC, or its batches, readably."""
    if (request is None) == (not batches):
        raise click.UsageError("give exactly one of --request K and --batches")
    task = _compile_checked(spec, strategy, batch_size)
    out = sys.stdout
    from promptc.build import plan

    result = plan(task)
    ids = [r.id for r in result.requests]
    if batches:
        show_batches([r.batch for r in result.requests], ids, result.selection.info, out)
        return
    assert request is not None
    chosen = _pick(result.requests, request)
    grammar = next(
        (
            r["grammar"]
            for r in result.manifest["requests"]  # type: ignore[attr-defined]
            if r["id"] == chosen.id
        ),
        None,
    )
    show_request(chosen, grammar, out)


# ---------------------------------------------------------------- schema


@cli.command("schema")
def schema_command() -> None:
    """Print the JSON Schema of task specs (for editors and yaml-language-server)."""
    from promptc.resources import read_schema

    text = read_schema()
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


# ---------------------------------------------------------------- entry point


def _report(error: PromptcError, err: IO[str]) -> int:
    from promptc.errors import flatten

    errors = flatten([error])
    for e in errors:
        err.write(e.format() + "\n")
    omitted = getattr(error, "omitted", 0)
    if omitted:
        err.write(f"… and {omitted} more\n")
    if len(errors) + omitted > 1:
        err.write(f"promptc: {_plural(len(errors) + omitted, 'error')}\n")
    return EXIT_USAGE if all(e.stage == "usage" for e in errors) else EXIT_INVALID


def run(argv: Sequence[str] | None = None) -> int:
    """Runs the command line and returns its exit status (for tests and :func:`main`)."""
    from promptc.errors import PromptcError

    err = _err()
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
    except click.Abort:
        err.write("promptc: aborted\n")
        return EXIT_INVALID
    except PromptcError as e:
        return _report(e, err)
    except KeyboardInterrupt:
        err.write("promptc: interrupted\n")
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:  # noqa: BLE001 - anything else is a promptc bug: said plainly, no traceback
        err.write(f"promptc: internal error: {type(e).__name__}: {e}\n")
        return EXIT_INTERNAL


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """The ``promptc`` console script."""
    sys.exit(run(argv))
