"""``promptc run``: resume, cache, failures and secrets, against real servers.

The tests marked ``llm`` talk to the real SmolLM2 model on a local llama.cpp server; the others
need no model: a server that is not running, and a small scripted OpenAI-compatible endpoint
(the standard library's HTTP server) for the answers no healthy llama.cpp server gives — a rate
limit, a server error.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from llm_server import running_server
from loopback import QuietHandler, chat_completion, send_json, serving
from promptc.build import read_requests, read_task
from promptc.errors import UsageError
from promptc.run.bodies import cache_key, request_body
from promptc.run.engine import FAILURES
from promptc.run.options import RunOptions
from promptc.run.orchestrate import run_build
from promptc.run.outputs import OutputsFile, read_outputs_file

MODEL = "smollm2"
TIMEOUT = 1800.0
#: A fake key, unlike anything a file could hold by chance.
SECRET = "sk-promptc-test-7f3a9c1e5b2d4f6a8c0e1b3d5f7a9c2e"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promptc.cli.run", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=TIMEOUT,
        check=False,
    )


def _files_holding(root: Path, secret: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def sentiment(
    spec_dir: Path, build_spec: Callable[..., Path], tmp_path: Path
) -> Callable[..., Path]:
    """Builds the sentiment spec (batch, sequential) with a given batch size into a fresh folder
    next to the specs (so that the manifest finds the spec again)."""
    counter = iter(range(1000))

    def make(batch_size: int = 2, target: str = "chat") -> Path:
        out = spec_dir.parent / f"run-{tmp_path.name}-{next(counter)}"
        build_spec(
            spec_dir / "sentiment.yaml",
            out,
            {
                ("strategy", "kind"): "batch",
                ("strategy", "batch_size"): batch_size,
                ("strategy", "selection", "method"): "sequential",
                ("model", "max_tokens"): 64,
            },
        )
        if target == "openai-batch":
            from promptc.build import build
            from promptc.spec.lower import compile_spec

            task = compile_spec(
                spec_dir / "sentiment.yaml",
                overrides={("strategy", "batch_size"): batch_size, ("model", "max_tokens"): 64},
            )
            build(task, out, target="openai-batch")
        return out

    return make


# --------------------------------------------------------------------------------------------
# No model needed
# --------------------------------------------------------------------------------------------


def test_server_not_running_is_a_clear_error(
    sentiment: Callable[..., Path], tmp_path: Path
) -> None:
    build = sentiment(4)
    url = f"http://127.0.0.1:{_free_port()}/v1"
    env = {**os.environ, "PROMPTC_TEST_KEY": SECRET}
    proc = _cli(
        str(build),
        "--base-url",
        url,
        "--grammar",
        "none",
        "--limit",
        "2",
        "--max-retries",
        "1",
        "--api-key-env",
        "PROMPTC_TEST_KEY",
        "--cache",
        str(tmp_path / "c.sqlite"),
        env=env,
    )
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        (
            f"error: request {rid}: could not connect to {url} (ConnectError: All connection "
            "attempts failed) after 2 attempts; check that the server is running and that "
            "--base-url is right"
        )
        for rid in ("r0001", "r0002")
    ]
    assert (
        "0/2 requests answered (0 sent, 0 from cache, 0 already in outputs.jsonl); 2 failed"
        in proc.stderr
    )
    assert not (build / "outputs.jsonl").exists()  # no empty outputs file left behind
    assert SECRET not in proc.stderr + proc.stdout
    assert _files_holding(tmp_path, SECRET) == [] and _files_holding(build, SECRET) == []


def test_auto_grammar_probe_failure_names_what_it_was_doing(
    sentiment: Callable[..., Path], tmp_path: Path
) -> None:
    build = sentiment(8)
    url = f"http://127.0.0.1:{_free_port()}/v1"
    result = run_build(
        build,
        RunOptions(
            base_url=url, grammar="auto", max_retries=0, limit=1, cache_path=tmp_path / "c.sqlite"
        ),
    )
    assert not result.ok and result.sent == 0
    assert [f.format() for f in result.failed] == [
        (
            f"request r0001: could not connect to {url} (ConnectError: All connection attempts "
            "failed) while asking it which grammar it takes (GET /models) after 1 attempt; check "
            "that the server is running and that --base-url is right"
        )
    ]


def test_usage_errors_exit_2_without_traceback(tmp_path: Path) -> None:
    proc = _cli(str(tmp_path), "--base-url", "http://127.0.0.1:9/v1")
    assert proc.returncode == 2
    assert proc.stderr == (
        f"error: {tmp_path}/manifest.json: {str(tmp_path)!r} is not a build: it has no "
        "manifest.json (give a folder written by promptc build SPEC -o DIR)\n"
    )
    proc = _cli(str(tmp_path), "--base-url", "http://127.0.0.1:9/v1", "--grammar", "xml")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


class _Scripted(QuietHandler):
    """An OpenAI-compatible endpoint that answers from a script: a list of (status, body)."""

    script: ClassVar[list[tuple[int, dict[str, Any]]]] = []
    seen: ClassVar[list[dict[str, Any]]] = []
    delay: ClassVar[float] = 0.0
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            type(self).seen.append({"body": body, "auth": self.headers.get("Authorization")})
            status, answer = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        time.sleep(self.delay)
        send_json(self, answer, status, {"Retry-After": "0"} if status == 429 else None)


#: An answer to every item of a request of 8: a run whose items are all ok.
EVERY_ITEM = "\n".join(f"A[{i}]: positive" for i in range(1, 9))


def _completion(text: str) -> dict[str, Any]:
    return chat_completion(text, prompt_tokens=5, completion_tokens=3)


@pytest.fixture
def scripted() -> Iterator[tuple[str, type[_Scripted]]]:
    handler = type("Handler", (_Scripted,), {"script": [], "seen": []})
    with serving(handler) as url:
        yield url, handler


def test_rate_limit_is_retried_and_server_errors_reported(
    sentiment: Callable[..., Path],
    scripted: tuple[str, type[_Scripted]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, handler = scripted
    build = sentiment(8)
    monkeypatch.setenv("PROMPTC_TEST_KEY", SECRET)
    handler.script = [
        (429, {"error": {"message": "slow down"}}),
        (200, _completion(EVERY_ITEM)),
    ]
    result = run_build(
        build,
        RunOptions(
            base_url=url,
            grammar="none",
            limit=1,
            max_retries=2,
            api_key_env="PROMPTC_TEST_KEY",
            cache_path=tmp_path / "c.sqlite",
            repair=0,
        ),
    )
    assert result.ok and result.sent == 1 and len(handler.seen) == 2
    assert all(s["auth"] == f"Bearer {SECRET}" for s in handler.seen)  # sent, as a header only

    handler.script = [(500, {"error": {"message": f"boom; your key was {SECRET}"}})]
    handler.seen = []
    result = run_build(
        build,
        RunOptions(
            base_url=url,
            grammar="none",
            max_retries=1,
            api_key_env="PROMPTC_TEST_KEY",
            cache_path=tmp_path / "c.sqlite",
            repair=0,
        ),
    )
    assert result.skipped == 1 and result.sent == 0 and result.cached == 0
    assert [f.format() for f in result.failed] == [
        (
            f"request {rid}: server error (HTTP 500: boom; your key was ***) after 2 attempts; "
            "check the server's log; run again to resume"
        )
        for rid in ("r0002", "r0003")
    ]
    assert _files_holding(tmp_path, SECRET) == [] and _files_holding(build, SECRET) == []

    handler.script = [(400, {"error": {"message": "grammar is not a known field"}})]
    result = run_build(
        build,
        RunOptions(
            base_url=url,
            grammar="gbnf",
            limit=1,
            max_retries=3,
            cache_path=tmp_path / "c.sqlite",
            repair=0,
        ),
    )
    assert [f.format() for f in result.failed] == [
        (
            "request r0001: the server rejected the request (HTTP 400: grammar is not a known "
            "field) after 1 attempt; check the model parameters in the spec, or try --grammar none "
            "(the server may not accept a grammar)"
        )
    ]


def test_refused_key_names_the_variable_and_is_never_shown(
    sentiment: Callable[..., Path], scripted: tuple[str, type[_Scripted]], tmp_path: Path
) -> None:
    url, handler = scripted
    build = sentiment(8)
    handler.script = [(401, {"error": {"message": f"Incorrect API key provided: {SECRET}"}})]
    env = {**os.environ, "PROMPTC_WRONG_KEY": SECRET}
    proc = _cli(
        str(build),
        "--base-url",
        url,
        "--grammar",
        "none",
        "--limit",
        "1",
        "--api-key-env",
        "PROMPTC_WRONG_KEY",
        "--cache",
        str(tmp_path / "c.sqlite"),
        env=env,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-3] == (
        "error: request r0001: the server refused the API key (HTTP 401: Incorrect API key "
        "provided: ***) after 1 attempt; check the environment variable PROMPTC_WRONG_KEY"
    )
    assert handler.seen[0]["auth"] == f"Bearer {SECRET}"
    assert SECRET not in proc.stderr + proc.stdout
    assert _files_holding(tmp_path, SECRET) == [] and _files_holding(build, SECRET) == []


def test_ctrl_c_keeps_the_answers_and_says_how_to_resume(
    sentiment: Callable[..., Path], scripted: tuple[str, type[_Scripted]], tmp_path: Path
) -> None:
    url, handler = scripted
    build = sentiment(2)  # 10 requests
    handler.script = [(200, _completion("A[1]: positive\nA[2]: negative"))]
    handler.delay = 0.3
    outputs = build / "outputs.jsonl"
    # A results.jsonl of an earlier run: stale once this run adds answers, so an interrupted
    # run leaves none for eval --results to score.
    (build / "results.jsonl").write_text("", encoding="utf-8")
    proc = subprocess.Popen(
        # Ctrl-C's disposition is inherited: a suite started as `(pytest &)` would hand run an
        # ignored SIGINT (see the next test). This test is about a run that can be interrupted.
        _run_with_sigint("default_int_handler")
        + [
            str(build),
            "--base-url",
            url,
            "--grammar",
            "none",
            "--concurrency",
            "1",
            "--cache",
            str(tmp_path / "c.sqlite"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (outputs.is_file() and outputs.read_text().count("\n") >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (
        "interrupted: every answer received so far is in "
        "outputs.jsonl; run the same command again to resume"
    )
    kept = read_outputs_file(outputs).answers
    assert 2 <= len(kept) < 10
    assert not (build / "results.jsonl").exists()
    handler.delay = 0.0
    result = run_build(
        build, RunOptions(base_url=url, grammar="none", cache_path=tmp_path / "c.sqlite")
    )
    assert result.ok and result.skipped == len(kept) and result.sent == 10 - len(kept)


def test_sigterm_keeps_the_answers_and_the_resume_sends_none_of_them_again(
    sentiment: Callable[..., Path], scripted: tuple[str, type[_Scripted]], tmp_path: Path
) -> None:
    url, handler = scripted
    build = sentiment(2)  # 10 requests
    handler.script = [(200, _completion("A[1]: positive\nA[2]: negative"))]
    handler.delay = 0.3
    outputs = build / "outputs.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "promptc.cli.run", str(build), "--base-url", url]
        + ["--grammar", "none", "--concurrency", "1", "--no-cache"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (outputs.is_file() and outputs.read_text().count("\n") >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM
    kept = read_outputs_file(outputs).answers
    assert 2 <= len(kept) < 10
    handler.delay = 0.0
    before = len(handler.seen)
    result = run_build(build, RunOptions(base_url=url, grammar="none", use_cache=False))
    assert result.ok and result.skipped == len(kept) and result.sent == 10 - len(kept)
    prompts = {r.id: r.messages[-1]["content"] for r in read_requests(build)}
    sent_again = [s["body"]["messages"][-1]["content"] for s in handler.seen[before:]]
    assert len(sent_again) == 10 - len(kept)
    assert not set(sent_again) & {prompts[rid] for rid in kept}


def _run_with_sigint(handler: str) -> list[str]:
    """``python -m promptc.cli.run``, with SIGINT's handler set first (``default_int_handler``
    or ``SIG_IGN``), whatever disposition this process inherited."""
    code = (
        f"import runpy, signal; signal.signal(signal.SIGINT, signal.{handler}); "
        "runpy.run_module('promptc.cli.run', run_name='__main__')"
    )
    return [sys.executable, "-c", code]


def test_a_run_started_with_sigint_ignored_keeps_going_and_says_so(
    sentiment: Callable[..., Path], scripted: tuple[str, type[_Scripted]], tmp_path: Path
) -> None:
    """Started as a script's background job (SIGINT ignored), run keeps that disposition: a
    Ctrl-C meant for the foreground does not stop it, and it says how to stop it."""
    url, handler = scripted
    build = sentiment(2)  # 10 requests
    handler.script = [(200, _completion("A[1]: positive\nA[2]: negative"))]
    handler.delay = 0.1
    outputs = build / "outputs.jsonl"
    proc = subprocess.Popen(
        _run_with_sigint("SIG_IGN")
        + [str(build), "--base-url", url, "--grammar", "none", "--concurrency", "1", "--no-cache"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not (outputs.is_file() and outputs.read_text().count("\n") >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert err.splitlines()[0] == (
        "note: started with SIGINT ignored (a background job of a script?): Ctrl-C will not "
        "stop this run; stop it with kill (SIGTERM) — the answers received stay in outputs.jsonl"
    )
    assert len(read_outputs_file(outputs).answers) == 10


def test_sigterm_ends_a_run_as_ctrl_c_does(
    sentiment: Callable[..., Path], scripted: tuple[str, type[_Scripted]], tmp_path: Path
) -> None:
    """kill (SIGTERM), as docs/run.md says to stop a background run: the answers received are
    kept, the lock file is removed, and a run stopped before any answer leaves no empty
    outputs.jsonl."""
    url, handler = scripted
    build = sentiment(2)  # 10 requests
    handler.script = [(200, _completion("A[1]: positive\nA[2]: negative"))]
    handler.delay = 30.0  # no answer comes before the signal, however slow the machine
    argv = [sys.executable, "-m", "promptc", "run", str(build), "--base-url", url]
    proc = subprocess.Popen(
        [*argv, "--grammar", "none", "--no-cache"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while len(handler.seen) < 1:  # sent, its answer not yet come
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, err  # ended by the signal, after its cleanup
    assert "interrupted: every answer received so far is in outputs.jsonl" in err
    assert sorted(p.name for p in build.iterdir() if "outputs" in p.name) == []


def test_run_parse_reads_an_integer_of_5001_digits_as_malformed(
    spec_dir: Path,
    build_spec: Callable[..., Path],
    scripted: tuple[str, type[_Scripted]],
    tmp_path: Path,
) -> None:
    """Python refuses to convert such an integer; run --parse must not stop part-way on it."""
    url, handler = scripted
    spec = spec_dir / "integer-answers.yaml"
    spec.write_text(
        "promptc: 1\nname: int\ninstruction: Solve.\ninputs: {question: {}}\n"
        "outputs: {answer: {type: integer}}\ndata: {path: data/math.jsonl, id: qid}\n"
        "strategy: {kind: batch, batch_size: 10}\nmodel: {name: m}\n"
    )
    build = build_spec(spec, spec_dir.parent / "integer-build")
    answers = [("9" * 5001 if i == 1 else str(i)) for i in range(1, 11)]
    handler.script = [
        (200, _completion("\n".join(f"A[{i}]: {a}" for i, a in enumerate(answers, 1))))
    ]
    result = run_build(
        build, RunOptions(base_url=url, grammar="none", parse=True, use_cache=False, repair=0)
    )
    # Every request answered; two items malformed (so not result.ok, which needs every item).
    assert not result.failed and result.sent == 2 and result.not_ok == 2
    assert result.results_path is not None
    rows = _lines(result.results_path)
    assert [r["status"] for r in rows] == ["malformed"] + ["ok"] * 9 + ["malformed"] + ["ok"] * 9
    assert rows[0]["expected"] == ["answer: an integer of at most 640 digits"]
    assert rows[1]["values"] == {"answer": 2}


def test_answers_to_changed_requests_are_dropped_and_resent(
    sentiment: Callable[..., Path],
    scripted: tuple[str, type[_Scripted]],
    spec_dir: Path,
    build_spec: Callable[..., Path],
    tmp_path: Path,
) -> None:
    url, handler = scripted
    handler.script = [(200, _completion("A[1]: positive"))]
    build = sentiment(8)
    assert (
        run_build(
            build, RunOptions(base_url=url, grammar="none", limit=1, use_cache=False, repair=0)
        ).sent
        == 1
    )
    build_spec(
        spec_dir / "sentiment.yaml",
        build,
        {  # the same build, another max_tokens
            ("strategy", "kind"): "batch",
            ("strategy", "batch_size"): 8,
            ("strategy", "selection", "method"): "sequential",
            ("model", "max_tokens"): 32,
        },
    )
    assert (build / "outputs.jsonl").is_file()  # a rebuild leaves the answers alone
    again = run_build(
        build, RunOptions(base_url=url, grammar="none", limit=1, use_cache=False, repair=0)
    )
    assert again.dropped_stale == 1 and again.skipped == 0 and again.sent == 1
    assert handler.seen[-1]["body"]["max_tokens"] == 32
    assert [o["id"] for o in _lines(build / "outputs.jsonl")] == ["r0001"]
    assert [o["id"] for o in _lines(build / "outputs.replaced.jsonl")] == ["r0001"]  # kept


def test_openai_is_imported_only_when_a_run_starts(sentiment: Callable[..., Path]) -> None:
    build = sentiment(8)
    code = (
        "import sys\n"
        "import promptc.run.orchestrate, promptc.cli.run\n"
        "assert 'openai' not in sys.modules, 'openai imported too early'\n"
        "sys.modules['openai'] = None  # as if it were not installed\n"
        "from promptc.cli.run import run_command\n"
        "run_command([sys.argv[1], '--base-url', 'http://127.0.0.1:9/v1'])\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(build)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        "error: promptc run needs the openai package, which is not "
        "installed (pip install 'promptc-compiler[openai]')\n"
    )


def test_auto_without_a_model_list_sends_no_grammar(
    sentiment: Callable[..., Path], scripted: tuple[str, type[_Scripted]], tmp_path: Path
) -> None:
    url, handler = scripted  # answers GET /models with 501: no model list
    handler.script = [(200, _completion(EVERY_ITEM))]
    build = sentiment(8)
    result = run_build(
        build, RunOptions(base_url=url, grammar="auto", limit=1, use_cache=False, repair=0)
    )
    assert result.ok and result.grammar == "none"
    assert "grammar" not in handler.seen[0]["body"]
    assert "response_format" not in handler.seen[0]["body"]

    result = run_build(
        build, RunOptions(base_url=url, grammar="json-schema", limit=1, use_cache=False, repair=0)
    )
    assert result.ok and result.grammar == "json_schema" and result.dropped_stale == 1
    assert handler.seen[1]["body"]["response_format"]["type"] == "json_schema"
    assert handler.seen[1]["body"]["response_format"]["json_schema"]["schema"] == json.loads(
        (build / "answer.schema.json").read_text()
    )


@pytest.mark.parametrize("status", [401, 403])
def test_auto_with_a_key_that_may_not_list_models_sends_no_grammar(
    sentiment: Callable[..., Path], status: int
) -> None:
    """A key allowed to chat but not to list models (OpenAI's restricted keys answer GET
    /models 401 "Missing scopes: api.model.read"; a gateway's per-model keys 403) failed every
    request of a default run, none sent, the message blaming the key. llama.cpp's server
    lists its models to any key: such an answer is "not llama.cpp"."""

    class Scoped(_Scripted):
        script: ClassVar[list[tuple[int, dict[str, Any]]]] = [(200, _completion(EVERY_ITEM))]
        seen: ClassVar[list[dict[str, Any]]] = []

        def do_GET(self) -> None:
            error = {"message": "Missing scopes: api.model.read.", "type": "invalid_request_error"}
            send_json(self, {"error": error}, status)

    with serving(Scoped) as url:
        result = run_build(
            sentiment(8),
            RunOptions(base_url=url, grammar="auto", limit=1, use_cache=False, repair=0),
        )
    assert result.ok and result.grammar == "none"
    assert len(Scoped.seen) == 1 and "grammar" not in Scoped.seen[0]["body"]


def test_a_damaged_cache_is_a_usage_error(sentiment: Callable[..., Path], tmp_path: Path) -> None:
    cache = tmp_path / "c.sqlite"
    cache.write_bytes(b"this is not a database" * 100)
    proc = _cli(str(sentiment(8)), "--base-url", "http://127.0.0.1:9/v1", "--cache", str(cache))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr == (
        f"error: {cache}: cannot open the response cache {str(cache)!r}: "
        "file is not a database (pass another --cache path, or --no-cache)\n"
    )


def test_a_cache_another_process_holds_locked_costs_no_wait(tmp_path: Path) -> None:
    """Held locked by another writer (a second run, a backup tool), the cache is a miss and
    an answer left uncached at once: each call runs on the run's event loop, and waiting
    SQLite's default 5 s per call made the requests in flight time out and be bought again."""
    from promptc.run.cache import ResponseCache

    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path)
    assert cache.put("k1", {"output": "A[1]: yes"})
    other = sqlite3.connect(str(path))
    other.execute("BEGIN EXCLUSIVE")
    try:
        start = time.monotonic()
        assert cache.lookup(["k1"]) is None
        assert cache.put("k2", {"output": "A[1]: no"}) is False
        assert time.monotonic() - start < 4  # SQLite's default wait: 5 s for each call
    finally:
        other.rollback()
        other.close()
    assert cache.lookup(["k1"]) == ("k1", {"output": "A[1]: yes"})


def test_failure_table_has_a_check_for_every_kind() -> None:
    assert set(FAILURES) == {
        "connection",
        "cut",
        "timeout",
        "auth",
        "not-found",
        "rate-limit",
        "bad-request",
        "server",
        "bad-response",
        "too-large",
        "reply-too-large",
        "redirect",
        "replayed",
    }
    assert all(what and check for what, check in FAILURES.values())


def test_cache_key_is_canonical_and_holds_no_key(sentiment: Callable[..., Path]) -> None:
    build = sentiment(8)
    request = read_requests(build)[0]
    body = request_body(request, build, "gbnf")
    reordered = dict(reversed(list(body.items())))
    assert cache_key("http://h/v1", body) == cache_key("http://h/v1/", reordered)
    assert cache_key("http://h/v1", body) != cache_key(
        "http://h/v1", request_body(request, build, "none")
    )
    assert cache_key("http://h/v1", body) != cache_key("http://other/v1", body)


def test_openai_batch_builds_are_read_too(sentiment: Callable[..., Path]) -> None:
    chat = read_requests(sentiment(4))
    batch = read_requests(sentiment(4, target="openai-batch"))
    assert [(r.id, r.item_ids, r.grammar) for r in batch] == [
        (r.id, r.item_ids, r.grammar) for r in chat
    ]
    assert [r.messages for r in batch] == [r.messages for r in chat]


def test_torn_last_line_is_cut_before_resuming(tmp_path: Path) -> None:
    path = tmp_path / "outputs.jsonl"
    path.write_text('{"id": "r1", "output": "A[1]: yes"}\n{"id": "r2", "outp')
    assert list(read_outputs_file(path).answers) == ["r1"]
    notes: list[str] = []
    assert list(OutputsFile(path, notes.append).tidy()) == ["r1"]  # as a run starts
    assert path.read_text() == '{"id":"r1","output":"A[1]: yes"}\n'
    # Cut off, but not lost: moved aside as it was, and said.
    assert (tmp_path / "outputs.replaced.jsonl").read_text() == '{"id": "r2", "outp\n'
    assert notes == [
        (
            "1 line(s) of outputs.jsonl are not answers this run can place (unreadable, torn by "
            "an interrupted write, or a second answer for one request); moved to "
            "outputs.replaced.jsonl as they were: line(s) 2"
        )
    ]


def test_auto_demo_questions_are_pinned_in_the_grammar(
    spec_dir: Path, build_spec: Callable[..., Path], tmp_path: Path
) -> None:
    from promptc.spec.lower import compile_spec
    from promptc.values.dialects import gbnf_string

    overrides = {
        ("strategy", "kind"): "auto-demo",
        ("strategy", "batch_size"): 3,
        ("strategy", "selection", "method"): "sequential",
    }
    build = build_spec(spec_dir / "math.yaml", spec_dir.parent / f"pin-{tmp_path.name}", overrides)
    requests = read_requests(build)
    assert requests and all(r.kind.repeats_questions for r in requests)
    for r in requests:
        grammar = request_body(r, build, "gbnf")["grammar"]
        assert '" question ' not in grammar and "question ::=" not in grammar
        prompt = r.messages[-1]["content"].splitlines()
        for i in range(1, len(r.item_ids) + 1):
            # Exactly the question the prompt shows (math questions are one line each).
            question = next(x for x in prompt if x.startswith(f"Q[{i}]: "))[len(f"Q[{i}]: ") :]
            assert (
                f'item-{i} ::= "Q[{i}]: " {gbnf_string(question)} "\\n" "A[{i}]: " answer'
                in grammar.splitlines()
            ), (i, question)
    # The build's own .gbnf (any question) is not what is sent.
    first = requests[0]
    shared = (build / f"{first.grammar}.gbnf").read_text(encoding="utf-8")
    assert request_body(first, build, "gbnf")["grammar"] != shared
    # Other modes do not need the spec.
    assert "grammar" not in request_body(first, build, "none")

    # A build moved away from its spec still pins its questions: the build folder holds its
    # task (task.json, items.jsonl).
    moved = tmp_path / "elsewhere" / "build"
    moved.parent.mkdir()
    build.rename(moved)
    task = compile_spec(spec_dir / "math.yaml", overrides=overrides)
    assert request_body(first, moved, "gbnf") == request_body(first, moved, "gbnf", task=task)
    assert request_body(first, moved, "gbnf", task=task) == request_body(
        first, moved, "gbnf", task=read_task(moved)
    )

    # A spec changed since the build: the grammar would pin questions the prompt does not show.
    from dataclasses import replace

    edited = replace(
        first,
        messages=tuple(
            {**m, "content": m["content"].replace("Q[1]: ", "Q[1]: Edited. ")}
            for m in first.messages
        ),
    )
    with pytest.raises(UsageError) as e:
        request_body(edited, moved, "gbnf", task=task)
    assert e.value.code == "stale-build"
    assert e.value.message == (
        f"request {first.id}: the question of item {first.item_ids[0]} "
        "in the spec is not the one its prompt shows as Q[1]:"
    )
    assert str(e.value.location) == f"{moved / 'requests.jsonl'}:{first.line}"
    unknown = replace(first, item_ids=("no-such-item", *first.item_ids[1:]))
    with pytest.raises(UsageError) as e:
        request_body(unknown, moved, "gbnf", task=task)
    assert (
        e.value.message == f"request {first.id} names item(s) the spec does not have: no-such-item"
    )


def test_a_question_with_surrounding_white_space_is_pinned_as_the_prompt_shows_it(
    tmp_path: Path,
) -> None:
    """Scraped data often ends a value in a line break or a space. The prompt shows the
    question without it, the grammar pins that text (no line the prompt never showed), the
    run sends (no false stale-build), and the repeated question is read as the item's."""
    from promptc.build import build
    from promptc.parse.output import parse_output
    from promptc.spec.lower import compile_spec

    (tmp_path / "d.jsonl").write_text(
        "".join(
            json.dumps({"id": f"i{k}", "text": text}) + "\n"
            for k, text in enumerate(["Great food.", "Slow service.\n", " Cold soup. ", "Ok."])
        ),
        encoding="utf-8",
    )
    (tmp_path / "s.yaml").write_text(
        "promptc: 1\nname: ad\ninstruction: Classify.\ninputs: {review: {type: text}}\n"
        "outputs: {sentiment: {type: enum, choices: [positive, negative, neutral]}}\n"
        "data: {path: d.jsonl, id: id, fields: {review: text}}\n"
        "strategy: {kind: auto-demo, batch_size: 2}\nmodel: {name: m, max_tokens: 200}\n",
        encoding="utf-8",
    )
    task = compile_spec(tmp_path / "s.yaml")
    folder = tmp_path / "b"
    build(task, folder)
    first, second = read_requests(folder)
    assert first.messages[-1]["content"].endswith("Q[1]: Great food.\nQ[2]: Slow service.")
    assert "Q[1]: Cold soup.\nQ[2]: Ok." in second.messages[-1]["content"]
    grammar = request_body(first, folder, "gbnf")["grammar"].splitlines()
    assert 'item-2 ::= "Q[2]: " "Slow service." "\\n" "A[2]: " answer' in grammar
    assert "json_schema" in json.dumps(request_body(second, folder, "json_schema"))
    out = "Q[1]: Cold soup.\nA[1]: negative\nQ[2]: Ok.\nA[2]: neutral"
    results = parse_output(task, second, out, mode="strict")
    assert [(r.item_id, r.status) for r in results] == [("i2", "ok"), ("i3", "ok")]


def test_json_answers_are_read_as_text(spec_dir: Path) -> None:
    from promptc.spec.lower import compile_spec

    task = compile_spec(spec_dir / "math.yaml")
    out = json.dumps(
        {"answers": [{"index": 1, "question": "Q one", "reasoning": "2 + 2 = 4.", "answer": 4}]}
    )
    from promptc.grammar.answer import build_grammar

    g = build_grammar(task, 1, "auto-demo")
    assert g.text_of_json(out, ["Q one"]) == "Q[1]: Q one\nA[1]: 2 + 2 = 4. The answer is 4."
    assert g.text_of_json("not json") is None


# --------------------------------------------------------------------------------------------
# The real model
# --------------------------------------------------------------------------------------------


@pytest.mark.llm
def test_resume_after_the_process_is_killed(
    llm_base_url: str, sentiment: Callable[..., Path], tmp_path: Path
) -> None:
    build = sentiment(2)  # 10 requests of 2 reviews
    outputs = build / "outputs.jsonl"
    env = {**os.environ, "PROMPTC_TEST_KEY": SECRET}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "promptc.cli.run",
            str(build),
            "--base-url",
            llm_base_url,
            "--grammar",
            "gbnf",
            "--concurrency",
            "1",
            "--no-cache",
            "--model",
            MODEL,
            "--api-key-env",
            "PROMPTC_TEST_KEY",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    deadline = time.monotonic() + TIMEOUT
    while not (outputs.is_file() and outputs.read_text().count("\n") >= 1):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # a crash: no chance to clean up
    proc.communicate()
    before = read_outputs_file(outputs).answers
    assert 1 <= len(before) < 10

    result = run_build(
        build,
        RunOptions(
            base_url=llm_base_url,
            grammar="gbnf",
            concurrency=1,
            use_cache=False,
            model=MODEL,
            parse=True,
            timeout=TIMEOUT,
        ),
    )

    assert result.ok, [f.format() for f in result.failed]
    assert result.skipped == len(before) and result.sent == 10 - len(before)
    after = _lines(outputs)
    assert [o["id"] for o in after] == [f"r{k:04d}" for k in range(1, 11)]  # once each, in order
    assert all(o == before[o["id"]] for o in after if o["id"] in before)  # kept as received
    assert result.statuses is not None and sum(result.statuses.values()) == 20
    print(
        f"\nresume: {len(before)} answered before the kill, {result.sent} after; "
        f"statuses {result.statuses}"
    )
    assert _files_holding(build, SECRET) == []


@pytest.mark.llm
def test_cache_answers_when_the_server_is_gone(
    sentiment: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = sentiment(4)
    cache = tmp_path / "cache.sqlite"
    monkeypatch.setenv("PROMPTC_TEST_KEY", SECRET)
    with running_server() as url:
        first = run_build(
            build,
            RunOptions(
                base_url=url,
                grammar="auto",
                limit=2,
                concurrency=2,
                api_key_env="PROMPTC_TEST_KEY",
                cache_path=cache,
                model=MODEL,
                parse=True,
                timeout=TIMEOUT,
            ),
        )
        assert first.ok and first.sent == 2 and first.grammar == "gbnf"
    answers = (build / "outputs.jsonl").read_text()
    (build / "outputs.jsonl").unlink()

    # The server is stopped: every answer must come from the cache, none from the network.
    again = _cli(
        str(build),
        "--base-url",
        url,
        "--grammar",
        "auto",
        "--limit",
        "2",
        "--api-key-env",
        "PROMPTC_TEST_KEY",
        "--cache",
        str(cache),
        "--model",
        MODEL,
        "--parse",
    )
    assert again.returncode == 0, again.stderr
    assert (
        "2/2 requests answered (0 sent, 2 from cache, 0 already in outputs.jsonl)" in again.stderr
    )
    assert (build / "outputs.jsonl").read_text() == answers
    no_cache = run_build(
        build,
        RunOptions(
            base_url=url, grammar="gbnf", limit=3, max_retries=0, use_cache=False, model=MODEL
        ),
    )
    assert no_cache.skipped == 2 and [f.kind for f in no_cache.failed] == ["connection"]

    with sqlite3.connect(cache) as db:
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone() == (2,)
    assert SECRET not in again.stdout + again.stderr
    assert _files_holding(tmp_path, SECRET) == [] and _files_holding(build, SECRET) == []
