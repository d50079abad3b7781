"""The build folder's one reader: what every command reads of a build (parse, run, collect,
diff, eval) goes through :mod:`promptc.build`'s readers, which refuse a build of another format
with a request to rebuild, take no file name from the folder that leaves it, read nothing
without a bound, and read back exactly what the writer wrote."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from promptc.build import (
    BatchLine,
    assemble,
    build,
    grammar_text,
    read_manifest,
    read_requests,
    read_task,
)
from promptc.build import files as build_files
from promptc.build.targets import NAMES
from promptc.diff.views import read_view
from promptc.errors import Location, PromptcError
from promptc.eval.results import read_variant
from promptc.parse.build_input import open_build
from promptc.run.collect import collect
from promptc.spec.lower import compile_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"

#: Every command's way into a build folder.
READERS: dict[str, Callable[[Path], Any]] = {
    "read_manifest": read_manifest,
    "read_requests": read_requests,
    "read_task": read_task,
    "parse (open_build)": open_build,
    "diff (read_view)": read_view,
    "eval (read_variant)": lambda b: read_variant(b, compile_spec(SPECS / "sentiment.yaml")),
    "collect": lambda b: collect(b, b / "results.jsonl"),
}


@pytest.fixture
def sentiment(tmp_path: Path) -> Path:
    out = tmp_path / "b"
    build(compile_spec(SPECS / "sentiment.yaml"), out)
    (out / "results.jsonl").write_text("", encoding="utf-8")  # for eval and collect
    return out


def _set_format(out: Path, value: object) -> None:
    path = out / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    if value is None:
        del manifest["build_format"]
    else:
        manifest["build_format"] = value
    path.write_text(json.dumps(manifest), encoding="utf-8")


@pytest.mark.parametrize("reader", READERS.values(), ids=list(READERS))
@pytest.mark.parametrize(
    ("found", "message"),
    [
        (
            None,
            (
                "manifest.json names no build format (the build was made by an older promptc); "
                "this promptc reads build format 1"
            ),
        ),
        (2, "manifest.json has build format 2; this promptc reads build format 1"),
        ("1", "manifest.json has build format '1'; this promptc reads build format 1"),
    ],
    ids=["none", "newer", "text"],
)
def test_a_build_of_another_format_is_refused_by_every_reader(
    sentiment: Path, reader: Callable[[Path], Any], found: object, message: str
) -> None:
    _set_format(sentiment, found)
    with pytest.raises(PromptcError) as e:
        reader(sentiment)
    assert e.value.code == "build-format"
    assert e.value.format() == (
        f"{sentiment / 'manifest.json'}: {message} (rebuild it with promptc build SPEC -o DIR)"
    )


def test_the_cli_refuses_an_old_build_with_exit_2(
    sentiment: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from promptc.cli.app import run

    _set_format(sentiment, None)
    outputs = sentiment / "outputs.jsonl"
    outputs.write_text("", encoding="utf-8")
    assert run(["parse", str(sentiment), str(outputs)]) == 2
    err = capsys.readouterr().err
    assert "manifest.json names no build format" in err and "Traceback" not in err


@pytest.mark.parametrize("target", NAMES)
@pytest.mark.parametrize("spec", ["sentiment.yaml", "commonsense-qa.yaml", "math.yaml"])
def test_the_reader_reads_back_what_the_writer_wrote(
    tmp_path: Path, target: str, spec: str
) -> None:
    task = compile_spec(SPECS / spec)
    planned = assemble(task, target=target)
    build(task, tmp_path, target=target)
    read = read_requests(tmp_path)
    assert [r.id for r in read] == [r.id for r in planned.requests]
    for got, made in zip(read, planned.requests):
        assert got.kind is made.kind and got.item_ids == made.batch.item_ids
        assert [dict(m) for m in got.messages] == [
            {"role": m.role, "content": m.content} for m in made.messages
        ]
        assert got.params == dict(made.params)
        want = made.batch.item_ids[made.batch.target] if made.batch.target is not None else None
        assert got.target_item == want
        assert got.grammar is not None and (tmp_path / f"{got.grammar}.gbnf").is_file()
        # A request's own grammar (choices_from), else its size's shared one.
        own = tmp_path / "grammars" / f"{got.id}.gbnf"
        shared = tmp_path / f"{got.grammar}.gbnf"
        expected = (own if own.is_file() else shared).read_text(encoding="utf-8")
        assert grammar_text(tmp_path, got, ".gbnf") == expected


@settings(max_examples=100, deadline=None)
@given(
    index=st.integers(0, 10**6),
    request=st.text(min_size=1, max_size=10),
    ids=st.lists(st.text(max_size=6), min_size=1, max_size=5),
    target=st.integers(0, 4) | st.none(),
    sims=st.lists(st.floats(-1, 1), min_size=1, max_size=5) | st.none(),
    files=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=2),
)
def test_a_batches_line_reads_back_as_written(
    index: int,
    request: str,
    ids: list[str],
    target: int | None,
    sims: list[float] | None,
    files: dict[str, str],
) -> None:
    target = None if target is None else min(target, len(ids) - 1)
    line = BatchLine(index, request, tuple(ids), target, sims and tuple(sims), "a" * 64, "x", files)
    text = line.text()
    assert text == json.dumps(json.loads(text), sort_keys=True, ensure_ascii=False)
    assert BatchLine.read(text, Location("batches.jsonl", 1, 1)) == line


# ---- what a build folder cannot make promptc read ----------------------------------------


def _rewrite_batches(
    out: Path, change: Callable[[dict[str, Any]], None], rehash: bool = True
) -> None:
    """Edits each line of ``batches.jsonl``; with ``rehash``, the manifest's sha256 of it too,
    as anyone can: what the readers check past the hash."""
    path = out / "batches.jsonl"
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    for line in lines:
        change(line)
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    if rehash:
        _rehash_batches(out)


def _rehash_batches(out: Path) -> None:
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    digest = hashlib.sha256((out / "batches.jsonl").read_bytes()).hexdigest()
    manifest["files"]["batches.jsonl"] = digest
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_an_edited_batches_file_is_refused(tmp_path: Path) -> None:
    """Its item ids say which items a batch target's answers are credited to: an edit (two
    ids swapped) would credit an answer to another item."""
    out = tmp_path / "b"
    build(compile_spec(SPECS / "sentiment.yaml"), out, target="openai-batch")
    _rewrite_batches(out, lambda line: line["item_ids"].reverse(), rehash=False)
    with pytest.raises(PromptcError) as e:
        read_requests(out)
    assert e.value.code == "build-modified"
    assert e.value.message == (
        "batches.jsonl does not match the sha256 that manifest.json lists for it; the build "
        "folder was changed after promptc build"
    )


@pytest.mark.parametrize("stem", ["../secret", "/etc/passwd", "answer/../../x", "a\\b"])
def test_a_grammar_stem_outside_the_folder_is_refused(tmp_path: Path, stem: str) -> None:
    out = tmp_path / "b"
    build(compile_spec(SPECS / "sentiment.yaml"), out, target="openai-batch")
    (tmp_path / "secret.gbnf").write_text('root ::= "x"', encoding="utf-8")
    _rewrite_batches(out, lambda line: line.update(grammar=stem))
    request = read_requests(out)[0]
    assert request.grammar == stem
    with pytest.raises(PromptcError) as e:
        grammar_text(out, request, ".gbnf")
    assert e.value.code == "outside-build"
    assert e.value.message == (
        f"grammar file {stem + '.gbnf'!r} is not a plain file name inside the build folder"
    )


def test_a_symlinked_grammar_file_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "b"
    build(compile_spec(SPECS / "commonsense-qa.yaml"), out)
    own = out / "grammars" / "r0001.gbnf"
    assert own.is_file()
    outside = tmp_path / "elsewhere.gbnf"
    outside.write_text('root ::= "x"', encoding="utf-8")
    own.unlink()
    own.symlink_to(outside)
    with pytest.raises(PromptcError) as e:
        grammar_text(out, read_requests(out)[0], ".gbnf")
    assert e.value.code == "outside-build"
    assert "'grammars/r0001.gbnf'" in e.value.message


def test_reads_are_bounded(
    sentiment: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(build_files, "MAX_LINE_BYTES", 1000)
    with pytest.raises(PromptcError) as e:
        read_requests(sentiment)
    assert e.value.code == "too-large"
    assert e.value.format() == (
        f"{sentiment / 'requests.jsonl'}:1:1: this line of requests.jsonl is longer than 1000 "
        "bytes, more than promptc reads of a build file"
    )
    monkeypatch.setattr(build_files, "MAX_FILE_BYTES", 100)
    with pytest.raises(PromptcError) as e:
        read_manifest(sentiment)
    assert e.value.code == "too-large"
    assert e.value.message == (
        "manifest.json is larger than 100 bytes, more than promptc reads of a build file"
    )


def test_a_request_out_of_step_with_batches_is_refused(sentiment: Path) -> None:
    _rewrite_batches(sentiment, lambda line: line.update(request=line["request"] + "x"))
    with pytest.raises(PromptcError) as e:
        read_requests(sentiment)
    assert e.value.code == "bad-requests-line"
    assert e.value.format() == (
        f"{sentiment / 'requests.jsonl'}:1:1: request r0001 has no line of its own in "
        "batches.jsonl (found one for request r0001x)"
    )


def test_a_malformed_batches_line_is_refused_at_its_line(sentiment: Path) -> None:
    _rewrite_batches(sentiment, lambda line: line.update(target=99))
    with pytest.raises(PromptcError) as e:
        read_requests(sentiment)
    assert e.value.code == "bad-batches-line"
    assert e.value.format() == (
        f"{sentiment / 'batches.jsonl'}:1:1: expected index, request, item_ids, target, "
        "similarities, prompt_sha256, grammar and grammar_files, as promptc build writes them"
    )


def test_a_manifest_naming_no_known_target_is_refused(sentiment: Path) -> None:
    path = sentiment / "manifest.json"
    path.write_text(
        path.read_text(encoding="utf-8").replace('"target": "chat"', '"target": "fax"'),
        encoding="utf-8",
    )
    with pytest.raises(PromptcError) as e:
        read_requests(sentiment)
    assert e.value.code == "bad-target"
    assert e.value.message == (
        "manifest.json names the target 'fax'; expected chat, openai-batch or vllm-batch"
    )


def test_a_manifest_that_is_not_json_is_refused(sentiment: Path) -> None:
    (sentiment / "manifest.json").write_text("[1, 2", encoding="utf-8")
    with pytest.raises(PromptcError) as e:
        read_requests(sentiment)
    assert e.value.code == "bad-manifest"
    assert e.value.message == (
        "cannot read manifest.json: Expecting ',' delimiter: line 1 column 6 (char 5)"
    )
    (sentiment / "manifest.json").write_text("[]", encoding="utf-8")
    with pytest.raises(PromptcError) as e:
        read_requests(sentiment)
    assert e.value.message == "cannot read manifest.json: it is not a JSON object"


def test_a_build_file_that_is_not_utf8_is_refused(sentiment: Path) -> None:
    (sentiment / "batches.jsonl").write_bytes(b'{"index": "\xff"}\n')
    _rehash_batches(sentiment)
    with pytest.raises(PromptcError) as e:
        read_requests(sentiment)
    assert (e.value.code, e.value.format()) == (
        "not-utf8",
        f"{sentiment / 'batches.jsonl'}:1:1: batches.jsonl is not UTF-8 text",
    )


def test_edited_or_broken_task_files_are_refused_word_for_word(sentiment: Path) -> None:
    items = sentiment / "items.jsonl"
    items.write_text(items.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    with pytest.raises(PromptcError) as e:
        read_task(sentiment)
    assert (e.value.code, e.value.format()) == (
        "build-modified",
        (
            f"{items}: items.jsonl does not match the sha256 that manifest.json lists for it; the "
            "build folder was changed after promptc build (rebuild it with promptc build SPEC -o DIR)"
        ),
    )
    # An items.jsonl the manifest vouches for, with a line that is no item.
    items.write_text('{"id": "s01"}\n', encoding="utf-8")
    manifest = json.loads((sentiment / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"]["items.jsonl"] = hashlib.sha256(items.read_bytes()).hexdigest()
    (sentiment / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(PromptcError) as e:
        read_task(sentiment)
    assert (e.value.code, e.value.format()) == (
        "bad-task-file",
        (
            f"{items}:1:1: cannot read items.jsonl: KeyError: 'index' (rebuild it with promptc "
            "build SPEC -o DIR)"
        ),
    )
