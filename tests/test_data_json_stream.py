"""A JSON array data file is read as a stream: the same items, ids and file:line:col as the
whole file decoded at once, at every chunk boundary, in memory that does not grow with it."""

from __future__ import annotations

import hashlib
import json
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from promptc.errors import PromptcErrors
from promptc.spec import data as data_module
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
    chunk=st.sampled_from([1, 2, 3, 7, 64]),
    bom=st.booleans(),
)
def test_stream_reads_what_a_whole_decode_reads(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    questions: list[str],
    gaps: list[str],
    chunk: int,
    bom: bool,
) -> None:
    monkeypatch.setattr(data_module, "_JSON_CHUNK", chunk)
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


@pytest.mark.parametrize("chunk", [1, 5, 1 << 20])
@pytest.mark.parametrize(("content", "expected"), list(ERRORS.values()), ids=list(ERRORS))
def test_errors_are_located_at_any_chunk_size(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    content: str | bytes,
    expected: str,
    chunk: int,
) -> None:
    monkeypatch.setattr(data_module, "_JSON_CHUNK", chunk)
    raw = content if isinstance(content, bytes) else content.encode("utf-8")
    (tmp_path / "rows.json").write_bytes(raw)
    (tmp_path / "spec.yaml").write_text(SPEC, encoding="utf-8")
    with pytest.raises(PromptcErrors) as info:
        compile_spec(str(tmp_path / "spec.yaml"))
    assert expected in info.value.format()


def test_memory_does_not_grow_with_the_array(tmp_path: Path) -> None:
    """60,000 rows of 300 characters (18 MB): what is held is the offset table and a chunk or
    two of text, not the file's text or its decoded objects."""
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
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB for a {size / 2**20:.1f} MiB file"


def test_an_element_past_the_cap_is_an_error_at_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(data_module, "MAX_JSON_ROW_BYTES", 1000)
    monkeypatch.setattr(data_module, "_JSON_CHUNK", 64)
    big = json.dumps({"qid": "b", "question": "y" * 5000})
    (tmp_path / "rows.json").write_text(f'[{{"qid": "a", "question": "x"}},\n {big}]')
    (tmp_path / "spec.yaml").write_text(SPEC, encoding="utf-8")
    with pytest.raises(PromptcErrors) as info:
        compile_spec(str(tmp_path / "spec.yaml"))
    assert "rows.json:2:2: invalid JSON: an element takes more than 0 MiB" in info.value.format()


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
