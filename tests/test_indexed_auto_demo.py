"""Auto-Demo with indexed inputs (``markers: {inputs: indexed}``): the model repeats each input
under its own marker before answering (``Premise[i]: …`` / ``Hypothesis[i]: …`` /
``Answer[i]: …``), and the template, every export and the parser agree on it, from
``promptc.markers``. specs/mnli.yaml (the published Batch Prompting layout) in auto-demo."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest
from grammar_reading import answer_json, lark_items, regex_items, strict_items
from hypothesis import given, settings
from hypothesis import strategies as st
from promptc import markers
from promptc.build import assemble
from promptc.errors import PromptcError, flatten
from promptc.grammar.answer import AnswerGrammar, build_grammar
from promptc.ir import Request, Task
from promptc.parse.output import parse_output
from promptc.parse.recover import parse_recover
from promptc.parse.results import ItemResult
from promptc.parse.shape import RequestShape, request_shape
from promptc.parse.strict import item_results, match_output
from promptc.spec.answer_format import write_answer
from promptc.spec.lower import compile_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"


@pytest.fixture(scope="module")
def task() -> Task:
    return compile_spec(SPECS / "mnli.yaml", overrides={("strategy", "kind"): "auto-demo"})


@pytest.fixture(scope="module")
def request_(task: Task) -> Request:
    return assemble(task).requests[0]


def _shape(task: Task, request: Request) -> RequestShape:
    return request_shape(
        task, {"id": request.id, "kind": "auto-demo", "item_ids": request.batch.item_ids}
    )


REASONS = ["A dog asleep outside is an animal resting outside.", "It is free on some days."]
LABELS = ["True", "False"]


def _output(task: Task, request: Request) -> str:
    """What a model writes when it follows the prompt: each item's inputs repeated under their
    markers, as the prompt's solved examples show them, then its answer."""
    by_id = {it.id: it for it in task.items}
    lines = []
    for i, item_id in enumerate(request.batch.item_ids, 1):
        lines.append(markers.question_block(task.inputs, by_id[item_id].inputs, i, task.markers))
        answer = write_answer(
            task.answer_format,
            task.outputs,
            {"reasoning": REASONS[i - 1], "label": LABELS[i - 1]},
        )
        lines.append(f"Answer[{i}]: {answer}")
    return "\n".join(lines)


def _both_paths(task: Task, request: Request, output: str) -> list[list[ItemResult]]:
    """The grammar's regex's results (which must read the output) and the recover scanner's."""
    shape = _shape(task, request)
    g = build_grammar(task, len(request.batch.item_ids), "auto-demo")
    items = match_output(g, output)
    assert items is not None, "the grammar's regex did not read the output"
    return [item_results(shape, g, items), parse_recover(shape, g, output)]


def _statuses(results: list[ItemResult]) -> list[tuple[str, str, object]]:
    return [(r.status, r.message, r.values.get("label")) for r in results]


def test_the_prompt_asks_for_each_input_under_its_own_marker(task: Task, request_: Request) -> None:
    system, user = request_.messages[0].content, request_.messages[-1].content
    assert "Premise[i]: <the premise, repeated exactly>\n" in system
    assert "Hypothesis[i]: <the hypothesis, repeated exactly>\nAnswer[i]: " in system
    # The solved examples show the layout the answer must repeat; Q[ and A[ are nowhere.
    assert "\nPremise[1]: A chef is slicing onions in a crowded kitchen.\n" in system
    assert "\nHypothesis[1]: Someone is preparing food.\nAnswer[1]: Slicing onions" in system
    assert user.startswith("Premise[1]: ") and "\nHypothesis[2]: " in user
    assert "Q[" not in system + user and "A[" not in system + user


def test_round_trip_on_both_paths(task: Task, request_: Request) -> None:
    output = _output(task, request_)
    for results in _both_paths(task, request_, output):
        assert [(r.status, r.values) for r in results] == [
            ("ok", {"reasoning": REASONS[0], "label": "True"}),
            ("ok", {"reasoning": REASONS[1], "label": "False"}),
        ]
    for mode in ("strict", "recover"):
        results = parse_output(task, request_, output, mode=mode)  # type: ignore[arg-type]
        assert [r.status for r in results] == ["ok", "ok"]
        assert [r.item_id for r in results] == list(request_.batch.item_ids)


def test_the_layout_slack_of_the_grammar_on_both_paths(task: Task, request_: Request) -> None:
    """Blank lines, trailing spaces and extra spaces after a marker: what the strict grammar
    allows between lines, read on the fast path as on the slow one."""
    output = _output(task, request_)
    loose = (
        "\n"
        + output.replace("\nHypothesis[2]: ", "  \n\nHypothesis[2]:   ").replace(
            "\nAnswer[1]:", "\n\nAnswer[1]:"
        )
        + "\n"
    )
    for results in _both_paths(task, request_, loose):
        assert _statuses(results) == [("ok", "", "True"), ("ok", "", "False")]


def test_markdown_and_case_are_read_by_the_recovering_parser(task: Task, request_: Request) -> None:
    output = _output(task, request_)
    decorated = output.replace("Premise[1]:", "**Premise[1]:**").replace(
        "Hypothesis[2]:", "**hypothesis[2]:**"
    )
    results = parse_output(task, request_, decorated)
    assert _statuses(results) == [("ok", "", "True"), ("ok", "", "False")]
    strict = parse_output(task, request_, decorated, mode="strict")
    assert [r.status for r in strict] == ["malformed", "malformed"]


def _paths(task: Task, request: Request, output: str) -> list[list[ItemResult]]:
    """Strict (fast path or grammar) and recovering results of one output."""
    return [
        parse_output(task, request, output, mode="strict"),
        parse_output(task, request, output, mode="recover"),
    ]


def test_a_wrong_repeated_input_is_misaligned(task: Task, request_: Request) -> None:
    """The right premise under a wrong hypothesis is no repeat of the item: each input is
    compared on its own, and the message names the input's marker."""
    output = _output(task, request_)
    by_id = {it.id: it for it in task.items}
    hypothesis = by_id[request_.batch.item_ids[1]].inputs["hypothesis"]
    wrong = output.replace(hypothesis, "Nobody ever visits the museum at all.")
    for results in [*_both_paths(task, request_, wrong), *_paths(task, request_, wrong)]:
        assert [r.status for r in results] == ["ok", "misaligned"]
        assert results[1].message.startswith(
            "Hypothesis[2] does not repeat item 2's hypothesis (similarity 0."
        )
        assert results[1].values["label"] == "False"  # the answer is kept, flagged


def test_swapped_inputs_name_the_item_they_belong_to(task: Task, request_: Request) -> None:
    by_id = {it.id: it for it in task.items}
    a, b = (by_id[i].inputs for i in request_.batch.item_ids)
    output = _output(task, request_)
    first = markers.question_block(task.inputs, a, 1, task.markers)
    second = markers.question_block(task.inputs, b, 2, task.markers)
    swapped = output.replace(first, markers.question_block(task.inputs, b, 1, task.markers))
    swapped = swapped.replace(second, markers.question_block(task.inputs, a, 2, task.markers))
    for results in _paths(task, request_, swapped):
        assert [r.status for r in results] == ["misaligned", "misaligned"]
        assert results[0].message.startswith("Premise[1] does not repeat item 1's premise")
        assert results[0].message.endswith("; they are item 2's inputs")


def test_an_input_under_another_items_marker(task: Task, request_: Request) -> None:
    """``Hypothesis[1]`` in item 2's question: strict mode stops there, expecting
    ``Hypothesis[2]:``; the recovering parser keeps item 2's answer, flagged misaligned."""
    output = _output(task, request_).replace("Hypothesis[2]:", "Hypothesis[1]:")
    strict, recover = _paths(task, request_, output)
    assert [r.status for r in strict] == ["malformed", "malformed"]
    assert "expected 'Hypothesis[2]:', found 'Hypothesis[1]: " in strict[1].message
    assert _statuses(recover) == [
        ("ok", "", "True"),
        ("misaligned", "Answer[2] follows Hypothesis[1]", "False"),
    ]


def test_an_input_left_out(task: Task, request_: Request) -> None:
    output = re.sub(r"\nHypothesis\[2\]: [^\n]*", "", _output(task, request_))
    strict, recover = _paths(task, request_, output)
    assert strict[1].status == "malformed"
    assert "expected 'Hypothesis[2]:'" in strict[1].message
    assert [r.status for r in recover] == ["ok", "misaligned"]
    assert recover[1].message.startswith("Premise[2] does not repeat item 2's inputs")


def test_the_first_input_left_out_the_others_are_still_checked(
    task: Task, request_: Request
) -> None:
    """Without its ``Premise[2]`` line, item 2's ``Hypothesis`` line is still compared: under
    another item's marker it is misaligned, with another hypothesis too; its own is ok."""
    output = re.sub(r"\nPremise\[2\]: [^\n]*", "", _output(task, request_))
    assert "Premise[2]" not in output
    recover = parse_output(task, request_, output)
    assert _statuses(recover) == [("ok", "", "True"), ("ok", "", "False")]
    wrong = output.replace("Hypothesis[2]:", "Hypothesis[1]:")
    assert _statuses(parse_output(task, request_, wrong)) == [
        ("ok", "", "True"),
        ("misaligned", "Answer[2] follows Hypothesis[1]", "False"),
    ]
    by_id = {it.id: it for it in task.items}
    hypothesis = by_id[request_.batch.item_ids[1]].inputs["hypothesis"]
    other = parse_output(task, request_, output.replace(hypothesis, "She is going to work."))
    assert [r.status for r in other] == ["ok", "misaligned"]
    assert other[1].message.startswith(
        "Hypothesis[2] does not repeat item 2's hypothesis (similarity 0."
    )
    # Both items' premises left out: each hypothesis is its item's own.
    neither = re.sub(r"^Premise\[1\]: [^\n]*\n", "", output)
    assert [r.status for r in parse_output(task, request_, neither)] == ["ok", "ok"]


def _grammar(task: Task, request: Request) -> AnswerGrammar:
    return build_grammar(task, len(request.batch.item_ids), "auto-demo")


def _questions(task: Task, request: Request) -> list[str]:
    by_id = {it.id: it for it in task.items}
    return [markers.question_text(task.inputs, by_id[i].inputs) for i in request.batch.item_ids]


def test_every_export_accepts_what_the_prompt_asks_for(task: Task, request_: Request) -> None:
    g = _grammar(task, request_)
    output = _output(task, request_)
    questions = _questions(task, request_)
    # The canonical output the grammar writes is the output the prompt asks for.
    answers = [{"reasoning": r, "label": lab} for r, lab in zip(REASONS, LABELS)]
    assert g.write_output(answers, questions) == output
    assert re.fullmatch(g.portable_regex, output)
    assert re.fullmatch(g.portable_regex_for(questions), output)
    assert not re.fullmatch(g.portable_regex_for(questions[::-1]), output)
    assert g.parse_regex is not None and re.fullmatch(g.parse_regex, output)
    for items in (regex_items(g, output), lark_items(g, output)):
        assert [it.question for it in items] == questions
        assert [it.values["label"] for it in items] == LABELS
        assert items[1].question_span is not None
        shown = output[items[1].question_span.start_offset : items[1].question_span.end_offset]
        assert shown.startswith(questions[1].split("\n")[0].removeprefix("Premise: "))
        assert shown.endswith(questions[1].split("\n")[1].removeprefix("Hypothesis: "))
    # The JSON form carries each question as question_text writes it and reads back.
    doc = answer_json(g, strict_items(g, output))
    jsonschema.validate(doc, g.json_schema)
    assert g.text_of_json(json.dumps(doc)) == output
    results = parse_output(task, request_, json.dumps(doc))
    assert [(r.status, r.values["label"]) for r in results] == [("ok", "True"), ("ok", "False")]
    assert "Premise[1]: " in g.gbnf and '"Hypothesis[2]: " question-line' in g.gbnf
    pinned = g.gbnf_for(questions)
    assert '"Premise[1]: " "A dog is sleeping' in pinned
    assert '"\\n" "Hypothesis[1]: " "An animal is resting outside."' in pinned
    lark = g.lark
    assert "item_1: QUESTION_MARKER_1 QUESTION _NL INPUT_MARKER_1_2 QUESTION _NL" in lark
    assert "INPUT_MARKER_2_2: /Hypothesis\\[2\\]:[ \\t]*/" in lark


def test_strict_lark_diagnosis_names_the_input_marker(task: Task, request_: Request) -> None:
    from promptc.errors import OutputParseError

    g = _grammar(task, request_)
    output = _output(task, request_).replace("Hypothesis[1]:", "Hypothesis:")
    with pytest.raises(OutputParseError, match=r"expected 'Hypothesis\[1\]:'"):
        strict_items(g, output)


@pytest.mark.parametrize(
    ("written", "question", "wrong"),
    [
        ("a", "Premise: a", None),  # no later input: its marker is missing
        ("a\nHypothesis[2]: b", "Premise: a\nHypothesis: b", None),
        ("a  \n\n **HYPOTHESIS[2]:**  b\nc", "Premise: a\nHypothesis: b\nc", None),
        ("a\nHypothesis[3]: b", "Premise: a\nHypothesis: b", "Hypothesis[3]"),
        ("a Hypothesis[2]: b", "Premise: a Hypothesis[2]: b", None),  # not at a line start
    ],
)
def test_read_question(written: str, question: str, wrong: str | None) -> None:
    prefixes = ("Premise", "Hypothesis")
    assert markers.read_question(written, prefixes, 2) == (question, wrong)


def test_question_lines_round_trip() -> None:
    prefixes = ("Premise", "Hypothesis")
    question = "Premise: a\nb\nHypothesis: c"
    lines = markers.question_lines(question, 4, prefixes)
    assert lines == "Premise[4]: a\nb\nHypothesis[4]: c"
    assert markers.read_question(lines.removeprefix("Premise[4]: "), prefixes, 4)[0] == question
    # A value holding a line like a later label is split at the first, and still round-trips.
    tricky = "Premise: a\nHypothesis: b\nHypothesis: c"
    lines = markers.question_lines(tricky, 1, prefixes)
    assert markers.read_question(lines.removeprefix("Premise[1]: "), prefixes, 1)[0] == tricky
    with pytest.raises(ValueError, match="does not start with 'Premise: '"):
        markers.question_lines("a question", 1, prefixes)


def test_build_input_refuses_a_request_naming_an_item_the_task_lacks(
    task: Task, tmp_path: Path
) -> None:
    """An item the task does not know: the request is refused, naming it, rather than read
    with questions from its prompt (results would credit an item the build does not hold,
    and leave out the one it does)."""
    from promptc.build import build
    from promptc.parse.build_input import open_build

    build(task, tmp_path / "b")
    requests = tmp_path / "b" / "requests.jsonl"
    lines = requests.read_text(encoding="utf-8").split("\n")
    record = json.loads(lines[0])
    record["item_ids"] = ["unknown-1", "unknown-2"]
    requests.write_text("\n".join([json.dumps(record), *lines[1:]]), encoding="utf-8")
    with pytest.raises(PromptcError) as e:
        open_build(tmp_path / "b")
    assert [(x.code, x.format()) for x in flatten([e.value])] == [
        (
            "unknown-item",
            (
                f"{requests}:1:1: request {record['id']} names item 'unknown-1', which "
                "items.jsonl does not hold (rebuild it with promptc build SPEC -o DIR)"
            ),
        )
    ]


def test_one_indexed_input() -> None:
    """One input, indexed: its label is the question's marker and the question its value."""
    from dataclasses import replace

    base = compile_spec(SPECS / "gsm8k.yaml", overrides={("strategy", "kind"): "auto-demo"})
    task = replace(base, markers=replace(base.markers, inputs="indexed"))
    g = build_grammar(task, 1, "auto-demo")
    label = markers.field_label(task.inputs[0])
    q = markers.question_text(task.inputs, task.items[0].inputs)
    values = {o.name: Decimal(3) if o.type.name == "number" else "So." for o in task.outputs}
    text = g.write_output([values], [q])
    assert text.startswith(f"{label}[1]: {q}\nA[1]: ")
    assert [it.question for it in strict_items(g, text)] == [q]


_VALUE = (
    st.text(
        alphabet=st.characters(codec="utf-8", exclude_characters="[\r", exclude_categories=("Cs",)),
        min_size=1,
        max_size=40,
    )
    .map(lambda s: s.strip(" \t\n\r\f\v"))
    .filter(bool)
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_VALUE, min_size=2, max_size=3), st.integers(1, 99))
def test_question_lines_and_read_question_are_inverse(values: list[str], index: int) -> None:
    """Whatever the input values (line breaks, label-like lines and emphasis included, no
    brackets), the lines an answer writes read back as the item's question."""
    prefixes = ("Premise", "Hypothesis", "Answer Choices")[: len(values)]
    question = "\n".join(f"{p}: {v}" for p, v in zip(prefixes, values))
    lines = markers.question_lines(question, index, prefixes)
    first = markers.marker(prefixes[0], index) + markers.MARKER_SEPARATOR
    assert lines.startswith(first)
    assert markers.read_question(lines[len(first) :], prefixes, index) == (question, None)


def test_run_pins_each_input_and_checks_the_prompt_in_the_builds_markers(
    task: Task, tmp_path: Path
) -> None:
    """``promptc run --grammar gbnf`` sends each Auto-Demo request its own grammar, each input
    pinned under its own marker, after checking that the prompt shows those very inputs (in
    the build's markers, not ``Q[i]:``); a prompt edited since names ``Premise[1]:``."""
    from dataclasses import replace

    from promptc.build import build, read_requests
    from promptc.errors import UsageError
    from promptc.run.bodies import request_body

    build(task, tmp_path / "b")
    first = read_requests(tmp_path / "b")[0]
    grammar = request_body(first, tmp_path / "b", "gbnf")["grammar"]
    assert grammar == _grammar(task, assemble(task).requests[0]).gbnf_for(
        _questions(task, assemble(task).requests[0])
    )
    assert '"Premise[1]: " "A dog is sleeping on the porch' in grammar
    edited = replace(
        first,
        messages=tuple(
            {**m, "content": m["content"].replace("Hypothesis[1]: ", "Hypothesis[1]: Edited. ")}
            for m in first.messages
        ),
    )
    with pytest.raises(UsageError, match=r"is not the one its prompt shows as Premise\[1\]:"):
        request_body(edited, tmp_path / "b", "gbnf")


@pytest.mark.parametrize("kind", ["batch", "auto-demo"])
def test_repair_re_asks_an_item_with_its_inputs_under_their_markers(
    kind: str, tmp_path: Path
) -> None:
    """``run``'s repair round cuts a request down to its failed items and renumbers them: with
    indexed inputs each item's lines move together (``Premise[1]: …`` / ``Hypothesis[1]: …``)."""
    from promptc.build import build, read_requests
    from promptc.run.repair import repair_requests

    task = compile_spec(SPECS / "mnli.yaml", overrides={("strategy", "kind"): kind})
    build(task, tmp_path / "b")
    first = read_requests(tmp_path / "b")[0]
    planned, refused = repair_requests(task, {first.id: [2]}, {first.id: first}, 1)
    assert refused == [] and len(planned) == 1
    by_id = {it.id: it for it in task.items}
    second = by_id[first.item_ids[1]].inputs
    user = planned[0].request.messages[-1]["content"]
    asked = f"Premise[1]: {second['premise']}\nHypothesis[1]: {second['hypothesis']}"
    assert user.rstrip().endswith(asked), user
    assert by_id[first.item_ids[0]].inputs["premise"] not in user
    assert "Premise[2]:" not in user.split(asked)[-1]


def test_a_lenient_answer_after_repeated_inputs(task: Task, request_: Request) -> None:
    """The final period left out: read leniently after the repeated inputs, never in strict."""
    from promptc.parse.recover import LENIENT_NOTE

    output = _output(task, request_).replace("So the answer is False.", "So the answer is False")
    results = parse_output(task, request_, output)
    assert _statuses(results) == [("ok", "", "True"), ("ok", LENIENT_NOTE, "False")]
    strict = parse_output(task, request_, output, mode="strict")
    assert strict[1].status == "malformed"
