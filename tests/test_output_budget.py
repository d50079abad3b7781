"""Output budgets that fit the request (``model.max_tokens_per_item``), the warning of a fixed
``max_tokens`` that cannot fit a batch request, and the ``truncated`` status of the items an
output cut off at ``max_tokens`` lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from promptc.build import assemble
from promptc.errors import PromptcErrors
from promptc.markers import question_text
from promptc.parse.output import TRUNCATED_MESSAGE, parse_output
from promptc.parse.results import STATUSES
from promptc.render.output_budget import (
    JSON_TOKEN,
    budget_need,
    budget_warning,
    count_bound,
    fixed_text,
    json_fixed_text,
    json_skeleton,
    request_budget,
)
from promptc.spec.lower import compile_spec
from test_parse_output import NUMBER, REASONING, make_request, make_task

SPECS = Path(__file__).resolve().parents[1] / "specs"
READING = SPECS / "reading.yaml"
PER_ITEM = ("model", "max_tokens_per_item")


@pytest.fixture
def fixed(tmp_path: Path) -> Path:
    """specs/reading.yaml with a fixed ``max_tokens: 64`` (as it was), and its data."""
    spec = tmp_path / "reading.yaml"
    spec.write_text(READING.read_text().replace("max_tokens_per_item: 64", "max_tokens: 64"))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "reading.csv").write_text((SPECS / "data" / "reading.csv").read_text())
    return spec


def _reading(kind: str, size: int = 4, spec: Path = READING, **model: object) -> object:
    overrides: dict[tuple[str, ...], object] = {("strategy", "kind"): kind}
    if kind in ("batch", "auto-demo"):
        overrides[("strategy", "batch_size")] = size
    overrides.update({("model", k): v for k, v in model.items()})
    return compile_spec(spec, overrides=overrides)


def _budgets(task: object) -> list[int]:
    lines = assemble(task).files["requests.jsonl"].splitlines()  # type: ignore[arg-type]
    return [json.loads(x)["params"]["max_tokens"] for x in lines]


def test_each_request_gets_its_items_times_the_budget_plus_its_fixed_text() -> None:
    single = _reading("single")
    assert set(_budgets(single)) == {64}  # a one-item request: the per-item budget alone
    batch = _reading("batch")
    # "A[k]: " and the line break: 7 bytes per item, 4 items a request.
    assert _budgets(batch) == [4 * (64 + 7)] * 4
    auto = _reading("auto-demo")
    items = {i.id: i for i in auto.items}  # type: ignore[attr-defined]
    lines = assemble(auto).files["requests.jsonl"].splitlines()  # type: ignore[arg-type]
    for line in lines:
        request = json.loads(line)
        questions = [question_text(auto.inputs, items[i].inputs) for i in request["item_ids"]]  # type: ignore[attr-defined]
        repeated = sum(len(f"Q[{k}]: {q}\n".encode()) for k, q in enumerate(questions, 1))
        assert request["params"]["max_tokens"] == 4 * (64 + 7) + repeated


def test_fixed_max_tokens_is_sent_unchanged(fixed: Path) -> None:
    task = _reading("batch", spec=fixed)
    assert set(_budgets(task)) == {64}
    assert request_budget(task, task.items[:4]) is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
@pytest.mark.parametrize("spec", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_the_byte_count_never_under_counts_a_bpe(spec: Path, encoding: str) -> None:
    pytest.importorskip("bpe_openai")
    from promptc.plan.tokenizers import tokenizer_for

    tok = tokenizer_for("any", encoding)
    task = compile_spec(spec, overrides={("strategy", "kind"): "auto-demo"})
    for k, item in enumerate(task.items, 1):
        text = fixed_text(task, k, item)
        assert count_bound(text) >= tok.count(text)
        assert count_bound(text) >= 1.3 * tok.count(text)  # the margin measured: 1.4 at least


# -------------------------------------------------------------------------- the JSON form


def _spellings(skeleton: str) -> dict[str, str]:
    """The JSON form of an answer as models write it: compact (OpenAI's structured outputs),
    with json.dumps's spaces, indented by 2 and 4, with a blank line between every two tokens
    (SmolLM2 under llama.cpp's JSON grammar), each with raw UTF-8 and with \\u escapes."""
    value = json.loads(skeleton)
    out = {}
    for ascii_ in (True, False):
        out[f"compact-{ascii_}"] = json.dumps(value, separators=(",", ":"), ensure_ascii=ascii_)
        out[f"spaced-{ascii_}"] = json.dumps(value, ensure_ascii=ascii_)
        out[f"indent2-{ascii_}"] = json.dumps(value, indent=2, ensure_ascii=ascii_)
        out[f"indent4-{ascii_}"] = json.dumps(value, indent=4, ensure_ascii=ascii_)
        compact = out[f"compact-{ascii_}"]
        out[f"blank-lines-{ascii_}"] = "\n\n".join(JSON_TOKEN.findall(compact))
    return out


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
@pytest.mark.parametrize("kind", ["single", "batch", "auto-demo"])
@pytest.mark.parametrize("spec", sorted(SPECS.glob("*.yaml")), ids=lambda p: p.stem)
def test_the_json_allowance_covers_every_spelling_of_the_json_form(
    spec: Path, kind: str, encoding: str
) -> None:
    """The measured claim of render/output_budget.py: the JSON form's allowance is at least
    what its keys, quotes, braces, indexes, questions and white space take, however a model
    spells them."""
    pytest.importorskip("bpe_openai")
    from promptc.plan.tokenizers import tokenizer_for

    tok = tokenizer_for("any", encoding)
    overrides: dict[tuple[str, ...], object] = {("strategy", "kind"): kind}
    if kind != "single":
        overrides[("strategy", "batch_size")] = 8
    task = compile_spec(spec, overrides=overrides)
    n = 1 if kind == "single" else min(8, len(task.items))
    for start in range(0, len(task.items) - n + 1, n):
        items = task.items[start : start + n]
        allowance = count_bound(json_fixed_text(task, items))
        for name, text in _spellings(json_skeleton(task, items)).items():
            assert allowance >= tok.count(text), (name, text)


def test_the_json_form_budget_adds_the_json_around_the_values() -> None:
    batch = _reading("batch")
    items = batch.items[:4]  # type: ignore[attr-defined]
    # {"answers":[{"index":1,"answer":""}, …]}: 4 items' keys, quotes, braces and indexes,
    # a blank line between every two of its 45 JSON tokens.
    skeleton = json_skeleton(batch, items)
    assert skeleton == (
        '{"answers":[' + ",".join(f'{{"index":{k},"answer":""}}' for k in range(1, 5)) + "]}"
    )
    assert len(JSON_TOKEN.findall(skeleton)) == 45
    assert request_budget(batch, items, json_form=True) == 4 * 64 + len(skeleton) + 44 * 2
    assert request_budget(batch, items) == 4 * (64 + 7)  # the text form's, unchanged
    # One item: the object of its fields alone; Auto-Demo: each question, escaped.
    single = _reading("single")
    one = single.items[:1]  # type: ignore[attr-defined]
    assert json_fixed_text(single, one) == '{\n\n"answer"\n\n:\n\n""\n\n}'
    assert request_budget(single, one, json_form=True) == 64 + 21
    auto = _reading("auto-demo")
    first = auto.items[0]  # type: ignore[attr-defined]
    question = json.dumps(question_text(auto.inputs, first.inputs))  # type: ignore[attr-defined]
    assert question in json_fixed_text(auto, [first]) and "\\n" in question


def test_a_batch_body_answered_in_json_carries_the_json_budget(tmp_path: Path) -> None:
    """``build --target openai-batch|vllm-batch --grammar json-schema``: each body's
    max_tokens is fitted to the JSON form it is constrained to; the other builds keep the
    text form's, byte for byte."""
    from promptc.build import build

    task = _reading("batch")
    items = {i.id: i for i in task.items}  # type: ignore[attr-defined]
    for target in ("openai-batch", "vllm-batch"):
        out = tmp_path / target
        build(task, out, target=target, vllm_grammar="json-schema")  # type: ignore[arg-type]
        for line in (out / "requests.jsonl").read_text().splitlines():
            record = json.loads(line)
            (batch,) = [
                json.loads(x)
                for x in (out / "batches.jsonl").read_text().splitlines()
                if json.loads(x)["request"] == record["custom_id"]
            ]
            mine = [items[i] for i in batch["item_ids"]]
            # OpenAI's Batch API takes max_completion_tokens (o-series models refuse max_tokens).
            field = "max_completion_tokens" if target == "openai-batch" else "max_tokens"
            assert record["body"][field] == request_budget(task, mine, json_form=True)
    build(task, tmp_path / "gbnf", target="vllm-batch")  # type: ignore[arg-type]
    line = (tmp_path / "gbnf" / "requests.jsonl").read_text().splitlines()[0]
    assert json.loads(line)["body"]["max_tokens"] == 4 * (64 + 7)


def test_ray_sends_the_json_forms_budget_with_the_json_schema(tmp_path: Path) -> None:
    """Ray's HTTP processor (``promptc.ray.http_payload``) sends each request the budget of
    the form its grammar makes the model write (no Ray needed to make the payload)."""
    from promptc.build import build
    from promptc.ray import http_payload, request_rows

    task = _reading("batch")
    build(task, tmp_path / "b")  # type: ignore[arg-type]
    items = {i.id: i for i in task.items}  # type: ignore[attr-defined]
    lines = (tmp_path / "b" / "batches.jsonl").read_text().splitlines()
    for row, line in zip(request_rows(tmp_path / "b"), lines, strict=True):
        mine = [items[i] for i in json.loads(line)["item_ids"]]
        json_body = http_payload(row, "json_schema")["payload"]
        assert json_body["max_tokens"] == request_budget(task, mine, json_form=True)
        assert http_payload(row, "gbnf")["payload"]["max_tokens"] == 4 * (64 + 7)


def test_plan_counts_the_budget_the_json_form_is_sent() -> None:
    from promptc.plan.estimate import plan_task
    from promptc.plan.variants import Variant
    from promptc.select.methods import select

    class Chars:  # a token a character: no optional tokenizer needed
        name = "chars"
        exact = False

        def count(self, text: str) -> int:
            return len(text)

        def count_messages(self, messages: list[dict[str, str]]) -> int:
            return sum(len(m["content"]) for m in messages)

        def close(self) -> None:
            pass

    task = _reading("batch", max_tokens_per_item=1)
    variant = Variant(task.strategy.kind, 4, "sequential")  # type: ignore[attr-defined]
    text_plan = plan_task(task, variant, Chars(), None)  # type: ignore[arg-type]
    json_plan = plan_task(task, variant, Chars(), None, json_form=True)  # type: ignore[arg-type]
    items = task.items  # type: ignore[attr-defined]
    budgets = [
        request_budget(task, [items[i] for i in b.item_indices], json_form=True)
        for b in select(task).batches  # type: ignore[arg-type]
    ]
    assert json_plan.cap == max(budgets)  # each request's own budget of the JSON form
    assert text_plan.cap == 32 and json_plan.cap == request_budget(
        task,
        task.items[:4],  # type: ignore[attr-defined]
        json_form=True,
    )
    # The JSON form's output: each value ("yes") and the JSON around it, spelt compactly.
    skeleton = json_skeleton(task, task.items[:4])  # type: ignore[attr-defined]
    assert json_plan.output_tokens == json_plan.requests * (4 * 3 + len(skeleton))
    assert json_plan.capped == () and text_plan.capped  # the text form's 32 cuts "yes" × 4


def test_a_fixed_budget_too_small_for_a_batch_is_a_located_warning(fixed: Path) -> None:
    batch = _reading("batch", 8, spec=fixed)
    # 8 items × ("A[k]: " + "yes" + line break = 10 bytes).
    assert budget_need(batch) == 80
    warning = budget_warning(batch, "batch-8")
    assert warning is not None and warning.stage == "warning"
    assert warning.format() == (
        f"{fixed}:25:1: model.max_tokens: warning: model.max_tokens 64 may cut off the "
        "requests of batch-8: a request of 8 items may need up to 80 tokens (set "
        "model.max_tokens_per_item, which fits each request's budget to its items, or raise "
        "model.max_tokens to 80)"
    )
    assert budget_need(_reading("batch", 4, spec=fixed)) is None
    auto = _reading("auto-demo", 8, spec=fixed)
    need = budget_need(auto)
    assert need is not None and need > 1000  # eight passages repeated
    # One item a request: the spec's max_tokens is one item's; a per-item budget always fits.
    assert budget_need(_reading("few-shot", spec=fixed, max_tokens=8)) is None
    assert budget_need(_reading("auto-demo", 8)) is None


def test_check_prints_the_warning_and_exits_zero(fixed: Path) -> None:
    from click.testing import CliRunner
    from promptc.cli.check import check_command

    spec = fixed
    run = CliRunner().invoke(check_command, [str(spec), "--strategy", "batch"])
    assert run.exit_code == 0
    assert "warning: model.max_tokens 64 may cut off the requests of batch-8" in run.output
    assert "8 per request (1 warning)\n" in run.output
    doc = json.loads(CliRunner().invoke(check_command, [str(spec), "--format", "json"]).output)
    assert doc["valid"] is True and doc["warnings"] == []  # few-shot: one item, fits


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (
            {"max_tokens": 64},
            (
                "model.max_tokens_per_item and model.max_tokens both set the output budget; "
                "expected one of them"
            ),
        ),
        (
            {"max_completion_tokens": 64},
            (
                "model.max_tokens_per_item and model.max_completion_tokens both set the output "
                "budget; expected one of them"
            ),
        ),
    ],
)
def test_two_budgets_are_an_error(model: dict[str, object], message: str) -> None:
    with pytest.raises(PromptcErrors) as e:
        _reading("batch", **model)
    assert [x.message for x in e.value] == [message]


def test_a_budget_no_model_has_is_refused() -> None:
    """Sent on, 10**26 tokens overflow a server's integer (llama.cpp answered HTTP 400 with
    -2147483648): the spec is refused, located."""
    with pytest.raises(PromptcErrors) as e:
        _reading("batch", max_tokens_per_item=10**26)
    assert [x.message for x in e.value] == [
        "expected an integer of at most 100000, found 100000000000000000000000000"
    ]


# -------------------------------------------------------------------------- truncated status


def test_the_items_the_cut_reached_are_truncated_the_others_keep_their_status() -> None:
    task = make_task("batch", 4)
    req = make_request(task)
    cut = "A[1]: 18\nA[2]: 7\nA[3]: 12"  # item 3 may have been 125; item 4 never came
    results = parse_output(task, req, cut, finish_reason="length")
    assert [r.status for r in results] == ["ok", "ok", "truncated", "truncated"]
    assert results[2].values == {} and results[3].message == TRUNCATED_MESSAGE.format(item="item-4")
    assert results[3].message == (
        "the output stopped at max_tokens (finish length) before item item-4's answer was "
        "complete; raise the budget (model.max_tokens_per_item fits it to each request)"
    )
    # The same output, finished by the model: what it says is what it is.
    assert [r.status for r in parse_output(task, req, cut)] == ["ok", "ok", "ok", "missing"]
    assert [r.status for r in parse_output(task, req, cut, finish_reason="stop")] == [
        "ok",
        "ok",
        "ok",
        "missing",
    ]
    # An item the model skipped before the cut is missing, not truncated.
    skipped = parse_output(task, req, "A[1]: 18\nA[3]: 4\nA[4]", finish_reason="length")
    assert [r.status for r in skipped] == ["ok", "missing", "ok", "truncated"]
    # Answered out of order: the answer the cut ran into is item 1's, not the highest
    # index answered (item 3, finished before it).
    swapped = parse_output(task, req, "A[2]: 7\nA[3]: 4\nA[1]: 1", finish_reason="length")
    assert [r.status for r in swapped] == ["truncated", "ok", "ok", "truncated"]


def test_an_answer_whose_line_break_was_written_is_finished_though_the_cut_follows() -> None:
    """One line per item: the line break after ``A[2]: 7`` ends item 2's answer, so the cut
    that came next reached only the items after it."""
    task = make_task("batch", 4)
    req = make_request(task)
    for cut in ("A[1]: 18\nA[2]: 7\n", "A[1]: 18\nA[2]: 7  \r\n", "A[2]: 7\nA[1]: 18\n"):
        results = parse_output(task, req, cut, finish_reason="length")
        assert [r.status for r in results] == ["ok", "ok", "truncated", "truncated"], cut
        assert [r.values for r in results[:2]] == [{"answer": 18}, {"answer": 7}]
    # Without the line break the answer runs to the cut: ``7`` may have been ``75``.
    results = parse_output(task, req, "A[1]: 18\nA[2]: 7 ", finish_reason="length")
    assert [r.status for r in results] == ["ok", "truncated", "truncated", "truncated"]
    # One item per request: a text may span lines, so a line break proves nothing.
    single = make_task("single", 1)
    assert [
        r.status for r in parse_output(single, make_request(single), "18\n", finish_reason="length")
    ] == ["truncated"]


def test_a_one_item_answer_cut_off_is_truncated() -> None:
    task = make_task("single", 1)
    req = make_request(task)
    assert [r.status for r in parse_output(task, req, "18", finish_reason="length")] == [
        "truncated"
    ]
    assert "truncated" in STATUSES


@pytest.mark.parametrize(
    ("kind", "cut"),
    [
        ("few-shot", "For one ticket the answer is 2.5.\nFor 8 tickets, 8 * 2.5 ="),
        ("few-shot", "8 * 2.50 = 20. The answer is 20. Let me double-check: 8 * 2"),
        (
            "batch",
            "A[1]: So 55. The answer is 55.\nA[2]: For one ticket the answer is 2.5.\nSo 8 *",
        ),
    ],
)
def test_an_answer_read_from_the_start_of_a_body_the_cut_ran_into_is_truncated(
    kind: str, cut: str
) -> None:
    """The last answer's body goes on to the cut: the model was still writing that answer
    (a later line may have corrected it), so the value read from its start is no answer."""
    fmt = "{reasoning} The answer is {answer}."
    task = make_task(kind, 3 if kind == "batch" else 1, (REASONING, NUMBER), fmt)
    results = parse_output(task, make_request(task), cut, finish_reason="length")
    last = results[1] if kind == "batch" else results[0]
    assert last.status == "truncated"
    assert [r.status for r in results] == (
        ["ok", *["truncated"] * 2] if kind == "batch" else ["truncated"]
    )
    # Finished before the cut (only a line break after it, or the next item's marker).
    done = "A[1]: So 55. The answer is 55.\nA[2]: So 2.5. The answer is 2.5.\n"
    if kind == "batch":
        statuses = [
            r.status for r in parse_output(task, make_request(task), done, finish_reason="length")
        ]
        assert statuses == ["ok", "ok", "truncated"]
