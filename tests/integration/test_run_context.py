"""``promptc run`` warns when a build cannot fit an external server's context, as the server
says it (vLLM's ``GET /v1/models`` ``max_model_len``, llama.cpp's ``GET /props``), and says
nothing when the server does not tell, cannot be asked, or is slow to answer.

A scripted loopback server (the standard library's HTTP server in a thread) answers the probes
as each test sets and every chat request with a valid batch answer; the ``llm`` test asks
llama.cpp's own server (the embedded one) started with a small context.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import promptc.run.context as context_module
import pytest
from llm_server import running_server
from loopback import QuietHandler, chat_completion, send_json, serving
from promptc.build import read_requests
from promptc.run.context import largest_need, server_context, server_root
from promptc.run.options import RunOptions
from promptc.run.orchestrate import run_build

SPECS = Path(__file__).resolve().parents[2] / "specs"
QUESTION = re.compile(r"^Q\[(\d+)\]: ", re.MULTILINE)


class _Handler(QuietHandler):
    #: path → (status, JSON body) of each GET; a path not listed is 404.
    gets: ClassVar[dict[str, tuple[int, Any]]] = {}
    delay: ClassVar[float] = 0.0
    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).asked.append(self.path)
        if type(self).delay:
            time.sleep(type(self).delay)
        status, payload = type(self).gets.get(self.path, (404, {"error": "not found"}))
        try:
            send_json(self, payload, status)
        except BrokenPipeError:  # the client gave up waiting, as it should
            pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        n = len(QUESTION.findall(body["messages"][-1]["content"]))
        send_json(self, chat_completion("\n".join(f"A[{i}]: positive" for i in range(1, n + 1))))


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"gets": {}, "delay": 0.0, "asked": []})
    with serving(handler) as url:
        yield url, handler


def _run(build_dir: Path, url: str, tmp_path: Path, **kw: Any) -> tuple[Any, list[str]]:
    lines: list[str] = []
    result = run_build(
        build_dir,
        RunOptions(base_url=url, grammar="none", parse=True, use_cache=False, repair=0, **kw),
        progress=lines.append,
    )
    return result, lines


def _warnings(lines: list[str]) -> list[str]:
    return [x for x in lines if x.startswith("warning:") and "context" in x]


def _models(*lengths: tuple[str, int | None]) -> dict[str, Any]:
    data = []
    for name, n in lengths:
        entry: dict[str, Any] = {"id": name, "object": "model", "owned_by": "vllm"}
        if n is not None:
            entry["max_model_len"] = n
        data.append(entry)
    return {"object": "list", "data": data}


def test_a_vllm_context_too_small_is_named_once_before_sending(
    sentiment4: Path, server: tuple[str, type[_Handler]], tmp_path: Path
) -> None:
    url, handler = server
    handler.gets["/v1/models"] = (200, _models(("gpt-4o-mini", 300), ("other", 100_000)))
    need = largest_need(read_requests(sentiment4))
    assert need is not None and need.max_tokens == 256 and need.total > 300
    result, lines = _run(sentiment4, url, tmp_path)
    (warning,) = _warnings(lines)
    assert f"request {need.request_id} " in warning
    assert f"about {need.prompt_tokens:,} tokens" in warning and "max_tokens 256" in warning
    assert "context of 300 tokens (GET /v1/models: max_model_len)" in warning
    # Said before anything is sent, and the run goes on.
    assert lines.index(warning) < next(k for k, x in enumerate(lines) if x.startswith("sending"))
    assert result.ok and result.sent == 5
    assert handler.asked == ["/v1/models"]  # asked once, not /props as well


def test_a_build_that_fits_is_not_warned_about(
    sentiment4: Path, server: tuple[str, type[_Handler]], tmp_path: Path
) -> None:
    url, handler = server
    handler.gets["/v1/models"] = (200, _models(("gpt-4o-mini", 32_768)))
    result, lines = _run(sentiment4, url, tmp_path)
    assert _warnings(lines) == [] and result.ok


def test_llama_server_props_are_asked_when_the_models_do_not_say(
    sentiment4: Path, server: tuple[str, type[_Handler]], tmp_path: Path
) -> None:
    url, handler = server
    handler.gets["/v1/models"] = (200, _models(("gpt-4o-mini", None)))
    handler.gets["/props"] = (200, {"default_generation_settings": {"n_ctx": 512}})
    result, lines = _run(sentiment4, url, tmp_path)
    (warning,) = _warnings(lines)
    assert "context of 512 tokens (GET /props: default_generation_settings.n_ctx)" in warning
    assert handler.asked == ["/v1/models", "/props"] and result.ok


@pytest.mark.parametrize(
    "gets",
    [
        {},  # neither endpoint: 404s
        {"/v1/models": (200, _models(("m", None))), "/props": (200, {"n_ctx": "x"})},
        {"/v1/models": (500, {"error": "down"}), "/props": (200, ["not", "an", "object"])},
        {"/v1/models": (200, {"data": [{"id": "m", "max_model_len": True}]})},
        # llama-cpp-python's server: models without a length, owned by "me"; no /props.
        {"/v1/models": (200, {"object": "list", "data": [{"id": "m", "owned_by": "me"}]})},
    ],
    ids=["neither", "props-unreadable", "models-down", "length-not-a-number", "no-length"],
)
def test_a_server_that_does_not_say_is_run_silently(
    sentiment4: Path,
    server: tuple[str, type[_Handler]],
    tmp_path: Path,
    gets: dict[str, tuple[int, Any]],
) -> None:
    url, handler = server
    handler.gets.update(gets)
    result, lines = _run(sentiment4, url, tmp_path)
    assert _warnings(lines) == [] and result.ok and result.sent == 5


def test_a_slow_probe_is_not_waited_for(
    sentiment4: Path,
    server: tuple[str, type[_Handler]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, handler = server
    handler.gets["/v1/models"] = (200, _models(("gpt-4o-mini", 300)))
    handler.delay = 5.0
    monkeypatch.setattr(context_module, "PROBE_TIMEOUT", 0.3)
    started = time.monotonic()
    assert server_context(url) is None
    assert time.monotonic() - started < 2.0  # two probes of at most 0.3 s each
    handler.delay = 0.0
    assert server_context(url) is not None


def test_the_model_sent_picks_its_length_and_the_root_drops_v1() -> None:
    data = _models(("a", 1000), ("b", 300))
    assert context_module.models_context(data, "a") == 1000
    assert context_module.models_context(data, "zzz") == 300  # not listed: the smallest
    assert server_root("http://h:8080/v1/") == "http://h:8080"
    assert server_root("http://h:8080/llama/v1") == "http://h:8080/llama"
    assert server_root("http://h:8080") == "http://h:8080"
    assert server_context("file:///etc/passwd") is None


# ---- the real llama.cpp server -----------------------------------------------------------


@pytest.mark.llm
def test_llama_server_with_a_small_context_is_warned_about(
    sentiment4: Path, tmp_path: Path
) -> None:
    """llama.cpp's own server (the embedded engine's, run as an external server here) says
    its context in GET /props."""
    with running_server(n_ctx=512) as url:
        result, lines = _run(sentiment4, url, tmp_path, limit=1, timeout=120)
    (warning,) = _warnings(lines)
    assert "context of 512 tokens (GET /props: default_generation_settings.n_ctx)" in warning
    assert "request r0001 " in warning  # the largest of the requests sent
    assert result.answered + len(result.failed) == 1
