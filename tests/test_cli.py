"""The promptc command: exit codes, diagnostics, --emit, --target, show, schema."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from promptc import __version__
from promptc.cli import app as cli
from promptc.cli import show

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "specs"


def promptc(
    *args: str, cwd: Path = REPO, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promptc", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
    )


BAD_SPEC = """\
promptc: 1
name: bad
instruction: Label it.
inputs: {text: {}}
outputs:
  label: {type: enum, choices: [a, b]}
demos:
  - {text: hi, label: c}
strategy: {kind: batch, batch_sise: 2}
model: {name: m}
"""


@pytest.fixture
def bad_spec(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_SPEC, encoding="utf-8")
    return path


def test_check_valid_spec() -> None:
    proc = promptc("check", "specs/math.yaml")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        "specs/math.yaml: valid: 20 items with gold answer, strategy auto-demo, 8 per request\n"
    )
    assert proc.stderr == ""


def test_check_invalid_spec_prints_every_diagnostic_then_a_summary(bad_spec: Path) -> None:
    proc = promptc("check", bad_spec.name, cwd=bad_spec.parent)
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert len(lines) >= 3 and lines[-1] == f"bad.yaml: {len(lines) - 1} errors"
    for line in lines[:-1]:
        assert re.match(r"^bad\.yaml:\d+:\d+: \S+: .+", line), line
    assert any(l.startswith("bad.yaml:8:") and "demos[0].label" in l for l in lines)
    assert any(
        l.startswith("bad.yaml:9:") and "batch_sise" in l and "batch_size" in l for l in lines
    )
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_check_json_format(bad_spec: Path) -> None:
    proc = promptc("check", str(bad_spec), "--format", "json")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["valid"] is False and doc["omitted"] == 0
    assert doc["summary"] == f"{bad_spec}: {len(doc['errors'])} errors"
    for e in doc["errors"]:
        assert set(e) == {"stage", "code", "file", "line", "col", "path", "message", "hint"}
        assert e["file"] == str(bad_spec) and e["line"] >= 1
    ok = json.loads(promptc("check", "specs/nli.yaml", "--format", "json").stdout)
    assert ok["valid"] is True and ok["errors"] == []


def test_check_max_errors(bad_spec: Path) -> None:
    proc = promptc("check", str(bad_spec), "--max-errors", "1")
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert re.fullmatch(r"… and \d+ more", lines[1])
    assert lines[2].endswith(" errors")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "no-such-spec.yaml"], "File 'no-such-spec.yaml' does not exist."),
        (["check", "specs/math.yaml", "--format", "xml"], "'xml' is not one of 'text', 'json'."),
        (
            ["build", "specs/math.yaml"],
            "give the build folder with -o DIR, or print a stage with --emit",
        ),
        (
            ["build", "specs/math.yaml", "--batch-size", "0", "--emit", "requests"],
            "0 is not in the range 1<=x<=1000.",
        ),
        (["show", "specs/math.yaml"], "give exactly one of --request K and --batches"),
        (["frobnicate"], "No such command 'frobnicate'."),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    proc = promptc(*args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_show_unknown_request_is_a_usage_error() -> None:
    proc = promptc("show", "specs/nli.yaml", "--request", "99")
    assert proc.returncode == 2
    assert proc.stderr == (
        "no request '99'; give a request id or a number from 1 to 4 (ids: r0001 … r0004)\n"
    )


def test_build_writes_files_and_a_summary(tmp_path: Path) -> None:
    proc = promptc("build", "specs/sentiment.yaml", "-o", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == (
        f"built sentiment (batch): 3 requests for 20 items (up to 8 items per request) → {tmp_path / 'out'}\n"
    )
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert {"requests.jsonl", "batches.jsonl", "manifest.json", "answer.lark"} <= set(names)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["counts"] == {"demos": 3, "items": 20, "messages": 6, "requests": 3}
    assert manifest["spec"]["path"] == "sentiment.yaml"
    assert manifest["data"]["path"] == "data/sentiment.jsonl"
    assert [t["name"] for t in manifest["templates"]] == [
        "promptc/batch.j2",
        "promptc/partials/questions.j2",
    ]
    batches = (tmp_path / "out" / "batches.jsonl").read_text(encoding="utf-8").splitlines()
    for r in map(json.loads, batches):
        assert re.fullmatch(r"[0-9a-f]{64}", r["prompt_sha256"])
    requests = [
        json.loads(l)
        for l in (tmp_path / "out" / "requests.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [r["grammar"] for r in requests] == ["answer", "answer", "answer-4"]
    assert set(requests[0]) == {"id", "item_ids", "kind", "messages", "params", "grammar"}


def test_emit_prints_the_stages(tmp_path: Path) -> None:
    assert promptc("build", "specs/nli.yaml", "-o", str(tmp_path)).returncode == 0
    requests = promptc("build", "specs/nli.yaml", "--emit", "requests")
    assert requests.returncode == 0
    assert requests.stdout == (tmp_path / "requests.jsonl").read_text(encoding="utf-8")
    batches = promptc("build", "specs/nli.yaml", "--emit", "batches")
    assert batches.stdout == (tmp_path / "batches.jsonl").read_text(encoding="utf-8")
    first = json.loads(batches.stdout.splitlines()[0])
    assert re.fullmatch(r"[0-9a-f]{64}", first.pop("prompt_sha256"))
    assert first == {
        "index": 0,
        "request": "r0001",
        "item_ids": ["n09", "n04", "n07", "n06", "n16"],
        "target": None,
        "similarities": None,
        "grammar": "answer",
        "grammar_files": {},
    }
    ir = promptc("build", "specs/nli.yaml", "--emit", "ir")
    doc = json.loads(ir.stdout)
    assert doc["node"] == "Task" and doc["name"] == "nli" and len(doc["items"]) == 18
    assert doc["outputs"][0] == {
        "node": "OutputField",
        "name": "label",
        "type": "enum",
        "description": "",
        "choices": ["entailment", "neutral", "contradiction"],
        "aliases": [],
        "location": doc["outputs"][0]["location"],
        "choices_from": "",
        "answer_with": "letter",
        "option_chars": 0,
    }
    assert promptc("build", "specs/nli.yaml", "--emit", "ir").stdout == ir.stdout
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


def test_strategy_and_batch_size_overrides() -> None:
    proc = promptc(
        "build", "specs/math.yaml", "--strategy", "batch", "--batch-size", "3", "--emit", "requests"
    )
    requests = [json.loads(l) for l in proc.stdout.splitlines()]
    assert [len(r["item_ids"]) for r in requests] == [3] * 6 + [2]
    assert {r["kind"] for r in requests} == {"batch"}
    single = promptc("build", "specs/math.yaml", "--strategy", "single", "--emit", "requests")
    assert len(single.stdout.splitlines()) == 20


def test_openai_batch_target(tmp_path: Path) -> None:
    proc = promptc("build", "specs/reading.yaml", "-o", str(tmp_path), "--target", "openai-batch")
    assert proc.returncode == 0, proc.stderr
    lines = [
        json.loads(l)
        for l in (tmp_path / "requests.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert len(lines) == 16
    first = lines[0]
    assert set(first) == {"custom_id", "method", "url", "body"}
    assert (first["custom_id"], first["method"], first["url"]) == (
        "r0001",
        "POST",
        "/v1/chat/completions",
    )
    body = first["body"]
    assert body["model"] == "gpt-4o-mini" and body["max_completion_tokens"] == 64
    assert "max_tokens" not in body  # o-series models refuse it
    assert [m["role"] for m in first["body"]["messages"]] == ["system", "user"]
    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["target"] == "openai-batch"


def test_no_secrets_or_environment_in_build_outputs(tmp_path: Path) -> None:
    env = dict(os.environ, OPENAI_API_KEY="sk-test-SECRET-123", PROMPTC_SECRET="hush-42")
    assert promptc("build", "specs/math.yaml", "-o", str(tmp_path), env=env).returncode == 0
    for p in tmp_path.iterdir():
        text = p.read_text(encoding="utf-8")
        assert "SECRET-123" not in text and "hush-42" not in text and str(REPO) not in text


def test_show_request_and_batches() -> None:
    by_number = promptc("show", "specs/nli.yaml", "--request", "2")
    by_id = promptc("show", "specs/nli.yaml", "--request", "r0002")
    assert by_number.returncode == 0 and by_number.stdout == by_id.stdout
    lines = by_number.stdout.splitlines()
    assert lines[0] == "request r0002 · batch · 5 items: n17, n03, n13, n01, n02"
    assert lines[1] == "params: model=gpt-4o-mini, temperature=0, max_tokens=256 · grammar: answer"
    assert "── system " in by_number.stdout and "── user " in by_number.stdout
    assert (
        "Q[5]: Premise: A chef is slicing onions in a busy restaurant kitchen." in by_number.stdout
    )
    batches = promptc("show", "specs/nli.yaml", "--batches")
    assert batches.stdout.splitlines()[1:] == [
        "1  r0001  n09, n04, n07, n06, n16",
        "2  r0002  n17, n03, n13, n01, n02",
        "3  r0003  n14, n11, n18, n10, n15",
        "4  r0004  n12, n05, n08",
    ]
    assert batches.stdout.startswith("method: random · seed: 3 · batch_size: 5")


def test_schema_and_version() -> None:
    schema = json.loads(promptc("schema").stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert promptc("--version").stdout == f"promptc {__version__}\n"


def test_help_lists_parse_without_importing_it() -> None:
    code = (
        "import sys\nfrom promptc.cli.app import run\nrc = run(['--help'])\n"
        "assert rc == 0, rc\nassert 'promptc.cli.parse' not in sys.modules\n"
        "assert 'promptc.render.renderer' not in sys.modules and 'jinja2' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^  parse\s+Parse model outputs", proc.stdout, re.MULTILINE)


def test_unexpected_exceptions_are_internal_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import promptc.build

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("something broke")

    monkeypatch.setattr(promptc.build, "iter_lines", broken)
    assert cli.run(["build", str(SPECS / "nli.yaml"), "--emit", "requests"]) == 3
    assert capsys.readouterr().err == "promptc: internal error: RuntimeError: something broke\n"


def test_extends_is_recorded_in_the_manifest(tmp_path: Path) -> None:
    assert promptc("build", "specs/math-batch.yaml", "-o", str(tmp_path)).returncode == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["spec"]["path"] == "math-batch.yaml"
    [base] = manifest["extends"]
    assert base["path"] == "math.yaml"
    assert re.fullmatch(r"[0-9a-f]{64}", base["sha256"])
    assert manifest["selection"]["method"] == "random" and manifest["selection"]["seed"] == 7
    assert manifest["model"]["max_tokens"] == 1024 and manifest["model"]["temperature"] == 0


def test_show_on_a_terminal_draws_with_rich_without_reading_markup() -> None:
    """Prompts are full of brackets (Q[1]:, [bold]): rich must print them, not style them."""
    import io

    import promptc
    from promptc import ir
    from promptc.strategies import BATCH

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    batch = ir.Batch(0, ("a",), (0,))
    messages = ({"role": "user", "content": "Q[1]: [bold]x[/bold]"},)
    grammar = promptc.Grammar("", "", {}, "")
    request = promptc.Request("r0001", ("a",), messages, {"model": "m"}, grammar, BATCH.name)
    out = Terminal()
    show.show_request(request, "answer", out)
    text = out.getvalue()
    assert "Q[1]: [bold]x[/bold]" in text and "╭─ user" in text
    out = Terminal()
    show.show_batches(
        [batch], ["r0001"], {"method": "sequential", "embedding": {"model": "x"}}, out
    )
    assert "method: sequential" in out.getvalue() and "embedding" not in out.getvalue()


def test_spec_without_data_checks_and_builds_empty(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "promptc: 1\nname: nodata\ninstruction: Label it.\ninputs: {text: {}}\n"
        "outputs: {label: {type: enum, choices: [a, b]}}\n"
        "strategy: {kind: auto-demo, batch_size: 4}\nmodel: {name: m}\n",
        encoding="utf-8",
    )
    assert promptc("check", "s.yaml", cwd=tmp_path).stdout == (
        "s.yaml: valid: 0 items, strategy auto-demo, 4 per request\n"
    )
    proc = promptc("build", "s.yaml", "-o", "out", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "requests.jsonl").read_text(encoding="utf-8") == ""
    assert (tmp_path / "out" / "answer.lark").is_file()
    show = promptc("show", "s.yaml", "--request", "1", cwd=tmp_path)
    assert (show.returncode, show.stderr) == (
        2,
        "no request '1': this build has no requests (no data items)\n",
    )


@pytest.mark.parametrize("name", sorted(cli.cli.lazy))  # type: ignore[attr-defined]
def test_every_listed_command_loads(name: str) -> None:
    """The command table of ``promptc --help`` names real commands: each one imports and runs
    ``--help`` with its own text."""
    import importlib

    import click

    line = cli.cli.lazy[name]  # type: ignore[attr-defined]
    command = getattr(importlib.import_module(f"promptc.cli.{name}"), f"{name}_command")
    assert isinstance(command, click.Command) and command.name == name
    assert line and line.endswith(".")
    assert cli.run([name, "--help"]) == 0


def test_format_json_on_build_show_init_and_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every command that prints a result prints it as one JSON document with --format json."""
    spec, out = str(SPECS / "sentiment.yaml"), str(tmp_path / "b")

    def doc(*argv: str) -> object:
        assert cli.run(list(argv)) in (0, 1)
        return json.loads(capsys.readouterr().out)

    built = doc("build", spec, "-o", out, "--format", "json")
    assert isinstance(built, dict)
    assert (built["name"], built["strategy"], built["requests"], built["items"]) == (
        "sentiment",
        "batch",
        3,
        20,
    )
    assert "requests.jsonl" in built["files"] and built["out_dir"] == out
    assert doc("build", spec, "-o", out, "--check", "--format", "json") == {
        "current": True,
        "lines": [f"{out}: up to date (15 files)"],
        "out_dir": out,
    }
    shown = doc("show", spec, "--request", "2", "--format", "json")
    assert isinstance(shown, dict) and shown["id"] == "r0002" and shown["kind"] == "batch"
    assert [m["role"] for m in shown["messages"]][-1] == "user"
    batches = doc("show", spec, "--batches", "--format", "json")
    assert isinstance(batches, dict) and len(batches["batches"]) == 3
    assert batches["batches"][0]["item_ids"][0] == "s01"
    made = doc("init", str(tmp_path / "new"), "--format", "json")
    assert isinstance(made, dict)
    assert [Path(f).name for f in made["files"]] == ["task.yaml", "task.jsonl", "spec.schema.json"]
    wiring = doc("schema", "--wiring", "--format", "json")
    assert isinstance(wiring, dict) and wiring["id"] == "urn:promptc-compiler:spec:1"
    assert wiring["yaml.schemas"] == {wiring["path"]: ["task.yaml", "specs/*.yaml"]}


def test_schema_wiring_prints_the_setting_alone_on_stdout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``promptc schema --wiring > settings.json`` (or pasting what it prints) gives the
    setting as docs/cli.md shows it: JSON, its notes on stderr (``#`` lines around it made
    it neither JSON nor settings.json)."""
    assert cli.run(["schema", "--wiring"]) == 0
    captured = capsys.readouterr()
    setting = json.loads(captured.out)
    assert list(setting) == ["yaml.schemas"]
    (path,) = setting["yaml.schemas"]
    assert setting["yaml.schemas"][path] == ["task.yaml", "specs/*.yaml"]
    assert path in captured.err and "yaml-language-server" in captured.err


def test_shell_completion_works_through_click() -> None:
    """docs/cli.md documents click's own completion: the script and the completions."""
    env = {**os.environ, "_PROMPTC_COMPLETE": "bash_source"}
    script = subprocess.run(
        [sys.executable, "-m", "promptc"], env=env, capture_output=True, text=True, check=False
    )
    assert "_promptc_completion" in script.stdout
    env = {
        **os.environ,
        "_PROMPTC_COMPLETE": "bash_complete",
        "COMP_WORDS": "promptc mo",
        "COMP_CWORD": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "promptc"], env=env, capture_output=True, text=True, check=False
    )
    assert "plain,model" in done.stdout


def test_ctrl_c_in_any_command_exits_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # click turns Ctrl-C into its Abort: said and exited as an interrupt (130, as run and
    # eval document it), not as "aborted" with the exit status of a spec with errors.
    import promptc.cli.schema

    def interrupted() -> str:
        raise KeyboardInterrupt

    monkeypatch.setattr(promptc.cli.schema, "read_schema", interrupted)
    assert cli.run(["schema"]) == 130
    assert capsys.readouterr().err.endswith("promptc: interrupted\n")
