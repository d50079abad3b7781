"""Reading one evaluated variant's folder: a build with its answers, checked against the spec.

A variant folder is a build folder (``manifest.json``, ``requests.jsonl``, ``batches.jsonl``)
that ``promptc run --parse`` (or ``promptc eval``) has answered: ``outputs.jsonl`` (with each
request's token usage) and ``results.jsonl`` (one parse result per item). ``eval`` also writes
``timing.json`` there when it sends requests: how long the answers took to arrive.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from promptc import ir
from promptc.build import batch_lines, read_manifest
from promptc.errors import Location, UsageError
from promptc.strategies import strategy

TIMING_FILE = "timing.json"


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
        prompt_tokens: Summed API usage (``None`` if some answer lacks it).
        completion_tokens: Likewise.
        seconds: Wall time of the requests sent, from ``timing.json`` (``None`` if unknown).
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


def variant_name(kind: str, batch_size: int, selection: str, default_selection: str) -> str:
    s = strategy(kind)
    base = s.variant(batch_size)
    if s.one_item or selection == default_selection:
        return base
    return f"{base}+{selection}"


def _json_lines(path: Path) -> list[tuple[int, Any]]:
    out = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append((n, json.loads(line, parse_float=Decimal)))
            except json.JSONDecodeError as e:
                raise UsageError(
                    f"not JSON: {e.msg}", location=Location(str(path), n, e.colno), code="bad-json"
                ) from None
    return out


def read_variant(folder: str | Path, task: ir.Task) -> VariantResults:
    """Reads a variant folder and checks that its results belong to ``task``.

    Raises:
        UsageError: No build or no ``results.jsonl`` there; results of another spec (another
            task name, or an item the spec's data do not have), at the file and line.
    """
    from promptc.values import coerce_value

    root = Path(folder)
    manifest_path = root / "manifest.json"
    results_path = root / "results.jsonl"
    for p, what in ((manifest_path, "a build"), (results_path, "answered and parsed")):
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
    strategy = manifest.get("strategy") or {}
    selection = manifest.get("selection") or {}
    kind = str(strategy.get("kind"))
    size = int(strategy.get("batch_size") or 1)
    method = str(selection.get("method") or task.strategy.selection.method)
    items = {i.id for i in task.items}
    outputs = {o.name: o for o in task.outputs}
    records: list[Mapping[str, Any]] = []
    for n, rec in _json_lines(results_path):
        where = Location(str(results_path), n, 1)
        if not isinstance(rec, dict) or "status" not in rec:
            raise UsageError("expected a parse result object", location=where, code="bad-result")
        item = rec.get("item_id")
        if item is not None and item not in items:
            raise UsageError(
                f"item {item!r} is not in the data of {task.name!r}: these results are of "
                "another spec or data file",
                location=where,
                hint="score results with the spec (and --data) they were built from",
                code="results-of-another-spec",
            )
        values: dict[str, Any] = {}
        raw = rec.get("values")
        for k, v in (raw if isinstance(raw, dict) else {}).items():
            f = outputs.get(k)
            if f is None:
                raise UsageError(
                    f"output {k!r} is not an output of {task.name!r}",
                    location=where,
                    code="results-of-another-spec",
                )
            try:
                values[k] = coerce_value(f, str(v) if isinstance(v, Decimal) else v)
            except ValueError:
                values[k] = v  # kept as read: it will not match the gold answer
        records.append({**rec, "values": values})
    targets = None
    batches = root / "batches.jsonl"
    if method == "retrieval" and batches.is_file():
        targets = {}
        for _, b in _json_lines(batches):
            if isinstance(b, dict) and isinstance(b.get("target"), int):
                targets[str(b["request"])] = str(b["item_ids"][b["target"]])
    requests = (
        sum(1 for _ in _json_lines(root / "requests.jsonl"))
        if (root / "requests.jsonl").is_file()
        else 0
    )
    answered, prompt, completion = 0, 0, 0
    usage_known = True
    outputs_path = root / "outputs.jsonl"
    if outputs_path.is_file():
        for _, o in _json_lines(outputs_path):
            answered += 1
            usage = o.get("usage") if isinstance(o, dict) else None
            if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
                prompt += usage["prompt_tokens"]
                completion += int(usage.get("completion_tokens") or 0)
            else:
                usage_known = False
    else:
        usage_known = False
    seconds = None
    timing = root / TIMING_FILE
    if timing.is_file():
        try:
            t = json.loads(timing.read_text(encoding="utf-8"))
            seconds = float(t["seconds"]) if isinstance(t, dict) else None
        except (OSError, ValueError, KeyError, TypeError):
            seconds = None
    from promptc.eval.score import STATUSES

    statuses = {s: 0 for s in STATUSES}
    for rec in records:
        statuses[str(rec["status"])] = statuses.get(str(rec["status"]), 0) + 1
    return VariantResults(
        folder=root,
        name=variant_name(kind, size, method, task.strategy.selection.method),
        kind=kind,
        batch_size=size,
        selection=method,
        results=tuple(records),
        targets=targets,
        requests=requests,
        answered=answered,
        prompt_tokens=prompt if usage_known else None,
        completion_tokens=completion if usage_known else None,
        seconds=seconds,
        statuses=statuses,
        item_ids=tuple(dict.fromkeys(i for b in batch_lines(root) for i in b.item_ids)),
    )
