"""Running promptc commands on hostile input under a memory cap and a time budget.

:func:`run_capped` starts one Python process whose address space is capped
(``resource.setrlimit(RLIMIT_AS)``, first thing), runs every command line given through
:func:`promptc.cli.app.run` in it, and reports each one's exit status, stdout, stderr and
time. One process for many cases keeps the tests fast; the cap holds for all of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

#: The address space every hostile case runs in. promptc with its light imports needs about
#: 100 MiB; a case that would allocate gigabytes fails against the cap instead of the machine.
MEMORY_CAP = 768 * 1024 * 1024

#: Seconds any one case may take (the render budget's wall-clock limit is 10 s a message).
TIME_BUDGET = 20.0

_RUNNER = """
import resource
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
import contextlib, io, json, sys, time
from promptc.cli.app import run
{setup}
out = []
for argv in json.loads(sys.argv[1]):
    o, e = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        status = run(argv)
    out.append({{"status": status, "stdout": o.getvalue(), "stderr": e.getvalue(),
                "seconds": time.perf_counter() - t0}})
sys.stdout.write(json.dumps(out))
"""


@dataclass(frozen=True)
class Outcome:
    status: int
    stdout: str
    stderr: str
    seconds: float


def run_capped(
    commands: Sequence[Sequence[str]], cwd: Path, setup: str = "", timeout: float | None = None
) -> list[Outcome]:
    """Each command line's outcome, run in one memory-capped process in ``cwd``.

    ``setup`` is Python run first (e.g. to make an optional module unimportable).
    """
    limit = timeout if timeout is not None else TIME_BUDGET * len(commands) + 30
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _RUNNER.format(setup=setup, cap=MEMORY_CAP),
            json.dumps([list(c) for c in commands]),
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=limit,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    outcomes = [Outcome(**o) for o in json.loads(proc.stdout)]
    for command, o in zip(commands, outcomes, strict=True):
        assert o.seconds < TIME_BUDGET, f"{command}: {o.seconds:.1f} s"
        assert o.status != 3 and "internal error" not in o.stderr, (command, o.stderr)
    return outcomes
