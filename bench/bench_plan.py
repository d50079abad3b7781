"""promptc plan on GSM8K test (1,319 items): single, few-shot (8 demos), batch and auto-demo at
4, 8, 16 and 32 — tokens per question beside the floor, and plan's own wall time for the grid.

    python bench/bench_plan.py [PATH_TO_GSM8K_TEST_JSONL]   (default ../shared/data/gsm8k/test.jsonl)

The data stay outside the project. Runs the grid 3 times in this process (the tokenizer's
memo is dropped between runs) and reports the median wall time, plus one cold run of the
``promptc plan`` command itself (process start-up and imports included).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "specs" / "gsm8k.yaml"
SIZES = "4,8,16,32"


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared/data/gsm8k/test.jsonl"
    if not data.is_file():
        data = REPO.parents[1] / "shared/data/gsm8k/test.jsonl"
    from promptc.plan.estimate import plan_spec
    from promptc.plan.variants import parse_batch_sizes, variants

    grid = variants(("single", "few-shot", "batch", "auto-demo"), parse_batch_sizes(SIZES))
    times = []
    plan = None
    for _ in range(3):
        started = time.perf_counter()
        plan = plan_spec(str(SPEC), grid, data=str(data))
        times.append(time.perf_counter() - started)
    assert plan is not None
    print(f"GSM8K test, {plan.items} items; tokenizer {plan.tokenizer}")
    print("| variant | requests | input tok/q | output tok/q | floor tok/q | (in+out) / floor |")
    print("|---|---:|---:|---:|---:|---:|")
    for v in plan.variants:
        out = ("≤" if v.bounded else "~") + f"{v.output_per_question:.1f}"
        ratio = (v.input_per_question + v.output_per_question) / v.floor_per_question
        print(
            f"| {v.variant.name} | {v.requests} | {v.input_per_question:.1f} | {out} | "
            f"{v.floor_per_question:.1f} | {ratio:.2f} |"
        )
    print(
        f"plan_spec for the grid of {len(grid)} variants: median {statistics.median(times):.2f} s "
        f"(runs: {', '.join(f'{t:.2f}' for t in times)})"
    )
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "promptc",
            "plan",
            str(SPEC),
            "--data",
            str(data),
            "--batch-sizes",
            SIZES,
            "--format",
            "json",
        ],
        check=True,
        capture_output=True,
    )
    print(f"promptc plan command (cold process): {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
