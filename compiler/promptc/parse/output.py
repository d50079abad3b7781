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

from promptc import markers
from promptc.errors import OutputParseError
from promptc.grammar.answer import AnswerGrammar, build_grammar
from promptc.grammar.items import ParsedItem
from promptc.ir import Markers, Task
from promptc.markers import OPTION_LETTERS
from promptc.parse.align import restated_as
from promptc.parse.json_form import rejected_json, strict_json_results
from promptc.parse.normalise import normalise_lookalikes
from promptc.parse.recover import answered_twice, parse_recover
from promptc.parse.results import FINISH_CUT, MODES, ItemResult, Mode
from promptc.parse.scan import iter_markers, marker_pattern
from promptc.parse.shape import RequestShape, items_by_id, marker_label, request_shape
from promptc.parse.strict import item_results, match_output, strict_results
from promptc.strategies import Strategy
from promptc.values import (
    OPTION_NOISE,
    option_choices,
    resolve_labelled_option,
    resolve_option,
)

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
    if read is not None:
        text = read.text
        if mode == "strict" and read.rejected is not None:
            parsed = rejected_json(shape, read.rejected)
        else:
            parsed = _parse_text(shape, g, text, mode, line_starts=True)
            parsed = strict_json_results(parsed) if mode == "strict" else parsed
        # Spans and positions would point into the text form, not the output: none are said.
        results = [
            _judged_entry(r._replace(span=None, message=_AT.sub("", r.message)), read.invalid, g)
            for r in parsed
        ]
        results = check_options(task, results, mode)
    else:
        text = _without_thinking(output)  # a draft's restated questions are no evidence
        results = check_options(task, _parse_text(shape, g, text, mode), mode)
    results = _numbered_from_later(_numbered_from_zero(results, g), g)
    if not shape.kind.one_item and not shape.kind.repeats_questions:
        results = _restated_elsewhere(results, shape, g, text)
    if finish_reason not in FINISH_CUT:
        return results
    # An entry of the JSON form is whole once its object closes: only the items after the
    # last one read were reached by the cut.
    one_line = not shape.kind.one_item
    mk = g.blueprint.markers
    return mark_truncated(results, output, whole=read is not None, lines=one_line, marker_set=mk)


def _numbered_from_zero(results: list[ItemResult], g: AnswerGrammar) -> list[ItemResult]:
    """The results of an answer that numbers its items from ``A[0]``: which item each of its
    answers is for cannot be told (a model numbering from 0 answers item 1 as ``A[0]``, and
    ``A[1]`` is then its answer to item 2, and the last item's marker never comes), so none
    is ``ok`` — each is ``misaligned``, and asked again by repair, never credited to the item
    after its own. With the last item answered too, ``A[0]`` is one answer too many: extra."""
    if not any(r.status == "extra" and r.index == 0 for r in results):
        return results
    last = max((r.index for r in results if r.item_id is not None), default=0)
    if any(r.index == last and r.item_id is not None and r.status != "missing" for r in results):
        return results  # A[0] to A[n]: one answer too many, not a shifted numbering
    return _numbered_from(results, marker_label(g.blueprint.markers.answer, 0))


def _numbered_from_later(results: list[ItemResult], g: AnswerGrammar) -> list[ItemResult]:
    """The results of an answer that numbers its items from ``A[k+1]``, k > 0: its first k
    items missing, every other one answered, and an answer past the last item
    (``A[n+1]``). A model numbering from 2 answers item 1 as ``A[2]``: each answer would be
    credited to the item after its own, so none is ``ok`` — each is ``misaligned``, asked
    again by repair."""
    items = [r for r in results if r.item_id is not None]
    n, k = len(items), 0
    while k < n and items[k].status == "missing":
        k += 1
    past = any(r.status == "extra" and r.index == n + 1 for r in results)
    if not 0 < k < n or not past or any(r.status == "missing" for r in items[k:]):
        return results
    return _numbered_from(results, marker_label(g.blueprint.markers.answer, k + 1))


def _numbered_from(results: list[ItemResult], first: str) -> list[ItemResult]:
    """The results of an answer numbered from ``first`` (not ``A[1]``): none credited."""
    why = f"the answer numbers its items from {first}: which item each answer is for cannot be told"
    return [
        r._replace(status="misaligned", message=why)
        if r.item_id is not None and r.status in ("ok", "duplicate")
        else r
        for r in results
    ]


def _restated_elsewhere(
    results: list[ItemResult], shape: RequestShape, g: AnswerGrammar, text: str
) -> list[ItemResult]:
    """A batch answer that restates its questions (``Q[2]: <a review>``, unasked): an answer
    under a question that is another item's is ``misaligned``, never ``ok`` — a model that
    skipped a question and numbered on answers item 3's under ``Q[2]``/``A[2]``."""
    prefix = g.blueprint.markers.question
    if f"{prefix}{markers.INDEX_OPEN}" not in text:
        return results
    restated = _restated(text, prefix, g.blueprint.markers.answer)
    out = []
    for r in results:
        written = restated.get(r.index)
        j = None
        if r.status == "ok" and r.item_id is not None and written is not None:
            j = restated_as(shape, r.index, written, prefix)
        if j is not None:
            label = marker_label(prefix, r.index)
            why = f"{label} restates item {j}'s question, not item {r.index}'s"
            r = r._replace(status="misaligned", message=why)
        out.append(r)
    return out


def _restated(text: str, question: str, answer: str) -> dict[int, str]:
    """Each ``Q[i]:`` of an output and the text under it, up to the next marked line."""
    lead = "^[ \t*_#>]*"
    marked = re.compile(
        f"(?m){lead}(?:{re.escape(question)}|{re.escape(answer)}){re.escape(markers.INDEX_OPEN)}"
    )
    asked = re.compile(
        f"(?m){lead}{re.escape(question)}{re.escape(markers.INDEX_OPEN)}([0-9]{{1,6}})"
        f"{re.escape(markers.INDEX_CLOSE + markers.MARKER_END)}[ \t*]*"
    )
    out: dict[int, str] = {}
    for m in asked.finditer(text):
        nxt = marked.search(text, m.end())
        body = text[m.end() : nxt.start() if nxt else len(text)]
        out.setdefault(int(m.group(1)), " ".join(body.split()).strip("*_ "))
    return out


#: A reasoning model's thinking tags, in any case (searched in the output as written: a
#: lowered copy may not have the output's offsets).
_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)


def _without_thinking(output: str) -> str:
    """The output with a reasoning model's thinking (``<think>…</think>``, all before a lone
    ``</think>``, or all after a ``<think>`` that opens the output and never closes) blanked:
    drafts of answers in it are no answers. Blanked, not cut, so that every span and line:col
    still points into the output as written."""
    if "<" not in output:  # the common case: no tag at all
        return output
    closes = [m.end() for m in _THINK_CLOSE.finditer(output)]
    if not closes:
        # Thinking that never ended (cut at max_tokens while thinking): all of it is drafts.
        opened = _THINK_OPEN.match(output, len(output) - len(output.lstrip()))
        if opened is None:
            return output
        closes = [len(output)]
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
    reasoning that states the answer is no answer. One the text form read as malformed too
    says the entry's problem (a key left out), not what the text form found in its place."""
    problem = invalid.get(r.index)
    judged = ("ok", "misaligned", "duplicate", "malformed")
    if problem is None or r.item_id is None or r.status not in judged:
        return r
    label = marker_label(g.blueprint.markers.answer, r.index)
    return r._replace(
        status="malformed",
        values={},
        expected=(problem.split(", found ")[0],),
        found=problem.partition(", found ")[2] or None,
        message=f"{label}: {problem}",
    )


#: A last line that may start a marker, cut: a word, then ``[``, digits and ``]`` if any.
#: Words one space apart, so that no run of spaces can be split two ways (a line of spaces
#: would be backtracked over quadratically).
_MARKER_START = re.compile(r"[ \t#>*_+-]*(\w+(?: \w+)*)[ \t]*(\[[ \t]*[0-9]*[ \t]*\]?[ \t]*)?")


def _without_marker_start(rest: str, marker_set: Markers) -> str:
    """``rest`` without its last line when that line is only the start of a marker the cut
    ended (``A[4``, ``**Q[``, ``Ans``)."""
    cut = rest.rfind("\n")
    m = _MARKER_START.fullmatch(rest, cut + 1) if cut >= 0 else None
    if m is None:
        return rest
    word = m.group(1).casefold()
    whole = m.group(2) is not None
    for prefix in (marker_set.answer.casefold(), marker_set.question.casefold()):
        if word == prefix or (not whole and prefix.startswith(word)):
            return rest[:cut]
    return rest


#: The message of a ``truncated`` result.
TRUNCATED_MESSAGE = (
    "the output stopped at max_tokens (finish length) before item {item}'s answer was complete; "
    "raise the budget (model.max_tokens_per_item fits it to each request)"
)


def mark_truncated(
    results: list[ItemResult],
    output: str,
    *,
    whole: bool = False,
    lines: bool = False,
    marker_set: Markers = markers.DEFAULT,
) -> list[ItemResult]:
    """The results of an output cut off at ``max_tokens``: the items the cut reached are
    ``truncated`` — every item after the last one answered, and the answer that runs to the
    end of the output (the cut may have ended it early: ``12`` of ``125``), whichever item it
    is (a model may answer out of order), unless every answer read is known ``whole`` (an
    entry of the JSON form). An item the model finished before the cut keeps its result,
    ``ok`` or not. Where each answer is one line (``lines``: a strategy with item markers),
    an answer whose line break was written is finished, even when the cut follows it, unless
    its body goes on to the cut (more text and no marker after it)."""
    answered = [r.index for r in results if r.item_id is not None and r.status != "missing"]
    last = max(answered, default=0)
    end = len(output.rstrip(" \t") if lines else output.rstrip())
    # The answer written last runs on to the cut when text follows it and no marker does: a
    # prefix of its body read as the answer (``the answer is 2.5.`` / ``For 8 tickets…``).
    spans = [r.span for r in results if r.span is not None]
    latest = max(spans, key=lambda s: s.start_offset, default=None)
    if latest is not None and latest.end_offset < end:
        rest = normalise_lookalikes(output[latest.end_offset : end])[0]
        if lines:  # the next item's marker the cut ended (``A[4``) is no part of the body
            rest = _without_marker_start(rest, marker_set)
        if rest.strip() and next(iter_markers(rest, marker_set), None) is None:
            end = latest.end_offset
    out = []
    for r in results:
        runs_to_end = r.span.end_offset >= end if r.span is not None else r.index == last
        cut = r.item_id is not None and (
            r.index > last or (not whole and r.status != "missing" and runs_to_end)
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
            if not hits and mode != "strict":  # read again with lookalikes normalised
                plain = normalise_lookalikes(value)[0]
                hits = resolve_option(f.answer_with, options, plain, exact=False)
            if not hits and mode != "strict":
                # Emphasis around it, a sentence's end after it: "**windowsill**.", "b."
                bare = OPTION_NOISE.sub("", normalise_lookalikes(value)[0])
                hits = resolve_option(f.answer_with, options, bare, exact=False) if bare else []
                if not hits and f.answer_with == "either":  # "(b)", "B. windowsill"
                    hits = resolve_labelled_option(options, bare)
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
    results = _read_text(shape, g, output, mode, line_starts)
    return answered_twice(shape, g, output, results) if shape.kind.one_item else results


def _read_text(
    shape: RequestShape, g: AnswerGrammar, output: str, mode: Mode, line_starts: bool
) -> list[ItemResult]:
    if mode == "strict":
        return strict_results(shape, g, output)
    items = match_output(g, output)
    if items is not None and not (not shape.kind.one_item and _swallows_a_marker(g, items)):
        return item_results(shape, g, items)
    return parse_recover(shape, g, output, line_starts=line_starts)


def _swallows_a_marker(g: AnswerGrammar, items: Iterable[ParsedItem]) -> bool:
    """Whether a text value the grammar's regex read holds a marker the scanner would start a
    later item at (``A[2]:`` in item 1's): the text field of ``A[1]: … The answer is 55.
    A[2]: … The answer is 20.`` runs over item 2's marker to the line's last answer, which the
    regex then gives item 1. The scanner reads each marker as the start of its item instead.
    A marker of an earlier item (``A[2]: Unlike A[1]: …``) is a reference back, as the grammar
    reads it; a question marker is one only where the strategy repeats questions."""
    mk = g.blueprint.markers
    pattern = marker_pattern(mk.question, mk.answer)
    answer = mk.answer.casefold()
    questions = g.blueprint.kind.repeats_questions
    return any(
        int(m.group("index")) > it.index and (questions or m.group("prefix").casefold() == answer)
        for it in items
        for v in it.values.values()
        if isinstance(v, str) and "[" in v
        for m in pattern.finditer(v)
    )


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
