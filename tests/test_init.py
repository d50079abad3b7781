"""``promptc init``: its starter spec checks, builds in all four strategies, validates against the
schema it writes beside itself, and nothing is ever overwritten."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator
from promptc.cli.app import run
from promptc.cli.init import DATA_FILE, SCHEMA_FILE, SPEC_FILE, TASKS
from promptc.resources import read_schema

STRATEGIES = ("single", "few-shot", "batch", "auto-demo")


def promptc(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("task", TASKS)
def test_init_checks_and_builds_in_every_strategy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], task: str
) -> None:
    folder = tmp_path / "starter"
    code, out, err = promptc(capsys, "init", str(folder), "--task", task)
    assert (code, err) == (0, "")
    assert out.startswith(f"wrote {folder / SPEC_FILE}, ")
    spec = folder / SPEC_FILE
    code, out, err = promptc(capsys, "check", str(spec))
    assert (code, err) == (0, "")
    assert out == f"{spec}: valid: 3 items, strategy batch, 8 per request\n"
    for strategy in STRATEGIES:
        # Every strategy's budget fits its requests: check warns of none.
        code, out, err = promptc(capsys, "check", str(spec), "--strategy", strategy)
        assert (code, err) == (0, "") and "warning" not in out, (strategy, out)
        out_dir = tmp_path / f"build-{strategy}"
        code, out, err = promptc(
            capsys, "build", str(spec), "-o", str(out_dir), "--strategy", strategy
        )
        assert (code, err) == (0, ""), strategy
        assert (out_dir / "requests.jsonl").read_text(encoding="utf-8").count("\n") == (
            3 if strategy in ("single", "few-shot") else 1
        )


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_init_starts_with_the_strategy_asked_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], strategy: str
) -> None:
    assert promptc(capsys, "init", str(tmp_path), "--strategy", strategy)[0] == 0
    code, out, _ = promptc(capsys, "check", str(tmp_path / SPEC_FILE))
    assert code == 0
    assert f"strategy {strategy}," in out


def test_the_modeline_points_at_the_schema_written_beside_the_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert promptc(capsys, "init", str(tmp_path), "--task", "enum")[0] == 0
    text = (tmp_path / SPEC_FILE).read_text(encoding="utf-8")
    first = text.splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
    assert match is not None, first
    schema_path = tmp_path / match.group(1)
    assert schema_path == tmp_path / SCHEMA_FILE
    written = schema_path.read_text(encoding="utf-8")
    assert json.loads(written) == json.loads(read_schema())
    errors = list(Draft202012Validator(json.loads(written)).iter_errors(yaml.safe_load(text)))
    assert errors == []
    rows = (tmp_path / DATA_FILE).read_text(encoding="utf-8").splitlines()
    assert len(rows) == 3 and all(json.loads(r)["id"] for r in rows)


def test_init_refuses_to_overwrite_and_then_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / DATA_FILE).write_text("mine\n", encoding="utf-8")
    code, out, err = promptc(capsys, "init", str(tmp_path))
    assert (code, out) == (2, "")
    assert err == (
        f"{tmp_path / DATA_FILE}: refusing to overwrite {tmp_path / DATA_FILE} "
        "(choose another folder, or move the files away)\n"
    )
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["data", "task.jsonl"]
    assert (tmp_path / DATA_FILE).read_text(encoding="utf-8") == "mine\n"


def test_init_never_writes_through_a_link_inside_the_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project, elsewhere = tmp_path / "proj", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    (project / "data").symlink_to(elsewhere)
    code, out, err = promptc(capsys, "init", str(project))
    assert (code, out) == (2, "")
    link = project / "data"
    assert err == (
        f"{link}: refusing to write through {link}, a symbolic link: init writes only inside "
        f"{project} (choose another folder, or remove the link)\n"
    )
    assert list(elsewhere.iterdir()) == []
    assert sorted(p.name for p in project.iterdir()) == ["data"]


def test_init_names_a_file_standing_where_it_writes_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "data").write_text("mine\n", encoding="utf-8")
    code, out, err = promptc(capsys, "init", str(project))
    assert (code, out) == (2, "")
    in_way = project / "data"
    assert err == (
        f"{in_way}: {in_way} is a file, where init writes the folder {in_way}{os.sep} "
        "(choose another folder, or move the file away)\n"
    )
    assert sorted(p.name for p in project.iterdir()) == ["data"]
    assert in_way.read_text(encoding="utf-8") == "mine\n"


def test_init_into_a_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "afile").write_text("mine\n", encoding="utf-8")
    code, out, err = promptc(capsys, "init", str(tmp_path / "afile"))
    assert (code, out) == (2, "")
    assert f"Directory '{tmp_path / 'afile'}' is a file." in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_schema_out_writes_the_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "spec.schema.json"
    assert promptc(capsys, "schema", "-o", str(target)) == (0, "", "")
    assert json.loads(target.read_text(encoding="utf-8")) == json.loads(read_schema())
    # Over a schema it wrote (an earlier version's too) and an empty file: replaced.
    target.write_text('{"$id": "urn:promptc-compiler:spec:0"}', encoding="utf-8")
    assert promptc(capsys, "schema", "-o", str(target)) == (0, "", "")
    assert target.read_text(encoding="utf-8") == read_schema()


@pytest.mark.parametrize(
    "held", ["promptc: 1\nname: mine\n", '{"$id": "urn:other"}', "[1]", "\u00e9t\u00e9 {"]
)
def test_schema_out_never_replaces_a_file_of_the_users(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], held: str
) -> None:
    """``schema -o task.yaml`` (a slip for spec.schema.json) replaced the user's spec."""
    target = tmp_path / "task.yaml"
    target.write_text(held, encoding="utf-8")
    code, out, err = promptc(capsys, "schema", "-o", str(target))
    assert (code, out) == (2, "")
    assert err == (
        f"{target}: -o: not a spec schema promptc wrote (no JSON object with the $id "
        "'urn:promptc-compiler:spec:1'): the schema would replace what it holds (give a new "
        "or empty file, or a spec.schema.json that promptc schema wrote)\n"
    )
    assert target.read_text(encoding="utf-8") == held


def test_init_in_a_folder_whose_name_is_longer_than_a_spec_name_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder name may have 255 characters, a spec's name 200: the name is cut to fit."""
    folder = tmp_path / ("project-" * 30)[:250]
    assert run(["init", str(folder)]) == 0
    assert run(["check", str(folder / SPEC_FILE)]) == 0
    name = yaml.safe_load((folder / SPEC_FILE).read_text(encoding="utf-8"))["name"]
    assert len(name) <= 200 and not name.endswith("-")
