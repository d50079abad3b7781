"""The variables a template sees (documented in ``docs/templates.md``): the task, its inputs,
outputs, answer format, demos, the request's items and the output markers.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

from promptc import ir, markers
from promptc.select.batches import batch_size
from promptc.spec.answer_format import write_answer
from promptc.strategies import Strategy

#: Variables every template receives (see docs/templates.md).
CONTEXT_VARIABLES: frozenset[str] = frozenset(
    {
        "task",
        "kind",
        "batch_size",
        "inputs",
        "outputs",
        "answer_format",
        "demos",
        "items",
        "markers",
    }
)


def context_variables(kind: Strategy) -> frozenset[str]:
    """The names a template of this strategy may use: also ``item`` where a request holds
    exactly one item (``single``, ``few-shot``)."""
    return CONTEXT_VARIABLES | {"item"} if kind.one_item else CONTEXT_VARIABLES


# ---------------------------------------------------------------- the context templates see


def _answer_format_context(task: ir.Task) -> dict[str, object]:
    by_name = {o.name: o for o in task.outputs}
    form = []
    fields: list[dict[str, object]] = []
    for seg in task.answer_format.segments:
        if isinstance(seg, ir.Placeholder):
            form.append(f"<{seg.field}>")
            o = by_name[seg.field]
            meaning = o.type.meaning(o)
            fields.append(
                {
                    "name": o.name,
                    "type": str(o.type),
                    "meaning": meaning,
                    "text": f"<{o.name}> is {meaning}",
                }
            )
        else:
            form.append(seg.text)
    return {
        "text": task.answer_format.source,
        "form": "".join(form),
        "fields": fields,
        "types": [f"{f['name']}: {f['meaning']}" for f in fields],
        "description": " and ".join(str(f["text"]) for f in fields),
    }


def _demo_context(task: ir.Task) -> list[dict[str, object]]:
    out = []
    by_name = {o.name: o for o in task.outputs}
    for i, d in enumerate(task.demos, 1):
        out.append(
            {
                "index": i,
                "fields": dict(d.inputs),
                "outputs": {
                    k: by_name[k].type.write(by_name[k], v)
                    for k, v in d.outputs.items()
                    if k in by_name
                },
                "question": markers.question_text(task.inputs, d.inputs),
                "answer": write_answer(task.answer_format, task.outputs, d.outputs),
            }
        )
    return out


def _ref(prefix: str) -> Callable[[object], str]:
    def ref(index: object) -> str:
        return f"{prefix}{markers.INDEX_OPEN}{index}{markers.INDEX_CLOSE}"

    return ref


def _markers(task: ir.Task) -> dict[str, object]:
    """The ``markers`` variable: the task's markers (``markers:`` in the spec) and helpers."""
    m = task.markers
    # With indexed inputs a question is referred to by its first input's marker (Premise[1]).
    q_prefix = markers.field_label(task.inputs[0]) if m.inputs == "indexed" else m.question
    question = functools.partial(markers.marker, q_prefix)
    answer = functools.partial(markers.marker, m.answer)

    def block(entry: Mapping[str, object], index: int) -> str:
        """An item's (or demo's) inputs as a batch shows them: ``Q[i]: question``, or one
        ``Label[i]: value`` line per input with indexed inputs."""
        fields = entry["fields"]
        assert isinstance(fields, Mapping)
        return markers.question_block(task.inputs, fields, index, m)

    prefixes = markers.question_prefixes(task.inputs, m)

    def input_markers(index: int | str) -> list[str]:
        """The markers of a question's lines: ``["Q[i]:"]``, or with indexed inputs one per
        input (``["Premise[i]:", "Hypothesis[i]:"]``)."""
        return [markers.marker(p, index) for p in prefixes]

    return {
        "input_markers": input_markers,
        "question_ref": _ref(q_prefix),
        "answer_ref": _ref(m.answer),
        "question_prefix": q_prefix,
        "answer_prefix": m.answer,
        "separator": markers.MARKER_SEPARATOR,
        "question": question,
        "answer": answer,
        "question_marker": question,
        "answer_marker": answer,
        "block": block,
        "indexed": m.inputs == "indexed",
    }


def task_context(task: ir.Task, kind: Strategy | None = None) -> dict[str, object]:
    """The part of the template context shared by every request of a task."""
    kind = kind or task.strategy.kind
    return {
        "task": {
            "name": task.name,
            "description": task.description,
            "instruction": task.instruction,
        },
        "kind": kind.name,  # templates compare it with the names the docs list
        "batch_size": batch_size(task),
        "inputs": [
            {
                "name": f.name,
                "type": f.type,
                "label": markers.field_label(f),
                "description": f.description,
            }
            for f in task.inputs
        ],
        "outputs": [
            {
                "name": o.name,
                "type": str(o.type),
                "description": o.description,
                "choices": list(o.choices),
                "meaning": o.type.meaning(o),
            }
            for o in task.outputs
        ],
        "answer_format": _answer_format_context(task),
        # Demos sent as turns are not shown again in the system message.
        "demos": _demo_context(task) if task.demos_as == "system" or not kind.shows_demos else [],
        "markers": _markers(task),
    }
