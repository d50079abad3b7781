"""Validate a loaded spec: the JSON Schema, then semantic checks; report every problem.

``validate(doc, collector)`` adds one :class:`~promptc.errors.ValidationError` per problem to the
collector, each at the file:line:col of the offending key or value, with its key path and a
message from a table (so that tests can check every message word for word): the schema's
violations from :data:`promptc.spec.schema_errors.MESSAGES`, the semantic checks' from
:data:`MESSAGES`.

The schema (``compiler/schema/spec.schema.json``, shipped as package data) checks shapes and
types (:mod:`promptc.spec.schema_errors`); the semantic checks here check what a schema cannot: that demos match the declared fields
and types, that ``answer_format`` names the outputs, that enum aliases point at choices, that
template files exist inside the spec's folder, and so on. Checks of the data file are
:mod:`promptc.spec.data`'s; checks of template variables are the render stage's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

from promptc.errors import (
    ErrorCollector,
    GrammarError,
    ValidationError,
    did_you_mean,
)
from promptc.ir import AnswerWith, OutputField, Placeholder
from promptc.limits import MAX_BATCH_SIZE, MAX_FIELDS, MAX_MESSAGE_CHARS
from promptc.markers import OPTIONS_LABEL, marker_clash, marker_problem
from promptc.spec.answer_format import parse_answer_format
from promptc.spec.load import COMMAND_LINE, KeyPath, SpecDocument, coded_error, confined
from promptc.spec.schema_errors import check_schema, known_model_params
from promptc.strategies import DEFAULT as DEFAULT_STRATEGY
from promptc.strategies import Strategy, find_strategy
from promptc.text import (
    INVISIBLE,
    breaks_line,
    default_label,
    public_url,
    unnameable,
    url_problem,
)
from promptc.values import find_value_type, option_choices, resolve_option

MESSAGES: dict[str, str] = {
    "bad-url": "{url!r} is not a server's URL: {problem}",
    "too-many-fields": f"{{count}} {{what}} declared; expected at most {MAX_FIELDS}",
    "name-line-break": "name {name!r} holds a line break or a control character; expected a "
    "name on one line",
    "demos-too-large": "the demos hold {total:,} characters, more than one message may hold "
    "({limit:,})",
    "reserved-output": "output name {name!r} is a key of the JSON answer form (each entry's "
    "'index', Auto-Demo's repeated 'question'); expected another name",
    "model-and-embeddings": "strategy.selection has both 'model' (a local model) and "
    "'embeddings' (an endpoint); expected one of them",
    "bad-marker": "marker prefix {marker!r} {why}; expected text without brackets, colons, "
    "line breaks, white space at its ends or characters the parser reads as others",
    "marker-clash": "the markers {a!r} and {b!r} {why}; expected markers that the parser can "
    "tell apart",
    "choices-from": "choices_from {name!r} is not an options input; expected one of {names}",
    "choices-and-choices-from": "an enum output has choices or choices_from, not both",
    "answer-with": "answer_with applies to an enum output with choices_from; expected "
    "choices_from beside it, or no answer_with",
    "demo-option-answer": "demo value {value!r} for {field!r} is not {what} of this demo's "
    "{n} options{why}; expected {expected}",
    "demo-options": "demo value for options input {field!r} is not a list; expected a list "
    "of its options",
    "demo-list": "demo value for input {field!r} is a list; expected text (or declare the "
    "input with type: options)",
    "input-output-clash": "{name!r} is declared both as an input and as an output",
    "choices-not-enum": "choices only apply to enum outputs; this output is {type}",
    "aliases-not-enum": "aliases only apply to enum outputs; this output is {type}",
    "duplicate-choice": "duplicate choice {choice!r} (choices are compared case-insensitively)",
    "choice-space": "choice {choice!r} starts or ends with white space, which no answer can "
    "name (answers are read without it)",
    "choice-character": "{what} {choice!r} holds a control character or white space other than "
    "single spaces between words, which no answer can name",
    "alias-not-choice": "alias {alias!r} points to {target!r}, which is not one of the choices "
    "{choices}",
    "alias-is-choice": "alias {alias!r} is also a choice",
    "answer-format-required": "answer_format is required when there are several outputs",
    "invisible-in-format": "answer_format holds an invisible character (U+{code_point}), which "
    "the parser reads outputs without; expected visible text",
    "unknown-placeholder": "{{{field}}} in answer_format is not an output; expected one of "
    "{outputs}",
    "missing-placeholder": "output {field!r} does not appear in answer_format; expected a "
    "{{{field}}} placeholder",
    "repeated-placeholder": "{{{field}}} appears more than once in answer_format",
    "adjacent-placeholders": "{{{first}}} and {{{second}}} have no literal text between them, "
    "so answers could not be split",
    "demo-missing-field": "demo is missing field {field!r}",
    "demo-unknown-field": "demo field {field!r} is not an input or output",
    "demo-bad-value": "demo value for {type} output {field!r}: {problem}",
    "few-shot-no-demos": "strategy few-shot needs at least one demo",
    "demo-line-break": "demo value for output {field!r} holds a line break, but strategy "
    "{kind} writes each answer on one line: the prompt would show the model an answer its "
    "parser reads as broken",
    "batch-size-ignored": "batch size {size} has no effect on strategy {kind}, which sends one "
    "item per request",
    "target-position": "target_position {position} is outside a batch of {size}; expected "
    "{low}..{high}",
    "unknown-data-field": "data.fields maps {field!r}, which is not an input",
    "unknown-gold-output": "data.gold maps {field!r}, which is not an output; expected one of "
    "{outputs}",
    "template-absolute": "template path {path!r} is absolute; expected a path relative to the "
    "spec's folder",
    "template-escape": "template path {path!r} leaves the spec's folder",
    "cache-dir-absolute": "cache_dir {path!r} is absolute; expected a folder relative to the "
    "spec's folder",
    "cache-dir-escape": "cache_dir {path!r} leaves the spec's folder",
    "template-missing": "template file {path!r} not found",
    "template-not-file": "template path {path!r} is a folder; expected a template file",
    "path-nul": "path {path!r} contains a NUL character, which no file name can hold",
    "extra-known-param": "model.extra.{key} is a parameter promptc knows",
    "extra-body-field": "model.extra.{key} is a field promptc writes in every request itself",
    "model-n": "model.n {n} asks for {n} answers per request, but promptc keeps one answer per "
    "request: the others would be paid for and lost",
    "model-stream": "model.stream true asks for each answer in pieces, but promptc reads each "
    "answer whole",
    "budget-twice": "model.max_tokens_per_item and model.{other} both set the output budget; "
    "expected one of them",
    "vote-early-stop": "early_stop {early_stop} is more than the {rounds} rounds; expected "
    "2..{rounds}",
    "vote-ignored": "vote has no effect on strategy {kind}, which sends one item per request",
    "vote-batch-size": "rounds {rounds} is more than the batch_size {size}: each round asks "
    "every item at another of a batch's {size} positions; expected at most {size}",
}

HINTS: dict[str, str] = {
    "few-shot-no-demos": "add demos, or choose strategy kind single, batch or auto-demo",
    "demo-line-break": "write the value on one line, or choose strategy single or few-shot",
    "batch-size-ignored": "choose strategy batch or auto-demo",
    "vote-ignored": "choose strategy batch or auto-demo",
    "vote-batch-size": "a later round would ask the prompts of an earlier one again; lower "
    "strategy.vote.rounds, or raise strategy.batch_size",
    "budget-twice": "max_tokens_per_item fits each request's budget to its items",
    "model-n": "remove it; strategy.vote asks each item in several rounds and combines the answers",
    "model-stream": "remove it: promptc run reports progress request by request",
    "adjacent-placeholders": "put text such as ' | ' between them",
    "answer-format-required": 'e.g. "{reasoning} The answer is {answer}."',
}


#: A :class:`ValidationError` with the message of ``code`` from :data:`MESSAGES`.
error = partial(coded_error, ValidationError, MESSAGES, HINTS)


def _quote_all(words: Iterable[object]) -> str:
    return ", ".join(repr(w) for w in words)


def validate(doc: SpecDocument, collector: ErrorCollector) -> None:
    """Checks a loaded spec against the schema and the semantic rules.

    Args:
        doc: The loaded (and possibly overridden) spec.
        collector: Receives one error per problem; with ``fail_fast`` it raises at the first.
    """
    check_schema(doc, collector)
    _check_semantics(doc, collector)


# --- semantic checks ------------------------------------------------------------------------


def declared_outputs(doc: SpecDocument) -> dict[str, OutputField]:
    """The :class:`OutputField` of every output whose declaration has a valid shape, by name:
    its type reads what it declares beyond ``type`` and ``description``
    (:meth:`promptc.values.ValueType.declare`: an enum's choices and aliases)."""
    raw = doc.get(("outputs",))
    fields: dict[str, OutputField] = {}
    for name, decl in raw.items() if isinstance(raw, dict) else ():
        typ = find_value_type(decl.get("type")) if isinstance(decl, Mapping) else None
        if typ is None:
            continue
        description = decl.get("description")
        field = OutputField(
            name=name,
            type=typ,
            description=description if isinstance(description, str) else "",
            location=doc.key_location(("outputs", name)),
        )
        declared = typ.declare(field, decl)
        if declared is not None:
            fields[name] = declared
    return fields


def option_inputs(doc: SpecDocument) -> list[str]:
    """The inputs declared ``type: options``, in order."""
    raw = doc.get(("inputs",))
    return [
        name
        for name, decl in (raw.items() if isinstance(raw, dict) else ())
        if isinstance(decl, dict) and decl.get("type") == "options"
    ]


#: Keys an entry of the JSON answer form has besides the outputs (:mod:`promptc.grammar.json_schema`):
#: an output of that name would overwrite them, and the strategy may change on the command line.
RESERVED_OUTPUTS = ("index", "question")


def _check_semantics(doc: SpecDocument, c: ErrorCollector) -> None:
    raw_inputs = doc.get(("inputs",))
    raw_outputs = doc.get(("outputs",))
    name = doc.get(("name",))
    if isinstance(name, str) and breaks_line(name):
        where = doc.value_location(("name",))
        c.add(error("name-line-break", where, ("name",), name=name[:60]))
    many = False
    for key, raw in (("inputs", raw_inputs), ("outputs", raw_outputs)):
        if isinstance(raw, dict) and len(raw) > MAX_FIELDS:
            where = doc.key_location((key,))
            c.add(error("too-many-fields", where, (key,), what=key, count=len(raw)))
            many = True
    if many:  # the checks below compare fields pairwise: not on thousands of them
        return
    inputs = list(raw_inputs) if isinstance(raw_inputs, dict) else None
    output_names = list(raw_outputs) if isinstance(raw_outputs, dict) else None
    outputs = declared_outputs(doc)
    if isinstance(raw_outputs, dict):
        _check_outputs(doc, c, raw_outputs)
    for name in output_names or ():
        if name in RESERVED_OUTPUTS:
            where = doc.key_location(("outputs", name))
            c.add(error("reserved-output", where, ("outputs", name), name=name))
    if inputs is not None and output_names is not None:
        for name in output_names:
            if name in inputs:
                c.add(
                    error(
                        "input-output-clash",
                        doc.key_location(("outputs", name)),
                        ("outputs", name),
                        name=name,
                    )
                )
    _check_answer_format(doc, c, output_names)
    _check_demos(doc, c, inputs, output_names, outputs)
    _check_strategy(doc, c)
    _check_markers(doc, c)
    _check_choices_from(doc, c)
    _check_data_names(doc, c, "fields", inputs, "unknown-data-field")
    if output_names is not None:
        _check_data_names(
            doc, c, "gold", output_names, "unknown-gold-output", outputs=", ".join(output_names)
        )
    _check_templates(doc, c)
    _check_selection_paths(doc, c)
    _check_model(doc, c)


def _check_selection_paths(doc: SpecDocument, c: ErrorCollector) -> None:
    """The selection's folders are paths too: a NUL character would only fail deep inside the
    file system calls of the similarity stage. The embedding cache is written: a spec may
    name a folder inside its own only (the command line, any)."""
    for key in ("model", "cache_dir"):
        p: KeyPath = ("strategy", "selection", key)
        value = doc.get(p)
        if isinstance(value, str) and "\0" in value:
            c.add(error("path-nul", doc.value_location(p), p, path=value))
        elif key == "cache_dir" and isinstance(value, str) and value:
            where = doc.value_location(p)
            if where.file == COMMAND_LINE:
                continue
            target = confined(doc.folder_of(p), value)
            if isinstance(target, str):
                c.add(error(f"cache-dir-{target}", where, p, path=value))


def _check_outputs(doc: SpecDocument, c: ErrorCollector, raw_outputs: dict[str, Any]) -> None:
    for name, decl in raw_outputs.items():
        if not isinstance(decl, dict):
            continue
        p: KeyPath = ("outputs", name)
        typ = find_value_type(decl.get("type"))
        if typ is None:
            continue
        if not typ.takes_choices:
            for key, code in (("choices", "choices-not-enum"), ("aliases", "aliases-not-enum")):
                if key in decl:
                    c.add(error(code, doc.key_location(p + (key,)), p + (key,), type=typ))
            continue
        choices = decl.get("choices")
        if not isinstance(choices, list):
            continue
        seen: set[str] = set()
        names = [ch for ch in choices if isinstance(ch, str)]
        for i, ch in enumerate(choices):
            if isinstance(ch, str):
                cp = p + ("choices", i)
                if ch != ch.strip():  # answers are read stripped: none could name it
                    c.add(error("choice-space", doc.value_location(cp), cp, choice=ch))
                elif unnameable(ch):
                    c.add(
                        error(
                            "choice-character", doc.value_location(cp), cp, what="choice", choice=ch
                        )
                    )
                if ch.lower() in seen:
                    c.add(
                        error(
                            "duplicate-choice",
                            doc.value_location(p + ("choices", i)),
                            p + ("choices", i),
                            choice=ch,
                        )
                    )
                seen.add(ch.lower())
        aliases = decl.get("aliases")
        if not isinstance(aliases, dict):
            continue
        for alias, target in aliases.items():
            ap = p + ("aliases", alias)
            if alias != alias.strip() or unnameable(alias):
                c.add(
                    error("choice-character", doc.key_location(ap), ap, what="alias", choice=alias)
                )
            if alias.lower() in seen:
                c.add(error("alias-is-choice", doc.key_location(ap), ap, alias=alias))
            if isinstance(target, str) and target.lower() not in seen:
                c.add(
                    error(
                        "alias-not-choice",
                        doc.value_location(ap),
                        ap,
                        hint=did_you_mean(target, names),
                        alias=alias,
                        target=target,
                        choices=_quote_all(names),
                    )
                )


def _check_answer_format(
    doc: SpecDocument, c: ErrorCollector, output_names: list[str] | None
) -> None:
    p: KeyPath = ("answer_format",)
    source = doc.get(p)
    if source is None:
        if output_names is not None and len(output_names) > 1:
            c.add(error("answer-format-required", doc.key_location(("outputs",)), ("outputs",)))
        return
    if not isinstance(source, str) or not source:
        return  # the schema reported it
    try:
        fmt = parse_answer_format(source, doc.value_location(p), locate=doc.text_locator(p))
    except GrammarError as e:
        c.add(ValidationError(e.message, location=e.location, path=p, hint=e.hint, code=e.code))
        return
    hidden = next((ch for ch in source if ch in INVISIBLE), None)
    if hidden is not None:  # the parser reads outputs without them: a literal would never match
        c.add(
            error("invisible-in-format", doc.value_location(p), p, code_point=f"{ord(hidden):04X}")
        )
    if output_names is None:
        return
    seen: set[str] = set()
    previous: Placeholder | None = None
    for seg in fmt.segments:
        if not isinstance(seg, Placeholder):
            previous = None
            continue
        if seg.field not in output_names:
            c.add(
                error(
                    "unknown-placeholder",
                    seg.location,
                    p,
                    hint=did_you_mean(seg.field, output_names),
                    field=seg.field,
                    outputs=_quote_all(output_names),
                )
            )
        elif seg.field in seen:
            c.add(error("repeated-placeholder", seg.location, p, field=seg.field))
        if previous is not None:
            c.add(
                error(
                    "adjacent-placeholders", seg.location, p, first=previous.field, second=seg.field
                )
            )
        seen.add(seg.field)
        previous = seg
    for name in output_names:
        if name not in seen:
            c.add(error("missing-placeholder", doc.value_location(p), p, field=name))


def _check_demos(
    doc: SpecDocument,
    c: ErrorCollector,
    inputs: list[str] | None,
    output_names: list[str] | None,
    outputs: Mapping[str, OutputField],
) -> None:
    demos = doc.get(("demos",))
    if not isinstance(demos, list) or inputs is None or output_names is None:
        return
    # Aliases can repeat one long text in every demo: the demos a prompt shows are held to
    # what one message may hold, here at the spec rather than as the renderer's memory.
    total = sum(
        len(v) for d in demos if isinstance(d, dict) for v in d.values() if isinstance(v, str)
    )
    if total > MAX_MESSAGE_CHARS:
        where = doc.key_location(("demos",))
        c.add(error("demos-too-large", where, ("demos",), total=total, limit=MAX_MESSAGE_CHARS))
        return
    fields = inputs + output_names
    for i, demo in enumerate(demos):
        if not isinstance(demo, dict):
            continue
        p: KeyPath = ("demos", i)
        for name in fields:
            if name not in demo:
                c.add(error("demo-missing-field", doc.value_location(p), p, field=name))
        for key, value in demo.items():
            vp = p + (key,)
            if key not in fields:
                c.add(
                    error(
                        "demo-unknown-field",
                        doc.key_location(vp),
                        vp,
                        hint=did_you_mean(key, fields),
                        field=key,
                    )
                )
                continue
            raw_input = (doc.get(("inputs", key)) or {}) if key in inputs else None
            if isinstance(raw_input, dict):
                is_options = raw_input.get("type") == "options"
                if is_options != isinstance(value, list):
                    c.add(
                        error(
                            "demo-options" if is_options else "demo-list",
                            doc.value_location(vp),
                            vp,
                            field=key,
                        )
                    )
                continue
            field = outputs.get(key)
            # A list passes the schema (an options input's value is one): for an output it
            # is a bad value, which the type's coerce says.
            if field is None or not isinstance(value, (str, int, float, list)):
                continue
            if field.choices_from and not isinstance(value, list):
                _check_demo_option(doc, c, vp, field, value, demo.get(field.choices_from))
                continue
            try:
                field.type.coerce(field, value)
            except ValueError as e:
                c.add(
                    error(
                        "demo-bad-value",
                        doc.value_location(vp),
                        vp,
                        type=field.type,
                        field=key,
                        problem=str(e),
                    )
                )
                continue
            kind = strategy_of(doc)
            one_line = kind is not None and not kind.one_item
            if one_line and isinstance(value, str) and len(value.splitlines()) > 1:
                loc = doc.value_location(vp)
                c.add(error("demo-line-break", loc, vp, field=key, kind=kind))


def _check_demo_option(
    doc: SpecDocument,
    c: ErrorCollector,
    vp: KeyPath,
    field: OutputField,
    value: object,
    options: object,
) -> None:
    """A demo's answer to an enum with ``choices_from`` names one of the demo's own options:
    by letter, or (``answer_with: text | either``) by its text, in any case."""
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        return  # the options themselves are reported
    if not options or isinstance(value, bool):
        return
    listed = tuple(options)
    # A demo may always give the letter; with text answers, the text too.
    answer_with: AnswerWith = "either" if field.answer_with != "letter" else "letter"
    hits = resolve_option(answer_with, listed, str(value), exact=False)
    if len(hits) == 1:
        return
    what = "the letter of one" if answer_with == "letter" else "the letter or the text of one"
    why = f" (it names options {' and '.join(hits)})" if hits else ""
    choices = option_choices(answer_with, listed)
    c.add(
        error(
            "demo-option-answer",
            doc.value_location(vp),
            vp,
            value=str(value),
            field=vp[-1],
            what=what,
            n=len(listed),
            why=why,
            expected="one of " + ", ".join(repr(x) for x in choices),
        )
    )


def integer(value: object) -> int | None:
    """The integer a spec value means, or ``None`` if it is not one.

    An integral number means that integer: ``8.0`` is 8, as for the JSON Schema (whose
    ``integer`` type takes 8.0), so that what ``check`` accepts, lowering reads alike and
    requests carry the integer (``max_tokens: 10.0`` is sent as 10). Booleans are not integers.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def strategy_of(doc: SpecDocument) -> Strategy | None:
    """The spec's strategy (the default one without ``strategy.kind``), or ``None`` for a kind
    that names none (reported by the schema)."""
    return find_strategy(doc.get(("strategy", "kind"), DEFAULT_STRATEGY.name))


def batch_size_of(doc: SpecDocument) -> int | None:
    """The effective batch size: 1 for single and few-shot, else the spec's or 8."""
    kind = strategy_of(doc)
    if kind is not None and kind.one_item:
        return 1
    size = integer(doc.get(("strategy", "batch_size"), DEFAULT_BATCH_SIZE))
    return size if size is not None and 1 <= size <= MAX_BATCH_SIZE else None


DEFAULT_BATCH_SIZE = 8


def _check_strategy(doc: SpecDocument, c: ErrorCollector) -> None:
    # None when the schema reported the kind: the checks that need it are skipped.
    kind = strategy_of(doc)
    demos = doc.get(("demos",))
    if kind is not None and kind.requires_demos and (demos is None or demos == []):
        p: KeyPath = ("strategy", "kind")
        c.add(error("few-shot-no-demos", doc.value_location(p), p))
    bp: KeyPath = ("strategy", "batch_size")
    size_given = integer(doc.get(bp))
    if (
        kind is not None
        and kind.one_item
        and doc.value_location(bp).file == COMMAND_LINE
        and size_given is not None
        and size_given > 1
    ):
        # In a spec file the key is documented as ignored (variants switch kinds freely); on
        # the command line the user asked for batches and would silently not get them.
        c.add(error("batch-size-ignored", doc.value_location(bp), bp, size=size_given, kind=kind))
    _check_vote(doc, c, kind)
    ep: KeyPath = ("strategy", "selection", "embeddings")
    if doc.has(ep) and doc.has(("strategy", "selection", "model")):
        c.add(error("model-and-embeddings", doc.key_location(ep), ep))
    up: KeyPath = (*ep, "url")
    url = doc.get(up)
    problem = url_problem(url) if isinstance(url, str) and url.startswith("http") else None
    if problem is not None:
        c.add(error("bad-url", doc.value_location(up), up, url=public_url(url), problem=problem))
    tp: KeyPath = ("strategy", "selection", "target_position")
    position = integer(doc.get(tp))
    size = batch_size_of(doc)
    method = doc.get(("strategy", "selection", "method"))
    if (
        method == "retrieval"
        and kind is not None
        and not kind.one_item
        and size is not None
        and position is not None
        and not -size <= position < size
    ):
        c.add(
            error(
                "target-position",
                doc.value_location(tp),
                tp,
                position=position,
                size=size,
                low=-size,
                high=size - 1,
            )
        )


def _check_vote(doc: SpecDocument, c: ErrorCollector, kind: Strategy | None) -> None:
    vp: KeyPath = ("strategy", "vote")
    if not doc.has(vp):
        return
    if kind is not None and kind.one_item and doc.value_location(vp).file == COMMAND_LINE:
        # As batch_size: ignored in a spec file, an error where the user asked for it.
        c.add(error("vote-ignored", doc.value_location(vp), vp, kind=kind))
    rounds = integer(doc.get(vp + ("rounds",)))
    early = integer(doc.get(vp + ("early_stop",)))
    if rounds is not None and early is not None and early > rounds:
        p = vp + ("early_stop",)
        c.add(error("vote-early-stop", doc.value_location(p), p, early_stop=early, rounds=rounds))
    size = batch_size_of(doc)
    if kind is not None and not kind.one_item and rounds and size and rounds > size:
        # The data may hold fewer items still: the build checks the batches it makes
        # (promptc.build.rounds, vote-rounds).
        p = vp + ("rounds",)
        c.add(error("vote-batch-size", doc.value_location(p), p, rounds=rounds, size=size))


def _check_choices_from(doc: SpecDocument, c: ErrorCollector) -> None:
    raw_outputs = doc.get(("outputs",))
    if not isinstance(doc.get(("inputs",)), dict) or not isinstance(raw_outputs, dict):
        return
    options = option_inputs(doc)
    for name, decl in raw_outputs.items():
        if not isinstance(decl, dict):
            continue
        if "choices_from" not in decl:
            if "answer_with" in decl:
                path_w: KeyPath = ("outputs", name, "answer_with")
                c.add(error("answer-with", doc.key_location(path_w), path_w))
            continue
        path: KeyPath = ("outputs", name, "choices_from")
        if "choices" in decl:
            c.add(error("choices-and-choices-from", doc.key_location(path), path))
        source = decl["choices_from"]
        if isinstance(source, str) and source not in options:
            names = _quote_all(options) if options else "none (declare one with type: options)"
            c.add(error("choices-from", doc.value_location(path), path, name=source, names=names))


def _check_markers(doc: SpecDocument, c: ErrorCollector) -> None:
    decl = doc.get(("markers",))
    if not isinstance(decl, dict):
        return
    named: list[tuple[str, KeyPath]] = []
    for key in ("question", "answer"):
        value = decl.get(key)
        if isinstance(value, str) and value:
            path: KeyPath = ("markers", key)
            why = marker_problem(value)
            if why is not None:
                c.add(error("bad-marker", doc.value_location(path), path, marker=value, why=why))
            else:
                named.append((value, path))
    layout = decl.get("inputs")
    if layout == "indexed":
        named = [(v, p) for v, p in named if p[-1] != "question"]
        raw_inputs = doc.get(("inputs",))
        if isinstance(raw_inputs, dict):
            for name, idecl in raw_inputs.items():
                label = idecl.get("label") if isinstance(idecl, dict) else None
                options = isinstance(idecl, dict) and idecl.get("type") == "options"
                fallback = OPTIONS_LABEL if options else default_label(name)
                text = label if isinstance(label, str) and label else fallback
                path = ("inputs", name)
                why = marker_problem(text)
                if why is not None:
                    c.add(error("bad-marker", doc.key_location(path), path, marker=text, why=why))
                else:
                    named.append((text, path))
    for k, (a, pa) in enumerate(named):
        for b, _ in named[k + 1 :]:
            why = marker_clash(a, b)
            if why is not None:
                c.add(error("marker-clash", doc.value_location(pa), pa, a=a, b=b, why=why))


def _check_data_names(
    doc: SpecDocument,
    c: ErrorCollector,
    key: str,
    names: list[str] | None,
    code: str,
    **kw: object,
) -> None:
    """Every key of ``data.<key>`` (``fields``: inputs, ``gold``: outputs) names one of
    ``names``; each that does not is ``code`` at the key, with the nearest name as a hint."""
    mapping = doc.get(("data", key))
    if not isinstance(mapping, dict) or names is None:
        return
    for name in mapping:
        if name not in names:
            p: KeyPath = ("data", key, name)
            c.add(
                error(
                    code, doc.key_location(p), p, hint=did_you_mean(name, names), field=name, **kw
                )
            )


#: The error of each reason :func:`promptc.spec.load.confined` gives for a template path.
_TEMPLATE_PATH_CODES = {
    "nul": "path-nul",
    "absolute": "template-absolute",
    "escape": "template-escape",
}


def _check_templates(doc: SpecDocument, c: ErrorCollector) -> None:
    templates = doc.get(("templates",))
    if not isinstance(templates, dict):
        return
    for kind, rel in templates.items():
        if find_strategy(kind) is None or not isinstance(rel, str) or not rel:
            continue  # the schema reported it
        p: KeyPath = ("templates", kind)
        where = doc.value_location(p)
        target = confined(doc.folder_of(p), rel)
        if isinstance(target, str):
            c.add(error(_TEMPLATE_PATH_CODES[target], where, p, path=rel))
        elif target.is_dir():
            c.add(error("template-not-file", where, p, path=rel))
        elif not target.is_file():
            c.add(error("template-missing", where, p, path=rel))


def _check_model(doc: SpecDocument, c: ErrorCollector) -> None:
    # Unknown keys are the schema's (additionalProperties); a known one under extra would be
    # sent twice, or silently win over the one beside it.
    per_item: KeyPath = ("model", "max_tokens_per_item")
    for other in ("max_tokens", "max_completion_tokens"):
        if doc.get(per_item) is not None and doc.get(("model", other)) is not None:
            c.add(error("budget-twice", doc.key_location(per_item), per_item, other=other))
    n_path: KeyPath = ("model", "n")
    n = doc.get(n_path)
    if isinstance(n, int) and not isinstance(n, bool) and n > 1:
        c.add(error("model-n", doc.value_location(n_path), n_path, n=n))
    stream_path: KeyPath = ("model", "stream")
    if doc.get(stream_path) is True:
        c.add(error("model-stream", doc.value_location(stream_path), stream_path))
    extra = doc.get(("model", "extra"))
    if not isinstance(extra, dict):
        return
    known = known_model_params()
    for key in extra:
        p: KeyPath = ("model", "extra", key)
        if key in _BODY_FIELDS:
            c.add(
                error("extra-body-field", doc.key_location(p), p, hint=_BODY_FIELDS[key], key=key)
            )
        elif key in known:
            hint = f"write it beside extra, as model.{key}"
            c.add(error("extra-known-param", doc.key_location(p), p, hint=hint, key=key))


#: The fields of a request body that promptc writes itself, and where to say what they say:
#: under ``model.extra`` one would replace ``model.name`` in every request, or sit beside the
#: build's own messages or answer constraint.
_BODY_FIELDS = {
    "model": "name the model as model.name",
    "messages": "the templates write the messages",
    "response_format": "promptc run --grammar json-schema sends the answer's own schema",
}
