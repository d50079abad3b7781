"""What a server (or the environment) gives ``promptc run``, ``plan --probe``, ``eval`` and the
embeddings endpoint, read with care: an API key a header cannot carry, JSON of the wrong
types, a body that is not JSON or never ends. Each ends in a clear message naming what was
expected — never a traceback, never exit 3, never a lost answer, never the key.

A loopback OpenAI-compatible server (the standard library's HTTP server) answers every
request with the body a test sets, and records the ``Authorization`` headers it received.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from loopback import QuietHandler, chat_completion, send_json, serving
from promptc.apikeys import BadKeyError, api_key, redact
from promptc.errors import SelectionError
from promptc.eval.results import read_variant
from promptc.ir import EmbeddingEndpoint
from promptc.run.engine import (
    FAILURES,
    MAX_BODY_BYTES,
    MAX_TOKENS,
    retry_after_seconds,
    usage_counts,
)
from promptc.run.options import RunOptions
from promptc.run.orchestrate import run_build
from promptc.run.outputs import read_outputs_file
from promptc.select.embed import EndpointEmbedder
from promptc.spec.lower import compile_spec

SPECS = Path(__file__).resolve().parents[2] / "specs"
#: A fake key, unlike anything a file could hold by chance.
SECRET = "sk-promptc-test-4b8d2f6a0c3e5a7b9d1f"
#: Four answers, one for each question of a batch of 4.
ANSWER = "\n".join(f"A[{i}]: positive" for i in range(1, 5))


class _Server(QuietHandler):
    reply: ClassVar[Any] = None  # a JSON value, or the raw bytes of the body
    auth: ClassVar[list[str | None]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            type(self).auth.append(self.headers.get("Authorization"))
        send_json(self, type(self).reply)


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Server]]]:
    handler = type("Handler", (_Server,), {"reply": chat_completion(ANSWER), "auth": []})
    with serving(handler) as url:
        yield url, handler


def _cli(*args: str, key: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    if key is not None:
        env["OPENAI_API_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "promptc", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def _run(build: Path, url: str, **kw: Any) -> Any:
    notes: list[str] = []
    options = RunOptions(base_url=url, grammar="none", use_cache=False, repair=0, **kw)
    result = run_build(build, options, progress=notes.append)
    return result, notes


# --------------------------------------------------------------------------------------------
# The API key
# --------------------------------------------------------------------------------------------


def test_a_key_read_from_a_crlf_file_is_sent_without_its_white_space(
    sentiment4: Path, server: tuple[str, type[_Server]]
) -> None:
    url, handler = server
    proc = _cli("run", str(sentiment4), "--base-url", url, "--no-cache", key=f" {SECRET}\r")
    assert proc.returncode == 0, proc.stderr
    assert set(handler.auth) == {f"Bearer {SECRET}"}


BAD_KEY = (
    "environment variable OPENAI_API_KEY holds an API key with a control character (U+0007) "
    "in it, which an HTTP header cannot carry (set OPENAI_API_KEY to the key alone, in "
    "printable ASCII)"
)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_key_a_header_cannot_carry_is_a_usage_error_naming_the_variable(
    sentiment4: Path, server: tuple[str, type[_Server]], fmt: str
) -> None:
    url, handler = server
    args = ("run", str(sentiment4), "--base-url", url, "--no-cache", "--format", fmt)
    proc = _cli(*args, key=f"{SECRET}\a")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    assert BAD_KEY in proc.stdout + proc.stderr
    assert handler.auth == []  # nothing was sent


def test_the_embedded_engine_reads_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded server takes no key: an odd one in the environment stops nothing."""
    from promptc.run.chat_api import ChatAPI
    from promptc.run.local import Embedded

    monkeypatch.setenv("OPENAI_API_KEY", f"{SECRET}\a")
    Embedded(RunOptions(), None, [], lambda line: None)  # no BadKeyError
    with pytest.raises(Exception, match="OPENAI_API_KEY"):
        ChatAPI(RunOptions(), "http://127.0.0.1:9/v1", [], lambda line: None)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_password_in_the_base_url_is_never_shown(
    sentiment4: Path, server: tuple[str, type[_Server]], tmp_path: Path, fmt: str
) -> None:
    url, _ = server
    secret_url = url.replace("http://", "http://user:pw-s3cr3t@")
    cache = tmp_path / "cache.sqlite"
    args = ("run", str(sentiment4), "--base-url", secret_url, "--cache", str(cache))
    proc = _cli(*args, "--format", fmt, "--parse")
    assert proc.returncode == 0, proc.stderr
    assert "pw-s3cr3t" not in proc.stdout + proc.stderr
    assert url in proc.stdout + proc.stderr  # named without it
    assert b"pw-s3cr3t" not in cache.read_bytes()


def test_plan_probe_refuses_such_a_key_too(server: tuple[str, type[_Server]]) -> None:
    url, handler = server
    spec = str(SPECS / "sentiment.yaml")
    proc = _cli(
        "plan", spec, "--strategies", "single", "--probe", "--base-url", url, key=SECRET + "\a"
    )
    assert proc.returncode == 2 and SECRET not in proc.stdout + proc.stderr
    assert proc.stderr == f"<command line>: --probe: {BAD_KEY}\n"
    assert handler.auth == []


def test_the_embeddings_endpoint_refuses_such_a_key_by_its_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROMPTC_TEST_KEY", SECRET + "\u00e9")
    endpoint = EmbeddingEndpoint(
        url="http://127.0.0.1:9/v1", model="e", api_key_env="PROMPTC_TEST_KEY"
    )
    with pytest.raises(SelectionError) as e:
        EndpointEmbedder(endpoint)
    assert e.value.code == "endpoint-bad-key" and SECRET not in str(e.value)
    assert e.value.message == (
        "environment variable PROMPTC_TEST_KEY holds an API key with a non-ASCII character "
        "(U+00E9) in it, which an HTTP header cannot carry "
        "(strategy.selection.embeddings.api_key_env)"
    )


def test_keys_are_read_stripped_and_redacted_however_quoted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PROMPTC_TEST_KEY", "\t sk-a\\b'c \r\n")
    assert api_key("PROMPTC_TEST_KEY") == "sk-a\\b'c"
    monkeypatch.setenv("PROMPTC_TEST_KEY", " \r\n")
    assert api_key("PROMPTC_TEST_KEY") is None
    monkeypatch.setenv("PROMPTC_TEST_KEY", "sk-a\x1bb")
    with pytest.raises(BadKeyError, match=r"a control character \(U\+001B\)"):
        api_key("PROMPTC_TEST_KEY")
    key = "sk-a\\b'c"
    for quoted in (key, repr(f"Bearer {key}"), json.dumps({"auth": key})):
        assert key not in redact(quoted, key) and "***" in redact(quoted, key)
    assert "\\\\b" not in redact(repr(key), key)


def test_only_the_whole_key_is_redacted_and_a_placeholder_leaves_answers_be() -> None:
    # A key is replaced where it stands as a word, not inside another one; a short key is a
    # placeholder (EMPTY, no, x) that a model's answer may well hold: answers keep it.
    assert redact("negative; auth neg", "neg") == "negative; auth ***"
    assert redact("A[1]: no", "no", answer=True) == "A[1]: no"
    assert redact("A[1]: EMPTY", "EMPTY", answer=True) == "A[1]: EMPTY"
    assert redact("Bearer sk-12345678.", "sk-12345678", answer=True) == "Bearer ***."
    # In JSON or repr text an escape ends the word before the key (\n, \t, \u2028, \x0b).
    for text in ("a\nsk-12345678", "a\tsk-12345678", "a\u2028sk-12345678", "a\x0bsk-12345678"):
        for quoted in (json.dumps(text), repr(text)):
            assert redact(quoted, "sk-12345678") == quoted.replace("sk-12345678", "***")
    assert redact("ask-12345678 a\\xsk-12345678", "sk-12345678") == "ask-12345678 a\\xsk-12345678"


def test_a_placeholder_key_leaves_the_answers_as_written(
    sentiment4: Path, server: tuple[str, type[_Server]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = server
    handler.reply = chat_completion("A[1]: negative\nA[2]: no")
    monkeypatch.setenv("PROMPTC_TEST_KEY", "no")
    options = RunOptions(
        base_url=url,
        grammar="none",
        repair=0,
        limit=1,
        api_key_env="PROMPTC_TEST_KEY",
        use_cache=False,
    )
    assert run_build(sentiment4, options).answered == 1
    (answer,) = read_outputs_file(sentiment4 / "outputs.jsonl").answers.values()
    assert answer["output"] == "A[1]: negative\nA[2]: no"


def test_a_server_echoing_the_key_is_shown_without_it(
    sentiment4: Path, server: tuple[str, type[_Server]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = server
    handler.reply = b'{"choices": {"error": "' + f"Bearer {SECRET}".encode() + b'"}'
    monkeypatch.setenv("PROMPTC_TEST_KEY", SECRET)
    result, notes = _run(sentiment4, url, limit=1, api_key_env="PROMPTC_TEST_KEY", max_retries=0)
    assert [f.kind for f in result.failed] == ["cut"]  # its JSON ends unfinished
    assert SECRET not in result.failed[0].what + "".join(notes)


def test_a_stream_nobody_asked_for_is_read_as_its_answer(
    sentiment4: Path, server: tuple[str, type[_Server]]
) -> None:
    # A gateway that streams though run asks for no stream: the answer (paid) is in the
    # events' deltas, its finish and usage in the last chunks.
    url, handler = server
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "A[1]: pos"}}]},
        {"choices": [{"index": 0, "delta": {"content": "itive"}, "finish_reason": None}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3}},
    ]
    handler.reply = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks)
    handler.reply += b"data: [DONE]\n\n"
    options = RunOptions(base_url=url, grammar="none", repair=0, limit=1, use_cache=False)
    result = run_build(sentiment4, options)
    assert result.answered == 1 and (result.prompt_tokens, result.completion_tokens) == (12, 3)
    (answer,) = read_outputs_file(sentiment4 / "outputs.jsonl").answers.values()
    assert (answer["output"], answer["finish_reason"]) == ("A[1]: positive", "stop")


class _HalfBody(QuietHandler):
    """Sends the status line and half the body it declares, then closes the connection."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps(chat_completion("A[1]: positive")).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True


def test_a_connection_cut_mid_answer_is_said_as_a_cut_not_as_no_server(
    sentiment4: Path,
) -> None:
    # The server answered, then the connection broke: "could not connect ... check that the
    # server is running" would send the user looking for a server that is there.
    handler: type[QuietHandler] = _HalfBody
    with serving(handler) as url:
        result, _ = _run(sentiment4, url, limit=1, max_retries=1)
    (failure,) = result.failed
    assert failure.kind == "cut" and failure.attempts == 2
    assert failure.format().startswith(
        f"request r0001: the connection to {url} was cut while the answer was read ("
    )
    assert failure.format().endswith("after 2 attempts; " + FAILURES["cut"][1])


def test_a_stream_cut_before_its_end_is_no_answer(
    sentiment4: Path, server: tuple[str, type[_Server]]
) -> None:
    # The events stop inside the answer (``pos`` of ``positive``): no finish_reason, no
    # [DONE]. Taken as whole, its cut value would be parsed and cached.
    url, handler = server
    chunk = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "A[1]: pos"}}]}
    handler.reply = f"data: {json.dumps(chunk)}\n\n".encode()
    cache = sentiment4.parent / "cache.sqlite"
    result, _ = _run(sentiment4, url, limit=1, cache_path=cache, max_retries=0)
    assert result.answered == 0
    assert [(f.kind, f.what) for f in result.failed] == [
        (
            "bad-response",
            (
                "the server's answer is no chat completion "
                "(the event stream ended before its data: [DONE])"
            ),
        )
    ]
    assert not read_outputs_file(sentiment4 / "outputs.jsonl").answers
    assert b"A[1]: pos" not in (cache.read_bytes() if cache.exists() else b"")


class _StreamFailsOnce(QuietHandler):
    """Streams the answer, but its first attempt fails after ``A[1]: pos`` the way vLLM and
    SGLang fail a stream: an error event, then ``data: [DONE]``."""

    posts = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).posts += 1
        delta = {"role": "assistant", "content": "A[1]: pos"}
        events = [{"choices": [{"index": 0, "delta": delta}]}]
        if type(self).posts == 1:
            events.append({"error": {"message": "CUDA error: out of memory", "code": 500}})
        else:
            more = {"content": "itive"}
            events.append({"choices": [{"index": 0, "delta": more, "finish_reason": "stop"}]})
        body = b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events)
        send_json(self, body + b"data: [DONE]\n\n")


def test_a_stream_that_reports_an_error_is_no_answer(sentiment4: Path) -> None:
    # The text before the error event is a cut answer (``pos`` of ``positive``), though the
    # stream ends with [DONE]: it fails as a server error, in the server's words, and is
    # asked again; nothing of it is recorded or cached.
    handler = type("Handler", (_StreamFailsOnce,), {"posts": 0})
    cache = sentiment4.parent / "cache.sqlite"
    with serving(handler) as url:
        result, _ = _run(sentiment4, url, limit=1, cache_path=cache, max_retries=0)
        assert result.answered == 0
        assert [(f.kind, f.what) for f in result.failed] == [
            (
                "server",
                "server error (HTTP 500: its event stream reports an error: CUDA error: out of memory)",
            )
        ]
        assert not read_outputs_file(sentiment4 / "outputs.jsonl").answers
        assert b"A[1]: pos" not in (cache.read_bytes() if cache.exists() else b"")
        result, _ = _run(sentiment4, url, limit=1, cache_path=cache, max_retries=0)
    assert result.failed == [] and handler.posts == 2
    (answer,) = read_outputs_file(sentiment4 / "outputs.jsonl").answers.values()
    assert answer["output"] == "A[1]: positive"


class _SaysItTwice(QuietHandler):
    """Keeps its connections alive and writes each response twice (a proxy replaying one):
    the copy waits in the connection for the next request. Each completion has its own id,
    and answers its request's first question (so that every request's answer differs)."""

    protocol_version = "HTTP/1.1"
    posts = 0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).posts += 1
        completion = chat_completion(f"A[1]: {body['messages'][-1]['content'][-40:]}")
        completion["id"] = f"chatcmpl-{type(self).posts:04d}"
        data = json.dumps(completion).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(data)}"
        self.wfile.write((head.encode() + b"\r\n\r\n" + data) * 2)
        self.wfile.flush()


def test_an_answer_sent_twice_is_never_another_requests_answer(sentiment4: Path) -> None:
    # The copy of r0001's response would be read as r0002's answer: refused (the completion
    # id and the bytes of an answer to another request) and asked again on a new connection.
    handler = type("Handler", (_SaysItTwice,), {"posts": 0})
    with serving(handler) as url:
        result, notes = _run(sentiment4, url, limit=3, concurrency=1)
    assert result.failed == [] and result.answered == 3
    replayed = [n for n in notes if "replayed" in n]
    assert replayed and all("(completion id chatcmpl-" in n for n in replayed)
    answers = read_outputs_file(sentiment4 / "outputs.jsonl").answers
    outputs = [answers[r]["output"] for r in ("r0001", "r0002", "r0003")]
    assert len(set(outputs)) == 3


class _CutWithoutLength(QuietHandler):
    """Answers in HTTP/1.0 without a Content-Length (the body ends with the connection), and
    closes the connection halfway through its JSON on the first attempt."""

    posts = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).posts += 1
        body = json.dumps(chat_completion(ANSWER)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if type(self).posts == 1 else body)


def test_a_body_cut_where_http_cannot_tell_is_a_cut(sentiment4: Path) -> None:
    # No declared length: only the JSON, unfinished at its end, says the body was cut. It is
    # asked again, as a cut, not "no chat completion ... check --base-url".
    handler = type("Handler", (_CutWithoutLength,), {"posts": 0})
    with serving(handler) as url:
        result, notes = _run(sentiment4, url, limit=1, max_retries=1)
    assert result.failed == [] and handler.posts == 2
    assert any(n.startswith("request r0001: cut (its body ends inside its JSON: ") for n in notes)
    (answer,) = read_outputs_file(sentiment4 / "outputs.jsonl").answers.values()
    assert answer["output"] == ANSWER


@pytest.mark.parametrize("finish", [f"stop ({SECRET})", "x" * 100_000, ["stop"], 7])
def test_a_finish_reason_that_is_no_word_is_not_kept(
    sentiment4: Path,
    server: tuple[str, type[_Server]],
    monkeypatch: pytest.MonkeyPatch,
    finish: object,
) -> None:
    # A server's finish_reason is a word (stop, length): a sentence echoing the key, or
    # megabytes, is written nowhere (outputs.jsonl, the cache, progress).
    url, handler = server
    reply = chat_completion("A[1]: positive")
    reply["choices"][0]["finish_reason"] = finish
    handler.reply = reply
    monkeypatch.setenv("PROMPTC_TEST_KEY", SECRET)
    cache = sentiment4.parent / "cache.sqlite"
    result, notes = _run(sentiment4, url, limit=1, cache_path=cache, api_key_env="PROMPTC_TEST_KEY")
    assert result.answered == 1
    (answer,) = read_outputs_file(sentiment4 / "outputs.jsonl").answers.values()
    assert answer["finish_reason"] is None and answer["output"] == "A[1]: positive"
    assert SECRET not in "".join(notes) and len("".join(notes)) < 2000
    for path in [cache, *sentiment4.iterdir()]:
        if path.is_file():
            data = path.read_bytes()
            assert SECRET.encode() not in data and b"x" * 1000 not in data, path


def test_an_answer_echoing_the_key_is_written_without_it(
    sentiment4: Path, server: tuple[str, type[_Server]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy or endpoint that echoes the Authorization header in the answer itself: the
    # key is written nowhere (outputs.jsonl, results.jsonl, the cache), *** in its place.
    url, handler = server
    handler.reply = chat_completion(f"A[1]: positive (sent with Bearer {SECRET})")
    monkeypatch.setenv("PROMPTC_TEST_KEY", SECRET)
    cache = sentiment4.parent / "cache.sqlite"
    options = RunOptions(
        base_url=url,
        grammar="none",
        repair=0,
        limit=1,
        api_key_env="PROMPTC_TEST_KEY",
        cache_path=cache,
        parse=True,
    )
    result = run_build(sentiment4, options)
    assert result.answered == 1
    (answer,) = read_outputs_file(sentiment4 / "outputs.jsonl").answers.values()
    assert answer["output"] == "A[1]: positive (sent with Bearer ***)"
    for path in [cache, *sentiment4.iterdir()]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_a_key_echoed_in_any_field_of_a_reply_is_kept_nowhere(
    sentiment4: Path, server: tuple[str, type[_Server]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A proxy that echoes the Authorization header as the finish_reason (a word, as a reason
    # is) and as the name of a usage count: outputs.jsonl, the cache and the progress lines
    # keep neither, *** in its place.
    url, handler = server
    reply = chat_completion(f"A[1]: positive\n{SECRET}", prompt_tokens=10, completion_tokens=3)
    reply["choices"][0]["finish_reason"] = SECRET
    reply["usage"] = {"prompt_tokens": 10, SECRET: 1, "details": {SECRET: 2}}
    handler.reply = reply
    monkeypatch.setenv("PROMPTC_TEST_KEY", SECRET)
    cache = sentiment4.parent / "cache.sqlite"
    options = RunOptions(
        base_url=url,
        grammar="none",
        repair=0,
        limit=1,
        api_key_env="PROMPTC_TEST_KEY",
        cache_path=cache,
    )
    notes: list[str] = []
    assert run_build(sentiment4, options, progress=notes.append).answered == 1
    assert cache.is_file()
    (answer,) = read_outputs_file(sentiment4 / "outputs.jsonl").answers.values()
    assert answer["output"] == "A[1]: positive\n***"
    assert answer["finish_reason"] is None
    assert answer["usage"] == {"prompt_tokens": 10, "***": 1, "details": {"***": 2}}
    assert any("r0001 answered (" in note for note in notes)
    assert SECRET not in "".join(notes)
    for path in [cache, *sentiment4.iterdir()]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


# --------------------------------------------------------------------------------------------
# Replies of the wrong types
# --------------------------------------------------------------------------------------------


def _completion(**changes: Any) -> dict[str, Any]:
    completion = chat_completion(ANSWER)
    completion.update(changes)
    return completion


FAILED = [
    pytest.param(
        b"\xff\xfe garbage <html>",
        "the server's answer is no chat completion (its body is not JSON: 'utf-8' codec "
        "can't decode byte 0xff in position 0: invalid start byte)",
        id="garbage",
    ),
    pytest.param(
        [1, 2, 3],
        "the server's answer is no chat completion (its body is JSON but not an object)",
        id="array",
    ),
    pytest.param(
        {"choices": {"a": 1}},
        "the server's answer is no chat completion (choices is an object, not a list)",
        id="choices-not-a-list",
    ),
    pytest.param(
        {"choices": []},
        "the server's answer is no chat completion (choices is empty)",
        id="no-choices",
    ),
    pytest.param(
        {"error": {"message": "Rate limit reached for requests", "type": "requests"}},
        "the server's answer is no chat completion (choices is missing or null, not a "
        "list; the server said: Rate limit reached for requests)",
        id="error-with-status-200",
    ),
    pytest.param(
        {"choices": [{"message": "hi"}]},
        "the server's answer is no chat completion (choices[0].message is not an object)",
        id="message-not-an-object",
    ),
]


@pytest.mark.parametrize(("reply", "what"), FAILED)
def test_a_reply_that_is_no_chat_completion_fails_that_request(
    sentiment4: Path, server: tuple[str, type[_Server]], reply: Any, what: str
) -> None:
    url, handler = server
    handler.reply = reply
    result, _ = _run(sentiment4, url, limit=1, max_retries=0)
    assert [(f.request_id, f.kind, f.what) for f in result.failed] == [
        ("r0001", "bad-response", what)
    ]


USAGE = [
    pytest.param("nope", None, "usage is 'nope', not an object of token counts", id="string"),
    pytest.param(
        {"prompt_tokens": 10, "completion_tokens": "x"},
        {"prompt_tokens": 10},
        "usage.completion_tokens is 'x', not a token count (0 to 10**15)",
        id="count-a-string",
    ),
    pytest.param(
        {"prompt_tokens": 10**400, "completion_tokens": 2, "total_tokens": -5},
        {"completion_tokens": 2},
        "usage.prompt_tokens is a number over 10**15, not a token count (0 to 10**15)",
        id="count-too-large",
    ),
    pytest.param(
        {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 1e308}},
        {"prompt_tokens": 10, "prompt_tokens_details": {}},
        "usage.prompt_tokens_details.cached_tokens is 1e+308, not a token count (0 to 10**15)",
        id="nested",
    ),
]


@pytest.mark.parametrize(("usage", "kept", "said"), USAGE)
def test_usage_that_is_no_token_counts_is_left_out_and_said_once(
    sentiment4: Path,
    server: tuple[str, type[_Server]],
    usage: Any,
    kept: Any,
    said: str,
) -> None:
    url, handler = server
    handler.reply = _completion(usage=usage)
    result, notes = _run(sentiment4, url, limit=2)
    assert not result.failed and result.sent == 2
    answers = read_outputs_file(sentiment4 / "outputs.jsonl").answers
    assert [a["output"] for a in answers.values()] == [ANSWER, ANSWER]
    assert [a["usage"] for a in answers.values()] == [kept, kept]
    note = (
        f"{url} answered with token usage promptc cannot read ({said}): left out, the "
        "answers kept (said once)"
    )
    assert [n for n in notes if "token usage" in n] == [note]


def test_token_totals_missing_a_count_are_not_said_as_known(
    sentiment4: Path, server: tuple[str, type[_Server]]
) -> None:
    # "prompt_tokens": "611" is left out: the run's prompt total is unknown, not 0.
    url, handler = server
    handler.reply = _completion(usage={"prompt_tokens": "611", "completion_tokens": 2})
    result, _ = _run(sentiment4, url, limit=2)
    assert result.to_dict()["tokens"] == {"prompt": None, "completion": 4}
    assert result.summary().endswith("; tokens ? in / 4 out")
    # One answer counted, one not: the total is a lower bound.
    result.add_tokens(611, 2)
    assert result.summary().endswith("; tokens at least 611 in / 6 out")
    assert result.to_dict()["tokens"] == {"prompt": None, "completion": 6}


def test_usage_counts_keep_what_is_a_count() -> None:
    assert usage_counts(None) == (None, None)
    # A whole number written with a zero fraction (some proxies send 100.0) is a count.
    assert usage_counts({"prompt_tokens": 100.0, "completion_tokens": Decimal("7.0")}) == (
        {"prompt_tokens": 100, "completion_tokens": 7},
        None,
    )
    assert usage_counts({"prompt_tokens": 1.5}) == (
        {},
        "usage.prompt_tokens is 1.5, not a token count (0 to 10**15)",
    )
    assert usage_counts({"prompt_tokens": Decimal("1E+999999999")})[0] == {}
    assert usage_counts({"prompt_tokens": MAX_TOKENS, "x": None, "b": True}) == (
        {"prompt_tokens": MAX_TOKENS},
        "usage.b is True, not a token count (0 to 10**15)",
    )


def test_content_as_text_parts_is_the_answer(
    sentiment4: Path, server: tuple[str, type[_Server]]
) -> None:
    url, handler = server
    parts = [{"type": "text", "text": ANSWER[:9]}, {"type": "text", "text": ANSWER[9:]}]
    handler.reply = _completion(
        choices=[{"message": {"content": parts}, "finish_reason": "stop", "index": 0}]
    )
    result, _ = _run(sentiment4, url, limit=1, parse=True)
    assert not result.failed and result.empty == 0
    assert read_outputs_file(sentiment4 / "outputs.jsonl").answers["r0001"]["output"] == ANSWER


def test_a_body_that_never_ends_is_not_read_past_the_limit(sentiment4: Path) -> None:
    sent: list[int] = []

    class Endless(QuietHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            chunk = b"A" * 1_000_000
            total = 0
            try:
                head = b'{"choices":[{"message":{"content":"'
                self.wfile.write(b"%x\r\n%s\r\n" % (len(head), head))
                for _ in range(4 * MAX_BODY_BYTES // len(chunk)):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    total += len(chunk)
            except OSError:
                pass
            sent.append(total)

    with serving(Endless) as url:
        result, _ = _run(sentiment4, url, limit=1, max_retries=0, timeout=120)
    assert [(f.kind, f.what) for f in result.failed] == [
        (
            "too-large",
            "the answer is over 50,000,000 bytes of JSON, more than promptc stores for one request",
        )
    ]
    assert sent and sent[0] < 2 * MAX_BODY_BYTES  # the client stopped reading


# --------------------------------------------------------------------------------------------
# plan --probe and eval --results
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "reply",
    [
        _completion(usage="nope"),
        _completion(usage={"prompt_tokens": 10**400}, timings={"prompt_n": "x", "prompt_ms": 0}),
        [1, 2],
    ],
    ids=["usage-a-string", "usage-and-timings-unreadable", "array"],
)
def test_plan_probe_says_it_has_nothing_to_measure(
    server: tuple[str, type[_Server]], reply: Any
) -> None:
    url, handler = server
    handler.reply = reply
    spec = str(SPECS / "sentiment.yaml")
    proc = _cli("plan", spec, "--strategies", "single", "--probe", "--base-url", url)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr == (
        f"<command line>: --probe: the server at {url} gave no usage or timings to "
        "measure its speed from\n"
    )


@pytest.mark.parametrize(
    "usage",
    [
        {"prompt_tokens": 10**400, "completion_tokens": 2},
        {"prompt_tokens": 10, "completion_tokens": "x"},
    ],
)
def test_eval_reads_unreadable_usage_as_unknown(
    sentiment4: Path, server: tuple[str, type[_Server]], usage: dict[str, Any]
) -> None:
    url, _ = server
    result, _ = _run(sentiment4, url, parse=True)
    assert not result.failed
    outputs = sentiment4 / "outputs.jsonl"
    lines = [json.loads(x) for x in outputs.read_text(encoding="utf-8").splitlines()]
    outputs.write_text("".join(json.dumps({**x, "usage": usage}) + "\n" for x in lines))
    variant = read_variant(sentiment4, compile_spec(SPECS / "sentiment.yaml"))
    assert variant.prompt_tokens is None and variant.completion_tokens is None
    assert variant.answered == 5


class _Flaky(QuietHandler):
    """Fails the first POST as ``fault`` says, then answers every one."""

    fault: ClassVar[str] = ""
    posts: ClassVar[int] = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            type(self).posts += 1
            first = type(self).posts == 1
        if first and self.fault == "reset":
            # Headers and part of the body, then the connection reset (as a proxy dropping
            # it mid-answer does).
            body = json.dumps(chat_completion(ANSWER)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:40])
            self.wfile.flush()
            linger = (1).to_bytes(4, sys.byteorder) + (0).to_bytes(4, sys.byteorder)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            self.connection.close()
            self.close_connection = True
            return
        if first and self.fault == "retry-after":
            # A Retry-After whose HTTP date no clock can hold: not usable, so ignored.
            headers = {"Retry-After": "Mon, 01 Jan 99999999999999999999 00:00:00 GMT"}
            send_json(self, {"error": {"message": "slow down"}}, 429, headers)
            return
        send_json(self, chat_completion(ANSWER))


@pytest.mark.parametrize("fault", ["reset", "retry-after"])
def test_a_request_the_server_failed_once_is_asked_again(sentiment4: Path, fault: str) -> None:
    # run.md: connection errors and rate limits are retried --max-retries times. A connection
    # reset mid-body is a connection error (not a reply that is no chat completion), and a
    # Retry-After past any date a clock holds is ignored, not an internal error.
    handler = type("Handler", (_Flaky,), {"fault": fault, "posts": 0})
    with serving(handler) as url:
        result, _ = _run(sentiment4, url, limit=1, max_retries=2)
    assert result.failed == [] and result.sent == 1, result.failed
    assert handler.posts == 2
    (answer,) = read_outputs_file(sentiment4 / "outputs.jsonl").answers.values()
    assert answer["output"] == ANSWER


def test_retry_after_reads_every_form() -> None:
    assert retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    assert retry_after_seconds({"Retry-After": "7"}) == 7.0
    date = "Thu, 01 Jan 1970 00:01:40 GMT"
    assert retry_after_seconds({"Retry-After": date}, now=40.0) == 60.0
    for unusable in ("-3", "nan", "inf", "soon", "Mon, 01 Jan 99999999999999999999 00:00:00 GMT"):
        assert retry_after_seconds({"Retry-After": unusable}) is None, unusable


def test_a_run_resumes_against_the_same_server_at_another_address(
    sentiment4: Path, server: tuple[str, type[_Server]]
) -> None:
    # run.md: requests already answered are skipped unless the build changed (prompt, model,
    # grammar mode). The server's address is not the request: a server reached under another
    # name (or restarted on another port) resumes the run, nothing is paid twice.
    url, handler = server
    result, _ = _run(sentiment4, url, limit=2)
    assert result.sent == 2 and len(handler.auth) == 2
    lines = read_outputs_file(sentiment4 / "outputs.jsonl").answers
    assert all(a["body_sha256"] and a["request_sha256"] for a in lines.values())
    elsewhere = url.replace("127.0.0.1", "localhost")
    result, _ = _run(sentiment4, elsewhere, limit=2)
    assert (result.sent, result.skipped) == (0, 2) and len(handler.auth) == 2
    assert not (sentiment4 / "outputs.replaced.jsonl").exists()
    # Another model is another request: moved aside and asked again.
    result, _ = _run(sentiment4, elsewhere, limit=2, model="other-model")
    assert result.sent == 2 and len(handler.auth) == 4
    assert (sentiment4 / "outputs.replaced.jsonl").exists()


class _Slow(QuietHandler):
    """Answers every request, a quarter of a second later."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        time.sleep(0.25)
        send_json(self, chat_completion(ANSWER))


def test_a_run_goes_on_when_its_progress_reader_goes_away(sentiment4: Path) -> None:
    # `promptc run … 2>&1 | head -2`: the reader of the progress is gone after two lines; the
    # run still asks every request, keeps every answer and says its status by its exit code.
    with serving(_Slow) as url:
        proc = subprocess.Popen(
            [sys.executable, "-m", "promptc", "run", str(sentiment4), "--base-url", url]
            + ["--grammar", "none", "--concurrency", "1", "--no-cache"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert proc.stderr is not None
        proc.stderr.readline()
        proc.stderr.readline()
        proc.stderr.close()
        code = proc.wait(timeout=120)
    assert code == 0
    assert len(read_outputs_file(sentiment4 / "outputs.jsonl").answers) == 5


class _Blank(QuietHandler):
    """Answers the first request with white space alone, every later one with ANSWER."""

    posts: ClassVar[int] = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).posts += 1
        send_json(self, chat_completion("  \n" if type(self).posts == 1 else ANSWER))


def test_an_answer_of_white_space_alone_is_never_cached(sentiment4: Path, tmp_path: Path) -> None:
    # run.md: an empty answer is recorded as it came, never cached, and asked again by the
    # next run; white space alone says nothing more than an empty answer.
    handler = type("Handler", (_Blank,), {"posts": 0})
    cache = tmp_path / "cache.sqlite"
    with serving(handler) as url:
        options = RunOptions(base_url=url, grammar="none", cache_path=str(cache), repair=0, limit=1)
        first = run_build(sentiment4, options)
        assert first.empty == 1
        (sentiment4 / "outputs.jsonl").unlink()
        second = run_build(sentiment4, options)
    assert (second.sent, second.cached) == (1, 0) and handler.posts == 2
    (answer,) = read_outputs_file(sentiment4 / "outputs.jsonl").answers.values()
    assert answer["output"] == ANSWER


class _Counting(QuietHandler):
    """Answers every request, a tenth of a second later, and counts the bodies it got."""

    bodies: ClassVar[list[str]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        with self.lock:
            type(self).bodies.append(body)
        time.sleep(0.1)
        send_json(self, chat_completion("positive"))


def test_the_same_prompt_twice_in_one_pass_is_paid_once(tmp_path: Path, build_spec: Any) -> None:
    # Items with the same text, asked one by one: their requests are the same body. With the
    # cache on, the second waits for the first's answer instead of paying again (as the
    # cache answers it on the next run); each request still has its line in outputs.jsonl.
    (tmp_path / "data").mkdir()
    rows = ["Great.", "Awful.", "Great.", "Great.", "Fine."]
    (tmp_path / "data" / "sentiment.jsonl").write_text(
        "".join(
            json.dumps({"id": f"s{k}", "text": t, "label": "positive"}) + "\n"
            for k, t in enumerate(rows)
        ),
        encoding="utf-8",
    )
    spec = tmp_path / "s.yaml"
    spec.write_text((SPECS / "sentiment.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    folder = build_spec(spec, tmp_path / "b", {("strategy", "kind"): "single"})
    handler = type("Handler", (_Counting,), {"bodies": []})
    with serving(handler) as url:
        options = RunOptions(
            base_url=url, grammar="none", repair=0, concurrency=4, cache_path=tmp_path / "c.db"
        )
        result = run_build(folder, options)
    assert len(handler.bodies) == len(set(handler.bodies)) == 3
    assert (result.sent, result.cached) == (3, 2) and not result.failed
    assert len(read_outputs_file(folder / "outputs.jsonl").answers) == 5


def test_models_whose_owner_is_no_text_are_no_llama_cpp() -> None:
    # GET /models answers vary: an owned_by that is a list or an object names no llama.cpp
    # server (never a TypeError, exit 3).
    from promptc.run.chat_api import server_kind

    for owner in (["llamacpp"], {"name": "llamacpp"}, None, 5):
        assert server_kind({"data": [{"id": "m", "owned_by": owner}]}) == "other"
    assert server_kind({"data": [{"id": "m", "owned_by": "llamacpp"}]}) == "llama.cpp"


class _SecondFails(QuietHandler):
    """Answers every request but the second, which it refuses (HTTP 400)."""

    posts: ClassVar[int] = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            type(self).posts += 1
            second = type(self).posts == 2
        if second:
            send_json(self, {"error": {"message": "refused"}}, 400)
            return
        send_json(self, chat_completion(ANSWER))


def test_results_hold_every_item_answered_or_not(sentiment4: Path) -> None:
    # A request with no answer: its items are in results.jsonl (missing, saying why) and
    # counted as not ok. A later run with --limit keeps the rows of the answers it did not
    # ask again: results.jsonl is never cut to the first N requests.
    handler = type("Handler", (_SecondFails,), {"posts": 0})
    with serving(handler) as url:
        result, _ = _run(sentiment4, url, concurrency=1, parse=True, max_retries=0)
        rows = [json.loads(x) for x in (sentiment4 / "results.jsonl").read_text().splitlines()]
        assert len(rows) == 20 and result.not_ok == 4 and len(result.failed) == 1
        missing = [r for r in rows if r["status"] == "missing"]
        assert {r["request_id"] for r in missing} == {result.failed[0].request_id}
        assert all(r["message"].startswith("no answer: ") for r in missing)
        limited, _ = _run(sentiment4, url, concurrency=1, parse=True, limit=1)
    again = [json.loads(x) for x in (sentiment4 / "results.jsonl").read_text().splitlines()]
    assert limited.sent == 0 and limited.statuses is not None
    assert sum(limited.statuses.values()) == 4  # the summary: this run's first request
    # The file: every item answered (r0002, past the limit, was never answered).
    assert len(again) == 16 and {r["status"] for r in again} == {"ok"}


def test_a_usage_count_past_pythons_digit_limit_keeps_the_answer() -> None:
    from promptc.run.chat_api import reply_of

    body = (
        '{"choices": [{"message": {"content": "A[1]: positive"}, "finish_reason": "stop"}], '
        '"usage": {"prompt_tokens": ' + "9" * 5000 + ', "completion_tokens": 3}}'
    ).encode()
    reply, dropped = reply_of(body, None)
    assert reply.text == "A[1]: positive" and reply.usage == {"completion_tokens": 3}
    assert dropped is not None and dropped.startswith("usage.prompt_tokens is ")


class _LlamaCppOneMalformed(QuietHandler):
    """Says it is llama.cpp (GET /models); answers every item but a batch's first, malformed
    until asked alone; records whether each request carried a GBNF grammar."""

    grammars: ClassVar[list[bool]] = []

    def do_GET(self) -> None:
        send_json(self, {"object": "list", "data": [{"id": "m", "owned_by": "llamacpp"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).grammars.append("grammar" in body)
        n = body["messages"][-1]["content"].count("Q[")
        first = "maybe" if n > 1 else "positive"
        lines = [f"A[1]: {first}", *(f"A[{i}]: positive" for i in range(2, n + 1))]
        send_json(self, chat_completion("\n".join(lines)))


def test_a_resumed_run_of_repairs_alone_sends_them_with_the_grammar_auto_chose(
    sentiment4: Path,
) -> None:
    """--grammar auto on llama.cpp means GBNF; a run that resumes with only repair requests
    left (the build's all answered by a run with --repair 0) sends them with it too, as one
    uninterrupted run does: never unconstrained, never bought again by the next run."""
    handler: type[QuietHandler] = _LlamaCppOneMalformed
    _LlamaCppOneMalformed.grammars = []
    with serving(handler) as url:
        first = RunOptions(base_url=url, grammar="auto", repair=0, use_cache=False)
        assert run_build(sentiment4, first).not_ok == 5
        again = RunOptions(base_url=url, grammar="auto", repair=2, use_cache=False)
        result = run_build(sentiment4, again)
    assert result.not_ok == 0 and result.grammar == "gbnf"
    assert _LlamaCppOneMalformed.grammars == [True] * 10
