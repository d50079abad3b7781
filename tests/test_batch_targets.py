"""``--target openai-batch`` and ``--target vllm-batch``: every line against the types it claims.

The OpenAI lines are checked against the ``openai`` package's own request type; the vLLM lines
against a copy of vLLM's ``BatchRequestInput`` (vllm/entrypoints/openai/run_batch.py) and of
the fields of ``ChatCompletionRequest`` and ``StructuredOutputsParams`` that the files use —
vLLM itself does not install on a CPU-only machine in reasonable time (~9 GB). The copy keeps
vLLM's rules: ``url`` picks the body type, ``structured_outputs`` takes exactly one constraint
(``json``, ``regex``, ``choice``, ``grammar``, ``json_object`` or ``structural_tag``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from promptc.build import build, read_requests
from promptc.build.targets import OpenAIBatch
from promptc.grammar.answer import build_grammar
from promptc.spec.lower import compile_spec
from pydantic import (
    BaseModel,
    ConfigDict,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)

SPECS = Path(__file__).resolve().parents[1] / "specs"


# ---- a copy of vLLM's types (the fields promptc writes, and vLLM's rules for them) ---------


class OpenAIBaseModel(BaseModel):
    model_config = ConfigDict(extra="allow")  # vLLM accepts (and logs) unknown fields


class StructuredOutputsParams(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a dataclass in vLLM: no other keys

    json_: str | dict[str, Any] | None = None
    regex: str | None = None
    choice: list[str] | None = None
    grammar: str | None = None
    json_object: bool | None = None
    disable_any_whitespace: bool = False
    disable_additional_properties: bool = False
    whitespace_pattern: str | None = None
    structural_tag: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _json_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and "json" in data:
            data = {**data, "json_": data["json"]}
            del data["json"]
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> StructuredOutputsParams:
        given = [
            self.json_ is not None,
            self.regex is not None,
            self.choice is not None,
            self.grammar is not None,
            self.json_object is not None,
            self.structural_tag is not None,
        ]
        if sum(given) != 1:
            raise ValueError("structured_outputs needs exactly one constraint")
        return self


class ChatCompletionRequest(OpenAIBaseModel):
    messages: list[dict[str, Any]]
    model: str | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    structured_outputs: StructuredOutputsParams | None = None


class BatchRequestInput(OpenAIBaseModel):
    custom_id: str
    method: str
    url: str
    body: ChatCompletionRequest

    @field_validator("body", mode="plain")
    @classmethod
    def _for_url(cls, value: Any, info: ValidationInfo) -> ChatCompletionRequest:
        if info.data["url"] != "/v1/chat/completions":
            raise ValueError("only /v1/chat/completions bodies are chat requests")
        return ChatCompletionRequest.model_validate(value)


# ---- the builds --------------------------------------------------------------------------


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


VLLM_SPECS = ["math.yaml", "nli.yaml", "reading.yaml", "sentiment.yaml", "commonsense-qa.yaml"]


def _pinned(task: Any, item_ids: tuple[str, ...]) -> tuple[list[str], Any]:
    """The questions (Auto-Demo) and per-item choices a request's constraint pins."""
    from promptc import markers
    from promptc.grammar.answer import item_choices

    by_id = {it.id: it for it in task.items}
    questions = (
        [markers.question_text(task.inputs, by_id[i].inputs) for i in item_ids]
        if task.strategy.kind.repeats_questions
        else []
    )
    return questions, item_choices(task, item_ids)


@pytest.mark.parametrize("spec", VLLM_SPECS)
def test_vllm_batch_lines_are_vllm_batch_request_inputs(tmp_path: Path, spec: str) -> None:
    task = compile_spec(SPECS / spec)
    build(task, tmp_path, target="vllm-batch")
    lines = _lines(tmp_path / "requests.jsonl")
    requests = {r.id: r for r in read_requests(tmp_path)}
    assert lines
    for line in lines:
        parsed = BatchRequestInput.model_validate(line)
        assert parsed.method == "POST"
        constraint = parsed.body.structured_outputs
        assert constraint is not None and constraint.grammar is not None
        request = requests[parsed.custom_id]
        grammar = build_grammar(task, len(request.item_ids), task.strategy.kind)
        questions, choices = _pinned(task, request.item_ids)
        if questions or choices:  # its own questions and options pinned
            assert constraint.grammar == grammar.gbnf_for(questions, choices)
        else:
            assert constraint.grammar == grammar.gbnf
        # promptc run reads the same file and does not send vLLM's field to other servers.
        assert "structured_outputs" not in request.params
    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["structured_outputs"] == "grammar"


@pytest.mark.parametrize("spec", VLLM_SPECS)
@pytest.mark.parametrize("kind", ["spec", "auto-demo"])
def test_vllm_batch_json_schema_lines_carry_each_requests_schema(
    tmp_path: Path, spec: str, kind: str
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    overrides = {} if kind == "spec" else {("strategy", "kind"): "auto-demo"}
    if kind == "auto-demo" and spec == "commonsense-qa.yaml":
        overrides[("markers", "inputs")] = "together"  # indexed inputs are not for auto-demo
    task = compile_spec(SPECS / spec, overrides=overrides)
    build(task, tmp_path, target="vllm-batch", vllm_grammar="json_schema")
    requests = {r.id: r for r in read_requests(tmp_path)}
    lines = _lines(tmp_path / "requests.jsonl")
    assert len(lines) == len(requests) > 0
    for line in lines:
        parsed = BatchRequestInput.model_validate(line)  # exactly one constraint: json
        constraint = parsed.body.structured_outputs
        assert constraint is not None and isinstance(constraint.json_, dict)
        assert constraint.grammar is None and set(line["body"]["structured_outputs"]) == {"json"}
        # vLLM's own field only: no response_format beside it (two constraints are refused).
        assert "response_format" not in line["body"] and "grammar" not in line["body"]
        request = requests[parsed.custom_id]
        grammar = build_grammar(task, len(request.item_ids), task.strategy.kind)
        questions, choices = _pinned(task, request.item_ids)
        schema = constraint.json_
        jsonschema.Draft202012Validator.check_schema(schema)
        want = grammar.json_schema_for(questions, choices) if questions or choices else None
        want = want or grammar.json_schema
        assert schema == want
        # Written in the schema's own order, as run sends it (constrained decoders write the
        # properties in that order: the reasoning before the answer it leads to).
        assert json.dumps(schema) == json.dumps(want)
        assert "structured_outputs" not in request.params
        if questions:
            # The schema admits the request's own questions only.
            entries = schema["properties"]["answers"]["prefixItems"]
            assert [e["properties"]["question"]["const"] for e in entries] == questions
    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["structured_outputs"] == "json"


def test_per_item_options_are_pinned_in_the_json_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    task = compile_spec(SPECS / "commonsense-qa.yaml")
    item_ids = tuple(it.id for it in task.items[:2])
    _, choices = _pinned(task, item_ids)
    assert choices is not None
    schema = build_grammar(task, 2, "batch").json_schema_for((), choices)
    entries = schema["properties"]["answers"]["prefixItems"]  # type: ignore[index]
    assert [e["properties"]["answer"]["enum"] for e in entries] == [c["answer"] for c in choices]
    letters = choices[0]["answer"]
    ok = {
        "answers": [
            {"index": 1, "reasoning": "r", "answer": letters[-1]},
            {"index": 2, "reasoning": "r", "answer": choices[1]["answer"][0]},
        ]
    }
    jsonschema.validate(ok, schema)
    bad = {"answers": [{"index": 1, "reasoning": "r", "answer": "z"}, ok["answers"][1]]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_vllm_grammar_is_refused_for_other_targets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from promptc.cli.app import run

    spec = str(SPECS / "sentiment.yaml")
    out = str(tmp_path / "b")
    assert run(["build", spec, "-o", out, "--grammar", "json-schema"]) == 2
    assert "--target vllm-batch" in capsys.readouterr().err
    vllm = ["--target", "vllm-batch", "--grammar", "json-schema"]
    assert run(["build", spec, "-o", out, *vllm]) == 0
    written = (tmp_path / "b" / "requests.jsonl").read_text(encoding="utf-8")
    assert set(json.loads(written.splitlines()[0])["body"]["structured_outputs"]) == {"json"}
    capsys.readouterr()
    # --emit prints the same lines, and --check holds the folder to the same options.
    assert run(["build", spec, "--emit", "requests", *vllm]) == 0
    assert capsys.readouterr().out == written
    assert run(["build", spec, "-o", out, "--check", *vllm]) == 0
    assert run(["build", spec, "-o", out, "--check", "--target", "vllm-batch"]) == 1


def test_openai_batch_lines_are_openai_chat_requests(tmp_path: Path) -> None:
    import typing

    from openai.types.chat.completion_create_params import CompletionCreateParamsNonStreaming

    adapter = TypeAdapter(CompletionCreateParamsNonStreaming)
    known = set(typing.get_type_hints(CompletionCreateParamsNonStreaming))
    for spec in ("math.yaml", "nli.yaml", "reading.yaml", "sentiment.yaml"):
        out = tmp_path / spec
        build(compile_spec(SPECS / spec), out, target="openai-batch")
        for line in _lines(out / "requests.jsonl"):
            assert set(line) == {"custom_id", "method", "url", "body"}
            assert line["method"] == "POST" and line["url"] == "/v1/chat/completions"
            adapter.validate_python(line["body"])
            assert set(line["body"]) <= known, set(line["body"]) - known  # no unknown field
            assert "structured_outputs" not in line["body"]


@pytest.mark.parametrize(
    ("target", "field", "sent"),
    [
        ("openai-batch", None, "max_completion_tokens"),  # api.openai.com: o-series models
        ("openai-batch", "max_tokens", "max_tokens"),
        ("vllm-batch", None, "max_tokens"),
        ("vllm-batch", "max_completion_tokens", "max_completion_tokens"),
    ],
)
def test_a_batch_body_carries_max_tokens_in_the_field_the_spec_names(
    tmp_path: Path, target: str, field: str | None, sent: str
) -> None:
    """Batch bodies are sent as written: the spec's model.max_tokens_field is the one the
    request budget goes in (an o-series model refuses every max_tokens line of a batch);
    read back, the build's requests hold it as max_tokens, as every build's do."""
    from dataclasses import replace

    task = compile_spec(SPECS / "sentiment.yaml")
    task = replace(task, model=replace(task.model, max_tokens_field=field))  # type: ignore[arg-type]
    out = tmp_path / "out"
    build(task, out, target=target)
    for line in _lines(out / "requests.jsonl"):
        body = line["body"]
        other = "max_tokens" if sent != "max_tokens" else "max_completion_tokens"
        assert body[sent] == task.model.max_tokens and other not in body
    assert all(r.params["max_tokens"] == task.model.max_tokens for r in read_requests(out))


def test_batch_files_are_sharded_at_the_batch_api_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = compile_spec(
        SPECS / "sentiment.yaml",
        overrides={("strategy", "kind"): "single"},
    )
    whole = build(task, tmp_path / "whole", target="openai-batch")
    assert "requests.jsonl" in whole.files
    monkeypatch.setattr(OpenAIBatch, "max_lines", 6)
    sharded = build(task, tmp_path / "sharded", target="openai-batch")
    shards = sorted(n for n in sharded.files if n.startswith("requests-"))
    assert shards == [
        "requests-0001.jsonl",
        "requests-0002.jsonl",
        "requests-0003.jsonl",
        "requests-0004.jsonl",
    ]
    assert "requests.jsonl" not in sharded.files
    assert [len(_lines(tmp_path / "sharded" / s)) for s in shards] == [6, 6, 6, 2]
    joined = "".join(sharded.files[s] for s in shards)
    assert joined == whole.files["requests.jsonl"]
    assert [r.id for r in read_requests(tmp_path / "sharded")] == [
        r.id for r in read_requests(tmp_path / "whole")
    ]
    monkeypatch.setattr(OpenAIBatch, "max_lines", 50_000)
    size = max(len(x.encode()) for x in whole.files["requests.jsonl"].splitlines(True))
    monkeypatch.setattr(OpenAIBatch, "max_bytes", size * 3)
    by_bytes = build(task, tmp_path / "bytes", target="vllm-batch")
    shards = [n for n in by_bytes.files if n.startswith("requests-")]
    assert len(shards) >= 7
    assert all(len(by_bytes.files[s].encode()) <= size * 3 for s in shards)
    # A rebuild within the limits removes the shards.
    monkeypatch.setattr(OpenAIBatch, "max_bytes", 200_000_000)
    build(task, tmp_path / "bytes", target="vllm-batch")
    assert sorted(p.name for p in (tmp_path / "bytes").glob("requests*")) == ["requests.jsonl"]


def test_an_error_line_says_the_servers_reason_in_openais_and_vllms_forms() -> None:
    """OpenAI's error file holds {"code", "message"}; vLLM's run_batch writes its
    ErrorResponse, {"error": {"message", "type", "param", "code"}}: the reason is said for
    both (vLLM's came out as "error None: None")."""
    from promptc.build.targets import VLLM_BATCH

    openai_line = {"custom_id": "r1", "error": {"code": "server_error", "message": "try again"}}
    vllm_error = {"message": "prompt too long", "type": "BadRequestError", "param": None}
    vllm_line = {
        "custom_id": "r1",
        "response": None,
        "error": {"error": {**vllm_error, "code": 400}},
    }
    untyped = {"custom_id": "r1", "error": {"error": vllm_error}}
    assert VLLM_BATCH.answer(openai_line) == (None, "error server_error: try again")
    assert VLLM_BATCH.answer(vllm_line) == (None, "error 400: prompt too long")
    assert VLLM_BATCH.answer(untyped) == (None, "error BadRequestError: prompt too long")
