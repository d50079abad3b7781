"""``promptc run --local``: the embedded llama.cpp server, started and stopped by promptc.

Against the real SmolLM2-135M-Instruct: a batch and an Auto-Demo build of specs/sentiment.yaml
run end to end with GBNF, and the server process is gone afterwards — after a normal end,
after Ctrl-C, and after promptc itself is killed — checked by its pid.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from llm_server import model_in_cache
from promptc.build import build
from promptc.spec.lower import compile_spec

pytestmark = pytest.mark.llm

SPECS = Path(__file__).resolve().parents[2] / "specs"
PID = re.compile(r"pid (\d+)\)")


def _gone(pid: int, within: float = 15.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        # A zombie (exited, not yet reaped by its parent) counts as gone.
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.2)
    return False


def _build(tmp_path: Path, kind: str) -> Path:
    task = compile_spec(
        SPECS / "sentiment.yaml",
        overrides={
            ("strategy", "kind"): kind,
            ("strategy", "batch_size"): 4,
            ("model", "max_tokens"): 96,
        },
    )
    out = tmp_path / kind
    build(task, out)
    return out


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_BASE_URL"}
    env["PROMPTC_CACHE_DIR"] = str(model_in_cache(tmp_path / "cache"))
    return env


@pytest.mark.parametrize("kind", ["batch", "auto-demo"])
def test_local_end_to_end(tmp_path: Path, kind: str) -> None:
    out = _build(tmp_path, kind)
    proc = subprocess.run(
        [sys.executable, "-m", "promptc", "run", str(out), "--local", "--parse", "--limit", "1"]
        + ["--repair", "0", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env=_env(tmp_path),
    )
    assert proc.returncode in (0, 4), proc.stderr  # 4: the 135M model got an item wrong
    summary = json.loads(proc.stdout)
    assert summary["local"] is True and summary["grammar"] == "gbnf"
    assert summary["requests"]["sent"] == 1 and summary["tokens"]["completion"] > 0
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [r["item_id"] for r in rows if r["item_id"]] == ["s01", "s02", "s03", "s04"]
    # Under GBNF the answer has the grammar's form (an item may still be cut off by
    # max_tokens); the exit status says whether every item is ok.
    statuses = [r["status"] for r in rows]
    assert statuses.count("ok") >= 2, rows
    assert proc.returncode == (0 if set(statuses) == {"ok"} else 4)
    pids = [int(p) for p in PID.findall(proc.stderr)]
    assert pids and all(_gone(p) for p in pids), proc.stderr


def test_requests_reach_the_one_slot_server_one_at_a_time(tmp_path: Path) -> None:
    """``--concurrency 4`` against the embedded server's one slot: sent one at a time, so
    that none waits in the server's queue with its timeout running (and is generated twice
    after it expires); every request is answered once."""
    out = _build(tmp_path, "batch")
    proc = subprocess.run(
        [sys.executable, "-m", "promptc", "run", str(out), "--local", "--no-cache"]
        + ["--concurrency", "4", "--repair", "0", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env=_env(tmp_path),
    )
    assert proc.returncode in (0, 4), proc.stderr
    assert "(grammar: gbnf, concurrency 1)" in proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["requests"]["sent"] == summary["requests"]["total"] == 5


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_no_server_is_left_behind(tmp_path: Path, how: signal.Signals) -> None:
    out = _build(tmp_path, "batch")
    proc = subprocess.Popen(
        [sys.executable, "-m", "promptc", "run", str(out), "--local", "--no-cache"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=_env(tmp_path),
    )
    assert proc.stderr is not None
    pid = None
    deadline = time.monotonic() + 300
    for line in proc.stderr:
        found = PID.search(line)
        if found and pid is None:
            pid = int(found.group(1))
        if "ready" in line or time.monotonic() > deadline:
            break
    assert pid is not None
    proc.send_signal(how)
    proc.wait(timeout=60)
    assert _gone(pid), f"the embedded server {pid} outlived promptc ({how.name})"
    if how == signal.SIGINT:
        assert proc.returncode == 130
