"""Repair answers merged alike by ``promptc run --parse``, ``promptc collect`` and ``promptc
parse``; repair of a retrieval build re-asks only the target items that failed.

A loopback OpenAI-compatible server (the standard library's HTTP server in a thread) serves
``/v1/embeddings`` (so that a real ``retrieval`` build is made without a local model) and
``/v1/chat/completions``, answering each request from the questions it shows by a rule each
test sets, and records what it received.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from loopback import QuietHandler, chat_completion, send_json, serving
from promptc.build import build, read_requests
from promptc.cli.parse import run_parse
from promptc.run.collect import collect
from promptc.run.options import RunOptions
from promptc.run.orchestrate import run_build
from promptc.run.outputs import read_outputs_file
from promptc.spec.lower import compile_spec

SPECS = Path(__file__).resolve().parents[2] / "specs"
QUESTION = re.compile(r"^Q\[(\d+)\]: (.*)$", re.MULTILINE)

#: The questions of a prompt → the answer text.
Rule = Callable[[list[str]], str]


class _Handler(QuietHandler):
    rule: ClassVar[Rule] = staticmethod(lambda qs: "")  # type: ignore[assignment]
    seen: ClassVar[list[dict[str, Any]]] = []
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path.endswith("/embeddings"):
            vectors = []
            for i, text in enumerate(body["input"]):
                digest = hashlib.sha256(text.encode()).digest()
                vectors.append({"index": i, "embedding": [b - 127.5 for b in digest[:8]]})
            send_json(self, {"data": vectors, "model": body["model"]})
            return
        with self.lock:
            type(self).seen.append(body)
        questions = [q for _, q in QUESTION.findall(body["messages"][-1]["content"])]
        send_json(self, chat_completion(type(self).rule(questions)))


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"seen": []})
    with serving(handler) as url:
        yield url, handler


def _retrieval_build(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch, extra: str = ""
) -> Path:
    """specs/sentiment.yaml with retrieval selection (batches of 4, the target last, and
    ``extra`` lines under ``strategy``), embedded by the loopback server."""
    monkeypatch.setenv("PROMPTC_CACHE_DIR", str(tmp_path / "cache"))
    shutil.copytree(SPECS / "data", tmp_path / "data")
    shutil.copy(SPECS / "sentiment.yaml", tmp_path / "sentiment.yaml")
    spec = tmp_path / "ret.yaml"
    spec.write_text(
        "promptc: 1\nextends: sentiment.yaml\nstrategy:\n  kind: batch\n  batch_size: 4\n"
        f"  selection:\n    method: retrieval\n    embeddings: {{url: {url!r}, model: h}}\n"
        + extra,
        encoding="utf-8",
    )
    out = tmp_path / "build"
    build(compile_spec(spec), out)
    return out


def _all_but_last(questions: list[str]) -> str:
    """Answers every question but the last (a request of one question is answered)."""
    keep = len(questions) - 1 if len(questions) > 1 else 1
    return "\n".join(f"A[{i}]: positive" for i in range(1, keep + 1))


def _all_but_first(questions: list[str]) -> str:
    return "\n".join(f"A[{i}]: positive" for i in range(2, len(questions) + 1))


def _run(build_dir: Path, url: str, tmp_path: Path, **kw: Any) -> Any:
    return run_build(
        build_dir,
        RunOptions(
            base_url=url, grammar="none", parse=True, cache_path=tmp_path / "responses.sqlite", **kw
        ),
    )


def test_retrieval_repair_re_asks_only_the_failed_targets(
    server: tuple[str, type[_Handler]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = server
    out = _retrieval_build(tmp_path, url, monkeypatch)
    requests = read_requests(out)
    assert len(requests) == 20 and all(r.target_item == r.item_ids[-1] for r in requests)
    questions = {
        json.loads(line)["id"]: json.loads(line)["question"]
        for line in (out / "items.jsonl").read_text(encoding="utf-8").splitlines()
    }
    # Every target (the last question) is dropped: each is re-asked alone, nothing else is.
    handler.rule = staticmethod(_all_but_last)
    result = _run(out, url, tmp_path, repair=2)
    assert len(handler.seen) == 40
    repairs = handler.seen[20:]
    asked = [[q for _, q in QUESTION.findall(b["messages"][-1]["content"])] for b in repairs]
    # (in any order: four are in flight at once)
    assert sorted(asked) == sorted([questions[r.target_item]] for r in requests if r.target_item)
    assert result.repair_requests == 20 and result.repaired == 20 and result.not_ok == 0
    assert result.items == 20 and result.statuses == {**result.statuses, "ok": 20}
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["item_id"], r["request_id"], r["attempts"]) for r in rows] == [
        (r.target_item, f"{r.id}.repair1", 2) for r in requests
    ]


def test_retrieval_demonstrations_that_fail_are_not_re_asked(
    server: tuple[str, type[_Handler]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = server
    out = _retrieval_build(tmp_path, url, monkeypatch)
    handler.rule = staticmethod(_all_but_first)  # Q[1], a demonstration, is never answered
    result = _run(out, url, tmp_path, repair=2)
    assert len(handler.seen) == 20 and result.repair_requests == 0
    assert result.not_ok == 0 and result.statuses is not None
    assert sum(result.statuses.values()) == 20
    # The first 3 requests are for 3 items, however many demonstrations they show.
    limited = _run(out, url, tmp_path, repair=2, limit=3)
    assert limited.items == 3 and limited.statuses is not None
    assert sum(limited.statuses.values()) == 3 and limited.skipped == 3
    # collect agrees: one result per target, no repair build.
    batch = _batch_lines(out / "outputs.jsonl", [f"r{k:04d}" for k in range(1, 21)])
    collected = collect(out, _write(tmp_path / "batch.jsonl", batch))
    assert collected.not_ok == 0 and collected.repair_dir is None
    assert sum(collected.statuses.values()) == 20


def test_retrieval_votes_ask_each_target_with_other_neighbours_at_other_positions(
    server: tuple[str, type[_Handler]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = server
    out = _retrieval_build(tmp_path, url, monkeypatch, "  vote: {rounds: 3}\n")
    lines = [json.loads(x) for x in (out / "batches.jsonl").read_text().splitlines()]
    assert [x["round"] for x in lines] == [1] * 20 + [2] * 20 + [3] * 20
    seen: dict[str, list[tuple[int, frozenset[str]]]] = {}
    for x in lines:
        ids = x["item_ids"]
        target = ids[x["target"]]
        seen.setdefault(target, []).append((x["target"], frozenset(ids) - {target}))
    assert sorted(seen) == sorted(f"s{k:02d}" for k in range(1, 21))
    for rounds in seen.values():
        assert sorted(p for p, _ in rounds) == [0, 1, 3]  # the last slot, then the first two
        neighbours = [n for _, n in rounds]
        assert all(len(n) == 3 for n in neighbours)
        assert len(frozenset().union(*neighbours)) == 9  # other neighbours every round
    # Round 1 is the build without votes, request for request.
    plain = _retrieval_build(tmp_path / "plain", url, monkeypatch)
    first = (plain / "batches.jsonl").read_text().splitlines()
    assert [{k: v for k, v in x.items() if k != "round"} for x in lines[:20]] == [
        json.loads(x) for x in first
    ]
    handler.rule = staticmethod(
        lambda qs: "\n".join(f"A[{i}]: positive" for i in range(1, len(qs) + 1))
    )
    result = _run(out, url, tmp_path, repair=0)
    assert len(handler.seen) == 60 and result.not_ok == 0
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 20 and all(len(r["rounds"]) == 3 and r["votes"] == 3 for r in rows)


def _batch_lines(outputs_file: Path, ids: list[str]) -> list[dict[str, Any]]:
    """The Batch API output lines of the answers in an outputs.jsonl."""
    outputs = read_outputs_file(outputs_file).answers
    return [
        {
            "id": f"batch_{rid}",
            "custom_id": rid,
            "response": {
                "status_code": 200,
                "body": {
                    "choices": [
                        {
                            "index": 0,
                            "finish_reason": "stop",
                            "message": {"role": "assistant", "content": outputs[rid]["output"]},
                        }
                    ],
                    "usage": outputs[rid]["usage"],
                },
            },
            "error": None,
        }
        for rid in ids
    ]


def _write(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


def _parse_cli(build_dir: Path, outputs: Path) -> str:
    buf, err = io.StringIO(), io.StringIO()
    run_parse(str(build_dir), str(outputs), None, "recover", "jsonl", buf, err)
    return buf.getvalue()


@pytest.mark.parametrize("selection", ["batch", "retrieval"])
def test_run_parse_and_collect_agree_on_answers_with_repairs(
    selection: str,
    server: tuple[str, type[_Handler]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, handler = server
    if selection == "retrieval":
        out = _retrieval_build(tmp_path, url, monkeypatch)
        handler.rule = staticmethod(_all_but_last)
    else:
        out = tmp_path / "build"
        task = compile_spec(
            SPECS / "sentiment.yaml",
            overrides={("strategy", "kind"): "batch", ("strategy", "batch_size"): 4},
        )
        build(task, out)

        def drop_even(questions: list[str]) -> str:
            n = len(questions)
            return "\n".join(f"A[{i}]: positive" for i in range(1, n + 1) if i % 2 or n == 1)

        handler.rule = staticmethod(drop_even)
    result = _run(out, url, tmp_path, repair=2)
    assert result.repair_requests > 0 and result.not_ok == 0
    by_run = (out / "results.jsonl").read_text(encoding="utf-8")
    saved = tmp_path / "run-outputs.jsonl"
    shutil.copy(out / "outputs.jsonl", saved)

    # promptc parse of the run's outputs.jsonl: the same rows, repair answers merged.
    assert _parse_cli(out, saved) == by_run

    # collect, round by round as a Batch API user goes: the build's output, then each repair
    # build's, all given together.
    outputs = read_outputs_file(saved).answers
    ids = [r.id for r in read_requests(out)]
    files = [_write(tmp_path / "batch-0.jsonl", _batch_lines(saved, ids))]
    first = collect(out, files[0])
    rounds = 0
    current = first
    while current.repair_dir is not None:
        rounds += 1
        asked = [r.id for r in read_requests(current.repair_dir)]
        assert all(rid in outputs for rid in asked), asked  # the very requests run sent
        lines = _batch_lines(saved, asked)
        files.append(_write(tmp_path / f"batch-{rounds}.jsonl", lines))
        current = collect(out, *files)
        assert rounds <= 2
    assert current.not_ok == 0
    assert (out / "results.jsonl").read_text(encoding="utf-8") == by_run
    # collect's outputs.jsonl, parsed, says the same again.
    assert _parse_cli(out, out / "outputs.jsonl") == by_run
