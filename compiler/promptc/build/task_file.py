"""What a build folder keeps of its task, so that nothing after ``promptc build`` needs the spec.

``promptc build`` writes two files beside ``requests.jsonl`` (both covered by the manifest's
``files`` hashes):

``task.json``
    What parsing, repair and evaluation read of the task: its name, inputs, outputs and their
    types, the answer format, the strategy (kind, batch size) and the model parameters.
``items.jsonl``
    One item a line, in data order: ``id``, ``index``, ``inputs``, ``question`` (the text an
    Auto-Demo answer must repeat, :func:`promptc.markers.question_text`), ``gold``,
    ``options`` and ``location`` (the data file's line, relative to the spec's folder).

:func:`read_task` turns them back into an :class:`~promptc.ir.Task` equal, in everything
parsing uses, to the one the build was made from; demonstrations, the data source and
templates (used only to render, which is done) are left out.

Every value is plain JSON, sorted keys, paths relative: a build stays byte-identical across
machines.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from promptc import ir, markers, strategies, values
from promptc.build.files import build_error, document, dumps, read_lines, read_text
from promptc.build.manifest import check_hashes, read_manifest
from promptc.errors import Location, UsageError

TASK_FILE = "task.json"
ITEMS_FILE = "items.jsonl"


def _where(loc: Location, spec_dir: str, paths: dict[str, str] | None = None) -> str:
    """``file:line:col`` with the file relative to the spec's folder (``paths`` caches the
    relative path of each file: every item of a data file has the same)."""
    if loc.file in ("", ir.NOWHERE.file):
        return ""
    path = paths.get(loc.file) if paths is not None else None
    if path is None:
        # Relative to the spec's folder whatever the current folder was: builds are
        # byte-identical.
        try:
            path = os.path.relpath(os.path.abspath(loc.file), os.path.abspath(spec_dir))
        except ValueError:  # another drive on Windows
            path = os.path.basename(loc.file)
        path = path.replace(os.sep, "/")
        if paths is not None:
            paths[loc.file] = path
    # Location's own form (file, file:line or file:line:col), without making one per item.
    if loc.line <= 0:
        return path
    return f"{path}:{loc.line}" if loc.col <= 0 else f"{path}:{loc.line}:{loc.col}"


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def task_text(task: ir.Task) -> str:
    """``task.json``: the task without its items, demos, data source or templates."""
    record = {
        "name": task.name,
        "description": task.description,
        "instruction": task.instruction,
        "inputs": [
            {"name": f.name, "type": f.type, "label": f.label, "description": f.description}
            for f in task.inputs
        ],
        "outputs": [
            {
                "name": o.name,
                "type": o.type.name,
                "description": o.description,
                "choices": list(o.choices),
                "aliases": [list(a) for a in o.aliases],
                "choices_from": o.choices_from,
                # Only where set, so that builds without text answers stay as they were.
                **(
                    {"answer_with": o.answer_with, "option_chars": o.option_chars}
                    if o.answer_with != "letter"
                    else {}
                ),
            }
            for o in task.outputs
        ],
        "answer_format": {
            "source": task.answer_format.source,
            "segments": [
                {"field": s.field} if isinstance(s, ir.Placeholder) else {"text": s.text}
                for s in task.answer_format.segments
            ],
        },
        "strategy": {
            "kind": task.strategy.kind,
            "batch_size": task.strategy.batch_size,
            "selection": {
                "method": task.strategy.selection.method,
                "seed": task.strategy.selection.seed,
                "target_position": task.strategy.selection.target_position,
                "model": task.strategy.selection.model,
            },
        },
        "model": {
            "name": task.model.name,
            "temperature": task.model.temperature,
            "max_tokens": task.model.max_tokens,
            "params": dict(task.model.params),
            "provider": task.model.provider,
            "price": None
            if task.model.price is None
            else {
                "input": format(task.model.price.input, "f"),
                "output": format(task.model.price.output, "f"),
            },
            "max_tokens_field": task.model.max_tokens_field,
        },
        "run": {"repair": {"max_attempts": task.run.repair_max_attempts}},
        "markers": {
            "question": task.markers.question,
            "answer": task.markers.answer,
            "inputs": task.markers.inputs,
        },
        "demos_as": task.demos_as,
        "spec": {"path": Path(task.spec.path).name, "sha256": task.spec.sha256},
    }
    return document(record)


def item_line(task: ir.Task, it: ir.Item, paths: dict[str, str] | None = None) -> str:
    """One line of ``items.jsonl`` (with its newline); ``paths`` caches relative file paths
    between calls."""
    try:
        question = markers.question_text(task.inputs, it.inputs)
    except KeyError:
        question = ""
    # The item's mappings as they are: dumps writes any mapping, and tuples as lists.
    record = {
        "gold": it.gold,
        "id": it.id,
        "index": it.index,
        "inputs": it.inputs,
        "location": _where(it.location, task.spec_dir, paths),
        "options": it.options,
        "question": question,
    }
    return dumps(record) + "\n"


def item_lines(task: ir.Task) -> Iterator[str]:
    """``items.jsonl``, one line (with its newline) per item, in data order."""
    paths: dict[str, str] = {}
    for it in task.items:
        yield item_line(task, it, paths)


def items_text(task: ir.Task) -> str:
    """``items.jsonl`` as one string."""
    return "".join(item_lines(task))


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def _location(text: object) -> Location:
    """An item's ``location`` as written (``file:line:col``, ``file:line`` or ``file``)."""
    if not isinstance(text, str) or not text:
        return ir.NOWHERE
    parts = text.rsplit(":", 2)
    try:
        if len(parts) == 3:
            return Location(parts[0], int(parts[1]), int(parts[2]))
        if len(parts) == 2:
            return Location(parts[0], int(parts[1]))
    except ValueError:
        pass
    return Location(text)


def read_task(build_dir: str | Path) -> ir.Task:
    """The task of a build folder, from its ``task.json`` and ``items.jsonl``, each checked
    against the sha256 the manifest lists for it.

    Raises:
        UsageError: Not a build of this format (see
            :func:`promptc.build.manifest.read_manifest`), a task file missing
            (``not-a-build``) or changed after building (``build-modified``), or malformed
            (``bad-task-file``, at its file and line).
    """
    build = Path(build_dir)
    check_hashes(build, read_manifest(build), (TASK_FILE, ITEMS_FILE))
    path = build / TASK_FILE
    try:
        task = _task(json.loads(read_text(path)), build)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise _bad(Location(str(path)), TASK_FILE, e) from None
    items_path = build / ITEMS_FILE
    by_name = {o.name: o for o in task.outputs}
    try:
        items = tuple(
            _item(text, by_name, Location(str(items_path), lineno, 1))
            for lineno, text in read_lines(items_path)
        )
    except OSError as e:
        raise _bad(Location(str(items_path)), ITEMS_FILE, e) from None
    return replace(task, items=items)


def _bad(where: Location, name: str, e: Exception) -> UsageError:
    return build_error("bad-task-file", where, name=name, problem=f"{type(e).__name__}: {e}")


def _item(text: str, by_name: Mapping[str, ir.OutputField], where: Location) -> ir.Item:
    """One line of ``items.jsonl`` read back.

    Raises:
        UsageError: ``bad-task-file``, at the line.
    """
    try:
        rec = json.loads(text)
        return ir.Item(
            id=str(rec["id"]),
            index=int(rec["index"]),
            inputs={str(k): str(v) for k, v in rec["inputs"].items()},
            location=_location(rec.get("location")),
            gold={
                str(k): _gold(by_name.get(str(k)), v) for k, v in (rec.get("gold") or {}).items()
            },
            options={
                str(k): tuple(str(x) for x in v) for k, v in (rec.get("options") or {}).items()
            },
        )
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as e:
        raise _bad(where, ITEMS_FILE, e) from None


def _gold(output: ir.OutputField | None, value: Any) -> ir.Value:
    """A gold value read back with its output's type (numbers are exact decimals)."""
    return str(value) if output is None else output.type.coerce(output, value)


def _task(data: Mapping[str, Any], build: Path) -> ir.Task:
    segments: list[ir.Segment] = []
    for s in data["answer_format"]["segments"]:
        segments.append(ir.Placeholder(str(s["field"])) if "field" in s else ir.Literal_(s["text"]))
    strategy = data["strategy"]
    sel = strategy["selection"]
    model = data["model"]
    spec = data["spec"]
    return ir.Task(
        name=str(data["name"]),
        description=str(data["description"]),
        instruction=str(data["instruction"]),
        inputs=tuple(
            ir.InputField(
                name=f["name"], type=f["type"], label=f["label"], description=f["description"]
            )
            for f in data["inputs"]
        ),
        outputs=tuple(
            ir.OutputField(
                name=o["name"],
                type=values.value_type(o["type"]),
                description=o["description"],
                choices=tuple(o["choices"]),
                aliases=tuple((str(a), str(b)) for a, b in o["aliases"]),
                choices_from=str(o.get("choices_from", "")),
                answer_with=_answer_with(o.get("answer_with", "letter")),
                option_chars=int(o.get("option_chars", 0)),
            )
            for o in data["outputs"]
        ),
        answer_format=ir.AnswerFormat(
            source=str(data["answer_format"]["source"]), segments=tuple(segments)
        ),
        demos=(),
        data=None,
        items=(),
        strategy=ir.StrategySpec(
            kind=strategies.strategy(strategy["kind"]),
            batch_size=int(strategy["batch_size"]),
            selection=ir.Selection(
                method=sel["method"],
                seed=int(sel["seed"]),
                target_position=int(sel["target_position"]),
                model=sel["model"],
            ),
        ),
        model=ir.ModelConfig(
            name=str(model["name"]),
            temperature=model["temperature"],
            max_tokens=model["max_tokens"],
            params=dict(model["params"]),
            provider=model.get("provider"),
            price=None
            if not model.get("price")
            else ir.Price(Decimal(model["price"]["input"]), Decimal(model["price"]["output"])),
            max_tokens_field=model.get("max_tokens_field"),
        ),
        templates=(),
        spec=ir.SourceFile(str(spec["path"]), str(spec["sha256"])),
        spec_dir=str(build),
        markers=ir.Markers(
            question=str((data.get("markers") or {}).get("question", "Q")),
            answer=str((data.get("markers") or {}).get("answer", "A")),
            inputs=(data.get("markers") or {}).get("inputs", "together"),
        ),
        demos_as=data.get("demos_as", "system"),
        run=ir.RunConfig(
            repair_max_attempts=int(
                (data.get("run") or {}).get("repair", {}).get("max_attempts", 2)
            )
        ),
    )


def _answer_with(value: object) -> ir.AnswerWith:
    """``answer_with`` as task.json holds it (``letter`` when absent or unknown)."""
    for known in ir.ANSWER_WITH:
        if value == known:
            return known
    return "letter"
