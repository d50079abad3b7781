"""The answer grammar against the real model: SmolLM2-135M-Instruct on a local llama.cpp server.

The bar (issue 3): constrained by the build's GBNF export, a batch of 8 and an Auto-Demo of 8
of the example math spec (free-text reasoning, then a number) parse 100 % ``ok``. Unconstrained,
the same small model cannot follow the batch format; that run only has to report a status for
every item without raising, and its figures are printed (``pytest -m llm -s``).

Every grammar is checked with llama.cpp's own parser before it is sent (the server answers an
invalid one with a 400 naming no more than "failed to parse grammar"; docs/llm-server.md).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from llm_server import gbnf_error
from promptc.build import read_requests
from promptc.run.bodies import request_body
from promptc.run.options import RunOptions
from promptc.run.orchestrate import run_build
from promptc.run.result import RunResult

pytestmark = pytest.mark.llm

#: The model name sent (the server's alias for SmolLM2; it would take any other name too).
MODEL = "smollm2"
#: Seconds to wait for one answer: generous, because the 2-core machine may be busy.
TIMEOUT = 1800.0


def run_first(out: Path, url: str, tmp_path: Path, grammar: str, **options: Any) -> RunResult:
    """The build's first request sent to the local model under ``grammar``, and parsed: one
    request at a time, one retry, a cache in ``tmp_path``."""
    return run_build(
        out,
        RunOptions(
            base_url=url,
            grammar=grammar,
            concurrency=1,
            limit=1,
            model=MODEL,
            parse=True,
            cache_path=tmp_path / "cache.sqlite",
            timeout=TIMEOUT,
            max_retries=1,
            **options,
        ),
    )


#: (spec, strategy, batch size, max_tokens): one request of 8 items each. The grammar bounds
#: each reasoning to 400 characters, which greedy SmolLM2 reaches on the math batch by repeating
#: itself ("6 * 12 = 6 * 12 = …", digits a token each): its 8 answers take 1,992 tokens, so
#: max_tokens 2,400 lets it finish; the Auto-Demo's fit in 1,400.
CONSTRAINED = [
    pytest.param("math.yaml", "batch", 8, 2400, id="math-batch-8"),
    pytest.param("math.yaml", "auto-demo", 8, 1400, id="math-auto-demo-8"),
    pytest.param("sentiment.yaml", "batch", 8, 128, id="sentiment-batch-8"),
    # Indexed inputs: each item's Premise[i]: and Hypothesis[i]: repeated (pinned), then
    # Answer[i]:. 4 items of at most 400 characters of reasoning fit in 900 tokens.
    pytest.param("mnli.yaml", "auto-demo", 4, 900, id="mnli-auto-demo-4"),
    # Each item its own options, answered by letter or text: the request's own grammar
    # (grammars/<id>.gbnf) admits exactly its items' choices, so every answer is one of them.
    pytest.param("commonsense-qa-text.yaml", "batch", 4, 700, id="commonsense-qa-text-batch-4"),
]


@pytest.fixture
def build(spec_dir: Path, build_spec: Callable[..., Path]) -> Callable[..., Path]:
    def make(spec: str, kind: str, size: int, max_tokens: int) -> Path:
        out = spec_dir.parent / "builds" / f"{Path(spec).stem}-{kind}-{size}-{max_tokens}"
        return _build(build_spec, spec_dir, spec, kind, size, max_tokens, out)

    return make


def _build(
    build_spec: Callable[..., Path],
    spec_dir: Path,
    spec: str,
    kind: str,
    size: int,
    max_tokens: int,
    out: Path,
) -> Path:
    return build_spec(
        spec_dir / spec,
        out,
        {
            ("strategy", "kind"): kind,
            ("strategy", "batch_size"): size,
            ("strategy", "selection", "method"): "sequential",
            ("model", "max_tokens"): max_tokens,
        },
    )


def _item_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(("spec", "kind", "size", "max_tokens"), CONSTRAINED)
def test_exported_gbnf_is_taken_by_the_llama_server(
    llm_base_url: str,
    build: Callable[..., Path],
    spec: str,
    kind: str,
    size: int,
    max_tokens: int,
) -> None:
    out = build(spec, kind, size, max_tokens)
    for path in sorted([*out.glob("*.gbnf"), *out.glob("grammars/*.gbnf")]):
        assert gbnf_error(llm_base_url, path.read_text(encoding="utf-8")) is None, path.name
    # What is actually sent (Auto-Demo pins each request's own questions) parses too.
    for request in read_requests(out):
        grammar = request_body(request, out, "gbnf")["grammar"]
        assert gbnf_error(llm_base_url, grammar) is None, request.id
        if kind == "auto-demo":  # the questions are pinned
            assert '"Q[1]: " question' not in grammar and "question-line" not in grammar


@pytest.mark.parametrize(("spec", "kind", "size", "max_tokens"), CONSTRAINED)
def test_gbnf_constrained_items_all_parse_ok(
    llm_base_url: str,
    build: Callable[..., Path],
    tmp_path: Path,
    spec: str,
    kind: str,
    size: int,
    max_tokens: int,
) -> None:
    out = build(spec, kind, size, max_tokens)
    first = read_requests(out)[0]
    assert len(first.item_ids) == size
    assert gbnf_error(llm_base_url, request_body(first, out, "gbnf")["grammar"]) is None

    result = run_first(out, llm_base_url, tmp_path, "gbnf")

    assert result.ok, [f.format() for f in result.failed]
    assert result.grammar == "gbnf" and result.sent == 1
    output = _item_lines(result.outputs_path)[0]
    results = _item_lines(out / "results.jsonl")
    print(
        f"\n{spec} {kind} of {size}, GBNF: {result.statuses} "
        f"(finish {output['finish_reason']}, usage {output['usage']})\n{output['output']}"
    )
    assert output["finish_reason"] == "stop", output
    assert [r["item_id"] for r in results] == list(first.item_ids)
    assert result.statuses is not None and result.statuses["ok"] == size, results
    assert all(r["status"] == "ok" for r in results)


def test_unconstrained_batch_reports_a_status_per_item(
    llm_base_url: str, build: Callable[..., Path], tmp_path: Path
) -> None:
    """Without a grammar SmolLM2 does not follow the batch format; nothing may raise, every
    item gets a status, and the figures are printed, not asserted."""
    out = build("math.yaml", "batch", 8, 256)

    # repair=0: the model's own answers, as they come; no item is re-asked.
    result = run_first(out, llm_base_url, tmp_path, "none", repair=0)

    # Every request was answered (``ok`` would also ask every item to be ok).
    assert not result.failed, [f.format() for f in result.failed]
    assert result.grammar == "none"
    output = _item_lines(result.outputs_path)[0]
    results = _item_lines(out / "results.jsonl")
    assert result.statuses is not None
    in_request = [r for r in results if r["status"] != "extra"]
    assert sorted(r["index"] for r in in_request) == list(range(1, 9))
    ok = result.statuses["ok"]
    print(
        f"\nmath batch of 8, no grammar: {ok}/8 ok ({ok / 8:.0%}); {result.statuses} "
        f"(finish {output['finish_reason']}, usage {output['usage']})\n{output['output']}"
    )


def test_json_schema_constrained_batch_parses_ok(
    llm_base_url: str, build: Callable[..., Path], tmp_path: Path
) -> None:
    """``--grammar json-schema``: llama.cpp's server gets the build's JSON Schema as
    ``response_format`` (the OpenAI ``json_schema`` form); the JSON answers are read back as
    text."""
    out = build("sentiment.yaml", "batch", 8, 256)

    result = run_first(out, llm_base_url, tmp_path, "json_schema")

    assert result.ok, [f.format() for f in result.failed]
    output = _item_lines(result.outputs_path)[0]
    print(f"\nsentiment batch of 8, JSON Schema: {result.statuses}\n{output['output']}")
    answers = json.loads(output["output"])["answers"]
    assert [a["index"] for a in answers] == list(range(1, 9))
    assert result.statuses is not None and result.statuses["ok"] == 8


def test_json_schema_auto_demo_pins_each_question(
    llm_base_url: str, build: Callable[..., Path], tmp_path: Path
) -> None:
    """``--grammar json-schema`` on Auto-Demo: each request's schema pins its own questions
    (``const``), which the server accepts and the model cannot drift from."""
    out = build("sentiment.yaml", "auto-demo", 4, 512)

    result = run_first(out, llm_base_url, tmp_path, "json_schema", repair=0)

    assert result.ok, [f.format() for f in result.failed]
    output = _item_lines(result.outputs_path)[0]
    print(f"\nsentiment auto-demo of 4, JSON Schema: {result.statuses}\n{output['output']}")
    items = {
        json.loads(x)["id"]: json.loads(x)["question"]
        for x in (out / "items.jsonl").read_text(encoding="utf-8").splitlines()
    }
    first = read_requests(out)[0]
    answers = json.loads(str(output["output"]))["answers"]
    assert [a["question"] for a in answers] == [items[i] for i in first.item_ids]
    assert result.statuses is not None and result.statuses["misaligned"] == 0


@pytest.mark.parametrize("kind", ["batch", "auto-demo", "single"])
def test_json_schema_answers_fit_a_budget_per_item(
    llm_base_url: str, spec_dir: Path, build_spec: Callable[..., Path], tmp_path: Path, kind: str
) -> None:
    """``model.max_tokens_per_item`` with ``--grammar json-schema``: the build fits
    max_tokens to the text form (``A[k]: `` …), but the model writes the JSON form, keys,
    quotes, braces and a blank line between every two tokens; the run sends the JSON form's
    budget and no answer is cut (5 tokens an enum answer; the text form's 48 for 4 items cut
    every one)."""
    spec = spec_dir / "sentiment-per-item.yaml"
    spec.write_text(
        (spec_dir / "sentiment.yaml")
        .read_text(encoding="utf-8")
        .replace("max_tokens: 256", "max_tokens_per_item: 5"),
        encoding="utf-8",
    )
    overrides: dict[tuple[str, ...], object] = {("strategy", "kind"): kind}
    if kind != "single":
        overrides[("strategy", "batch_size")] = 4
    out = build_spec(spec, tmp_path / "b", overrides)

    result = run_first(out, llm_base_url, tmp_path, "json_schema", repair=0)

    assert result.ok, [f.format() for f in result.failed]
    output = _item_lines(result.outputs_path)[0]
    print(f"\nsentiment {kind}, 5 tokens an item, JSON Schema: {result.statuses}\n{output}")
    assert output["finish_reason"] == "stop"
    assert result.statuses is not None and result.statuses["truncated"] == 0


def _smollm2_tokens(base_url: str, text: str) -> int:
    """Tokens of ``text`` in SmolLM2's own tokenizer (llama.cpp's ``POST /tokenize``)."""
    import urllib.request

    request = urllib.request.Request(
        base_url.removesuffix("/v1") + "/tokenize",
        data=json.dumps({"content": text, "add_special": False}).encode("utf-8"),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return len(json.loads(response.read())["tokens"])


@pytest.mark.parametrize("kind", ["single", "batch", "auto-demo"])
def test_the_json_allowance_covers_smollm2s_spelling(llm_base_url: str, kind: str) -> None:
    """The JSON form's allowance (render/output_budget.py) against the tokenizer of the model
    that wrote the blank-line spelling it counts: at least its tokens, for every example
    spec, in every spelling a model writes."""
    from promptc.render.output_budget import JSON_TOKEN, count_bound, json_fixed_text, json_skeleton
    from promptc.spec.lower import compile_spec

    for spec in sorted(Path(__file__).resolve().parents[2].joinpath("specs").glob("*.yaml")):
        overrides: dict[tuple[str, ...], object] = {("strategy", "kind"): kind}
        if kind != "single":
            overrides[("strategy", "batch_size")] = 8
        task = compile_spec(spec, overrides=overrides)
        items = task.items[: 1 if kind == "single" else 8]
        allowance = count_bound(json_fixed_text(task, items))
        value = json.loads(json_skeleton(task, items))
        for text in (
            json.dumps(value, separators=(",", ":")),
            json.dumps(value, indent=4, ensure_ascii=False),
            "\n\n".join(JSON_TOKEN.findall(json.dumps(value, separators=(",", ":")))),
        ):
            assert allowance >= _smollm2_tokens(llm_base_url, text), (spec.name, text[:80])
