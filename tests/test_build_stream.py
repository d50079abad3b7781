"""Builds streamed to disk: bounded memory, every file put in place atomically, and a build
interrupted at any point (even by SIGKILL) leaves the previous build or none — never a manifest
beside files it does not describe."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from promptc.build import MANIFEST_FILE, assemble, build
from promptc.build import files as build_files
from promptc.errors import PromptcError
from promptc.spec.data import ItemTable
from promptc.spec.lower import compile_spec

SPEC = """\
promptc: 1
name: stream
instruction: {instruction}
inputs:
  question: {{type: text}}
outputs:
  reasoning: {{type: text}}
  answer: {{type: number}}
answer_format: "{{reasoning}} The answer is {{answer}}."
data: {{path: data.jsonl, id: qid}}
strategy: {{kind: {kind}, batch_size: 8, selection: {{method: {method}}}}}
model: {{name: m, temperature: 0}}
"""


def make_spec(
    folder: Path,
    n: int,
    *,
    instruction: str = "Solve it.",
    kind: str = "batch",
    method: str = "sequential",
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data.jsonl"
    if not data.exists() or sum(1 for _ in data.open()) != n:
        with data.open("w", encoding="utf-8") as f:
            for i in range(n):
                q = f"Ann has {i} apples and buys {i % 7 + 1} more. How many now? é"
                f.write(json.dumps({"qid": f"q{i}", "question": q}, ensure_ascii=False) + "\n")
    spec = folder / "spec.yaml"
    spec.write_text(
        SPEC.format(instruction=instruction, kind=kind, method=method), encoding="utf-8"
    )
    return spec


def complete_or_none(out: Path) -> str | None:
    """``None`` if the folder holds no complete build, else its manifest's text; fails if a
    manifest is there and a file it lists is missing or differs from its hash."""
    manifest_path = out / MANIFEST_FILE
    if not manifest_path.exists():
        return None
    text = manifest_path.read_text(encoding="utf-8")
    manifest = json.loads(text)
    listed = dict(manifest["files"])
    listed.update((manifest.get("grammar") or {}).get("files", {}))
    for name, sha in listed.items():
        data = (out / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha, f"{name} does not match the manifest"
    lines = (out / "requests.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == manifest["counts"]["requests"]
    return text


@pytest.mark.parametrize("target", ["chat", "openai-batch"])
@pytest.mark.parametrize(("kind", "method"), [("batch", "random"), ("few-shot", "sequential")])
def test_streamed_build_is_the_in_memory_plan(
    tmp_path: Path, target: str, kind: str, method: str
) -> None:
    spec = make_spec(tmp_path, 203, kind=kind, method=method)
    if kind == "few-shot":
        text = spec.read_text(encoding="utf-8")
        demo = "demos:\n  - {question: One plus one?, reasoning: 1 + 1 = 2., answer: 2}\n"
        spec.write_text(text + demo, encoding="utf-8")
    task = compile_spec(spec)
    assert isinstance(task.items, ItemTable)
    planned = assemble(task, target=target)
    built = build(task, tmp_path / "out", target=target)
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in (tmp_path / "out").iterdir()}
    assert on_disk == dict(planned.files)
    assert dict(built.files) == on_disk
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.endswith(".tmp")]
    # The build's requests and manifest are still there to read, without being kept.
    assert len(built.requests) == len(planned.requests)
    assert built.requests[-1] == planned.requests[-1]
    assert list(built.requests)[:3] == list(planned.requests[:3])
    assert built.manifest == planned.manifest
    assert built.summary == planned.summary.replace("stream", "stream") + f" → {tmp_path / 'out'}"


def test_memory_does_not_grow_with_the_items(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python allocations at their peak, for 6,000 and 24,000 items, with the write buffers
    and the caches of recent items made small enough to be full at both sizes: the
    difference is the offset table and the order, a few dozen bytes an item (not the 4 KiB
    an item that holding every request and file in memory took)."""
    monkeypatch.setattr(build_files, "BUFFER_BYTES", 16 << 10)
    monkeypatch.setattr(ItemTable, "CACHE", 256)
    warm = compile_spec(make_spec(tmp_path / "warm", 10, method="random"))
    build(warm, tmp_path / "warm" / "out")  # imports done before anything is traced
    peaks = []
    for n in (6_000, 24_000):
        task = compile_spec(make_spec(tmp_path / str(n), n, method="random"))
        tracemalloc.start()
        build(task, tmp_path / str(n) / "out")
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    per_item = (peaks[1] - peaks[0]) / 18_000
    print(f"{per_item:.1f} bytes per item")
    assert per_item < 64, f"{per_item:.0f} bytes per item"


@pytest.mark.parametrize(
    ("target", "grammar", "kind"),
    [
        ("vllm-batch", "gbnf", "auto-demo"),
        ("vllm-batch", "json-schema", "batch"),
        ("openai-batch", "json-schema", "auto-demo"),
    ],
)
def test_bodies_with_a_constraint_do_not_grow_memory_with_the_items(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, target: str, grammar: str, kind: str
) -> None:
    """A build whose every body carries its request's own grammar (its questions pinned for
    Auto-Demo) reads each request's items by position, as the renderer does: its peak grows
    with the items as a chat build's does (about 90 bytes an item at these sizes), not by
    every item kept for looking them up by id (800 bytes an item here, 1.2 KB for GSM8K)."""
    monkeypatch.setattr(build_files, "BUFFER_BYTES", 16 << 10)
    monkeypatch.setattr(ItemTable, "CACHE", 256)
    warm = compile_spec(make_spec(tmp_path / "warm", 10, kind=kind))
    build(warm, tmp_path / "warm" / "out", target=target, vllm_grammar=grammar)
    peaks = []
    for n in (2_000, 8_000):
        task = compile_spec(make_spec(tmp_path / str(n), n, kind=kind))
        tracemalloc.start()
        build(task, tmp_path / str(n) / "out", target=target, vllm_grammar=grammar)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    per_item = (peaks[1] - peaks[0]) / 6_000
    print(f"{per_item:.1f} bytes per item")
    assert per_item < 200, f"{per_item:.0f} bytes per item"


def test_a_build_that_fails_part_way_leaves_the_previous_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every step of putting files in place, failed in turn: the folder holds the old build
    (whole), or no manifest at all, or the new build (whole)."""
    spec = make_spec(tmp_path, 50)
    old_task = compile_spec(spec)
    make_spec(tmp_path, 50, instruction="Solve it, carefully.")
    new_task = compile_spec(spec)
    out = tmp_path / "out"
    build(new_task, out)
    new = complete_or_none(out)
    steps = len(assemble(new_task).files)  # one rename per file
    real_replace = os.replace
    seen = []
    for fail_at in range(steps + 1):
        build(old_task, out)
        old = complete_or_none(out)
        calls = 0

        def replace(src: object, dst: object, _at: int = fail_at) -> None:
            nonlocal calls
            calls += 1
            if calls > _at:
                raise OSError(28, "No space left on device")
            real_replace(src, dst)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "replace", replace)
        try:
            build(new_task, out)
        except PromptcError as e:
            assert e.code == "out-not-writable"
        finally:
            monkeypatch.setattr(os, "replace", real_replace)
        state = complete_or_none(out)
        seen.append("old" if state == old else "none" if state is None else "new")
        assert state in (old, None, new)
    assert seen == ["none"] * steps + ["new"]


def test_sigkill_mid_build_leaves_the_previous_build_or_none(tmp_path: Path) -> None:
    """A real ``promptc build`` process, killed at several moments of a build that takes
    about half a second: each time the folder holds a complete build or none."""
    n = 10_000
    spec = make_spec(tmp_path, n)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "promptc", "build", str(spec), "-o", str(out)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    full = time.perf_counter() - t0
    last = complete_or_none(out)
    assert last is not None
    outcomes = []
    for fraction in (0.5, 0.75, 0.9):
        make_spec(tmp_path, n, instruction=f"Solve it ({fraction}).")
        coming = assemble(compile_spec(spec)).files[MANIFEST_FILE]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(full * fraction)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        outcomes.append(proc.returncode)
        state = complete_or_none(out)  # asserts the manifest matches its files
        assert state in (None, last, coming)  # none, the last complete build, or this one
        last = state if state is not None else last
    assert -signal.SIGKILL in outcomes  # at least one kill landed mid-build
    # Leftover temporary files are the next build's to remove.
    subprocess.run(cmd, check=True, capture_output=True)
    assert complete_or_none(out) is not None
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_the_output_estimate_streams_the_gold_answers(tmp_path: Path) -> None:
    """The tokens of an answer, as check's output budget and plan estimate them, are the mean
    of the gold answers: summed as the items stream by, not from a list of every gold value
    (about 190 bytes an item, 220 MiB for a million)."""
    peaks = []
    for n in (6_000, 24_000):
        spec = make_spec(tmp_path / str(n), n)
        text = spec.read_text(encoding="utf-8").replace("id: qid}", "id: qid, gold: {answer: n}}")
        spec.write_text(text, encoding="utf-8")
        rows = (tmp_path / str(n) / "data.jsonl").read_text(encoding="utf-8").splitlines()
        with (tmp_path / str(n) / "data.jsonl").open("w", encoding="utf-8") as f:
            f.writelines(json.dumps({**json.loads(r), "n": k}) + "\n" for k, r in enumerate(rows))
        task = compile_spec(spec)
        answer = next(f for f in task.outputs if f.name == "answer")
        assert answer.type.tokens(answer, len, task) == sum(map(len, map(str, range(n)))) / n
        tracemalloc.start()
        answer.type.tokens(answer, len, task)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    per_item = (peaks[1] - peaks[0]) / 18_000
    assert per_item < 16, f"{per_item:.0f} bytes per item"
