"""``promptc show``: one rendered request, or the batches, readably."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import IO

import click

from promptc import ir
from promptc.api import Request, iter_requests, load_spec
from promptc.build import grammar_stem
from promptc.build.rounds import with_rounds
from promptc.cli.common import (
    batch_size_option,
    json_format_option,
    plural,
    spec_argument,
    strategy_option,
    use_rich,
    write_json,
    write_json_rows,
)
from promptc.errors import UsageError
from promptc.render.renderer import request_ids
from promptc.select.batches import batch_size as nominal
from promptc.select.batches import has_targets
from promptc.select.methods import select
from promptc.text import printable


def pick_request(requests: Iterable[Request], which: str) -> Request:
    """Request ``which`` (its id, or its number from 1): the requests after it are never made.

    Raises:
        UsageError: ``unknown-request``, with the numbers and ids there are.
    """
    number = int(which) if which.isascii() and which.isdigit() else None
    first = last = None
    count = 0
    for count, r in enumerate(requests, 1):
        if r.id == which or count == number:
            return r
        first, last = first or r.id, r.id
    if first is None:
        raise UsageError(
            f"no request {which!r}: this build has no requests (no data items)",
            code="unknown-request",
        )
    raise UsageError(
        f"no request {which!r}; give a request id or a number from 1 to {count} "
        f"(ids: {first} … {last})",
        code="unknown-request",
    )


def show_request(request: Request, grammar: str | None, out: IO[str]) -> None:
    """One request, readably: a header, then each message under its role."""
    params = ", ".join(f"{k}={v}" for k, v in request.params.items())
    head = (
        f"request {request.id} · {request.kind} · {plural(len(request.item_ids), 'item')}: "
        + ", ".join(request.item_ids)
    )
    meta = f"params: {params}" + (f" · grammar: {grammar}" if grammar else "")
    if use_rich(out):
        # rich is imported for a terminal only: 30 to 60 ms that a pipe or a file does without.
        from rich.console import Console
        from rich.panel import Panel
        from rich.text import Text

        console = Console(file=out, highlight=False)
        # The data's ids and text, escaped: a control sequence among them would act on the
        # terminal.
        console.print(Text(printable(head), style="bold"))
        console.print(Text(printable(meta), style="dim"))
        for m in request.messages:
            panel = Panel(Text(printable(m["content"])), title=m["role"], title_align="left")
            console.print(panel)
        return
    out.write(head + "\n" + meta + "\n")
    for m in request.messages:
        out.write(f"\n── {m['role']} " + "─" * max(3, 60 - len(m["role"])) + "\n")
        out.write(m["content"] + "\n")


def show_batches(
    batches: Sequence[ir.Batch],
    ids: Iterable[str],
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
    note = "* marks the target item, whose answer the batch is for" if has_targets(batches) else ""
    if use_rich(out):
        # rich is imported for a terminal only: 30 to 60 ms that a pipe or a file does without.
        from rich.console import Console
        from rich.table import Table
        from rich.text import Text

        console = Console(file=out, highlight=False)
        console.print(Text(header, style="dim"))
        table = Table(caption=note or None)
        table.add_column("batch", justify="right")
        table.add_column("request")
        table.add_column("items")
        for b, rid in zip(batches, ids):
            table.add_row(str(b.index + 1), rid, Text(printable(items(b))))
        console.print(table)
        return
    out.write(header + "\n")
    if note:
        out.write(note + "\n")
    width = len(str(len(batches)))
    for b, rid in zip(batches, ids):
        out.write(f"{b.index + 1:>{width}}  {rid}  {items(b)}\n")


@click.command("show")
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
@json_format_option
def show_command(
    spec: str,
    request: str | None,
    batches: bool,
    strategy: str | None,
    batch_size: int | None,
    fmt: str,
) -> None:
    """Show one rendered request of SPEC, or its batches, readably."""
    if (request is None) == (not batches):
        raise click.UsageError("give exactly one of --request K and --batches")
    task = load_spec(spec, strategy=strategy, batch_size=batch_size)
    out = sys.stdout
    if batches:
        # The batches and the selection's facts, which no API gives: the selection alone,
        # a batch at a time (no request is rendered).
        selection = with_rounds(task, select(task))
        ids = request_ids(task, selection)
        if fmt == "json":
            rows = map(batch_json, selection.batches, ids)
            write_json_rows({"selection": selection.info}, "batches", rows)
            return
        show_batches(selection.batches, ids, selection.info, out)
        return
    assert request is not None
    chosen = pick_request(iter_requests(task), request)
    grammar = grammar_stem(len(chosen.item_ids), nominal(task))
    if fmt == "json":
        write_json(
            {
                "id": chosen.id,
                "kind": chosen.kind,
                "item_ids": list(chosen.item_ids),
                "params": dict(chosen.params),
                "grammar": grammar,
                "messages": [{"role": m["role"], "content": m["content"]} for m in chosen.messages],
            }
        )
        return
    show_request(chosen, grammar, out)


def batch_json(batch: ir.Batch, request_id: str) -> dict[str, object]:
    """One batch as ``show --batches --format json`` prints it."""
    return {
        "batch": batch.index + 1,
        "request": request_id,
        "item_ids": list(batch.item_ids),
        "target": batch.item_ids[batch.target] if batch.target is not None else None,
        "similarities": list(batch.similarities) if batch.similarities is not None else None,
    }
