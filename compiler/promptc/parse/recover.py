"""Recovery: every well-formed item of a partly broken output is kept. Markers are scanned,
each answer body is read on its own, and each item is judged from its occurrences.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from promptc import markers
from promptc.grammar.answer import AnswerGrammar
from promptc.ir import Markers, OutputField, Value
from promptc.parse.align import check_alignment
from promptc.parse.normalise import NormalisedText, normalise_lookalikes
from promptc.parse.reader import AnswerReader, Reading, answer_reader, strip_span
from promptc.parse.results import FOUND_CHARS, ItemResult
from promptc.parse.scan import Marker, iter_markers
from promptc.parse.shape import RequestShape, item_id_at, marker_label
from promptc.parse.strict import match_output
from promptc.text import EDGE_NOISE, Span, decimal_text, excerpt
from promptc.values import agree

_VISIBLE = re.compile(r"\S")


#: At most this many occurrences of one index are read; the rest count as repeats unread.
MAX_OCCURRENCES = 16


#: At most this many leading lines of chatter are skipped for single/few-shot outputs.
MAX_SINGLE_SKIP = 8


#: The message of an ``ok`` answer read by the lenient form of the answer format.
LENIENT_NOTE = "read leniently: the answer departs from the exact answer format"


# --- recover --------------------------------------------------------------------------------


@dataclass
class _Occurrence:
    answer: Marker | None
    question: Marker | None
    reading: Reading | None
    aligned: bool = True
    why: str = ""
    q_end: int = 0  # normalised offset where a question's text ends
    #: A later answer in the body of the same marker: its span starts where it does.
    later: bool = False


def parse_recover(
    shape: RequestShape, g: AnswerGrammar, output: str, *, line_starts: bool = False
) -> list[ItemResult]:
    """``recover`` mode's reading of an output its grammar's regex does not match: every
    marker found, each answer body read on its own, each item judged from its occurrences.

    With ``line_starts``, only a marker that starts a line is one: the text form of a JSON
    answer writes each entry on its own lines, so an ``A[1]:`` inside an entry's string (a
    model quoting another item) is that string's text, never another item's answer."""
    text = NormalisedText(output)
    reader = answer_reader(g)
    if shape.kind.one_item:
        return _recover_single(shape, text, reader)
    norm = text.norm
    n = len(shape.item_ids)
    mk = g.blueprint.markers
    prefixes = g.blueprint.question_prefixes or (mk.question,)
    found = list(iter_markers(norm, mk))
    if line_starts:
        found = [m for m in found if m.start == 0 or norm[m.start - 1] == "\n"]
    if shape.kind.repeats_questions:
        found = _outside_questions(norm, found, shape)
    occurrences: dict[int, list[_Occurrence]] = {}
    pending_q: tuple[Marker, int] | None = None
    # A body of free text fields only is one answer, however many lines it has.
    decisive = not all(f.type.free_text for f in g.blueprint.fields)
    # Indexed inputs: where a later input's line (``Hypothesis[2]:``) starts an item whose
    # first input was left out; it ends the answer before it.
    indexed = shape.kind.repeats_questions and len(prefixes) > 1
    inputs_at = markers.later_input(norm, 0, found[0].cut, prefixes) if indexed and found else None
    for k, m in enumerate(found):
        body_end = found[k + 1].cut if k + 1 < len(found) else len(norm)
        if m.kind == markers.QUESTION_PREFIX:
            if not shape.kind.repeats_questions:
                continue  # a batch answer has no questions; Q[i] is chatter there
            if pending_q is not None:
                _orphan(occurrences, pending_q[0], text, pending_q[1])
            pending_q, inputs_at = (m, body_end), None
            continue
        after = markers.later_input(norm, m.end, body_end, prefixes) if indexed else None
        body_end = body_end if after is None else after
        occ_list = occurrences.setdefault(m.index, [])
        q, q_end = pending_q if pending_q is not None else (None, 0)
        pending_q = None
        if len(occ_list) >= MAX_OCCURRENCES:
            occ_list.append(_Occurrence(m, q, None))
            continue
        # An answer to an index the request does not have is kept only if well-formed.
        occ = _Occurrence(m, q, reader.read(text, m.end, body_end, m, diagnose=1 <= m.index <= n))
        if q is not None:
            _align(occ, shape, text, q.index, strip_span(norm, q.end, q_end), prefixes, mk)
        elif inputs_at is not None:
            _align(occ, shape, text, m.index, strip_span(norm, inputs_at, m.cut), prefixes, mk)
        inputs_at = after
        occ_list.append(occ)
        if occ.reading is not None and occ.reading.values is not None and decisive:
            answers = _read_on(reader, text, occ.reading, body_end, m, g.blueprint.fields)
            if answers:
                occ.reading = answers[0]
            for later in answers[1:]:
                occ_list.append(_Occurrence(m, q, later, occ.aligned, occ.why, later=True))
    if pending_q is not None:
        _orphan(occurrences, pending_q[0], text, pending_q[1])

    fields = g.blueprint.fields
    results = [_judge(shape, text, i, occurrences.get(i, []), mk, fields) for i in range(1, n + 1)]
    for i in sorted(occurrences):
        if not 1 <= i <= n:
            results.append(_extra(shape, text, i, occurrences[i], mk))
    return results


def _align(
    occ: _Occurrence,
    shape: RequestShape,
    text: NormalisedText,
    q_index: int,
    q_span: tuple[int, int],
    prefixes: Sequence[str],
    mk: Markers,
) -> None:
    """Checks the question repeated before an answer (``text.norm[q_span]``, after the marker
    ``Q[q_index]:``) against the answer's item; with indexed inputs, each input repeated."""
    assert occ.answer is not None
    index = occ.answer.index
    qs, qe = q_span
    # Indexed inputs: the later inputs' lines become the question's labelled lines.
    q_text, wrong = markers.read_question(
        text.original[text.orig_start(qs) : text.orig(qe)], prefixes, index
    )
    if q_index != index:
        wrong = marker_label(mk.question, q_index)
    if wrong is not None:
        occ.aligned = False
        occ.why = f"{marker_label(mk.answer, index)} follows {wrong}"
    else:
        occ.aligned, occ.why = check_alignment(shape, index, q_text, prefixes)


_BLANKS = re.compile(r"[ \t]*")


def _outside_questions(norm: str, found: list[Marker], shape: RequestShape) -> list[Marker]:
    """The markers, without those inside a question the model repeated as it was asked.

    A question's own text may hold a line that reads as a marker (data such as
    ``Great food.\nA[2]: negative``): where ``Q[i]:`` is followed by item i's question as
    the request holds it, what lies inside that question is the question's, not the output's
    next answer."""
    # Each question normalised once: a hostile output may repeat one marker 100,000 times.
    wanted = {
        k: normalise_lookalikes(q)[0]
        for k, q in enumerate(shape.questions, 1)
        if markers.INDEX_OPEN in q
    }
    if not wanted:
        return found
    kept: list[Marker] = []
    inside_until = -1
    for m in found:
        if m.start < inside_until:
            continue
        kept.append(m)
        question = wanted.get(m.index) if m.kind == markers.QUESTION_PREFIX else None
        if question is not None:
            blanks = _BLANKS.match(norm, m.end)
            start = blanks.end() if blanks is not None else m.end
            if norm.startswith(question, start):
                inside_until = start + len(question)
    return kept


def _orphan(
    occ: dict[int, list[_Occurrence]], q: Marker, text: NormalisedText, body_end: int
) -> None:
    """A question not followed by its answer (e.g. the output ended after it)."""
    lst = occ.setdefault(q.index, [])
    if len(lst) < MAX_OCCURRENCES:
        lst.append(_Occurrence(None, q, None, q_end=body_end))


def _read_on(
    reader: AnswerReader,
    text: NormalisedText,
    first: Reading,
    end: int,
    marker: Marker,
    fields: Sequence[OutputField],
) -> list[Reading]:
    """The answers of one body, in order, when they disagree (else none: a restatement that
    agrees leaves ``first``, the body's reading, its answer).

    A body read to its end: each answer read after the one before it, up to the body's end
    (:data:`MAX_OCCURRENCES` at most), so that a correction on a later line (``The answer
    is 22.``) is seen. A first reading read leniently over several lines may hide an answer on
    its first lines (``… the answer is 2.5`` / ``… the answer is 20``): the shortest of its
    line-end cuts that reads is the body's first answer then."""
    norm = text.norm
    readings = [first]
    if first.lenient:
        nl, cuts = norm.find("\n", first.start, first.end), 0
        while nl >= 0 and cuts < MAX_OCCURRENCES:
            head = reader.read(text, first.start, nl, marker, diagnose=False)
            if head.values is not None:
                readings = [head]
                break
            nl, cuts = norm.find("\n", nl + 1, first.end), cuts + 1
    while len(readings) < MAX_OCCURRENCES and _VISIBLE.search(norm, readings[-1].end, end):
        nxt = reader.read(text, readings[-1].end, end, marker, diagnose=False)
        if nxt.values is None or nxt.end <= readings[-1].end:
            break
        readings.append(nxt)
    if len(readings) == 1 and readings[0] is first:
        return []
    if len(readings) == 1:  # nothing read after the head: the body's reading is the later one
        readings.append(first)
    if all(r.values is not None and agree(fields, first.values or {}, r.values) for r in readings):
        return []
    return readings


def _occ_span(text: NormalisedText, occ: _Occurrence) -> Span:
    start_m = occ.question or occ.answer
    assert start_m is not None
    start = occ.reading.start if occ.later and occ.reading is not None else start_m.start
    end = occ.reading.end if occ.reading is not None else start_m.end
    return text.span(start, max(end, start))


def _judge(
    shape: RequestShape,
    text: NormalisedText,
    index: int,
    occs: list[_Occurrence],
    mk: Markers = markers.DEFAULT,
    fields: Sequence[OutputField] = (),
) -> ItemResult:
    """The result of item ``index`` from its occurrences: a well-formed, aligned answer →
    ``ok`` (``duplicate`` if another one disagrees); else a well-formed one → ``misaligned``;
    else ``malformed`` (the first answer diagnosed, or the question left without one); none
    → ``missing``."""
    item_id = item_id_at(shape, index)
    if not occs:
        expected = (markers.answer_marker(index, mk),)
        message = f"no {marker_label(mk.answer, index)} in the output"
        return ItemResult(shape.id, item_id, index, "missing", expected=expected, message=message)
    answered = [o for o in occs if o.answer is not None]
    good = [o for o in answered if o.reading is not None and o.reading.values is not None]
    good_aligned = [o for o in good if o.aligned]
    if good_aligned:
        return _answered(shape, text, index, good_aligned, mk, fields)
    if good:
        first = good[0]
        assert first.reading is not None and first.reading.values is not None
        span = _occ_span(text, first)
        return ItemResult(
            shape.id, item_id, index, "misaligned", first.reading.values, span, message=first.why
        )
    if answered:
        return _malformed(shape, text, index, answered[0], mk)
    return _unanswered(shape, text, index, occs[0], mk)


def _answered(
    shape: RequestShape,
    text: NormalisedText,
    index: int,
    good: list[_Occurrence],
    mk: Markers,
    fields: Sequence[OutputField] = (),
) -> ItemResult:
    """``ok`` with the first of an item's well-formed, aligned answers, or ``duplicate`` when
    a later one gives other values (:func:`_agree`)."""
    first = good[0]
    assert first.reading is not None and first.reading.values is not None
    values = first.reading.values
    span = _occ_span(text, first)
    item_id = item_id_at(shape, index)
    for other in good[1:]:
        assert other.reading is not None and other.reading.values is not None
        if not agree(fields, values, other.reading.values):
            where = _occ_span(text, other).start
            message = (
                f"{marker_label(mk.answer, index)} answered {len(good)} times with different "
                f"values: {_show(values)} at {span.start}, {_show(other.reading.values)} "
                f"at {where}"
            )
            return ItemResult(shape.id, item_id, index, "duplicate", values, span, message=message)
    note = first.why or (LENIENT_NOTE if first.reading.lenient else "")
    return ItemResult(shape.id, item_id, index, "ok", values, span, message=note)


def _malformed(
    shape: RequestShape, text: NormalisedText, index: int, o: _Occurrence, mk: Markers
) -> ItemResult:
    """``malformed``: the item's first answer, which no reading made well-formed."""
    assert o.answer is not None
    aname = marker_label(mk.answer, index)
    if o.reading is None:  # beyond MAX_OCCURRENCES: not read
        return ItemResult(
            shape.id,
            item_id_at(shape, index),
            index,
            "malformed",
            span=_occ_span(text, o),
            expected=("an answer",),
            message=f"{aname} repeated too often to read",
        )
    return _unread(shape, text, index, o.reading, _occ_span(text, o), f"{aname}: ")


def _unread(
    shape: RequestShape, text: NormalisedText, index: int, r: Reading, span: Span, lead: str = ""
) -> ItemResult:
    """``malformed``: an answer no reading made well-formed, with the diagnosis of its first
    reading (``r``); the message starts with ``lead``."""
    pos = text.position(text.orig(r.error_at))
    return ItemResult(
        shape.id,
        item_id_at(shape, index),
        index,
        "malformed",
        span=span,
        expected=r.expected,
        found=r.found,
        message=f"{lead}expected {' or '.join(r.expected)}, found {r.found!r} at {pos}",
    )


def _unanswered(
    shape: RequestShape, text: NormalisedText, index: int, o: _Occurrence, mk: Markers
) -> ItemResult:
    """``malformed``: the item's question repeated, and no answer after it."""
    assert o.question is not None
    # The first visible text after the question, found without copying the rest of the output
    # (an output of many unanswered questions asks this for each of them).
    visible = _VISIBLE.search(text.norm, o.q_end)
    found = (
        excerpt(text.norm, visible.start(), FOUND_CHARS, end="end of output", quote=False)
        if visible is not None
        else "end of output"
    )
    q_end = strip_span(text.norm, o.question.end, o.q_end)[1]
    pos = text.position(text.orig(q_end))
    return ItemResult(
        shape.id,
        item_id_at(shape, index),
        index,
        "malformed",
        span=text.span(o.question.start, q_end),
        expected=(markers.answer_marker(index, mk),),
        found=found,
        message=f"{marker_label(mk.question, index)} is not followed by {marker_label(mk.answer, index)}"
        + (" (the output ends)" if visible is None else f" (found {found!r})")
        + f" at {pos}",
    )


def _extra(
    shape: RequestShape,
    text: NormalisedText,
    index: int,
    occs: list[_Occurrence],
    mk: Markers = markers.DEFAULT,
) -> ItemResult:
    n = len(shape.item_ids)
    values: dict[str, Value] = {}
    for o in occs:
        if o.reading is not None and o.reading.values is not None:
            values = o.reading.values
            break
    first = occs[0]
    kind = marker_label(mk.answer if first.answer is not None else mk.question, index)
    message = f"{kind} is not an item of this request (it has items 1 to {n})"
    return ItemResult(
        shape.id, None, index, "extra", values, _occ_span(text, first), message=message
    )


def _show(values: Mapping[str, Value]) -> str:
    """``answer='18', reasoning='First…'`` for messages."""
    return ", ".join(f"{k}={_shown(_plain(v))!r}" for k, v in values.items())


def _shown(value: str) -> str:
    """A value as a message quotes it: cut at :data:`FOUND_CHARS`; an empty text (a leading
    reasoning left out) stays empty."""
    return excerpt(value, 0, FOUND_CHARS, quote=False) if value.strip() else value


def _plain(value: Value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return decimal_text(value)
    return str(value)


#: ``Answer:`` at a line's start, in any case, bold or not (``**Answer:**``).
_ANSWER_LABEL = re.compile(r"(?im)^[ \t]*(?:\*\*|__)?answer(?:\*\*|__)?[ \t]*:(?:\*\*|__)?[ \t]*")


def _recover_single(
    shape: RequestShape, text: NormalisedText, reader: AnswerReader
) -> list[ItemResult]:
    norm = text.norm
    item_id = shape.item_ids[0] if shape.item_ids else None
    s, e = strip_span(text.norm, 0, len(norm))
    if not text.original.strip(EDGE_NOISE):
        return [
            ItemResult(
                shape.id,
                item_id,
                1,
                "missing",
                expected=("an answer",),
                found="end of output",
                message="the output is empty",
            )
        ]
    # Where the answer may be: after an A[1]: marker if the model wrote one; inside a fence;
    # the whole output; the output without its first lines of chatter.
    starts: list[tuple[int, Marker | None]] = []
    # Lazily: only the first A[1] matters.
    for m in iter_markers(norm, reader.grammar.blueprint.markers):
        if m.kind == markers.ANSWER_PREFIX and m.index == 1:
            starts.append((m.end, m))
            break
    fence = re.search(r"(?m)^[ \t]*(```|~~~)[^\n]*\n", norm)
    if fence is not None:
        starts.append((fence.end(), None))
    # The label few-shot prompts write before each solved example's answer (``Answer: no``),
    # which a model imitating them writes too: the answer is what follows it.
    label = _ANSWER_LABEL.search(norm, s, e)
    if label is not None:
        starts.append((label.end(), None))
    starts.append((s, None))
    pos = s
    for _ in range(MAX_SINGLE_SKIP):
        nl = norm.find("\n", pos, e)
        if nl < 0:
            break
        pos = nl + 1
        starts.append((pos, None))
    first: Reading | None = None
    tried: set[int] = set()
    for st, marker in starts:
        if st in tried:
            continue
        tried.add(st)
        # Only the first reading's failure is reported: diagnosing the others (each the rest
        # of the output) would cost a grammar walk apiece for nothing.
        r = reader.read(text, st, e, marker, diagnose=first is None)
        if r.values is not None:
            note = LENIENT_NOTE if r.lenient else ""
            span = text.span(r.start, r.end)
            return [ItemResult(shape.id, item_id, 1, "ok", r.values, span, message=note)]
        if first is None:
            first = r
    assert first is not None
    return [_unread(shape, text, 1, first, text.span(first.start, first.end))]


#: A paragraph break: a blank line.
_PARAGRAPH = re.compile(r"\n[ \t]*\n")
#: How many paragraph breaks :func:`answered_twice` looks behind (each costs one match of the
#: grammar's regex on the text before it: a bound on outputs of many paragraphs).
MAX_PARAGRAPHS = 16


def answered_twice(
    shape: RequestShape, g: AnswerGrammar, output: str, results: list[ItemResult]
) -> list[ItemResult]:
    """The result of a one-item output that answers twice: ``duplicate`` when the text before
    a paragraph break is by itself a whole answer in the format (an ``Answer:`` label before
    it aside) whose values disagree with the answer read (:func:`agree`).

    A model that answers, then goes on imitating the prompt's solved examples with one it
    makes up (``Example 3: … The answer is 8.``), has its made-up answer read by the format's
    longest reading: a free text field takes in the real answer. Which answer is meant cannot
    be told, and neither is credited. Answers that agree, and outputs whose fields are all
    free text (any paragraph is a whole answer), are left as they are."""
    fields = g.blueprint.fields
    if len(results) != 1 or results[0].status != "ok" or all(f.type.free_text for f in fields):
        return results
    r = results[0]
    for k, m in enumerate(_PARAGRAPH.finditer(output)):
        if k == MAX_PARAGRAPHS:
            break
        head = output[: m.start()]
        label = _ANSWER_LABEL.match(head)
        items = match_output(g, head[label.end() :] if label else head)
        if not items:
            continue
        after: Mapping[str, Value] | None = r.values
        if r.span is not None and r.span.end_offset <= m.start():
            # The answer read is this paragraph's (``yes`` of ``yes\n\nno``): the answer
            # after it is the rest's.
            after = _read_after(g, output, m.end())
        if after is not None and not agree(fields, items[0].values, after):
            line = head.count("\n") + 1
            first, then = (
                _show({f.name: v[f.name] for f in fields if not f.type.free_text and f.name in v})
                for v in (items[0].values, after)
            )
            message = (
                f"the output answers twice with different values: {first} "
                f"in the paragraph ending on line {line}, {then} after it"
            )
            return [r._replace(status="duplicate", values=items[0].values, message=message)]
    return results


def _read_after(g: AnswerGrammar, output: str, start: int) -> dict[str, Value] | None:
    """The values of the answer ``output[start:]`` starts with (after an ``Answer:`` label,
    if any), or ``None``."""
    text = NormalisedText(output[start:])
    label = _ANSWER_LABEL.match(text.norm)
    at = label.end() if label is not None else 0
    return answer_reader(g).read(text, at, len(text.norm), None, diagnose=False).values
