"""A build folder is self-contained: parse and run read everything from it, never the spec.

A build made with a strategy override (``--strategy single``), moved away from its spec, must
parse as it was built; ``promptc build SPEC -o DIR --check`` holds a build to the spec, naming
what differs; a build whose task files were edited is refused.
"""

from __future__ import annotations

import io
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from promptc.build import assemble, build
from promptc.build.task_file import ITEMS_FILE, TASK_FILE, read_task
from promptc.cli.app import run
from promptc.diff.stale import check_report
from promptc.errors import UsageError
from promptc.ir import NOWHERE
from promptc.parse.build_input import open_build
from promptc.parse.output import parse_output
from promptc.spec.lower import compile_spec

REPO = Path(__file__).resolve().parents[1]

SPECS = Path(__file__).resolve().parents[1] / "specs"


@pytest.fixture
def math_single(tmp_path: Path) -> tuple[Path, Path]:
    """specs/ copied to tmp, math.yaml built with ``single`` into another folder, specs deleted
    afterwards: the build is all that is left."""
    specs = tmp_path / "specs"
    shutil.copytree(SPECS, specs)
    task = compile_spec(specs / "math.yaml", overrides={("strategy", "kind"): "single"})
    out = tmp_path / "elsewhere" / "math"
    build(task, out)
    return out, specs


def test_task_file_round_trips_what_parsing_uses(math_single: tuple[Path, Path]) -> None:
    out, specs = math_single
    original = compile_spec(specs / "math.yaml", overrides={("strategy", "kind"): "single"})
    read = read_task(out)
    for a, b in [
        (read.inputs, original.inputs),
        (read.outputs, original.outputs),
        (read.answer_format.segments, original.answer_format.segments),
    ]:
        assert [replace(x, location=NOWHERE) for x in a] == [
            replace(x, location=NOWHERE) for x in b
        ]
    assert read.strategy.kind.name == "single" and read.strategy.batch_size == 1
    assert [(i.id, dict(i.inputs)) for i in read.items] == [
        (i.id, dict(i.inputs)) for i in original.items
    ]
    assert str(read.items[0].location) == "data/math.jsonl:1:1"


def test_parse_needs_no_spec(math_single: tuple[Path, Path]) -> None:
    out, specs = math_single
    shutil.rmtree(specs)
    loaded = open_build(out)
    assert loaded.task.strategy.kind.name == "single" and len(loaded.requests) == 20
    shape = loaded.shapes["r0001"]
    assert shape.item_ids == ("m01",)
    results = parse_output(loaded.task, shape, "A[1]: 72 - 17 = 55. The answer is 55.")
    assert [(r.item_id, r.status) for r in results] == [("m01", "ok")]


def test_open_build_of_a_spec_is_the_build_of_that_spec(tmp_path: Path) -> None:
    """Given a spec, open_build builds it in memory (as ``promptc parse SPEC`` reads it): the
    same requests, shapes and prompt hashes as the folder ``promptc build`` writes."""
    build(compile_spec(SPECS / "math.yaml"), tmp_path / "b")
    folder, spec = open_build(tmp_path / "b"), open_build(SPECS / "math.yaml")
    assert list(spec.requests) == list(folder.requests)
    assert spec.shapes == folder.shapes
    assert spec.prompts == folder.prompts
    assert [r.messages for r in spec.requests.values()] == [
        r.messages for r in folder.requests.values()
    ]
    # Its line is promptc build's, but that it names no folder: it was written nowhere.
    assert spec.summary() == folder.summary().replace(f" → {tmp_path / 'b'}", "")
    assert spec.summary().startswith("built math (auto-demo): 3 requests for 20 items")


def test_the_public_parse_output_marks_what_a_cut_reached_truncated(
    math_single: tuple[Path, Path],
) -> None:
    import promptc

    loaded = promptc.open_build(math_single[0])
    shape = loaded.shapes["r0001"]
    output = "A[1]: 72 - 17 = 55. The answer is 5"
    assert [r.status for r in promptc.parse_output(loaded.task, shape, output)] == ["ok"]
    cut = promptc.parse_output(loaded.task, shape, output, finish_reason="length")
    assert [r.status for r in cut] == ["truncated"]
    assert loaded.parse("r0001", output) == promptc.parse_output(loaded.task, shape, output)


def test_cli_parse_of_a_build_without_its_spec(math_single: tuple[Path, Path]) -> None:
    from promptc.cli.parse import run_parse

    out, specs = math_single
    shutil.rmtree(specs)
    outputs = out / "outputs.jsonl"
    outputs.write_text(
        "".join(
            json.dumps({"id": f"r{k:04d}", "output": "A[1]: So. The answer is 1."}) + "\n"
            for k in range(1, 21)
        ),
        encoding="utf-8",
    )
    stdout, stderr = io.StringIO(), io.StringIO()
    status = run_parse(str(out), str(outputs), None, "recover", "jsonl", stdout, stderr)
    rows = [json.loads(x) for x in stdout.getvalue().splitlines()]
    assert status == 0, stderr.getvalue()
    assert len(rows) == 20 and {r["status"] for r in rows} == {"ok"}
    assert len({r["item_id"] for r in rows}) == 20  # each item once, no spurious missing rows


def test_a_spec_that_does_not_match_is_refused_naming_what_differs(
    math_single: tuple[Path, Path],
) -> None:
    out, specs = math_single
    spec = str(specs / "math.yaml")  # its own strategy: auto-demo, 8 per request
    status, lines = check_report(assemble(compile_spec(spec)), out, spec)
    assert status == 1
    assert f"{out / 'manifest.json'}: stale: the build writes it otherwise" in lines
    assert f"{out / 'requests.jsonl'}: stale: the build writes it otherwise" in lines
    assert f"{out / 'task.json'}: stale: the build writes it otherwise" in lines
    assert f"{out / 'requests.jsonl'}:1: first differing request: request r0001 differs" in lines


def test_the_matching_spec_is_accepted(tmp_path: Path) -> None:
    task = compile_spec(SPECS / "sentiment.yaml")
    build(task, tmp_path / "b")
    status, lines = check_report(assemble(task), tmp_path / "b", str(SPECS / "sentiment.yaml"))
    assert (status, lines) == (0, [f"{tmp_path / 'b'}: up to date (15 files)"])
    assert open_build(tmp_path / "b").task.name == task.name


def test_check_prescribes_the_build_with_the_options_it_was_checked_with(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Following the prescription must make the build that --check holds the folder to.
    spec = tmp_path / "s.yaml"
    shutil.copytree(SPECS / "data", tmp_path / "data")
    spec.write_text((SPECS / "sentiment.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    out = tmp_path / "my build"
    options = ["--strategy", "auto-demo", "--batch-size", "4", "--target", "openai-batch"]
    assert run(["build", str(spec), "-o", str(out), *options]) == 0
    spec.write_text(spec.read_text(encoding="utf-8").replace("Classify", "Label"))
    capsys.readouterr()
    assert run(["build", str(spec), "-o", str(out), "--check", *options]) == 1
    last = capsys.readouterr().err.splitlines()[-1]
    command = f"promptc build {spec} -o '{out}' " + " ".join(options)
    assert last.endswith(f"(rebuild with {command})"), last
    assert run(["build", str(spec), "-o", str(out), *options]) == 0
    assert run(["build", str(spec), "-o", str(out), "--check", *options]) == 0


@pytest.mark.parametrize("name", [TASK_FILE, ITEMS_FILE])
def test_edited_task_files_are_refused(math_single: tuple[Path, Path], name: str) -> None:
    out, _ = math_single
    path = out / name
    path.write_text(path.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    with pytest.raises(UsageError) as e:
        open_build(out)
    assert e.value.code == "build-modified" and name in e.value.message


def test_task_files_are_byte_identical_from_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = []
    for cwd in (tmp_path, SPECS):
        monkeypatch.chdir(cwd)
        out = tmp_path / f"b{len(texts)}"
        build(compile_spec(SPECS / "math.yaml"), out)
        texts.append(((out / TASK_FILE).read_bytes(), (out / ITEMS_FILE).read_bytes()))
    assert texts[0] == texts[1]


def test_a_spec_reached_through_a_linked_folder_builds_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkout reached through a link (macOS's /tmp, a CI workspace): each item's location
    is relative to the spec's folder as it is, not through the link."""
    shutil.copytree(SPECS, tmp_path / "real")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    texts = []
    for spec in (tmp_path / "real" / "math.yaml", Path("link") / "math.yaml"):
        monkeypatch.chdir(tmp_path)
        out = tmp_path / f"b{len(texts)}"
        build(compile_spec(spec), out)
        texts.append(((out / TASK_FILE).read_bytes(), (out / ITEMS_FILE).read_bytes()))
    assert texts[0] == texts[1]
    assert b'"location": "data/math.jsonl:1:1"' in texts[0][1]


def test_the_run_section_and_the_provider_reach_the_build(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "promptc: 1\nextends: sentiment.yaml\nrun: {repair: {max_attempts: 0}}\n"
        + "model: {provider: local, max_tokens_field: max_completion_tokens}\n",
        encoding="utf-8",
    )
    shutil.copytree(SPECS / "data", tmp_path / "data")
    shutil.copy(SPECS / "sentiment.yaml", tmp_path / "sentiment.yaml")
    task = compile_spec(spec)
    assert task.run.repair_max_attempts == 0 and task.model.provider == "local"
    result = build(task, tmp_path / "b")
    params = json.loads(result.files["requests.jsonl"].splitlines()[0])["params"]
    assert "provider" not in params and "max_tokens_field" not in params  # never sent
    read = read_task(tmp_path / "b")
    assert read.run.repair_max_attempts == 0
    assert (read.model.provider, read.model.max_tokens_field) == ("local", "max_completion_tokens")


def test_a_misspelt_run_key_is_an_error(tmp_path: Path) -> None:
    from promptc.errors import PromptcError

    spec = tmp_path / "s.yaml"
    spec.write_text(
        "promptc: 1\nextends: sentiment.yaml\nrun: {repair: {tries: 1}}\n",
        encoding="utf-8",
    )
    shutil.copytree(SPECS / "data", tmp_path / "data")
    shutil.copy(SPECS / "sentiment.yaml", tmp_path / "sentiment.yaml")
    with pytest.raises(PromptcError) as e:
        compile_spec(spec)
    assert "tries" in str(e.value.format() if hasattr(e.value, "format") else e.value)


@pytest.mark.parametrize(
    ("kind", "method"),
    [("auto-demo", "sequential"), ("batch", "random"), ("single", "sequential")],
)
def test_items_file_is_the_items_in_data_order_whatever_the_selection(
    tmp_path: Path, kind: str, method: str
) -> None:
    """items.jsonl is written in the render pass when the requests take the items in data
    order, and in a pass of its own otherwise (random order): the same file either way."""
    from promptc.build.task_file import item_lines

    task = compile_spec(
        SPECS / "math.yaml",
        overrides={("strategy", "kind"): kind, ("strategy", "selection", "method"): method},
    )
    out = tmp_path / "b"
    build(task, out)
    items_text = "".join(item_lines(task))
    assert (out / ITEMS_FILE).read_text(encoding="utf-8") == items_text
    assert [json.loads(line)["index"] for line in items_text.splitlines()] == list(
        range(len(task.items))
    )
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    import hashlib

    assert (
        manifest["files"][ITEMS_FILE] == hashlib.sha256((out / ITEMS_FILE).read_bytes()).hexdigest()
    )


@settings(max_examples=200, deadline=None)
@given(
    item_id=st.text(min_size=1, max_size=8),
    index=st.integers(0, 10**6),
    question=st.text(max_size=30),
    gold=st.dictionaries(
        st.sampled_from(["answer", "reasoning", "b"]),
        st.one_of(
            st.text(max_size=5),
            st.integers(),
            st.booleans(),
            st.decimals(allow_nan=False, allow_infinity=False, places=3),
        ),
        max_size=2,
    ),
    options=st.dictionaries(
        st.sampled_from(["choices", "a"]), st.lists(st.text(max_size=4), max_size=3), max_size=2
    ),
)
def test_an_items_line_is_its_object_in_canonical_json(
    item_id: str, index: int, question: str, gold: dict[str, object], options: dict[str, list[str]]
) -> None:
    """items.jsonl's lines are written key by key: each is exactly its object's canonical
    JSON (sorted keys, text as written, exact numbers)."""
    from decimal import Decimal

    from promptc import ir
    from promptc.build.task_file import item_line

    task = compile_spec(REPO / "specs" / "math.yaml")
    item = ir.Item(
        id=item_id,
        index=index,
        inputs={"question": question},
        location=ir.Location("data.jsonl", 3, 1),
        gold=gold,  # type: ignore[arg-type]
        options={k: tuple(v) for k, v in options.items()},
    )
    expected = {
        "id": item_id,
        "index": index,
        "inputs": {"question": question},
        "question": question.strip(),  # as a prompt shows it after Q[i]:
        "location": "data.jsonl:3:1",
        "gold": {k: format(v, "f") if isinstance(v, Decimal) else v for k, v in gold.items()},
        "options": options,
    }
    line = item_line(replace(task, spec_dir="."), item)
    assert line == json.dumps(expected, sort_keys=True, ensure_ascii=False) + "\n"


def test_a_build_whose_line_ends_git_turned_into_crlf_says_so(tmp_path: Path) -> None:
    """A committed build checked out with core.autocrlf (Git for Windows' default): every
    reader said 'the build folder was changed after promptc build' and 'rebuild it', which
    gives another manifest on that machine. The error says what changed and how to keep the
    build's bytes; a file changed otherwise is said as before."""
    from promptc.errors import UsageError
    from promptc.parse.build_input import open_build

    out = tmp_path / "build"
    assert run(["build", str(SPECS / "sentiment.yaml"), "-o", str(out)]) == 0
    task = out / "task.json"
    written = task.read_bytes()
    task.write_bytes(written.replace(b"\n", b"\r\n"))
    with pytest.raises(UsageError) as e:
        open_build(out)
    assert e.value.code == "build-modified"
    assert e.value.message == (
        "task.json does not match the sha256 that manifest.json lists for it: its line ends "
        "were turned into CRLF after promptc build (as git does on checkout with "
        "core.autocrlf)"
    )
    assert e.value.hint == (
        f"keep the build's bytes as written: add '{out}/** -text' to .gitattributes and check "
        "the folder out again"
    )
    task.write_bytes(written.replace(b"\n", b"\r\n").replace(b"batch", b"Batch"))
    with pytest.raises(UsageError) as e:
        open_build(out)
    assert e.value.message.endswith("the build folder was changed after promptc build")
