"""Reading a build back (``promptc parse``, ``promptc collect``) holds what the readers use of
each request — its shape and its prompt's hash — never the prompts: a build whose prompts are
a hundred times longer is read back in about the same memory."""

from __future__ import annotations

import io
import json
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from promptc.build import build, read_requests
from promptc.cli.parse import run_parse
from promptc.run.collect import collect
from promptc.spec.lower import compile_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"
#: Characters added to every request's prompt (20 requests: 2,000,000 in all).
PADDING = 100_000


def _build(folder: Path, padding: int) -> Path:
    """sentiment.yaml, one request per item (20), the instruction ``padding`` longer."""
    instruction = "Classify the sentiment of each customer review." + " Be careful." * (
        padding // 12
    )
    task = compile_spec(
        SPECS / "sentiment.yaml",
        overrides={("strategy", "kind"): "single", ("instruction",): instruction},
    )
    build(task, folder, target="openai-batch")
    return folder


def _batch_output(folder: Path, path: Path) -> Path:
    """A Batch API output line answering each request ``positive``."""
    with path.open("w", encoding="utf-8") as f:
        for r in read_requests(folder):
            body = {
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "positive"},
                    }
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 1},
            }
            line = {"custom_id": r.id, "response": {"status_code": 200, "body": body}}
            f.write(json.dumps(line) + "\n")
    return path


def _peak(work: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("command", ["parse", "collect"])
def test_reading_a_build_back_holds_no_prompt(tmp_path: Path, command: str) -> None:
    peaks = []
    for padding in (0, PADDING):
        folder = _build(tmp_path / f"b{padding}", padding)
        answers = _batch_output(folder, tmp_path / f"answers{padding}.jsonl")
        prompts = sum(len(m["content"]) for r in read_requests(folder) for m in r.messages)
        if command == "parse":
            out, err = io.StringIO(), io.StringIO()
            peaks.append(
                _peak(
                    lambda f=folder, a=answers, o=out, e=err: run_parse(
                        str(f), str(a), None, "recover", "jsonl", o, e
                    )
                )
            )
            assert out.getvalue().count('"status": "ok"') == 20, err.getvalue()
        else:
            peaks.append(_peak(lambda f=folder, a=answers: collect(f, a)))
            assert (folder / "results.jsonl").read_text().count('"status": "ok"') == 20
    assert prompts > 20 * PADDING
    # One request's prompt at a time (its line, its text, its canonical JSON to hash), not all 20.
    grown = peaks[1] - peaks[0]
    assert grown < prompts / 2, f"{command}: {grown:,} bytes more for {prompts:,} characters"


def test_parse_holds_the_outputs_file_once(tmp_path: Path) -> None:
    """The outputs are read one line at a time from the file's text, its bytes let go once
    decoded: not its bytes, its text and a list of its lines at once (three copies of a file
    that may be gigabytes). At the peak, the bytes and their text while it is decoded."""
    folder = _build(tmp_path / "b", 0)
    answers = _batch_output(folder, tmp_path / "answers.jsonl")
    padded = tmp_path / "padded.jsonl"
    with padded.open("w", encoding="utf-8") as f:
        for line in answers.read_text(encoding="utf-8").splitlines():
            f.write(json.dumps({**json.loads(line), "note": "n" * PADDING}) + "\n")
    grown = padded.stat().st_size - answers.stat().st_size
    peaks = []
    for path in (answers, padded):
        out, err = io.StringIO(), io.StringIO()
        peaks.append(
            _peak(
                lambda p=path, o=out, e=err: run_parse(
                    str(folder), str(p), None, "recover", "jsonl", o, e
                )
            )
        )
        assert out.getvalue().count('"status": "ok"') == 20, err.getvalue()
    held = peaks[1] - peaks[0]
    assert held < 2.5 * grown, f"{held:,} bytes held for a file {grown:,} bytes longer"
