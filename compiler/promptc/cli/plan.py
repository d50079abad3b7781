"""``promptc plan``: requests, tokens and cost of every strategy, before anything is sent.

::

    promptc plan SPEC [--strategies single,few-shot,batch,auto-demo] [--batch-sizes 4,8,16]
                 [--selection METHOD] [--data PATH] [--tokenizer o200k_base|cl100k_base|M.gguf]
                 [--price-in USD --price-out USD] [--price-cached USD] [--max-cost USD]
                 [--max-input-tokens N] [--probe (--local [--model-path GGUF] | --base-url URL)]
                 [--format table|json]

Exit status: 0 planned; 1 the spec has errors, or a variant is over ``--max-cost`` or
``--max-input-tokens`` (for CI); 2 usage error.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal

import click

from promptc.api import plan_spec
from promptc.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    FiniteRange,
    data_option,
    format_option,
    price_options,
    spec_argument,
    write_table,
)
from promptc.errors import Location, UsageError
from promptc.plan.estimate import Plan
from promptc.spec.load import COMMAND_LINE


def _tokens(n: float) -> str:
    return f"{n:,.0f}" if n >= 100 else f"{n:,.1f}"


def plan_rows(plan: Plan) -> list[list[str]]:
    """The table's rows, header first (shared by the plain and the rich table)."""
    mark = "" if plan.exact else "~"
    rows = [
        [
            "variant",
            "requests",
            "input tok/q",
            "input total",
            "output tok/q",
            "floor tok/q",
            "× floor",
            "cut by max_tokens",
            "cost USD",
        ]
    ]
    if plan.rates is not None:
        rows[0] += ["est. s", "est. q/s"]
    for v in plan.variants:
        out = "~" + _tokens(v.output_per_question)
        per_q = v.input_per_question + v.output_per_question
        rows.append(
            [
                v.variant.name,
                f"{v.requests:,}",
                mark + _tokens(v.input_per_question),
                mark + f"{v.input_tokens:,}",
                out,
                _tokens(v.floor_per_question),
                f"{per_q / v.floor_per_question:.2f}" if v.floor_per_question else "-",
                f"{len(v.capped):,}/{v.requests:,}" if v.capped else "-",
                "-" if v.cost is None else f"{v.cost:.4f}",
            ]
        )
        seconds = plan.seconds(v)
        if seconds is not None:
            rows[-1] += [f"{seconds:,.1f}", f"{v.items / seconds:.2f}" if seconds else "-"]
    return rows


def plan_notes(plan: Plan) -> list[str]:
    """The lines under the table: tokenizer, marks, price."""
    notes = [
        f"{plan.spec}: {plan.items:,} items; tokens counted with {plan.tokenizer}"
        + ("" if plan.exact else " (not the model's own tokenizer: ~ marks estimates)")
    ]
    notes.append(
        "output tok/q: ~ an estimate from the choices, the demos' and gold answers (never a "
        "bound, never model.max_tokens); floor: each question's own tokens plus its "
        "answer's; cut by max_tokens: requests whose estimated output is over it"
    )
    if plan.price is None:
        notes.append("cost: no price (set model.price in the spec, or --price-in/--price-out)")
    else:
        cached = (
            ""
            if plan.price.cached is None
            else f", {plan.price.cached} cached in (the prefix every request repeats)"
        )
        notes.append(
            f"cost: USD {plan.price.input} in / {plan.price.output} out{cached} per million "
            f"tokens (from {plan.price.source})"
        )
    if plan.rates is not None:
        notes.append(
            f"est. s: the engine reads {plan.rates.read:,.0f} and writes {plan.rates.write:,.1f} "
            f"tokens a second (probed, from {plan.rates.source}); requests one at a time, the "
            "prefix every request repeats read once"
        )
    return notes


def over_budget(plan: Plan, max_cost: float | None, max_input: int | None) -> list[str]:
    """One line per variant over a budget."""
    lines = []
    for v in plan.variants:
        if max_cost is not None and v.cost is not None and v.cost > Decimal(str(max_cost)):
            lines.append(
                # Exact: rounded, a cost just over the limit read as equal to it.
                f"{v.variant.name}: cost USD {v.cost.normalize():f} is over --max-cost {max_cost:g}"
            )
        if max_input is not None and v.input_tokens > max_input:
            lines.append(
                f"{v.variant.name}: {v.input_tokens:,} input tokens are over "
                f"--max-input-tokens {max_input:,}"
            )
    return lines


@click.command("plan")
@spec_argument
@click.option(
    "--strategies",
    default=None,
    metavar="LIST",
    help="Strategies to plan, comma-separated (default: single,few-shot,batch,auto-demo).",
)
@click.option(
    "--batch-sizes",
    default=None,
    metavar="LIST",
    help="Batch sizes for batch and auto-demo, comma-separated (default: 4,8,16).",
)
@click.option(
    "--selection",
    default=None,
    metavar="METHOD",
    help="Selection method for the batched variants (default: the spec's).",
)
@data_option
@click.option(
    "--tokenizer",
    default=None,
    metavar="NAME|GGUF",
    help="o200k_base, cl100k_base or a .gguf model file (default: the model's own when "
    "known, else o200k_base as an estimate).",
)
@price_options
@click.option(
    "--max-cost",
    type=FiniteRange(min=0),
    default=None,
    metavar="USD",
    help="Exit 1 if any variant costs more.",
)
@click.option(
    "--max-input-tokens",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Exit 1 if any variant sends more input tokens.",
)
@click.option(
    "--probe",
    is_flag=True,
    help="Measure the engine's prompt and generation speed with two short requests and "
    "estimate each variant's wall time (needs --local or --base-url).",
)
@click.option(
    "--local",
    is_flag=True,
    help="Count with the embedded llama.cpp model's tokenizer; with --probe, probe it.",
)
@click.option(
    "--model-path",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    metavar="GGUF",
    help="With --local: the GGUF model (default: the bundled SmolLM2); also the tokenizer.",
)
@click.option("--base-url", default=None, metavar="URL", help="With --probe: the server to probe.")
@click.option(
    "--grammar",
    type=click.Choice(("auto", "gbnf", "json-schema", "none")),
    default="auto",
    show_default=True,
    help="How the runs will constrain the answers (run --grammar): with json-schema the "
    "output tokens and per-item budget are those of the grammar's JSON form.",
)
@format_option("table", "json")
def plan_command(
    spec: str,
    strategies: str | None,
    batch_sizes: str | None,
    selection: str | None,
    data: str | None,
    tokenizer: str | None,
    price_in: str | None,
    price_out: str | None,
    price_cached: str | None,
    max_cost: float | None,
    max_input_tokens: int | None,
    probe: bool,
    local: bool,
    model_path: str | None,
    base_url: str | None,
    grammar: str,
    fmt: str,
) -> None:
    """Count the requests, tokens and cost of every strategy for SPEC, without a model.

    Input tokens are counted on the rendered messages with a real tokenizer (chat framing
    included); output tokens are an estimate from the answer format and the demos' answers,
    never a bound.
    """
    plan = plan_spec(
        spec,
        strategies=strategies,
        batch_sizes=batch_sizes,
        selection=selection,
        data=data,
        tokenizer=tokenizer,
        price_in=price_in,
        price_out=price_out,
        price_cached=price_cached,
        local=local,
        model_path=model_path,
        probe=probe,
        base_url=base_url,
        grammar=grammar,
    )
    if max_cost is not None and plan.price is None:
        # A gate that cannot be checked is a usage error (exit 2), not a budget crossed.
        raise UsageError(
            "nothing prices the tokens: give --price-in and --price-out (USD per million "
            "tokens), or model.price in the spec",
            location=Location(COMMAND_LINE),
            path=("--max-cost",),
            code="price-incomplete",
        )
    if fmt == "json":
        sys.stdout.write(json.dumps(plan.to_dict(), indent=2, sort_keys=True) + "\n")
    else:
        write_table(
            plan_rows(plan),
            sys.stdout,
            f"promptc plan {plan.spec}",
            numbers=True,
            notes=plan_notes(plan),
        )
    for v in plan.variants:
        warning = v.cap_warning()
        if warning is not None:
            sys.stderr.write(warning + "\n")
    for line in plan.left_out:
        sys.stderr.write(f"note: {line}\n")
    over = over_budget(plan, max_cost, max_input_tokens)
    for line in over:
        sys.stderr.write(f"promptc plan: {line}\n")
    sys.exit(EXIT_INVALID if over else EXIT_OK)
