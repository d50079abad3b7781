"""Benchmark: strict parsing of 10,000 Auto-Demo outputs of 8 items with reasoning text.

Compares, in one run and on the same outputs:

- promptc's strict parse (``promptc.parse.strict.parse_strict``: the grammar's one regex for
  the whole output, every marker, index, question, literal and typed value checked, values
  normalised, spans with line:col);
- the grammar's lark export parsing alone (LALR, no values read), which promptc runs only to
  say why an output fails;
- the Batch Prompting baseline (Cheng, Kasai & Yu, 2023): split the output into lines, keep
  those starting with ``A[i]:``, apply ``The answer is (.*)`` — it checks nothing else.

Run from the repository root::

    python bench/bench_grammar.py [--outputs 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import re
import time
from decimal import Decimal

from promptc import ir, markers
from promptc.grammar.answer import build_grammar
from promptc.parse.strict import parse_strict
from promptc.spec.answer_format import parse_answer_format, write_answer
from promptc.strategies import AUTO_DEMO
from promptc.values import value_type

WORDS = [
    "so",
    "we",
    "add",
    "the",
    "two",
    "numbers",
    "then",
    "subtract",
    "7",
    "which",
    "gives",
    "the",
    "total",
    "of",
    "apples",
    "left",
]


def math_task() -> ir.Task:
    return ir.Task(
        name="math",
        description="",
        instruction="",
        inputs=(ir.InputField("question"),),
        outputs=(
            ir.OutputField("reasoning", value_type("text")),
            ir.OutputField("answer", value_type("number")),
        ),
        answer_format=parse_answer_format("{reasoning} The answer is {answer}."),
        demos=(),
        data=None,
        items=(),
        strategy=ir.StrategySpec(AUTO_DEMO, 8, ir.Selection()),
        model=ir.ModelConfig("m"),
        templates=(),
        spec=ir.SourceFile("spec.yaml", "0" * 64),
        spec_dir=".",
    )


def outputs(task: ir.Task, n_outputs: int, n_items: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n_outputs):
        lines = []
        for i in range(1, n_items + 1):
            q = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20))) + "?"
            reasoning = " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 40))) + "."
            answer = Decimal(rng.randint(-5000, 5000)) / Decimal(rng.choice([1, 1, 10, 100]))
            body = write_answer(
                task.answer_format, task.outputs, {"reasoning": reasoning, "answer": answer}
            )
            lines.append(f"{markers.question_marker(i)} {q}")
            lines.append(f"{markers.answer_marker(i)} {body}")
        out.append("\n".join(lines))
    return out


BASELINE_ANSWER = re.compile(r"The answer is (.*)")


def baseline(output: str) -> list[str | None]:
    """The Batch Prompting paper's reader: A[i]: lines, then 'The answer is (.*)'."""
    answers: list[str | None] = []
    for line in output.split("\n"):
        if line.startswith("A["):
            m = BASELINE_ANSWER.search(line.split(":", 1)[1])
            answers.append(m.group(1) if m else None)
    return answers


def timed(fn, data, repeat):  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for x in data:
            fn(x)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--outputs", type=int, default=10_000)
    ap.add_argument("--items", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    task = math_task()
    g = build_grammar(task, args.items, "auto-demo")
    data = outputs(task, args.outputs, args.items)
    import lark

    lark_parser = lark.Lark(g.lark, parser="lalr", lexer="contextual")

    def strict(x: str) -> object:
        return parse_strict(g, x)

    for x in data[:200]:
        lark_parser.parse(x)
        assert [str(i.values["answer"]) for i in parse_strict(g, x)] == [
            str(Decimal(a.rstrip(".")))
            for a in baseline(x)  # type: ignore[union-attr]
        ]
    n_items = args.outputs * args.items
    results = {
        "baseline (split + 'The answer is (.*)')": timed(baseline, data, args.repeat),
        "promptc regex check alone (answer.parse.regex match)": timed(
            re.compile(g.parse_regex).fullmatch,
            data,
            args.repeat,  # type: ignore[arg-type]
        ),
        "promptc parse_strict (the regex, values read)": timed(strict, data, args.repeat),
        "lark alone (answer.lark parse, no values)": timed(lark_parser.parse, data, args.repeat),
    }
    base = results["baseline (split + 'The answer is (.*)')"]
    print(f"{args.outputs} outputs x {args.items} items = {n_items} items, best of {args.repeat}")
    print(f"{'reader':48} {'seconds':>8} {'items/s':>10} {'vs baseline':>12}")
    for name, secs in results.items():
        print(f"{name:48} {secs:8.3f} {n_items / secs:10.0f} {secs / base:11.2f}x")


if __name__ == "__main__":
    main()
