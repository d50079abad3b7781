"""The pre-commit hooks of ``.pre-commit-hooks.yaml`` run the commands they name, as pre-commit
calls them (entry + args + the staged file names)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml
from promptc.cli.app import run

REPO = Path(__file__).resolve().parents[1]


def hooks() -> dict[str, dict[str, object]]:
    data = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    return {h["id"]: h for h in data}


def call(hook: dict[str, object], args: list[str], files: list[str]) -> int:
    entry = shlex.split(str(hook["entry"]))
    assert entry[0] == "promptc"
    passed = files if hook.get("pass_filenames", True) else []
    return run([*entry[1:], *args, *passed])


def test_the_hooks_are_defined() -> None:
    found = hooks()
    assert sorted(found) == ["promptc-build-check", "promptc-check"]
    for hook in found.values():
        assert hook["language"] == "python" and hook["name"] and hook["description"]


def test_promptc_check_runs_on_the_staged_specs(capsys: pytest.CaptureFixture[str]) -> None:
    hook = hooks()["promptc-check"]
    pattern = re.compile(str(hook["files"]))
    assert pattern.search("specs/math.yaml") and pattern.search("app/specs/x/task.yml")
    assert not pattern.search(".github/workflows/ci.yaml")
    staged = [str(REPO / "specs" / "math.yaml"), str(REPO / "specs" / "math-batch.yaml")]
    assert call(hook, [], staged) == 0
    assert capsys.readouterr().out.count(": valid:") == 2


def test_promptc_build_check_fails_on_a_stale_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = hooks()["promptc-build-check"]
    spec, out = str(REPO / "specs" / "sentiment.yaml"), str(tmp_path / "build")
    assert run(["build", spec, "-o", out]) == 0
    assert call(hook, [spec, "-o", out], ["ignored.yaml"]) == 0
    assert call(hook, [spec, "-o", out, "--batch-size", "4"], []) == 1
    assert "first differing request" in capsys.readouterr().err
