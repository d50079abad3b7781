"""Benchmark: parsing model outputs, in three modes.

Default: 10,000 Auto-Demo outputs of 8 math items with reasoning text, every path timed in
one run (items/s):

- ``baseline``: the Batch Prompting paper's parser — split the output into lines, keep the
  lines that start with ``A[i]:``, apply ``The answer is (.*)``. No types, no alignment, no
  diagnosis;
- ``parse_output``, recover and strict: promptc, which reads these well-formed outputs with the
  grammar's own regex (one match per output), then checks every repeated question against its
  item and types every value;
- ``whole-output regex match only``: :attr:`AnswerGrammar.parse_regex` matched, nothing read —
  the floor of that path;
- ``scanner``: the recover scanner alone (``promptc.parse.recover.parse_recover``: markers
  found, one answer at a time), which outputs the regex does not read take;
- ``lark alone``: the grammar's lark export parsing the output (LALR), which promptc runs only
  to say why an output fails strict parsing.

``--gsm8k PATH`` times instead 8-item ``batch`` outputs built from GSM8K's own reasoning (the
``answer`` field of its test split, calculator annotations ``<<…>>`` removed, lines joined,
lookalikes such as the minus sign U+2212 kept as they occur, then ``The answer is N.``), clean
and messy (markdown bold on every marker and answer number, ``**A[3]:** … The answer is
**18**.``, and one item left out of each output): ``parse_output`` in recover mode against the
bare compiled regex of the Batch Prompting baseline, in interleaved rounds (one round of each,
alternately), so that the noise of a shared machine falls on all alike; items/s is the
median round's, in CPU time.

``--gsm8k PATH --cli`` times whole processes instead, as a user runs them: ``promptc parse`` of
a build of 2,000 such requests and their outputs (a JSON Lines file) into a results file,
against ``bench/extract_answers.py`` (a hand-written script: one regex, one JSON line per
item) on the same outputs file, interleaved; each process's CPU time (user + system), with
the modules' bytecode compiled beforehand, as an installed package has it. With ``--vs
OTHER/compiler``, ``promptc parse`` of that checkout (``PYTHONPATH``) runs in the same rounds,
so that a change is measured before and after under the same load.

Run::

    python bench/bench_parse.py [--outputs 10000] [--lark-outputs 2000] [--seed 0]
    python bench/bench_parse.py --gsm8k /work/shared/data/gsm8k/test.jsonl --outputs 2000 --rounds 15
    python bench/bench_parse.py --gsm8k /work/shared/data/gsm8k/test.jsonl --cli --rounds 5
    python bench/bench_parse.py --gsm8k /work/shared/data/gsm8k/test.jsonl --cli --rounds 9 \
        --vs OTHER_CHECKOUT/compiler

The tasks are compiled from spec files written to a temporary folder, so that the script times
any version of promptc (``PYTHONPATH=other/compiler python bench/bench_parse.py …``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path

import lark
from promptc import markers
from promptc.grammar.answer import build_grammar
from promptc.ir import Task, Value
from promptc.parse.output import parse_output
from promptc.parse.recover import parse_recover
from promptc.parse.shape import RequestShape, request_shape
from promptc.spec.answer_format import write_answer
from promptc.spec.lower import compile_spec

N_ITEMS = 8
WORDS = [
    "apples",
    "oranges",
    "baskets",
    "trays",
    "rolls",
    "pages",
    "days",
    "hours",
    "dollars",
    "friends",
    "cookies",
    "boxes",
    "marbles",
    "pencils",
    "books",
    "tickets",
]
VERBS = ["buys", "sells", "reads", "bakes", "packs", "gives", "loses", "finds", "earns", "spends"]
NAMES = ["Mia", "Sam", "Ana", "Leo", "Ivy", "Noah", "Zoe", "Eli", "Ada", "Max"]

SPEC = """promptc: 1
name: bench-math
instruction: Solve.
inputs:
  question: {{type: text}}
outputs:
  reasoning: {{type: text}}
  answer: {{type: number}}
answer_format: "{{reasoning}} The answer is {{answer}}."
data: {{path: data.jsonl, id: qid}}
strategy: {{kind: {kind}, batch_size: {size}, selection: {{method: sequential}}}}
model: {{name: gpt-4o-mini}}
"""


def write_spec(folder: Path, kind: str, questions: Sequence[str]) -> Path:
    """A spec of ``questions`` in ``folder`` (requests of 8 items), its path."""
    with open(folder / "data.jsonl", "w", encoding="utf-8") as f:
        f.writelines(
            json.dumps({"qid": f"q{k + 1:05d}", "question": q}) + "\n"
            for k, q in enumerate(questions)
        )
    spec = folder / "spec.yaml"
    spec.write_text(SPEC.format(kind=kind, size=N_ITEMS), encoding="utf-8")
    return spec


def make_task(folder: Path, n_items: int, rng: random.Random) -> Task:
    questions = []
    for _ in range(n_items):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        questions.append(
            f"{rng.choice(NAMES)} {rng.choice(VERBS)} {a} {rng.choice(WORDS)} on Monday and "
            f"{b} more on Tuesday. How many {rng.choice(WORDS)} is that in total?"
        )
    return compile_spec(write_spec(folder, "auto-demo", questions))


def shape_of(task: Task, rid: str, item_ids: Sequence[str]) -> RequestShape:
    return request_shape(task, {"id": rid, "kind": str(task.strategy.kind), "item_ids": item_ids})


def reasoning(rng: random.Random) -> str:
    """One to four sentences of arithmetic, like a model's chain of thought."""
    out = []
    for _ in range(rng.randint(1, 4)):
        a, b = rng.randint(1, 500), rng.randint(1, 500)
        out.append(
            f"{rng.choice(NAMES)} has {a} {rng.choice(WORDS)} and gets {b} more, so "
            f"{a} + {b} = {a + b}."
        )
    return " ".join(out)


def make_outputs(
    task: Task, n_outputs: int, rng: random.Random
) -> tuple[list[RequestShape], list[str]]:
    shapes, outputs = [], []
    by_id = {i.id: i for i in task.items}
    for r in range(n_outputs):
        ids = rng.sample(sorted(by_id), N_ITEMS)
        shape = shape_of(task, f"r{r:05d}", ids)
        shapes.append(shape)
        lines = []
        for i, q in enumerate(shape.questions, 1):
            values: dict[str, Value] = {
                "reasoning": reasoning(rng),
                "answer": Decimal(rng.randint(-2000, 200000)) / (10 if rng.random() < 0.2 else 1),
            }
            lines.append(markers.question_marker(i) + markers.MARKER_SEPARATOR + q)
            lines.append(
                markers.answer_marker(i)
                + markers.MARKER_SEPARATOR
                + write_answer(task.answer_format, task.outputs, values)
            )
        outputs.append(markers.ITEM_SEPARATOR.join(lines))
    return shapes, outputs


# The baseline of Batch Prompting (Cheng, Kasai & Yu, 2023): split lines on A[i]: and apply
# "The answer is (.*)". Written as tightly as the paper's idea allows.
_ANSWER_IS = re.compile(r"The answer is (.*)")
_A_LINE = re.compile(r"A\[(\d+)\]:")


def baseline(output: str) -> dict[int, str | None]:
    answers: dict[int, str | None] = {}
    for line in output.split("\n"):
        m = _A_LINE.match(line)
        if m is None:
            continue
        a = _ANSWER_IS.search(line, m.end())
        answers[int(m.group(1))] = a.group(1) if a else None
    return answers


def timed(fn: Callable[[int], object], n: int, repeat: int) -> float:
    """Best wall time of ``repeat`` runs of fn over n outputs (seconds)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for k in range(n):
            fn(k)
        best = min(best, time.perf_counter() - t0)
    return best


def synthetic_main(args: argparse.Namespace, folder: Path) -> int:
    rng = random.Random(args.seed)
    task = make_task(folder, 200, rng)
    shapes, outputs = make_outputs(task, args.outputs, rng)
    grammar = build_grammar(task, N_ITEMS, "auto-demo")
    chars = statistics.mean(len(o) for o in outputs)
    lark_parser = lark.Lark(grammar.lark, parser="lalr", lexer="contextual")

    # Every path must read these outputs fully and agree before it is timed.
    for k in range(min(200, len(outputs))):
        fast = parse_output(task, shapes[k], outputs[k], grammar=grammar)
        slow = parse_recover(shapes[k], grammar, outputs[k])
        assert [r.status for r in fast] == ["ok"] * N_ITEMS, [r.message for r in fast]
        assert fast == slow
        lark_parser.parse(outputs[k])
        base = baseline(outputs[k])
        assert [Decimal(base[i].rstrip(".")) for i in range(1, N_ITEMS + 1)] == [  # type: ignore[union-attr]
            r.values["answer"] for r in fast
        ]

    n, nl = args.outputs, min(args.lark_outputs, args.outputs)
    pattern = re.compile(grammar.parse_regex or "")

    def recover(k: int) -> object:
        return parse_output(task, shapes[k], outputs[k], grammar=grammar)

    def strict(k: int) -> object:
        return parse_output(task, shapes[k], outputs[k], mode="strict", grammar=grammar)

    rows = [
        ("baseline (split lines on A[i]:, 'The answer is (.*)')", n, lambda k: baseline(outputs[k])),
        ("parse_output, recover (the grammar's regex)", n, recover),
        ("parse_output, strict", n, strict),
        ("whole-output regex match only (no values, no results)", n, lambda k: pattern.fullmatch(outputs[k])),
        ("scanner (recover, outputs the regex does not read)", n, lambda k: parse_recover(shapes[k], grammar, outputs[k])),
        ("lark alone (parse only: the strict diagnosis)", nl, lambda k: lark_parser.parse(outputs[k])),
    ]  # fmt: skip
    times = [(name, count, timed(fn, count, args.repeat)) for name, count, fn in rows]
    base_rate = times[0][1] * N_ITEMS / times[0][2]
    print(
        f"{args.outputs} Auto-Demo outputs x {N_ITEMS} items, {chars:.0f} characters each "
        f"on average; Python {sys.version.split()[0]}; best of {args.repeat}"
    )
    print(f"{'path':58} {'outputs':>8} {'items/s':>10} {'x baseline':>10}")
    for name, count, secs in times:
        rate = count * N_ITEMS / secs
        print(f"{name:58} {count:>8} {rate:>10,.0f} {base_rate / rate:>9.2f}x")
    return 0


# --------------------------------------------------------------------------------------------
# GSM8K
# --------------------------------------------------------------------------------------------

_CALC = re.compile(r"<<[^>]*>>")


def gsm8k_solutions(path: str) -> list[tuple[str, str, str]]:
    """(question, reasoning on one line, final answer) of every GSM8K problem in ``path``."""
    solutions = []
    with open(path, encoding="utf-8") as f:
        for line in f.read().split("\n"):
            if not line:
                continue
            row = json.loads(line)
            steps, _, final = row["answer"].rpartition("####")
            text = " ".join(_CALC.sub("", steps).split())
            solutions.append((row["question"], text, final.strip().replace(",", "")))
    return solutions


def gsm8k_outputs(
    solutions: Sequence[tuple[str, str, str]], n_outputs: int, rng: random.Random
) -> list[str]:
    """``n_outputs`` outputs of 8 answers each, GSM8K solutions picked at random."""
    outputs = []
    for _ in range(n_outputs):
        picked = rng.sample(solutions, N_ITEMS)
        outputs.append(
            markers.ITEM_SEPARATOR.join(
                f"{markers.answer_marker(i)} {text} The answer is {final}."
                for i, (_, text, final) in enumerate(picked, 1)
            )
        )
    return outputs


_MARKER_LINE = re.compile(r"^(A\[\d+\]:)", re.MULTILINE)
_FINAL = re.compile(r"The answer is (\S+)\.$", re.MULTILINE)


def messy(output: str, rng: random.Random) -> str:
    """``output`` as a chatty model writes it: markdown bold on each marker and answer number
    (``**A[3]:** … The answer is **18**.``), and one item left out."""
    lines = output.split("\n")
    del lines[rng.randrange(len(lines))]
    text = "\n".join(lines)
    return _FINAL.sub(r"The answer is **\1**.", _MARKER_LINE.sub(r"**\1**", text))


def gsm8k_main(folder: Path, path: str, n_outputs: int, rounds: int, seed: int) -> int:
    """Interleaved rounds: the baseline regex, parse_output (recover) on clean outputs and on
    messy ones, over the same outputs."""
    rng = random.Random(seed)
    solutions = gsm8k_solutions(path)
    clean = gsm8k_outputs(solutions, n_outputs, rng)
    mess = [messy(o, rng) for o in clean]
    task = compile_spec(write_spec(folder, "batch", [q for q, _, _ in solutions[:N_ITEMS]]))
    shape = shape_of(task, "r1", [i.id for i in task.items[:N_ITEMS]])
    grammar = build_grammar(task, N_ITEMS, "batch")
    counts: dict[str, dict[str, int]] = {}
    for name, outputs in (("clean", clean), ("messy", mess)):
        counts[name] = {}
        for o in outputs:
            for r in parse_output(task, shape, o, grammar=grammar):
                counts[name][r.status] = counts[name].get(r.status, 0) + 1
    times: dict[str, list[float]] = {"baseline": [], "clean": [], "messy": []}
    # CPU time of this process: on a shared machine, other jobs' load weighs less than on a
    # wall clock (it still does, through the caches they share).
    clock = time.process_time
    for _ in range(rounds):
        t0 = clock()
        for o in clean:
            baseline(o)
        t1 = clock()
        for o in clean:
            parse_output(task, shape, o, grammar=grammar)
        t2 = clock()
        for o in mess:
            parse_output(task, shape, o, grammar=grammar)
        t3 = clock()
        times["baseline"].append(t1 - t0)
        times["clean"].append(t2 - t1)
        times["messy"].append(t3 - t2)
    items = n_outputs * N_ITEMS
    lookalike = sum(not o.isascii() for o in clean)
    print(
        f"{n_outputs} GSM8K batch outputs x {N_ITEMS} items ({lookalike} with non-ASCII text); "
        f"Python {sys.version.split()[0]}; {rounds} interleaved rounds, median round, CPU time"
    )
    base = statistics.median(times["baseline"])
    for name in ("baseline", "clean", "messy"):
        secs = statistics.median(times[name])
        what = "baseline regex (clean)" if name == "baseline" else f"parse_output, {name}"
        status = "" if name == "baseline" else f"  {counts[name]}"
        print(f"{what:28} {items / secs:>10,.0f} items/s {secs / base:>6.2f}x baseline{status}")
    return 0


def _cpu(argv: Sequence[str], env: dict[str, str], stdout: int | None = None) -> float:
    """The CPU time (user + system) of one run of ``argv``, which must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, stdout=stdout, stderr=subprocess.DEVNULL, env=env, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0, (argv, done.returncode)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cli_main(
    folder: Path, path: str, n_outputs: int, rounds: int, seed: int, vs: str | None = None
) -> int:
    """``promptc parse`` against the hand-written extractor, as whole processes (and
    ``promptc parse`` of the checkout ``vs``, in the same rounds)."""
    rng = random.Random(seed)
    solutions = gsm8k_solutions(path)
    questions = [solutions[k % len(solutions)][0] for k in range(n_outputs * N_ITEMS)]
    extractor = Path(__file__).with_name("extract_answers.py")
    spec = write_spec(folder, "batch", questions)
    build = folder / "build"
    promptc = [sys.executable, "-m", "promptc"]
    subprocess.run([*promptc, "build", str(spec), "-o", str(build)], check=True)
    with open(build / "requests.jsonl", encoding="utf-8") as f:
        ids = [json.loads(line)["id"] for line in f.read().split("\n") if line]
    outputs = folder / "outputs.jsonl"
    with open(outputs, "w", encoding="utf-8") as f:
        f.writelines(
            json.dumps({"id": rid, "output": text}) + "\n"
            for rid, text in zip(ids, gsm8k_outputs(solutions, len(ids), rng))
        )
    parse = [*promptc, "parse", str(build), str(outputs), "-o", str(folder / "results.jsonl")]
    extract = [sys.executable, str(extractor), str(outputs)]
    # As an installed package runs: its modules compiled to bytecode once, before timing (in a
    # cache of this run's own, whatever PYTHONDONTWRITEBYTECODE says).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(folder / "pycache")
    runs: dict[str, tuple[list[str], dict[str, str], int | None]] = {}
    with open(folder / "answers.jsonl", "w") as sink:
        runs["promptc parse"] = (parse, env, None)
        if vs is not None:
            other = [*parse[:-1], str(folder / "results-vs.jsonl")]
            runs["promptc parse (vs)"] = (other, {**env, "PYTHONPATH": vs}, None)
        runs["extractor"] = (extract, env, sink.fileno())
        cpu: dict[str, list[float]] = {name: [] for name in runs}
        for argv, run_env, out in runs.values():
            _cpu(argv, run_env, stdout=out)
        for _ in range(rounds):
            for name, (argv, run_env, out) in runs.items():
                cpu[name].append(_cpu(argv, run_env, stdout=out))
    with open(folder / "results.jsonl", encoding="utf-8") as f:
        n_results = sum(1 for line in f.read().split("\n") if line)
    print(
        f"{len(ids)} GSM8K batch outputs x {N_ITEMS} items ({n_results} results); Python "
        f"{sys.version.split()[0]}; {rounds} interleaved rounds; CPU time (user + system)"
    )
    for name, secs in cpu.items():
        print(
            f"{name:20} median {statistics.median(secs) * 1000:7.0f} ms  best {min(secs) * 1000:7.0f} ms"
        )
    base = statistics.median(cpu["extractor"])
    for name in [n for n in cpu if n != "extractor"]:
        print(f"{name} / extractor: {statistics.median(cpu[name]) / base:.2f}x (medians)")
    if vs is not None:
        same = (folder / "results.jsonl").read_bytes() == (folder / "results-vs.jsonl").read_bytes()
        print(f"results.jsonl of the two checkouts byte-identical: {'yes' if same else 'NO'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--outputs", type=int, default=10_000)
    ap.add_argument("--lark-outputs", type=int, default=2_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gsm8k", help="GSM8K test.jsonl: time outputs built from its reasoning")
    ap.add_argument("--cli", action="store_true", help="with --gsm8k: whole processes")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--vs", help="with --cli: another checkout's compiler/ folder, timed too")
    args = ap.parse_args(argv)
    n = min(args.outputs, 2_000)
    with tempfile.TemporaryDirectory() as tmp:  # the spec and data files the tasks read
        if args.gsm8k and args.cli:
            return cli_main(Path(tmp), args.gsm8k, n, args.rounds, args.seed, args.vs)
        if args.gsm8k:
            return gsm8k_main(Path(tmp), args.gsm8k, n, args.rounds, args.seed)
        return synthetic_main(args, Path(tmp))


if __name__ == "__main__":
    raise SystemExit(main())
