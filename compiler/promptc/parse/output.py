"""Model output → one result per item: ``ok | missing | malformed | duplicate | misaligned | extra``
(or ``truncated``, for an output cut off at ``max_tokens``).

This is the last stage of the pipeline: it reads what a model wrote for one request, with the
answer grammar of that request's shape (:func:`promptc.grammar.answer.build_grammar`), and tells, item
by item, what the model answered and whether it can be trusted. It never attributes an answer
to the wrong item and never raises on any output string.

Two modes:

``strict``
    The whole output must match the grammar (its regex, :mod:`promptc.parse.strict`). Values
    are reported only when it does; otherwise the item where the grammar stopped gets the
    diagnosis (output line:col, expected tokens, what was found; the lark grammar says where
    and why, :mod:`promptc.parse.diagnosis`) and every other item says that strict mode
    rejected the output there.

``recover`` (default)
    Keeps every well-formed item of a partly broken output. The whole output is first matched
    against the grammar's regex, as in ``strict`` mode; when that fails, a marker scanner finds
    every ``Q[i]:`` / ``A[i]:`` (tolerating markdown emphasis, headings, fences, chatter,
    full-width lookalikes) and each answer body is read on its own
    (:mod:`promptc.parse.recover`, :mod:`promptc.parse.reader`).

The rules, in full, are in ``docs/parsing.md``; the constants that tune them are below.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from promptc.errors import OutputParseError
from promptc.grammar.answer import AnswerGrammar, build_grammar
from promptc.ir import Task
from promptc.markers import OPTION_LETTERS
from promptc.parse.recover import parse_recover
from promptc.parse.results import FINISH_LENGTH, MODES, ItemResult, Mode
from promptc.parse.shape import RequestShape, items_by_id, marker_label, request_shape
from promptc.parse.strict import item_results, match_output, strict_results
from promptc.strategies import Strategy
from promptc.values import option_choices, resolve_option

# --------------------------------------------------------------------------------------------
# Grammar
# --------------------------------------------------------------------------------------------

_GRAMMARS: dict[tuple[int, int, Strategy], tuple[Task, AnswerGrammar]] = {}


def grammar_for(task: Task, n_items: int, kind: Strategy) -> AnswerGrammar:
    """The answer grammar of a request shape, built once per (task, size, kind)."""
    key = (id(task), n_items, kind)
    hit = _GRAMMARS.get(key)
    if hit is not None and hit[0] is task:
        return hit[1]
    g = build_grammar(task, n_items, kind)
    if len(_GRAMMARS) > 256:
        _GRAMMARS.clear()
    _GRAMMARS[key] = (task, g)
    return g


# --------------------------------------------------------------------------------------------
# parse_output
# --------------------------------------------------------------------------------------------


def parse_output(
    task: Task,
    request: object,
    output: str,
    *,
    mode: Mode = "recover",
    grammar: AnswerGrammar | None = None,
    finish_reason: str | None = None,
) -> list[ItemResult]:
    """Parses one request's model output into one result per item (plus ``extra`` results).

    Args:
        task: The compiled task (its outputs and answer format define the grammar; its items
            give the questions an Auto-Demo answer must repeat).
        request: An :class:`~promptc.ir.Request`, a ``requests.jsonl`` line, or any object with
            ``id``, ``kind`` and ``item_ids`` (see :func:`request_shape`).
        output: What the model wrote. Any string: this function never raises on it.
        mode: ``"recover"`` (default) or ``"strict"``.
        grammar: The request shape's grammar, if the caller has it already.
        finish_reason: Why the model stopped, as the server said (``stop``, ``length`` …),
            if known. With ``length`` the items the cut reached are ``truncated``
            (:func:`mark_truncated`).

    Returns:
        The request's items in order, then ``extra`` answers by index.

    Raises:
        OutputParseError: ``request`` or ``mode`` is not usable (never for the output text).
    """
    if mode not in MODES:
        raise OutputParseError(
            f"unknown parse mode {mode!r}; expected recover or strict", code="bad-mode"
        )
    shape = request if isinstance(request, RequestShape) else request_shape(task, request)
    if not isinstance(output, str):
        raise OutputParseError(
            f"the output of request {shape.id} is {type(output).__name__}, expected text",
            code="bad-output",
        )
    g = grammar or grammar_for(task, len(shape.item_ids), shape.kind)
    # An answer in the grammar's JSON form (a structured-output API's) is read through its
    # text form; spans would point into that text, not the output: there are none.
    read = g.read_json(output, shape.questions)
    text = None if read is None else read.text
    if read is not None:
        parsed = _parse_text(shape, g, read.text, mode, line_starts=True)
        # Spans and positions would point into the text form, not the output: none are said.
        results = [
            _judged_entry(r._replace(span=None, message=_AT.sub("", r.message)), read.invalid, g)
            for r in parsed
        ]
        results = check_options(task, results, mode)
    else:
        text_form = _without_thinking(output)
        results = check_options(task, _parse_text(shape, g, text_form, mode), mode)
    if finish_reason != FINISH_LENGTH:
        return results
    # An entry of the JSON form is whole once its object closes: only the items after the
    # last one read were reached by the cut.
    return mark_truncated(results, output, whole=text is not None)


#: A reasoning model's thinking tags, in any case (searched in the output as written: a
#: lowered copy may not have the output's offsets).
_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)


def _without_thinking(output: str) -> str:
    """The output with a reasoning model's thinking (``<think>…</think>``, or all before a
    lone ``</think>``) blanked: drafts of answers in it are no answers. Blanked, not cut, so
    that every span and line:col still points into the output as written."""
    if "</" not in output:  # the common case: no closing tag at all
        return output
    closes = [m.end() for m in _THINK_CLOSE.finditer(output)]
    if not closes:
        return output
    end = closes[-1]
    opened = _THINK_OPEN.search(output)
    start = 0 if opened is None or opened.start() > end else opened.start()
    blank = "".join("\n" if c == "\n" else " " for c in output[start:end])
    return output[:start] + blank + output[end:]


#: A position a message gives (`` at 3:7`` ending it or one of its parts), not text it quotes.
_AT = re.compile(r" at \d+:\d+(?=$|, )")


def _judged_entry(r: ItemResult, invalid: Mapping[int, str], g: AnswerGrammar) -> ItemResult:
    """An item of a JSON answer whose entry holds a value not of its field's type is
    ``malformed`` saying so, whatever its text form read as: ``"answer": null`` beside a
    reasoning that states the answer is no answer."""
    problem = invalid.get(r.index)
    if problem is None or r.item_id is None or r.status not in ("ok", "misaligned", "duplicate"):
        return r
    label = marker_label(g.blueprint.markers.answer, r.index)
    return r._replace(
        status="malformed",
        values={},
        expected=(problem.split(", found ")[0],),
        message=f"{label}: {problem}",
    )


#: The message of a ``truncated`` result.
TRUNCATED_MESSAGE = (
    "the output stopped at max_tokens (finish length) before item {item}'s answer was complete; "
    "raise the budget (model.max_tokens_per_item fits it to each request)"
)


def mark_truncated(
    results: list[ItemResult], output: str, *, whole: bool = False
) -> list[ItemResult]:
    """The results of an output cut off at ``max_tokens``: the items the cut reached are
    ``truncated`` — every item after the last one answered, and the last answer itself when
    it runs to the end of the output (the cut may have ended it early: ``12`` of ``125``),
    unless every answer read is known ``whole`` (an entry of the JSON form).
    An item the model finished before the cut keeps its result, ``ok`` or not."""
    answered = [r.index for r in results if r.item_id is not None and r.status != "missing"]
    last = max(answered, default=0)
    end = len(output.rstrip())
    out = []
    for r in results:
        cut = r.item_id is not None and (
            r.index > last
            or (r.index == last and not whole and (r.span is None or r.span.end_offset >= end))
        )
        if cut and r.status != "extra":
            r = r._replace(
                status="truncated", values={}, message=TRUNCATED_MESSAGE.format(item=r.item_id)
            )
        out.append(r)
    return out


def check_options(task: Task, results: list[ItemResult], mode: Mode) -> list[ItemResult]:
    """An enum whose choices are an item's options (``choices_from``) must name one of *that*
    item's options: the grammar shared by every request admits the letters of the item with
    the most (and, with ``answer_with: text | either``, any one-line text), so here each
    answer is checked against its own item. The value reported is the option's letter. An
    answer naming none of the item's options (``(e)`` for an item with four, the text of
    another item's option) or more than one (a text two options share) is ``malformed``,
    never a guess; the message says which."""
    if not results or not any(f.choices_from for f in task.outputs):
        return results
    fields = [f for f in task.outputs if f.choices_from]
    by_id = items_by_id(task)
    out = []
    for r in results:
        item = by_id.get(r.item_id) if r.item_id is not None and r.status == "ok" else None
        for f in fields:
            value = r.values.get(f.name)
            if item is None or not isinstance(value, str) or f.choices_from not in item.options:
                continue
            options = item.options[f.choices_from]
            hits = resolve_option(f.answer_with, options, value, exact=mode == "strict")
            if len(hits) == 1:
                if hits[0] != value:
                    r = r._replace(values={**r.values, f.name: hits[0]})
                continue
            letters = OPTION_LETTERS[: len(options)]
            if f.answer_with == "letter":
                what = f"one of item {item.id}'s {len(letters)} options ({letters[0]} to {letters[-1]})"
            else:
                what = (
                    f"the {'letter or ' if f.answer_with == 'either' else ''}text of one of "
                    f"item {item.id}'s {len(letters)} options"
                    + (" (exactly, in strict mode)" if mode == "strict" else "")
                )
            problem = (
                f"names more than one of item {item.id}'s options ({' and '.join(hits)})"
                if hits
                else f"is not {what}"
            )
            choices = option_choices(f.answer_with, options)
            r = r._replace(
                status="malformed",
                values={},
                expected=(f"{f.name}: one of " + ", ".join(repr(c) for c in choices),)
                if f.answer_with != "letter"
                else (f"{f.name}: one of {', '.join(letters)}",),
                found=value,
                message=f"{f.name} {value!r} {problem}",
            )
            break
        out.append(r)
    return out


def _parse_text(
    shape: RequestShape, g: AnswerGrammar, output: str, mode: Mode, *, line_starts: bool = False
) -> list[ItemResult]:
    if mode == "strict":
        return strict_results(shape, g, output)
    items = match_output(g, output)
    if items is not None:
        return item_results(shape, g, items)
    return parse_recover(shape, g, output, line_starts=line_starts)


#: Which results a build's parse keeps: ``target`` (default) the result of each request's
#: target item only, where a request has one (``retrieval``: one result per item); ``all``
#: every result of every request.
PER_ITEM: tuple[str, ...] = ("target", "all")


def target_results(
    results: Iterable[ItemResult], shapes: Mapping[str, RequestShape]
) -> list[ItemResult]:
    """The results a request is for: of a request with a target item (``retrieval``
    selection, where every item is in N batches and the target of exactly one), only that
    item's result; of any other request, all its results. So each item has exactly one
    result, its own request's."""
    out: list[ItemResult] = []
    for r in results:
        shape = shapes.get(r.request_id)
        if shape is None or shape.target_item is None or r.item_id == shape.target_item:
            out.append(r)
    return out
