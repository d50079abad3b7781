"""promptc from Python: the public API, which the ``promptc`` command is built on.

The user's loop, one function a step::

    task = promptc.load_spec("specs/sentiment.yaml", strategy="batch", batch_size=8)
    for request in promptc.iter_requests(task): ...   # id, items, messages, params, grammar
    build = promptc.write_build(task, "out/sentiment")  # promptc.open_build reads one back
    result = promptc.run_build(build, local=True, parse=True)  # or await run_build_async(...)
    items = build.parse("r0001", "A[1]: positive …")   # one ItemResult per item
    report = promptc.evaluate("specs/sentiment.yaml", [build])  # report.json's data
    plan = promptc.plan_spec("specs/sentiment.yaml")  # plan.to_dict(): plan --format json

The functions are named so that none shadows a subpackage of ``promptc`` (``promptc.build``,
``promptc.parse``, ``promptc.run``, ``promptc.plan`` are modules).

Every name here is listed in :data:`promptc.__all__` and documented in ``docs/api.md``; what
it returns is the same data the matching command writes (``report.json``, ``plan --format
json``, ``results.jsonl``). Errors a user can cause are :class:`~promptc.errors.PromptcError`;
:func:`load_spec` raises them all at once as one :class:`~promptc.errors.PromptcErrors`, exactly as
``promptc check`` lists them.

Each function imports the stages it drives when it is called, not with this module: every
command imports this module, and the stages all together take 190 ms to import (measured with
-X importtime), as much again as the whole of ``promptc check`` of a small spec, which needs
the front end alone.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptc import ir
from promptc.errors import (
    BackendError,
    Location,
    PromptcError,
    PromptcErrors,
    UsageError,
    did_you_mean,
    flatten,
)

# Build, open_build and parse_output are defined in the parse stage, which ``promptc parse``
# imports without this module's weight; they are this module's names too.
from promptc.parse.build_input import Build, open_build, parse_output  # noqa: F401

if TYPE_CHECKING:
    from promptc.eval.results import VariantResults
    from promptc.plan.estimate import Plan, Pricing
    from promptc.run.collect import CollectResult
    from promptc.run.options import RunOptions
    from promptc.run.progress import Events
    from promptc.run.result import RunResult

#: A compiled, validated task (the IR's root: :class:`promptc.ir.Task`).
Task = ir.Task

PathLike = str | os.PathLike[str]


def _path(value: object, name: str) -> str:
    """``value`` as a path (a ``str`` or an ``os.PathLike``), else a ``bad-argument`` error
    naming the argument: a caller's mistake is said as promptc's errors are, not as a bare
    TypeError from deep inside."""
    if isinstance(value, str | os.PathLike):
        path = os.fspath(value)
        if isinstance(path, str):
            # What the OS would refuse with a bare ValueError or OSError deep inside.
            long = next((p for p in path.split(os.sep) if len(os.fsencode(p)) > 255), None)
            if "\0" in path or long is not None:
                why = (
                    "a NUL character" if "\0" in path else f"a name of over 255 bytes ({long:.40}…)"
                )
                raise UsageError(
                    f"{name} {path!r:.80} holds {why}; expected a path the system can open",
                    code="bad-argument",
                )
            return path
    raise UsageError(f"{name} is {value!r:.60}; expected a path", code="bad-argument")


def _of(value: object, kind: type, name: str, what: str) -> None:
    """Refuses ``value`` unless it is a ``kind`` (``bad-argument``, naming the argument)."""
    if not isinstance(value, kind):
        raise UsageError(f"{name} is {value!r:.60}; expected {what}", code="bad-argument")


def _spec_task(task: object) -> Task:
    """``task`` as a task prompts can be made of: a :class:`Task` of :func:`load_spec`, not one
    read back from a build (``Build.task``: no demos, no data), else a ``bad-argument``."""
    _of(task, Task, "task", "a Task (load_spec gives one)")
    assert isinstance(task, Task)
    if task.from_build:
        raise UsageError(
            "the task was read back from a build's task.json, which keeps no demos and no "
            "data: no prompt can be made of it again; load the spec with load_spec(spec)",
            code="task-from-build",
        )
    return task


def _optional_path(value: object, name: str) -> str | None:
    """``value`` as a path (:func:`_path`), or ``None``."""
    return None if value is None else _path(value, name)


def _folders(results: object) -> list[Path]:
    """The folders of ``evaluate``'s ``results``: a list of builds or folders (one folder
    given as a string would be read character by character), else a ``bad-argument``."""
    if isinstance(results, str | os.PathLike) or not isinstance(results, Sequence):
        raise UsageError(
            f"results is {results!r:.60}; expected a list of builds or folders",
            code="bad-argument",
        )
    return [b.folder if isinstance(b, Build) else Path(_path(b, "results")) for b in results]


def _texts(**values: object) -> None:
    """Refuses each value that is neither ``None`` nor a ``str`` (``bad-argument``)."""
    for name, value in values.items():
        if value is not None:
            _of(value, str, name, "a string")


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
    digests: bool = True,
) -> Task:
    """Loads and validates a spec into its task, as ``promptc check`` does.

    Args:
        spec: The spec file.
        strategy: Use this strategy instead of the spec's (``single``, ``few-shot``,
            ``batch``, ``auto-demo``).
        batch_size: Use this batch size instead of the spec's.
        data: Use this data file instead of the spec's.
        max_errors: Report at most this many errors (``None``: all).
        digests: Take the sha256 of the spec, data and template files, which a build's
            manifest names. ``False`` reads them without hashing (``promptc check``: a data
            file of a million rows is hundreds of megabytes); such a task is for checking.

    Raises:
        PromptcErrors: Every problem ``promptc check`` reports (schema, semantics, data,
            templates, selection requirements), each at its file:line:col.
    """
    from promptc.render.checks import check_templates
    from promptc.select.methods import missing_requirements
    from promptc.spec.lower import compile_spec

    if max_errors is not None and (
        isinstance(max_errors, bool) or not isinstance(max_errors, int) or max_errors < 1
    ):
        raise UsageError(
            f"max_errors is {max_errors!r}; expected a whole number, 1 or more, or None",
            code="bad-option",
        )
    spec = _path(spec, "spec")
    data = None if data is None else _path(data, "data")
    _texts(strategy=strategy)
    task = compile_spec(
        spec,
        overrides=overrides(strategy, batch_size, data) or None,
        max_errors=max_errors,
        digests=digests,
    )
    errors = flatten(check_templates(task)) + list(missing_requirements(task))
    if errors:
        omitted = 0
        if max_errors is not None and len(errors) > max_errors:
            omitted, errors = len(errors) - max_errors, errors[:max_errors]
        raise PromptcErrors(errors, omitted)
    return task


def spec_warnings(task: Task) -> list[PromptcError]:
    """What ``promptc check`` warns of in a valid task, each located: an output budget
    (``model.max_tokens``) that may cut its requests off; a demo answer longer than a model
    constrained by the GBNF grammar may write; a literal of the answer format that a number
    before it may read as its own. Warnings are never raised."""
    from promptc.grammar.gbnf import demo_warnings
    from promptc.render.output_budget import budget_warning
    from promptc.spec.answer_format import ambiguity_warnings

    _spec_task(task)

    warning = budget_warning(task, task.strategy.kind.variant(task.strategy.batch_size))
    found: list[PromptcError] = [] if warning is None else [warning]
    return [*found, *ambiguity_warnings(task.answer_format, task.outputs), *demo_warnings(task)]


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
    from promptc.build.grammars import RequestGrammars
    from promptc.build.produce import Producer
    from promptc.build.targets import CHAT
    from promptc.grammar.answer import build_grammar

    _spec_task(task)
    producer = Producer(task, CHAT)
    pinned = RequestGrammars(task)
    shared: dict[tuple[str, int], Grammar] = {}
    for r in producer.requests():
        built, _, _, own = producer.outgoing(r)
        n = len(built.item_ids)
        if own:
            grammar = Grammar.of_files(own)
        elif built.kind.repeats_questions:  # its questions pinned, as run sends it
            grammar = Grammar.of_files(pinned.files(r))
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
    from promptc.build import build

    _spec_task(task)
    folder = _path(folder, "folder")
    _texts(target=target, grammar=grammar)
    if not task.spec.sha256:
        # Its manifest would name no file's sha256: not the build promptc build writes.
        raise UsageError(
            "the task was loaded with digests=False, which is for checking; load it with "
            "load_spec(spec) to build it",
            code="no-digests",
        )
    build(task, folder, target=target, vllm_grammar=grammar)
    return Build(Path(folder), task)


def _options(options: RunOptions | None, fields: Mapping[str, Any]) -> RunOptions:
    from promptc.run.options import RunOptions

    known = [f.name for f in dataclasses.fields(RunOptions)]
    for name in fields:
        if name not in known:  # a misspelt option, never Python's TypeError
            raise UsageError(
                f"unknown run option {name!r}; expected one of the fields of RunOptions",
                hint=did_you_mean(name, known),
                code="bad-argument",
            )
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
    from promptc.run.options import RunOptions
    from promptc.run.orchestrate import run_build as run_folder

    folder = build.folder if isinstance(build, Build) else Path(_path(build, "build"))
    if not folder.is_dir():  # a spec (open_build of a spec builds it in memory), a file
        raise UsageError(
            f"{str(folder)!r} is no build folder; run_build sends a build written to a folder "
            "(write_build, or promptc build SPEC -o DIR)",
            code="not-a-build",
        )
    if options is not None:
        _of(options, RunOptions, "options", "RunOptions (or its fields as keywords)")
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
    # Imported here: asyncio takes 25 ms to import (-X importtime), which every command pays
    # for this module and only this function needs.
    import asyncio

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
    from promptc.run.collect import collect as collect_files

    folder = build.folder if isinstance(build, Build) else Path(_path(build, "build"))
    if not folder.is_dir():  # a spec built in memory, a file
        raise UsageError(
            f"{str(folder)!r} is no build folder; collect reads the answers of a build written "
            "to a folder (promptc build SPEC -o DIR --target openai-batch)",
            code="not-a-build",
        )
    if not files:  # as promptc collect: without a file every request would be "unanswered"
        raise UsageError(
            "files is empty; expected the batch's output file (and its error file, if any)",
            code="bad-argument",
        )
    paths = [_path(f, "files") for f in files]
    where = None if repair_dir is None else _path(repair_dir, "repair_dir")
    return collect_files(folder, *paths, repair_dir=where)


#: One variant run by :func:`run_variants`: its name (``batch-8``), its build, what the run did.
VariantRun = tuple[str, Build, "RunResult"]


def _check_limit(limit: object) -> None:
    """Refuses a ``limit`` that is not a whole number of items, 1 or more (``--limit``'s rule:
    0 or a negative number would score or run nothing, or cut items off the end).

    Raises:
        UsageError: ``bad-option``, naming ``limit``.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise UsageError(
            f"limit is {limit!r}; expected a whole number of items, 1 or more",
            code="bad-option",
        )


def _tolerance(value: object, parse: Callable[[str | None], Decimal | None]) -> Decimal | None:
    """``evaluate``'s ``tolerance`` held to ``promptc eval --tolerance``'s rule whatever its
    type (a negative one scored a perfect model 0 %; NaN raised from deep in the scorer).

    Raises:
        UsageError: ``bad-argument`` (not a number), ``bad-tolerance``.
    """
    if value is None or isinstance(value, str):
        return parse(value)
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise UsageError(
            f"tolerance must be a number or its text, not {type(value).__name__}",
            code="bad-argument",
        )
    return parse(str(value))


def _check_margin(margin: object) -> None:
    """Refuses a ``margin`` outside ``--margin``'s range: accuracy points, over 0 and at most
    100.

    Raises:
        UsageError: ``bad-option``, naming ``margin``.
    """
    if margin is None:
        return
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not 0 < margin <= 100:
        raise UsageError(
            f"margin is {margin!r}; expected accuracy points, over 0 and at most 100",
            code="bad-option",
        )


def run_variants(
    spec: PathLike,
    folder: PathLike,
    options: RunOptions | None = None,
    *,
    strategies: str | None = None,
    batch_sizes: str | None = None,
    selection: str | None = None,
    data: PathLike | None = None,
    limit: int | None = None,
    price_in: str | float | None = None,
    price_out: str | float | None = None,
    price_cached: str | float | None = None,
    progress: Events | Callable[[str], None] | None = None,
    on_variant: Callable[[str, int], None] | None = None,
    warn: Callable[[PromptcError], object] | None = None,
    **fields: Any,
) -> list[VariantRun]:
    """Builds each variant of a spec into ``folder/variants/NAME`` and runs it with ``parse``,
    as ``promptc eval`` does before it scores them with :func:`evaluate`.

    Before anything is sent, the spec and every variant compile, some item has a gold answer
    and the price is a valid one: an error found after the runs would waste what they cost.

    Args:
        options: How to run each variant (``fields`` set on it), as for :func:`run_build`.
        strategies, batch_sizes, selection: The variants, as for :func:`plan_spec`.
        limit: Only the first ``limit`` items of the data.
        price_in, price_out, price_cached: USD per million tokens (checked here, used by
            :func:`evaluate`).
        progress: Each run's events, as for :func:`run_build`.
        on_variant: Told each variant's name and its number of requests, before its run.
        warn: Told of each variant whose ``model.max_tokens`` may cut its requests off.

    Raises:
        PromptcError: The spec has errors or no gold answers, a bad price or option; nothing
            answers at ``base_url`` (before anything is built or sent).
    """
    from promptc.build import read_task
    from promptc.eval.report import build_report
    from promptc.eval.runner import run_variants as run_each
    from promptc.plan.estimate import price_of
    from promptc.plan.variants import parse_batch_sizes, parse_selection, parse_strategies
    from promptc.plan.variants import variants as make_variants
    from promptc.spec.lower import compile_spec

    _check_limit(limit)
    _texts(strategies=strategies, batch_sizes=batch_sizes, selection=selection)
    spec, folder = _path(spec, "spec"), _path(folder, "folder")
    data = None if data is None else _path(data, "data")
    chosen = make_variants(
        parse_strategies(strategies), parse_batch_sizes(batch_sizes), parse_selection(selection)
    )
    task = compile_spec(spec, overrides=overrides(data=data) or None)
    if not any(i.gold for i in task.items):
        build_report(task, [])  # raises the no-gold error
    price_of(task, price_in, price_out, price_cached)
    # Every variant runs with parse (scoring reads its results.jsonl): the rest is the caller's.
    given = {**(dataclasses.asdict(options) if options is not None else {}), **fields}
    run_options = {k: v for k, v in given.items() if k != "parse"}
    ran = run_each(
        os.fspath(spec),
        chosen,
        Path(folder),
        run_options=run_options,
        data=os.fspath(data) if data is not None else None,
        limit=limit,
        on_variant=None if on_variant is None else lambda v, n: on_variant(v.name, n),
        progress=progress,
        warn=warn,
    )
    return [(v.name, Build(f, read_task(f)), result) for v, f, result in ran]


def evaluate(
    spec: PathLike,
    results: Sequence[Build | PathLike],
    *,
    data: PathLike | None = None,
    limit: int | None = None,
    baseline: str | None = None,
    tolerance: str | Decimal | None = None,
    price_in: str | float | None = None,
    price_out: str | float | None = None,
    price_cached: str | float | None = None,
    margin: float | None = None,
    report_dir: PathLike | None = None,
    charts: bool = True,
    answered: bool = False,
) -> dict[str, Any]:
    """Scores answered builds (each a variant, its ``results.jsonl`` written by :func:`run_build`
    with ``parse=True``, :func:`collect` or :func:`run_variants`) against the spec's gold
    answers.

    Args:
        limit: Score the first ``limit`` items only (those :func:`run_variants` ran); a build
            holding others is refused (``limit-cuts-build``): its calls are of all its items.
        baseline: The variant the others are compared with (default ``single``, else the
            first).
        tolerance: Absolute tolerance for numbers.
        price_in, price_out, price_cached: USD per million tokens (default the spec's
            ``model.price``; none: cost in tokens).
        margin: Accuracy points the recommended variant may lose to the most accurate one.
        report_dir: Also write ``report.json``, ``report.md``, ``report.html`` and (with
            ``charts``, which need matplotlib) the two PNG charts there.
        answered: Raise ``nothing-answered`` when no request of any variant has an answer,
            rather than score nothing (``promptc eval`` after its runs).

    Returns:
        The data of ``report.json`` (``promptc eval --results``).

    Raises:
        PromptcError: The spec does not compile, has no gold, a folder is not answered, the
            folders cover different items (``unpaired-items``), a bad tolerance or price.
    """
    # The report module (with its scorer) takes 23 ms to import, measured with -X importtime.
    from promptc.eval.report import parse_tolerance, report_json, write_report
    from promptc.eval.results import read_variant
    from promptc.plan.estimate import price_of
    from promptc.spec.lower import compile_spec

    _check_limit(limit)
    _check_margin(margin)
    tol = _tolerance(tolerance, parse_tolerance)
    folders = _folders(results)
    out = _report_dir(report_dir)
    data = None if data is None else _path(data, "data")
    task = compile_spec(_path(spec, "spec"), overrides=overrides(data=data) or None)
    read = [read_variant(folder, task, limit) for folder in folders]
    if limit is not None:
        task = dataclasses.replace(task, items=task.items[:limit])
    if answered and read and not any(v.answered for v in read):
        raise _nothing_answered()
    price = price_of(task, price_in, price_out, price_cached)
    report = _scored(task, read, baseline, tol, price, margin)
    if out is not None:
        try:
            write_report(report, out, charts, variants=read, task=task)
        except OSError as e:  # a file where the folder goes, a name too long, a full disk
            raise _unwritable(out, e) from None
    loaded: dict[str, Any] = json.loads(report_json(report))
    return loaded


def _scored(
    task: Task,
    read: Sequence[VariantResults],
    baseline: str | None,
    tolerance: Decimal | None,
    price: Pricing | None,
    margin: float | None,
) -> dict[str, Any]:
    """The report of ``evaluate``: against ``baseline``, else ``single``, else the first."""
    from promptc.eval.report import DEFAULT_MARGIN, build_report
    from promptc.strategies import SINGLE

    names = [r.name for r in read]
    chosen = baseline or (SINGLE.name if SINGLE.name in names or not names else names[0])
    margin = DEFAULT_MARGIN if margin is None else margin
    return build_report(
        task, read, baseline=chosen, tolerance=tolerance, price=price, margin=margin
    )


def _report_dir(report_dir: object) -> Path | None:
    """``evaluate``'s ``report_dir``, refused before anything is scored when it holds files
    eval did not write (``out-not-eval``, as ``eval -o``) or is no path."""
    from promptc.eval.folder import check_report_dir

    if report_dir is None:
        return None
    out = Path(_path(report_dir, "report_dir"))
    check_report_dir(out)
    return out


def _unwritable(out: Path, e: OSError) -> UsageError:
    return UsageError(
        f"cannot write the report into {str(out)!r}: {e.strerror or e}",
        location=Location(str(out)),
        code="unwritable",
    )


def _nothing_answered() -> PromptcError:
    """Every request of every variant failed (each said already): a report of 0 % would be
    made of nothing."""
    return BackendError(
        "no request of any variant was answered, so no report was written",
        location=Location("<command line>"),
        hint="see the failures above; check the server and run eval again: answers "
        "already received are cached",
        code="nothing-answered",
    )


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
    price_cached: str | float | None = None,
    local: bool = False,
    model_path: PathLike | None = None,
    probe: bool = False,
    base_url: str | None = None,
    grammar: str = "auto",
) -> Plan:
    """Counts every variant's requests, tokens and cost, without a model (unless asked to
    measure one).

    Args:
        strategies: Comma-separated, as ``plan --strategies`` (default all four).
        batch_sizes: Comma-separated, as ``plan --batch-sizes`` (default 4,8,16).
        selection: The batched variants' selection method (default the spec's).
        tokenizer: ``o200k_base``, ``cl100k_base`` or a ``.gguf`` file (default: the model's
            own when known, else ``o200k_base`` as an estimate).
        price_in, price_out, price_cached: USD per million tokens (default the spec's
            ``model.price``).
        local: Count with the embedded model's tokenizer (``model_path``, default the bundled
            one, fetched if missing); with ``probe``, measure it.
        probe: Measure the engine at ``base_url`` (or the embedded one) with two short
            requests, and estimate each variant's wall time.
        grammar: How the runs will constrain the answers (``run --grammar``): with
            ``json-schema`` the model answers in the grammar's JSON form, whose output tokens
            and per-item budget are planned; any other mode, the text form.

    Returns:
        The plan: ``plan.to_dict()`` is the data of ``promptc plan --format json``;
        ``plan.variants`` the rows of its table.

    Raises:
        PromptcError: The spec does not compile; bad options.
    """
    # The plan stage (its tokenizers) takes 47 ms to import, measured with -X importtime.
    from promptc.plan.estimate import plan_spec as plan_variants
    from promptc.plan.probe import probe as probe_engine
    from promptc.plan.variants import parse_batch_sizes, parse_selection, parse_strategies
    from promptc.plan.variants import variants as make_variants
    from promptc.run.bodies import grammar_mode
    from promptc.run.local import local_server
    from promptc.run.models import fetch_model, find_model

    spec = _path(spec, "spec")
    _texts(strategies=strategies, batch_sizes=batch_sizes, selection=selection, tokenizer=tokenizer)
    _of(grammar, str, "grammar", "a string (auto, gbnf, json-schema or none)")
    data, model_path = _optional_path(data, "data"), _optional_path(model_path, "model_path")
    json_form = grammar_mode(grammar) == "json_schema"
    chosen = make_variants(
        parse_strategies(strategies), parse_batch_sizes(batch_sizes), parse_selection(selection)
    )
    _check_probe(probe, local, base_url)
    if local and tokenizer is None:
        # The embedded model's own tokenizer: the counts its server will see.
        tokenizer = os.fspath(model_path) if model_path else str(find_model() or fetch_model())
    plan = plan_variants(
        os.fspath(spec),
        chosen,
        data=os.fspath(data) if data is not None else None,
        tokenizer=tokenizer,
        price_in=price_in,
        price_out=price_out,
        price_cached=price_cached,
        json_form=json_form,
    )
    if probe and local:
        with local_server(model_path) as url:
            plan = dataclasses.replace(plan, rates=probe_engine(url, plan.model))
    elif probe and base_url is not None:
        plan = dataclasses.replace(plan, rates=probe_engine(base_url, plan.model))
    return plan


def _check_probe(probe: bool, local: bool, base_url: str | None) -> None:
    """``probe`` needs one engine; ``local`` and ``base_url`` only make sense with it."""
    where = Location("<command line>")
    if probe and not local and base_url is None:
        raise UsageError(
            "--probe needs an engine to measure: give --local or --base-url URL",
            location=where,
            path=("--probe",),
            code="probe-no-engine",
        )
    if local and base_url is not None:
        raise UsageError("give --base-url or --local, not both", location=where, code="two-models")
    if base_url is not None:
        # (loaded with plan.probe, which plan_spec imports before it checks its options)
        from promptc.replies import check_base_url

        check_base_url(base_url)
    if base_url is not None and not probe:
        raise UsageError(
            "--base-url is for --probe: plan sends nothing otherwise",
            location=where,
            path=("--base-url",),
            code="base-url-without-probe",
        )
