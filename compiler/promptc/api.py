"""promptc from Python: the public API, which the ``promptc`` command is built on.

The user's loop, one function a step::

    task = promptc.load_spec("specs/sentiment.yaml", strategy="batch", batch_size=8)
    for request in promptc.iter_requests(task): ...   # id, items, messages, params, grammar
    build = promptc.write_build(task, "out/sentiment")  # promptc.open_build reads one back
    result = promptc.run_build(build, local=True, parse=True)  # or await run_build_async(...)
    items = build.parse("r0001", "A[1]: positive …")   # one ItemResult per item
    report = promptc.evaluate("specs/sentiment.yaml", [build])  # report.json's data
    costs = promptc.plan_spec("specs/sentiment.yaml")  # plan --format json's data

The functions are named so that none shadows a subpackage of ``promptc`` (``promptc.build``,
``promptc.parse``, ``promptc.run``, ``promptc.plan`` are modules).

Every name here is listed in :data:`promptc.__all__` and documented in ``docs/api.md``; what
it returns is the same data the matching command writes (``report.json``, ``plan --format
json``, ``results.jsonl``). Errors a user can cause are :class:`~promptc.errors.PromptcError`;
:func:`load_spec` raises them all at once as one :class:`~promptc.errors.PromptcErrors`, exactly as
``promptc check`` lists them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from promptc import ir
from promptc.build import build as write_build_folder
from promptc.build.produce import Producer
from promptc.build.targets import CHAT
from promptc.errors import PromptcErrors, flatten
from promptc.eval.results import read_variant
from promptc.grammar.answer import build_grammar

# Build, open_build and parse_output are defined in the parse stage, which ``promptc parse``
# imports without this module's weight; they are this module's names too.
from promptc.parse.build_input import Build, open_build, parse_output  # noqa: F401
from promptc.plan.variants import parse_batch_sizes, parse_selection, parse_strategies, variants
from promptc.render.checks import check_templates
from promptc.run.collect import CollectResult
from promptc.run.collect import collect as collect_files
from promptc.run.options import RunOptions
from promptc.run.orchestrate import run_build as run_folder
from promptc.run.progress import Events
from promptc.run.result import RunResult
from promptc.select.methods import missing_requirements
from promptc.spec.lower import compile_spec
from promptc.strategies import SINGLE

#: A compiled, validated task (the IR's root: :class:`promptc.ir.Task`).
Task = ir.Task

PathLike = str | os.PathLike[str]


def overrides(
    strategy: str | None = None, batch_size: int | None = None, data: PathLike | None = None
) -> dict[tuple[str, ...], object]:
    """The spec overrides that ``--strategy``, ``--batch-size`` and ``--data`` ask for."""
    out: dict[tuple[str, ...], object] = {}
    if data is not None:
        out[("data", "path")] = os.fspath(data)
    if strategy is not None:
        out[("strategy", "kind")] = strategy
    if batch_size is not None:
        out[("strategy", "batch_size")] = batch_size
    return out


def load_spec(
    spec: PathLike,
    *,
    strategy: str | None = None,
    batch_size: int | None = None,
    data: PathLike | None = None,
    max_errors: int | None = 50,
) -> Task:
    """Loads and validates a spec into its task, as ``promptc check`` does.

    Args:
        spec: The spec file.
        strategy: Use this strategy instead of the spec's (``single``, ``few-shot``,
            ``batch``, ``auto-demo``).
        batch_size: Use this batch size instead of the spec's.
        data: Use this data file instead of the spec's.
        max_errors: Report at most this many errors (``None``: all).

    Raises:
        PromptcErrors: Every problem ``promptc check`` reports (schema, semantics, data,
            templates, selection requirements), each at its file:line:col.
    """
    task = compile_spec(
        Path(spec), overrides=overrides(strategy, batch_size, data) or None, max_errors=max_errors
    )
    errors = flatten(check_templates(task)) + list(missing_requirements(task))
    if errors:
        omitted = 0
        if max_errors is not None and len(errors) > max_errors:
            omitted, errors = len(errors) - max_errors, errors[:max_errors]
        raise PromptcErrors(errors, omitted)
    return task


@dataclass(frozen=True, slots=True)
class Grammar:
    """One request's answer grammar in each export form (the build's files of it).

    Attributes:
        lark: The lark grammar (``.lark``).
        gbnf: GBNF, for llama.cpp (``.gbnf``).
        json_schema: JSON Schema, for structured outputs (``.schema.json``), as data.
        regex: The portable regex (``.regex``: outlines, xgrammar, llguidance).
    """

    lark: str
    gbnf: str
    json_schema: Mapping[str, Any]
    regex: str

    @classmethod
    def of_files(cls, files: Mapping[str, str]) -> Grammar:
        """The grammar from its files by name (any stem)."""

        def one(suffix: str) -> str:
            # ``.regex`` is the portable regex; ``.parse.regex`` the parser's own.
            (text,) = [
                t
                for name, t in files.items()
                if name.endswith(suffix) and not name.endswith(".parse.regex")
            ]
            return text

        return cls(one(".lark"), one(".gbnf"), json.loads(one(".schema.json")), one(".regex"))


@dataclass(frozen=True, slots=True)
class Request:
    """One request of a task, as a build writes it to ``requests.jsonl``.

    Attributes:
        id: The request id (``r0001`` …).
        item_ids: The items it answers, in prompt order.
        messages: The chat messages (``role``, ``content``).
        params: The model parameters (``model``, ``temperature``, ``max_tokens`` …).
        grammar: Its own answer grammar, in each export form.
        kind: The strategy's name.
        target_item: The one item the request is for (retrieval selection), else ``None``.
    """

    id: str
    item_ids: tuple[str, ...]
    messages: tuple[Mapping[str, Any], ...]
    params: Mapping[str, Any]
    grammar: Grammar
    kind: str
    target_item: str | None = None

    def body(self) -> dict[str, Any]:
        """The body of ``POST /chat/completions`` for this request, unconstrained."""
        return {**self.params, "messages": list(self.messages)}


def iter_requests(task: Task) -> Iterator[Request]:
    """The task's requests, rendered one at a time, each with its own grammar; nothing is
    written.

    Raises:
        PromptcError: A stage failed (a template error at its file:line, a selection error…).
    """
    producer = Producer(task, CHAT)
    shared: dict[tuple[str, int], Grammar] = {}
    for r in producer.requests():
        built, _, _, own = producer.outgoing(r)
        n = len(built.item_ids)
        if own:
            grammar = Grammar.of_files(own)
        else:
            key = (built.kind.name, n)
            if key not in shared:
                shared[key] = Grammar.of_files(build_grammar(task, n, built.kind).files())
            grammar = shared[key]
        yield Request(
            built.id,
            built.item_ids,
            built.messages,
            built.params,
            grammar,
            built.kind.name,
            built.target_item,
        )


def write_build(
    task: Task, folder: PathLike, *, target: str = "chat", grammar: str | None = None
) -> Build:
    """Builds a task into a folder (byte-identical to ``promptc build SPEC -o FOLDER``).

    Args:
        task: From :func:`load_spec`.
        folder: The build folder (made if missing; an earlier build's files replaced).
        target: ``chat``, ``openai-batch`` or ``vllm-batch``.
        grammar: The constraint each body of a batch target carries: ``gbnf`` or
            ``json-schema`` for ``vllm-batch`` (default ``gbnf``), ``json-schema`` for
            ``openai-batch`` (``response_format``; default none).

    Raises:
        PromptcError: A stage failed; the folder cannot be written.
    """
    write_build_folder(task, folder, target=target, vllm_grammar=grammar)
    return open_build(folder)


def _options(options: RunOptions | None, fields: Mapping[str, Any]) -> RunOptions:
    if options is None:
        return RunOptions(**fields)
    return dataclasses.replace(options, **fields) if fields else options


def run_build(
    build: Build | PathLike,
    options: RunOptions | None = None,
    *,
    progress: Events | Callable[[str], None] | None = None,
    **fields: Any,
) -> RunResult:
    """Sends a build's requests, as ``promptc run`` does: the same response cache, resume,
    repair rounds and progress, against any OpenAI-compatible ``base_url``, the embedded
    model (``local=True``) or the Batch API (``batch_api=True``).

    Args:
        build: A :class:`Build` or its folder.
        options: How to run; ``fields`` (any :class:`RunOptions` field: ``base_url``,
            ``local``, ``parse``, ``concurrency``, ``grammar`` …) are set on it.
        progress: Called with one line per event (or an :class:`Events`); default silent.

    Returns:
        What was done; requests that failed are in :attr:`RunResult.failed`, not raised.

    Raises:
        PromptcError: Not a build, no server, an option out of range, a missing extra.
    """
    folder = build.folder if isinstance(build, Build) else Path(build)
    return run_folder(folder, _options(options, fields), progress=progress)


async def run_build_async(
    build: Build | PathLike,
    options: RunOptions | None = None,
    *,
    progress: Events | Callable[[str], None] | None = None,
    **fields: Any,
) -> RunResult:
    """:func:`run_build`, awaited: the run goes on in a worker thread (it has its own event loop
    and may start a server), so the caller's event loop keeps going."""
    return await asyncio.to_thread(run_build, build, options, progress=progress, **fields)


def collect(
    build: Build | PathLike, *files: PathLike, repair_dir: PathLike | None = None
) -> CollectResult:
    """Batch API (or ``vllm run_batch``) output and error files → ``outputs.jsonl``,
    ``results.jsonl`` and a repair build of the items not ok (in ``repair_dir``, default
    ``BUILD/repair``), as ``promptc collect`` does.

    Raises:
        PromptcError: Not a build, a file that cannot be read.
    """
    folder = build.folder if isinstance(build, Build) else Path(build)
    return collect_files(folder, *files, repair_dir=repair_dir)


def evaluate(
    spec: PathLike,
    results: Sequence[Build | PathLike],
    *,
    data: PathLike | None = None,
    baseline: str | None = None,
    tolerance: str | None = None,
) -> dict[str, Any]:
    """Scores answered builds (each a variant, its ``results.jsonl`` written by :func:`run_build`
    with ``parse=True`` or by :func:`collect`) against the spec's gold answers.

    Returns:
        The data of ``report.json`` (``promptc eval --results``).

    Raises:
        PromptcError: The spec does not compile, has no gold, a folder is not answered.
    """
    # Imported here: the report module (with its scorer) takes 23 ms to import, measured
    # with -X importtime, which every command built on this module would pay.
    from promptc.eval.report import build_report, report_json

    task = compile_spec(Path(spec), overrides=overrides(data=data) or None)
    read = [read_variant(b.folder if isinstance(b, Build) else Path(b), task) for b in results]
    names = [r.name for r in read]
    single = SINGLE.name  # the variant name of the one-item strategy without demos
    chosen = baseline or (single if single in names or not names else names[0])
    tol = Decimal(tolerance) if tolerance is not None else None
    report = build_report(task, read, baseline=chosen, tolerance=tol)
    loaded: dict[str, Any] = json.loads(report_json(report))
    return loaded


def plan_spec(
    spec: PathLike,
    *,
    strategies: str | None = None,
    batch_sizes: str | None = None,
    selection: str | None = None,
    data: PathLike | None = None,
    tokenizer: str | None = None,
    price_in: str | float | None = None,
    price_out: str | float | None = None,
) -> dict[str, Any]:
    """Counts every variant's requests, tokens and cost, without a model.

    Args:
        strategies: Comma-separated, as ``plan --strategies`` (default all four).
        batch_sizes: Comma-separated, as ``plan --batch-sizes`` (default 4,8,16).
        selection: The batched variants' selection method (default the spec's).
        tokenizer: ``o200k_base``, ``cl100k_base`` or a ``.gguf`` file.

    Returns:
        The data of ``promptc plan --format json``.

    Raises:
        PromptcError: The spec does not compile; bad options.
    """
    # Imported here: the plan stage (its tokenizers) takes 47 ms to import, measured with
    # -X importtime, which every command built on this module would pay.
    from promptc.plan.estimate import plan_spec as plan_variants

    chosen = variants(
        parse_strategies(strategies), parse_batch_sizes(batch_sizes), parse_selection(selection)
    )
    found = plan_variants(
        os.fspath(spec),
        chosen,
        data=os.fspath(data) if data is not None else None,
        tokenizer=tokenizer,
        price_in=price_in,
        price_out=price_out,
    )
    out: dict[str, Any] = found.to_dict()
    return out
