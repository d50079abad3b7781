"""Benchmark of the parser's documented bound (issue 12): hostile outputs parse in bounded time.

docs/parsing.md promises that every output parses in under 5 seconds, and that the recover
path's work is linear in the output. This script checks both against a fixed budget — here,
not in a timed test, because the machine is shared and noisy:

1. every adversarial output of ``tests/test_parse_fuzz.py`` (100,000-character runs of markers,
   brackets, digits, fences, lookalikes …) plus 100,000 distinct ``A[i]:`` markers, 20,000
   indices and 50,000 questions without answers, for three answer formats, each strategy kind
   and both modes: the slowest parse must stay under ``--budget`` seconds (default 5);
2. linearity: the recover path on 25,000, 50,000 and 100,000 distinct markers; the time per
   marker must not grow by more than ``--growth`` (default 1.6×) from the smallest to the
   largest, which a quadratic cost (×4) would break.

Run::

    python bench/bench_bounds.py [--budget 5] [--growth 1.6]

Exit status 0 when both hold, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from promptc.parse.output import parse_output
from promptc.spec.lower import compile_spec

SPEC = """\
promptc: 1
name: bounds
instruction: Answer.
inputs:
  question: {{type: text}}
outputs:
{outputs}
answer_format: "{fmt}"
data: {{path: data.jsonl}}
strategy: {{kind: {kind}, batch_size: 4}}
model: {{name: m}}
"""

FORMATS = {
    "math": (
        "  reasoning: {type: text}\n  answer: {type: number}",
        "{reasoning} The answer is {answer}.",
    ),
    "number": ("  answer: {type: number}", "{answer}"),
    "text": ("  answer: {type: text}", "{answer}"),
}
KINDS = ("single", "batch", "auto-demo")

ADVERSARIAL = {
    "answer-marker-100k": "A[1]: " * 17_000,
    "question-answer-markers": "Q[1]: A[1]: " * 9_000,
    "long-line": "x" * 200_000,
    "long-line-spaces": "a " * 100_000,
    "literal-repeated": " The answer is" * 10_000,
    "literal-and-numbers": "The answer is 1 " * 10_000,
    "brackets": "A[" * 60_000,
    "digits-in-marker": "A[" + "9" * 100_000 + "]: 1",
    "emphasis": "**" * 60_000,
    "fences": "```\n" * 30_000,
    "newlines": "\n" * 200_000,
    "many-lines-no-marker": "chatter line\n" * 20_000,
    "markers-then-long-body": "A[1]: " + "y" * 100_000 + "\nA[2]: " + "z " * 50_000,
    "lookalikes": "Ａ［１］：\u00a0" * 20_000,
    "many-indices-20k": "".join(f"A[{i}]: {i}\n" for i in range(1, 20_000)),
    "q-long": "Q[1]: " + "What is it? " * 20_000 + "\nA[1]: ok",
    "distinct-markers-100k": "".join(f"A[{i}]: {i}\n" for i in range(1, 100_001)),
    "orphan-questions-50k": "".join(f"Q[{i}]: what?\n" for i in range(1, 50_001)),
    "digits-answer": "A[1]: " + "9" * 100_000,
}


def task_for(folder: Path, shape: str, kind: str) -> object:
    outputs, fmt = FORMATS[shape]
    path = folder / f"{shape}-{kind}.yaml"
    path.write_text(SPEC.format(outputs=outputs, fmt=fmt, kind=kind), encoding="utf-8")
    return compile_spec(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=5.0)
    ap.add_argument("--growth", type=float, default=1.6)
    args = ap.parse_args()
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "pyproject.toml").write_text("")
        (folder / "data.jsonl").write_text(
            "".join(f'{{"question": "What is {i} + {i}?"}}\n' for i in range(4))
        )
        tasks = {(s, k): task_for(folder, s, k) for s in FORMATS for k in KINDS}
        print(f"load average at start: {os.getloadavg()[0]:.2f}")
        print(f"\n1. slowest parse of each output (budget {args.budget:g} s)\n")
        print("| output | chars | slowest | where |")
        print("|---|---:|---:|---|")
        worst_all = 0.0
        for name, out in ADVERSARIAL.items():
            worst, where = 0.0, ""
            for (shape, kind), task in tasks.items():
                n = 1 if kind == "single" else 4
                request = {
                    "id": "r0001",
                    "kind": kind,
                    "item_ids": [f"{i}" for i in range(1, n + 1)],
                }
                for mode in ("recover", "strict"):
                    t0 = time.perf_counter()
                    parse_output(task, request, out, mode=mode)  # type: ignore[arg-type]
                    elapsed = time.perf_counter() - t0
                    if elapsed > worst:
                        worst, where = elapsed, f"{shape}, {kind}, {mode}"
            worst_all = max(worst_all, worst)
            flag = "" if worst < args.budget else " **over budget**"
            print(f"| {name} | {len(out):,} | {worst:.2f} s{flag} | {where} |", flush=True)
            ok &= worst < args.budget
        print(f"\nslowest of all: {worst_all:.2f} s (budget {args.budget:g} s)")

        print("\n2. recover path, distinct markers: time per marker\n")
        print("| markers | recover | per marker |")
        print("|---:|---:|---:|")
        task = tasks[("math", "batch")]
        request = {"id": "r0001", "kind": "batch", "item_ids": ["1", "2", "3", "4"]}
        per = []
        for n in (25_000, 50_000, 100_000):
            out = "".join(f"A[{i}]: {i}\n" for i in range(1, n + 1))
            best = min(_timed(task, request, out) for _ in range(3))
            per.append(best / n)
            print(f"| {n:,} | {best:.2f} s | {best / n * 1e6:.1f} µs |", flush=True)
        growth = per[-1] / per[0]
        print(
            f"\ngrowth of the time per marker, 25,000 → 100,000: {growth:.2f}× (at most {args.growth:g}×)"
        )
        ok &= growth <= args.growth
        print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print("\nwithin bounds" if ok else "\nOUT OF BOUNDS")
    return 0 if ok else 1


def _timed(task: object, request: dict[str, object], out: str) -> float:
    t0 = time.perf_counter()
    parse_output(task, request, out, mode="recover")  # type: ignore[arg-type]
    return time.perf_counter() - t0


if __name__ == "__main__":
    sys.exit(main())
