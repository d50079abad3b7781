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

import dataclasses
import functools
import json
import os
import types
import typing
from collections import abc
from collections.abc import Iterator, Mapping
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from promptc import ir, markers, strategies, values
from promptc.build.files import build_error, document, dumps, read_lines, read_text
from promptc.build.manifest import check_hashes, read_manifest
from promptc.build.task_checks import document_problem, task_problem
from promptc.errors import Location, UsageError
from promptc.limits import MAX_SPEC_DEPTH
from promptc.text import recorded_path

TASK_FILE = "task.json"
ITEMS_FILE = "items.jsonl"


def _where(loc: Location, spec_dir: str, paths: dict[str, str]) -> str:
    """``file:line:col`` with the file relative to the spec's folder (``paths`` caches the
    relative path of each file: every item of a data file has the same)."""
    if loc.file in ("", ir.NOWHERE.file):
        return ""
    path = paths.get(loc.file)
    if path is None:
        # Relative to the spec's folder whatever the current folder was, and whatever link
        # the spec was reached through (spec_dir is resolved; the file's folder is resolved
        # too, the file's own name kept): builds are byte-identical.
        folder, name = os.path.split(loc.file)
        path = paths[loc.file] = recorded_path(
            os.path.join(os.path.realpath(folder), name), spec_dir
        )
    # Location's own form (file, file:line or file:line:col), without making one per item.
    if loc.line <= 0:
        return path
    return f"{path}:{loc.line}" if loc.col <= 0 else f"{path}:{loc.line}:{loc.col}"


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _fields(node: object, *names: str) -> dict[str, Any]:
    """Some fields of an IR node, by their IR names: task.json's keys are those names, so
    that its reader makes the node again from them."""
    return {name: getattr(node, name) for name in names}


def task_text(task: ir.Task) -> str:
    """``task.json``: the task without its items, demos, data source or templates."""
    strategy, model = task.strategy, task.model
    record = {
        **_fields(task, "name", "description", "instruction", "demos_as"),
        "inputs": [_fields(f, "name", "type", "label", "description") for f in task.inputs],
        "outputs": [
            {
                **_fields(o, "name", "description", "choices", "aliases", "choices_from"),
                "type": o.type.name,
                # Only where set, so that builds without text answers stay as they were.
                **(_fields(o, "answer_with", "option_chars") if o.answer_with != "letter" else {}),
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
            **_fields(strategy, "kind", "batch_size"),
            "selection": _fields(strategy.selection, "method", "seed", "target_position", "model"),
            # Only where set, so that builds without votes stay as they were.
            **({"vote": _fields(strategy.vote, "rounds", "early_stop")} if strategy.vote else {}),
        },
        "model": {
            **_fields(model, "name", "temperature", "max_tokens", "params", "provider"),
            **_fields(model, "max_tokens_field"),
            **(_fields(model, "max_tokens_per_item") if model.max_tokens_per_item else {}),
            # Exact decimals, written as text (files.json_default).
            "price": None if model.price is None else _fields(model.price, "input", "output"),
        },
        "run": {"repair": {"max_attempts": task.run.repair_max_attempts}},
        "markers": _fields(task.markers, "question", "answer", "inputs"),
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
        "location": _where(it.location, task.spec_dir, {} if paths is None else paths),
        "options": it.options,
        "question": question,
    }
    return dumps(record) + "\n"


def item_lines(task: ir.Task) -> Iterator[str]:
    """``items.jsonl``, one line (with its newline) per item, in data order."""
    paths: dict[str, str] = {}
    for it in task.items:
        yield item_line(task, it, paths)


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
            or holding a task no spec could give (``bad-task-file``, at its file and line:
            :mod:`promptc.build.task_checks`).
    """
    build = Path(build_dir)
    check_hashes(build, read_manifest(build), (TASK_FILE, ITEMS_FILE))
    path = build / TASK_FILE
    try:
        data = json.loads(read_text(path))
        problem = document_problem(data)
        if problem is None:
            task = _task(data, build)
            _typed(task, ir.Task, "task")
            problem = task_problem(task)
    except RecursionError:
        problem = f"it nests deeper than {MAX_SPEC_DEPTH} levels, as no spec may"
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise _bad(Location(str(path)), TASK_FILE, e) from None
    if problem is not None:  # a hand-edited task no spec could give: parse it not
        raise build_error("bad-task-file", Location(str(path)), name=TASK_FILE, problem=problem)
    items_path = build / ITEMS_FILE
    by_name = {o.name: o for o in task.outputs}
    try:
        items = tuple(
            _item(text, by_name, items_path, lineno) for lineno, text in read_lines(items_path)
        )
    except OSError as e:
        raise _bad(Location(str(items_path)), ITEMS_FILE, e) from None
    seen: set[str] = set()
    for it in items:  # one item per id: a result is credited to one item
        if it.id in seen:
            raise build_error(
                "bad-task-file",
                Location(str(items_path)),
                name=ITEMS_FILE,
                problem=f"item id {it.id!r} appears twice",
            )
        seen.add(it.id)
    return replace(task, items=items)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _typed(value: Any, hint: Any, where: str) -> None:
    """Checks that ``value`` is of the IR's annotation ``hint``, all the way down.

    ``task.json`` is read back into the IR's dataclasses, which check nothing: a file edited
    by hand (its hash in the manifest updated, as anyone can) could carry a number where a
    marker's text belongs, and fail later in a reader with a ``TypeError`` of its own.

    Raises:
        TypeError: Naming the first value, by its path (``task.markers.answer``), that is not.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object:
        return
    if origin is typing.Literal:
        ok = value in args
    elif origin is typing.Union or origin is types.UnionType:
        ok = any(_is(value, a, where) for a in args)
    elif origin is tuple:
        ok = isinstance(value, tuple)
        if ok and len(args) == 2 and args[1] is Ellipsis:
            for k, v in enumerate(value):
                _typed(v, args[0], f"{where}[{k}]")
        elif ok:
            ok = len(value) == len(args)
            for k, (v, a) in enumerate(zip(value, args) if ok else ()):
                _typed(v, a, f"{where}[{k}]")
    elif origin in (abc.Mapping, dict):
        ok = isinstance(value, abc.Mapping)
        for k, v in value.items() if ok else ():
            _typed(k, args[0], f"{where} key")
            _typed(v, args[1], f"{where}[{k!r}]")
    elif origin is abc.Sequence:
        ok = isinstance(value, (tuple, list))
        for k, v in enumerate(value) if ok else ():
            _typed(v, args[0], f"{where}[{k}]")
    elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
        ok = isinstance(value, hint)
        for f in dataclasses.fields(hint) if ok else ():
            _typed(getattr(value, f.name), _hints(hint)[f.name], f"{where}.{f.name}")
    elif hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = value is None if hint is type(None) else isinstance(value, hint)
    if not ok:
        raise TypeError(f"{where} is {value!r:.60}, not {getattr(hint, '__name__', hint)}")


def _is(value: Any, hint: Any, where: str) -> bool:
    try:
        _typed(value, hint, where)
    except TypeError:
        return False
    return True


def _bad(where: Location, name: str, e: Exception) -> UsageError:
    return build_error("bad-task-file", where, name=name, problem=f"{type(e).__name__}: {e}")


def _item(text: str, by_name: Mapping[str, ir.OutputField], path: Path, lineno: int) -> ir.Item:
    """One line (``lineno``) of ``items.jsonl`` read back.

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
        raise _bad(Location(str(path), lineno, 1), ITEMS_FILE, e) from None


def _gold(output: ir.OutputField | None, value: Any) -> ir.Value:
    """A gold value read back with its output's type (numbers are exact decimals)."""
    return str(value) if output is None else output.type.coerce(output, value)


def _task(data: Mapping[str, Any], build: Path) -> ir.Task:
    """The task of ``task.json``'s data, as :func:`task_text` wrote it."""
    strategy, model, price = data["strategy"], data["model"], data["model"]["price"]
    return ir.Task(
        **{key: data[key] for key in ("name", "description", "instruction", "demos_as")},
        inputs=tuple(ir.InputField(**f) for f in data["inputs"]),
        outputs=tuple(
            ir.OutputField(
                **{
                    **o,
                    "type": values.value_type(o["type"]),
                    "choices": tuple(o["choices"]),
                    "aliases": tuple(tuple(a) for a in o["aliases"]),
                }
            )
            for o in data["outputs"]
        ),
        answer_format=ir.AnswerFormat(
            source=data["answer_format"]["source"],
            segments=tuple(
                ir.Placeholder(s["field"]) if "field" in s else ir.Literal_(s["text"])
                for s in data["answer_format"]["segments"]
            ),
        ),
        demos=(),
        data=None,
        items=(),
        strategy=ir.StrategySpec(
            kind=strategies.strategy(strategy["kind"]),
            batch_size=strategy["batch_size"],
            selection=ir.Selection(**strategy["selection"]),
            vote=ir.Vote(**strategy["vote"]) if "vote" in strategy else None,
        ),
        model=ir.ModelConfig(
            **{
                **model,
                "price": None
                if price is None
                else ir.Price(Decimal(price["input"]), Decimal(price["output"])),
            }
        ),
        templates=(),
        spec=ir.SourceFile(data["spec"]["path"], data["spec"]["sha256"]),
        spec_dir=str(build),
        markers=ir.Markers(**data["markers"]),
        run=ir.RunConfig(repair_max_attempts=data["run"]["repair"]["max_attempts"]),
        from_build=True,
    )
