"""What a build's ``task.json`` may hold: the bounds and checks ``promptc check`` holds a spec to.

A build folder is input promptc did not necessarily write (docs/limits.md): ``task.json``
edited by hand, its sha256 written into ``manifest.json`` beside it, passes the hash check.
Parsing builds its readers from the task (a grammar spelling every choice, a scanner for
every marker), so a task no spec could give (100,000 choices, a marker of 5,000,000
characters, a placeholder naming no output) would take minutes and gigabytes, or fail deep
inside a reader. :func:`document_problem` and :func:`task_problem` say why a task read back is
not one a spec could give; :func:`promptc.build.task_file.read_task` refuses it
(``bad-task-file``).

Each rule is the spec's own, from where the spec's checks read it: the loader's bounds
(:mod:`promptc.limits`), the schema's (read from the shipped schema), the validator's checks
of names, choices and markers (:mod:`promptc.text`, :mod:`promptc.markers`) and of the answer
format (:mod:`promptc.spec.answer_format`). None of them loads the spec front end (YAML,
jsonschema): reading a build stays light.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

from promptc import ir
from promptc.errors import GrammarError
from promptc.limits import (
    MAX_BATCH_SIZE,
    MAX_FIELDS,
    MAX_MESSAGE_CHARS,
    MAX_SPEC_CHARS,
    MAX_SPEC_DEPTH,
    MAX_SPEC_VALUES,
)
from promptc.markers import marker_clash, marker_problem, question_prefixes
from promptc.resources import read_schema
from promptc.spec.answer_format import parse_answer_format
from promptc.text import INVISIBLE, breaks_line, unnameable


@functools.cache
def _schema_bounds() -> dict[str, int]:
    """The spec schema's bounds on what parsing reads of a task."""
    defs = json.loads(read_schema())["$defs"]
    output = defs["output"]["properties"]
    return {
        "name": defs["spec"]["properties"]["name"]["maxLength"],
        "choices": output["choices"]["maxItems"],
        "aliases": output["aliases"]["maxProperties"],
        "rounds": defs["strategy"]["properties"]["vote"]["properties"]["rounds"]["maximum"],
        "repair": defs["run"]["properties"]["repair"]["properties"]["max_attempts"]["maximum"],
    }


def document_problem(data: object) -> str | None:
    """Why ``task.json``'s JSON holds more than a spec may (its values, their characters, their
    nesting), or ``None``; walked without recursion."""
    values = chars = 0
    stack: list[tuple[object, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        values += 1
        if depth > MAX_SPEC_DEPTH:
            return f"it nests deeper than {MAX_SPEC_DEPTH} levels, as no spec may"
        if isinstance(value, str):
            chars += len(value)
        elif isinstance(value, dict):
            chars += sum(len(k) for k in value)
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
        if values > MAX_SPEC_VALUES:
            return f"it holds more than {MAX_SPEC_VALUES:,} values, as no spec may"
        if chars > MAX_SPEC_CHARS:
            return f"its values hold more than {MAX_SPEC_CHARS:,} characters, as no spec may"
    return None


def task_problem(task: ir.Task) -> str | None:
    """The first reason ``task`` is not one a valid spec compiles to, or ``None``."""
    return next(_problems(task), None)


def _problems(task: ir.Task) -> Iterator[str]:
    bounds = _schema_bounds()
    if len(task.name) > bounds["name"]:
        yield f"name holds {len(task.name):,} characters; expected at most {bounds['name']}"
    if breaks_line(task.name):
        yield "name holds a line break or a control character; expected a name on one line"
    for key, fields in (("inputs", task.inputs), ("outputs", task.outputs)):
        if not 1 <= len(fields) <= MAX_FIELDS:
            yield f"{len(fields)} {key}; expected 1 to {MAX_FIELDS}"
    names = [f.name for f in task.inputs] + [o.name for o in task.outputs]
    if len(set(names)) < len(names):
        yield "two inputs or outputs share a name"
    options = {f.name for f in task.inputs if f.type == "options"}
    for output in task.outputs:
        yield from _output_problems(output, bounds)
        if output.choices_from and output.choices_from not in options:
            yield f"outputs.{output.name}.choices_from names no options input"
    yield from _marker_problems(task)
    yield from _format_problems(task)
    strategy = task.strategy
    if not 1 <= strategy.batch_size <= MAX_BATCH_SIZE:
        yield f"strategy.batch_size {strategy.batch_size}; expected 1 to {MAX_BATCH_SIZE:,}"
    if strategy.vote is not None and not 1 <= strategy.vote.rounds <= bounds["rounds"]:
        yield f"strategy.vote.rounds {strategy.vote.rounds}; expected 1 to {bounds['rounds']}"
    if not 0 <= task.run.repair_max_attempts <= bounds["repair"]:
        yield (
            f"run.repair.max_attempts {task.run.repair_max_attempts}; expected 0 to "
            f"{bounds['repair']}"
        )


def _output_problems(output: ir.OutputField, bounds: dict[str, int]) -> Iterator[str]:
    where = f"outputs.{output.name}"
    for key, listed in (("choices", output.choices), ("aliases", output.aliases)):
        if len(listed) > bounds[key]:
            yield f"{where}.{key} holds {len(listed):,}; expected at most {bounds[key]:,}"
    seen: set[str] = set()
    for word in (*output.choices, *(alias for alias, _ in output.aliases)):
        if not word or unnameable(word):
            yield f"{where} has the choice or alias {word[:60]!r}, which no answer can name"
        elif word.casefold() in seen:
            yield f"{where} has the choice or alias {word[:60]!r} twice"
        seen.add(word.casefold())
    if output.type.takes_choices and not output.choices_from and not output.choices:
        yield f"{where} is an enum without choices"
    if not output.type.takes_choices and (output.choices or output.aliases):
        yield f"{where} has choices, but its type {output.type} takes none"
    choices = {c.casefold() for c in output.choices}
    for alias, target in output.aliases:
        if target.casefold() not in choices:
            yield f"{where}.aliases maps {alias[:60]!r} to {target[:60]!r}, which is no choice"
    if not 0 <= output.option_chars <= MAX_MESSAGE_CHARS:
        yield f"{where}.option_chars {output.option_chars}; expected 0 to {MAX_MESSAGE_CHARS:,}"


def _marker_problems(task: ir.Task) -> Iterator[str]:
    m = task.markers
    named = [*question_prefixes(task.inputs, m), m.answer]
    for prefix in named:
        why = marker_problem(prefix) if prefix else "is empty"
        if why is not None:
            yield f"the marker prefix {prefix[:60]!r} {why}"
    for k, a in enumerate(named):
        for b in named[k + 1 :]:
            why = marker_clash(a, b)
            if why is not None:
                yield f"the markers {a[:60]!r} and {b[:60]!r} {why}"


def _format_problems(task: ir.Task) -> Iterator[str]:
    """The answer format's segments are its source's, and place every output once, with
    literal text between any two."""
    fmt = task.answer_format
    try:
        parsed = parse_answer_format(fmt.source)
    except GrammarError as e:
        yield f"answer_format: {e.message}"
        return
    if _shape(parsed.segments) != _shape(fmt.segments):
        yield "answer_format's segments are not those of its source"
    hidden = next((ch for ch in fmt.source if ch in INVISIBLE), None)
    if hidden is not None:
        yield f"answer_format holds an invisible character (U+{ord(hidden):04X})"
    fields = [s.field for s in fmt.segments if isinstance(s, ir.Placeholder)]
    if sorted(fields) != sorted(o.name for o in task.outputs):
        yield "answer_format does not place every output exactly once"
    for a, b in zip(fmt.segments, fmt.segments[1:], strict=False):
        if isinstance(a, ir.Placeholder) and isinstance(b, ir.Placeholder):
            yield f"answer_format's {{{a.field}}} and {{{b.field}}} have no text between them"


def _shape(segments: tuple[Any, ...]) -> list[tuple[str, str]]:
    """Segments without their locations: what a placeholder names, what a literal says."""
    return [
        ("field", s.field) if isinstance(s, ir.Placeholder) else ("text", s.text) for s in segments
    ]
