"""A JSON array data file: the same items, ids and file:line:col as an independent count
finds, with any spacing, line ends and byte order mark; held whole while it is read (about
twice its size), never as its decoded rows."""

from __future__ import annotations

import hashlib
import json
import re
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from promptc.errors import PromptcErrors
from promptc.spec.lower import compile_spec

SPEC = """\
promptc: 1
name: rows
instruction: Answer.
inputs:
  question: {type: text}
outputs:
  answer: {type: text}
data: {path: rows.json, id: qid}
model: {name: test-model}
"""

texts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=12,
)
spaces = st.sampled_from(["", " ", "\n", "\r\n", "\r", "\t", "\n  ", " \r\n "])


def where_objects_start(text: str) -> list[tuple[int, int]]:
    """(line, col) of each top-level element of a JSON array, by an independent count."""
    normal = text.replace("\r\n", "\n").replace("\r", "\n")
    decoder = json.JSONDecoder()
    out = []
    i = normal.index("[") + 1
    while True:
        while normal[i] in " \t\n":
            i += 1
        if normal[i] == "]":
            return out
        line = normal.count("\n", 0, i) + 1
        out.append((line, i - (normal.rfind("\n", 0, i) + 1) + 1))
        _, i = decoder.raw_decode(normal, i)
        while normal[i] in " \t\n":
            i += 1
        if normal[i] == ",":
            i += 1


def array_text(rows: list[tuple[str, str]], gaps: list[str]) -> str:
    parts = [gaps[0], "["]
    for k, (qid, question) in enumerate(rows):
        if k:
            parts.append(",")
        parts.append(gaps[(k + 1) % len(gaps)])
        parts.append(json.dumps({"qid": qid, "question": question}, ensure_ascii=k % 2 == 0))
        parts.append(gaps[(k + 2) % len(gaps)])
    parts.append("]")
    parts.append(gaps[-1])
    return "".join(parts)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    questions=st.lists(texts, min_size=1, max_size=12),
    gaps=st.lists(spaces, min_size=1, max_size=5),
    bom=st.booleans(),
)
def test_an_array_reads_what_a_whole_decode_reads(
    tmp_path: Path,
    questions: list[str],
    gaps: list[str],
    bom: bool,
) -> None:
    rows = [(f"q{k}", q) for k, q in enumerate(questions)]
    text = array_text(rows, gaps)
    raw = (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8")
    (tmp_path / "rows.json").write_bytes(raw)
    (tmp_path / "spec.yaml").write_text(SPEC, encoding="utf-8")
    task = compile_spec(str(tmp_path / "spec.yaml"))
    assert [(i.id, i.inputs["question"]) for i in task.items] == rows
    # Read back by position, as selection and rendering do, and in order, as a build does.
    assert [task.items[k].inputs["question"] for k in reversed(range(len(rows)))] == [
        q for _, q in reversed(rows)
    ]
    starts = where_objects_start(text)
    assert [(i.location.line, i.location.col) for i in task.items] == starts
    assert task.data is not None
    assert task.data.sha256 == hashlib.sha256(raw).hexdigest()


ERRORS = {
    "split-object": (
        '[{"qid": "a", "question": "x"}, {"qid": "b", "question": ',
        "1:58: invalid JSON",
    ),
    "bad-later-line": (
        '[{"qid": "a", "question": "x"},\r\n {"qid": "b", "question": }]',
        "rows.json:2:27: invalid JSON: Expecting value",
    ),
    "not-closed": ('[{"qid": "a", "question": "x"}\n', "rows.json:2:1: invalid JSON: the array"),
    "extra": ('[{"qid": "a", "question": "x"}] [', "rows.json:1:33: invalid JSON: extra data"),
    "duplicate": (
        '[{"qid": "a", "question": "x"},\n  {"qid": "a", "question": "y"}]',
        "rows.json:2:3: duplicate item id 'a'",
    ),
    "not-utf8": (b'[{"qid": "a", "question": "\xff"}]', "rows.json:1:28: data file is not UTF-8"),
}


def with_line_ends(content: str | bytes, line_end: str) -> bytes:
    """``content`` with each of its line breaks written as ``line_end``."""
    raw = content if isinstance(content, bytes) else content.encode("utf-8")
    return re.sub(rb"\r\n|\r|\n", line_end.encode("ascii"), raw)


@pytest.mark.parametrize("line_end", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
@pytest.mark.parametrize(("content", "expected"), list(ERRORS.values()), ids=list(ERRORS))
def test_errors_are_located_with_any_line_ends(
    tmp_path: Path, content: str | bytes, expected: str, line_end: str
) -> None:
    raw = with_line_ends(content, line_end)
    (tmp_path / "rows.json").write_bytes(raw)
    (tmp_path / "spec.yaml").write_text(SPEC, encoding="utf-8")
    with pytest.raises(PromptcErrors) as info:
        compile_spec(str(tmp_path / "spec.yaml"))
    assert expected in info.value.format()


def test_memory_is_the_text_not_the_decoded_rows(tmp_path: Path) -> None:
    """60,000 rows of 300 characters (18 MB): what is held at the peak is the file's bytes and
    its text, once each, and the offset table; never the decoded rows (as many megabytes
    again), which are let go one by one."""
    filler = "x" * 280
    with (tmp_path / "rows.json").open("w", encoding="utf-8") as f:
        f.write("[\n")
        for k in range(60_000):
            f.write(("," if k else "") + json.dumps({"qid": f"q{k}", "question": filler}) + "\n")
        f.write("]\n")
    size = (tmp_path / "rows.json").stat().st_size
    (tmp_path / "spec.yaml").write_text(SPEC, encoding="utf-8")
    tracemalloc.start()
    try:
        task = compile_spec(str(tmp_path / "spec.yaml"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(task.items) == 60_000
    assert task.items[59_999].id == "q59999"
    assert size > 17_000_000
    assert peak < 2.3 * size, f"peak {peak / 2**20:.1f} MiB for a {size / 2**20:.1f} MiB file"


def test_an_element_of_any_size_is_read_and_located(tmp_path: Path) -> None:
    """No element is too large to read: the file is held whole, and an element of 1.9 MB
    (far past any read-ahead; an input a message can still carry) is one item at its own
    line and column."""
    big = json.dumps({"qid": "b", "question": "y" * 1_900_000})
    (tmp_path / "rows.json").write_text(f'[{{"qid": "a", "question": "x"}},\n {big}]')
    (tmp_path / "spec.yaml").write_text(SPEC, encoding="utf-8")
    task = compile_spec(str(tmp_path / "spec.yaml"))
    assert [(i.id, i.location.line, i.location.col) for i in task.items] == [
        ("a", 1, 2),
        ("b", 2, 2),
    ]
    assert task.items[1].inputs["question"] == "y" * 1_900_000


def test_lone_surrogates_are_errors_at_their_row(tmp_path: Path) -> None:
    """A JSON escape can write half of a surrogate pair, which no UTF-8 text holds: in an
    input or an id it is an error naming the row; other non-ASCII text is read as is."""
    (tmp_path / "spec.yaml").write_text(SPEC, encoding="utf-8")
    rows = (
        '[{"qid": "a", "question": "caf\\u00e9 \\u2212 \\ud83d\\ude00"},\n'
        ' {"qid": "b", "question": "half \\ud800 a pair"},\n'
        ' {"qid": "\\udfff", "question": "fine"}]\n'
    )
    (tmp_path / "rows.json").write_text(rows, encoding="utf-8")
    with pytest.raises(PromptcErrors) as info:
        compile_spec(tmp_path / "spec.yaml")
    found = sorted((e.code, str(e.location).rsplit("/", 1)[-1]) for e in info.value.errors)
    assert found == [("lone-surrogate", "rows.json:2:2"), ("lone-surrogate-id", "rows.json:3:2")]
    (tmp_path / "rows.json").write_text(rows.split("\n")[0].rstrip(",") + "]\n", encoding="utf-8")
    (item,) = compile_spec(tmp_path / "spec.yaml").items
    assert item.inputs["question"] == "café − \U0001f600"


@pytest.mark.parametrize(
    ("content", "found"),
    [
        (b"", "an empty file"),
        (b"  \r\n ", "an empty file"),
        (b'\n  {"qid": "a"}', "an object"),
        (b"\xef\xbb\xbf7", "a number"),
        (b"nonsense", "null"),
    ],
    ids=["empty", "blank", "object", "bom-number", "garbage"],
)
def test_a_file_that_is_not_an_array_says_what_it_holds(
    tmp_path: Path, content: bytes, found: str
) -> None:
    (tmp_path / "rows.json").write_bytes(content)
    (tmp_path / "spec.yaml").write_text(SPEC, encoding="utf-8")
    with pytest.raises(PromptcErrors) as info:
        compile_spec(str(tmp_path / "spec.yaml"))
    assert f"expected a JSON array of objects, found {found}" in info.value.format()


def test_a_bad_byte_is_located_on_its_own_line(tmp_path: Path) -> None:
    """The first byte that is not UTF-8, at its line and column (characters, as an editor
    counts), after line breaks of every kind and non-ASCII text."""
    raw = '[{"qid": "a", "question": "caf\u00e9"},\r\n{"qid": "b",\r "question": "\u00e9\u00e9'
    (tmp_path / "rows.json").write_bytes(raw.encode("utf-8") + b'\xc3("}]')
    (tmp_path / "spec.yaml").write_text(SPEC, encoding="utf-8")
    with pytest.raises(PromptcErrors) as info:
        compile_spec(str(tmp_path / "spec.yaml"))
    (error,) = info.value.errors
    assert str(error.location).endswith("rows.json:3:17")
    assert error.message == "data file is not UTF-8 text: invalid byte 0xc3"
