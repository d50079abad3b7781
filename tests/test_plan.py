"""promptc plan: token counts against the tokenizer called directly, bounds, cost, budgets."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from promptc.cli.app import run
from promptc.errors import PromptcErrors, UsageError
from promptc.plan import estimate
from promptc.plan.tokenizers import (
    TOKENS_PER_MESSAGE,
    TOKENS_REPLY_PRIMING,
    BPETokenizer,
    encoding_for_model,
    tokenizer_for,
)
from promptc.plan.variants import Variant, parse_batch_sizes, parse_strategies, variants
from promptc.render.renderer import render
from promptc.select.methods import select
from promptc.spec.lower import compile_spec
from promptc.strategies import STRATEGIES

pytest.importorskip("bpe_openai")
REPO = Path(__file__).resolve().parents[1]
SENTIMENT = str(REPO / "specs" / "sentiment.yaml")


def test_variants_grid() -> None:
    got = variants(parse_strategies("single,batch,auto-demo"), parse_batch_sizes("4,8"))
    assert [v.name for v in got] == ["single", "batch-4", "batch-8", "auto-demo-4", "auto-demo-8"]
    assert Variant(STRATEGIES["batch"], 4, "retrieval").name == "batch-4+retrieval"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--strategies", "single,bach"],
            (
                "<command line>: --strategies: unknown strategy 'bach'; expected one of single, "
                "few-shot, batch, auto-demo (did you mean 'batch'?)"
            ),
        ),
        (
            ["--batch-sizes", "4,0"],
            "<command line>: --batch-sizes: batch size '0' is not a whole number from 1 to 1000",
        ),
        (
            ["--batch-sizes", "eight"],
            (
                "<command line>: --batch-sizes: batch size 'eight' is not a whole number from 1 to "
                "1000"
            ),
        ),
        (
            ["--price-in", "cheap", "--price-out", "1"],
            (
                "<command line>: --price-in: price 'cheap' is not a number of US dollars per million "
                "tokens (expected e.g. 0.15)"
            ),
        ),
        (
            ["--price-in", "1"],
            "<command line>: give both --price-in and --price-out (USD per million tokens)",
        ),
        (
            ["--tokenizer", "p50k"],
            (
                "<command line>: --tokenizer: unknown tokenizer 'p50k'; expected o200k_base, "
                "cl100k_base or the path of a .gguf model"
            ),
        ),
    ],
)
def test_bad_options_are_located_usage_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["plan", SENTIMENT, *args]) == 2
    assert capsys.readouterr().err == message + "\n"


def test_input_tokens_are_the_tokenizers_own_count_of_the_rendered_messages() -> None:
    import bpe_openai

    enc = bpe_openai.get_encoding("o200k_base")
    for variant in (Variant(STRATEGIES["few-shot"], None), Variant(STRATEGIES["auto-demo"], 4)):
        task = compile_spec(SENTIMENT, overrides=variant.overrides())
        tok = BPETokenizer("o200k_base", exact=True)
        plan = estimate.plan_task(task, variant, tok, None)
        requests = render(task, select(task))
        direct = sum(
            TOKENS_REPLY_PRIMING
            + sum(
                TOKENS_PER_MESSAGE + len(enc.encode(m.role)) + len(enc.encode(m.content))
                for m in r.messages
            )
            for r in requests
        )
        assert plan.input_tokens == direct
        assert plan.requests == len(requests)


def test_an_enum_output_is_estimated_at_its_longest_choice_never_bounded() -> None:
    """The grammar admits every choice in any case: ``NEUTRAL`` takes more tokens than
    ``neutral``, so the longest choice as declared is an estimate, not a bound."""
    tok = BPETokenizer("o200k_base", exact=True)
    sentiment = compile_spec(SENTIMENT)
    a = estimate.answer_estimate(sentiment, tok)
    longest = max(tok.count(c) for c in sentiment.output("sentiment").choices)
    assert a.fields["sentiment"] == longest
    assert max(tok.count(c.upper()) for c in sentiment.output("sentiment").choices) > longest
    math = compile_spec(REPO / "specs" / "math.yaml")
    m = estimate.answer_estimate(math, tok)
    assert m.fields["reasoning"] > 0


def test_auto_demo_output_counts_each_repeated_question() -> None:
    tok = BPETokenizer("o200k_base", exact=True)
    batch = compile_spec(SENTIMENT, overrides=Variant(STRATEGIES["batch"], 4).overrides())
    auto = compile_spec(SENTIMENT, overrides=Variant(STRATEGIES["auto-demo"], 4).overrides())
    pb = estimate.plan_task(batch, Variant(STRATEGIES["batch"], 4), tok, None)
    pa = estimate.plan_task(auto, Variant(STRATEGIES["auto-demo"], 4), tok, None)
    from promptc.markers import question_marker, question_text

    repeats = sum(
        tok.count(
            question_marker((i.index % 4) + 1) + " " + question_text(auto.inputs, i.inputs) + "\n"
        )
        for i in auto.items
    )
    assert pa.output_tokens == pytest.approx(pb.output_tokens + repeats)


def test_cost_and_json_are_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["plan", SENTIMENT, "--strategies", "single", "--price-in", "2", "--price-out", "8"]
    assert run([*args, "--format", "json"]) == 0
    first = capsys.readouterr().out
    assert run([*args, "--format", "json"]) == 0
    assert capsys.readouterr().out == first
    doc = json.loads(first)
    (v,) = doc["variants"]
    expected = (Decimal(v["input_tokens"]) * 2 + Decimal(v["output_tokens"]) * 8) / 1_000_000
    assert Decimal(v["cost_usd"]) == expected.quantize(Decimal("0.000001"))
    assert doc["price"]["source"] == "options"
    assert doc["tokenizer"] == "o200k_base" and doc["tokens_exact"] is True


def test_budgets_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["plan", SENTIMENT, "--strategies", "single,batch", "--batch-sizes", "8"]
    assert run([*base, "--max-input-tokens", "1000000"]) == 0
    capsys.readouterr()
    assert run([*base, "--max-input-tokens", "10"]) == 1
    err = capsys.readouterr().err
    assert "promptc plan: single: " in err and "over --max-input-tokens 10" in err
    assert run([*base, "--max-cost", "0", "--price-in", "1", "--price-out", "1"]) == 1
    assert "over --max-cost 0" in capsys.readouterr().err
    # Nothing to price the tokens: the gate cannot be checked, a usage error (exit 2), said
    # once at the option, not a budget crossed (exit 1) once a variant.
    assert run([*base, "--max-cost", "1"]) == 2
    assert capsys.readouterr().err == (
        "<command line>: --max-cost: nothing prices the tokens: give --price-in and "
        "--price-out (USD per million tokens), or model.price in the spec\n"
    )
    # A cost just over the limit is said exactly, never rounded to the limit itself.
    over = ["--strategies", "batch", "--price-in", "1", "--price-out", "2", "--max-cost", "0.0013"]
    assert run(["plan", SENTIMENT, "--batch-sizes", "8", *over]) == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        "promptc plan: batch-8: cost USD 0.001344 is over --max-cost 0.0013"
    )


PRICED = """\
promptc: 1
name: p
instruction: Label it.
inputs: {text: {}}
outputs: {label: {type: enum, choices: [a, b]}}
data: {path: d.jsonl}
model: {name: gpt-4o-mini, price: {input: INPUT, output: 0.6}}
"""


def test_price_from_the_spec_is_never_sent(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text('{"text": "x"}\n', encoding="utf-8")
    spec = tmp_path / "s.yaml"
    spec.write_text(PRICED.replace("INPUT", "0.15"), encoding="utf-8")
    task = compile_spec(spec)
    assert task.model.price is not None and task.model.price.output == Decimal("0.6")
    assert "price" not in task.model.request_params()
    p = estimate.price_of(task, None, None)
    assert p is not None and p.source == "model.price" and p.input == Decimal("0.15")
    spec.write_text(PRICED.replace("INPUT", "cheap"), encoding="utf-8")
    with pytest.raises(PromptcErrors) as e:
        compile_spec(spec)
    assert e.value.format() == (
        f"{spec}:7:43: model.price.input: expected a number, found a string 'cheap'"
    )


def test_model_names_choose_their_encoding() -> None:
    assert encoding_for_model("gpt-4o-mini") == "o200k_base"
    assert encoding_for_model("gpt-4-turbo") == "cl100k_base"
    assert encoding_for_model("smollm2") is None
    guess = tokenizer_for("smollm2")
    assert guess.name == "o200k_base" and not guess.exact
    with pytest.raises(UsageError):
        tokenizer_for("m", "missing.gguf")


def test_gguf_tokenizer_counts_as_the_server_does() -> None:
    """The GGUF's own chat template and tokenizer: the count is the one llama.cpp's server
    itself reports as the prompt's tokens when it answers the same messages."""
    from promptc.run.local import server_installed
    from promptc.run.models import find_model

    path = find_model()
    if not server_installed() or path is None:
        pytest.skip("the local extra or the embedded model is not installed")
    tok = tokenizer_for("smollm2", str(path))
    try:
        assert tok.exact and tok.name.endswith(".gguf")
        messages = [
            {"role": "system", "content": "Solve."},
            {"role": "user", "content": "Hi there"},
        ]
        prompt = tok.prompt(messages)  # type: ignore[attr-defined]
        assert prompt == (
            "<|im_start|>system\nSolve.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n"
            "<|im_start|>assistant\n"
        )
        count = tok.count_messages(messages)
        assert tok.count("Hi there") == 2
    finally:
        tok.close()
    import openai
    from promptc.run.local import local_server

    with local_server(str(path)) as base_url:
        client = openai.OpenAI(base_url=base_url, api_key="unused")
        reply = client.chat.completions.create(
            model="smollm2",
            messages=messages,
            max_tokens=1,  # type: ignore[arg-type]
        )
    assert reply.usage is not None and reply.usage.prompt_tokens == count


def test_max_tokens_is_never_the_expected_output_but_a_warning(tmp_path: Path) -> None:
    math = REPO / "specs" / "math.yaml"
    tok = BPETokenizer("o200k_base", exact=True)
    free = compile_spec(math, overrides={("strategy", "kind"): "single"})
    plan = estimate.plan_task(free, Variant(STRATEGIES["single"], None), tok, None)
    assert plan.capped == () and plan.cap_warning() is None
    capped = compile_spec(
        math, overrides={("strategy", "kind"): "single", ("model", "max_tokens"): 3}
    )
    plan_capped = estimate.plan_task(capped, Variant(STRATEGIES["single"], None), tok, None)
    requests = render(capped, select(capped))
    # The cap is no bound, and the estimate stays what the answer needs.
    assert plan_capped.output_tokens == plan.output_tokens
    assert plan_capped.output_tokens > 3 * len(requests)
    assert len(plan_capped.capped) == len(requests) and min(plan_capped.capped) > 3
    warning = plan_capped.cap_warning()
    assert warning is not None and warning.startswith(f"{math}:")
    assert (
        f"model.max_tokens: warning: single: {len(requests)} of {len(requests)} request(s) "
        "need more output than model.max_tokens 3" in warning
    )


def test_plan_grammar_json_schema_plans_the_json_form_the_run_is_asked_for(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The JSON form takes more output tokens than the text form (keys, quotes, braces):
    plan says so when the runs will be constrained by the JSON Schema export."""
    spec = str(Path(__file__).resolve().parents[1] / "specs" / "sentiment.yaml")
    out: dict[str, dict] = {}
    for grammar in ("auto", "gbnf", "none", "json-schema"):
        args = ["plan", spec, "--strategies", "batch", "--batch-sizes", "8", "--format", "json"]
        assert run([*args, "--grammar", grammar]) == 0
        (out[grammar],) = json.loads(capsys.readouterr().out)["variants"]
    assert out["auto"] == out["gbnf"] == out["none"]
    assert out["json-schema"]["output_tokens"] > out["auto"]["output_tokens"]
    assert out["json-schema"]["input_tokens"] == out["auto"]["input_tokens"]
    assert "output_bound" not in out["auto"]  # an estimate, never a bound
    assert run(["plan", spec, "--grammar", "xml"]) == 2
    assert "Invalid value for '--grammar'" in capsys.readouterr().err


def test_plan_counts_the_requests_without_keeping_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The requests are counted as they are rendered, as a build writes them: planning ten
    times the items takes about the memory of planning them once (it grew by kilobytes an
    item when every request was kept)."""
    import tracemalloc

    from promptc.spec.item_table import ItemTable

    monkeypatch.setattr(ItemTable, "CACHE", 64)  # the items it keeps are not the plan's

    def peak(n: int) -> int:
        text = "".join(
            json.dumps({"id": f"q{i}", "text": f"review {i}", "label": "positive"}) + "\n"
            for i in range(n)
        )
        (tmp_path / "d.jsonl").write_text(text, encoding="utf-8")
        single = Variant(STRATEGIES["single"], None)
        data = {("data", "path"): str(tmp_path / "d.jsonl")}
        task = compile_spec(SENTIMENT, overrides={**single.overrides(), **data})
        tok = BPETokenizer("o200k_base", exact=True)
        tracemalloc.start()
        try:
            plan = estimate.plan_task(task, single, tok, None)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
            assert plan.requests == n

    small, large = peak(300), peak(3000)
    assert large - small < 2700 * 400  # under 400 bytes an item more (kept: about 2,000)
