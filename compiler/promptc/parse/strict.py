"""Whole outputs read by the grammar's own regex; ``strict`` mode.

Every output is first matched, as a whole, against its grammar's regex
(:attr:`~promptc.grammar.answer.AnswerGrammar.parse_regex`, the build's ``answer.parse.regex``),
and its items are read from the groups of the match (:attr:`~promptc.grammar.answer.
AnswerGrammar.parse_groups`): one regex match per output, which is where most well-formed
outputs end. The lookalikes that map one character to one (full-width ASCII, Unicode spaces,
the minus sign; :data:`~promptc.text.ONE_TO_ONE`) are read as the ASCII they
imitate: the regex is matched on the output so normalised, whose offsets are the output's;
typed values are read from it, text values and repeated questions sliced from the output as
written. Where normalising removes characters (zero-width ones, soft hyphens), offsets are
mapped back, and the regex's reading is taken only where each of them lies inside a text
value.

An output the regex does not read goes, in ``recover`` mode, to the marker scanner
(:mod:`promptc.parse.recover`); in ``strict`` mode the lark grammar says where and why
(:mod:`promptc.parse.diagnosis`), and the item where it stopped gets the diagnosis.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import lru_cache
from typing import NamedTuple

from promptc import markers
from promptc.errors import Location, OutputParseError
from promptc.grammar.answer import AnswerGrammar
from promptc.grammar.items import ParsedItem
from promptc.grammar.lark_source import layout
from promptc.ir import Markers, OutputField, Value
from promptc.parse.align import check_alignment
from promptc.parse.diagnosis import OUTPUT_FILE, diagnose_output, output_error
from promptc.parse.normalise import RESHAPING, NormalisedText, normalise_lookalikes
from promptc.parse.reader import SplitBound, splits_text
from promptc.parse.results import FOUND_CHARS, ItemResult, Status
from promptc.parse.scan import marker_pattern
from promptc.parse.shape import RequestShape, item_id_at
from promptc.text import LineTable, Span, excerpt
from promptc.values import ValueOutOfBounds, text_answers

_ASCII_WS = " \t\n\r\f\v"

#: Per field of an item: its name, its group in the regex, and the field (``None`` for text,
#: which is sliced from the output as written).
_FieldGroup = tuple[str, int, OutputField | None]


class View(NamedTuple):
    """What the regex matches of an output: ``text``, and the offset in the output of each
    offset in it (``at``; ``None`` when the two are the same)."""

    text: str
    at: Callable[[int], int] | None = None


def _same(offset: int) -> int:
    return offset


class WholeReader:
    """Reads the items of ``grammar``'s outputs from a match of its regex.

    Build it with :func:`whole_reader` (one per grammar, kept).
    """

    def __init__(self, grammar: AnswerGrammar) -> None:
        self.grammar = grammar
        self.pattern = re.compile(grammar.parse_regex)
        groups = self.pattern.groupindex
        by_name = {f.name: f for f in grammar.fields}
        #: Per item: its index, the groups where it starts and ends, its question's group
        #: (0 for none), and its fields.
        self.items: tuple[tuple[int, int, int, int, tuple[_FieldGroup, ...]], ...] = tuple(
            (
                it.index,
                groups[it.start],
                groups[it.end],
                groups[it.question] if it.question else 0,
                tuple(
                    (
                        name,
                        groups[group],
                        None if by_name[name].type.free_text else by_name[name],
                    )
                    for name, group in it.fields
                ),
            )
            for it in grammar.parse_groups
        )
        self._splits_text = splits_text(grammar)
        self._split = SplitBound.of(grammar)
        self._is_text = {f.name: f.type.free_text for f in grammar.fields}
        # An enum answered by its option's text is read as written: an output with
        # lookalikes is not read from its normalised form.
        self._as_written = any(text_answers(f) for f in grammar.fields)

    def view(self, output: str) -> View | None:
        """What the regex matches of ``output``: the output itself, or its lookalikes
        normalised (:func:`~promptc.parse.normalise.normalise_lookalikes`, offsets mapped back
        where characters were removed); ``None`` for an output with ``\\r``, or where a value
        read as written (an option's text) meets a lookalike or a removed character."""
        if "\r" in output:
            return None
        norm, offsets = normalise_lookalikes(output)
        if norm == output:
            return View(output)
        if self._as_written:
            return None
        return View(norm, None if offsets is None else offsets.__getitem__)

    def read(self, output: str, view: View) -> list[ParsedItem] | None:
        """The items of ``output`` if its ``view`` (:meth:`view`, or the output as written)
        matches the regex; else ``None``. Typed values are read from the view, text values
        and questions sliced from the output, from their first character to their last.

        Where normalising removed characters (zero-width ones, soft hyphens), the items are
        read only if every removed character lies inside a text value, where the recover
        scanner too keeps it as written; else ``None``.

        Raises:
            OutputParseError: An answer too long to split between two text fields
                (``output-too-long``), or a value of the right form past its bounds
                (``value-out-of-bounds``), at its line:col.
        """
        self._check_length(output)
        text, at = view.text, view.at or _same
        m = self.pattern.fullmatch(text)
        if m is None:
            return None
        lines = LineTable(output)
        regs = m.regs
        items: list[ParsedItem] = []
        for index, start, end, question_group, fields in self.items:
            values: dict[str, Value] = {}
            spans: dict[str, Span] = {}
            for name, group, field in fields:
                a, b = regs[group]
                first, stop = at(a), at(b - 1) + 1
                values[name] = (
                    output[first:stop] if field is None else _value(field, text[a:b], first, lines)
                )
                spans[name] = Span(first, stop, lines)
            question = question_span = None
            if question_group:
                a, b = regs[question_group]
                first = at(a)
                written = output[first : at(b - 1) + 1].rstrip(_ASCII_WS)
                question = markers.read_question(written, self.grammar.blueprint.question_prefixes)[
                    0
                ]
                question_span = Span(first, first + len(written), lines)
            span = Span(at(regs[start][0]), at(regs[end][1]), lines)
            items.append(ParsedItem(index, values, span, spans, question, question_span))
        if view.at is not None and not self._removed_inside_text(output, items):
            return None
        return items

    def _removed_inside_text(self, output: str, items: Sequence[ParsedItem]) -> bool:
        """Whether every character normalising removes from ``output`` lies inside (not at an
        edge of) a text value of ``items``."""
        inside = sorted(
            (span.start_offset, span.end_offset)
            for it in items
            for name, span in it.field_spans.items()
            if self._is_text[name]
        )
        k = 0
        for removed in map(re.Match.start, RESHAPING.finditer(output)):
            while k < len(inside) and removed >= inside[k][1]:
                k += 1
            if k == len(inside) or removed <= inside[k][0]:
                return False
        return True

    def _check_length(self, output: str) -> None:
        """Refuses an answer too costly to split between its text fields (over-long, or
        holding too many of their separators: :class:`~promptc.parse.reader.SplitBound`),
        before matching it."""
        if not self._splits_text:
            return
        lines = [output] if self.grammar.blueprint.multiline else output.split("\n")
        start = 0
        for line in lines:
            refused = self._split.refusal(line)
            if refused is not None:
                raise output_error(output, start, [refused[0]], refused[1], "output-too-long")
            start += len(line) + 1


def _value(field: OutputField, text: str, at: int, lines: LineTable) -> Value:
    """The value of ``field`` read from ``text``, which stands at offset ``at`` of the output
    (``lines``).

    Raises:
        OutputParseError: The value is of the right form but past a bound, or the reader
            refuses what the grammar accepted (a promptc bug), at ``at``.
    """
    try:
        return field.type.read(field, text)
    except ValueOutOfBounds as e:  # the right form, past a bound: a malformed answer
        line, col, _ = lines.position(at)
        raise OutputParseError(
            f"cannot read {field.name}: {e}",
            offset=at,
            expected=(f"{field.name}: {e.expected}",),
            found=e.found,
            location=Location(OUTPUT_FILE, line, col),
            code="value-out-of-bounds",
        ) from None
    except ValueError as e:  # the fragments and the reader disagree: a promptc bug
        line, col, _ = lines.position(at)
        raise OutputParseError(
            f"cannot read {field.name}: {e}",
            location=Location(OUTPUT_FILE, line, col),
            code="value-unreadable",
        ) from None


@lru_cache(maxsize=64)
def whole_reader(grammar: AnswerGrammar) -> WholeReader:
    """The whole-output reader of ``grammar``, made once per grammar (it compiles the regex)."""
    return WholeReader(grammar)


# --------------------------------------------------------------------------------------------
# The two modes' use of it
# --------------------------------------------------------------------------------------------


def match_output(grammar: AnswerGrammar, output: str) -> list[ParsedItem] | None:
    """The items of ``output`` read by the grammar's regex (lookalikes as :meth:`WholeReader.
    view` reads them), or ``None`` where it does not read them all: ``recover`` mode's
    first step."""
    reader = whole_reader(grammar)
    view = reader.view(output)
    if view is None:
        return None
    try:
        return reader.read(output, view)
    except OutputParseError:  # too long or out of bounds: the scanner says which item
        return None


def parse_strict(grammar: AnswerGrammar, output: str) -> list[ParsedItem]:
    """The items of an output that matches ``grammar`` exactly: ``strict`` mode.

    Raises:
        OutputParseError: At the output's line:col, with the expected tokens and what was
            found there (:func:`~promptc.parse.diagnosis.diagnose_output`).
    """
    reader = whole_reader(grammar)
    view = reader.view(output)
    items = None if view is None or view.text is output else reader.read(output, view)
    if items is None:  # no lookalikes, or read as written: a text value may hold them
        items = reader.read(output, View(output))
    if items is None:
        raise _diagnosis(grammar, output, view)
    return items


def _diagnosis(grammar: AnswerGrammar, output: str, view: View | None) -> OutputParseError:
    """Why ``output`` is not in ``grammar``: diagnosed on its lookalikes normalised, as strict
    reads it (a full-width ``ｐｏｓｉｔｉｖｅ`` is no failure), the offset mapped back."""
    if view is None or view.text is output:
        return diagnose_output(grammar, output)
    err = diagnose_output(grammar, view.text)
    if err.offset is None:  # read as written only where a removed character stands
        return diagnose_output(grammar, output)
    offset = (view.at or _same)(err.offset)
    return output_error(output, offset, err.expected, err.found or "", err.code)


def item_results(
    shape: RequestShape, grammar: AnswerGrammar, items: Sequence[ParsedItem]
) -> list[ItemResult]:
    """The results of the items of a whole output (:func:`match_output`, :func:`parse_strict`):
    ``ok``, or ``misaligned`` where an Auto-Demo item repeats another item's question."""
    bp = grammar.blueprint
    prefixes = bp.question_prefixes or (bp.markers.question,)
    results: list[ItemResult] = []
    for it in items:
        aligned, why = check_alignment(shape, it.index, it.question, prefixes)
        status: Status = "ok" if aligned else "misaligned"
        item_id = item_id_at(shape, it.index)
        results.append(
            ItemResult(shape.id, item_id, it.index, status, it.values, it.span, message=why)
        )
    return results


def strict_results(shape: RequestShape, grammar: AnswerGrammar, output: str) -> list[ItemResult]:
    """``strict`` mode: the results of an output that matches the grammar as a whole, else the
    diagnosis at the item where it stopped and every other item rejected.

    An Auto-Demo question may hold a line that starts as a marker does (``A[1]: 4`` in a
    transcript): the shared grammar ends a repeated question before such a line, so where the
    output repeats the request's own question, its marker-like lines are masked (their prefix
    written as private-use characters of the same length: every offset stays) in the output
    and the shape alike, as the request's pinned GBNF admits them."""
    masked = _masked(shape, grammar, output)
    if masked is not None:
        shape, output = masked
    try:
        items = parse_strict(grammar, output)
    except Exception as exc:  # noqa: BLE001 - a mismatch, or any parser failure
        return _strict_failure(shape, output, exc, grammar.blueprint.markers)
    return item_results(shape, grammar, items)


def _masked(
    shape: RequestShape, grammar: AnswerGrammar, output: str
) -> tuple[RequestShape, str] | None:
    """The shape and output with the marker-like lines of the questions masked (see
    :func:`strict_results`); ``None`` when no question holds one."""
    if not shape.kind.repeats_questions or not any("\n" in q for q in shape.questions):
        return None
    bp = grammar.blueprint
    # Where the grammar's question stops: a line that starts, after its lead, with the answer
    # marker or a question prefix and the index's opening (grammar.lark_source's QUESTION).
    prefixes = "|".join(re.escape(p) for p in (bp.markers.answer, *bp.question_prefixes) if p)
    lead, index_open = layout("MARKER_LEAD"), re.escape(markers.INDEX_OPEN)
    line = re.compile(rf"(?<=\n)({lead})({prefixes})(?={index_open})", re.IGNORECASE)

    def mask(text: str) -> str:
        return line.sub(lambda m: m.group(1) + "\ue000" * len(m.group(2)), text)

    questions = tuple(mask(q) for q in shape.questions)
    if questions == shape.questions:
        return None
    for q, masked in zip(shape.questions, questions):
        if q != masked:
            output = output.replace(q, masked)
    return replace(shape, questions=questions), output


def _error_parts(output: str, exc: Exception) -> tuple[int, tuple[str, ...]]:
    """Offset and expected tokens of a strict parse failure, from the error's own fields.

    Any other exception (a parser failure that is not a mismatch) is placed at the start.
    """
    if isinstance(exc, OutputParseError) and exc.offset is not None:
        offset = max(0, min(exc.offset, len(output)))
        return offset, exc.expected or ("an answer",)
    return 0, ("an answer",)


def _failed_item(
    shape: RequestShape, output: str, offset: int, expected: tuple[str, ...], mk: Markers
) -> tuple[int, Status]:
    """The item where the grammar stopped at ``offset``, and whether it is ``missing`` (its
    marker was due and only later items or the end follow) or ``malformed``."""
    n = len(shape.item_ids)
    status: Status = "malformed"
    at = 1
    if shape.kind.one_item:
        return at, status
    last: re.Match[str] | None = None
    pattern = marker_pattern(mk.question, mk.answer)
    for m in pattern.finditer(output, 0, offset + 1):
        if 1 <= int(m.group("index")) <= n and m.start() <= offset:
            last = m
    if last is not None:
        at = int(last.group("index"))
        is_answer = last.group("prefix").casefold() == mk.answer.casefold()
        if is_answer and "\n" in output[last.end() : offset] and at < n:
            at += 1  # the item's line ended well: the grammar stopped before the next one
    wanted = [
        j
        for j in range(at + 1, n + 1)
        if any(
            markers.answer_marker(j, mk) in t or markers.question_marker(j, mk) in t
            for t in expected
        )
    ]
    if wanted:
        at = wanted[0]  # the item's answer is complete; the next marker was due
    # Nothing for this item where it was due, only later items or the end: missing.
    rest = output[offset:].lstrip()
    nxt = pattern.match(rest)
    if (last is None or at != int(last.group("index"))) and (
        not rest or (nxt is not None and int(nxt.group("index")) > at)
    ):
        status = "missing"
    return at, status


def _strict_failure(
    shape: RequestShape, output: str, exc: Exception, mk: Markers = markers.DEFAULT
) -> list[ItemResult]:
    text = NormalisedText(output)
    offset, expected = _error_parts(output, exc)
    found = excerpt(output, offset, FOUND_CHARS, end="end of output", quote=False)
    pos = text.position(offset)
    at, status = _failed_item(shape, output, offset, expected, mk)
    reason = f"expected {' or '.join(expected)}, found {found!r} at {pos}"
    rejected = (
        f"strict: output rejected at {pos} (item {at}); parse with mode recover to "
        "keep well-formed items"
    )
    results: list[ItemResult] = []
    for i, item_id in enumerate(shape.item_ids, 1):
        if i == at:
            span = Span(offset, offset, text.lines)
            message = f"strict: {reason}"
            results.append(
                ItemResult(shape.id, item_id, i, status, {}, span, expected, found, message)
            )
        else:
            results.append(ItemResult(shape.id, item_id, i, "malformed", message=rejected))
    return results
