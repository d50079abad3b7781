"""Reading one evaluated variant's folder: a build with its answers, checked against the spec.

A variant folder is a build folder (``manifest.json``, ``requests.jsonl``, ``batches.jsonl``)
that ``promptc run --parse`` (or ``promptc eval``) has answered: ``outputs.jsonl`` (with each
request's token usage) and ``results.jsonl`` (one parse result per item). ``eval`` also writes
``timing.json`` there when it sends requests: how long the answers took to arrive.

An item whose result is not ``ok`` in a request that stopped with finish reason ``length`` was
cut by ``max_tokens``: it is read as :data:`~promptc.eval.score.TRUNCATED`, whatever status
the parser gave the part of the answer that arrived.

Results of an earlier build of the folder are refused (``stale-result``): an item its request
no longer holds, or the answer of a request whose prompt has changed since (``outputs.jsonl``'s
``prompt_sha256`` is not ``batches.jsonl``'s, the comparison ``promptc parse`` makes). An answer
recorded without a ``prompt_sha256`` (by hand, or by a promptc older than the field) cannot be
told apart and is scored, as ``promptc parse`` credits it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from promptc import ir
from promptc.build import (
    ITEMS_FILE,
    MANIFEST_FILE,
    BatchLine,
    batch_lines,
    read_manifest,
    read_task,
)
from promptc.build.files import read_lines, read_text
from promptc.errors import Location, UsageError
from promptc.eval.score import EVAL_STATUSES, TRUNCATED
from promptc.ir import round_of
from promptc.parse.results import FINISH_CUT
from promptc.plan.variants import Variant
from promptc.run.engine import token_count
from promptc.run.outputs import OUTPUTS_FILE, RESULTS_FILE, read_outputs_file
from promptc.run.repair import STAND_IN_SUFFIX, origin_of
from promptc.strategies import strategy

TIMING_FILE = "timing.json"

#: What eval refuses in a variant's files (tested word for word).
MESSAGES: dict[str, str] = {
    "bad-status": "item {item!r}: status {status!r} is not a parse status; expected one of "
    "{expected}",
    "duplicate-result": "item {item!r} of request {request!r} has a second result here; the "
    "first is at line {first}",
    "results-behind": "{name} was written before outputs.jsonl's latest answers: item "
    "{item!r} was asked {asked} time(s), its result counts {counted} (a run killed before it "
    "could write its results, or one cut short by --limit)",
    "no-results": "{name} holds no result, but outputs.jsonl holds {answers} answer(s); "
    "expected one result per item of the build",
    "bad-seconds": "seconds is {seconds!r}; expected a finite number of seconds, 0 or more",
    "bad-field": "{key} is {value!r:.60}; expected a string",
    "stale-result": "item {item!r} is not in request {request!r} of this build: {name} was "
    "parsed for an earlier build of the folder",
    "stale-prompt": "the answer of request {request!r} in outputs.jsonl was produced for "
    "another prompt than this build's: {name} was parsed for an earlier build of the folder",
    "other-questions": "{count} item(s) of {folder!r} were asked other inputs than the data "
    "holds now (first: {item!r}): its answers are to other questions",
    "limit-cuts-build": "{folder!r} holds {covered} item(s), {beyond} of them past the first "
    "{limit} that --limit scores: its calls and tokens are of all its items, so it cannot be "
    "scored on the first {limit} alone",
    "unpaired-items": "the result folders cover different items, so their accuracies cannot be "
    "compared item by item: {covers}; {shared} in every folder; not in every folder: {differ}",
}


@dataclass(frozen=True)
class VariantResults:
    """What a variant's folder holds, as plain data.

    Attributes:
        folder: The variant folder.
        name: The variant's name (``batch-8``), from the folder's manifest.
        kind: Strategy kind.
        batch_size: Items per request (1 for single and few-shot).
        selection: The selection method.
        results: ``results.jsonl`` records, values normalised by the task's output types.
        targets: Request id → target item, for ``retrieval`` builds; else ``None``.
        requests: Requests in the build.
        answered: Requests with an answer in ``outputs.jsonl``.
        unanswered: Requests of the build with no answer (none of their own, no repair that
            asked them again, no voting stand-in; a later round early stop did not send is
            none of them): their items are unparsed, their cost unpaid.
        repair_requests: Requests ``promptc run`` asked besides the build's and that were
            answered (repairs, voting rounds' stand-ins): calls as much as the build's, and
            their tokens are in the usage.
        prompt_tokens: Summed API usage (``None`` if some answer lacks it).
        completion_tokens: Likewise.
        seconds: Wall time of the requests sent, from ``timing.json`` (``None`` if unknown).
        statuses: Results per status (``truncated`` as :mod:`promptc.eval.results` says).
        item_ids: The items the build covers, in request order.
        cut_requests: Requests whose answer stopped at ``max_tokens`` (finish ``length``).
        cached_tokens: Prompt tokens the server said it served from its cache
            (``usage.prompt_tokens_details.cached_tokens``), ``None`` if it said nothing.
        positions: Request id → item id → the item's 1-based position in that request of
            the build: where an item answered again by a repair was asked by the strategy.
    """

    folder: Path
    name: str
    kind: str
    batch_size: int
    selection: str
    results: tuple[Mapping[str, Any], ...]
    targets: Mapping[str, str] | None
    requests: int
    answered: int
    prompt_tokens: int | None
    completion_tokens: int | None
    seconds: float | None
    statuses: Mapping[str, int] = field(default_factory=dict)
    item_ids: tuple[str, ...] = ()
    cut_requests: int = 0
    cached_tokens: int | None = None
    repair_requests: int = 0
    unanswered: int = 0
    positions: Mapping[str, Mapping[str, int]] = field(default_factory=dict)


def _json_lines(path: Path) -> list[tuple[int, Any]]:
    """Each line of ``results.jsonl`` as JSON (read as a build folder's files are: a regular
    file, never through a link, lines bounded, UTF-8).

    Raises:
        UsageError: ``bad-json`` at the line (a number too long to read, nesting too deep
            included).
    """
    out = []
    for n, line in read_lines(path):
        try:
            out.append((n, json.loads(line, parse_float=Decimal)))
        except json.JSONDecodeError as e:
            raise UsageError(
                f"not JSON: {e.msg}", location=Location(str(path), n, e.colno), code="bad-json"
            ) from None
        except (ValueError, RecursionError, ArithmeticError) as e:
            # 5,000 digits; nesting past the stack; an exponent past what a Decimal holds
            if isinstance(e, ArithmeticError):
                why = "a number past what promptc holds"
            else:
                why = "nested too deep" if isinstance(e, RecursionError) else str(e).split(":")[0]
            raise UsageError(
                f"not JSON promptc can read: {why}",
                location=Location(str(path), n, 1),
                code="bad-json",
            ) from None
    return out


def read_results(
    path: Path,
    task: ir.Task,
    requests: Mapping[str, frozenset[str]] | None = None,
    stale: Collection[str] = (),
) -> list[Mapping[str, Any]]:
    """The records of ``results.jsonl``, values normalised by the task's output types.

    Args:
        requests: The build's requests and the items each holds, by id: a result of a
            request the build does not hold, or of an item its request does not hold, is of
            another build (a folder built again over its answers).
        stale: The build's requests whose answer was produced for another prompt
            (:func:`stale_prompts`): a result of one, or of a repair of one, is of another
            build too.

    Raises:
        UsageError: Not JSON, not a result, or a result of another spec (an item or an output
            the task does not have) or of another build, at its line.
    """
    items = {i.id for i in task.items}
    outputs = {o.name: o for o in task.outputs}
    records: list[Mapping[str, Any]] = []
    seen: dict[tuple[object, str], int] = {}
    for n, rec in _json_lines(path):
        where = Location(str(path), n, 1)
        if not isinstance(rec, dict) or "status" not in rec:
            raise UsageError("expected a parse result object", location=where, code="bad-result")
        item = rec.get("item_id")
        _check_result(rec, n, where, seen)
        rid = origin_of(str(rec.get("request_id")))
        if requests is not None and item is not None and item not in requests.get(rid, ()):
            raise UsageError(
                MESSAGES["stale-result"].format(item=item, request=rid, name=path.name),
                location=where,
                hint="run the build again: promptc run BUILD_DIR --parse",
                code="stale-result",
            )
        if rid in stale:
            raise UsageError(
                MESSAGES["stale-prompt"].format(request=rid, name=path.name),
                location=where,
                hint="run the build again: promptc run BUILD_DIR --parse",
                code="stale-result",
            )
        if item is not None and item not in items:
            raise UsageError(
                f"item {item!r} is not in the data of {task.name!r}: these results are of "
                "another spec or data file",
                location=where,
                hint="score results with the spec (and --data) they were built from",
                code="results-of-another-spec",
            )
        values = _normalised(rec.get("values"), outputs, task.name, where)
        rounds = rec.get("rounds")
        if isinstance(rounds, list):  # a voting build's: each round's answer, normalised too
            rec = {
                **rec,
                "rounds": [
                    {**x, "values": _normalised(x.get("values"), outputs, task.name, where)}
                    for x in rounds
                    if isinstance(x, dict)
                ],
            }
        records.append({**rec, "values": values})
    return records


def _normalised(
    raw: object, outputs: Mapping[str, ir.OutputField], task: str, where: Location
) -> dict[str, Any]:
    """A result's ``values`` normalised by the task's output types.

    Raises:
        UsageError: An output the task does not have (``results-of-another-spec``).
    """
    values: dict[str, Any] = {}
    for k, v in (raw if isinstance(raw, dict) else {}).items():
        f = outputs.get(k)
        if f is None:
            raise UsageError(
                f"output {k!r} is not an output of {task!r}",
                location=where,
                code="results-of-another-spec",
            )
        try:
            values[k] = f.type.coerce(f, str(v) if isinstance(v, Decimal) else v)
        except ValueError:
            values[k] = v  # kept as read: it will not match the gold answer
    return values


def _check_result(
    rec: Mapping[str, Any], line: int, where: Location, seen: dict[tuple[object, str], int]
) -> None:
    """Refuses a result whose status eval does not know (it would count as unparsed) and an
    item's second result in one request (it would be scored twice or hide the first);
    ``seen`` maps (request id, item id) to the line of its first result."""
    item = rec.get("item_id")
    status = rec["status"]
    for name, value, nullable in (
        ("item_id", item, True),
        ("request_id", rec.get("request_id"), False),
    ):
        if not (isinstance(value, str) or (nullable and value is None)):
            raise UsageError(
                MESSAGES["bad-field"].format(key=name, value=value),
                location=where,
                code="bad-result",
            )
    if not isinstance(status, str) or status not in EVAL_STATUSES:
        raise UsageError(
            MESSAGES["bad-status"].format(
                item=item, status=status, expected=", ".join(EVAL_STATUSES)
            ),
            location=where,
            code="bad-result",
        )
    if isinstance(item, str):
        key = (rec.get("request_id"), item)
        if key in seen:
            raise UsageError(
                MESSAGES["duplicate-result"].format(item=item, request=key[0], first=seen[key]),
                location=where,
                code="duplicate-result",
            )
        seen[key] = line


def stale_prompts(
    batches: Sequence[BatchLine], answers: Mapping[str, Mapping[str, Any]]
) -> set[str]:
    """The build's requests whose answer in ``outputs.jsonl`` was produced for another prompt:
    its ``prompt_sha256`` is not the request's in ``batches.jsonl`` (the folder was built again
    with other prompts over the same batches). An answer without one is not told apart."""
    out = set()
    for b in batches:
        recorded = answers.get(b.request, {}).get("prompt_sha256")
        if recorded is not None and recorded != b.prompt_sha256:
            out.add(b.request)
    return out


def _check_limit(root: Path, task: ir.Task, limit: int | None, covered: Sequence[str]) -> None:
    """Refuses a folder whose build holds items of the data past the first ``limit``: its
    calls and tokens are of all its items, so scoring the first ``limit`` alone would give
    them figures that are not theirs (and a variant eval ran with ``--limit`` holds none).

    Raises:
        UsageError: ``limit-cuts-build``, naming ``--limit``.
    """
    if limit is None:
        return
    past = {i.id for i in task.items[limit:]}
    beyond = sum(1 for i in covered if i in past)
    if beyond:
        raise UsageError(
            MESSAGES["limit-cuts-build"].format(
                folder=str(root), covered=len(covered), beyond=beyond, limit=limit
            ),
            location=Location("<command line>"),
            path=("--limit",),
            hint="give --limit when promptc eval runs the variants; answered folders are "
            "scored on all their items, without --limit",
            code="limit-cuts-build",
        )


def _check_questions(root: Path, task: ir.Task) -> None:
    """Refuses a folder whose items were built from other inputs than the data now holds
    under the same ids (the data edited since): the answers would be scored against the
    gold of other questions. The build's ``items.jsonl`` is read as every reader of a build
    reads it (:func:`promptc.build.read_task`): one missing, a link or a pipe in its place, or
    one changed since the build is refused, as ``parse`` and ``run`` refuse it, never taken
    for a folder with nothing to compare.

    Raises:
        UsageError: ``other-questions``, at the build's ``items.jsonl``; ``not-a-build``,
            ``not-regular``, ``build-modified``, ``bad-task-file``: the build's task files
            cannot be read as built.
    """
    now = {it.id: it.inputs for it in task.items}
    differ = [it.id for it in read_task(root).items if it.id in now and it.inputs != now[it.id]]
    if differ:
        raise UsageError(
            MESSAGES["other-questions"].format(count=len(differ), folder=str(root), item=differ[0]),
            location=Location(str(root / ITEMS_FILE)),
            hint="build and run it again: promptc build SPEC -o DIR, then promptc run DIR --parse",
            code="other-questions",
        )


def _check_answered(path: Path, answers: int, records: list[Mapping[str, Any]]) -> None:
    """Refuses a ``results.jsonl`` without results beside answers: scored, every item would
    count as unparsed (a run that answered nothing leaves both empty, and eval says so)."""
    if answers and not records:
        raise UsageError(
            MESSAGES["no-results"].format(name=path.name, answers=answers),
            location=Location(str(path)),
            hint="run promptc run --parse on the build again",
            code="no-results",
        )


def _check_behind(
    path: Path, answers: Mapping[str, Mapping[str, Any]], records: list[Mapping[str, Any]]
) -> None:
    """Refuses a ``results.jsonl`` older than the answers beside it: an item asked again by
    a repair answer in ``outputs.jsonl`` whose result counts fewer attempts than that (a run
    killed by SIGKILL cannot remove its stale results). Scored, its answers' calls and cost
    would count, their results not. Voting builds combine rounds: not checked."""
    asked: dict[tuple[str, str], int] = {}
    for answer in answers.values():
        repair = answer.get("repair")
        if not isinstance(repair, Mapping) or not isinstance(repair.get("item_ids"), list):
            continue
        attempt = repair.get("attempt")
        of = repair.get("of")
        if not isinstance(attempt, int) or attempt < 1 or not isinstance(of, str):
            return  # a voting round's stand-in: the rounds are combined, not counted so
        for item in repair["item_ids"]:
            key = (of, str(item))
            asked[key] = asked.get(key, 1 if of in answers else 0) + 1
    for row in records:
        key = (origin_of(str(row.get("request_id"))), str(row.get("item_id")))
        counted = row.get("attempts")
        if key in asked and isinstance(counted, int) and counted < asked[key]:
            raise UsageError(
                MESSAGES["results-behind"].format(
                    name=path.name, item=key[1], asked=asked[key], counted=counted
                ),
                location=Location(str(path)),
                hint=f"parse the answers again: promptc parse {path.parent} "
                f"{path.parent / OUTPUTS_FILE} -o {path}",
                code="results-behind",
            )


def _mark_truncated(records: list[Mapping[str, Any]], cut: set[str]) -> list[Mapping[str, Any]]:
    """Results not ``ok`` in a request that stopped at ``max_tokens`` (``cut``), as truncated;
    a voting build's rounds' answers too."""

    def marked(r: Mapping[str, Any]) -> Mapping[str, Any]:
        if r.get("status") not in ("ok", "extra") and r.get("request_id") in cut:
            r = {**r, "status": TRUNCATED}
        rounds = r.get("rounds")
        return {**r, "rounds": [marked(x) for x in rounds]} if isinstance(rounds, list) else r

    return [marked(r) for r in records]


def _seconds(timing: Path, requests: int) -> float | None:
    """The wall time of the variant's ``requests``, from what ``timing.json`` records, if it
    is there and readable: a session that sent fewer (it resumed an interrupted one, whose
    time went unrecorded, or took some from the cache) measured its share, scaled up to all.

    Raises:
        UsageError: ``bad-seconds``: a negative or non-finite number of seconds (it would
            show as a negative or infinite rate).
    """
    if not timing.is_file():
        return None
    try:
        t = json.loads(read_text(timing))
        seconds = float(t["seconds"]) if isinstance(t, dict) else None
        sent = t.get("sent") if isinstance(t, dict) else None
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return None
    if seconds is not None and not (math.isfinite(seconds) and seconds >= 0):
        raise UsageError(
            MESSAGES["bad-seconds"].format(seconds=t["seconds"]),
            location=Location(str(timing)),
            hint="remove the file: eval writes it when it sends the requests",
            code="bad-seconds",
        )
    if seconds is not None and type(sent) is int and 0 < sent < requests:
        return seconds * requests / sent
    return seconds


def _counts(usage: object) -> tuple[int, int, int | None] | None:
    """An answer's prompt, completion and cached tokens, from its ``usage`` in
    ``outputs.jsonl``; ``None`` when they cannot be read: no prompt tokens, or a count that is
    not one (``"x"``, ``10**400``: :func:`~promptc.run.engine.token_count`), so that the
    variant's usage is unknown rather than wrong. No completion tokens count as 0."""
    if not isinstance(usage, dict):
        return None
    prompt = token_count(usage.get("prompt_tokens"))
    raw = usage.get("completion_tokens")
    completion = 0 if raw is None else token_count(raw)
    if prompt is None or completion is None:
        return None
    details = usage.get("prompt_tokens_details")
    cached = token_count(details.get("cached_tokens")) if isinstance(details, dict) else None
    return prompt, completion, cached


def _unanswered(
    held: Mapping[str, frozenset[str]], answers: Mapping[str, Any], task: ir.Task
) -> int:
    """How many of the build's requests got no answer (see :attr:`VariantResults.unanswered`)."""
    answered_for = {origin_of(q) for q in answers}
    vote = task.strategy.vote
    early = vote is not None and vote.early_stop is not None
    return sum(1 for rid in held if rid not in answered_for and not (early and round_of(rid) > 1))


def _manifest_of(root: Path, task: ir.Task) -> Mapping[str, Any]:
    """The manifest of a variant folder that holds a build of ``task`` and its results.

    Raises:
        UsageError: ``not-results``, ``results-of-another-spec``.
    """
    manifest_path = root / MANIFEST_FILE
    for p, what in ((manifest_path, "a build"), (root / RESULTS_FILE, "answered and parsed")):
        if p.exists() and not p.is_file():  # a named pipe, a device: never read
            raise UsageError(
                f"{p} is not a regular file; expected the {p.name} of a build",
                location=Location(str(p)),
                code="not-regular",
            )
        if not p.is_file():
            raise UsageError(
                f"{str(root)!r} is not {what}: it has no {p.name}",
                location=Location(str(p)),
                hint="give folders written by promptc eval, or by promptc build then "
                "promptc run --parse",
                code="not-results",
            )
    manifest = read_manifest(root)
    if manifest.get("name") != task.name:
        found = manifest.get("name")
        raise UsageError(
            f"these results are of spec {found!r}, not of {task.name!r}",
            location=Location(str(manifest_path)),
            hint="score results with the spec they were built from",
            code="results-of-another-spec",
        )
    return manifest


def read_variant(
    folder: str | os.PathLike[str], task: ir.Task, limit: int | None = None
) -> VariantResults:
    """Reads a variant folder and checks that its results belong to ``task``.

    Args:
        limit: Only the first ``limit`` items of ``task`` are scored: the folder's build
            must hold no other item of the data.

    Raises:
        UsageError: No build or no ``results.jsonl`` there; results of another spec (another
            task name, or an item the spec's data do not have), or of an earlier build of the
            folder (``stale-result``), at the file and line; items past ``limit``
            (``limit-cuts-build``).
    """
    root = Path(folder)
    results_path = root / RESULTS_FILE
    manifest = _manifest_of(root, task)
    built = manifest.get("strategy") or {}
    kind = strategy(str(built.get("kind")))
    size = int(built.get("batch_size") or 1)
    default = task.strategy.selection.method
    method = str((manifest.get("selection") or {}).get("method") or default)
    answers = read_outputs_file(root / OUTPUTS_FILE).answers
    cut = {q for q, a in answers.items() if a.get("finish_reason") in FINISH_CUT}
    batches = list(batch_lines(root))
    item_ids = tuple(dict.fromkeys(i for b in batches for i in b.item_ids))
    _check_limit(root, task, limit, item_ids)
    _check_questions(root, task)
    held = {b.request: frozenset(b.item_ids) for b in batches}
    stale = stale_prompts(batches, answers)
    records = _mark_truncated(read_results(results_path, task, held, stale), cut)
    if not os.path.lexists(root / OUTPUTS_FILE):
        # Parsed where they were asked (promptc.ray writes results.jsonl alone): a request
        # with a result of an answer was answered, its usage unknown here. A run's request
        # that got none has only the "no answer…" results of run.repair.missing_results.
        answers = {
            str(r["request_id"]): {}
            for r in records
            if r["status"] != "missing" or not str(r.get("message", "")).startswith("no answer")
        }
    _check_answered(results_path, len(answers), records)
    _check_behind(results_path, answers, records)
    targets = None
    if method == "retrieval":
        targets = {b.request: b.target_item for b in batches if b.target_item is not None}
    usage = [c for a in answers.values() if (c := _counts(a.get("usage"))) is not None]
    usage_known = bool(answers) and len(usage) == len(answers)
    seconds = _seconds(root / TIMING_FILE, len(batches))
    cached = [c[2] for c in usage if c[2] is not None]
    statuses: dict[str, int] = dict.fromkeys(EVAL_STATUSES, 0)
    for rec in records:
        statuses[str(rec["status"])] = statuses.get(str(rec["status"]), 0) + 1
    one_method = kind.one_item or method == default
    return VariantResults(
        folder=root,
        name=Variant(kind, size, None if one_method else method).name,
        kind=kind.name,
        batch_size=size,
        selection=method,
        results=tuple(records),
        targets=targets,
        requests=len(batches),
        answered=len(answers),
        prompt_tokens=sum(c[0] for c in usage) if usage_known else None,
        completion_tokens=sum(c[1] for c in usage) if usage_known else None,
        seconds=seconds,
        statuses=statuses,
        item_ids=item_ids,
        cut_requests=len(cut),
        cached_tokens=sum(cached) if cached else None,
        repair_requests=sum(
            1
            for q in answers
            if q not in held and origin_of(q) in held and not q.endswith(STAND_IN_SUFFIX)
        ),
        unanswered=_unanswered(held, answers, task),
        positions={b.request: {i: k for k, i in enumerate(b.item_ids, 1)} for b in batches},
    )
