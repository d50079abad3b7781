"""data.gold: gold answers read from a column or an expression, typed, with located errors."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from promptc.cli.app import run
from promptc.errors import PromptcErrors
from promptc.spec.lower import compile_spec

REPO = Path(__file__).resolve().parents[1]

SPEC = """\
promptc: 1
name: g
instruction: Solve.
inputs: {{question: {{type: text}}}}
outputs:
  reasoning: {{type: text}}
  answer: {{type: {answer_type}}}
  ok: {{type: boolean}}
  label: {{type: enum, choices: [pos, neg], aliases: {{positive: pos}}}}
answer_format: "{{reasoning}} A: {{answer}} ok: {{ok}} label: {{label}}."
data:
  path: d.jsonl
  gold: {gold}
model: {{name: m}}
"""


def write(
    tmp_path: Path, rows: list[dict[str, object]], gold: str, answer_type: str = "number"
) -> Path:
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.format(gold=gold, answer_type=answer_type), encoding="utf-8")
    return spec


def errors(spec: Path) -> list[str]:
    with pytest.raises(PromptcErrors) as e:
        compile_spec(spec)
    return [err.format() for err in e.value.errors]


def test_gold_from_columns_and_expressions_is_typed(tmp_path: Path) -> None:
    rows = [
        {"question": "a", "sol": "x #### 1,234", "y": True, "lab": "Positive"},
        {"question": "b", "sol": "y\n#### -3.50", "y": "no", "lab": "NEG"},
        {"question": "c", "sol": "#### 18", "y": "TRUE", "lab": "pos"},
    ]
    spec = write(tmp_path, rows, "{answer: \"{{ row.sol.split('####')[-1] }}\", ok: y, label: lab}")
    task = compile_spec(spec)
    assert [dict(i.gold) for i in task.items] == [
        {"answer": Decimal(1234), "ok": True, "label": "pos"},
        {"answer": Decimal("-3.50"), "ok": False, "label": "neg"},
        {"answer": Decimal(18), "ok": True, "label": "pos"},
    ]
    assert task.data is not None
    assert dict(task.data.gold) == {
        "answer": "{{ row.sol.split('####')[-1] }}",
        "ok": "y",
        "label": "lab",
    }


def test_json_numbers_read_as_integers_when_whole(tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text('[{"question": "q", "Answer": 51.0}]', encoding="utf-8")
    spec = write(tmp_path, [], "{answer: Answer}", answer_type="integer")
    spec.write_text(spec.read_text().replace("d.jsonl", "d.json"), encoding="utf-8")
    task = compile_spec(spec)
    assert task.items[0].gold == {"answer": 51}
    assert type(task.items[0].gold["answer"]) is int


def test_gold_errors_are_located_at_the_row(tmp_path: Path) -> None:
    rows = [
        {"question": "a", "g": "18"},
        {"question": "b", "g": "eighteen"},
        {"question": "c"},
        {"question": "d", "g": None},
    ]
    spec = write(tmp_path, rows, "{answer: g}")
    data = str(tmp_path / "d.jsonl")
    assert errors(spec) == [
        (
            f"{data}:2:1: data.gold.answer: gold value for number output 'answer': expected a "
            "number such as 18, -3.5 or 1,234, found 'eighteen'"
        ),
        (
            f"{data}:3:1: row has no gold field 'g' (for output 'answer') (map data.gold to the "
            "column holding the answer, or to an expression)"
        ),
        f"{data}:4:1: gold field 'g' (for output 'answer') is null; expected a value",
    ]


def test_failing_gold_expression_is_located(tmp_path: Path) -> None:
    spec = write(tmp_path, [{"question": "a"}], "{answer: \"{{ row.sol.split('#')[1] }}\"}")
    (msg,) = errors(spec)
    assert msg.startswith(f"{tmp_path / 'd.jsonl'}:1:1: data.gold.answer: gold expression for ")
    assert "'sol'" in msg


def test_gold_for_an_unknown_output_is_a_spec_error(tmp_path: Path) -> None:
    spec = write(tmp_path, [{"question": "a", "g": "1"}], "{answr: g}")
    (msg,) = errors(spec)
    assert msg == (
        f"{spec}:13:10: data.gold.answr: data.gold maps 'answr', which is not an output; "
        "expected one of reasoning, answer, ok, label (did you mean 'answer'?)"
    )


def test_check_reports_gold_errors_and_names_gold_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write(tmp_path, [{"question": "a", "g": "x"}], "{answer: g, nope: g}")
    assert run(["check", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "data.gold.nope: data.gold maps 'nope'" in err
    assert "d.jsonl:1:1: data.gold.answer: gold value for number output" in err
    assert err.endswith(": 2 errors\n")
    spec = write(tmp_path, [{"question": "a", "g": "4"}], "{answer: g}")
    assert run(["check", str(spec)]) == 0
    assert "1 item with gold answer," in capsys.readouterr().out


def test_data_option_reads_another_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = write(tmp_path, [{"question": "a", "g": "4"}], "{answer: g}")
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "more.jsonl").write_text(
        '{"question": "x", "g": "1"}\n{"question": "y", "g": "2"}\n', encoding="utf-8"
    )
    assert run(["check", str(spec), "--data", str(other / "more.jsonl")]) == 0
    assert "2 items with gold answer" in capsys.readouterr().out
    assert run(["check", str(spec), "--data", str(other / "none.jsonl")]) == 1
    assert "<command line>: data.path: data file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("spec", "data", "n", "first"),
    [
        ("gsm8k.yaml", "gsm8k/test.jsonl", 1319, Decimal(18)),
        ("svamp.yaml", "svamp/SVAMP.json", 1000, Decimal("51.0")),
    ],
)
def test_real_task_specs_read_the_shared_data_sets(
    spec: str, data: str, n: int, first: Decimal
) -> None:
    shared = REPO.parent.parent / "shared" / "data"
    for candidate in (REPO.parent / "shared" / "data", shared):
        if (candidate / data).is_file():
            break
    else:
        pytest.skip("the shared GSM8K/SVAMP data are not on this machine")
    task = compile_spec(REPO / "specs" / spec, overrides={("data", "path"): str(candidate / data)})
    assert len(task.items) == n
    assert all("answer" in i.gold for i in task.items)
    assert task.items[0].gold["answer"] == first


def test_example_task_specs_build_without_data_option() -> None:
    for name, n in (("gsm8k.yaml", 5), ("svamp.yaml", 4)):
        task = compile_spec(REPO / "specs" / name)
        assert len(task.items) == n
        assert all("answer" in i.gold for i in task.items)


def test_a_build_made_with_data_option_is_read_back_with_that_data(tmp_path: Path) -> None:
    from promptc.build import build
    from promptc.parse.build_input import open_build

    spec = write(tmp_path, [{"question": "own", "g": "1"}], "{answer: g}")
    other = tmp_path / "other.jsonl"
    other.write_text('{"question": "x", "g": "2"}\n{"question": "y", "g": "3"}\n', "utf-8")
    task = compile_spec(spec, overrides={("data", "path"): str(other)})
    build(task, tmp_path / "b")
    loaded = open_build(tmp_path / "b").task
    assert [i.inputs["question"] for i in loaded.items] == ["x", "y"]
    assert [i.gold["answer"] for i in loaded.items] == [2, 3]


def test_a_gold_expression_that_reaches_a_null_is_refused_never_the_word_none(
    tmp_path: Path,
) -> None:
    """``{{ row.answer.text }}`` over a row whose ``text`` is null: no gold ``"None"`` for a
    text output (eval would score against the word), but an error at the row, as a column
    holding null is."""
    rows = [{"question": "a", "ans": {"text": "Paris"}}, {"question": "b", "ans": {"text": None}}]
    spec = write(tmp_path, rows, '{reasoning: "{{ row.ans.text }}"}')
    (msg,) = errors(spec)
    assert msg == (
        f"{tmp_path / 'd.jsonl'}:2:1: data.gold.reasoning: gold expression for output "
        "'reasoning' failed: its value is null; expected a value"
    )


def test_a_gold_expression_writing_a_misspelt_name_inside_a_list_is_refused(
    tmp_path: Path,
) -> None:
    """``{{ [row.lable] }}``: the list's text held the word Undefined, and every gold was
    '[Undefined]' (eval scored every answer wrong against it)."""
    rows = [{"question": "a", "label": "x"}]
    spec = write(tmp_path, rows, '{reasoning: "{{ [row.lable] }}"}')
    (msg,) = errors(spec)
    assert msg == (
        f"{tmp_path / 'd.jsonl'}:1:1: data.gold.reasoning: gold expression for output "
        "'reasoning' failed: 'dict object' has no attribute 'lable'"
    )


def test_a_gold_column_no_row_has_is_one_error_naming_the_columns(tmp_path: Path) -> None:
    """A misspelt gold column over many rows: one error at its data.gold entry listing the
    columns the rows have (as a misspelt input column is), not one error a row."""
    rows = [{"question": f"q{k}", "answer": str(k)} for k in range(500)]
    spec = write(tmp_path, rows, "{answer: answr}")
    assert errors(spec) == [
        (
            f"{spec}:13:18: data.gold.answer: no row has a gold column 'answr' (for output "
            "'answer'); the rows have 'answer', 'question' (map data.gold to the column "
            "holding the answer, or to an expression)"
        )
    ]


def test_a_gold_number_reads_alike_through_its_column_and_an_expression(tmp_path: Path) -> None:
    """JSON numbers with an exponent (1e-7, 1E+2): positional through an expression as
    through a column (Decimal's text, 1E-7, was refused as no number)."""
    rows = [{"question": "a", "g": 1e-7}, {"question": "b", "g": 1e2}]
    answers = []
    for gold in ("{answer: g}", '{answer: "{{ row.g }}"}'):
        task = compile_spec(write(tmp_path, rows, gold))
        answers.append([i.gold["answer"] for i in task.items])
    assert answers[0] == answers[1] == [Decimal("0.0000001"), Decimal(100)]
