"""Benchmark: parse 10,000 Auto-Demo outputs of 8 math items with reasoning text.

Reports items/s, all in one run, for:

- ``baseline``: the Batch Prompting paper's parser — split the output into lines, keep the
  lines that start with ``A[i]:``, apply ``The answer is (.*)``. No types, no alignment, no
  diagnosis;
- ``parse_output``: promptc's default ``recover`` mode, which takes the fast path (one regex
  for the whole output) on these well-formed outputs, then checks every repeated question
  against its item and types every value;
- ``whole-output regex match only``: the check alone, :attr:`AnswerGrammar.parse_regex` matched,
  nothing read — the floor of the fast path;
- ``regex alone`` and ``lark alone``: :meth:`AnswerGrammar.parse_strict_regex` and
  :meth:`AnswerGrammar.parse_strict_lark` (the grammar's two strict parsers, values typed);
- ``scanner``: the recover slow path (marker scanner + one answer at a time), which broken
  outputs take.

Run::

    python bench/bench_parse.py [--outputs 10000] [--lark-outputs 2000] [--seed 0]
    python bench/bench_parse.py --gsm8k /work/shared/data/gsm8k/test.jsonl [--rounds 15]

``--gsm8k`` times instead 8-item ``batch`` outputs built from GSM8K's own reasoning (the
``answer`` field of its test split, calculator annotations ``<<…>>`` removed, lines joined,
lookalikes such as the minus sign U+2212 kept as they occur, then ``The answer is N.``):
``parse_output`` in recover mode against the bare compiled regex of the Batch Prompting
baseline, in interleaved rounds (one round of each, alternately; the median of the per-round
ratios), so that the noise of a shared machine falls on both alike.

``--lark-outputs`` bounds the (slow) lark run; its rate is per item like the others.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from decimal import Decimal

from promptc import markers
from promptc.grammar.answer import build_grammar
from promptc.ir import (
    InputField,
    Item,
    ModelConfig,
    OutputField,
    Selection,
    SourceFile,
    Strategy,
    Task,
    Value,
)
from promptc.parse.output import parse_output, parse_output_recover_slow
from promptc.parse.shape import RequestShape
from promptc.spec.answer_format import parse_answer_format, write_answer
from promptc.values import value_type

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


def make_task(n_items: int, rng: random.Random) -> Task:
    items = []
    for k in range(n_items):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        q = (
            f"{rng.choice(NAMES)} {rng.choice(VERBS)} {a} {rng.choice(WORDS)} on Monday and "
            f"{b} more on Tuesday. How many {rng.choice(WORDS)} is that in total?"
        )
        items.append(Item(f"q{k + 1:04d}", k, {"question": q}))
    return Task(
        name="bench-math",
        description="",
        instruction="Solve.",
        inputs=(InputField("question"),),
        outputs=(
            OutputField("reasoning", value_type("text")),
            OutputField("answer", value_type("number")),
        ),
        answer_format=parse_answer_format("{reasoning} The answer is {answer}."),
        demos=(),
        data=None,
        items=tuple(items),
        strategy=Strategy("auto-demo", N_ITEMS, Selection()),
        model=ModelConfig("m"),
        templates=(),
        spec=SourceFile("bench.yaml", "0" * 64),
        spec_dir=".",
    )


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
        questions = tuple(markers.question_text(task.inputs, by_id[i].inputs) for i in ids)
        shapes.append(RequestShape(f"r{r:05d}", "auto-demo", tuple(ids), questions))
        lines = []
        for i, q in enumerate(questions, 1):
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


_CALC = re.compile(r"<<[^>]*>>")


def gsm8k_outputs(path: str, n_outputs: int, rng: random.Random) -> tuple[Task, list[str]]:
    """A batch task of 8 items and ``n_outputs`` outputs, each 8 GSM8K solutions as answers."""
    import json

    solutions = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            steps, _, final = row["answer"].rpartition("####")
            text = " ".join(_CALC.sub("", steps).split())
            solutions.append((text, final.strip().replace(",", "")))
    task = make_task(N_ITEMS, rng)
    task = Task(**{**task.__dict__, "strategy": Strategy("batch", N_ITEMS, Selection())})
    outputs = []
    for _ in range(n_outputs):
        picked = rng.sample(solutions, N_ITEMS)
        outputs.append(
            markers.ITEM_SEPARATOR.join(
                f"{markers.answer_marker(i)} {text} The answer is {final}."
                for i, (text, final) in enumerate(picked, 1)
            )
        )
    return task, outputs


def gsm8k_main(path: str, n_outputs: int, rounds: int, seed: int) -> int:
    """Interleaved rounds: parse_output (recover) and the baseline regex over the same outputs."""
    rng = random.Random(seed)
    task, outputs = gsm8k_outputs(path, n_outputs, rng)
    shape = RequestShape("r1", "batch", tuple(i.id for i in task.items), ())
    grammar = build_grammar(task, N_ITEMS, "batch")
    # Older promptc called the parse regex AnswerGrammar.regex: time either with this script.
    pattern = re.compile(getattr(grammar, "parse_regex", None) or getattr(grammar, "regex", ""))
    from promptc.parse.fast import parse_fast

    fast = sum(parse_fast(shape, grammar, o) is not None for o in outputs)
    lookalike = sum(not o.isascii() for o in outputs)
    ok = 0
    for o in outputs:
        res = parse_output(task, shape, o, grammar=grammar)
        ok += sum(r.status == "ok" for r in res)
        base = baseline(o)
        assert len(base) == N_ITEMS
    ratios, fulls = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for o in outputs:
            baseline(o)
        t1 = time.perf_counter()
        for o in outputs:
            parse_output(task, shape, o, grammar=grammar)
        t2 = time.perf_counter()
        for o in outputs:
            pattern.fullmatch(o)
        t3 = time.perf_counter()
        ratios.append((t2 - t1) / (t1 - t0))
        fulls.append((t2 - t1) / (t3 - t2))
    items = n_outputs * N_ITEMS
    print(
        f"{n_outputs} GSM8K batch outputs x {N_ITEMS} items ({lookalike} with non-ASCII text, "
        f"{fast} on the fast path, {ok}/{items} items ok); Python {sys.version.split()[0]}; "
        f"{rounds} interleaved rounds"
    )
    print(
        f"parse_output / baseline regex:      median {statistics.median(ratios):.2f}x "
        f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x)"
    )
    print(
        f"parse_output / whole-output match:  median {statistics.median(fulls):.2f}x "
        f"(min {min(fulls):.2f}x, max {max(fulls):.2f}x)"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--outputs", type=int, default=10_000)
    ap.add_argument("--lark-outputs", type=int, default=2_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gsm8k", help="GSM8K test.jsonl: time outputs built from its reasoning")
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args(argv)
    if args.gsm8k:
        return gsm8k_main(args.gsm8k, min(args.outputs, 2_000), args.rounds, args.seed)

    rng = random.Random(args.seed)
    task = make_task(200, rng)
    shapes, outputs = make_outputs(task, args.outputs, rng)
    grammar = build_grammar(task, N_ITEMS, "auto-demo")
    chars = statistics.mean(len(o) for o in outputs)

    # Every path must read these outputs fully and agree before it is timed.
    for k in range(min(200, len(outputs))):
        fast = parse_output(task, shapes[k], outputs[k], grammar=grammar)
        slow = parse_output_recover_slow(task, shapes[k], outputs[k], grammar=grammar)
        assert [r.status for r in fast] == ["ok"] * N_ITEMS, [r.message for r in fast]
        assert fast == slow
        lark_items = grammar.parse_strict_lark(outputs[k])
        assert [dict(i.values) for i in lark_items] == [dict(r.values) for r in fast]
        base = baseline(outputs[k])
        assert [Decimal(base[i].rstrip(".")) for i in range(1, N_ITEMS + 1)] == [  # type: ignore[union-attr]
            r.values["answer"] for r in fast
        ]

    n, nl = args.outputs, min(args.lark_outputs, args.outputs)
    pattern = re.compile(grammar.parse_regex or "")
    rows = [
        (
            "baseline (split lines on A[i]:, 'The answer is (.*)')",
            n,
            timed(lambda k: baseline(outputs[k]), n, args.repeat),
        ),
        (
            "parse_output, recover (fast path)",
            n,
            timed(
                lambda k: parse_output(task, shapes[k], outputs[k], grammar=grammar), n, args.repeat
            ),
        ),
        (
            "parse_output, strict",
            n,
            timed(
                lambda k: parse_output(task, shapes[k], outputs[k], mode="strict", grammar=grammar),
                n,
                args.repeat,
            ),
        ),
        (
            "whole-output regex match only (no values, no results)",
            n,
            timed(lambda k: pattern.fullmatch(outputs[k]), n, args.repeat),
        ),
        (
            "regex alone (AnswerGrammar.parse_strict_regex)",
            n,
            timed(lambda k: grammar.parse_strict_regex(outputs[k]), n, args.repeat),
        ),
        (
            "scanner (recover slow path)",
            n,
            timed(
                lambda k: parse_output_recover_slow(task, shapes[k], outputs[k], grammar=grammar),
                n,
                args.repeat,
            ),
        ),
        (
            "lark alone (AnswerGrammar.parse_strict_lark)",
            nl,
            timed(lambda k: grammar.parse_strict_lark(outputs[k]), nl, 1),
        ),
    ]
    base_rate = rows[0][1] * N_ITEMS / rows[0][2]
    print(
        f"{args.outputs} Auto-Demo outputs x {N_ITEMS} items, {chars:.0f} characters each "
        f"on average; Python {sys.version.split()[0]}; best of {args.repeat}"
    )
    print(f"{'path':58} {'outputs':>8} {'items/s':>10} {'x baseline':>10}")
    for name, count, secs in rows:
        rate = count * N_ITEMS / secs
        print(f"{name:58} {count:>8} {rate:>10,.0f} {base_rate / rate:>9.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
