"""``promptc parse``: model outputs → one result per item, as JSON lines or a table.

::

    promptc parse BUILD_DIR_OR_SPEC OUTPUTS [--request ID] [--mode recover|strict]
                  [--format jsonl|table] [-o FILE]

``OUTPUTS`` is either one request's output as plain text (``--request`` names the request,
unless the build has only one), or JSON Lines, one request a line, in any of these forms::

    {"id": "r0001", "output": "A[1]: yes\\nA[2]: no"}
    {"request_id": "r0001", "text": "..."}
    {"custom_id": "r0001", "response": {"body": {"choices": [{"message": {"content": "..."}}]}}}

(the last is the OpenAI Batch API output form; ``custom_id`` wins over ``id`` there). Repair
answers of ``promptc run`` or ``collect`` (``r0001.repair1``, with their ``repair`` record) are
merged into their items' results as those commands merge them
(:func:`promptc.run.repair.merge_answers`): the same outputs give the same rows. A file is
read as JSON Lines when its name ends in ``.jsonl`` or ``.ndjson``, or when its first non-blank
line is a JSON object with one of those id keys.

Exit status: 0 when every result is ``ok``; 1 when any result is not ``ok`` (``extra`` included)
or some lines of OUTPUTS could not be used (they are reported on stderr, the others are parsed);
2 for usage errors (bad arguments, unreadable build or spec, unknown ``--request``).

The command is built on the public API: :func:`promptc.open_build` reads the build (or builds
the spec in memory) and :func:`promptc.parse_output` parses each output.
"""

from __future__ import annotations

import io
import itertools
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import click

from promptc import Build, open_build, parse_output
from promptc.cli.common import format_option, write_errors
from promptc.errors import Location, OutputParseError, PromptcError, UsageError, did_you_mean
from promptc.ir import round_of
from promptc.parse.output import PER_ITEM, target_results
from promptc.parse.output_records import OutputRecord, read_outputs
from promptc.parse.results import MODES, STATUSES, ItemResult, summarize
from promptc.parse.shape import RequestShape
from promptc.run.outputs import overwrite_error
from promptc.run.repair import (
    Merged,
    merge_answers,
    missing_results,
    origin_of,
    refused_message,
    repair_shape,
    stood_in,
    valid_record,
)
from promptc.text import printable, write_output

# --------------------------------------------------------------------------------------------
# Writing results
# --------------------------------------------------------------------------------------------


def _values_text(r: ItemResult) -> str:
    parts = []
    for k, v in r.values.items():
        shown = ("yes" if v else "no") if isinstance(v, bool) else str(v)
        if len(shown) > 40:
            shown = shown[:39] + "…"
        parts.append(f"{k}={shown}")
    return ", ".join(parts)


#: The most characters of an item's input the table shows.
INPUT_CHARS = 60


def input_text(inputs: Mapping[str, str]) -> str:
    """An item's inputs on one line, as the table shows them beside the answers: the values
    joined by `` · ``, white space runs made one space, cut at :data:`INPUT_CHARS`."""
    text = " · ".join(" ".join(v.split()) for v in inputs.values())
    return text if len(text) <= INPUT_CHARS else text[: INPUT_CHARS - 1] + "…"


def write_table(
    results: Sequence[ItemResult], out: IO[str], inputs: Mapping[str, str] | None = None
) -> None:
    """A table for people (rich; plain text when ``out`` is not a terminal), each item's
    input text (``inputs``: item id → text) beside its answer."""
    # rich's tables take about 60 ms to import: only the table format needs them.
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    is_tty = hasattr(out, "isatty") and out.isatty()
    # Box-drawing characters only on a terminal: piped, the table is plain columns.
    table = Table(show_lines=False, box=box.SIMPLE_HEAD if is_tty else None)
    for col in ("request", "item", "#", "input", "status", "values", "span", "detail"):
        table.add_column(col, overflow="fold")
    styles = {"ok": "green", "missing": "yellow", "extra": "magenta"}
    shown = inputs or {}

    def cell(text: str) -> str:  # the data's and the model's text: no markup, no control
        return escape(printable(text))

    for r in results:
        table.add_row(
            cell(r.request_id),
            cell(r.item_id or "-"),
            str(r.index),
            cell(shown.get(r.item_id or "", "")),
            f"[{styles.get(r.status, 'red')}]{r.status}[/]",
            cell(_values_text(r)),
            str(r.span) if r.span else "",
            cell(r.message),
        )
    console = Console(
        file=out, force_terminal=is_tty, no_color=not is_tty, width=None if is_tty else 160
    )
    console.print(table)


def summary_line(results: Sequence[ItemResult], n_requests: int) -> str:
    counts = summarize(results)
    return f"{len(results)} results from {n_requests} request(s): " + ", ".join(
        f"{counts[s]} {s}" for s in STATUSES
    )


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


#: An answer recorded for another prompt than its request's (``{rid}``, ``{build}``).
STALE_OUTPUT = (
    "this answer of request {rid!r} was produced for another prompt than {build} holds "
    "(the build was changed since); it is not credited to its items"
)


#: Unknown request ids given a did-you-mean hint (the first ones of a file).
HINTED = 20


@dataclass
class _Parsed:
    """What the outputs said, request by request, and what could not be used."""

    seen: dict[str, Location] = field(default_factory=dict)
    parsed: dict[str, list[ItemResult]] = field(default_factory=dict)
    repairs: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    skipped_repairs: int = 0
    errors: list[PromptcError] = field(default_factory=list)
    #: Outputs of request ids the build does not have.
    unknown: int = 0


def run_parse(
    source: str,
    outputs: str,
    request_id: str | None,
    mode: str,
    fmt: str,
    out: IO[str],
    err: IO[str],
    per_item: str = "target",
) -> int:
    """The command's work, returning its exit status (see the module docstring)."""
    errors: list[PromptcError] = []
    try:
        build = open_build(source)
        first, records = _outputs(outputs, errors)
        request_id = _request(build, request_id, first, outputs)
    except PromptcError as e:
        write_errors(e, err, "error: ")
        return 2
    found = _parse_records(build, records, request_id, strict=mode == "strict")
    found.errors[:0] = errors
    known = build.shapes
    # A request asked again whole by a repair (it had no answer line): its items start
    # missing, as collect's do, for the repair answer to answer them.
    whole = {str(rec.get("of")) for rec in found.repairs.values()} - found.seen.keys()
    whole -= stood_in(found.repairs)
    for rid in whole:
        found.parsed[rid] = missing_results(known[rid], f"no output in {outputs}")
    absent = set() if request_id else _absent_rounds(build, found, whole, f"no output in {outputs}")
    parsed = found.parsed
    if per_item == "target":
        shapes = dict(known)
        shapes.update(
            (rid, repair_shape(build.task, rec, rid)) for rid, rec in found.repairs.items()
        )
        parsed = {rid: target_results(rows, shapes) for rid, rows in parsed.items()}
    # One code path with run --parse and collect: repair answers replace an item's failed
    # result (the first ok, else the last attempt's), and each row says how many answers
    # asked for its item.
    # A voting round's request may have been asked of its unsettled items only (a stand-in).
    asked = found.seen.keys() | stood_in(found.repairs) | whole
    listed = asked | absent  # once, not once a request (parsing was quadratic in requests)
    order = [rid for rid in known if rid in listed]
    merged = merge_answers(order, parsed, found.repairs, build.task.outputs)
    results = [x for x, _ in merged.rows]
    if request_id is not None and request_id not in found.seen and first is not None:
        found.errors.append(
            OutputParseError(
                f"no output for request {request_id!r} in {outputs}",
                location=Location(outputs),
                code="no-output-for-request",
            )
        )
    if first is None and not found.errors:
        found.errors.append(
            OutputParseError(
                f"no outputs in {outputs}", location=Location(outputs), code="no-outputs"
            )
        )
    if fmt == "table":
        write_table(results, out, {it.id: input_text(it.inputs) for it in build.task.items})
    else:
        for r, n in merged.rows:
            out.write(merged.line(r, n) + "\n")
    missing = (
        [rid for rid in known if rid not in asked]
        if request_id is None and first is not None and first.request_id is not None
        else []
    )
    # With early stop, a later round's request whose items had all settled is never sent:
    # not an answer missing from the file.
    vote = build.task.strategy.vote
    if vote is not None and vote.early_stop is not None:
        missing = [rid for rid in missing if round_of(rid) == 1]
    unanswered = len(missing)
    _say(found, merged, results, unanswered, f"{build.source} have no output in {outputs}", err)
    if found.errors or any(r.status != "ok" for r in results):
        return 1
    return 0


def _outputs(
    outputs: str, errors: list[PromptcError]
) -> tuple[OutputRecord | None, Iterator[OutputRecord]]:
    """The first output and all of them, one at a time, each let go once parsed: the first
    is read now (a file that cannot be read is a usage error), to know what the file holds."""
    stream = read_outputs(Path(outputs), errors)
    first = next(stream, None)
    return first, stream if first is None else itertools.chain([first], stream)


def _request(
    build: Build, request_id: str | None, first: OutputRecord | None, outputs: str
) -> str | None:
    """The request ``--request`` names: its id, or its number from 1; the build's one request
    for a plain text file when it has only one."""
    known = build.shapes
    if (
        request_id is not None
        and request_id not in known
        and request_id.isascii()
        and request_id.isdigit()
    ):
        # A number, as promptc show --request takes it: the request at that position.
        ids = list(known)
        if 1 <= int(request_id) <= len(ids):
            request_id = ids[int(request_id) - 1]
    if request_id is not None and request_id not in known:
        raise UsageError(
            f"unknown request {request_id!r} in {build.source}",
            hint=did_you_mean(request_id, known),
            code="unknown-request",
        )
    # A plain text file (one output, no request id).
    if request_id is None and first is not None and first.request_id is None:
        if len(known) != 1:
            raise UsageError(
                f"{outputs} holds one output, and {build.source} has {len(known)} "
                "requests: say which with --request ID",
                code="one-output",
            )
        request_id = next(iter(known))
    return request_id


def _absent_rounds(build: Build, found: _Parsed, whole: set[str], why: str) -> set[str]:
    """The voting rounds with no output of items the outputs answer in another round: each is
    ``missing`` in its round, as ``run --parse`` and ``collect`` list it, so that the same
    answers give the same rows (and ``attempts``). With ``early_stop``, a round not sent is
    not a missing one (its items had settled), and none is added."""
    vote = build.task.strategy.vote
    if vote is None or vote.early_stop is not None:
        return set()
    covered = {x.item_id for rows in found.parsed.values() for x in rows}
    absent = set()
    for rid in build.shapes.keys() - found.seen.keys() - stood_in(found.repairs) - whole:
        rows = [x for x in missing_results(build.shapes[rid], why) if x.item_id in covered]
        if rows:
            found.parsed[rid] = rows
            absent.add(rid)
    return absent


def _parse_records(
    build: Build,
    records: Iterable[OutputRecord],
    request_id: str | None,
    *,
    strict: bool,
) -> _Parsed:
    """Each output parsed against its request (a repair answer against what it asked), with
    the public :func:`promptc.parse_output`."""
    known = build.shapes
    found = _Parsed()
    for rec in records:
        rid = request_id if rec.request_id is None else rec.request_id  # plain text: --request
        assert rid is not None
        origin = origin_of(rid)
        if rid not in known and origin in known:
            if request_id is not None and origin != request_id:
                continue
            if (
                rec.repair is None
                or str(rec.repair.get("of")) != origin
                or rid in found.repairs
                or not valid_record(rec.repair, known[origin].item_ids)
            ):
                found.skipped_repairs += 1  # without what it asked, it cannot be placed
                continue
            # A repair answer of promptc run (or collect): merged as they merge it.
            found.repairs[rid] = rec.repair
            shape = repair_shape(build.task, rec.repair, rid)
            found.parsed[rid] = _parsed(build, shape, rec, strict)
            continue
        if request_id is not None and rid != request_id:
            continue
        if rid not in known:
            # A hint for the first few only: each compares the id with every id of the build,
            # and a file of another build holds thousands of unknown ids.
            found.unknown += 1
            found.errors.append(
                OutputParseError(
                    f"unknown request id {rid!r}; expected one of the ids in {build.source}",
                    location=rec.location,
                    hint=did_you_mean(rid, known) if found.unknown <= HINTED else None,
                    code="unknown-request",
                )
            )
        elif rec.prompt_sha256 is not None and rec.prompt_sha256 != build.prompts.get(rid):
            found.errors.append(
                OutputParseError(
                    STALE_OUTPUT.format(rid=rid, build=build.source),
                    location=rec.location,
                    hint="run the build again: promptc run sends only what is not answered",
                    code="stale-output",
                )
            )
        elif rid in found.seen:
            found.errors.append(
                OutputParseError(
                    f"a second output for request {rid!r} (the first is at line "
                    f"{found.seen[rid].line}); only the first is parsed",
                    location=rec.location,
                    code="duplicate-request",
                )
            )
        else:
            found.seen[rid] = rec.location
            found.parsed[rid] = _parsed(build, known[rid], rec, strict)
    return found


def _parsed(build: Build, shape: RequestShape, rec: OutputRecord, strict: bool) -> list[ItemResult]:
    """One output's results; of an answer the model refused, its items missing, saying so."""
    said = refused_message(rec.text, rec.refusal)
    if said is not None:
        return missing_results(shape, said)
    return parse_output(build.task, shape, rec.text, strict=strict, finish_reason=rec.finish_reason)


def _say(
    found: _Parsed,
    merged: Merged,
    results: Sequence[ItemResult],
    unanswered: int,
    no_output: str,
    err: IO[str],
) -> None:
    """The problems, the summary and the notes, on stderr."""
    for problem in sorted(found.errors, key=lambda x: x.location.line if x.location else 0):
        write_errors(problem, err, "error: ")  # the commands' one writer of errors: escaped
    # A voting round's stand-in (r0007.v3.live) answers its request too.
    print(summary_line(results, len(found.seen.keys() | stood_in(found.repairs))), file=err)
    if found.repairs:
        print(
            f"note: {len(found.repairs) - len(merged.unused)} repair answer(s) merged "
            f"({merged.repaired} item(s) repaired)",
            file=err,
        )
    if found.skipped_repairs or merged.unused:
        print(
            f"note: {found.skipped_repairs + len(merged.unused)} repair answer(s) skipped: no "
            "record of what they asked, or their request has no answer here",
            file=err,
        )
    if unanswered > 0:
        print(f"note: {unanswered} request(s) of {no_output}", file=err)


@click.command("parse")
@click.argument("build_or_spec", metavar="BUILD_DIR_OR_SPEC", type=click.Path(exists=True))
@click.argument("outputs", metavar="OUTPUTS", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--request",
    "request_id",
    metavar="ID",
    help="The request OUTPUTS answers (plain text), or the one to keep (JSONL): its id, "
    "or its number from 1 (as promptc show --request takes it).",
)
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="recover",
    show_default=True,
    help="strict: the whole output must match the grammar; recover: keep every well-formed item.",
)
@format_option("jsonl", "table", help="JSON lines for tools, a table for people.")
@click.option(
    "--per-item",
    type=click.Choice(PER_ITEM),
    default="target",
    show_default=True,
    help="target: of a request made for one item (retrieval selection), only that item's "
    "result, so each item has one; all: every item of every request.",
)
@click.option(
    "-o",
    "--output",
    "out_file",
    type=click.Path(dir_okay=False, writable=True),
    help="Write results here instead of stdout.",
)
def parse_command(
    build_or_spec: str,
    outputs: str,
    request_id: str | None,
    mode: str,
    fmt: str,
    per_item: str,
    out_file: str | None,
) -> None:
    """Parse model OUTPUTS item by item with the answer grammar of a build or spec.

    Writes one result per item (request id, item id, index, status, values, span, expected,
    found) and a summary on stderr. Exit status 0 if every item is ok, 1 if not, 2 for usage
    errors.
    """
    build = build_or_spec if os.path.isdir(build_or_spec) else None
    refused = out_file and overwrite_error("-o", out_file, "results", others=[outputs], build=build)
    if refused:
        # Answers or the build: results written over them would lose what was paid for.
        print(f"error: {refused}", file=sys.stderr)
        sys.exit(2)
    buffer = io.StringIO()
    out = sys.stdout if out_file is None else buffer
    code = run_parse(build_or_spec, outputs, request_id, mode, fmt, out, sys.stderr, per_item)
    if out_file is not None and code != 2:
        # Written only once parsed, whole or not at all: a usage error or a full disk leaves
        # an existing FILE as it was.
        try:
            write_output(out_file, buffer.getvalue().split("\n")[:-1])
        except OSError as e:
            print(f"error: cannot write {out_file}: {e.strerror or e}", file=sys.stderr)
            code = 2
    sys.exit(code)
