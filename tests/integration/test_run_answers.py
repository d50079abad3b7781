"""``promptc run`` never loses an answer it received: whatever characters the answer holds,
whatever else ``outputs.jsonl`` holds, and however slowly a server sends it.

A scripted loopback OpenAI-compatible server (tests/loopback.py: real HTTP, no mocked client)
answers each request with the next text of a script, and counts what it received.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loopback import QuietHandler, chat_completion, send_json, serving
from promptc.run.options import RunOptions
from promptc.run.orchestrate import run_build
from promptc.run.outputs import REPLACED_FILE, read_outputs_file

#: Characters that JSON, UTF-8 or line splitting treat specially: line and paragraph
#: separators and NEL (which str.splitlines splits on and JSON leaves as they are), control
#: characters, lone surrogates (which UTF-8 cannot carry), a byte order mark, quotes.
AWKWARD = '\u2028\u2029\u0085\r\n\x00\x0b\x0c\x1c\x1d\x1e\ud800\udfff\ufeff"\\ é😀'

#: A non-empty answer (an empty one is recorded, and asked again by the next run), its
#: surrogates lone (in JSON, ``"\ud800\udfff"`` is the pair that spells U+103FF).
ANSWER = (
    st.lists(st.one_of(st.sampled_from(AWKWARD), st.text(max_size=4)), min_size=1, max_size=12)
    .map("".join)
    # An answer of white space alone is empty (run.md): never cached, asked again.
    .filter(lambda text: text.strip() and "\ud800\udfff" not in text)
)


class _Scripted(QuietHandler):
    """Answers each chat request with the next text of ``script`` (requests come one at a
    time: the runs below send with concurrency 1)."""

    script: ClassVar[list[str]] = []
    seen: ClassVar[int] = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            text = self.script[type(self).seen % len(self.script)]
            type(self).seen += 1
        send_json(self, chat_completion(text))


@pytest.fixture
def scripted() -> Iterator[tuple[str, type[_Scripted]]]:
    handler = type("Handler", (_Scripted,), {"script": [], "seen": 0})
    with serving(handler) as url:
        yield url, handler


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(answers=st.lists(ANSWER, min_size=3, max_size=3))
def test_awkward_answers_survive_the_outputs_file_resume_and_the_cache(
    sentiment4: Path, scripted: tuple[str, type[_Scripted]], answers: list[str]
) -> None:
    url, handler = scripted
    handler.script, handler.seen = answers, 0
    folder = Path(tempfile.mkdtemp(dir=sentiment4.parent))
    outputs = folder / "outputs.jsonl"
    options = RunOptions(
        base_url=url,
        grammar="none",
        limit=3,
        concurrency=1,
        repair=0,
        cache_path=folder / "cache.sqlite",
        outputs_path=outputs,
    )
    first = run_build(sentiment4, options)
    assert first.sent == 3 and first.answered == 3 and not first.failed
    expected = {f"r000{k}": text for k, text in enumerate(answers, 1)}
    assert {k: v["output"] for k, v in read_outputs_file(outputs).answers.items()} == expected
    written = outputs.read_bytes()
    assert written.count(b"\n") == 3  # one line per answer, whatever the answer holds

    again = run_build(sentiment4, options)  # resumed: everything is already answered
    assert again.skipped == 3 and again.sent == 0 and handler.seen == 3
    assert outputs.read_bytes() == written
    assert not (folder / REPLACED_FILE).exists()

    outputs.unlink()
    cached = run_build(sentiment4, options)  # from the cache, as received
    assert cached.cached == 3 and handler.seen == 3
    assert outputs.read_bytes() == written


def test_lines_a_rewrite_cannot_place_are_moved_aside_and_said(
    sentiment4: Path, scripted: tuple[str, type[_Scripted]], tmp_path: Path
) -> None:
    url, handler = scripted
    handler.script = ["A[1]: positive\nA[2]: negative\nA[3]: neutral\nA[4]: positive"]
    options = RunOptions(base_url=url, grammar="none", limit=2, repair=0, use_cache=False)
    assert run_build(sentiment4, options).sent == 2
    outputs = sentiment4 / "outputs.jsonl"
    answered = outputs.read_text(encoding="utf-8").split("\n")[:-1]
    second = json.loads(answered[1])
    # A line that is no answer, a second answer for r0002, and a torn last line.
    planted = [answered[0], "not json at all", answered[1], json.dumps({**second, "output": "B"})]
    outputs.write_text("\n".join(planted) + '\n{"id": "r0003", "out', encoding="utf-8")
    lines: list[str] = []
    again = run_build(sentiment4, options, progress=lines.append)
    assert again.skipped == 2 and again.sent == 0 and handler.seen == 2
    assert outputs.read_text(encoding="utf-8").split("\n")[:-1] == answered
    aside = (sentiment4 / REPLACED_FILE).read_text(encoding="utf-8").split("\n")[:-1]
    assert aside == [
        "not json at all",
        json.dumps({**second, "output": "B"}),
        '{"id": "r0003", "out',
    ]
    assert lines[0] == (
        "3 line(s) of outputs.jsonl are not answers this run can place (unreadable, torn by "
        "an interrupted write, or a second answer for one request); moved to "
        "outputs.replaced.jsonl as they were: line(s) 2, 4, 5"
    )


class _Trickling(QuietHandler):
    """Answers with a valid completion, one byte every half second."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        data = json.dumps(chat_completion("A[1]: positive")).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            for k in range(len(data)):
                self.wfile.write(data[k : k + 1])
                self.wfile.flush()
                time.sleep(0.5)
        except OSError:  # the client gave up, as it should
            pass


def test_the_timeout_bounds_the_whole_answer_not_each_read(sentiment4: Path) -> None:
    with serving(_Trickling) as url:
        started = time.monotonic()
        result = run_build(
            sentiment4,
            RunOptions(
                base_url=url, grammar="none", limit=1, timeout=1.0, max_retries=0, use_cache=False
            ),
        )
        elapsed = time.monotonic() - started
    assert [f.format() for f in result.failed] == [
        (
            "request r0001: no answer within 1 s after 1 attempt; raise --timeout, lower the "
            "model's max_tokens, or lower --concurrency"
        )
    ]
    assert elapsed < 10  # a byte every 0.5 s would have taken minutes
