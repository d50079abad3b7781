"""Start-up of two promptc installations side by side: ``import promptc`` and ``promptc --help``.

Each installation is named by its virtual environment's ``bin`` folder (holding ``python`` and
``promptc``). The commands run interleaved — A, B, A, B … — so that load on this shared machine
falls on both alike, and the report gives medians, the ratio B/A, and the import time that
``python -X importtime`` attributes to promptc's own modules.

    python bench/bench_startup.py --a /path/to/old/.venv/bin --b .venv/bin --runs 30
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import time
from pathlib import Path


def wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def promptc_import_us(python: Path) -> int:
    """Cumulative microseconds ``-X importtime`` gives ``import promptc`` (its own line)."""
    proc = subprocess.run(
        [str(python), "-X", "importtime", "-c", "import promptc"],
        check=True,
        capture_output=True,
        text=True,
    )
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*promptc$", line)
        if m:
            return int(m.group(1))
    raise RuntimeError("no 'promptc' line in -X importtime output")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--a", type=Path, required=True, help="bin folder of installation A")
    ap.add_argument("--b", type=Path, required=True, help="bin folder of installation B")
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    env_note = f"load average {os.getloadavg()[0]:.1f}"
    cases = {
        "python -c 'import promptc'": lambda b: [str(b / "python"), "-c", "import promptc"],
        "promptc --help": lambda b: [str(b / "promptc"), "--help"],
    }
    print(f"{args.runs} interleaved runs each ({env_note} at start)\n")
    print("| command | A median (ms) | B median (ms) | B / A |")
    print("|---|---:|---:|---:|")
    for name, make in cases.items():
        a_times, b_times = [], []
        for _ in range(args.runs):
            a_times.append(wall(make(args.a)))
            b_times.append(wall(make(args.b)))
        a, b = statistics.median(a_times), statistics.median(b_times)
        print(f"| `{name}` | {a * 1000:.1f} | {b * 1000:.1f} | {b / a:.2f} |")
    a_imp = [promptc_import_us(args.a / "python") for _ in range(args.runs)]
    b_imp = [promptc_import_us(args.b / "python") for _ in range(args.runs)]
    a, b = statistics.median(a_imp), statistics.median(b_imp)
    print(f"| `-X importtime`: promptc (µs, cumulative) | {a:.0f} | {b:.0f} | {b / a:.2f} |")


if __name__ == "__main__":
    main()
