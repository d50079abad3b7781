"""Scaling benchmark of ``promptc build`` and ``promptc check`` (issue 13).

    python bench/bench_scale.py [--sizes 1000 10000 100000 1000000] [--runs 3]
    python bench/bench_scale.py --fixed-only [--fixed-runs 21]
    python bench/bench_scale.py --format json --sizes 10000 1000000 --runs 1 --skip-fixed

Builds synthetic specs of 1k, 10k, 100k and 1M items in a temporary folder (each question a
GSM8K test question, read in place from ``../shared/data/gsm8k/test.jsonl``, cycled; ids
unique), auto-demo at batch size 8, and times fresh processes of ``promptc build`` and
``promptc check``: wall time, CPU time (user + system, of that process alone: ``os.wait4``)
and peak RSS (``ru_maxrss``), then the growth per item between sizes.

The fixed-cost part times, interleaved (one run of each in turn, so the machine's load falls
on all alike), ``python -c "import click"`` (the baseline), ``promptc --help`` and
``promptc check`` on the 20-item ``specs/math.yaml``, and reports each as a ratio to the
baseline (median of the per-round ratios).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SPEC = """\
promptc: 1
name: scale
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
  - question: Mia reads 15 pages a day. How many days does she need for a 105-page book?
    reasoning: 105 / 15 = 7.
    answer: 7
data: {path: data.jsonl, id: qid}
strategy: {kind: auto-demo, batch_size: 8}
model: {name: gpt-4o-mini, temperature: 0, max_tokens: 2048}
"""


def find_gsm8k(given: str | None) -> Path:
    if given:
        return Path(given)
    for base in [REPO, *REPO.parents]:
        candidate = base / "shared" / "data" / "gsm8k" / "test.jsonl"
        if candidate.is_file():
            return candidate
    raise SystemExit("GSM8K test.jsonl not found; pass --gsm8k PATH")


def make_spec(folder: Path, n: int, questions: list[str], fmt: str = "jsonl") -> Path:
    """The spec and its data: JSONL (one object a line) or one JSON array of the same rows."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"data.{fmt}", "w", encoding="utf-8") as f:
        if fmt == "json":
            f.write("[\n")
        for i in range(n):
            if fmt == "json" and i:
                f.write(",\n")
            f.write(json.dumps({"qid": f"q{i}", "question": questions[i % len(questions)]}))
            if fmt == "jsonl":
                f.write("\n")
        if fmt == "json":
            f.write("\n]\n")
    spec = folder / "scale.yaml"
    spec.write_text(SPEC.replace("data.jsonl", f"data.{fmt}"), encoding="utf-8")
    return spec


def promptc_command() -> list[str]:
    exe = shutil.which("promptc")
    return [exe] if exe else [sys.executable, "-m", "promptc"]


#: Bytecode is written (an installed package has its .pyc files; timing the compiler of
#: Python on every run would measure the wrong thing).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def measure(cmd: list[str], cwd: Path | None = None) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS in MiB of one process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def scaling(sizes: list[int], runs: int, gsm8k: Path, fmt: str = "jsonl") -> None:
    questions = [json.loads(line)["question"] for line in gsm8k.open(encoding="utf-8")]
    exe = promptc_command()
    rows: list[tuple[str, int, float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="promptc-scale-") as tmp:
        for n in sizes:
            folder = Path(tmp) / f"n{n}"
            spec = make_spec(folder, n, questions, fmt)
            size_mb = (folder / f"data.{fmt}").stat().st_size / 2**20
            print(f"# {n} items, data {size_mb:.1f} MiB", flush=True)
            k = runs if n < 1_000_000 else max(1, min(runs, 2))
            for what, cmd in (
                ("build", [*exe, "build", str(spec), "-o", str(folder / "out")]),
                ("check", [*exe, "check", str(spec)]),
            ):
                got = [measure(cmd) for _ in range(k)]
                wall = statistics.median(g[0] for g in got)
                cpu = statistics.median(g[1] for g in got)
                rss = max(g[2] for g in got)
                rows.append((what, n, wall, cpu, rss))
                print(
                    f"{what:5} {n:>9,} items: wall {wall:7.2f} s  cpu {cpu:7.2f} s  "
                    f"peak RSS {rss:7.1f} MiB  (median of {k})",
                    flush=True,
                )
            shutil.rmtree(folder)
    print()
    print(
        "| command | items | wall s | CPU s | peak RSS MiB | CPU µs/item (vs previous) | RSS bytes/item (vs previous) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for what in ("build", "check"):
        mine = [r for r in rows if r[0] == what]
        for i, (_, n, wall, cpu, rss) in enumerate(mine):
            if i:
                _, n0, _, cpu0, rss0 = mine[i - 1]
                dc = f"{(cpu - cpu0) / (n - n0) * 1e6:.1f}"
                dr = f"{(rss - rss0) * 2**20 / (n - n0):.1f}"
            else:
                dc = dr = "—"
            print(f"| {what} | {n:,} | {wall:.2f} | {cpu:.2f} | {rss:.1f} | {dc} | {dr} |")


def fixed(runs: int) -> None:
    exe = promptc_command()
    spec = REPO / "specs" / "math.yaml"
    commands = {
        "python -c 'import click'": [sys.executable, "-c", "import click"],
        # The floor of any YAML-reading command: PyYAML's import alone (its reader compiles a
        # regular expression over all of Unicode at import).
        "python -c 'import click, yaml'": [sys.executable, "-c", "import click, yaml"],
        "promptc --help": [*exe, "--help"],
        "promptc check specs/math.yaml (20 items)": [*exe, "check", str(spec)],
    }
    base = "python -c 'import click'"
    walls: dict[str, list[float]] = {k: [] for k in commands}
    cpus: dict[str, list[float]] = {k: [] for k in commands}
    for cmd in commands.values():  # warm-up: bytecode written, files in the page cache
        measure(cmd, cwd=REPO)
    for _ in range(runs):
        for name, cmd in commands.items():
            wall, cpu, _ = measure(cmd, cwd=REPO)
            walls[name].append(wall)
            cpus[name].append(cpu)
    print(f"fixed cost, {runs} interleaved rounds")
    for name in commands:
        ratios = [w / b for w, b in zip(walls[name], walls[base], strict=True)]
        cpu_ratios = [c / b for c, b in zip(cpus[name], cpus[base], strict=True)]
        print(
            f"  {name:42} wall median {statistics.median(walls[name]) * 1000:6.1f} ms, "
            f"cpu {statistics.median(cpus[name]) * 1000:6.1f} ms; ratio to baseline: "
            f"wall {statistics.median(ratios):.2f}x, cpu {statistics.median(cpu_ratios):.2f}x"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000, 1_000_000])
    ap.add_argument("--runs", type=int, default=3, help="runs per size (at most 2 for 1M)")
    ap.add_argument("--fixed-runs", type=int, default=21)
    ap.add_argument("--fixed-only", action="store_true")
    ap.add_argument("--skip-fixed", action="store_true")
    ap.add_argument("--gsm8k", default=None, help="path of GSM8K's test.jsonl")
    ap.add_argument(
        "--format", choices=["jsonl", "json"], default="jsonl", help="the data file's form"
    )
    args = ap.parse_args()
    with open("/proc/loadavg", encoding="ascii") as f:
        print(f"load average at start: {f.read().split()[:3]}")
    if not args.fixed_only:
        scaling(args.sizes, args.runs, find_gsm8k(args.gsm8k), args.format)
    if not args.skip_fixed:
        fixed(args.fixed_runs)
    with open("/proc/loadavg", encoding="ascii") as f:
        print(f"load average at end: {f.read().split()[:3]}")


if __name__ == "__main__":
    main()
