"""promptc.text: the shared primitives, with the behaviour their callers rely on."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from promptc.text import (
    LineTable,
    Position,
    Span,
    cache_dir,
    canonical_json,
    decimal_text,
    default_label,
    describe,
    excerpt,
    sha256_text,
    write_atomic,
    write_output,
)


def naive_position(text: str, offset: int) -> tuple[int, int]:
    """Line:col as an editor shows them: \\r\\n, \\r and \\n each end one line."""
    line, col, i = 1, 1, 0
    while i < offset:
        if text[i] == "\r" and text[i + 1 : i + 2] == "\n":
            if i + 1 < offset:
                i += 1
            else:
                col += 1
                i += 1
                continue
        if text[i] in "\r\n":
            line, col = line + 1, 1
        else:
            col += 1
        i += 1
    return line, col


@given(st.text(alphabet="ab\r\n ", max_size=40), st.data())
def test_line_table_positions_match_an_editors(text: str, data: st.DataObject) -> None:
    offset = data.draw(st.integers(0, len(text)))
    # An offset between \r and \n belongs to the line the \r\n ends.
    if 0 < offset < len(text) and text[offset - 1] == "\r" and text[offset] == "\n":
        return
    pos = LineTable(text).position(offset)
    assert (pos.line, pos.col) == naive_position(text, offset)
    assert pos.offset == offset


def test_lone_carriage_return_ends_a_line() -> None:
    assert LineTable("a\rb").position(2) == Position(2, 1, 2)
    assert LineTable("a\r\nb").position(3) == Position(2, 1, 3)
    assert LineTable("a\nb").position(2) == Position(2, 1, 2)


def test_lines_end_where_an_editor_ends_them_never_at_nel_ls_ps() -> None:
    text = "a\x85b\u2028c\u2029d"
    assert LineTable(text).position(6) == Position(1, 7, 6)  # editors' breaks only


def test_a_spec_holding_nel_ls_or_ps_is_located_as_an_editor_counts_lines(
    tmp_path: Path,
) -> None:
    """YAML 1.1 ends a line at U+0085, U+2028 and U+2029, which an editor shows inside one:
    every position after such a character was lines off."""
    from promptc.errors import PromptcErrors
    from promptc.spec.lower import compile_spec

    spec = tmp_path / "s.yaml"
    spec.write_text(
        'promptc: 1\nname: s\ndescription: "a\u2028b\u2029c\x85d"\ninstruction: x\n'
        "inputs: {q: {type: text}}\noutputs: {a: {type: text}}\nmodel: {name: m}\n"
        "bogus_key: 1\n",
        encoding="utf-8",
    )
    with pytest.raises(PromptcErrors) as e:
        compile_spec(spec)
    assert [x.format() for x in e.value.errors] == [
        f"{spec}:8:1: bogus_key: unknown key 'bogus_key'"
    ]


def test_spans_compare_by_offsets_and_show_positions() -> None:
    lines = LineTable("A[1]: yes\nA[2]: no")
    span = lines.span(16, 18)
    assert span == Span(16, 18, LineTable("other text"))
    assert hash(span) == hash(Span(16, 18, lines))
    assert (span.start, span.end) == (Position(2, 7, 16), Position(2, 9, 18))
    assert span.text() == "no"
    assert str(span) == "2:7-2:9"
    assert span.to_dict() == {
        "start": {"line": 2, "col": 7, "offset": 16},
        "end": {"line": 2, "col": 9, "offset": 18},
    }


@pytest.mark.parametrize(
    ("text", "offset", "kwargs", "expected"),
    [
        ("A[1]: yes", 6, {}, "'yes'"),
        ("A[1]: yes", 6, {"quote": False}, "yes"),
        ("A[1]: yes", 9, {}, "end of the answer"),
        ("A[1]: yes   ", 9, {"end": "end of output"}, "end of output"),
        ("x\n\nmore", 1, {}, "a line break"),
        ("x" * 50, 0, {"limit": 10, "quote": False}, "x" * 9 + "…"),
        ("first line\nsecond", 0, {}, "'first line'"),
    ],
)
def test_excerpt(text: str, offset: int, kwargs: dict[str, object], expected: str) -> None:
    assert excerpt(text, offset, **kwargs) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "shown", "kind"),
    [
        (None, "null", "null"),
        (True, "a boolean true", "a boolean"),
        (5, "an integer 5", "a number"),
        (2.5, "a number 2.5", "a number"),
        ("abc", "a string 'abc'", "a string"),
        ("x" * 50, "a string '" + "x" * 37 + "…'", "a string"),
        ([1], "a list", "a list"),
        ({"a": 1}, "a mapping", "a mapping"),
    ],
)
def test_describe(value: object, shown: str, kind: str) -> None:
    assert describe(value) == shown
    assert describe(value, show=False) == kind


@pytest.mark.parametrize(
    ("name", "label"),
    [("premise", "Premise"), ("passage_text", "Passage text"), ("user-query", "User query")],
)
def test_default_label(name: str, label: str) -> None:
    assert default_label(name) == label


def test_canonical_json_is_one_spelling() -> None:
    assert canonical_json({"b": [1, "é"], "a": None}) == '{"a":null,"b":[1,"é"]}'
    assert sha256_text("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("7.50", "7.5"),
        ("18", "18"),
        ("-0", "0"),
        ("0.000", "0"),
        ("1E+3", "1000"),
        ("-2.5", "-2.5"),
    ],
)
def test_decimal_text(value: str, text: str) -> None:
    assert decimal_text(Decimal(value)) == text


def test_write_atomic_replaces_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    write_atomic(target, ["a", "b"])
    assert target.read_text() == "a\nb\n"
    write_atomic(target, ["whole text"])
    assert target.read_text() == "whole text\n"

    def broken() -> object:
        yield "first"
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_atomic(target, broken())  # type: ignore[arg-type]
    assert target.read_text() == "whole text\n"  # the old file, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]  # no temporary left


def test_write_atomic_writes_bytes_as_they_are_and_replaces_a_link(tmp_path: Path) -> None:
    # A chart (PNG bytes) goes through the same writer: whole, and a link left where it goes
    # is replaced, never followed to the file it names.
    elsewhere = tmp_path / "elsewhere.png"
    elsewhere.write_bytes(b"theirs")
    target = tmp_path / "chart.png"
    target.symlink_to(elsewhere)
    write_atomic(target, b"\x89PNG\r\n\x1a\n\x00")
    assert target.read_bytes() == b"\x89PNG\r\n\x1a\n\x00" and not target.is_symlink()
    assert elsewhere.read_bytes() == b"theirs"


def test_write_output_writes_into_a_named_pipe_and_never_replaces_it(tmp_path: Path) -> None:
    # ``-o /dev/null`` or ``-o PIPE``: a rename would put a regular file where the pipe (or the
    # device) was; the text goes into it, as a shell tool writes it.
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(pipe.read_text()), daemon=True)
    reader.start()
    write_output(pipe, ["a", "b"])
    reader.join(timeout=20)
    assert got == ["a\nb\n"]
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)
    # A link anyone could plant is replaced, never followed to the pipe it names.
    link = tmp_path / "link"
    link.symlink_to(pipe)
    write_output(link, ["mine"])
    assert link.read_text() == "mine\n" and not link.is_symlink()
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)
    # A regular file is written whole, as write_atomic writes it.
    plain = tmp_path / "plain.jsonl"
    write_output(plain, ["x"])
    assert plain.read_text() == "x\n"


def test_write_atomic_replaces_a_pipe_planted_in_a_folder(tmp_path: Path) -> None:
    # A build folder's own file: whatever was planted under its name is replaced (writing
    # into a pipe no one reads would never end).
    pipe = tmp_path / "results.jsonl"
    os.mkfifo(pipe)
    write_atomic(pipe, ["row"])
    assert pipe.read_text() == "row\n" and stat.S_ISREG(os.lstat(pipe).st_mode)


def test_write_output_writes_through_dev_stdout(tmp_path: Path) -> None:
    # /dev/stdout is the system's link to the process's own output: redirected to a file, the
    # text lands in that file, and the link in /dev stays a link.
    out = tmp_path / "captured.txt"
    code = "from promptc.text import write_output\nwrite_output('/dev/stdout', ['to stdout'])\n"
    with out.open("w") as f:
        subprocess.run([sys.executable, "-c", code], stdout=f, check=True)
    assert out.read_text() == "to stdout\n"
    assert os.path.islink("/dev/stdout")


def test_an_interrupted_writer_never_leaves_a_half_file(tmp_path: Path) -> None:
    target = tmp_path / "big.txt"
    write_atomic(target, ["old"])
    code = (
        "import os, signal\n"
        "from promptc.text import write_atomic\n"
        "def lines():\n"
        "    for i in range(100000):\n"
        "        if i == 50000:\n"
        "            os.kill(os.getpid(), signal.SIGKILL)\n"
        "        yield 'x' * 100\n"
        f"write_atomic({str(target)!r}, lines())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], check=False)
    assert proc.returncode == -9
    assert target.read_text() == "old\n"


def test_cache_dir_honours_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("PROMPTC_CACHE_DIR", raising=False)
    assert cache_dir() == tmp_path / ".cache" / "promptc"
    monkeypatch.setenv("XDG_CACHE_HOME", "~/xdg")
    assert cache_dir() == tmp_path / "xdg" / "promptc"
    monkeypatch.setenv("PROMPTC_CACHE_DIR", "~/mine")
    assert cache_dir() == tmp_path / "mine"
    # Both caches live there: responses and embeddings.
    from promptc.run.cache import default_cache_path
    from promptc.select.embed import resolve_cache_dir

    assert default_cache_path() == tmp_path / "mine" / "responses.sqlite"
    assert resolve_cache_dir(None) == tmp_path / "mine"
    assert os.path.isabs(default_cache_path())
