"""Benchmark of promptc's documented bounds on hostile input: outputs parse, and templates
render, in bounded time and memory.

docs/parsing.md promises that every output parses in under 5 seconds, and that the recover
path's work is linear in the output; docs/templates.md that every template is refused past its
render budget (10 seconds and 256 MiB of memory a message, among others). This script checks
them against a fixed budget — here, not in a timed test, because the machine is shared and noisy:

1. every adversarial output of ``tests/test_parse_fuzz.py`` (100,000-character runs of markers,
   brackets, digits, fences, lookalikes …) plus 100,000 distinct ``A[i]:`` markers, 20,000
   indices and 50,000 questions without answers, for three answer formats, each strategy kind
   and both modes: the slowest parse must stay under ``--budget`` seconds (default 5);
2. linearity: the recover path on 25,000, 50,000 and 100,000 distinct markers; the time per
   marker must not grow by more than ``--growth`` (default 1.6×) from the smallest to the
   largest, which a quadratic cost (×4) would break;
3. Auto-Demo answers whose repeated questions are not the items' own (what a model that skips a
   question writes: each ``Q[i]`` repeats item i+1's question, exactly or with a typo; or a run
   of one letter, as a model caught in a loop writes) over 2,100-character questions, in
   everyday words and in a five-word vocabulary, batches of 16, 32 and 64 in both modes: each
   parse must stay under ``--budget`` and the time per answer must not grow by more than
   ``--growth`` from the smallest batch to the largest;
4. hostile templates (those of ``tests/test_hostile.py``, and loops and joins that only the
   OS-level limits see): ``promptc check`` of each in a fresh process with no memory cap of
   its own must exit 1 with a ``template exceeds the limit of …`` error within
   ``--template-seconds`` (default 15: the 10-second limit and the start-up) and grow its peak
   memory by less than ``--template-mib`` (default 320: the 256 MiB limit and some).

Run::

    python bench/bench_bounds.py [--budget 5] [--growth 1.6] [--part all|parse|templates]

Exit status 0 when every bound holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
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
    # Runs of blank lines inside a repeated question and an answer (a lookahead from each line
    # break of the run made them quadratic in Auto-Demo: 24,000 lines took 7 s).
    "blank-lines-in-question": "Q[1]: x\n" + " \n" * 50_000 + "y\nA[1]: 3",
    "blank-lines-in-answer": "Q[1]: x\nA[1]: So" + " \n" * 50_000 + "so. The answer is 3.",
    "distinct-markers-100k": "".join(f"A[{i}]: {i}\n" for i in range(1, 100_001)),
    "orphan-questions-50k": "".join(f"Q[{i}]: what?\n" for i in range(1, 50_001)),
    "digits-answer": "A[1]: " + "9" * 100_000,
}


#: Hostile templates (a user block's body): those of tests/test_hostile.py, then what only the
#: OS-level limits see (loops over lists and strings, joins that grow).
TEMPLATES = {
    "nested-range-loops": "{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}"
    "{% endfor %}",
    "silent-range-loops": "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}"
    "{% endfor %}",
    "huge-power": "{{ 10 ** 100000000 }}",
    "power-tower": "{% set x = 10 ** 3000 %}{{ x * x * x * x * x * x * x * x * x * x * x }}",
    "string-repetition": "{{ 'x' * 10**10 }}",
    "list-of-lists": "{{ [[1] * 1000000] * 1000000 }}",
    "doubling-concat": '{% set s = "xx" %}' + "{% set s = s ~ s %}" * 40 + "{{ s }}",
    "doubling-namespace": '{% set ns = namespace(s="xx") %}{% for i in range(40) %}'
    "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
    "center-filter": "{{ 'x' | center(10**10) }}",
    "ljust-method": "{{ 'x'.ljust(10**10) }}",
    "replace-blowup": "{{ ('x' * 1000000) | replace('x', 'x' * 1000000) }}",
    "percent-width": "{{ '%10000000000s' % 'x' }}",
    "format-width": "{{ '{:>10000000000}'.format('x') }}",
    "long-message": "{% for i in range(3000) %}{{ 'y' * 1000 }}{% endfor %}",
    "recursive-macro": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(1) }}",
    "self-include": '{% include "my.j2" %}',
    "self-include-without-context": '{% include "my.j2" without context %}',
    "self-import": '{% import "my.j2" as m %}',
    "recursive-loop": "{% set t = [1] %}{% for x in [t, t] recursive %}{{ loop([x, x]) }}"
    "{% endfor %}",
    "deep-source": "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}",
    "silent-list-loops": "{% set xs = range(99999) | list %}"
    "{% for a in xs %}{% for b in xs %}{% endfor %}{% endfor %}",
    "silent-string-loops": "{% for a in 'x' * 1999999 %}{% for b in 'x' * 1999999 %}"
    "{% endfor %}{% endfor %}",
    "growing-join": '{% set ns = namespace(s="") %}{% for i in range(300) %}'
    '{% set ns.s = ns.s ~ ("y" * 1999999) %}{% endfor %}',
}

#: Runs one command in this fresh process and reports its status, first error line, CPU time
#: and how much its peak resident memory grew.
_RUNNER = """
import contextlib, io, json, resource, sys, time
from promptc.cli.app import run
import promptc.render.renderer
before = resource.getrusage(resource.RUSAGE_SELF)
err = io.StringIO()
with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
    status = run(sys.argv[1:])
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
print(json.dumps({"status": status, "error": (err.getvalue().splitlines() or [""])[0],
                  "cpu": cpu, "grown_kib": after.ru_maxrss - before.ru_maxrss}))
"""

TEMPLATE_SPEC = """\
promptc: 1
name: hostile
instruction: Answer.
inputs:
  question: {type: text}
outputs:
  answer: {type: integer}
data: {path: data.jsonl}
strategy: {kind: batch, batch_size: 4}
templates: {batch: my.j2}
model: {name: m}
"""


def template_bounds(args: argparse.Namespace, folder: Path) -> bool:
    """Part 4: each hostile template refused in bounded time and memory."""
    print(
        f"\n4. hostile templates: `promptc check` in a fresh process (at most "
        f"{args.template_seconds:g} s, {args.template_mib:g} MiB of growth)\n"
    )
    print("| template | wall | CPU | peak memory growth | error |")
    print("|---|---:|---:|---:|---|")
    ok = True
    for name, body in TEMPLATES.items():
        case = folder / name
        case.mkdir()
        (case / "my.j2").write_text("{% block user %}\n" + body + "\n{% endblock %}\n")
        (case / "s.yaml").write_text(TEMPLATE_SPEC)
        (case / "data.jsonl").write_bytes((folder / "data.jsonl").read_bytes())
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _RUNNER, "check", f"{name}/s.yaml"],
            cwd=folder,
            capture_output=True,
            text=True,
            check=False,
        )
        wall = time.perf_counter() - t0
        out = json.loads(proc.stdout) if proc.returncode == 0 else None
        if out is None:
            print(f"| {name} | {wall:.2f} s | — | — | **process failed** {proc.returncode} |")
            ok = False
            continue
        mib = out["grown_kib"] / 1024
        error = out["error"].split(": template exceeds the limit of ", 1)[-1]
        refused = "template exceeds the limit of" in out["error"] or "nest deeper" in out["error"]
        held = out["status"] == 1 and refused
        held &= wall < args.template_seconds and mib < args.template_mib
        flag = "" if held else " **out of bounds**"
        print(f"| {name} | {wall:.2f} s | {out['cpu']:.2f} s | {mib:.0f} MiB | {error}{flag} |")
        ok &= held
    return ok


def task_for(folder: Path, shape: str, kind: str) -> object:
    outputs, fmt = FORMATS[shape]
    path = folder / f"{shape}-{kind}.yaml"
    path.write_text(SPEC.format(outputs=outputs, fmt=fmt, kind=kind), encoding="utf-8")
    return compile_spec(path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=5.0)
    ap.add_argument("--growth", type=float, default=1.6)
    ap.add_argument("--template-seconds", type=float, default=15.0)
    ap.add_argument("--template-mib", type=float, default=320.0)
    ap.add_argument("--part", choices=("all", "parse", "templates"), default="all")
    args = ap.parse_args()
    ok = True
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "pyproject.toml").write_text("")
        (folder / "data.jsonl").write_text(
            "".join(f'{{"question": "What is {i} + {i}?"}}\n' for i in range(4))
        )
        if args.part in ("all", "parse"):
            ok &= parse_bounds(args, folder)
        if args.part in ("all", "templates"):
            ok &= template_bounds(args, folder)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print("\nwithin bounds" if ok else "\nOUT OF BOUNDS")
    return 0 if ok else 1


def parse_bounds(args: argparse.Namespace, folder: Path) -> bool:
    """Parts 1 and 2: the slowest parse of each adversarial output, and linearity."""
    ok = True
    tasks = {(s, k): task_for(folder, s, k) for s in FORMATS for k in KINDS}
    print(f"\n1. slowest parse of each output (budget {args.budget:g} s)\n")
    print("| output | chars | slowest | where |")
    print("|---|---:|---:|---|")
    worst_all = 0.0
    for name, out in ADVERSARIAL.items():
        worst, where = 0.0, ""
        for (shape, kind), task in tasks.items():
            n = 1 if kind == "single" else 4
            request = {"id": "r0001", "kind": kind, "item_ids": [f"{i}" for i in range(1, n + 1)]}
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
    return alignment_bounds(args, tasks[("number", "auto-demo")]) and ok and growth <= args.growth


#: Characters of each question of part 3, about a reading passage's.
QUESTION_CHARS = 2_100


def _questions(n: int, vocabulary: int) -> list[str]:
    """``n`` distinct questions of :data:`QUESTION_CHARS` characters, random words of this
    module's docstring: ``vocabulary`` of them, spread over the alphabet."""
    words = sorted(set(re.findall(r"[a-z]{3,}", (__doc__ or "").lower())))
    words = words[:: max(1, len(words) // vocabulary)][:vocabulary]
    rng = random.Random(n * 1000 + vocabulary)
    questions = []
    for _ in range(n):
        text = ""
        while len(text) < QUESTION_CHARS:
            text += rng.choice(words) + " "
        questions.append(text.strip().capitalize() + "?")
    return questions


def _typo(text: str) -> str:
    return text[:100] + "x" + text[101:]


#: Part 3: how each ``Q[i]`` of an output is written, from the request's questions.
MISALIGNED = {
    "next-question": lambda qs, i: qs[i % len(qs)],
    "next-question-typo": lambda qs, i: _typo(qs[i % len(qs)]),
    "one-letter-run": lambda qs, i: "a" * QUESTION_CHARS,
}


def alignment_bounds(args: argparse.Namespace, task: object) -> bool:
    """Part 3: misaligned Auto-Demo answers over long questions: budget and linearity."""
    print(f"\n3. Auto-Demo answers repeating other questions (budget {args.budget:g} s)\n")
    print("| questions | Q[i] | batch | output | slowest | per answer |")
    print("|---|---|---:|---:|---:|---:|")
    ok = True
    growths = []
    for words, vocabulary in (("everyday", 200), ("five words", 5)):
        for name, write in MISALIGNED.items():
            per = []
            for n in (16, 32, 64):
                qs = _questions(n, vocabulary)
                request = {
                    "id": "r0001",
                    "kind": "auto-demo",
                    "item_ids": [f"{i}" for i in range(1, n + 1)],
                    "questions": qs,
                }
                out = "".join(f"Q[{i}]: {write(qs, i)}\nA[{i}]: 1\n" for i in range(1, n + 1))
                worst = 0.0
                for mode in ("recover", "strict"):
                    t0 = time.perf_counter()
                    results = parse_output(task, request, out, mode=mode)  # type: ignore[arg-type]
                    worst = max(worst, time.perf_counter() - t0)
                    ok &= all(r.status == "misaligned" for r in results)
                per.append(worst / n)
                flag = "" if worst < args.budget else " **over budget**"
                print(
                    f"| {words} | {name} | {n} | {len(out):,} | {worst:.2f} s{flag} "
                    f"| {worst / n * 1e3:.1f} ms |",
                    flush=True,
                )
                ok &= worst < args.budget
            growths.append(per[-1] / per[0])
    print(
        f"\nlargest growth of the time per answer, batch 16 → 64: {max(growths):.2f}× "
        f"(at most {args.growth:g}×)"
    )
    return ok and max(growths) <= args.growth


def _timed(task: object, request: dict[str, object], out: str) -> float:
    t0 = time.perf_counter()
    parse_output(task, request, out, mode="recover")  # type: ignore[arg-type]
    return time.perf_counter() - t0


if __name__ == "__main__":
    sys.exit(main())
