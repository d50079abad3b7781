"""What a build folder keeps of its task, so that nothing after ``promptc build`` needs the spec.

``promptc build`` writes two files beside ``requests.jsonl`` (both covered by the manifest's
``files`` hashes):

``task.json``
    What parsing, repair and evaluation read of the task: its name, inputs, outputs and their
    types, the answer format, the strategy (kind, batch size) and the model parameters.
``items.jsonl``
    One item a line, in data order: ``id``, ``index``, ``inputs``, ``question`` (the text an
    Auto-Demo answer must repeat, :func:`promptc.markers.question_text`) and ``location`` (the
    data file's line, relative to the spec's folder).

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
from decimal import Decimal
from pathlib import Path
from typing import Any

from promptc import ir, markers, strategies, values
from promptc.errors import Location, UsageError

TASK_FILE = "task.json"
ITEMS_FILE = "items.jsonl"


def _dumps(value: object) -> str:
    return _ENCODE(value)


def _plain(value: object) -> object:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (tuple, list, set, frozenset)):
        return list(value)
    return str(value)


# One encoder for every line (json.dumps with options builds a new one per call).
_ENCODE = json.JSONEncoder(sort_keys=True, ensure_ascii=False, default=_plain).encode
#: A string as _ENCODE writes it (ensure_ascii off).
_string = json.encoder.encode_basestring


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
# Writing (called by promptc.build.plan)
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
                "type": o.type,
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
    return json.dumps(record, sort_keys=True, ensure_ascii=False, indent=2, default=_plain) + "\n"


def item_line(task: ir.Task, it: ir.Item, paths: dict[str, str] | None = None) -> str:
    """One line of ``items.jsonl`` (with its newline); ``paths`` caches relative file paths
    between calls."""
    try:
        question = markers.question_text(task.inputs, it.inputs)
    except KeyError:
        question = ""
    # What _dumps writes for the line's object, with its keys in sorted order by hand: the
    # line is written for every item of a build (about a fifth of the time this saves).
    return (
        '{"gold": '
        + (_dumps(dict(it.gold)) if it.gold else "{}")
        + ', "id": '
        + _string(it.id)
        + ', "index": '
        + str(int(it.index))
        + ', "inputs": '
        + _dumps(dict(it.inputs))
        + ', "location": '
        + _string(_where(it.location, task.spec_dir, paths))
        + ', "options": '
        + (_dumps({k: list(v) for k, v in it.options.items()}) if it.options else "{}")
        + ', "question": '
        + _string(question)
        + "}\n"
    )


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


def _location(text: object, build: Path) -> Location:
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
    """The task of a build folder, from its ``task.json`` and ``items.jsonl``.

    Raises:
        UsageError: A file is missing (``no-task-file``: a build made by an older promptc) or
            malformed (``bad-task-file``, at its file and line).
    """
    build = Path(build_dir)
    path = build / TASK_FILE
    if not path.is_file():
        raise UsageError(
            f"{str(build)!r} has no {TASK_FILE} (built by an older promptc)",
            location=Location(str(path)),
            hint="rebuild it with promptc build SPEC -o DIR",
            code="no-task-file",
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        task = _task(data, build)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise UsageError(
            f"cannot read {TASK_FILE}: {type(e).__name__}: {e}",
            location=Location(str(path)),
            hint="rebuild the build folder",
            code="bad-task-file",
        ) from None
    items: list[ir.Item] = []
    items_path = build / ITEMS_FILE
    by_name = {o.name: o for o in task.outputs}
    try:
        with items_path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    items.append(
                        ir.Item(
                            id=str(rec["id"]),
                            index=int(rec["index"]),
                            inputs={str(k): str(v) for k, v in rec["inputs"].items()},
                            location=_location(rec.get("location"), build),
                            gold={
                                str(k): _gold(by_name.get(str(k)), v)
                                for k, v in (rec.get("gold") or {}).items()
                            },
                            options={
                                str(k): tuple(str(x) for x in v)
                                for k, v in (rec.get("options") or {}).items()
                            },
                        )
                    )
                except (ValueError, KeyError, TypeError, AttributeError) as e:
                    raise UsageError(
                        f"not an item line: {type(e).__name__}: {e}",
                        location=Location(str(items_path), lineno, 1),
                        hint="rebuild the build folder",
                        code="bad-task-file",
                    ) from None
    except OSError:
        raise UsageError(
            f"{str(build)!r} has no readable {ITEMS_FILE}",
            location=Location(str(items_path)),
            hint="rebuild it with promptc build SPEC -o DIR",
            code="no-task-file",
        ) from None
    from dataclasses import replace

    return replace(task, items=tuple(items))


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
