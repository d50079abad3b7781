"""``promptc run`` against a scripted server that cuts its answers off at ``max_tokens``.

The loopback server answers every question of a request (``A[i]: <word>``) and, as a real
server does, stops at the request's ``max_tokens`` — one character a token here — with finish
``length``. The items the cut reached come back ``truncated``, repair re-asks them with a
budget fitted to the smaller request, and run's summary counts them on their own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from loopback import QuietHandler, chat_completion, send_json, serving
from promptc.render.output_budget import JSON_TOKEN
from promptc.run.options import RunOptions
from promptc.run.orchestrate import run_build
from promptc.run.outputs import read_outputs_file
from promptc.run.result import TRUNCATED_SUMMARY

SPECS = Path(__file__).resolve().parents[2] / "specs"
QUESTION = re.compile(r"^Q\[(\d+)\]: ", re.MULTILINE)


class _Cutting(QuietHandler):
    word: ClassVar[str] = "positive"
    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append(body)
        n = len(QUESTION.findall(body["messages"][-1]["content"]))
        text = "\n".join(f"A[{i}]: {type(self).word}" for i in range(1, n + 1))
        budget = body.get("max_tokens")
        reply = chat_completion(text[:budget], 10, min(len(text), budget or len(text)))
        if budget is not None and len(text) > budget:
            reply["choices"][0]["finish_reason"] = "length"
        send_json(self, reply)


@pytest.fixture
def cutting() -> Iterator[tuple[str, type[_Cutting]]]:
    handler = type("Handler", (_Cutting,), {"seen": []})
    with serving(handler) as url:
        yield url, handler


def _run(build_dir: Path, url: str, tmp_path: Path, **kw: Any) -> Any:
    options = RunOptions(
        base_url=url, grammar="none", parse=True, cache_path=tmp_path / "c.sqlite", **kw
    )
    return run_build(build_dir, options)


def _rows(build_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (build_dir / "results.jsonl").read_text().splitlines()]


def test_a_cut_batch_is_truncated_then_repaired(
    cutting: tuple[str, type[_Cutting]], tmp_path: Path, build_spec: Callable[..., Path]
) -> None:
    url, handler = cutting
    overrides = {
        ("strategy", "kind"): "batch",
        ("strategy", "batch_size"): 4,
        ("model", "max_tokens"): 40,  # "A[1]: positive\nA[2]: positive\nA[3]: posi"
    }
    build = build_spec(SPECS / "sentiment.yaml", tmp_path / "b", overrides)
    first = _run(build, url, tmp_path, repair=0)
    assert first.statuses["truncated"] == 10 and first.statuses["ok"] == 10
    assert [r["status"] for r in _rows(build)[:4]] == ["ok", "ok", "truncated", "truncated"]
    assert TRUNCATED_SUMMARY.format(n=10) in first.summary()
    assert "10 item(s) truncated: the output stopped at max_tokens before their answers " in (
        first.summary()
    )
    outputs = read_outputs_file(build / "outputs.jsonl").answers
    assert outputs["r0001"]["finish_reason"] == "length"

    # promptc parse reads the finish reason back from outputs.jsonl: the same results.
    from click.testing import CliRunner
    from promptc.cli.parse import parse_command

    out = tmp_path / "parsed.jsonl"
    CliRunner().invoke(parse_command, [str(build), str(build / "outputs.jsonl"), "-o", str(out)])
    parsed = [json.loads(x)["status"] for x in out.read_text().splitlines()]
    assert parsed == [r["status"] for r in _rows(build)]

    # Repair re-asks the truncated items: two a request fit in 40.
    handler.seen = []
    again = _run(build, url, tmp_path, repair=1)
    assert again.statuses["ok"] == 20 and again.not_ok == 0
    assert [len(QUESTION.findall(b["messages"][-1]["content"])) for b in handler.seen] == [2] * 5


def test_a_budget_per_item_fits_the_request_and_repairs_with_its_own(
    cutting: tuple[str, type[_Cutting]], tmp_path: Path, build_spec: Callable[..., Path]
) -> None:
    url, handler = cutting
    handler.word = "yes"
    fits = build_spec(
        SPECS / "reading.yaml",
        tmp_path / "fits",
        {("strategy", "kind"): "batch", ("strategy", "batch_size"): 4},
    )
    result = _run(fits, url, tmp_path, repair=0)
    assert result.statuses["ok"] == 16 and result.statuses["truncated"] == 0
    assert {b["max_tokens"] for b in handler.seen} == {4 * (64 + 7)}

    # One token an item: 4 × (1 + 7) = 32 cuts the fourth answer; its repair alone gets 8.
    handler.seen = []
    tight = build_spec(
        SPECS / "reading.yaml",
        tmp_path / "tight",
        {
            ("strategy", "kind"): "batch",
            ("strategy", "batch_size"): 4,
            ("model", "max_tokens_per_item"): 1,
        },
    )
    cut = _run(tight, url, tmp_path, repair=1)
    assert [b["max_tokens"] for b in handler.seen] == [32] * 4 + [8] * 4
    assert cut.statuses["truncated"] == 4 and cut.statuses["ok"] == 12
    assert [r["status"] for r in _rows(tight)[:4]] == ["ok", "ok", "ok", "truncated"]


class _JsonCutting(QuietHandler):
    """Answers in the grammar's JSON form as SmolLM2 writes it under llama.cpp's JSON grammar
    (a blank line between every two JSON tokens), cut at ``max_tokens`` a character a token."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append(body)
        n = len(QUESTION.findall(body["messages"][-1]["content"]))
        answers = [{"index": i, "answer": "yes"} for i in range(1, n + 1)]
        compact = json.dumps({"answers": answers}, separators=(",", ":"))
        text = "\n\n".join(JSON_TOKEN.findall(compact))
        budget = body["max_tokens"]
        reply = chat_completion(text[:budget], 10, min(len(text), budget))
        if len(text) > budget:
            reply["choices"][0]["finish_reason"] = "length"
        send_json(self, reply)


def test_a_run_in_the_json_form_sends_the_json_forms_budget(
    tmp_path: Path, build_spec: Callable[..., Path]
) -> None:
    """``run --grammar json-schema`` makes the model write the JSON form, which takes more
    than the text form the build fitted max_tokens to: the run sends the JSON form's budget
    (3 characters an answer: "yes"), and nothing is cut; the context check counts it too."""
    from promptc.render.output_budget import request_budget
    from promptc.spec.lower import compile_spec

    overrides = {
        ("strategy", "kind"): "batch",
        ("strategy", "batch_size"): 4,
        ("model", "max_tokens_per_item"): 3,
    }
    build = build_spec(SPECS / "reading.yaml", tmp_path / "b", overrides)
    task = compile_spec(SPECS / "reading.yaml", overrides=overrides)
    handler = type("Handler", (_JsonCutting,), {"seen": []})
    with serving(handler) as url:
        result = run_build(
            build,
            RunOptions(base_url=url, grammar="json-schema", parse=True, repair=0, use_cache=False),
        )
    assert result.statuses["truncated"] == 0 and result.statuses["ok"] == 16
    assert [b["max_tokens"] for b in handler.seen] == [
        request_budget(task, task.items[k : k + 4], json_form=True) for k in range(0, 16, 4)
    ]
    # The build itself keeps the text form's budget, which gbnf and none send.
    assert {json.loads(x)["params"]["max_tokens"] for x in (build / "requests.jsonl").open()} == {
        4 * (3 + 7)
    }
