"""Spaces and tabs anywhere: outputs that differ from the canonical one only in blanks read
exactly as the recover scanner reads them, and the ones the grammar's regex matches are read
by it, with no scanner."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from parse_paths import OUTPUT, REQUEST, TASK, assert_paths_agree, fast_and_slow, scanner, view
from promptc.parse.output import grammar_for, parse_output

BLANKS = [" ", "\t", "  ", " \t", "\t ", "\t\t"]


def grammar_matches(out: str) -> bool:
    g = grammar_for(TASK, 3, "batch")
    return re.fullmatch(g.parse_regex, out) is not None


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_spaces_and_tabs_anywhere_read_as_the_scanner_reads_them(data: st.DataObject) -> None:
    """Each space replaced by a run of spaces and tabs, or a run put at any place: the
    grammar's regex either does not read the output or gives the scanner's statuses, values
    and spans."""
    chars = list(OUTPUT)
    spaces = [k for k, c in enumerate(chars) if c == " "]
    for k in data.draw(st.lists(st.sampled_from(spaces), max_size=6, unique=True)):
        chars[k] = data.draw(st.sampled_from(BLANKS))
    for k in sorted(data.draw(st.lists(st.integers(0, len(chars)), max_size=3)), reverse=True):
        chars.insert(k, data.draw(st.sampled_from(BLANKS)))
    assert_paths_agree("".join(chars))


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_tabs_inside_the_text_are_read_by_the_regex(data: st.DataObject) -> None:
    """A tab (or a run of blanks) between two words of a reasoning, or between the literal's
    words; a tab or a space just before the literal: the grammar's regex matches and reads
    the text as written, as the scanner does."""
    lines = OUTPUT.split("\n")
    k = data.draw(st.integers(0, 2))
    body = lines[k]
    edge = body.index(" The answer is")
    inside = [p for p, c in enumerate(body) if c == " " and p > len("A[1]: ") and p != edge]
    at = data.draw(st.lists(st.sampled_from(inside), min_size=1, max_size=4, unique=True))
    chars = list(body)
    for p in at:
        chars[p] = data.draw(st.sampled_from(BLANKS))
    chars[edge] = data.draw(st.sampled_from([" ", "\t"]))
    lines[k] = "".join(chars)
    out = "\n".join(lines)
    assert grammar_matches(out)
    fast, slow = fast_and_slow(out)
    assert fast is not None
    assert view(fast) == view(slow)


def test_an_item_s_span_starts_at_its_marker_on_both_paths() -> None:
    """Blanks before a marker are not the item's: its span starts at the marker."""
    out = " " + OUTPUT.replace("\nA[2]", "\n\t A[2]")
    fast, slow = fast_and_slow(out)
    assert fast is not None and view(fast) == view(slow)
    starts = [r.span.start.offset for r in slow if r.span is not None]
    assert [out[k : k + 4] for k in starts] == ["A[1]", "A[2]", "A[3]"]


def test_several_blanks_before_the_literal_are_the_literal_s() -> None:
    """``…in all.   The answer is 72.``: the reasoning ends at its last word, as the grammar's
    regex reads it; the blanks belong to the literal."""
    out = OUTPUT.replace("in all. The answer", "in all. \t  The answer")
    assert grammar_matches(out)
    assert_paths_agree(out)
    assert parse_output(TASK, REQUEST, out)[0].values["reasoning"].endswith("in all.")


def test_every_spec_and_strategy_with_tabs_for_spaces_reads_alike() -> None:
    """The canonical output of every example spec and strategy, each space a tab: the whole
    parser gives the scanner's statuses and values."""
    from export_samples import CASES, grammar_of, valid_output

    for spec, kind in CASES:
        task, g = grammar_of(spec, kind)
        for out in (valid_output(task, g), valid_output(task, g).replace(" ", "\t")):
            request = {
                "id": "r1",
                "kind": kind,
                "item_ids": [i.id for i in task.items[: g.n_items]],
            }
            slow = scanner(task, request, out)
            full = parse_output(task, request, out)
            assert [(r.status, r.values) for r in full] == [(r.status, r.values) for r in slow], (
                spec.name,
                kind,
            )


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_every_spec_and_strategy_with_blanks_anywhere_reads_alike(data: st.DataObject) -> None:
    """Blank runs put anywhere in the canonical output of any example spec and strategy (two
    text values side by side, a text value last, questions repeated, indexed inputs): the
    whole parser gives the scanner's statuses and values, item by item."""
    from export_samples import CASES, grammar_of, valid_output

    spec, kind = data.draw(st.sampled_from(CASES))
    task, g = grammar_of(spec, kind)
    chars = list(valid_output(task, g))
    for _ in range(data.draw(st.integers(1, 4))):
        chars.insert(data.draw(st.integers(0, len(chars))), data.draw(st.sampled_from(BLANKS)))
    out = "".join(chars)
    request = {"id": "r1", "kind": kind, "item_ids": [i.id for i in task.items[: g.n_items]]}
    slow = scanner(task, request, out)
    full = parse_output(task, request, out)
    assert [(r.status, r.values, r.span) for r in full] == [
        (r.status, r.values, r.span) for r in slow
    ]
