"""The pre-commit hooks of ``.pre-commit-hooks.yaml`` run the commands they name, as pre-commit
calls them (entry + args + the staged file names)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
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
    staged = [str(REPO / "specs" / "math.yaml"), str(REPO / "specs" / "math-batch.yaml")]
    assert call(hook, [], staged) == 0
    assert capsys.readouterr().out.count(": valid:") == 2


def test_promptc_build_check_fails_on_a_stale_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = hooks()["promptc-build-check"]
    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    (repo / "data" / "sentiment.jsonl").write_bytes(
        (REPO / "specs" / "data" / "sentiment.jsonl").read_bytes()
    )
    (repo / "s.yaml").write_bytes((REPO / "specs" / "sentiment.yaml").read_bytes())
    spec, out = str(repo / "s.yaml"), str(repo / "build")
    assert _git(repo, "init", "-q").returncode == 0
    assert run(["build", spec, "-o", out]) == 0
    assert _git(repo, "add", "-A").returncode == 0
    assert call(hook, [spec, "-o", out], ["ignored.yaml"]) == 0
    assert call(hook, [spec, "-o", out, "--batch-size", "4"], []) == 1
    assert "first differing request" in capsys.readouterr().err


def test_the_build_check_hook_fails_on_a_build_file_git_does_not_track(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A rebuild wrote new grammar files, and ``git commit -a`` commits the manifest that
    lists them without them (untracked files are in the work tree the hook reads): the hook
    passed a build that a fresh clone finds incomplete. So did a spec whose new data file
    was never added. Each is named; added, the hook passes."""
    hook = hooks()["promptc-build-check"]
    repo = tmp_path / "repo"
    assert run(["init", str(repo)]) == 0
    assert _git(repo, "init", "-q").returncode == 0
    spec, out = str(repo / "task.yaml"), str(repo / "build")
    assert run(["build", spec, "-o", out]) == 0
    assert _git(repo, "add", "task.yaml", "build").returncode == 0
    capsys.readouterr()
    assert call(hook, [spec, "-o", out], []) == 1
    err = capsys.readouterr().err
    data = [p for p in (repo / "data").iterdir()]
    assert f"{data[0]}: not tracked by git: a commit leaves it out (git add it)" in err
    assert "build/" not in err.replace(str(repo / "build") + ":", "")  # the build is tracked
    assert _git(repo, "add", "-A").returncode == 0
    assert call(hook, [spec, "-o", out], []) == 0
    lark = min((repo / "build").glob("answer*.lark"))
    assert _git(repo, "rm", "-q", "--cached", f"build/{lark.name}").returncode == 0
    capsys.readouterr()
    assert call(hook, [spec, "-o", out], []) == 1
    err = capsys.readouterr().err
    assert f"{lark}: not tracked by git: a commit leaves it out (git add it)" in err
    outside = tmp_path / "elsewhere"
    assert call(hook, [spec, "-o", str(outside)], []) == 2
    assert "is in no git work tree" in capsys.readouterr().err


def test_the_build_check_hook_passes_a_committed_build_named_relative_to_the_top(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """pre-commit runs a hook from the repository's top with the README's relative
    arguments (``specs/task.yaml -o build/task``): every committed file of the build was
    called "not tracked by git", and the hook failed every commit. From the top and from a
    folder below it, a committed build passes and an untracked file is named as given."""
    hook = hooks()["promptc-build-check"]
    repo = tmp_path / "repo"
    assert run(["init", str(repo / "specs")]) == 0
    assert _git(repo, "init", "-q").returncode == 0
    monkeypatch.chdir(repo)
    assert run(["build", "specs/task.yaml", "-o", "build/task"]) == 0
    assert _git(repo, "add", "-A").returncode == 0
    capsys.readouterr()
    assert call(hook, ["specs/task.yaml", "-o", "build/task"], []) == 0, capsys.readouterr().err
    monkeypatch.chdir(repo / "specs")
    assert call(hook, ["task.yaml", "-o", "../build/task"], []) == 0, capsys.readouterr().err
    manifest = "../build/task/manifest.json"
    assert _git(repo, "rm", "-q", "--cached", "build/task/manifest.json").returncode == 0
    assert call(hook, ["task.yaml", "-o", "../build/task"], []) == 1
    err = capsys.readouterr().err
    assert f"{manifest}: not tracked by git: a commit leaves it out (git add it)" in err
    assert err.count("not tracked") == 1


def test_the_check_hook_matches_every_spec_and_skips_other_yaml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its ``files:`` matches any YAML file; ``--specs-only`` keeps those with the top-level
    ``promptc:`` key: ``init``'s ``task.yaml`` as much as ``specs/*.yaml``."""
    hook = hooks()["promptc-check"]
    pattern = re.compile(str(hook["files"]))
    for name in ("task.yaml", "specs/math.yaml", "app/specs/x/task.yml", "ci.yaml"):
        assert pattern.search(name), name
    assert not pattern.search("data/task.jsonl")
    assert run(["init", str(tmp_path / "new")]) == 0
    other = tmp_path / "ci.yaml"
    other.write_text("on: push\njobs: {}\n", encoding="utf-8")
    capsys.readouterr()
    assert call(hook, [], [str(tmp_path / "new" / "task.yaml"), str(other)]) == 0
    assert capsys.readouterr().out.count(": valid:") == 1
    assert call(hook, [], [str(other)]) == 0


def test_the_check_hook_keeps_a_spec_whatever_its_first_bytes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A spec saved with a byte order mark, or with its ``promptc`` key quoted, is a spec:
    left out, an invalid one passed the hook."""
    hook = hooks()["promptc-check"]
    bad = "promptc: 1\nname: x\n"  # no instruction, inputs, outputs…
    for name, text in [
        ("bom.yaml", "\ufeff" + bad),
        ("double.yaml", bad.replace("promptc:", '"promptc":')),
        ("single.yaml", bad.replace("promptc:", "'promptc' :")),
        ("pretty.yaml", '{\n  "promptc": 1,\n  "name": "x"\n}\n'),  # JSON with an indent
        ("explicit.yaml", "? promptc\n: 1\nname: x\n"),  # an explicit key
    ]:
        spec = tmp_path / name
        spec.write_text(text, encoding="utf-8")
        assert call(hook, [], [str(spec)]) == 1, name
        assert f"{spec}:" in capsys.readouterr().err


def test_the_check_hook_checks_a_layer_that_extends_a_spec_without_repeating_promptc(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/spec.md's variant (``extends: gsm8k.yaml``, no ``promptc:``) with a typo: the
    hook checks it, as it checks its base; an ESLint-style ``extends:`` of no spec is left."""
    hook = hooks()["promptc-check"]
    assert run(["init", str(tmp_path / "new")]) == 0
    variant = tmp_path / "new" / "variant.yaml"
    variant.write_text(
        "extends: task.yaml  # the base\nstrategy: {kind: batch, batch_sise: 4}\n",
        encoding="utf-8",
    )
    other = tmp_path / ".eslintrc.yml"
    other.write_text("extends: eslint:recommended\nrules: {}\n", encoding="utf-8")
    capsys.readouterr()
    assert call(hook, [], [str(variant), str(other)]) == 1
    err = capsys.readouterr().err
    assert f"{variant}:2:" in err and "unknown key 'batch_sise'" in err
    assert ".eslintrc" not in err
    # A misspelt base, a base renamed without its layers, a cycle: checked (they passed the
    # hook without a word), as is a layer extending a missing .yml; ESLint's stays left.
    typo = tmp_path / "new" / "typo.yaml"
    typo.write_text("extends: tsk.yaml\n", encoding="utf-8")
    a, b = tmp_path / "new" / "a.yaml", tmp_path / "new" / "b.yml"
    a.write_text("extends: b.yml\n", encoding="utf-8")
    b.write_text("extends: a.yaml\n", encoding="utf-8")
    assert call(hook, [], [str(typo), str(a), str(other)]) == 1
    err = capsys.readouterr().err
    assert f"{typo}:1:10: extends: extended spec 'tsk.yaml' not found" in err
    assert "extends cycle" in err and ".eslintrc" not in err


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=False, env=_env()
    )


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
        PRE_COMMIT_HOME=env.get("PRE_COMMIT_HOME", str(Path.home() / ".cache" / "pre-commit")),
    )
    return env


def test_pre_commit_blocks_an_invalid_init_spec(tmp_path: Path) -> None:
    """pre-commit itself, in a real git repository, with the hooks as this repository
    defines them (run from promptc on PATH rather than an environment pre-commit would
    install from the index): a commit of ``promptc init``'s spec made invalid is refused,
    naming the error; a YAML file that is no spec is left alone; the fixed spec commits."""
    pytest.importorskip("pre_commit", reason="pre-commit (the test extra) is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    assert _git(repo, "init", "-q").returncode == 0
    local = [{**h, "language": "system"} for h in hooks().values() if h["id"] == "promptc-check"]
    config = {"repos": [{"repo": "local", "hooks": local}]}
    (repo / ".pre-commit-config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    assert run(["init", str(repo)]) == 0
    (repo / "ci.yaml").write_text("on: push\njobs: {}\n", encoding="utf-8")
    spec = repo / "task.yaml"
    good = spec.read_text(encoding="utf-8")
    spec.write_text(good.replace("batch_size: 8", "batch_size: 0"), encoding="utf-8")
    hook = [sys.executable, "-m", "pre_commit", "install"]
    installed = subprocess.run(hook, cwd=repo, env=_env(), capture_output=True, check=False)
    assert installed.returncode == 0
    assert _git(repo, "add", "-A").returncode == 0
    refused = _git(repo, "commit", "-q", "-m", "invalid spec")
    assert refused.returncode != 0
    said = refused.stdout + refused.stderr
    assert "task.yaml:" in said and "strategy.batch_size" in said, said
    assert "ci.yaml" not in said
    spec.write_text(good, encoding="utf-8")
    assert _git(repo, "add", "-A").returncode == 0
    done = _git(repo, "commit", "-q", "-m", "valid spec")
    assert done.returncode == 0, done.stdout + done.stderr
