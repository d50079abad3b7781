"""Benchmark of ``promptc diff --against`` (issue 11): figures for BENCHMARKS.md.

    python bench/bench_diff.py [--items 10000] [--runs 5]

In a temporary git repository, a spec with its own template (the shipped ``batch.j2``,
copied) and ``--items`` synthetic items is committed; then one word of the template is edited
in the work tree. Measured as whole commands (fresh processes), interleaved round by round so
that the machine's load falls on all alike:

- ``promptc build SPEC -o DIR`` of the edited spec (the baseline);
- ``promptc diff SPEC --against HEAD`` (reads the old spec, template and data from git,
  compiles both sides, compares every request, prints the full diff to /dev/null);
- ``promptc diff SPEC --against HEAD --stat``.

For each: the median wall time, and the median of the per-round ratios to the build.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = """\
promptc: 1
name: bench
instruction: Solve the math word problem. Think step by step, then state the final answer.
inputs:
  question: {type: text}
outputs:
  reasoning: {type: text}
  answer: {type: number}
answer_format: "{reasoning} The answer is {answer}."
demos:
  - question: A baker fills 6 trays with 12 rolls each and sells 50 rolls. How many rolls are left?
    reasoning: 6 * 12 = 72 rolls; 72 - 50 = 22.
    answer: 22
data: {path: data.jsonl, id: qid}
strategy: {kind: batch, batch_size: 8}
templates: {batch: batch.j2}
model: {name: gpt-4o-mini, temperature: 0, max_tokens: 2048}
"""

NAMES = ["Ava", "Ben", "Chloe", "Dev", "Emi", "Farid", "Gus", "Hana", "Ivan", "Jo"]
THINGS = ["apples", "stamps", "marbles", "books", "shells", "cards", "pencils", "coins"]
#: The one-word edit: the shipped template's "Answer every question" → "Answer each question".
EDIT = ("Answer every question", "Answer each question")


def git(repo: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@example.com",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@example.com",
    }
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env=env)


def make_repo(repo: Path, n: int) -> None:
    from promptc.resources import read_template

    (repo / "spec.yaml").write_text(SPEC, encoding="utf-8")
    template = read_template("batch.j2")
    assert EDIT[0] in template, "the edited phrase is gone from batch.j2"
    (repo / "batch.j2").write_text(template, encoding="utf-8")
    with open(repo / "data.jsonl", "w", encoding="utf-8") as f:
        for i in range(n):
            a, b = 3 + i % 17, 2 + i % 9
            name, thing = NAMES[i % len(NAMES)], THINGS[i % len(THINGS)]
            question = (
                f"{name} has {a} boxes of {b} {thing} and gives {i % 5} away. How many are left?"
            )
            f.write(json.dumps({"qid": f"q{i:05d}", "question": question}) + "\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "bench spec")
    (repo / "batch.j2").write_text(template.replace(*EDIT, 1), encoding="utf-8")


def timed(args: list[str], cwd: Path, expect: int) -> float:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "promptc", *args],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != expect:
        raise SystemExit(f"promptc {' '.join(args)}: exit {proc.returncode}: {proc.stderr!r}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    opts = parser.parse_args()
    commands = {
        "build": (["build", "spec.yaml", "-o", "out"], 0),
        "diff --against HEAD": (["diff", "spec.yaml", "--against", "HEAD"], 1),
        "diff --against HEAD --stat": (["diff", "spec.yaml", "--against", "HEAD", "--stat"], 1),
    }
    with tempfile.TemporaryDirectory(prefix="promptc-bench-diff-") as tmp:
        repo = Path(tmp)
        make_repo(repo, opts.items)
        proc = subprocess.run(
            [sys.executable, "-m", "promptc", "diff", "spec.yaml", "--against", "HEAD", "--stat"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=False,
        )
        summary = proc.stdout.strip()
        times: dict[str, list[float]] = {name: [] for name in commands}
        ratios: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(opts.runs):
            round_times = {name: timed(args, repo, code) for name, (args, code) in commands.items()}
            for name, t in round_times.items():
                times[name].append(t)
                ratios[name].append(t / round_times["build"])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"items: {opts.items}, runs: {opts.runs}, load average (1 min) at the end: {load:.2f}")
    print(f"diff summary: {summary}")
    print("| command | median wall time | median ratio to build |")
    print("|---|---|---|")
    for name in commands:
        median = statistics.median(times[name])
        print(f"| `promptc {name}` | {median:.3f} s | {statistics.median(ratios[name]):.2f}× |")


if __name__ == "__main__":
    main()
