"""Text from a data file, a model or a server reaches the terminal with its control characters
escaped: an escape sequence among item ids, inputs or a server's error message would
otherwise retitle, clear or recolour the user's terminal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from loopback import QuietHandler, send_json, serving
from promptc.cli.app import run
from promptc.text import printable

SPECS = Path(__file__).resolve().parents[1] / "specs"
ESC = "\x1b"
HOSTILE = "evil\x1b]0;PWNED\x07\x1b[31mRED\x9b2J"


def test_printable_escapes_controls_and_keeps_lines_and_tabs() -> None:
    assert printable(HOSTILE) == "evil\\x1b]0;PWNED\\x07\\x1b[31mRED\\u009b2J"
    assert printable("a\tb\nc é ✓") == "a\tb\nc é ✓"
    # Bidirectional controls: a terminal would show the text after them reversed.
    assert printable("evitisop\u202e ok \u2066x\u2069\u200f") == (
        "evitisop\\u202e ok \\u2066x\\u2069\\u200f"
    )
    assert printable("שלום مرحبا") == "שלום مرحبا"  # right-to-left text itself stays


def _spec(tmp_path: Path, rows: list[dict[str, str]]) -> Path:
    (tmp_path / "data.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        (SPECS / "sentiment.yaml")
        .read_text(encoding="utf-8")
        .replace("path: data/sentiment.jsonl", "path: data.jsonl")
        .replace("  gold: {sentiment: label}\n", ""),
        encoding="utf-8",
    )
    return spec


def test_an_error_naming_a_hostile_id_is_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(tmp_path, [{"id": HOSTILE, "text": "a"}, {"id": HOSTILE, "text": "b"}])
    assert run(["check", str(spec)]) == 1
    err = capsys.readouterr().err
    assert "evil\\x1b]0;PWNED" in err and ESC not in err and "\x9b" not in err


def test_the_parse_table_escapes_ids_inputs_and_answers(tmp_path: Path) -> None:
    spec = _spec(tmp_path, [{"id": HOSTILE, "text": f"review {HOSTILE}"}])
    build = tmp_path / "b"
    assert run(["build", str(spec), "-o", str(build)]) == 0
    rid = json.loads((build / "requests.jsonl").read_text(encoding="utf-8").splitlines()[0])["id"]
    outputs = tmp_path / "outputs.jsonl"
    answer = f"A[1]: positive {HOSTILE}"
    outputs.write_text(json.dumps({"id": rid, "output": answer}) + "\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "promptc", "parse", str(build), str(outputs), "--format", "table"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "evil\\x1b]0;PWNED" in done.stdout, done.stdout + done.stderr
    assert ESC not in done.stdout + done.stderr and "\x9b" not in done.stdout + done.stderr


def test_a_diff_of_two_builds_escapes_what_the_data_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A data row ending in cursor-up, erase-line and U+202E: diff wrote them as they were,
    hiding a line of the diff under review. Escaped, piped or not."""
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old = _spec(tmp_path / "old", [{"id": "a", "text": "fine"}])
    new = _spec(tmp_path / "new", [{"id": "a", "text": f"fine\x1b[1A\x1b[2K{HOSTILE}\u202eevil"}])
    assert run(["build", str(old), "-o", str(tmp_path / "A")]) == 0
    assert run(["build", str(new), "-o", str(tmp_path / "B")]) == 0
    capsys.readouterr()
    assert run(["diff", str(tmp_path / "A"), str(tmp_path / "B")]) == 1
    out = capsys.readouterr().out
    assert "\\x1b[1A\\x1b[2K" in out and "\\u202eevil" in out
    assert ESC not in out and "\u202e" not in out and "\x9b" not in out


class _Refuses(QuietHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        send_json(self, {"error": {"message": f"boom {HOSTILE}", "type": "invalid"}}, 400)


def test_a_servers_error_message_is_escaped(tmp_path: Path) -> None:
    build = tmp_path / "b"
    assert run(["build", str(SPECS / "sentiment.yaml"), "-o", str(build)]) == 0
    with serving(_Refuses) as url:
        done = subprocess.run(
            [sys.executable, "-m", "promptc", "run", str(build), "--base-url", url]
            + ["--grammar", "none", "--no-cache", "--max-retries", "0"],
            capture_output=True,
            text=True,
            check=False,
        )
    assert done.returncode == 1, done.stderr
    assert "boom evil\\x1b]0;PWNED" in done.stderr
    assert ESC not in done.stderr and "\x9b" not in done.stderr


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_a_terminal_that_cannot_spell_the_output_gets_it_escaped(
    tmp_path: Path, encoding: str
) -> None:
    """A console whose encoding lacks promptc's punctuation (→, ·, …) still gets every command's
    output, those characters escaped; never an internal error after the work is done."""
    env = {"PYTHONIOENCODING": encoding, "PATH": "/usr/bin:/bin"}
    spec = str(SPECS / "sentiment.yaml")
    out = tmp_path / "b"
    commands = [
        ["build", spec, "-o", str(out)],
        ["show", spec, "--request", "1"],
        ["show", spec, "--batches"],
        ["plan", spec],
        ["diff", str(out), spec],
        ["parse", str(out), "answers.jsonl", "--format", "table"],
    ]
    (tmp_path / "answers.jsonl").write_text('{"id": "r0001", "output": "A[1]: positive"}\n')
    for args in commands:
        done = subprocess.run(
            [sys.executable, "-m", "promptc", *args],
            capture_output=True,
            env=env,
            cwd=tmp_path,
            check=False,
        )
        assert done.returncode in (0, 1), (args, done.stderr)
        assert b"internal error" not in done.stderr, args
    built = subprocess.run(
        [sys.executable, "-m", "promptc", "build", spec, "-o", str(out)],
        capture_output=True,
        env=env,
        check=True,
    )
    # click writes UTF-8 where a stream says ASCII (a misconfigured locale); any other
    # encoding is kept, and what it cannot spell escaped.
    assert b"\\u2192 " in built.stdout if encoding == "latin-1" else "→".encode() in built.stdout


def test_a_reader_that_stops_early_ends_the_command_quietly() -> None:
    """``promptc show … | head``: the reader goes away; click exited 1 with nothing said."""
    spec = str(SPECS / "gsm8k.yaml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "promptc", "show", spec, "--batches"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # before the command writes: its first write finds no reader
    err = proc.stderr.read()
    assert (proc.wait(timeout=60), err) == (0, b"")
