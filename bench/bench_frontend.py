"""Front-end benchmark: compile_spec (load, validate, lower with data) on 10,000-item datasets.

Usage: python bench/bench_frontend.py [N_ITEMS] [REPEATS]

Writes a spec and its data (JSONL, JSON, CSV; ids by row number, column and Jinja expression)
into a temporary folder and reports the best wall time of ``compile_spec`` for each; then times
``load_spec`` on a spec near the 1 MB size limit (thousands of demos) with libyaml's parser events
and with PyYAML's pure-Python parser.
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
import time
from pathlib import Path

from promptc.spec.lower import compile_spec

SPEC = """\
promptc: 1
name: bench
instruction: Solve the problem.
inputs:
  question: {{type: text}}
outputs:
  reasoning: {{type: text}}
  answer: {{type: number}}
answer_format: "{{reasoning}} The answer is {{answer}}."
demos:
  - {{question: "1 + 1?", reasoning: "One and one make two.", answer: 2}}
data: {{path: {path}{id}}}
strategy: {{kind: auto-demo, batch_size: 8}}
model: {{name: m, temperature: 0}}
"""


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    folder = Path(tempfile.mkdtemp(prefix="promptc-bench-"))
    rows = [{"qid": f"q{i}", "question": f"What is {i} + {i * 7 % 13}? " * 3} for i in range(n)]
    (folder / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "data.json").write_text(json.dumps(rows, indent=1))
    with open(folder / "data.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["qid", "question"])
        w.writeheader()
        w.writerows(rows)
    cases = [
        ("jsonl, row-number ids", "data.jsonl", ""),
        ("jsonl, id column", "data.jsonl", ", id: qid"),
        ("jsonl, Jinja id", "data.jsonl", ', id: "{{ row.qid }}-{{ loop_index }}"'),
        ("json array, id column", "data.json", ", id: qid"),
        ("csv, id column", "data.csv", ", id: qid"),
    ]
    print(f"compile_spec on {n} items, best of {repeats}:")
    for label, path, id_ in cases:
        spec = folder / "spec.yaml"
        spec.write_text(SPEC.format(path=path, id=id_))
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            task = compile_spec(spec)
            best = min(best, time.perf_counter() - start)
        assert len(task.items) == n
        print(f"  {label:<24} {best * 1000:8.1f} ms  ({best / n * 1e6:.1f} µs/item)")
    large_spec(folder, repeats)


def large_spec(folder: Path, repeats: int) -> None:
    from promptc.spec import load

    head, tail = SPEC.format(path="data.jsonl", id="").split("data:", 1)
    lines = [head]
    size, i = len(head) + len(tail) + 5, 0
    while size < 950_000:
        demo = (
            f'  - {{question: "What is {i} plus {i}? Think it through.", '
            f'reasoning: "It is {i} + {i}, which is {2 * i}.", answer: {2 * i}}}\n'
        )
        lines.append(demo)
        size += len(demo)
        i += 1
    spec = folder / "large.yaml"
    spec.write_text("".join(lines) + "data:" + tail)
    print(f"load_spec on a {size:,}-byte spec with {i + 1:,} demos, best of {repeats}:")
    fast = load._Loader
    for label, loader in (("libyaml events", fast), ("pure-Python PyYAML", load._PyLoader)):
        load._Loader = loader
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            load.load_spec(spec)
            best = min(best, time.perf_counter() - start)
        print(f"  {label:<24} {best * 1000:8.1f} ms")
    load._Loader = fast


if __name__ == "__main__":
    main()
