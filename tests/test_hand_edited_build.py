"""A build folder edited by hand, its manifest's hashes updated as anyone can: whatever a value
of task.json or manifest.json becomes, reading the build back and parsing with it end in a
worded error (the type checks' ones located at the file: rebuild it), never a reader's
``TypeError``; and a repair record in
outputs.jsonl that its request could not have written is not merged."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from promptc.build import build, read_manifest, read_task
from promptc.errors import PromptcError, UsageError
from promptc.parse.build_input import open_build
from promptc.spec.lower import compile_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"

#: What a hand edit may put in place of a value.
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("edited") / "b"
    task = compile_spec(
        SPECS / "sentiment.yaml",
        overrides={("strategy", "vote"): {"rounds": 2}, ("strategy", "batch_size"): 4},
    )
    build(task, folder)
    return folder


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*path, k))
    elif isinstance(value, list):
        for k, v in enumerate(value[:3]):
            out += _paths(v, (*path, k))
    return out


def _edited(original: Path, where: Path, name: str, path: tuple[Any, ...], value: Any) -> Path:
    shutil.rmtree(where, ignore_errors=True)
    shutil.copytree(original, where)
    doc = json.loads((where / name).read_text(encoding="utf-8"))
    if path:
        node = doc
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    else:
        doc = value
    data = json.dumps(doc, sort_keys=True).encode()
    (where / name).write_bytes(data)
    manifest = json.loads((where / "manifest.json").read_text(encoding="utf-8"))
    if name != "manifest.json":
        manifest["files"][name] = hashlib.sha256(data).hexdigest()
        (where / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return where


@pytest.mark.parametrize("name", ["task.json", "manifest.json"])
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_value_of_task_or_manifest_reads_back_or_is_the_builds_error(
    original: Path, tmp_path: Path, name: str, data: st.DataObject
) -> None:
    doc = json.loads((original / name).read_text(encoding="utf-8"))
    path = data.draw(st.sampled_from(_paths(doc)))
    folder = _edited(original, tmp_path / "b", name, path, data.draw(VALUES))
    try:
        opened = open_build(folder)
        for shape in opened.shapes.values():
            opened.parse(shape.id, "A[1]: positive\nA[2]: neutral")
    except PromptcError:  # a worded error (exit 1 or 2), never a reader's TypeError
        pass


def test_a_mistyped_task_value_is_named_by_its_path(original: Path, tmp_path: Path) -> None:
    folder = _edited(original, tmp_path / "b", "task.json", ("markers", "answer"), 5)
    with pytest.raises(UsageError) as e:
        read_task(folder)
    assert e.value.message == (
        "cannot read task.json: TypeError: task.markers.answer is 5, not str"
    )
    folder = _edited(original, tmp_path / "c", "manifest.json", ("strategy", "kind"), "x")
    with pytest.raises(UsageError) as e:
        read_manifest(folder)
    assert e.value.message == (
        "cannot read manifest.json: strategy: not as promptc build writes it"
    )


def test_a_repair_record_its_request_could_not_have_written_is_not_merged(
    original: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "b"
    shutil.copytree(original, folder)
    first = json.loads((folder / "requests.jsonl").read_text(encoding="utf-8").splitlines()[0])
    other = json.loads((folder / "items.jsonl").read_text(encoding="utf-8").splitlines()[-1])
    assert other["id"] not in first["item_ids"]
    records = [
        {"attempt": 0, "item_ids": [other["id"]], "kind": "batch", "of": "r0001", "positions": [1]},
        {"attempt": 1, "item_ids": 5, "kind": "batch", "of": "r0001"},
        {"attempt": "x", "item_ids": [first["item_ids"][0]], "kind": "batch", "of": "r0001"},
    ]
    lines = [{"id": "r0001", "output": "A[1]: positive"}] + [
        {"id": f"r0001.v2.repair{k}", "output": "A[1]: negative", "repair": r}
        for k, r in enumerate(records, start=1)
    ]
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "promptc", "parse", str(folder), str(outputs)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    assert "note: 3 repair answer(s) skipped" in done.stderr, done.stderr
    rows = [json.loads(x) for x in done.stdout.splitlines()]
    assert other["id"] not in {r["item_id"] for r in rows}  # not credited


@pytest.mark.parametrize(
    ("key", "value", "said"), [("n", 5, "n is 5"), ("stream", True, "stream is True")]
)
def test_requests_asking_what_promptc_cannot_keep_are_refused(
    original: Path, tmp_path: Path, key: str, value: object, said: str
) -> None:
    """requests.jsonl edited by hand (and rehashed): n: 5 would pay five answers to keep one,
    stream every request's failure; refused by name before anything is sent."""
    from promptc.errors import UsageError
    from promptc.run.options import RunOptions
    from promptc.run.orchestrate import run_build

    folder = tmp_path / "b"
    shutil.copytree(original, folder)
    lines = (folder / "requests.jsonl").read_text(encoding="utf-8").splitlines()
    first = json.loads(lines[0])
    first["params"][key] = value
    lines[0] = json.dumps(first, sort_keys=True)
    data = ("\n".join(lines) + "\n").encode()
    (folder / "requests.jsonl").write_bytes(data)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"]["requests.jsonl"] = hashlib.sha256(data).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(UsageError) as e:
        run_build(folder, RunOptions(base_url="http://127.0.0.1:9/v1", use_cache=False))
    assert e.value.code == "bad-params" and said in e.value.message
    assert not (folder / "outputs.jsonl").exists()


def _deep(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (
            ("outputs", 0, "choices"),
            ["positive", "negative", "neutral"] + [f"c{i}" for i in range(998)],
            "outputs.sentiment.choices holds 1,001; expected at most 1,000",
        ),
        (
            ("outputs", 0, "aliases"),
            [[f"a{i}", "positive"] for i in range(1001)],
            "outputs.sentiment.aliases holds 1,001; expected at most 1,000",
        ),
        (("name",), "n" * 201, "name holds 201 characters; expected at most 200"),
        (
            ("markers", "answer"),
            "A" * 5_000_000,
            "its values hold more than 4,000,000 characters, as no spec may",
        ),
        (("markers", "answer"), "A[1]", "the marker prefix 'A[1]' holds a '['"),
        (("markers", "answer"), "", "the marker prefix '' is empty"),
        (
            ("markers", "answer"),
            "q",
            "the markers 'Q' and 'q' are the same (markers are read in any case)",
        ),
        (
            ("answer_format",),
            {"source": "{nope}", "segments": [{"field": "nope"}]},
            "answer_format does not place every output exactly once",
        ),
        (
            ("answer_format", "segments"),
            [{"field": "nope"}],
            "answer_format's segments are not those of its source",
        ),
        (("instruction",), _deep(60), "it nests deeper than 50 levels, as no spec may"),
        # Past Python's stack: written as text below.
        (("instruction",), "DEEP", "it nests deeper than 50 levels, as no spec may"),
        (
            ("strategy", "batch_size"),
            100_000,
            "strategy.batch_size 100000; expected 1 to 1,000",
        ),
    ],
    ids=[
        "choices",
        "aliases",
        "name",
        "marker-length",
        "marker-bracket",
        "marker-empty",
        "marker-clash",
        "format-unknown-field",
        "format-segments",
        "nesting",
        "deep-nesting",
        "batch-size",
    ],
)
def test_a_task_no_spec_could_give_is_refused_at_task_json(
    original: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    path: tuple[Any, ...],
    value: Any,
    problem: str,
) -> None:
    """task.json edited by hand (and rehashed) past what `promptc check` allows a spec: parse
    refuses it at the file with exit 2, at once, where parsing one line took 40 s and a
    gigabyte (100,000 choices, a 5,000,000-character marker), or failed at '<unknown>' with
    exit 1 (an answer format naming no output)."""
    from promptc.cli.app import run

    folder = _edited(original, tmp_path / "b", "task.json", path, value)
    if value == "DEEP":
        data = (
            (folder / "task.json").read_bytes().replace(b'"DEEP"', b"[" * 100_000 + b"]" * 100_000)
        )
        (folder / "task.json").write_bytes(data)
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        manifest["files"]["task.json"] = hashlib.sha256(data).hexdigest()
        (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text('{"id": "r0001", "output": "A[1]: positive"}\n', encoding="utf-8")
    assert run(["parse", str(folder), str(outputs)]) == 2
    assert capsys.readouterr().err == (
        f"error: {folder / 'task.json'}: cannot read task.json: {problem} (rebuild it with "
        "promptc build SPEC -o DIR)\n"
    )
