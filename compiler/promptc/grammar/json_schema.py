"""The JSON Schema export of an answer grammar (``answer.schema.json``), Draft 2020-12.

For ``single`` and ``few-shot`` it describes one answer: an object with the answer format's
fields, all required. For ``batch`` and ``auto-demo`` of N items: an object whose ``answers``
holds exactly N answers in order, each with its 1-based ``index`` (fixed by position), for
``auto-demo`` the repeated ``question``, and the typed fields (each in its type's JSON form,
:meth:`promptc.values.ValueType.json_value`). It is what a structured-output API is asked for.

:func:`json_answer_text` is its reader, beside it: the text form (``A[i]: …``) of an answer
written in this JSON form, which the output parser then reads like any other output.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from promptc import markers
from promptc.grammar.lark_source import Blueprint
from promptc.ir import AnswerFormat, Literal_
from promptc.text import describe, excerpt, json_int

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _answer(blueprint: Blueprint, index: int | None, question: str | None) -> dict[str, object]:
    props: dict[str, object] = {}
    required: list[str] = []
    if index is not None:
        props["index"] = {"type": "integer", "const": index}
        required.append("index")
        if blueprint.kind.repeats_questions:
            # no minLength: mlc-ai/xgrammar#800
            props["question"] = (
                {"type": "string"} if question is None else {"type": "string", "const": question}
            )
            required.append("question")
    # A request's own blueprint (item_blueprint) has each item's fields with its own choices.
    for f in (p.field for p in blueprint.parts_of(index or 1) if p.field is not None):
        props[f.name] = f.type.json_schema(f)
        required.append(f.name)
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


def json_schema(
    blueprint: Blueprint, task_name: str, questions: Sequence[str] | None = None
) -> dict[str, object]:
    """The schema of the JSON form of an answer of ``blueprint``'s shape.

    With ``questions`` (``auto-demo``), each answer's ``question`` must be exactly its item's
    (a ``const``); a request's own blueprint (:func:`~promptc.grammar.lark_source.
    item_blueprint`) admits in each item's enum exactly its own choices: the JSON counterpart
    of the GBNF that pins them.
    """
    head: dict[str, object] = {
        "$schema": DRAFT,
        "title": f"{task_name} answer ({blueprint.kind}, {blueprint.n_items} item(s))",
    }
    if blueprint.kind.one_item:
        return {**head, **_answer(blueprint, None, None)}
    return {
        **head,
        "type": "object",
        "properties": {
            "answers": {
                "type": "array",
                "prefixItems": [
                    _answer(blueprint, i, questions[i - 1] if questions is not None else None)
                    for i in range(1, blueprint.n_items + 1)
                ],
                # Exactly n items by minItems and maxItems beside prefixItems: the same
                # language as a closing "items": false, which llama.cpp's JSON-Schema
                # converter refuses (HTTP 400: "schema must be an object").
                "minItems": blueprint.n_items,
                "maxItems": blueprint.n_items,
            }
        },
        "required": ["answers"],
        "additionalProperties": False,
    }


def schema_text(value: object, level: int = 0) -> str:
    """``json.dumps(value, indent=2)``, byte for byte, for the JSON values a schema holds.

    Python's own encoder with an indent is made of closures that refer to each other, so
    every call leaves a reference cycle for the garbage collector; a build writing one schema
    per request would hold thousands of them between collections. This one leaves none (its
    scalars go through the C encoder)."""
    pad = "  " * (level + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = ",\n".join(
            pad + json.dumps(str(k)) + ": " + schema_text(v, level + 1) for k, v in value.items()
        )
        return "{\n" + inner + "\n" + "  " * level + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        inner = ",\n".join(pad + schema_text(v, level + 1) for v in value)
        return "[\n" + inner + "\n" + "  " * level + "]"
    return json.dumps(value)


class JsonAnswer(NamedTuple):
    """An output in the JSON form, read (:func:`json_answer_text`)."""

    #: Its text form (``A[i]: …``), for the output parser.
    text: str
    #: Item index (1-based) → what is wrong with its entry, where a value is not of its
    #: field's type (``answer: expected a number, found null``): that item is ``malformed``
    #: whatever its text form reads as (a reasoning that states the answer).
    invalid: Mapping[int, str]
    #: Why the output is no answer the schema admits as a whole, though read: text after the
    #: JSON answer (a second answer, a correction), or ``answers`` given twice. ``strict``
    #: rejects it; ``recover`` reads the entries of every list (:func:`_answer_lists`).
    rejected: str | None = None


def json_answer_text(
    blueprint: Blueprint, fmt: AnswerFormat, output: str, questions: Sequence[str] = ()
) -> JsonAnswer | None:
    """The text form (``A[i]: …``, with ``Q[i]: …`` for Auto-Demo) of an output written in
    the JSON form of :func:`json_schema`, or ``None`` if it is not JSON of that shape (an
    object with the answer's fields; for several items, ``answers``, a list of such objects).

    Values are written back in the format as they came (a number as its JSON text, an empty
    string as empty text), so that the parser judges them as it judges any answer, item by
    item: a value the format does not take (a choice not offered, ``null``, a field left out,
    empty text) comes out ``malformed`` at the item it belongs to, and the other items are
    read. An entry's ``index`` places it; one that is no position (or left out) makes the
    item at the entry's place ``malformed``. Of an output that
    stops inside the list (cut at ``max_tokens``, or not JSON further on), the entries
    complete before that point are read; the items after it are the parser's to call
    ``truncated`` or ``missing``.

    Args:
        blueprint: The answer blueprint (its kind and fields).
        fmt: The answer format the text form is written in.
        output: What the model wrote.
        questions: Auto-Demo: each item's question, for entries that leave it out.
    """
    if "{" not in output:  # a text answer, as nearly every one is: no search for JSON
        return None
    output = _json_body(output)
    if not output.lstrip().startswith("{"):
        return None
    if blueprint.kind.one_item:
        try:
            # The first JSON value; chatter after it is chatter, as after a text answer.
            data, _ = _DECODER.raw_decode(output, _after_space(output, 0))
        except (ValueError, RecursionError):
            return None
        data = _one_entry(blueprint, data)
        read = _answer_text(blueprint, fmt, data) if isinstance(data, dict) else None
        if read is None:
            return None
        return JsonAnswer(read[0], {} if read[1] is None else {1: read[1]})
    found = _answer_lists(output)
    if found is None:
        return None
    lists, rejected = found
    entries = [entry for answers in lists for entry in answers]
    return _list_text(blueprint, fmt, entries, questions)._replace(rejected=rejected)


def _list_text(
    blueprint: Blueprint, fmt: AnswerFormat, answers: Sequence[object], questions: Sequence[str]
) -> JsonAnswer:
    """The text form of the entries of an ``answers`` list, each placed by its ``index``."""
    lines: list[str] = []
    invalid: dict[int, str] = {}
    indexes = [
        e.get("index", _LEFT_OUT) if isinstance(e, Mapping) else k for k, e in enumerate(answers, 1)
    ]
    placed = {i for i in indexes if _position(i)}
    for k, (entry, index) in enumerate(zip(answers, indexes, strict=True), 1):
        read = _answer_text(blueprint, fmt, entry)
        if read is None:
            continue  # no answer to place: its item is missing
        text, problem = read
        # Numbered from 0: said as A[0], an extra the parser reads as a shifted numbering.
        if not _position(index) and not (type(index) is int and index == 0):
            # An index that is no position ("2", 2.0, null, left out): the entry's place
            # says which item it is, and that item is malformed, saying so — never credited
            # by its place (a model that skipped an item would give each later answer to
            # the item before it) — unless another entry answers that item by its index: a
            # stray entry does not spoil its answer.
            if k in placed:
                continue
            found = _LEFT_OUT_TEXT if index is _LEFT_OUT else describe(index)
            problem = f"index: expected a whole number from 1, found {found}"
            index = k
        elif blueprint.kind.repeats_questions:
            problem = _question_problem(entry) or problem
        if problem is not None:
            invalid.setdefault(index, problem)
        if blueprint.kind.repeats_questions:
            assert isinstance(entry, Mapping)
            q = entry.get("question")
            if not isinstance(q, str):  # malformed (above): its text form is left to read
                q = questions[index - 1] if 0 < index <= len(questions) else ""
            try:  # indexed inputs: one marked line per input, as the text form writes them
                lines.append(markers.question_lines(q, index, blueprint.question_prefixes))
            except ValueError:  # not the item's question's form: as written, to be judged
                lines.append(
                    markers.question_marker(index, blueprint.markers) + markers.MARKER_SEPARATOR + q
                )
        lines.append(
            markers.answer_marker(index, blueprint.markers) + markers.MARKER_SEPARATOR + text
        )
    return JsonAnswer(markers.ITEM_SEPARATOR.join(lines), invalid)


#: An entry's ``index`` (or ``question``) left out, and how a message says so.
_LEFT_OUT = object()
_LEFT_OUT_TEXT = "nothing (the key is left out)"


def _question_problem(entry: object) -> str | None:
    """What is wrong with an Auto-Demo entry's ``question``, if anything: the one field by
    which an answer given under another item's index (answers swapped) is told, so one left
    out, not text or given twice is never filled in with the item's own."""
    q = entry.get("question", _LEFT_OUT) if isinstance(entry, Mapping) else _LEFT_OUT
    if "question" in getattr(entry, "twice", ()):
        found = "the key given twice, with different values"
    elif isinstance(q, str):
        return None
    else:
        found = _LEFT_OUT_TEXT if q is _LEFT_OUT else describe(q)
    return f"question: expected the item's question, found {found}"


def _position(index: object) -> bool:
    """Whether an entry's ``index`` is an item's position (a whole number from 1)."""
    return isinstance(index, int) and not isinstance(index, bool) and index >= 1


#: A markdown fence around a JSON answer: its opening line (```json) and closing one.
_FENCE = re.compile(r"\A\s*```[^\n]*\n(?P<body>.*?)\n?```\s*\Z", re.DOTALL)


#: A line that opens the JSON of an answer (an object, or a fence around it).
_OPENING = re.compile(r"^[ \t]*(?=\{|```)", re.MULTILINE)


def _json_body(output: str) -> str:
    """The JSON of an answer as models wrap it: after a reasoning model's ``<think>…</think>``
    block, after a line of chatter (``Here is the JSON:``), inside a markdown fence (````
    ```json … ``` ````). Of the ways to read it, the first whose JSON decodes whole is taken
    (a string of the answer may hold ``</think>``, and the text after it then starts inside
    that string: a JSON string there is no answer), else the first that opens an object."""
    closes = [m.end() for m in _THINK_CLOSE.finditer(output)]
    ways = [output[closes[-1] :], output] if closes else [output]
    bodies = [_unwrapped(way) for way in ways]
    for body in bodies:
        try:
            value, _ = _DECODER.raw_decode(body, _after_space(body, 0))
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            return body
    return bodies[0]


#: A reasoning model's closing thinking tag, in any case (as the text form finds it).
_THINK_CLOSE = re.compile("</think>", re.IGNORECASE)


def _unwrapped(output: str) -> str:
    """``output`` from the line that opens its JSON (an object, or a fence around it), out of
    its fence."""
    if not output.lstrip().startswith(("{", "```")):
        opening = _OPENING.search(output)
        if opening is not None:
            output = output[opening.start() :]
    fenced = _FENCE.match(output)
    return fenced.group("body") if fenced is not None else output


def _one_entry(blueprint: Blueprint, data: object) -> object:
    """A one-item answer written in the form of several (``{"answers": [{…}]}``): its one
    entry, when the object holds no field of its own."""
    if not isinstance(data, Mapping) or any(f.name in data for f in blueprint.fields):
        return data
    answers = data.get("answers")
    if isinstance(answers, list) and len(answers) == 1 and isinstance(answers[0], Mapping):
        return answers[0]
    return data


class _Object(dict[str, object]):
    """A JSON object, with the keys it gave twice with different values (``twice``): the
    text form of the same (an answer given twice) is no single answer either."""

    twice: frozenset[str] = frozenset()
    #: The values a key given twice had before its last, in order.
    earlier: Mapping[str, list[object]] = {}


def _object(pairs: list[tuple[str, object]]) -> _Object:
    out = _Object()
    earlier: dict[str, list[object]] = {}
    for key, value in pairs:
        if key in out and out[key] != value:
            earlier.setdefault(key, []).append(out[key])
        out[key] = value
    if earlier:
        out.twice = frozenset(earlier)
        out.earlier = earlier
    return out


class _Written(Decimal):
    """A JSON number with its text as the model wrote it (``written``)."""

    __slots__ = ("written",)
    written: str


def _json_number(text: str) -> Decimal:
    try:
        number = _Written(text)
    except InvalidOperation:  # an exponent past what a Decimal holds: read as written
        number = _Written("NaN")
    number.written = text
    return number


#: How an answer of several items begins, up to its list's first entry.
_ANSWERS = re.compile(r'\s*\{\s*"answers"\s*:\s*\[')
#: Numbers exact, as the text form reads them; objects with the keys they gave twice.
#: An integer past Python's digit limit is a Decimal (json_int): its entry malformed, never
#: the whole answer unread.
_DECODER = json.JSONDecoder(parse_float=_json_number, parse_int=json_int, object_pairs_hook=_object)


def _answer_lists(output: str) -> tuple[list[list[object]], str | None] | None:
    """The ``answers`` lists of an answer of several items, and why it is no answer the
    schema admits as a whole (``None`` if it is one); ``None`` if the output is not an object
    with that list. A model that answers again (a correction after its first answer, in a
    second JSON object or under the key given again) answers each item twice: every list is
    read, the items answered twice with different values ``duplicate``, never silently one
    of the lists."""
    first = _document(output, 0)
    if first is None:
        return None
    lists, end = first
    rejected = None
    if len(lists) > 1:
        rejected = "the key 'answers' is given twice, with different values"
    elif end < len(output) and output[end:].strip():
        rejected = f"expected end of output after the JSON answer, found {excerpt(output, _after_space(output, end))}"
    at = end
    while (later := _LATER.search(output, at)) is not None:
        more = _document(output, later.start())
        if more is None:
            at = later.end()
            continue
        lists += more[0]
        at = max(more[1], later.end())
    return lists, rejected


#: Where a later answer of several items begins (a second JSON object, after the first).
_LATER = re.compile(r'\{\s*"answers"\s*:\s*\[')


def _document(output: str, start: int) -> tuple[list[list[object]], int] | None:
    """The ``answers`` lists (one, or each where the key is given twice) of the object that
    begins at ``start`` and where it ends; of an object that stops inside its list, the
    entries complete before that point, and where the reading stopped; ``None`` if no
    object with that list begins there."""
    try:
        data, end = _DECODER.raw_decode(output, _after_space(output, start))
    except (ValueError, RecursionError):
        begun = _ANSWERS.match(output, start)
        if begun is None:
            return None
        entries: list[object] = []
        at = begun.end()
        while True:  # each entry decoded once: linear in the output
            try:
                entry, at = _DECODER.raw_decode(output, _after_space(output, at))
            except (ValueError, RecursionError):
                return [entries], len(output)
            entries.append(entry)
            at = _after_space(output, at)
            if not output.startswith(",", at):
                return [entries], len(output)
            at += 1
    answers = data.get("answers") if isinstance(data, _Object) else None
    if not isinstance(answers, list):
        return None
    earlier = data.earlier.get("answers", ()) if isinstance(data, _Object) else ()
    return [*(e for e in earlier if isinstance(e, list)), answers], end


def _after_space(text: str, at: int) -> int:
    """The offset of the first character at or after ``at`` that is no JSON white space."""
    while at < len(text) and text[at] in " \t\n\r":
        at += 1
    return at


def _answer_text(
    blueprint: Blueprint, fmt: AnswerFormat, values: object
) -> tuple[str, str | None] | None:
    """One entry's answer in the format's text form, and what is wrong with the first value
    not of its field's type; ``None`` if the entry is no object. A value of its field's type
    is written in its canonical form; any other (``null``, a field left out, a choice not
    offered, a list) as it came, for the parser to refuse."""
    if not isinstance(values, Mapping):
        return None
    texts: dict[str, str] = {}
    problem: str | None = None
    for f in blueprint.fields:
        raw = values.get(f.name)
        try:
            if f.name in getattr(values, "twice", ()):
                raise ValueError(f"{f.name} is given twice")
            value = f.type.coerce(f, _number_text(raw) if isinstance(raw, Decimal) else raw)
            if f.type.free_text and not str(value).strip():  # the schema asks for some text
                raise ValueError(f"{f.name} is empty")
            text = f.type.write(f, value)
        except (ValueError, TypeError):
            text = _as_written(raw)
            if problem is None:
                found = _LEFT_OUT_TEXT if f.name not in values else describe(raw)
                if f.name in getattr(values, "twice", ()):
                    found = "the key given twice, with different values"
                problem = f"{f.name}: expected {f.type.meaning(f)}, found {found}"
        if not blueprint.multiline:
            # The schema allows any string, but the text form holds each item on its line: a
            # line break is read as a space, so that a string's second line ("…\nA[2]: 5") is
            # never taken for another item's answer.
            text = " ".join(line.strip(" \t") for line in text.splitlines())
        texts[f.name] = text
    parts = (seg.text if isinstance(seg, Literal_) else texts[seg.field] for seg in fmt.segments)
    return "".join(parts).strip(" \t\n\r\f\v"), problem


def _as_written(raw: object) -> str:
    """A JSON value that is not of its field's type, as text: a string as it is, nothing for
    ``null``, any other value as its JSON text."""
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, Decimal):
        return _number_text(raw)
    return json.dumps(raw, ensure_ascii=False, default=str)


def _number_text(d: Decimal) -> str:
    """A JSON number as the text form writes numbers: without exponent (``1e2`` is ``100``,
    ``1E-7`` is ``0.0000001``), so that the format reads it as the number it is. A number of
    an exponent past 1,000 (the answer reader's bound is 640 digits) stays as the model wrote
    it: the positional text of ``1e999999`` would be a million zeros, and ``0.000…1`` written
    so is read so."""
    if d.is_finite() and abs(d.adjusted()) <= 1000:
        return format(d, "f")
    return d.written if isinstance(d, _Written) else str(d)
