"""The corruption table: broken outputs give exactly the expected status per item (recover mode).

Each row starts from the canonical output of a batch of 4 numbers (``A[i]: <number>``) or of
an Auto-Demo of 3 math items (``Q[i]: <question>`` / ``A[i]: <reasoning> The answer is <n>.``),
corrupts it one way, and states what parse_output must say about every item. ``values`` rows
also pin the values read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

import pytest
from promptc.parse.output import parse_output
from test_parse_output import (
    MATH_FORMAT,
    NUMBER,
    QUESTIONS,
    REASONING,
    canonical,
    make_request,
    make_task,
    math_answers,
    statuses,
)

BATCH = make_task("batch", 4)
BATCH_REQ = make_request(BATCH)
BATCH_VALUES = [Decimal(18), Decimal("-3.5"), Decimal(1234), Decimal(0)]
BATCH_OK = canonical(BATCH, BATCH_REQ, [{"answer": v} for v in BATCH_VALUES])
# "A[1]: 18\nA[2]: -3.5\nA[3]: 1234\nA[4]: 0"

DEMO = make_task("auto-demo", 3, (REASONING, NUMBER), MATH_FORMAT)
DEMO_REQ = make_request(DEMO)
DEMO_ANSWERS = math_answers(3)
DEMO_OK = canonical(DEMO, DEMO_REQ, DEMO_ANSWERS)
DEMO_LINES = DEMO_OK.split("\n")  # Q1 A1 Q2 A2 Q3 A3


def lines(*keep: int, src: list[str] | None = None) -> str:
    base = src if src is not None else BATCH_OK.split("\n")
    return "\n".join(base[k] for k in keep)


@dataclass(frozen=True)
class Row:
    output: str
    expected: list[str]
    values: list[Decimal | None] | None = None  # the `answer` of each item, None = unchecked


OK4 = ["ok"] * 4
OK3 = ["ok"] * 3

BATCH_ROWS: dict[str, Row] = {
    "canonical": Row(BATCH_OK, OK4, BATCH_VALUES),  # type: ignore[arg-type]
    "dropped-2": Row(lines(0, 2, 3), ["ok", "missing", "ok", "ok"]),
    "dropped-last": Row(lines(0, 1, 2), ["ok", "ok", "ok", "missing"]),
    "empty": Row("", ["missing"] * 4),
    "only-chatter": Row("I cannot answer these questions.", ["missing"] * 4),
    "duplicate-same-value": Row(lines(0, 1, 1, 2, 3), OK4),
    "duplicate-different-value": Row(
        lines(0, 1, 2, 3) + "\nA[2]: 7",
        ["ok", "duplicate", "ok", "ok"],
        [Decimal(18), Decimal("-3.5"), Decimal(1234), Decimal(0)],
    ),
    "duplicate-malformed-repeat-ignored": Row(lines(0, 1, 2, 3) + "\nA[2]: seven", OK4),
    "reordered": Row(lines(3, 1, 0, 2), OK4, BATCH_VALUES),  # type: ignore[arg-type]
    "truncated-marker": Row(lines(0, 1, 2) + "\nA[", ["ok", "ok", "ok", "missing"]),
    "truncated-value": Row(lines(0, 1, 2) + "\nA[4]: $", ["ok", "ok", "ok", "malformed"]),
    "trailing-words-after-number": Row(
        lines(0, 1, 2) + "\nA[4]: 0 apples", ["ok", "ok", "ok", "malformed"]
    ),
    "malformed-value": Row(lines(0, 2, 3) + "\nA[2]: minus three", ["ok", "malformed", "ok", "ok"]),
    "fenced": Row("```\n" + BATCH_OK + "\n```", OK4, BATCH_VALUES),  # type: ignore[arg-type]
    "fenced-with-language-and-chatter": Row(
        "Here are the answers:\n```text\n" + BATCH_OK + "\n```\nHope this helps!", OK4
    ),
    "chatter-before-after": Row(
        "Sure! Let me answer each question.\n\n" + BATCH_OK + "\n\nLet me know if you need more.",
        OK4,
        BATCH_VALUES,  # type: ignore[arg-type]
    ),
    "bold-markers": Row(
        BATCH_OK.replace("A[2]:", "**A[2]:**").replace("A[3]:", "__A[3]:__"), OK4, BATCH_VALUES
    ),  # type: ignore[arg-type]
    "bold-whole-line": Row(BATCH_OK.replace("A[2]: -3.5", "**A[2]: -3.5**"), OK4, BATCH_VALUES),  # type: ignore[arg-type]
    "bold-value": Row(BATCH_OK.replace("A[4]: 0", "A[4]: **0**"), OK4, BATCH_VALUES),  # type: ignore[arg-type]
    "headings-and-bullets": Row(
        BATCH_OK.replace("A[1]:", "### A[1]:")
        .replace("A[2]:", "- A[2]:")
        .replace("A[3]:", "> A[3]:"),
        OK4,
        BATCH_VALUES,  # type: ignore[arg-type]
    ),
    "one-line": Row(BATCH_OK.replace("\n", " "), OK4, BATCH_VALUES),  # type: ignore[arg-type]
    "blank-lines-between": Row(BATCH_OK.replace("\n", "\n\n"), OK4),
    "crlf": Row(BATCH_OK.replace("\n", "\r\n"), OK4, BATCH_VALUES),  # type: ignore[arg-type]
    "full-width-markers": Row(
        BATCH_OK.replace("A[3]:", "Ａ［３］：").replace("A[1]:", "A[1]："),
        OK4,
        BATCH_VALUES,  # type: ignore[arg-type]
    ),
    "nbsp-and-zero-width": Row(
        BATCH_OK.replace("A[2]: ", "A[2]:\u00a0").replace("A[4]", "A[\u200b4]"),
        OK4,
        BATCH_VALUES,  # type: ignore[arg-type]
    ),
    "full-width-digits": Row(BATCH_OK.replace("A[1]: 18", "A[1]: １８"), OK4, BATCH_VALUES),  # type: ignore[arg-type]
    "lowercase-marker-and-spaces": Row(BATCH_OK.replace("A[2]:", "a[ 2 ] :"), OK4),
    "extra-index": Row(BATCH_OK + "\nA[5]: 9", OK4 + ["extra"]),
    "index-zero": Row("A[0]: 9\n" + BATCH_OK, OK4 + ["extra"]),
    "questions-in-batch-are-chatter": Row("Q[1]: the first one\n" + BATCH_OK, OK4, BATCH_VALUES),  # type: ignore[arg-type]
    "currency-and-separators": Row(
        BATCH_OK.replace("A[3]: 1234", "A[3]: $1,234.").replace("A[2]: -3.5", "A[2]: −3.5"),
        OK4,
        BATCH_VALUES,  # type: ignore[arg-type]
    ),
}


def demo(*keep: int) -> str:
    return lines(*keep, src=DEMO_LINES)


DEMO_ROWS: dict[str, Row] = {
    "canonical": Row(DEMO_OK, OK3, [a["answer"] for a in DEMO_ANSWERS]),  # type: ignore[misc]
    "dropped-pair-2": Row(demo(0, 1, 4, 5), ["ok", "missing", "ok"]),
    "answer-without-question": Row(demo(0, 1, 3, 4, 5), OK3),
    "question-typo": Row(DEMO_OK.replace("April", "Aprl").replace("clips", "clip"), OK3),
    "question-case-and-punctuation": Row(
        DEMO_OK.replace(QUESTIONS[1], QUESTIONS[1].lower().replace(".", "")), OK3
    ),
    "wrong-question": Row(
        DEMO_OK.replace(QUESTIONS[1], "What is the capital of France?"), ["ok", "misaligned", "ok"]
    ),
    "shifted-questions": Row(
        DEMO_OK.replace(QUESTIONS[1], "<<2>>").replace(QUESTIONS[2], QUESTIONS[1]),
        ["ok", "misaligned", "misaligned"],
    ),
    "answer-follows-other-question": Row(demo(0, 1, 4, 3, 4, 5), ["ok", "misaligned", "ok"]),
    "truncated-after-question": Row(demo(0, 1, 2, 3, 4), ["ok", "ok", "malformed"]),
    "truncated-in-reasoning": Row(
        demo(0, 1, 2, 3, 4) + "\nA[3]: First add 3 and", ["ok", "ok", "malformed"]
    ),
    "truncated-in-literal": Row(DEMO_OK[: DEMO_OK.rindex("answer is")], ["ok", "ok", "malformed"]),
    # Models drop the final period all the time; the number before it is whole: read leniently.
    "truncated-before-final-period": Row(DEMO_OK[:-1], OK3, [a["answer"] for a in DEMO_ANSWERS]),  # type: ignore[misc]
    "chatter-after-last-answer": Row(DEMO_OK + "\n\nI hope these answers help!", OK3),
    "fenced": Row("```\n" + DEMO_OK + "\n```", OK3),
    "chatter-after-answer-on-its-line": Row(
        DEMO_OK + " Hope this helps!", OK3, [a["answer"] for a in DEMO_ANSWERS]
    ),  # type: ignore[misc]
    "bold-inside-answer": Row(
        DEMO_OK.replace("The answer is 9.", "The answer is **9**."),
        OK3,
        [a["answer"] for a in DEMO_ANSWERS],
    ),  # type: ignore[misc]
    "bold-markers": Row(DEMO_OK.replace("Q[2]:", "**Q[2]:**").replace("A[2]:", "**A[2]:**"), OK3),
    "full-width": Row(DEMO_OK.replace("Q[3]:", "Ｑ［３］：").replace("A[3]:", "Ａ［３］："), OK3),
    "nbsp-in-literal": Row(DEMO_OK.replace("The answer is", "The\u00a0answer is"), OK3),
    "reordered-pairs": Row(demo(4, 5, 0, 1, 2, 3), OK3),
    "duplicate-pair-different": Row(
        DEMO_OK + "\n" + demo(2) + "\nA[2]: Redo. The answer is 99.", ["ok", "duplicate", "ok"]
    ),
    "extra-pair": Row(
        DEMO_OK + "\nQ[4]: Another one?\nA[4]: More. The answer is 1.", OK3 + ["extra"]
    ),
}


def _check(task_rows: dict[str, Row], key: str, task: object, req: object) -> None:
    row = task_rows[key]
    results = parse_output(task, req, row.output)  # type: ignore[arg-type]
    assert statuses(results) == row.expected, [r.message for r in results]
    if row.values is not None:
        got = [r.values.get("answer") for r in results]
        assert got == row.values
    for r in results:
        if r.status == "ok":
            assert r.span is not None and r.expected == () and r.found is None
        if r.status == "malformed":
            assert r.expected, r
            assert r.found, r
        if r.status == "missing":
            assert r.span is None


@pytest.mark.parametrize("key", list(BATCH_ROWS), ids=list(BATCH_ROWS))
def test_batch_corruption(key: str) -> None:
    _check(BATCH_ROWS, key, BATCH, BATCH_REQ)


@pytest.mark.parametrize("key", list(DEMO_ROWS), ids=list(DEMO_ROWS))
def test_auto_demo_corruption(key: str) -> None:
    _check(DEMO_ROWS, key, DEMO, DEMO_REQ)


Mutation = Callable[[str], str]


def test_malformed_item_says_what_was_expected_where() -> None:
    out = lines(0, 1, 2) + "\nA[4]: about seven"
    results = parse_output(BATCH, BATCH_REQ, out)
    r = results[3]
    assert r.status == "malformed"
    assert r.found == "about seven"
    assert r.span is not None and (r.span.start.line, r.span.start.col) == (4, 1)
    assert r.message.startswith("A[4]: expected ")
    assert r.message.endswith("found 'about seven' at 4:7")


def test_truncated_question_reports_the_missing_answer_marker() -> None:
    r = parse_output(DEMO, DEMO_REQ, demo(0, 1, 2, 3, 4))[2]
    assert r.expected == ("A[3]:",)
    assert r.found == "end of output"
    assert r.message.startswith("Q[3] is not followed by A[3] (the output ends)")


def test_duplicate_message_names_both_places() -> None:
    r = parse_output(BATCH, BATCH_REQ, BATCH_OK + "\nA[2]: 7")[1]
    assert r.message == (
        "A[2] answered 2 times with different values: answer='-3.5' at 2:1, answer='7' at 5:1"
    )


def test_extra_message() -> None:
    r = parse_output(BATCH, BATCH_REQ, BATCH_OK + "\nA[5]: 9")[4]
    assert (r.item_id, r.index, r.values) == (None, 5, {"answer": Decimal(9)})
    assert r.message == "A[5] is not an item of this request (it has items 1 to 4)"


def test_missing_message() -> None:
    r = parse_output(BATCH, BATCH_REQ, lines(0, 2, 3))[1]
    assert (r.expected, r.found, r.message) == (("A[2]:",), None, "no A[2] in the output")


@pytest.mark.parametrize(
    ("output", "index", "message"),
    [
        pytest.param(demo(0, 1, 4, 3, 4, 5), 2, "A[2] follows Q[3]", id="answer-after-other-q"),
        pytest.param(
            DEMO_OK.replace(QUESTIONS[1], "What is the capital of France?"),
            2,
            "Q[2] does not repeat item 2's question (similarity 0.23 < 0.9)",
            id="other-question",
        ),
        pytest.param(
            DEMO_OK.replace(QUESTIONS[1], "<<2>>").replace(QUESTIONS[2], QUESTIONS[1]),
            3,
            "Q[3] does not repeat item 3's question (similarity 0.34 < 0.9); it is "
            "item 2's question",
            id="shifted",
        ),
        pytest.param(
            demo(0, 1, 2, 3, 4) + "\nA[3]: First add 3 and",
            3,
            "A[3]: expected 'The answer is', found 'end of output' at 6:22",
            id="truncated-in-reasoning",
        ),
        pytest.param(
            demo(0, 1, 2, 4, 5),
            2,
            "Q[2] is not followed by A[2] (found 'Q[3]: Betty is saving money for a new w…') "
            "at 3:120",
            id="question-without-answer",
        ),
    ],
)
def test_auto_demo_messages(output: str, index: int, message: str) -> None:
    r = parse_output(DEMO, DEMO_REQ, output)[index - 1]
    assert r.message == message
