"""Outputs with one-to-one lookalikes (full-width ASCII, Unicode spaces, the minus sign) are read
by the grammar's regex, normalised by ``str.translate``, as the recover scanner reads them: the
same statuses, values (text as the model wrote it) and spans."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from parse_paths import OUTPUT, TASK, assert_paths_agree, regex_path, scanner, view
from promptc.ir import Task
from promptc.parse.normalise import normalise_lookalikes
from promptc.parse.output import parse_output
from promptc.text import ONE_TO_ONE

#: ASCII character → the lookalikes that read as it.
LOOKALIKE_OF: dict[str, list[str]] = {}
for code, ascii_char in ONE_TO_ONE.items():
    LOOKALIKE_OF.setdefault(ascii_char, []).append(chr(code))


def _request(n: int) -> dict[str, object]:
    return {"id": "r0001", "kind": "batch", "item_ids": [f"q{i}" for i in range(n)]}


def test_translate_keeps_offsets() -> None:
    text = "Ａ［２］：\u00a0−１８ ∶【x】"
    norm, offsets = normalise_lookalikes(text)
    assert (norm, offsets) == ("A[2]: -18 :[x]", None)
    assert len(norm) == len(text)


def test_minus_sign_and_nbsp_are_read_by_the_regex_with_text_as_written(
    task_factory: Callable[..., Task],
) -> None:
    task = task_factory(kind="batch", batch_size=3)
    out = OUTPUT.replace("- 24", "\u2212 24").replace(
        "The answer is -5", "The\u00a0answer is \u22125"
    )
    fast = regex_path(task, _request(3), out)
    assert fast is not None
    assert fast[0].values["reasoning"].startswith("She had 48 \u2212 24")
    assert fast[2].values["answer"] == Decimal(-5)
    assert view(fast) == view(scanner(task, _request(3), out))


@pytest.mark.parametrize(
    "first",
    ["So 2. The answer is ２.", "So 2. The\u00a0answer is 2.", "So 2. The answer is 2.\u00a0"],
)
def test_strict_mode_names_the_failure_not_a_lookalike_it_reads(
    first: str, task_factory: Callable[..., Task]
) -> None:
    """Strict reads lookalikes as what they imitate: where an output fails, the diagnosis is
    made on what strict reads, at the output's own line:col."""
    task = task_factory(kind="batch", batch_size=3)
    out = f"A[1]: {first}\nA[2]: So 4. The answer is 4.\nA[3]: So 6. The answer is 6 (very)."
    results = parse_output(task, _request(3), out, mode="strict")
    assert [r.status for r in results] == ["malformed"] * 3
    assert results[2].message == "strict: expected '.', found ' (very).' at 3:28"
    assert results[0].message.startswith("strict: output rejected at 3:28 (item 3)")


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_the_regex_reads_lookalikes_as_the_scanner_does(data: st.DataObject) -> None:
    task = TASK
    chars = list(OUTPUT)
    spots = [k for k, c in enumerate(chars) if c in LOOKALIKE_OF]
    for k in data.draw(st.lists(st.sampled_from(spots), max_size=12, unique=True)):
        chars[k] = data.draw(st.sampled_from(LOOKALIKE_OF[chars[k]]))
    out = "".join(chars)
    request = _request(3)
    fast = regex_path(task, request, out)
    slow = scanner(task, request, out)
    assert [r.status for r in slow] == ["ok"] * 3
    assert fast is not None, "a one-to-one lookalike sent the output to the scanner"
    assert view(fast) == view(slow)
    assert view(parse_output(task, request, out)) == view(slow)


INVISIBLES = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_removed_characters_anywhere_read_as_the_slow_path_reads_them(
    data: st.DataObject,
) -> None:
    """Zero-width characters and soft hyphens, at any place: the whole parser gives exactly the
    scanner's statuses, values (text as written) and spans."""
    chars = list(OUTPUT)
    spots = data.draw(st.lists(st.integers(0, len(chars)), max_size=6))
    for k in sorted(spots, reverse=True):
        chars.insert(k, data.draw(st.sampled_from(INVISIBLES)))
    assert_paths_agree("".join(chars))


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_removed_characters_inside_reasoning_are_read_by_the_regex(data: st.DataObject) -> None:
    """As in GSM8K's own text (a zero-width space inside a solution): the grammar's regex reads
    the output, and the reasoning keeps them, as written."""
    lines = OUTPUT.split("\n")
    k = data.draw(st.integers(0, 2))
    body = lines[k]
    inner = range(len("A[1]: ") + 1, body.index(" The answer is") - 1)
    at = data.draw(st.lists(st.sampled_from(list(inner)), min_size=1, max_size=4, unique=True))
    for p in sorted(at, reverse=True):
        body = body[:p] + data.draw(st.sampled_from(INVISIBLES)) + body[p:]
    lines[k] = body
    out = "\n".join(lines)
    request = _request(3)
    fast = regex_path(TASK, request, out)
    assert fast is not None
    assert fast[k].values["reasoning"] == body[len("A[1]: ") : body.index(" The answer is")]
    assert view(fast) == view(scanner(TASK, request, out))
    assert view(parse_output(TASK, request, out)) == view(fast)


ANY_LOOKALIKE = [*INVISIBLES, "\u2212", "\u00a0", "\u2009", "\u3000", "\uff21", "\uff1a", "\u3010"]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_every_spec_and_strategy_reads_alike_on_both_paths(data: st.DataObject) -> None:
    """Lookalikes and removed characters put anywhere in the canonical output of any example
    spec and strategy: the whole parser (the grammar's regex first) gives the scanner's
    statuses and values (text as written), item by item."""
    from export_samples import CASES, grammar_of, valid_output

    spec, kind = data.draw(st.sampled_from(CASES))
    task, g = grammar_of(spec, kind)
    chars = list(valid_output(task, g))
    for _ in range(data.draw(st.integers(1, 5))):
        chars.insert(
            data.draw(st.integers(0, len(chars))), data.draw(st.sampled_from(ANY_LOOKALIKE))
        )
    out = "".join(chars)
    request = {"id": "r1", "kind": kind, "item_ids": [it.id for it in task.items[: g.n_items]]}
    slow = scanner(task, request, out)
    full = parse_output(task, request, out)
    assert [(r.status, r.values) for r in full] == [(r.status, r.values) for r in slow]
