"""Rendering time of this checkout against another, interleaved (issue 18: "render not slower").

    python bench/bench_render.py --vs OTHER_CHECKOUT/compiler [--items 10000] [--rounds 5]

Writes the 10,000-item auto-demo spec of ``bench_build.py`` once, then in each round starts one
fresh process per checkout (this one, then the other, through ``PYTHONPATH``) that compiles the
spec, selects, renders once to warm up and then three times timed; the best of the three is
the round's figure, in CPU time. The ratio is taken round by round, so that a shared machine's
load falls on both alike.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import bench_build

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

ONE = """
import sys, time
from pathlib import Path
from promptc.render.renderer import render
from promptc.select.methods import select
from promptc.spec.lower import compile_spec
task = compile_spec(Path(sys.argv[1]) / "bench.yaml")
selection = select(task)
render(task, selection)
times = []
for _ in range(3):
    t0 = time.process_time()
    render(task, selection)
    times.append(time.process_time() - t0)
print(min(times))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vs", required=True, help="the other checkout's compiler/ folder")
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp())
    bench_build.make_dataset(folder, args.items)
    roots = {"this": str(REPO / "compiler"), "other": args.vs}
    secs: dict[str, list[float]] = {name: [] for name in roots}
    for _ in range(args.rounds):
        for name, root in roots.items():
            done = subprocess.run(
                [sys.executable, "-c", ONE, str(folder)],
                env={**os.environ, "PYTHONPATH": root},
                capture_output=True,
                text=True,
                check=True,
            )
            secs[name].append(float(done.stdout))
    for name, xs in secs.items():
        print(
            f"{name:6} render CPU: median {statistics.median(xs) * 1000:.1f} ms of {len(xs)} rounds"
        )
    ratios = [a / b for a, b in zip(secs["this"], secs["other"])]
    print(f"this / other: {statistics.median(ratios):.3f} (median of per-round ratios)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
