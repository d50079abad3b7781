"""What models really write beside the exact answer format, read item by item.

Each row is an answer body as models write it, with the status and value it must get in
``recover`` mode (by the whole parser, whose fast path is tried first, and by the slow path
alone) and the status it must get in ``strict`` mode, which stays exact. The rows that would be
a guess (two numbers, a number in words, a blank line) stay ``malformed``.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest
from parse_paths import scanner
from promptc.ir import Task
from promptc.parse.output import parse_output
from promptc.parse.recover import LENIENT_NOTE

#: (body written after ``A[1]:``, recover status, recover value, strict status)
BODIES: list[tuple[str, str, Decimal | None, str]] = [
    ("So 5 + 22 = 27. The answer is 27.", "ok", Decimal(27), "ok"),
    ("So 5 + 22 = 27. The answer is 27", "ok", Decimal(27), "malformed"),
    ("So 5 + 22 = 27. The answer is\n27.", "ok", Decimal(27), "malformed"),
    ("So 5 + 22 = 27. The answer is\n27", "ok", Decimal(27), "malformed"),
    ("So 5 + 22 = 27.\nThe answer is 27.", "ok", Decimal(27), "malformed"),
    ("She pays 18 dollars. The answer is 18 dollars.", "ok", Decimal(18), "malformed"),
    ("She pays 18 dollars. The answer is $18.", "ok", Decimal(18), "ok"),
    ("She pays 18 dollars. The answer is $18", "ok", Decimal(18), "malformed"),
    ("It is 18 of 100. The answer is 18%.", "ok", Decimal(18), "malformed"),
    ("It is 18 of 100. The answer is 18 %", "ok", Decimal(18), "malformed"),
    ("She is 10 short. The answer is -$10.", "ok", Decimal(-10), "ok"),
    ("She is 10 short. The answer is -$10", "ok", Decimal(-10), "malformed"),
    ("It takes 3 hours. The answer is 3 hours", "ok", Decimal(3), "malformed"),
    ("It goes 60 km/h. The answer is 60 km/h.", "ok", Decimal(60), "malformed"),
    ("So 5 + 22 = 27. the answer is 27.", "ok", Decimal(27), "ok"),
    ("So 5 + 22 = 27. THE ANSWER IS 27", "ok", Decimal(27), "malformed"),
    ("I guess the answer is 12. No: the answer is 27", "ok", Decimal(27), "malformed"),
    # The reasoning left out (a reasoning model reasoned in its thinking): read, empty.
    ("The answer is 27.", "ok", Decimal(27), "malformed"),
    ("the answer is: 27", "ok", Decimal(27), "malformed"),
    # Reasoning step by step, a line each (a blank line inside stays a guess, below).
    ("Step 1: 3 * 9 = 27.\nStep 2: so 27.\nThe answer is 27.", "ok", Decimal(27), "malformed"),
    # A colon after the literal's last word.
    ("So 5 + 22 = 27. The answer is: 27.", "ok", Decimal(27), "malformed"),
    ("So 5 + 22 = 27. The answer is : 27", "ok", Decimal(27), "malformed"),
    # Italics, bold italics and code around the number, as chat models write them; a '*'
    # with spaces (multiplication) is no emphasis.
    ("So 3 * 9 = 27. The answer is *27*", "ok", Decimal(27), "malformed"),
    ("So 5 + 22 = 27. The answer is _27_", "ok", Decimal(27), "malformed"),
    ("So 5 + 22 = 27. The answer is ***27***", "ok", Decimal(27), "malformed"),
    ("So 5 + 22 = 27. The answer is `27`", "ok", Decimal(27), "malformed"),
    # Emphasis on the number and the final literal left out: both tolerated, together too.
    ("So 5 + 22 = 27. The answer is **27**", "ok", Decimal(27), "malformed"),
    ("So 5 + 22 = 27. **The answer is 27**", "ok", Decimal(27), "malformed"),
    # A guess: stays malformed in both modes.
    ("It is 18 or 19. The answer is 18 or 19.", "malformed", None, "malformed"),
    ("It is eighteen. The answer is eighteen.", "malformed", None, "malformed"),
    ("So. The answer is 18 dollars and 50 cents.", "malformed", None, "malformed"),
    ("So 5 + 22 = 27. The answer is\n\n27.", "malformed", None, "malformed"),
    ("So 5 + 22 = 27. The answer is", "malformed", None, "malformed"),
    # A value that runs on past the format's final period is not the part before it.
    ("So 1500. The answer is 1.50E+3.", "malformed", None, "malformed"),
    ("So pi. The answer is 3.14abc.", "malformed", None, "malformed"),
    ("So. The answer is 1.2.3.", "malformed", None, "malformed"),
    # A word that changes the number is no unit: the number before it is not the answer.
    ("So. The answer is 1.5 million.", "malformed", None, "malformed"),
    ("So. The answer is 2 Dozen.", "malformed", None, "malformed"),
    ("So. The answer is 5 squared.", "malformed", None, "malformed"),
    ("So. The answer is 3 quarters.", "malformed", None, "malformed"),
    ("So. The answer is 18 thousands.", "malformed", None, "malformed"),
    # Their abbreviations too (70 K was read as 70): in any case, M and B in capitals only.
    *(
        (f"So. The answer is {said}.", "malformed", None, "malformed")
        for said in ("70 K", "$70 k", "1.5 M", "2 bn", "2 BIL", "1.5 mil", "1.5 mn", "7 tens")
    ),
    # Every fraction word, and more abbreviations (7 eighths was read as 7).
    *(
        (f"So. The answer is {said}.", "malformed", None, "malformed")
        for said in ("7 eighths", "5 Sixths", "3 twelfths", "9 sixteenths", "2 twentieths")
    ),
    *(
        (f"So. The answer is {said}.", "malformed", None, "malformed")
        for said in ("2 bln", "3 MLN", "5 doz", "4 thou")
    ),
    ("So. The answer is 2 B.", "malformed", None, "malformed"),
    ("She ran 5 m. The answer is 5 m.", "ok", Decimal(5), "malformed"),  # five metres
    ("So. The answer is 5 months.", "ok", Decimal(5), "malformed"),  # a unit ending in "ths"
    ("So. The answer is 3 seconds.", "ok", Decimal(3), "malformed"),
    # A unit word that merely starts like one is a unit.
    ("So. The answer is 4 halfpennies.", "ok", Decimal(4), "malformed"),
]

#: Bodies a ``single`` answer reads exactly: its literals take any white space.
SINGLE_EXACT = {body for body, *_ in BODIES if "\n" in body and body.endswith("27.")}

SECOND = "2 + 2 = 4. The answer is 4."


def _request(kind: str, n: int) -> dict[str, object]:
    return {"id": "r0001", "kind": kind, "item_ids": [f"q{i}" for i in range(n)]}


def _ids(rows: list[tuple[str, str, Decimal | None, str]]) -> list[str]:
    return [body.replace("\n", "⏎")[-28:] for body, *_ in rows]


@pytest.mark.parametrize(("body", "status", "value", "strict"), BODIES, ids=_ids(BODIES))
@pytest.mark.parametrize("kind", ["batch", "single"])
def test_what_models_write(
    body: str,
    status: str,
    value: Decimal | None,
    strict: str,
    kind: str,
    task_factory: Callable[..., Task],
) -> None:
    n = 2 if kind == "batch" else 1
    task = task_factory(kind=kind, batch_size=n)
    if kind == "batch":
        output = f"A[1]: {body}\nA[2]: {SECOND}"
    else:
        output = body
        if body in SINGLE_EXACT:
            status, value, strict = "ok", Decimal(27), "ok"
    request = _request(kind, n)
    for parse in (parse_output, scanner):
        results = parse(task, request, output)
        first = results[0]
        assert (first.status, first.values.get("answer")) == (status, value), parse.__name__
        if status == "ok" and strict != "ok":
            assert first.message == LENIENT_NOTE
        if kind == "batch":  # the other item is never disturbed
            assert (results[1].status, results[1].values["answer"]) == ("ok", Decimal(4))
            assert len(results) == 2
    results = parse_output(task, request, output, mode="strict")
    assert results[0].status == strict
    if strict == "ok":
        assert results[0].values["answer"] == value


def test_an_answer_on_the_next_line_is_never_taken_from_the_next_item(
    task_factory: Callable[..., Task],
) -> None:
    """``A[1]:`` ends at its literal and the next line is ``A[2]:``: item 1 is malformed, its
    answer is not the 27 that item 2 wrote."""
    task = task_factory(kind="batch", batch_size=2)
    output = "A[1]: So 5 + 22 = 27. The answer is\nA[2]: 2 + 2 = 4. The answer is 27"
    results = parse_output(task, _request("batch", 2), output)
    assert [(r.status, r.values.get("answer")) for r in results] == [
        ("malformed", None),
        ("ok", Decimal(27)),
    ]


def test_a_number_last_in_the_format_takes_no_unit(task_factory: Callable[..., Task]) -> None:
    """``{reasoning} Total: {answer}`` ends with the number: ``7 apples`` is not the number 7."""
    task = task_factory(kind="batch", batch_size=1)
    from dataclasses import replace

    from promptc.spec.answer_format import parse_answer_format

    task = replace(task, answer_format=parse_answer_format("{reasoning} Total: {answer}"))
    results = parse_output(task, _request("batch", 1), "A[1]: 3 + 4. Total: 7 apples")
    assert results[0].status == "malformed"
    results = parse_output(task, _request("batch", 1), "A[1]: 3 + 4.\nTotal: 7")
    assert (results[0].status, results[0].values["answer"]) == ("ok", Decimal(7))


def test_a_sentence_may_end_after_a_final_field(task_factory: Callable[..., Task]) -> None:
    """``{reasoning} Total: {answer}`` ends with the number: ``Total: 7.`` and ``Total: 7!``
    end a sentence after it, read leniently; ``Total: 7.5.`` is 7.5; strict stays exact."""
    from dataclasses import replace

    from promptc.spec.answer_format import parse_answer_format

    task = task_factory(kind="batch", batch_size=1)
    task = replace(task, answer_format=parse_answer_format("{reasoning} Total: {answer}"))
    for body, value in (("7.", 7), ("7!", 7), ("7 .", 7), ("7.5.", Decimal("7.5"))):
        results = parse_output(task, _request("batch", 1), f"A[1]: 3 + 4. Total: {body}")
        assert (results[0].status, results[0].values.get("answer")) == ("ok", value), body
    strict = parse_output(task, _request("batch", 1), "A[1]: 3 + 4. Total: 7!", mode="strict")
    assert strict[0].status == "malformed"
    for body in ("7?", "7. 8", "7 apples."):
        results = parse_output(task, _request("batch", 1), f"A[1]: 3 + 4. Total: {body}")
        assert results[0].status == "malformed", body


def test_a_one_item_answer_after_the_few_shot_label_is_read(
    task_factory: Callable[..., Task],
) -> None:
    """The few-shot prompt writes ``Answer: …`` before each solved example's answer; a model
    imitating it writes ``Answer: 27`` (or ``**Answer:** 27``): the answer is what follows."""
    from dataclasses import replace

    from promptc.spec.answer_format import parse_answer_format

    task = task_factory(kind="single", batch_size=1)
    task = replace(task, answer_format=parse_answer_format("{answer}"), outputs=task.outputs[1:])
    for output in ("Answer: 27", "answer:27", "**Answer:** 27", "Sure.\nAnswer: 27"):
        (result,) = parse_output(task, _request("single", 1), output)
        assert (result.status, result.values.get("answer")) == ("ok", Decimal(27)), output
    (result,) = parse_output(task, _request("single", 1), "Answer: 27 or 28")
    assert result.status == "malformed"


def test_final_punctuation_read_in_part_or_ended_with_an_exclamation(
    task_factory: Callable[..., Task],
) -> None:
    """``{reasoning} So the answer is ({answer}).`` (the published Batch Prompting format):
    models leave out the final ``.`` (or end with ``!``), not only the whole ``).``."""
    from dataclasses import replace

    from promptc.spec.answer_format import parse_answer_format

    task = task_factory(kind="batch", batch_size=1)
    fmt = parse_answer_format("{reasoning} So the answer is ({answer}).")
    task = replace(task, answer_format=fmt)
    for end in (").", ")", ")!", "", "."):
        out = f"A[1]: 3 + 4. So the answer is (7{end}"
        (r,) = parse_output(task, _request("batch", 1), out)
        assert (r.status, r.values.get("answer")) == ("ok", Decimal(7)), end
    for end in (") and more.", ")?"):
        out = f"A[1]: 3 + 4. So the answer is (7{end}"
        (r,) = parse_output(task, _request("batch", 1), out)
        assert r.status == "malformed", end


@pytest.mark.parametrize("wrapped", ["*27*", "_27_", "***27***", "`27`", "**27**"])
def test_emphasis_or_code_around_a_value_is_read_without_it(
    wrapped: str, task_factory: Callable[..., Task]
) -> None:
    task = task_factory(kind="batch", batch_size=2)
    output = f"A[1]: So 3 * 9 = 27. The answer is {wrapped}.\nA[2]: {SECOND}"
    results = parse_output(task, _request("batch", 2), output)
    assert [(r.status, r.values.get("answer")) for r in results] == [
        ("ok", Decimal(27)),
        ("ok", Decimal(4)),
    ]
    assert results[0].values["reasoning"] == "So 3 * 9 = 27."


#: Numbers no reading takes, each as a model writes it.
MALFORMED_NUMBERS = ["1.234,5", "0x37", "55/2", "\\boxed{55}", "US$55", "fifty-five"]


@pytest.mark.parametrize("said", MALFORMED_NUMBERS)
@pytest.mark.parametrize("reasoning", ["", "So 5 * 11 = 55. "])
@pytest.mark.parametrize("kind", ["batch", "single"])
def test_a_malformed_number_is_what_the_diagnosis_names(
    said: str, reasoning: str, kind: str, task_factory: Callable[..., Task]
) -> None:
    """``The answer is 0x37.``, with the reasoning left out or not: the number is what is
    wrong, all of it (not its ``0`` with ``x37`` out of place), and the literal is there."""
    n = 2 if kind == "batch" else 1
    task = task_factory(kind=kind, batch_size=n)
    body = f"{reasoning}The answer is {said}."
    output = f"A[1]: {body}\nA[2]: {SECOND}" if kind == "batch" else body
    modes = ["recover", "strict"] if reasoning else ["recover"]
    for mode in modes:
        first = parse_output(task, _request(kind, n), output, mode=mode)[0]  # type: ignore[arg-type]
        assert first.status == "malformed", mode
        assert first.expected == ("answer: a number such as 18, -3.5 or 1,234",), mode
        assert first.found == f"{said}.", mode
    first = scanner(task, _request(kind, n), output)[0]
    assert (first.expected, first.found) == (
        ("answer: a number such as 18, -3.5 or 1,234",),
        f"{said}.",
    )


def test_the_literal_alone_is_diagnosed_as_the_value_missing(
    task_factory: Callable[..., Task],
) -> None:
    """``The answer is`` and nothing after, the reasoning left out: the number is missing."""
    task = task_factory(kind="batch", batch_size=2)
    for body in ("The answer is", "the answer is "):
        first = parse_output(task, _request("batch", 2), f"A[1]: {body}\nA[2]: {SECOND}")[0]
        assert (first.status, first.expected) == (
            "malformed",
            ("answer: a number such as 18, -3.5 or 1,234",),
        ), body


#: Item 2's answer over several lines, read to its end: an answer on an earlier line that
#: disagrees with a later one is no answer of the item (duplicate); one that agrees is.
SEVERAL_LINES = [
    (  # an intermediate value on the first line
        "For one ticket the answer is 2.5.\nFor 8 tickets: 8 * 2.50 = 20. The answer is 20.",
        "duplicate",
        Decimal("2.5"),
    ),
    (  # corrected in a paragraph of its own
        "8 * 2.50 = 20. The answer is 20.\n\nWait, 8 * 2.75 = 22. The answer is 22.",
        "duplicate",
        Decimal(20),
    ),
    ("8 * 2.50 = 20. The answer is 20.\nWait, 8 * 2.75 = 22. The answer is 22.", "duplicate", 20),
    # Lenient lines: the first one is an answer too.
    ("For one ticket the answer is 2.5\nFor 8 tickets the answer is 20", "duplicate", 2.5),
    # A restatement that agrees, chatter or a fence after the answer: the answer.
    ("8 * 2.50 = 20. The answer is 20.\nSo 8 tickets cost $20. The answer is 20.", "ok", 20),
    ("8 * 2.50 = 20. The answer is 20.\n\nHope this helps!", "ok", 20),
    ("8 * 2.50 = 20. The answer is 20.\n```", "ok", 20),
    ("Step 1: 8 * 2.5 = 20.\nStep 2: so 20.\nThe answer is 20.", "ok", 20),
]


@pytest.mark.parametrize(("body", "status", "value"), SEVERAL_LINES)
@pytest.mark.parametrize("kind", ["batch", "auto-demo"])
def test_an_answer_over_several_lines_is_read_to_its_end(
    body: str, status: str, value: float, kind: str, task_factory: Callable[..., Task]
) -> None:
    task = task_factory(kind=kind, batch_size=3)
    q = [
        f"Q[{i}]: What is {i - 1} plus {i - 1}?\n" if kind == "auto-demo" else "" for i in (1, 2, 3)
    ]
    output = (
        f"{q[0]}A[1]: 0 + 0 = 0. The answer is 0.\n{q[1]}A[2]: {body}\n"
        f"{q[2]}A[3]: 2 + 2 = 4. The answer is 4."
    )
    for parse in (parse_output, scanner):
        results = parse(task, _request(kind, 3), output)
        assert [(r.status, r.values.get("answer")) for r in results] == [
            ("ok", Decimal(0)),
            (status, Decimal(str(value))),
            ("ok", Decimal(4)),
        ], parse.__name__


def test_an_answer_corrected_on_a_later_line_names_both(task_factory: Callable[..., Task]) -> None:
    task = task_factory(kind="batch", batch_size=2)
    output = (
        "A[1]: 1 + 1 = 2. The answer is 2.\nA[2]: So 20. The answer is 20.\nNo: the answer is 22."
    )
    first, second = parse_output(task, _request("batch", 2), output)
    assert first.status == "ok"
    assert second.status == "duplicate"
    assert second.message == (
        "A[2] answered 2 times with different values: reasoning='So 20.', answer='20' at 2:1, "
        "reasoning='No:', answer='22' at 3:1"
    )


def test_a_reasoning_left_out_is_quoted_empty(task_factory: Callable[..., Task]) -> None:
    task = task_factory(kind="batch", batch_size=2)
    output = "A[1]: So 2. The answer is 2.\nA[2]: So 20. The answer is 20.\nA[2]: The answer is 21."
    second = parse_output(task, _request("batch", 2), output)[1]
    assert second.status == "duplicate"
    assert second.message == (
        "A[2] answered 2 times with different values: reasoning='So 20.', answer='20' at 2:1, "
        "reasoning='', answer='21' at 3:1"
    )
