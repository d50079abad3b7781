"""The fast path: the whole output matched by the grammar's one regular expression, results
read a column at a time. Most well-formed outputs end here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from itertools import chain, repeat
from typing import TYPE_CHECKING, Any

from promptc import markers
from promptc.ir import Value
from promptc.parse.align import check_alignment
from promptc.parse.normalise import (
    RESHAPING,
    NormalisedText,
    has_lookalikes,
    has_reshaping,
    non_ascii,
    translate_lookalikes,
)
from promptc.parse.results import ItemResult, Status
from promptc.parse.shape import RequestShape, item_id_at
from promptc.text import LineTable, Span
from promptc.values import plain_decimal, text_answers

if TYPE_CHECKING:
    from promptc.grammar.answer import AnswerGrammar

# --- fast path ------------------------------------------------------------------------------


def parse_fast(shape: RequestShape, g: AnswerGrammar, output: str) -> list[ItemResult] | None:
    """Results straight from the whole-output regex, or ``None`` if it does not match.

    Lookalikes that map one character to one (full-width ASCII, Unicode spaces, the minus
    sign; :data:`~promptc.parse.normalise.ONE_TO_ONE`) are normalised by ``str.translate``
    and the regex matched on the result, whose offsets are the original's: text values and
    repeated questions are sliced from the original, the other values read normalised.
    Outputs with characters that change the text's length (zero-width, ``\r``) take the
    slow path.
    """
    if output.isascii():
        if "\r" in output:
            return None
        norm = output
    else:
        rest = non_ascii(output)
        if has_reshaping(output, rest):
            return None if "\r" in output else _fast_removed(shape, g, output)
        norm = translate_lookalikes(output, rest) if has_lookalikes(rest) else output
    layout = _fast_layout(g)
    if layout is None:  # a grammar without the group layout below: its own regex parser
        if norm is not output:
            return None
        try:
            return results_from_parsed(
                shape, output, g.parse_strict_regex(output), g.blueprint.question_prefixes
            )
        except Exception:  # noqa: BLE001 - any mismatch means: take the slow path
            return None
    if norm is not output and layout.option_texts:
        return None
    m = layout.pattern_for(norm).fullmatch(norm)
    if m is None:
        return None
    if layout.columns is None:
        return _fast_items(shape, layout, m, output)
    return _fast_columns(shape, layout, m, output)


def _fast_items(
    shape: RequestShape, layout: _FastLayout, m: re.Match[str], output: str
) -> list[ItemResult] | None:
    """The fast path's results, one item at a time (for any group layout)."""
    regs = m.regs
    norm = m.string  # the output, or its one-to-one normalised form
    questions = shape.questions
    item_ids = shape.item_ids
    rid = shape.id
    read_q, prefixes = layout.read_question, layout.prefixes
    results: list[ItemResult] = []
    lines = LineTable(output)
    new = tuple.__new__  # the NamedTuples' own constructor, without its argument handling
    try:
        for index, q_group, start_group, end_group, fields in layout.items:
            values: dict[str, Value] = {}
            for name, group, read in fields:
                gs, ge = regs[group]
                values[name] = output[gs:ge] if read is None else read(norm[gs:ge])
            status: Status = "ok"
            why = ""
            if q_group:
                qs, qe = regs[q_group]
                written = output[qs:qe].rstrip(_ASCII_WS)
                if read_q is not None:
                    written = read_q(written)
                if index - 1 < len(questions) and written != questions[index - 1]:
                    aligned, why = check_alignment(shape, index, written, prefixes)
                    status = "ok" if aligned else "misaligned"
            results.append(
                new(
                    ItemResult,
                    (
                        rid,
                        item_ids[index - 1] if index <= len(item_ids) else None,
                        index,
                        status,
                        values,
                        Span(regs[start_group][0], regs[end_group][1], lines),
                        (),
                        None,
                        why,
                    ),
                )
            )
    except ValueError:  # a value the fragments accept and read_value refuses: read it slowly
        return None
    return results


def _fast_removed(shape: RequestShape, g: AnswerGrammar, output: str) -> list[ItemResult] | None:
    """The fast path for an output with characters that normalising removes (zero-width
    spaces and joiners, soft hyphens, a BOM): the regex is matched on the normalised text, and
    taken only if every removed character lies inside a text value, where the slow path too
    keeps it as written; text values are sliced from the output, spans mapped back to it."""
    layout = _fast_layout(g)
    if layout is None or layout.columns is None or layout.option_texts:
        return None
    text = NormalisedText(output)
    m = layout.pattern_for(text.norm).fullmatch(text.norm)
    if m is None:
        return None
    orig = text.orig
    inside: list[tuple[int, int]] = []  # the text values, as (start, end) in the output
    for col, read, _ in layout.columns.fields:
        if read is None:
            for k in col:
                a, b = m.span(k)
                if b > a:
                    inside.append((orig(a), orig(b - 1) + 1))
    inside.sort()
    spans = iter(inside)
    a = b = -1
    for removed in map(re.Match.start, RESHAPING.finditer(output)):  # no \r: invisibles
        while removed >= b:
            got = next(spans, None)
            if got is None:
                return None
            a, b = got
        if removed <= a:
            return None
    return _fast_columns(shape, layout, m, output, orig)


def _fast_columns(
    shape: RequestShape,
    layout: _FastLayout,
    m: re.Match[str],
    output: str,
    orig: Callable[[int], int] | None = None,
) -> list[ItemResult] | None:
    """The fast path's results, read a column (one field of every item) at a time.

    Equal to :func:`_fast_items` on the same layout: every step is a C-level map over the items
    (``Match.group`` with many groups, ``map``, ``zip``), so that no Python code runs per item
    except a value reader that has no batch form and :class:`Span`'s ``__init__``.
    """
    cols = layout.columns
    assert cols is not None
    n = cols.n
    # Typed values are read from the text matched (normalised, if it had lookalikes); text
    # values and questions are sliced from the output as the model wrote it.
    typed = m.group
    if orig is not None:  # characters were removed: offsets mapped back to the output
        group = _mapped_group(m, output, orig)
    else:
        group = typed if m.string is output else _original_group(m, output)
    one = n == 1  # Match.group returns the bare value, not a 1-tuple, for one
    columns: list[Sequence[Value]] = []
    try:
        for col, read, is_number in cols.fields:
            get = group if read is None else typed
            texts: tuple[str | None, ...] = (get(col[0]),) if one else get(*col)
            if None in texts:  # a group that did not take part: its slice was ""
                texts = tuple("" if t is None else t for t in texts)
            if read is None:
                if col[0] in layout.loose:
                    matched = texts if get is typed else ((typed(col[0]),) if one else typed(*col))
                    if not _tight(matched):  # type: ignore[arg-type]
                        return None
                columns.append(texts)  # type: ignore[arg-type]
            elif is_number:
                columns.append(_read_numbers(read, texts))  # type: ignore[arg-type]
            else:
                columns.append(list(map(read, texts)))  # type: ignore[arg-type]
    except ValueError:  # a value the fragments accept and read_value refuses: read it slowly
        return None
    values = _dicts(cols.names, columns, n)
    statuses: Iterable[Status] = repeat("ok")
    whys: Iterable[str] = repeat("")
    if cols.questions:
        raw: tuple[str | None, ...] = (group(cols.questions[0]),) if one else group(*cols.questions)
        if None in raw:
            raw = tuple("" if t is None else t for t in raw)
        written = tuple(map(str.rstrip, raw, repeat(_ASCII_WS)))  # type: ignore[arg-type]
        if layout.read_question is not None:
            written = tuple(map(layout.read_question, written))
        expected = tuple(shape.questions[:n])
        if written[: len(expected)] != expected:
            statuses, whys = _fast_alignment(shape, written, expected, layout.prefixes)
    # Match.start/end per group, not Match.regs, which builds a pair for every group.
    new = tuple.__new__  # the tuples' own constructor, without their argument handling
    spans = map(
        new,
        repeat(Span),
        zip(
            map(m.start, cols.starts) if orig is None else map(orig, map(m.start, cols.starts)),
            map(m.end, cols.ends) if orig is None else map(orig, map(m.end, cols.ends)),
            repeat(LineTable(output)),
        ),
    )
    item_ids = chain(shape.item_ids[:n], repeat(None))
    return list(
        map(
            new,
            repeat(ItemResult),
            zip(
                repeat(shape.id),
                item_ids,
                cols.indexes,
                statuses,
                values,
                spans,
                repeat(()),
                repeat(None),
                whys,
            ),
        )
    )


def _mapped_group(m: re.Match[str], output: str, orig: Callable[[int], int]) -> Callable[..., Any]:
    """``m.group`` of a match on the normalised text, sliced from ``output``: from the first
    character kept to the last, as the slow path slices a text value."""

    def one(k: int) -> str | None:
        a, b = m.span(k)
        if a < 0:
            return None
        return output[orig(a) : orig(b - 1) + 1] if b > a else ""

    def group(*groups: int) -> Any:
        texts = tuple(map(one, groups))
        return texts[0] if len(groups) == 1 else texts

    return group


def _original_group(m: re.Match[str], output: str) -> Callable[..., Any]:
    """``m.group`` that slices ``output`` (text of the same length as ``m.string``)."""

    def group(*groups: int) -> Any:
        texts = tuple(None if (a := m.start(k)) < 0 else output[a : m.end(k)] for k in groups)
        return texts[0] if len(groups) == 1 else texts

    return group


def _fast_alignment(
    shape: RequestShape, written: Sequence[str], expected: Sequence[str], prefixes: Sequence[str]
) -> tuple[list[Status], list[str]]:
    """Status and message of each item whose repeated question is not its item's word for
    word (the others are ``ok``)."""
    statuses: list[Status] = ["ok"] * len(written)
    whys = [""] * len(written)
    for k, (w, q) in enumerate(zip(written, expected)):
        if w != q:
            aligned, whys[k] = check_alignment(shape, k + 1, w, prefixes)
            statuses[k] = "ok" if aligned else "misaligned"
    return statuses, whys


def _dicts(
    names: tuple[str, ...], columns: Sequence[Sequence[Value]], n: int
) -> list[dict[str, Value]]:
    """Per item, field name → value, from the values by field (a display for one to three
    fields, which builds a dict several times faster than ``dict(zip(…))``)."""
    if len(names) == 1:
        (a,), (ca,) = names, columns
        return [{a: x} for x in ca]
    if len(names) == 2:
        a, b = names
        ca, cb = columns
        return [{a: x, b: y} for x, y in zip(ca, cb)]
    if len(names) == 3:
        a, b, c = names
        ca, cb, cc = columns
        return [{a: x, b: y, c: z} for x, y, z in zip(ca, cb, cc)]
    if not names:
        return [{} for _ in range(n)]
    return list(map(dict, map(zip, repeat(names), zip(*columns))))


def _read_numbers(read: Callable[[str], Value], texts: Sequence[str]) -> list[Value]:
    """``[read(t) for t in texts]`` for a number field, with ``value_reader``'s fast form
    (:func:`~promptc.values.plain_decimal`) checked once for the whole column joined; any
    text outside it sends the column through ``read``."""
    if plain_decimal("".join(texts)):
        try:
            return list(map(Decimal, texts))
        except InvalidOperation:
            pass
    return list(map(read, texts))


_ASCII_WS = " \t\n\r\f\v"


@dataclass(frozen=True)
class _FastColumns:
    """The groups of a layout whose items all have the same fields, by column: per field, its
    group in every item, its reader (``None`` for text) and whether it is a number; the
    question group of every item (empty unless auto-demo), where each item starts and ends."""

    n: int
    names: tuple[str, ...]
    fields: tuple[tuple[tuple[int, ...], Callable[[str], Value] | None, bool], ...]
    questions: tuple[int, ...]
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    indexes: tuple[int, ...]


@dataclass(frozen=True)
class _FastLayout:
    """The whole-output regex and, per item, the groups to read: (index, question group or 0,
    group where the item starts, group where it ends, [(field name, group, reader)]); the
    reader is ``None`` for text, which is read as is. ``columns`` holds the same groups by
    field when every item has the same fields (always, for the grammars promptc builds).
    ``read_question`` makes the question of a question group's text (indexed inputs:
    :meth:`~promptc.grammar.answer.AnswerGrammar.read_question`), ``None`` when it is the
    question itself; ``prefixes`` are the question's marker prefixes, for messages."""

    pattern: re.Pattern[str]
    items: tuple[
        tuple[int, int, int, int, tuple[tuple[str, int, Callable[[str], Value] | None], ...]], ...
    ]
    columns: _FastColumns | None = None
    read_question: Callable[[str], str] | None = None
    prefixes: tuple[str, ...] = ("Q",)
    #: An enum answered by its option's text (``answer_with``): a value the slow path reads
    #: as written first, so an output with lookalikes is left to it.
    option_texts: bool = False
    #: The text groups that ``pattern`` matches loosely (:func:`_loosened`): each value they
    #: take must be checked to be a ``TEXT`` (:func:`_tight`).
    loose: frozenset[int] = frozenset()
    #: ``pattern`` for text without a tab (:func:`_without_tabs`), or ``None``.
    tab_free: re.Pattern[str] | None = None

    def pattern_for(self, text: str) -> re.Pattern[str]:
        """The pattern to match ``text`` with: the same matches, the faster one."""
        if self.tab_free is not None and "\t" not in text:
            return self.tab_free
        return self.pattern


_FAST_PLANS: dict[int, tuple[AnswerGrammar, _FastLayout | None]] = {}


def _fast_layout(g: AnswerGrammar) -> _FastLayout | None:
    hit = _FAST_PLANS.get(id(g))
    if hit is not None and hit[0] is g:
        return hit[1]
    layout: _FastLayout | None = None
    try:
        layout = _make_fast_layout(g)
    except (AttributeError, KeyError, TypeError, ValueError, re.error):
        layout = None
    if len(_FAST_PLANS) > 256:
        _FAST_PLANS.clear()
    _FAST_PLANS[id(g)] = (g, layout)
    return layout


def _make_fast_layout(g: AnswerGrammar) -> _FastLayout | None:
    # AnswerGrammar.item_groups holds group numbers of this very pattern.
    if g.parse_regex is None:
        return None
    pattern = re.compile(g.parse_regex)
    text = {f.name for f in g.fields if f.type.free_text}
    # The grammar's own reading layout; text is read as is (no reader call on the hot path).
    items = [
        (
            i,
            q,
            start,
            end,
            tuple((name, group, None if name in text else read) for name, group, read in fields),
        )
        for i, start, end, q, fields in g.item_groups
    ]
    bp = g.blueprint
    columns = _fast_columns_of(g, items)
    loose: frozenset[int] = frozenset()
    if columns is not None:
        text_groups = [k for col, read, _ in columns.fields if read is None for k in col]
        pattern, loose = _loosened(pattern, text_groups)
    tab_free = _without_tabs(pattern.pattern)
    return _FastLayout(
        pattern,
        tuple(items),
        columns,
        g.read_question if bp.indexed else None,
        bp.question_prefixes or (bp.markers.question,),
        any(text_answers(f) for f in g.fields),
        loose,
        None if tab_free == pattern.pattern else re.compile(tab_free),
    )


#: The white-space runs of literals, as the grammar writes them, and what they are in text
#: without a tab: a literal space first.
_BLANK_RUNS = {"[ \\t]+": "  *", "[ \\t]*": " *"}


def _without_tabs(source: str) -> str:
    """``source`` with each white-space run of a literal (``[ \t]+``, ``[ \t]*``) spelled
    for text that holds no tab: ``  *`` and `` *``.

    On such text the two match alike, trying the same lengths in the same order; but a run
    that starts with a literal space lets the regex engine step back through a text value
    only to the spaces in it (it skips the positions a literal cannot start at), not
    character by character: about a sixth of matching a GSM8K output. Runs are found
    outside character classes only, past escapes.
    """
    if re.search(r"\(\?[a-zA-Z-]*x", source):
        return source  # a verbose group reads a space as nothing: left as it is
    out: list[str] = []
    i, n = 0, len(source)
    in_class = False
    while i < n:
        ch = source[i]
        if ch == "\\":
            out.append(source[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
            out.append(ch)
            i += 1
            continue
        run = source[i : i + 6]
        if run in _BLANK_RUNS:
            out.append(_BLANK_RUNS[run])
            i += 6
            continue
        if ch == "[":
            in_class = True
            out.append(ch)
            i += 1
            # A "]" first in a class (after "^") is a member, not its end.
            if source[i : i + 1] == "^":
                out.append("^")
                i += 1
            if source[i : i + 1] == "]":
                out.append("]")
                i += 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


#: A one-line text value loosened for the fast path: any run of the line.
_LOOSE_TEXT = "[^\\n]*"
#: What a one-line text value may not start or end with (``TEXT``'s white space; ``\n``
#: cannot occur in one).
_TEXT_EDGE = " \t\r\f\v"


def _loosened(
    pattern: re.Pattern[str], groups: Sequence[int]
) -> tuple[re.Pattern[str], frozenset[int]]:
    """``pattern`` with each of ``groups`` that holds a one-line text value (the ``TEXT``
    fragment: non-empty, white space at neither edge) loosened to any run of the line, and
    the groups loosened.

    The same match, faster: backtracking into ``TEXT`` from the end of a line (to find the
    literal after it) costs a nested group per character, about a third of matching a GSM8K
    output. At a loosened group both regexes try lengths from the longest down; the
    loosened one tries every length the other does, in the same order, and some more (none,
    or with white space at an edge), and the rest of the two regexes is the same. So when
    each loosened value of its first match is a ``TEXT`` (:func:`_tight`), that match is the
    original's first match too: everything the original would have tried before it, the
    loosened one tried and failed. When one is not, the output is left to the slow path,
    which reads it as the original regex would.
    """
    from promptc.values.dialects import fragment_terminals

    source = pattern.pattern
    text = fragment_terminals("text.lark")["TEXT"]
    names = {k: name for name, k in pattern.groupindex.items()}
    loose = set()
    for k in groups:
        tight = f"(?P<{names.get(k)}>{text})"
        if k in names and source.count(tight) == 1:
            source = source.replace(tight, f"(?P<{names[k]}>{_LOOSE_TEXT})")
            loose.add(k)
    if not loose:
        return pattern, frozenset()
    return re.compile(source), frozenset(loose)


def _tight(texts: tuple[str, ...]) -> bool:
    """Whether every one of ``texts`` is a ``TEXT``: non-empty, white space at neither edge
    (``str.strip`` gives back the very string when it strips nothing)."""
    return "" not in texts and tuple(map(str.strip, texts, repeat(_TEXT_EDGE))) == texts


def _fast_columns_of(
    g: AnswerGrammar,
    items: Sequence[
        tuple[int, int, int, int, tuple[tuple[str, int, Callable[[str], Value] | None], ...]]
    ],
) -> _FastColumns | None:
    """The layout's groups by column, or ``None`` if its items do not all have the same fields
    (each once) or it has no item."""
    if not items:
        return None
    names = tuple(name for name, _, _ in items[0][4])
    if len(set(names)) != len(names):
        return None
    for it in items:
        if tuple(name for name, _, _ in it[4]) != names:
            return None
    types = {f.name: f.type for f in g.fields}
    fields = tuple(
        (tuple(it[4][k][1] for it in items), items[0][4][k][2], types[name].plain_decimals)
        for k, name in enumerate(names)
    )
    questions = tuple(it[1] for it in items)
    if any(questions) and not all(questions):
        return None
    starts = tuple(it[2] for it in items)
    ends = tuple(it[3] for it in items)
    return _FastColumns(
        len(items),
        names,
        fields,
        questions if all(questions) else (),
        starts,
        ends,
        tuple(it[0] for it in items),
    )


def results_from_parsed(
    shape: RequestShape,
    output: str,
    items: Sequence[Any],
    prefixes: Sequence[str] = (markers.QUESTION_PREFIX,),
) -> list[ItemResult]:
    """Results of items parsed by the grammar (``prefixes``: the question's marker prefixes,
    for messages)."""
    text = NormalisedText(output)
    results: list[ItemResult] = []
    for it in items:
        idx = int(it.index)
        span = _parsed_span(text, it)
        aligned, why = check_alignment(shape, idx, getattr(it, "question", None), prefixes)
        results.append(
            ItemResult(
                shape.id,
                item_id_at(shape, idx),
                idx,
                "ok" if aligned else "misaligned",
                dict(it.values),
                span,
                (),
                None,
                why,
            )
        )
    return results


def _parsed_span(text: NormalisedText, item: Any) -> Span | None:
    span = getattr(item, "span", None)
    if span is None:
        return None
    start = getattr(span, "start_offset", None)
    end = getattr(span, "end_offset", None)
    if isinstance(start, int) and isinstance(end, int):
        return Span(start, end, text.lines)
    return None
