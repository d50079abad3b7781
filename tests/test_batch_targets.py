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

import promptc.build as build_module
import pytest
from promptc.build import build, read_requests
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


@pytest.mark.parametrize("spec", ["math.yaml", "nli.yaml", "reading.yaml", "sentiment.yaml"])
def test_vllm_batch_lines_are_vllm_batch_request_inputs(tmp_path: Path, spec: str) -> None:
    task = compile_spec(SPECS / spec)
    build(task, tmp_path, target="vllm-batch")
    lines = _lines(tmp_path / "requests.jsonl")
    requests = {r.id: r for r in read_requests(tmp_path)}
    by_id = {it.id: it for it in task.items}
    assert lines
    for line in lines:
        parsed = BatchRequestInput.model_validate(line)
        assert parsed.method == "POST"
        constraint = parsed.body.structured_outputs
        assert constraint is not None and constraint.grammar is not None
        request = requests[parsed.custom_id]
        n = len(request.item_ids)
        grammar = build_grammar(task, n, task.strategy.kind)
        if task.strategy.kind == "auto-demo":
            from promptc import markers

            questions = [
                markers.question_text(task.inputs, by_id[i].inputs) for i in request.item_ids
            ]
            assert constraint.grammar == grammar.gbnf_for(questions)  # its own questions pinned
        else:
            assert constraint.grammar == grammar.gbnf
        # promptc run reads the same file and does not send vLLM's field to other servers.
        assert "structured_outputs" not in request.params


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


def test_batch_files_are_sharded_at_the_batch_api_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = compile_spec(
        SPECS / "sentiment.yaml",
        overrides={("strategy", "kind"): "single"},
    )
    whole = build(task, tmp_path / "whole", target="openai-batch")
    assert "requests.jsonl" in whole.files
    monkeypatch.setattr(build_module, "BATCH_MAX_REQUESTS", 6)
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
    monkeypatch.setattr(build_module, "BATCH_MAX_REQUESTS", 50_000)
    size = max(len(x.encode()) for x in whole.files["requests.jsonl"].splitlines(True))
    monkeypatch.setattr(build_module, "BATCH_MAX_BYTES", size * 3)
    by_bytes = build(task, tmp_path / "bytes", target="vllm-batch")
    shards = [n for n in by_bytes.files if n.startswith("requests-")]
    assert len(shards) >= 7
    assert all(len(by_bytes.files[s].encode()) <= size * 3 for s in shards)
    # A rebuild within the limits removes the shards.
    monkeypatch.setattr(build_module, "BATCH_MAX_BYTES", 200 * 1024 * 1024)
    build(task, tmp_path / "bytes", target="vllm-batch")
    assert sorted(p.name for p in (tmp_path / "bytes").glob("requests*")) == ["requests.jsonl"]
