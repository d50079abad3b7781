"""Outputs in the grammar's JSON form are read by the same parser, item by item: one reader of
that form, beside its writer (the JSON Schema), used by ``promptc parse`` and ``run --parse``."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal

import pytest
from grammar_reading import answer_json
from promptc.grammar.answer import build_grammar
from promptc.grammar.items import ParsedItem, Span
from promptc.ir import Task
from promptc.parse.output import parse_output


def _request(n: int, kind: str = "batch") -> dict[str, object]:
    return {"id": "r0001", "kind": kind, "item_ids": [f"q{i}" for i in range(n)]}


def test_json_written_by_to_json_reads_back(task_factory: Callable[..., Task]) -> None:
    task = task_factory(kind="batch", batch_size=2)
    g = build_grammar(task, 2, "batch")
    items = [
        ParsedItem(1, {"reasoning": "2 + 2 = 4.", "answer": Decimal(4)}, Span(0, 0, None), {}),  # type: ignore[arg-type]
        ParsedItem(2, {"reasoning": "Half of 9.", "answer": Decimal("4.5")}, Span(0, 0, None), {}),  # type: ignore[arg-type]
    ]
    out = json.dumps(answer_json(g, items))
    for mode in ("recover", "strict"):
        results = parse_output(task, _request(2), out, mode=mode)  # type: ignore[arg-type]
        assert [(r.status, r.values["answer"], r.span) for r in results] == [
            ("ok", Decimal(4), None),
            ("ok", Decimal("4.5"), None),
        ]


def test_json_entries_are_judged_each_on_its_own(task_factory: Callable[..., Task]) -> None:
    task = task_factory(kind="batch", batch_size=3)
    out = json.dumps(
        {
            "answers": [
                {"index": 1, "reasoning": "So.", "answer": 7},
                {"index": 3, "reasoning": "", "answer": 2},
            ]
        }
    )
    results = parse_output(task, _request(3), out)
    assert [(r.index, r.status) for r in results] == [(1, "ok"), (2, "missing"), (3, "malformed")]
    assert results[0].values == {"reasoning": "So.", "answer": Decimal(7)}


def test_single_answer_object_and_text_that_is_not_the_json_form(
    task_factory: Callable[..., Task],
) -> None:
    task = task_factory(kind="single", batch_size=1)
    out = json.dumps({"reasoning": "3 * 3 = 9.", "answer": 9})
    (r,) = parse_output(task, _request(1, "single"), out)
    assert (r.status, r.values["answer"]) == ("ok", Decimal(9))
    (r,) = parse_output(task, _request(1, "single"), "{not json} The answer is 9.")
    assert (r.status, r.values["answer"]) == ("ok", Decimal(9))
    assert r.span is not None


def test_a_line_break_in_a_json_string_stays_in_its_item(
    task_factory: Callable[..., Task],
) -> None:
    """The schema lets a text field hold any string; the text form holds an item on its line.
    A line break inside the string is read as a space — never a malformed item, and never a
    marker on the string's second line taken for another item's answer."""
    task = task_factory(kind="batch", batch_size=2)
    for reasoning, read in [("two\nlines", "two lines"), ("r \r\n A[2]: 5", "r A[2]: 5")]:
        out = json.dumps(
            {
                "answers": [
                    {"index": 1, "reasoning": reasoning, "answer": 7},
                    {"index": 2, "reasoning": "ok", "answer": 8},
                ]
            }
        )
        results = parse_output(task, _request(2), out)
        assert [(r.index, r.status, r.values) for r in results] == [
            (1, "ok", {"reasoning": read, "answer": Decimal(7)}),
            (2, "ok", {"reasoning": "ok", "answer": Decimal(8)}),
        ]
    # One answer holds several lines in its text form: kept as they are.
    single = task_factory(kind="single", batch_size=1)
    (r,) = parse_output(
        single, _request(1, "single"), json.dumps({"reasoning": "a\nb", "answer": 3})
    )
    assert (r.status, r.values["reasoning"]) == ("ok", "a\nb")


def test_json_numbers_are_read_exactly(task_factory: Callable[..., Task]) -> None:
    """As the text form reads them: never through a float."""
    task = task_factory(kind="batch", batch_size=2)
    out = (
        '{"answers": [{"index": 1, "reasoning": "a", "answer": 12345678901234567890.5}, '
        '{"index": 2, "reasoning": "b", "answer": 3.14159265358979323846}]}'
    )
    results = parse_output(task, _request(2), out)
    assert [(r.status, r.values["answer"]) for r in results] == [
        ("ok", Decimal("12345678901234567890.5")),
        ("ok", Decimal("3.14159265358979323846")),
    ]


def test_an_entry_not_of_its_type_is_malformed_and_the_others_are_read(
    task_factory: Callable[..., Task],
) -> None:
    """A server that takes the schema without enforcing it can return an entry whose value
    is no value of its type: that item is malformed, naming what was expected, and the
    well-formed entries are read as in the text form — never every item ``missing``."""
    task = task_factory(kind="batch", batch_size=3)
    good = {"reasoning": "So.", "answer": 7}
    for bad in [
        {"reasoning": "So.", "answer": "seven"},
        {"reasoning": "So."},
        {"reasoning": "So.", "answer": None},
        {"reasoning": "So.", "answer": [7]},
        {"reasoning": None, "answer": 7},
    ]:
        entries = [{"index": 1, **good}, {"index": 2, **bad}, {"index": 3, **good}, "not an entry"]
        results = parse_output(task, _request(3), json.dumps({"answers": entries}))
        assert [(r.index, r.status) for r in results] == [
            (1, "ok"),
            (2, "malformed"),
            (3, "ok"),
        ], bad
        assert results[0].values == results[2].values == {"reasoning": "So.", "answer": 7}
        assert results[1].expected


def test_an_answer_cut_inside_its_list_keeps_the_entries_it_finished(
    task_factory: Callable[..., Task],
) -> None:
    """Cut at max_tokens (or broken further on), the entries whose objects closed are read
    whole; only the items after them are truncated. A JSON answer that closed, though the
    model stopped at the budget, lost nothing."""
    task = task_factory(kind="batch", batch_size=4)
    whole = {"answers": [{"index": i, "reasoning": "r", "answer": i} for i in range(1, 5)]}
    text = json.dumps(whole)
    cut = text[: text.index('{"index": 3') + 12]
    results = parse_output(task, _request(4), cut, finish_reason="length")
    assert [(r.index, r.status) for r in results] == [
        (1, "ok"),
        (2, "ok"),
        (3, "truncated"),
        (4, "truncated"),
    ]
    assert results[1].values == {"reasoning": "r", "answer": Decimal(2)}
    results = parse_output(task, _request(4), cut[:-1] + "]} oops")  # not JSON further on
    assert [r.status for r in results] == ["ok", "ok", "missing", "missing"]
    results = parse_output(task, _request(4), text, finish_reason="length")
    assert [r.status for r in results] == ["ok"] * 4
    # Not the JSON form at all: read as text, as before.
    assert [r.status for r in parse_output(task, _request(4), '{"answers": 3')] == ["missing"] * 4


def test_a_marker_quoted_inside_a_json_string_is_that_strings_text(
    task_factory: Callable[..., Task],
) -> None:
    # The JSON says which entry each value belongs to: item 4's reasoning quoting "A[1]: …"
    # stays item 4's text, even when another entry is malformed (the recover path).
    task = task_factory(kind="batch", batch_size=4)
    quoting = "Unlike problem 1 (A[1]: 5 apples The answer is 999.), here we add"
    out = json.dumps(
        {
            "answers": [
                {"index": 1, "reasoning": "step 1", "answer": 10},
                {"index": 2, "reasoning": "Q[3]: not a question A[2]: 7", "answer": 20},
                {"index": 3, "reasoning": "", "answer": 30},
                {"index": 4, "reasoning": quoting, "answer": 40},
            ]
        }
    )
    results = parse_output(task, _request(4), out)
    assert [(r.index, r.status) for r in results] == [
        (1, "ok"),
        (2, "ok"),
        (3, "malformed"),
        (4, "ok"),
    ]
    assert results[0].values == {"reasoning": "step 1", "answer": Decimal(10)}
    assert results[1].values == {"reasoning": "Q[3]: not a question A[2]: 7", "answer": Decimal(20)}
    assert results[3].values == {"reasoning": quoting, "answer": Decimal(40)}


def test_json_numbers_in_exponent_form_are_the_numbers_they_are(
    task_factory: Callable[..., Task],
) -> None:
    # 1e2 and 0.0000001 are JSON numbers of the schema's type: read as 100 and 1E-7, not
    # written back as "1E+2" for the format to refuse. An exponent no answer could hold stays
    # as written, and is malformed.
    task = task_factory(kind="batch", batch_size=3)
    out = json.dumps(
        {
            "answers": [
                {"index": 1, "reasoning": "s", "answer": 1e2},
                {"index": 2, "reasoning": "s", "answer": 0.0000001},
                {"index": 3, "reasoning": "s", "answer": 1},
            ]
        }
    ).replace('"answer": 1}', '"answer": 1e999999}')
    results = parse_output(task, _request(3), out)
    assert [(r.status, r.values.get("answer")) for r in results] == [
        ("ok", Decimal(100)),
        ("ok", Decimal("1E-7")),
        ("malformed", None),
    ]
    assert results[2].message.endswith("found a number 1E+999999")  # beyond the reader's bound
    # An exponent past what a Decimal can hold: malformed, never an exception.
    huge = out.replace('"answer": 1e999999}', '"answer": 4E1000000000000000000}')
    assert parse_output(task, _request(3), huge)[2].status == "malformed"
    # Past that bound, a number written out in full is read as written.
    tiny = out.replace('"answer": 1e999999}', '"answer": 0.' + "0" * 1001 + "1}")
    assert parse_output(task, _request(3), tiny)[2].values["answer"] == Decimal("1E-1002")


def test_an_entry_without_its_answer_is_malformed_whatever_its_reasoning_says(
    task_factory: Callable[..., Task],
) -> None:
    # "answer": null beside a reasoning that states the answer: the JSON says the answer
    # field holds nothing, so the item is malformed (never the number lifted from the text).
    task = task_factory(kind="batch", batch_size=4)
    said = "3 * 6 = 18, so the answer is 18."
    out = json.dumps(
        {
            "answers": [
                {"index": 1, "reasoning": said, "answer": None},
                {"index": 2, "reasoning": said},
                {"index": 3, "reasoning": said, "answer": "unknown"},
                {"index": 4, "reasoning": said, "answer": 18},
            ]
        }
    )
    results = parse_output(task, _request(4), out)
    assert [r.status for r in results] == ["malformed", "malformed", "malformed", "ok"]
    assert results[0].message == "A[1]: answer: expected a number, found null"
    assert results[1].message == (
        "A[2]: answer: expected a number, found nothing (the key is left out)"
    )
    assert results[2].message == "A[3]: answer: expected a number, found a string 'unknown'"
    assert results[0].expected == ("answer: expected a number",)
    assert [r.found for r in results] == [
        "null",
        "nothing (the key is left out)",
        "a string 'unknown'",
        None,
    ]
    assert results[3].values == {"reasoning": said, "answer": Decimal(18)}


def test_an_entry_the_text_form_cannot_read_either_says_what_the_json_lacks(
    task_factory: Callable[..., Task],
) -> None:
    # A reasoning with no answer in it reads as malformed in the text form too; the message
    # says the key is missing, not what the text form found where the number belonged.
    task = task_factory(kind="batch", batch_size=2)
    out = json.dumps(
        {"answers": [{"index": 1, "reasoning": "r"}, {"index": 2, "reasoning": "s", "answer": 2}]}
    )
    results = parse_output(task, _request(2), out)
    assert [r.status for r in results] == ["malformed", "ok"]
    assert results[0].message == (
        "A[1]: answer: expected a number, found nothing (the key is left out)"
    )
    assert results[0].found == "nothing (the key is left out)"


def test_an_index_that_is_no_position_a_key_given_twice_and_one_entry_in_a_list(
    task_factory: Callable[..., Task],
) -> None:
    task = task_factory(kind="batch", batch_size=3)
    out = (
        '{"answers": [{"index": "1", "reasoning": "a", "answer": 1}, '
        '{"index": 2, "reasoning": "b", "answer": 2, "answer": 3}, '
        '{"index": 3, "reasoning": "c", "answer": 4}]}'
    )
    results = parse_output(task, _request(3), out)
    assert [(r.index, r.status) for r in results] == [(1, "malformed"), (2, "malformed"), (3, "ok")]
    assert results[0].message == ("A[1]: index: expected a whole number from 1, found a string '1'")
    assert results[1].message == (
        "A[2]: answer: expected a number, found the key given twice, with different values"
    )
    # A stray entry with no position, where another entry answers that item by its index:
    # the item's own answer stands.
    stray = (
        '{"answers": [{"index": null, "reasoning": "x", "answer": 7}, '
        '{"index": 1, "reasoning": "a", "answer": 1}, '
        '{"index": 2, "reasoning": "b", "answer": 2}, '
        '{"index": 3, "reasoning": "c", "answer": 4}]}'
    )
    results = parse_output(task, _request(3), stray)
    assert [(r.index, r.status) for r in results] == [(1, "ok"), (2, "ok"), (3, "ok")]
    assert results[0].values["answer"] == Decimal(1)
    # A one-item request answered in the form of several, with its one entry: read.
    single = task_factory(kind="single", batch_size=1)
    (r,) = parse_output(
        single, _request(1, "single"), '{"answers": [{"index": 1, "reasoning": "s", "answer": 9}]}'
    )
    assert (r.status, r.values["answer"]) == ("ok", Decimal(9))


def test_json_in_a_fence_or_after_thinking_is_read_and_says_no_position(
    task_factory: Callable[..., Task],
) -> None:
    task = task_factory(kind="batch", batch_size=2)
    body = '{"answers": [{"index": 1, "reasoning": "a", "answer": 1}, {"index": 2, "answer": "x"}]}'
    for out in (f"```json\n{body}\n```", f"<think>Two items.</think>\n{body}", body):
        results = parse_output(task, _request(2), out)
        assert [r.status for r in results] == ["ok", "malformed"], out
        # The message names no line:col: there is no such line in a one-line JSON answer.
        assert re.search(r" at \d+:\d+", results[1].message) is None, results[1].message


def test_an_integer_past_pythons_digit_limit_spoils_its_entry_alone(
    task_factory: Callable[..., Task],
) -> None:
    task = task_factory(kind="batch", batch_size=3)
    out = (
        '{"answers": [{"index": 1, "reasoning": "a", "answer": 1}, '
        '{"index": 2, "reasoning": "b", "answer": ' + "9" * 5000 + "}, "
        '{"index": 3, "reasoning": "c", "answer": 3}]}'
    )
    results = parse_output(task, _request(3), out)
    assert [r.status for r in results] == ["ok", "malformed", "ok"]


def test_a_one_item_json_answer_followed_by_chatter_is_read(
    task_factory: Callable[..., Task],
) -> None:
    single = task_factory(kind="single", batch_size=1)
    out = '{"reasoning": "s", "answer": 9}\n\nI chose 9 because it is the sum.'
    (r,) = parse_output(single, _request(1, "single"), out)
    assert (r.status, r.values["answer"]) == ("ok", Decimal(9))


def test_json_after_a_line_of_chatter_or_holding_a_think_tag_is_read(
    task_factory: Callable[..., Task],
) -> None:
    """ "Here is the JSON:" before it, or a string holding "</think>": the JSON form is still
    read (every item was missing)."""
    task = task_factory(kind="batch", batch_size=2)
    entries = [
        {"index": 1, "reasoning": "So </think> then.", "answer": 55},
        {"index": 2, "reasoning": "So.", "answer": 20},
    ]
    body = json.dumps({"answers": entries})
    for out in (body, f"Here is the JSON:\n{body}", f"Sure.\n```json\n{body}\n```"):
        results = parse_output(task, _request(2), out)
        assert [(r.status, r.values.get("answer")) for r in results] == [
            ("ok", Decimal(55)),
            ("ok", Decimal(20)),
        ], out


@pytest.mark.parametrize(
    "reasoning", ["I closed the tag </think>", "x</THINK>5 apples", 'a </think>" b', "</think>"]
)
def test_a_string_holding_a_closing_think_tag_anywhere_is_read_whole(
    task_factory: Callable[..., Task], reasoning: str
) -> None:
    """What follows the string's </think> starts inside that string: a JSON string or number
    decoded there is no answer, and the whole object is read (every item was missing)."""
    task = task_factory(kind="batch", batch_size=2)
    entries = [
        {"index": 1, "reasoning": reasoning, "answer": 55},
        {"index": 2, "reasoning": "So.", "answer": 20},
    ]
    body = json.dumps({"answers": entries})
    for out in (body, f"<think>Two items.</think>\n{body}"):
        results = parse_output(task, _request(2), out)
        assert [(r.status, r.values.get("reasoning")) for r in results] == [
            ("ok", reasoning),
            ("ok", "So."),
        ], out


def test_an_entry_without_its_index_is_malformed_never_placed_by_position(
    task_factory: Callable[..., Task],
) -> None:
    """A model that leaves the index out and skips item 2: its second entry is item 3's
    answer. Placed by position, it would be credited to item 2."""
    task = task_factory(kind="batch", batch_size=3)
    out = json.dumps(
        {"answers": [{"reasoning": "a", "answer": 55}, {"reasoning": "c", "answer": 58}]}
    )
    for mode in ("recover", "strict"):
        results = parse_output(task, _request(3), out, mode=mode)
        assert [(r.index, r.status) for r in results][:2] == [(1, "malformed"), (2, "malformed")]
        assert results[1].message == (
            "A[2]: index: expected a whole number from 1, found nothing (the key is left out)"
        )
        assert results[2].status == "missing"
    # Beside an entry that answers that item by its index, a stray one spoils nothing.
    out = json.dumps(
        {"answers": [{"index": 1, "reasoning": "a", "answer": 1}, {"reasoning": "x", "answer": 7}]}
    )
    results = parse_output(task, _request(3), out)
    assert [(r.status, r.values.get("answer")) for r in results] == [
        ("ok", Decimal(1)),
        ("malformed", None),
        ("missing", None),
    ]


@pytest.mark.parametrize(
    ("question", "found"),
    [
        ({}, "nothing (the key is left out)"),
        ({"question": None}, "null"),
        ({"question": 3}, "an integer 3"),
    ],
)
def test_an_auto_demo_entry_without_its_question_is_malformed(
    task_factory: Callable[..., Task], question: dict[str, object], found: str
) -> None:
    """The repeated question is how an answer given under another item's index is told:
    entries 2 and 3 hold each other's answers here. Filled in with each item's own
    question, both would be ok."""
    task = task_factory(kind="auto-demo", batch_size=3)
    entries = [
        {"index": 1, "question": "What is 0 plus 0?", "reasoning": "a", "answer": 0},
        {"index": 2, **question, "reasoning": "2 + 2", "answer": 4},
        {"index": 3, **question, "reasoning": "1 + 1", "answer": 2},
    ]
    for mode in ("recover", "strict"):
        results = parse_output(
            task, _request(3, "auto-demo"), json.dumps({"answers": entries}), mode=mode
        )
        assert [r.status for r in results] == ["ok", "malformed", "malformed"], mode
        assert results[1].message == f"A[2]: question: expected the item's question, found {found}"


def _entries(*answers: int) -> list[dict[str, object]]:
    return [{"index": i, "reasoning": "r", "answer": a} for i, a in enumerate(answers, 1)]


def test_a_second_json_answer_after_the_first_is_read_never_dropped(
    task_factory: Callable[..., Task],
) -> None:
    """A model that corrects itself in a second JSON answer answers item 2 twice: recover
    reads both (duplicate where they disagree), strict rejects the text after the first."""
    task = task_factory(kind="batch", batch_size=3)
    first = json.dumps({"answers": _entries(55, 18, 58)})
    second = json.dumps({"answers": _entries(55, 20, 58)})
    for out in (
        f"{first}\n\nWait, I made an error in item 2. Corrected:\n{second}",
        f"```json\n{first}\n```\nCorrection:\n```json\n{second}\n```",
    ):
        results = parse_output(task, _request(3), out)
        assert [r.status for r in results] == ["ok", "duplicate", "ok"], out
        assert results[1].message == (
            "A[2] answered 2 times with different values: "
            "reasoning='r', answer='18', reasoning='r', answer='20'"
        )
        results = parse_output(task, _request(3), out, mode="strict")
        assert [r.status for r in results] == ["malformed"] * 3, out
    (r, *_) = parse_output(task, _request(3), f"{first}\nDone.", mode="strict")
    assert r.message == (
        "strict: output rejected: expected end of output after the JSON answer, found 'Done.'; "
        "parse with mode recover to keep well-formed items"
    )
    # Text after it that is no answer: recover reads the answer, as before.
    results = parse_output(task, _request(3), f"{first}\nDone.")
    assert [r.status for r in results] == ["ok"] * 3


def test_answers_given_twice_is_read_twice_never_the_last_list_alone(
    task_factory: Callable[..., Task],
) -> None:
    task = task_factory(kind="batch", batch_size=3)
    out = (
        '{"answers": ' + json.dumps(_entries(55, 20, 58)) + ", "
        '"answers": ' + json.dumps(_entries(41, 20, 63)) + "}"
    )
    results = parse_output(task, _request(3), out)
    assert [(r.status, r.values.get("answer")) for r in results] == [
        ("duplicate", Decimal(55)),
        ("ok", Decimal(20)),
        ("duplicate", Decimal(58)),
    ]
    results = parse_output(task, _request(3), out, mode="strict")
    assert {r.message for r in results} == {
        "strict: output rejected: the key 'answers' is given twice, with different values; " + _KEEP
    }


def test_strict_messages_on_a_json_answer_name_its_entries_not_text_form_positions(
    task_factory: Callable[..., Task],
) -> None:
    task = task_factory(kind="batch", batch_size=3)
    out = json.dumps({"answers": _entries(55, 20)})
    results = parse_output(task, _request(3), out, mode="strict")
    assert [(r.status, r.message) for r in results] == [
        ("malformed", "strict: output rejected at item 3's entry; " + _KEEP),
        ("malformed", "strict: output rejected at item 3's entry; " + _KEEP),
        ("missing", 'strict: expected item 3\'s entry ("index": 3), found the end of the list'),
    ]
    assert results[2].expected == ('an entry with "index": 3',)
    assert all(r.span is None for r in results)
    # One entry too many: the list was due to end.
    out = json.dumps({"answers": _entries(55, 20, 58, 7)})
    results = parse_output(task, _request(3), out, mode="strict")
    assert results[2].message == (
        'strict: item 3\'s entry: expected the end of the list, found an entry with "index": 4'
    )
    assert all(re.search(r"\d+:\d+|A\[", r.message) is None for r in results)


_KEEP = "parse with mode recover to keep well-formed items"
