"""Inputs at their edges, each ending in what a user expects: a template saved with a byte
order mark, an optional include, a CSV field longer than Python's csv default, a named pipe
where a spec or results are expected, an empty ``-o``, and a build folder checked read-only."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from promptc.cli.app import run
from promptc.errors import LoadError, PromptcErrors
from promptc.render.checks import check_templates
from promptc.spec.load import load_spec
from promptc.spec.lower import compile_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"
SPEC = """\
promptc: 1
name: own
instruction: Label the text.
inputs: {text: {}}
outputs: {label: {type: enum, choices: [a, b]}}
data: {path: data.jsonl}
strategy: {kind: batch, batch_size: 2}
templates: {batch: mine.j2}
model: {name: m}
"""


def _spec(tmp_path: Path, template: bytes) -> Path:
    (tmp_path / "data.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n', encoding="utf-8")
    (tmp_path / "mine.j2").write_bytes(template)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    return spec


def test_a_template_that_is_not_utf8_is_said_at_its_byte(tmp_path: Path) -> None:
    """Latin-1 text saved by an editor: said as the spec and data files are, at the byte, not
    in Python's words at the spec's templates value."""
    task = compile_spec(
        _spec(tmp_path, b"{% block user %}\n\n{{ items|length }} caf\xe9{% endblock %}")
    )
    (error,) = check_templates(task)
    assert error.code == "template-not-utf8"
    assert (
        error.format()
        == f"{tmp_path / 'mine.j2'}:3:23: template is not UTF-8 text: invalid byte 0xe9"
    )


def test_a_template_saved_with_a_byte_order_mark_is_its_text_alone(tmp_path: Path) -> None:
    body = b'{% extends "promptc/batch.j2" %}{% block system %}Be brief.{% endblock %}'
    task = compile_spec(_spec(tmp_path, b"\xef\xbb\xbf" + body))
    assert check_templates(task) == []


def test_an_optional_include_may_name_no_file(tmp_path: Path) -> None:
    body = b'{% block user %}{% include "nope.j2" ignore missing %}Q{% endblock %}'
    task = compile_spec(_spec(tmp_path, body))
    assert check_templates(task) == []


def test_a_csv_field_longer_than_pythons_csv_default_is_read(tmp_path: Path) -> None:
    spec = _spec(tmp_path, b'{% extends "promptc/batch.j2" %}')
    long = "x" * 200_000
    (tmp_path / "data.csv").write_text(f"text\n{long}\nshort\n", encoding="utf-8")
    spec.write_text(SPEC.replace("data.jsonl", "data.csv"), encoding="utf-8")
    task = compile_spec(spec)
    assert [len(i.inputs["text"]) for i in task.items] == [200_000, 5]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_named_pipe_where_a_spec_is_expected_is_said_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    os.mkfifo("base.yaml")
    Path("child.yaml").write_text("extends: base.yaml\nname: c\n", encoding="utf-8")
    with pytest.raises(LoadError) as e:
        load_spec("child.yaml")
    assert e.value.format() == (
        "child.yaml:1:10: extends: extends path 'base.yaml' is not a regular file; "
        "expected a spec file"
    )


def test_an_empty_output_path_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "promptc", "schema", "-o", ""],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "internal error" not in done.stderr
    assert "<command line>: -o: cannot write '': an empty path names no file" in done.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders anyway")
def test_build_check_reads_a_folder_it_may_not_write(tmp_path: Path) -> None:
    out = tmp_path / "b"
    spec = SPECS / "sentiment.yaml"
    argv = [sys.executable, "-m", "promptc", "build", str(spec), "-o", str(out)]
    assert subprocess.run(argv, capture_output=True, check=False).returncode == 0
    out.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        done = subprocess.run([*argv, "--check"], capture_output=True, text=True, check=False)
    finally:
        out.chmod(stat.S_IRWXU)
    assert done.returncode == 0, done.stderr


def test_duplicate_ids_are_said_beside_the_rows_other_errors(tmp_path: Path) -> None:
    # Every error of the data at once: rows whose gold is bad still have their ids checked,
    # so the duplicate is not found only after the gold is fixed.
    shutil.copytree(SPECS, tmp_path / "specs")
    data = tmp_path / "specs" / "data" / "sentiment.jsonl"
    rows = [
        '{"id": "dup", "text": "Fine.", "label": "bogus"}',
        '{"id": "dup", "text": "Bad.", "label": "bogus"}',
        '{"id": "ok", "text": "Good.", "label": "positive"}',
        '{"id": "ok", "text": "Good again.", "label": "positive"}',
    ]
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(PromptcErrors) as e:
        compile_spec(tmp_path / "specs" / "sentiment.yaml")
    said = e.value.format()
    assert "sentiment.jsonl:2:1: duplicate item id 'dup'; first used at line 1" in said
    assert "sentiment.jsonl:4:1: duplicate item id 'ok'; first used at line 3" in said
    assert said.count("gold value for") == 2


def _promptc(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promptc", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


def test_options_that_exclude_each_other_are_a_usage_error(tmp_path: Path) -> None:
    # Each was silently ignored: -o beside --wiring (nothing written), -o beside --emit.
    wiring = _promptc("schema", "--wiring", "-o", str(tmp_path / "w.json"))
    assert wiring.returncode == 2 and "give one" in wiring.stderr
    assert not (tmp_path / "w.json").exists()
    emit = _promptc(
        "build", str(SPECS / "sentiment.yaml"), "--emit", "ir", "-o", str(tmp_path / "d")
    )
    assert emit.returncode == 2 and "drop -o DIR" in emit.stderr and emit.stdout == ""


def test_checks_summary_escapes_the_spec_name_as_its_diagnostics_do(tmp_path: Path) -> None:
    shutil.copytree(SPECS / "data", tmp_path / "data")
    name = "x\ny\x1b[31m.yaml"
    text = (SPECS / "sentiment.yaml").read_text(encoding="utf-8")
    (tmp_path / name).write_text(text, encoding="utf-8")
    valid = _promptc("check", name, cwd=tmp_path)
    assert valid.returncode == 0 and valid.stdout.startswith("x\\ny\\x1b[31m.yaml: valid: ")
    (tmp_path / name).write_text(text + "bogus: 1\n", encoding="utf-8")
    bad = _promptc("check", name, cwd=tmp_path)
    assert bad.returncode == 1 and "\x1b" not in bad.stderr
    assert bad.stderr.splitlines()[-1] == "x\\ny\\x1b[31m.yaml: 1 error"


def test_a_spec_named_through_a_link_to_its_file_builds_as_itself(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a link to the spec file (elsewhere/spec.yaml -> ../proj/s.yaml), the data
    is read beside the file linked to; it was named beside the link, a file that does not
    exist, in errors and in items.jsonl (so the build differed and --check failed)."""
    proj = tmp_path / "proj"
    (proj / "data").mkdir(parents=True)
    rows = (SPECS / "data" / "sentiment.jsonl").read_text(encoding="utf-8")
    (proj / "data" / "sentiment.jsonl").write_text(rows, encoding="utf-8")
    (proj / "s.yaml").write_bytes((SPECS / "sentiment.yaml").read_bytes())
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "spec.yaml").symlink_to("../proj/s.yaml")
    monkeypatch.chdir(tmp_path)
    assert run(["build", "proj/s.yaml", "-o", "out"]) == 0
    assert run(["build", "elsewhere/spec.yaml", "-o", "out", "--check"]) == 0
    bad = rows.replace('"positive"', '"bogus"', 1)
    (proj / "data" / "sentiment.jsonl").write_text(bad, encoding="utf-8")
    capsys.readouterr()
    assert run(["check", "elsewhere/spec.yaml"]) == 1
    line = 1 + rows[: rows.index('"positive"')].count("\n")
    assert capsys.readouterr().err.startswith(f"proj/data/sentiment.jsonl:{line}:")


def _checkout(root: Path, repository: bool) -> Path:
    """The sentiment spec in ``root/specs`` (a git repository's work tree if ``repository``),
    with a copy of its data in ``root/shared``."""
    (root / "specs").mkdir(parents=True)
    (root / "specs" / "s.yaml").write_bytes((SPECS / "sentiment.yaml").read_bytes())
    (root / "shared").mkdir()
    rows = (SPECS / "data" / "sentiment.jsonl").read_bytes()
    (root / "shared" / "reviews.jsonl").write_bytes(rows)
    if repository:
        (root / ".git").mkdir()
    return root / "specs" / "s.yaml"


def _recorded(build: Path) -> tuple[str, str]:
    """The data path of a build's manifest, and the location of its first item."""
    manifest = json.loads((build / "manifest.json").read_text(encoding="utf-8"))
    first = (build / "items.jsonl").read_text(encoding="utf-8").split("\n")[0]
    return manifest["data"]["path"], json.loads(first)["location"]


def test_data_outside_the_repository_builds_the_same_from_any_checkout(tmp_path: Path) -> None:
    """``build --data`` of a data set kept outside the repository, from two checkouts at
    different depths: the climb from each spec to the data was written into the manifest and
    every item's location, so the builds differed and ``--check`` of one from the other
    failed. The file is named by its name alone; data inside the repository keeps its path."""
    data = tmp_path / "datasets" / "reviews.jsonl"
    data.parent.mkdir()
    data.write_bytes((SPECS / "data" / "sentiment.jsonl").read_bytes())
    one = _checkout(tmp_path / "ci", repository=True)
    two = _checkout(tmp_path / "home" / "alice" / "src", repository=True)
    for spec in (one, two):
        assert run(["build", str(spec), "--data", str(data), "-o", str(spec.parent / "b")]) == 0
    for name in ("manifest.json", "items.jsonl", "requests.jsonl"):
        assert (one.parent / "b" / name).read_bytes() == (two.parent / "b" / name).read_bytes()
    assert _recorded(one.parent / "b") == ("reviews.jsonl", "reviews.jsonl:1:1")
    check = ["build", str(two), "--data", str(data), "-o", str(one.parent / "b"), "--check"]
    assert run(check) == 0
    inside = str(one.parents[1] / "shared" / "reviews.jsonl")
    assert run(["build", str(one), "--data", inside, "-o", str(tmp_path / "in")]) == 0
    assert _recorded(tmp_path / "in") == ("../shared/reviews.jsonl", "../shared/reviews.jsonl:1:1")
    bare = _checkout(tmp_path / "bare", repository=False)
    shared = str(bare.parents[1] / "shared" / "reviews.jsonl")
    assert run(["build", str(bare), "--data", shared, "-o", str(tmp_path / "out")]) == 0
    assert _recorded(tmp_path / "out") == ("reviews.jsonl", "reviews.jsonl:1:1")
