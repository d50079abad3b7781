"""One answer, every path: whatever characters a model's answer holds (line and paragraph
separators, NEL, control characters, lone surrogates, a BOM), ``run --parse``, ``promptc
parse`` of the outputs run wrote, and ``collect`` of the same answer from a Batch API file
give the same results, and the answer is on disk, whole, after each (docs/run.md promises
the same results).
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loopback import QuietHandler, chat_completion, send_json, serving
from promptc.cli.parse import run_parse
from promptc.run.collect import collect
from promptc.run.options import RunOptions
from promptc.run.orchestrate import run_build
from promptc.run.outputs import read_outputs_file

SPECS = Path(__file__).resolve().parents[2] / "specs"
AWKWARD = '\u2028\u2029\u0085\r\n\x00\x0b\x1c\x1e\ud800\udfff\ufeff"\\ é😀'
#: A piece of an answer: awkward characters, any text, or an answer line's parts.
PIECE = st.one_of(
    st.sampled_from(AWKWARD),
    st.text(max_size=4),
    st.sampled_from(["A[1]: ", "A[2]: ", "A[3]: ", "A[4]: ", "positive", "neutral", "\n"]),
)
ANSWER = (
    st.lists(PIECE, min_size=1, max_size=16)
    .map("".join)
    .filter(lambda text: text.strip() and "\ud800\udfff" not in text)
)


class _One(QuietHandler):
    text: ClassVar[str] = ""
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        send_json(self, chat_completion(type(self).text))


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, type[_One]]]:
    handler = type("Handler", (_One,), {"text": ""})
    with serving(handler) as url:
        yield url, handler


@pytest.fixture(scope="module")
def builds(
    tmp_path_factory: pytest.TempPathFactory, build_spec: Callable[..., Path]
) -> tuple[Path, Path]:
    overrides = {("strategy", "kind"): "batch", ("strategy", "batch_size"): 4}
    root = tmp_path_factory.mktemp("paths")
    chat = build_spec(SPECS / "sentiment.yaml", root / "chat", overrides)
    from promptc.build import build
    from promptc.spec.lower import compile_spec

    batch = root / "batch"
    build(compile_spec(SPECS / "sentiment.yaml", overrides=overrides), batch, target="openai-batch")
    return chat, batch


def _rows(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.split("\n") if line]


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(answer=ANSWER)
def test_one_answer_reads_the_same_through_run_parse_and_collect(
    builds: tuple[Path, Path], server: tuple[str, type[_One]], answer: str
) -> None:
    url, handler = server
    handler.text = answer
    work = Path(tempfile.mkdtemp())
    try:
        chat, batch = (shutil.copytree(b, work / b.name) for b in builds)
        options = RunOptions(
            base_url=url, grammar="none", limit=1, repair=0, parse=True, use_cache=False
        )
        result = run_build(chat, options)
        assert result.answered == 1 and not result.failed
        outputs = read_outputs_file(chat / "outputs.jsonl")
        assert outputs.answers["r0001"]["output"] == answer and not outputs.unplaced
        by_run = _rows((chat / "results.jsonl").read_text(encoding="utf-8"))
        assert [r["item_id"] for r in by_run] == ["s01", "s02", "s03", "s04"]

        out, err = io.StringIO(), io.StringIO()
        run_parse(str(chat), str(chat / "outputs.jsonl"), None, "recover", "jsonl", out, err)
        by_parse = _rows(out.getvalue())
        assert [{k: v for k, v in r.items() if k != "attempts"} for r in by_parse] == [
            {k: v for k, v in r.items() if k != "attempts"} for r in by_run
        ]

        body = chat_completion(answer)
        line = {"custom_id": "r0001", "response": {"status_code": 200, "body": body}}
        files = work / "batch-output.jsonl"
        files.write_text(json.dumps(line) + "\n", encoding="utf-8")
        collect(batch, files, repair_dir=work / "repair")
        collected = read_outputs_file(batch / "outputs.jsonl").answers
        assert collected["r0001"]["output"] == answer
        by_collect = [
            r
            for r in _rows((batch / "results.jsonl").read_text(encoding="utf-8"))
            if r["request_id"] == "r0001"
        ]
        assert by_collect == by_run
    finally:
        shutil.rmtree(work, ignore_errors=True)
