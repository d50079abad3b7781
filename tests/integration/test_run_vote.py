"""Voting across permutations against a scripted server whose errors are known.

The loopback server answers each boolean question correctly except with probability ``P``,
drawn independently per item and request (a hash of the question and of the request's text,
which differs every round: each round deals the items to other positions and neighbours).
Over 5 rounds, the majority is right when at least 3 answers are: the binomial gives the
expected accuracy, held here within a band of 4 standard errors of the sample. With early
stop the expectation is enumerated over every sequence of right and wrong answers under the
stopping rule, as are the asks it saves.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from loopback import QuietHandler, chat_completion, send_json, serving
from promptc.build import build
from promptc.run.options import RunOptions
from promptc.run.orchestrate import run_build
from promptc.spec.lower import compile_spec

P = 0.3  # the chance that one answer is wrong
ITEMS = 400
SIZE = 8
ROUNDS = 5
QUESTION = re.compile(r"^Q\[(\d+)\]: (.*)$", re.MULTILINE)
SPEC = """\
promptc: 1
name: parity
instruction: Say whether the number is even.
inputs:
  question: {type: text}
outputs:
  answer: {type: boolean}
data: {path: items.jsonl, id: id, fields: {question: question}, gold: {answer: even}}
strategy: {kind: batch, batch_size: %d, vote: %s}
model: {name: m, temperature: 0, max_tokens_per_item: 8}
"""


def _gold(question: str) -> bool:
    return int(question.split()[-1]) % 2 == 0


def _wrong(question: str, prompt: str) -> bool:
    digest = hashlib.sha256(f"{prompt}\0{question}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < P


class _Noisy(QuietHandler):
    asked: ClassVar[list[int]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        found = QUESTION.findall(prompt)
        type(self).asked.append(len(found))
        lines = []
        for k, question in found:
            right = _gold(question)
            said = right != _wrong(question, prompt)
            lines.append(f"A[{k}]: {'yes' if said else 'no'}")
        send_json(self, chat_completion("\n".join(lines)))


@pytest.fixture
def noisy() -> Iterator[tuple[str, type[_Noisy]]]:
    handler = type("Handler", (_Noisy,), {"asked": []})
    with serving(handler) as url:
        yield url, handler


def _built(tmp_path: Path, vote: str) -> Path:
    folder = tmp_path / "spec"
    folder.mkdir()
    (folder / "items.jsonl").write_text(
        "".join(
            json.dumps({"id": f"n{i:03d}", "question": f"Is it even: {i}", "even": i % 2 == 0})
            + "\n"
            for i in range(ITEMS)
        )
    )
    spec = folder / "parity.yaml"
    spec.write_text(SPEC % (SIZE, vote))
    out = tmp_path / "build"
    build(compile_spec(spec), out)
    return out


def _expected(early_stop: int | None) -> tuple[float, float]:
    """The vote's accuracy and the asks per item, enumerated over every sequence of right
    (True) and wrong answers: rounds stop once the last ``early_stop`` agree; the majority
    wins, a tie going to the earliest round's answer."""
    accuracy = asks = 0.0
    for seq in itertools.product((True, False), repeat=ROUNDS):
        chance = math.prod(1 - P if right else P for right in seq)
        n = ROUNDS
        if early_stop is not None:
            for k in range(early_stop, ROUNDS + 1):
                if len(set(seq[k - early_stop : k])) == 1:
                    n = k
                    break
        got = seq[:n]
        right, wrong = got.count(True), got.count(False)
        won = right > wrong or (right == wrong and got[0])
        accuracy += chance * won
        asks += chance * n
    return accuracy, asks


def _accuracy(build_dir: Path) -> tuple[float, float, list[dict[str, Any]]]:
    rows = [json.loads(x) for x in (build_dir / "results.jsonl").read_text().splitlines()]
    assert len(rows) == ITEMS and all(r["status"] == "ok" for r in rows)

    def right(value: object, item: str) -> bool:
        return value == (int(item[1:]) % 2 == 0)

    voted = sum(right(r["values"]["answer"], r["item_id"]) for r in rows) / ITEMS
    first = sum(right(r["rounds"][0]["values"]["answer"], r["item_id"]) for r in rows) / ITEMS
    return voted, first, rows


def _options(url: str, tmp_path: Path, **kw: Any) -> RunOptions:
    return RunOptions(
        base_url=url, grammar="none", parse=True, repair=0, cache_path=tmp_path / "c.db", **kw
    )


def _band(p: float) -> float:
    return 4 * math.sqrt(p * (1 - p) / ITEMS)


def test_five_rounds_raise_accuracy_as_the_binomial_says(
    noisy: tuple[str, type[_Noisy]], tmp_path: Path
) -> None:
    url, handler = noisy
    folder = _built(tmp_path, f"{{rounds: {ROUNDS}}}")
    result = run_build(folder, _options(url, tmp_path))
    voted, first, rows = _accuracy(folder)
    expected, asks = _expected(None)
    assert expected == pytest.approx(
        sum(math.comb(5, k) * (1 - P) ** k * P ** (5 - k) for k in (3, 4, 5))
    )  # 0.837 for P = 0.3
    assert abs(first - (1 - P)) < _band(1 - P)
    assert abs(voted - expected) < _band(expected)
    assert voted > first + 0.05
    assert len(handler.asked) == ROUNDS * ITEMS // SIZE == result.sent and asks == ROUNDS
    assert [r["round"] for r in rows[0]["rounds"]] == [1, 2, 3, 4, 5]
    assert all(1 <= r["votes"] <= ROUNDS for r in rows)
    assert result.ok and result.early_stopped == 0


def test_early_stop_saves_asks_and_keeps_the_expected_accuracy(
    noisy: tuple[str, type[_Noisy]], tmp_path: Path
) -> None:
    url, handler = noisy
    folder = _built(tmp_path, f"{{rounds: {ROUNDS}, early_stop: 2}}")
    # Without the cache: a stand-in asking one item is the same prompt in every round, and
    # the server is to count every ask.
    result = run_build(folder, _options(url, tmp_path, use_cache=False))
    voted, first, rows = _accuracy(folder)
    expected, asks = _expected(2)
    assert abs(voted - expected) < _band(expected)
    assert voted > first + 0.03
    per_item = sum(handler.asked) / ITEMS
    # Asks per item: 2 rounds at least; the enumeration's mean, within 4 standard errors
    # (each item's asks lie in 2..5, so their spread is at most 1.5).
    assert abs(per_item - asks) < 4 * 1.5 / math.sqrt(ITEMS)
    assert per_item < 0.75 * ROUNDS  # the saving
    assert sum(len(r["rounds"]) for r in rows) == sum(handler.asked)
    assert result.early_stop_asks == ROUNDS * ITEMS - sum(handler.asked)
    assert len(handler.asked) + result.early_stopped == ROUNDS * ITEMS // SIZE
    assert result.ok
    # promptc parse of the same answers gives the same results, and names no request early
    # stop left unsent as one without an answer.
    before = (folder / "results.jsonl").read_text(encoding="utf-8")
    parsed = tmp_path / "parsed.jsonl"
    argv = ["parse", str(folder), str(folder / "outputs.jsonl"), "-o", str(parsed)]
    proc = subprocess.run(
        [sys.executable, "-m", "promptc", *argv], capture_output=True, text=True, check=False
    )
    assert proc.returncode in (0, 1), proc.stderr  # 1: an item the vote got wrong is still ok
    assert "have no output" not in proc.stderr
    assert parsed.read_text(encoding="utf-8") == before
    # Every request answered counts, stand-ins included: as many as the server was asked.
    assert f"results from {len(handler.asked)} request(s)" in proc.stderr, proc.stderr
    # Run again: every answer is kept, stand-ins' too (each is the answer to the very
    # request the vote makes of the same items): nothing is sent or moved aside.
    asked = len(handler.asked)
    again = run_build(folder, _options(url, tmp_path, use_cache=False))
    assert again.sent == 0 and len(handler.asked) == asked
    assert not (folder / "outputs.replaced.jsonl").exists()
    assert (folder / "results.jsonl").read_text(encoding="utf-8") == before
