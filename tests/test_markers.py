"""Markers set in the spec flow from the IR to the templates, every grammar export and the
parser: ``Answer[i]:`` everywhere, ``A[i]:`` nowhere."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal

import pytest
from promptc import ir
from promptc.grammar.answer import build_grammar
from promptc.markers import marker_clash, marker_problem
from promptc.parse.output import parse_output
from promptc.render.renderer import render
from promptc.select.methods import select

MARKERS = ir.Markers(question="Question", answer="Answer")


def _task(task_factory: Callable[..., ir.Task], kind: str = "batch") -> ir.Task:
    return replace(task_factory(kind=kind, batch_size=2), markers=MARKERS)


def _request(kind: str = "batch") -> dict[str, object]:
    return {"id": "r0001", "kind": kind, "item_ids": ["q0", "q1"]}


@pytest.mark.parametrize("kind", ["batch", "auto-demo"])
def test_every_export_uses_the_spec_markers(
    kind: str, task_factory: Callable[..., ir.Task]
) -> None:
    g = build_grammar(_task(task_factory, kind), 2, kind)
    files = g.files()
    for name in ("answer.gbnf", "answer.regex", "answer.lark", "answer.parse.regex"):
        text = files[name]
        assert "Answer" in text and "A[1]" not in text.replace("\\", ""), name
        if kind == "auto-demo":
            assert "Question" in text, name
    assert g.write_output(
        [{"reasoning": "So.", "answer": Decimal(1)}] * 2, ["What is 0 plus 0?", "Q"]
    ).startswith("Question[1]: " if kind == "auto-demo" else "Answer[1]: ")


def test_templates_and_parser_use_the_spec_markers(task_factory: Callable[..., ir.Task]) -> None:
    task = _task(task_factory)
    request = render(task, select(task))[0]
    text = "\n".join(m.content for m in request.messages)
    assert "Question[1]: What is 0 plus 0?" in text and "Answer[1]:" in text
    assert "A[1]" not in text and "Q[1]" not in text
    output = "Answer[1]: 0 + 0 = 0. The answer is 0.\nAnswer[2]: 1 + 1 = 2. The answer is 2."
    for mode in ("recover", "strict"):
        results = parse_output(task, _request(), output, mode=mode)  # type: ignore[arg-type]
        assert [(r.status, r.values["answer"]) for r in results] == [
            ("ok", Decimal(0)),
            ("ok", Decimal(2)),
        ]
    results = parse_output(task, _request(), output.replace("Answer[", "A["))
    assert [r.status for r in results] == ["missing", "missing"]
    assert results[0].message == "no Answer[1] in the output"
    # Decorated and lower-cased, as the default markers are read.
    results = parse_output(task, _request(), output.replace("Answer[1]:", "**answer[1]:**"))
    assert [r.status for r in results] == ["ok", "ok"]


def test_json_form_uses_the_spec_markers(task_factory: Callable[..., ir.Task]) -> None:
    task = _task(task_factory, "auto-demo")
    out = json.dumps({"answers": [{"index": 1, "question": "x", "reasoning": "So.", "answer": 3}]})
    text = build_grammar(task, 1, "auto-demo").text_of_json(out)
    assert text == "Question[1]: x\nAnswer[1]: So. The answer is 3."


def test_indexed_inputs_write_one_marker_per_input(task_factory: Callable[..., ir.Task]) -> None:
    task = replace(
        task_factory(kind="batch", batch_size=2, multi_field=True),
        markers=ir.Markers(answer="Answer", inputs="indexed"),
    )
    request = render(task, select(task))[0]
    user = request.messages[-1].content
    assert user.splitlines()[:4] == [
        "Premise[1]: Premise number 0.",
        "Hypothesis[1]: Claim 0.",
        "Premise[2]: Premise number 1.",
        "Hypothesis[2]: Claim 1.",
    ]


@pytest.mark.parametrize(
    ("prefix", "why"),
    [
        ("A", None),
        ("Answer Choices", None),
        ("A:", "holds a ':'"),
        ("A[", "holds a '['"),
        (" A", "has white space at an end"),
        ("A\nB", "holds a line break"),
    ],
)
def test_marker_prefixes(prefix: str, why: str | None) -> None:
    assert marker_problem(prefix) == why


@pytest.mark.parametrize(
    ("a", "b", "why"),
    [
        ("Q", "A", None),
        ("A", "Answer Choices", None),  # A[ is no prefix of Answer Choices[
        ("Answer", "answer", "are the same (markers are read in any case)"),
        ("Choices", "Answer Choices", "overlap: 'Choices' ends 'Answer Choices'"),
    ],
)
def test_marker_clashes(a: str, b: str, why: str | None) -> None:
    assert marker_clash(a, b) == why


def test_misaligned_messages_name_the_spec_markers(task_factory: Callable[..., ir.Task]) -> None:
    """A repeated question that is not the item's is reported under the spec's own marker
    (``Question[2]``), on the fast path, the grammar's and the recovering parser's."""
    task = _task(task_factory, "auto-demo")
    good = (
        "Question[1]: What is 0 plus 0?\nAnswer[1]: 0 + 0 = 0. The answer is 0.\n"
        "Question[2]: What is 1 plus 1?\nAnswer[2]: 1 + 1 = 2. The answer is 2."
    )
    wrong = good.replace("What is 1 plus 1?", "Name the capital of a faraway country.")
    for mode in ("recover", "strict"):
        results = parse_output(task, _request("auto-demo"), wrong, mode=mode)  # type: ignore[arg-type]
        assert [r.status for r in results] == ["ok", "misaligned"]
        assert results[1].message.startswith("Question[2] does not repeat item 2's question")
        assert "Q[" not in results[1].message
    # Decorated: only the recovering parser reads it.
    results = parse_output(
        task, _request("auto-demo"), wrong.replace("Question[2]:", "**Question[2]:**")
    )
    assert [r.status for r in results] == ["ok", "misaligned"]
    assert results[1].message.startswith("Question[2] does not repeat item 2's question")
