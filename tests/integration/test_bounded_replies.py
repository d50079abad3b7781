"""Replies that are not the chat answer, read within a cap: an error status's body, ``GET
/models``, the Batch API's objects and files, the embeddings endpoint's answers. A loopback
server (the standard library's, real sockets) sends each of them far past its cap, as an
endless chunked body; promptc stops reading at the cap and ends in a message that names what
it read and from where (never the URL's credentials) — no traceback, no exit 3, and memory
that does not grow with what the server sends.
"""

from __future__ import annotations

import contextlib
import http.server
import io
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from loopback import QuietHandler, send_json, serving
from promptc.errors import BackendError, SelectionError
from promptc.ir import EmbeddingEndpoint
from promptc.replies import MAX_ERROR_BYTES, ReplyTooLarge, join_chunks, read_reply
from promptc.run.chat_api import MAX_MODELS_BYTES
from promptc.run.options import RunOptions
from promptc.run.orchestrate import run_build

openai = pytest.importorskip("openai")

SPECS = Path(__file__).resolve().parents[2] / "specs"
#: What an endless body sends at most before the server gives up: far past every cap
#: tested here, so that a client reading it whole would read all of it.
ENDLESS = 200_000_000


def _endless(handler: http.server.BaseHTTPRequestHandler, status: int, sent: list[int]) -> None:
    """An endless chunked JSON body (``{"error": "xxxx…``) with ``status``; the bytes written
    before the client hung up go to ``sent``."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    chunk = b"x" * 1_000_000
    total = 0
    try:
        head = b'{"error": "'
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(head), head))
        while total < ENDLESS:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            total += len(chunk)
    except OSError:
        pass
    sent.append(total)


def _stopped(sent: list[int]) -> int:
    """What an endless body sent before the client hung up (waited for: the server's thread
    notices when its next write fails)."""
    deadline = time.monotonic() + 30
    while not sent and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sent, "the client did not hang up"
    return sent[0]


class _Endless(QuietHandler):
    """``GET /v1/models`` and ``POST /v1/chat/completions``: each either endless (with its
    status) or a small normal reply."""

    models: ClassVar[int | None] = None  # the status of an endless /models, else 404
    chat: ClassVar[int | None] = None  # the status of an endless chat answer
    sent: ClassVar[list[int]] = []

    def do_GET(self) -> None:
        if type(self).models is None:
            send_json(self, {"error": {"message": "no such endpoint"}}, 404)
        else:
            _endless(self, type(self).models, type(self).sent)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        if type(self).chat is not None:
            _endless(self, type(self).chat, type(self).sent)


@pytest.fixture
def endless() -> Iterator[Callable[..., str]]:
    """``endless(models=…, chat=…)`` serves :class:`_Endless` so set; the URL it serves at."""
    with contextlib.ExitStack() as stack:

        def serve(**kw: Any) -> str:
            handler = type("Handler", (_Endless,), {"sent": [], **kw})
            serve.handler = handler  # type: ignore[attr-defined]
            return stack.enter_context(serving(handler))

        yield serve


def _run(build: Path, url: str, **kw: Any) -> Any:
    options = RunOptions(base_url=url, use_cache=False, repair=0, max_retries=0, **kw)
    return run_build(build, options, progress=lambda _line: None)


# -------------------------------------------------------------------------- the one reader


def test_the_reader_stops_at_its_cap_and_names_what_and_where() -> None:
    assert read_reply(io.BytesIO(b"12345"), 5, "the answer", "http://h/v1") == b"12345"
    with pytest.raises(ReplyTooLarge) as e:
        read_reply(io.BytesIO(b"123456"), 5, "the answer", "https://user:pw@h:8/v1?key=k")
    assert e.value.code == "reply-too-large" and e.value.stage == "backend"
    assert e.value.message == (
        "the answer from https://h:8/v1 is over 5 bytes; promptc stopped reading it there"
    )
    assert e.value.hint == (
        "check that https://h:8/v1 is the server meant (a proxy or another service may "
        "answer in its place)"
    )

    taken: list[bytes] = []

    def chunks() -> Iterator[bytes]:
        for c in (b"abc", b"def", b"ghi"):
            taken.append(c)
            yield c

    with pytest.raises(ReplyTooLarge):
        join_chunks(chunks(), 4, "a file", "http://h")
    assert taken == [b"abc", b"def"]  # nothing read past the chunk that passed the cap


# -------------------------------------------------------------------------- promptc run


def test_an_endless_error_body_is_read_to_its_cap_and_the_status_said(
    sentiment4: Path, endless: Callable[..., str]
) -> None:
    url = endless(chat=500)
    result = _run(sentiment4, url, grammar="none", limit=1)
    assert [(f.kind, f.what) for f in result.failed] == [
        (
            "server",
            (
                "server error (HTTP 500: the error body (HTTP 500) of POST /v1/chat/completions "
                f"from {url}/chat/completions is over 1,000,000 bytes; promptc stopped reading it "
                "there)"
            ),
        )
    ]
    sent = endless.handler.sent  # type: ignore[attr-defined]
    assert _stopped(sent) < 20 * MAX_ERROR_BYTES  # the client stopped reading


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b"", "an empty body"),
        (b'{"error": {"message": "overloaded", "type": "server_error"}}', "overloaded"),
        (b"<html><body>Bad gateway</body></html>", "<html><body>Bad gateway</body></html>"),
    ],
    ids=["empty", "json", "html"],
)
def test_an_error_body_within_its_cap_says_what_it_says(
    sentiment4: Path, body: bytes, said: str
) -> None:
    class Failing(QuietHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(502)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serving(Failing) as url:
        result = _run(sentiment4, url, grammar="none", limit=1)
    assert [(f.kind, f.what) for f in result.failed] == [
        ("server", f"server error (HTTP 502: {said})")
    ]


def test_an_endless_model_list_fails_the_run_with_what_and_where(
    sentiment4: Path, endless: Callable[..., str]
) -> None:
    url = endless(models=200)
    result = _run(sentiment4, url, grammar="json-schema", limit=2)
    assert {(f.kind, f.what, f.check) for f in result.failed} == {
        (
            "reply-too-large",
            (
                f"the reply of GET /models from {url} is over {MAX_MODELS_BYTES:,} bytes; promptc "
                "stopped reading it there while asking it which grammar it takes (GET /models)"
            ),
            "check that --base-url is the server meant (another service may answer there)",
        )
    }
    assert len(result.failed) == 2
    sent = endless.handler.sent  # type: ignore[attr-defined]
    assert _stopped(sent) < 2 * MAX_MODELS_BYTES + 20_000_000


def test_a_model_list_that_never_comes_says_so_without_blaming_max_tokens(
    sentiment4: Path,
) -> None:
    """A GET /models that does not answer within --timeout: its hint told the user to lower
    the model's max_tokens, which no model list depends on."""

    class Stalled(QuietHandler):
        def do_GET(self) -> None:
            time.sleep(3)

    with serving(Stalled) as url:
        result = _run(sentiment4, url, grammar="json-schema", limit=1, timeout=1)
    assert {(f.kind, f.what, f.check) for f in result.failed} == {
        (
            "timeout",
            "no answer within 1 s while asking it which grammar it takes (GET /models)",
            "raise --timeout, or check the server's log (it did not answer)",
        )
    }


def test_the_command_ends_in_the_message_with_bounded_memory(
    sentiment4: Path, endless: Callable[..., str]
) -> None:
    """The whole command against a server whose error bodies never end: exit 1, the message,
    no traceback, no credentials, and a peak RSS that does not hold what the server sent
    (200 MB; the child's peak is measured with getrusage in a process of its own)."""
    url = endless(chat=503)
    with_user = url.replace("http://", "http://someone:hunter2@")
    measure = (
        "import resource, subprocess, sys\n"
        "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "sys.stderr.write(p.stderr)\n"
        "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    args = ["run", str(sentiment4), "--base-url", with_user, "--grammar", "none"]
    proc = subprocess.run(
        [sys.executable, "-c", measure, sys.executable, "-m", "promptc", *args]
        + ["--limit", "1", "--no-cache", "--max-retries", "0", "--repair", "0"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )
    code, peak_kb = (int(x) for x in proc.stdout.split())
    assert code == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "hunter2" not in proc.stderr
    assert (
        "server error (HTTP 503: the error body (HTTP 503) of POST /v1/chat/completions from "
        f"{url}/chat/completions is over 1,000,000 bytes; promptc stopped reading it there)"
    ) in proc.stderr
    print(f"peak RSS of promptc run: {peak_kb / 1024:.0f} MiB")
    assert peak_kb * 1024 < 150_000_000, peak_kb  # far below the 200 MB sent
    sent = endless.handler.sent  # type: ignore[attr-defined]
    assert _stopped(sent) < 20 * MAX_ERROR_BYTES


# -------------------------------------------------------------------------- the Batch API


def test_a_batch_api_file_past_its_cap_is_not_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batch_server import BatchServer, batch_api
    from promptc.build import build
    from promptc.run import batch_api as engine
    from promptc.spec.lower import compile_spec

    monkeypatch.setattr(engine, "MAX_DOWNLOAD_BYTES", 1_000)  # the answers are about 4 kB
    task = compile_spec(
        SPECS / "sentiment.yaml",
        overrides={("strategy", "kind"): "batch", ("strategy", "batch_size"): 4},
    )
    out = tmp_path / "build"
    build(task, out, target="openai-batch")
    server = BatchServer(lambda rid, body: "\n".join(f"A[{i}]: positive" for i in range(1, 5)))
    with batch_api(server) as url:
        result = run_build(out, RunOptions(base_url=url, batch_api=True, poll_interval=0.01))
    [failure] = result.failed
    assert failure.kind == "reply-too-large"
    assert failure.what == (
        f"the Batch API at {url} refused or failed (the content of file file-0002 from {url} "
        "is over 1,000 bytes; promptc stopped reading it there)"
    )
    assert not list((out / "batch_api").iterdir())  # nothing half written


def test_an_endless_batch_api_error_is_read_to_its_cap(sentiment4: Path, tmp_path: Path) -> None:
    from promptc.build import build
    from promptc.spec.lower import compile_spec

    sent: list[int] = []

    class Refusing(QuietHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            _endless(self, 500, sent)

    task = compile_spec(
        SPECS / "sentiment.yaml",
        overrides={("strategy", "kind"): "batch", ("strategy", "batch_size"): 4},
    )
    out = tmp_path / "build"
    build(task, out, target="openai-batch")
    with serving(Refusing) as url:
        result = run_build(
            out, RunOptions(base_url=url, batch_api=True, poll_interval=0.01, max_retries=0)
        )
    [failure] = result.failed
    assert (failure.kind, failure.what) == (
        "server",
        (
            f"the Batch API at {url} refused or failed (the error body (HTTP 500) of POST "
            f"/v1/files from {url}/files is over 1,000,000 bytes; promptc stopped reading it there)"
        ),
    )
    assert _stopped(sent) < 20 * MAX_ERROR_BYTES


# -------------------------------------------------------------------------- embeddings


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (
            400,
            (
                "embeddings endpoint {url}/embeddings failed: HTTP 400 Bad Request: the error body "
                "(HTTP 400) from {url}/embeddings is over 1,000,000 bytes; promptc stopped reading "
                "it there"
            ),
        ),
        (
            200,
            (
                "embeddings endpoint {url}/embeddings failed: the answer from {url}/embeddings is "
                "over 9,000,000 bytes; promptc stopped reading it there"
            ),
        ),
    ],
    ids=["error-body", "answer"],
)
def test_an_endless_embeddings_reply_is_read_to_its_cap(status: int, message: str) -> None:
    pytest.importorskip("numpy")
    from promptc.select.embed import EndpointEmbedder

    sent: list[int] = []

    class Embeddings(QuietHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            _endless(self, status, sent)

    with serving(Embeddings) as url:
        endpoint = EmbeddingEndpoint(url=url, model="m", max_retries=0, texts_per_request=2)
        embedder = EndpointEmbedder(endpoint)
        with pytest.raises(SelectionError) as e:
            list(embedder.embed_batches(["one", "two"]))
    assert e.value.message == message.format(url=url)
    assert _stopped(sent) < 40_000_000


def test_a_batch_api_error_status_worth_another_try_is_retried(tmp_path: Path) -> None:
    """An error status is read by the response hook, which the client's own retries never
    see: the engine retries a 503 itself, the upload read again from its start."""
    from batch_server import BatchServer, handler_for
    from promptc.build import build
    from promptc.spec.lower import compile_spec

    task = compile_spec(
        SPECS / "sentiment.yaml",
        overrides={("strategy", "kind"): "batch", ("strategy", "batch_size"): 4},
    )
    out = tmp_path / "build"
    build(task, out, target="openai-batch")
    server = BatchServer(lambda rid, body: "\n".join(f"A[{i}]: positive" for i in range(1, 5)))
    refused: list[str] = []

    class Busy(handler_for(server)):  # type: ignore[misc]
        def do_POST(self) -> None:
            if not refused:
                refused.append(self.path)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                send_json(self, {"error": {"message": "busy"}}, 503, {"Retry-After": "0"})
                return
            super().do_POST()

    with serving(Busy) as url:
        result = run_build(out, RunOptions(base_url=url, batch_api=True, poll_interval=0.01))
    assert refused == ["/v1/files"] and not result.failed
    assert result.statuses["ok"] == 20
    _, uploaded = next(iter(server.files.values()))
    assert uploaded == (out / "requests.jsonl").read_bytes()  # whole, not from where it stopped


# -------------------------------------------------------------------------- redirects


def _redirect(handler: http.server.BaseHTTPRequestHandler, status: int, to: str) -> None:
    """A redirect to ``to`` with an endless chunked body."""
    handler.send_response(status)
    handler.send_header("Location", to)
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()
    try:
        for _ in range(ENDLESS // 1_000_000):
            handler.wfile.write(b"%x\r\n%s\r\n" % (1_000_000, b"x" * 1_000_000))
    except OSError:
        pass


def test_a_redirect_is_followed_only_with_a_body_of_bounded_length(sentiment4: Path) -> None:
    """The HTTP client reads a redirect's body whole before it follows it: one that declares
    a length within the cap is followed; one that does not (chunked, endless) is refused."""
    from loopback import chat_completion

    class Redirecting(QuietHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/v1/chat/completions":
                _redirect(self, 307, "/v2/chat/completions")
            elif self.path == "/v3/chat/completions":
                self.send_response(307)
                self.send_header("Location", "/v2/chat/completions")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
            else:
                answer = "\n".join(f"A[{i}]: positive" for i in range(1, 5))
                send_json(self, chat_completion(answer))

    with serving(Redirecting) as url:
        refused = _run(sentiment4, url, grammar="none", limit=1)
        followed = _run(sentiment4, url.replace("/v1", "/v3"), grammar="none", limit=1)
    assert [(f.kind, f.what) for f in refused.failed] == [
        (
            "bad-request",
            (
                f"the server rejected the request (HTTP 307: a redirect from {url}/chat/completions "
                "whose body may be over 1,000,000 bytes (it declares no length within that); "
                "promptc does not follow it)"
            ),
        )
    ]
    assert not followed.failed and followed.sent == 1


def test_urllib_reads_a_redirects_body_within_its_cap() -> None:
    """urllib reads a redirect's body whole before it follows it: promptc reads it first,
    within the cap (the embeddings endpoint, POST; the context probe, GET, still follows a
    redirect of a small body)."""
    pytest.importorskip("numpy")
    from promptc.run.context import server_context
    from promptc.select.embed import EndpointEmbedder

    class Redirecting(QuietHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            _redirect(self, 302, "/v1/elsewhere")

        def do_GET(self) -> None:
            if self.path == "/v1/models":
                self.send_response(302)
                self.send_header("Location", "/v1/all-models")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                send_json(self, {"data": [{"id": "m", "max_model_len": 4096}]})

    with serving(Redirecting) as url:
        endpoint = EmbeddingEndpoint(url=url, model="m", max_retries=0)
        with pytest.raises(SelectionError) as e:
            list(EndpointEmbedder(endpoint).embed_batches(["one"]))
        context = server_context(url)
    assert e.value.message == (
        f"embeddings endpoint {url}/embeddings failed: the body of a redirect (HTTP 302) from "
        f"{url}/embeddings is over 1,000,000 bytes; promptc stopped reading it there"
    )
    assert context is not None and context.tokens == 4096


def test_a_reply_dripping_a_byte_at_a_time_ends_at_its_deadline() -> None:
    """A socket's timeout bounds each read, and a server sending a byte every 0.2 s never
    trips it: the plan probe read such an answer without end. Read within ``seconds``, it
    ends soon after them."""
    from promptc.replies import urlopen

    class Dripping(QuietHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(200):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.2)

    with serving(Dripping) as url:
        start = time.monotonic()
        with urlopen(url + "/models", timeout=1) as response, pytest.raises(TimeoutError) as e:
            read_reply(response, 1_000_000, "the model list", url, seconds=1)
        took = time.monotonic() - start
    assert str(e.value) == f"the model list from {url} took over 1 s"
    assert took < 3


def test_a_url_with_a_user_and_password_is_asked_with_basic_authentication() -> None:
    """urllib took ``user:pw@127.0.0.1`` for a host name ('Name or service not known', the
    password in the message): eval's endpoint check and plan's probe refused a server that
    run reached."""
    from promptc.eval.runner import check_endpoint

    seen: list[str | None] = []

    class Models(QuietHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            send_json(self, {"data": [{"id": "m"}]})

    with serving(Models) as url:
        check_endpoint(url.replace("http://", "http://us%40er:pa%3Ass@"))
    assert seen == ["Basic dXNAZXI6cGE6c3M="]  # base64 of us@er:pa:ss
    with pytest.raises(BackendError) as e:
        check_endpoint("http://user:SECRETPW@127.0.0.1:9/v1", timeout=2)
    assert "SECRETPW" not in e.value.format()
    assert e.value.message.startswith("nothing answers at http://127.0.0.1:9/v1 (")
