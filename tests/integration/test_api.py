"""The public API, used as a user would: only names of ``promptc.__all__``, the whole loop —
load, requests, build, run on the embedded model (sync, then async: resumed), parse, evaluate
— on the real model (marker ``llm``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import promptc
import pytest
from llm_server import model_in_cache

SPECS = Path(__file__).resolve().parents[2] / "specs"


@pytest.mark.llm
def test_the_whole_loop_through_public_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("PROMPTC_CACHE_DIR", str(model_in_cache(tmp_path / "cache")))
    spec = SPECS / "nli.yaml"
    data = tmp_path / "nli4.json"  # its first 4 items, with their gold labels: 2 requests of 2
    rows = json.loads((SPECS / "data" / "nli.json").read_text(encoding="utf-8"))
    data.write_text(json.dumps(rows[:4]), encoding="utf-8")

    task = promptc.load_spec(spec, strategy="batch", batch_size=2, data=data)
    requests = list(promptc.iter_requests(task))
    assert all(isinstance(r, promptc.Request) for r in requests)
    assert [len(r.item_ids) for r in requests] == [2, 2]
    assert requests[0].grammar.json_schema["type"] == "object"

    build = promptc.write_build(task, tmp_path / "nli")
    assert isinstance(build, promptc.Build)
    assert sorted(build.requests) == [r.id for r in requests]

    lines: list[str] = []
    result = promptc.run_build(build, local=True, parse=True, concurrency=1, progress=lines.append)
    assert isinstance(result, promptc.RunResult)
    assert result.failed == [] and result.answered == 2
    assert lines, "progress lines"
    results = build.results()
    assert len(results) == 4 and {r["item_id"] for r in results} == {i.id for i in task.items}

    # The same run awaited: everything is answered already, so it resumes and sends nothing.
    again = asyncio.run(promptc.run_build_async(build.folder, local=True, parse=True))
    assert (again.skipped, again.sent) == (2, 0)

    first = json.loads((build.folder / "outputs.jsonl").read_text().splitlines()[0])
    parsed = build.parse(first["id"], first["output"])
    assert all(isinstance(x, promptc.ItemResult) for x in parsed)
    assert [x.item_id for x in parsed[:2]] == list(build.requests[first["id"]].item_ids)
    assert promptc.parse_output(task, requests[0], first["output"]) == parsed

    reopened = promptc.open_build(build.folder)
    assert reopened.task.name == "nli"

    report = promptc.evaluate(spec, [reopened], data=data)
    assert [v["variant"] for v in report["variants"]] == ["batch-2"]
    assert report["items"] == 4


def test_load_raises_every_error_check_reports(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("promptc: 1\nname: x\ninputs: {}\noutputs: {}\nbogus: 1\n", encoding="utf-8")
    with pytest.raises(promptc.PromptcErrors) as caught:
        promptc.load_spec(spec)
    assert len(caught.value) >= 2
    assert all(isinstance(e, promptc.PromptcError) for e in caught.value)
    assert all(str(spec) in e.format() for e in caught.value)
    # A bound on the errors keeps one at least: none kept would read as a valid spec.
    for bad in (0, -1, "x", True):
        with pytest.raises(promptc.PromptcError, match="max_errors is"):
            promptc.load_spec(spec, max_errors=bad)  # type: ignore[arg-type]
    with pytest.raises(promptc.PromptcErrors) as caught:
        promptc.load_spec(spec, max_errors=1)
    assert len(caught.value) == 1 and caught.value.omitted >= 1


def test_write_build_refuses_a_task_loaded_for_checking(tmp_path: Path) -> None:
    # digests=False reads the files without their sha256: a build of it would name none, and
    # would not be the build promptc build writes.
    spec = Path(__file__).resolve().parents[2] / "specs" / "sentiment.yaml"
    task = promptc.load_spec(spec, digests=False)
    with pytest.raises(promptc.PromptcError, match="digests=False") as e:
        promptc.write_build(task, tmp_path / "b")
    assert e.value.code == "no-digests" and not (tmp_path / "b").exists()
    with pytest.raises(promptc.PromptcError, match="expected a Task"):
        promptc.write_build("spec.yaml", tmp_path / "b")  # type: ignore[arg-type]


def test_arguments_of_the_wrong_kind_are_promptc_errors_naming_them(tmp_path: Path) -> None:
    # A caller's mistake is said as promptc's errors are, naming the argument: not a bare
    # TypeError or AttributeError from deep inside.
    spec = Path(__file__).resolve().parents[2] / "specs" / "sentiment.yaml"
    task = promptc.load_spec(spec)
    long = "x" * 300  # a name the system refuses (a bare OSError from deep inside)
    calls = {
        "data": lambda: promptc.load_spec(spec, data=5),  # type: ignore[arg-type]
        "spec": lambda: promptc.load_spec(None),  # type: ignore[arg-type]
        "task": lambda: promptc.spec_warnings("spec.yaml"),  # type: ignore[arg-type]
        "folder": lambda: promptc.write_build(task, None),  # type: ignore[arg-type]
        "source": lambda: promptc.open_build(task),  # type: ignore[arg-type]
        "strategies": lambda: promptc.plan_spec(spec, strategies=5),  # type: ignore[arg-type]
        "options": lambda: promptc.run_build(tmp_path, {"base_url": "x"}),  # type: ignore[arg-type]
        "files": lambda: promptc.collect(tmp_path, 5),  # type: ignore[arg-type]
        "grammar": lambda: promptc.plan_spec(spec, grammar=1),  # type: ignore[arg-type]
        "model_path": lambda: promptc.plan_spec(spec, local=True, model_path=1),  # type: ignore[arg-type]
        "results": lambda: promptc.evaluate(spec, str(tmp_path)),
        "unknown run option 'concurency'": lambda: promptc.run_build(tmp_path, concurency=2),
        "grammar is None": lambda: promptc.plan_spec(spec, grammar=None),  # type: ignore[arg-type]
        "spec 'spec\\x00.yaml' holds a NUL": lambda: promptc.load_spec("spec\0.yaml"),
        "folder 'out\\x00' holds a NUL": lambda: promptc.write_build(task, "out\0"),
        f"build '{tmp_path}": lambda: promptc.run_build(tmp_path / long),
        f"results '{tmp_path}": lambda: promptc.evaluate(spec, [tmp_path / long]),
    }
    for name, call in calls.items():
        with pytest.raises(promptc.PromptcError) as e:
            call()
        assert e.value.code == "bad-argument" and e.value.message.startswith(name), name
    with pytest.raises(promptc.PromptcError, match="task is None"):
        promptc.parse_output(None, next(iter(promptc.iter_requests(task))), "x")  # type: ignore[arg-type]


def test_a_build_is_asked_of_what_is_one_and_of_its_own_requests(tmp_path: Path) -> None:
    """run_build of a spec file, Build.parse of an unknown id, parse_output of another
    build's request, a results.jsonl that is a link or no JSON: PromptcErrors saying so, never
    a bare FileExistsError, KeyError or JSONDecodeError, nor another build's items read ok."""
    spec = SPECS / "sentiment.yaml"
    with pytest.raises(promptc.PromptcError) as e:
        promptc.run_build(spec, base_url="http://127.0.0.1:9/v1")
    assert e.value.code == "not-a-build"
    built = promptc.write_build(promptc.load_spec(spec), tmp_path / "b")
    with pytest.raises(promptc.PromptcError) as e:
        built.parse("r9999", "A[1]: positive")
    assert e.value.code == "unknown-request" and "'r9999'" in e.value.message
    other = promptc.open_build(SPECS / "nli.yaml")
    foreign = next(iter(other.shapes.values()))
    with pytest.raises(promptc.PromptcError) as e:
        promptc.parse_output(built.task, foreign, "A[1]: positive")
    assert e.value.code == "unknown-item"
    (tmp_path / "b" / "results.jsonl").write_text('{"a": 1}\n{oops\n', encoding="utf-8")
    with pytest.raises(promptc.PromptcError) as e:
        built.results()
    assert e.value.code == "bad-results" and str(e.value.location).endswith("results.jsonl:2:1")
    (tmp_path / "b" / "results.jsonl").unlink()
    (tmp_path / "elsewhere.jsonl").write_text('{"secret": 1}\n', encoding="utf-8")
    (tmp_path / "b" / "results.jsonl").symlink_to(tmp_path / "elsewhere.jsonl")
    with pytest.raises(promptc.PromptcError) as e:
        built.results()
    assert e.value.code == "not-regular"


def test_a_task_read_back_from_a_build_makes_no_prompts(tmp_path: Path) -> None:
    """Build.task comes from task.json, which keeps no demos and no data: a build written
    from it would send other prompts under the spec's sha256. Refused, saying what to do."""
    built = promptc.write_build(promptc.load_spec(SPECS / "sentiment.yaml"), tmp_path / "b")
    again = promptc.open_build(tmp_path / "b")
    for call in (
        lambda: promptc.write_build(again.task, tmp_path / "c"),
        lambda: list(promptc.iter_requests(again.task)),
        lambda: promptc.spec_warnings(again.task),
    ):
        with pytest.raises(promptc.PromptcError) as e:
            call()
        assert e.value.code == "task-from-build" and "load_spec(spec)" in e.value.message
    assert not (tmp_path / "c").exists() and built.task.demos


def test_collect_and_the_ray_helpers_say_what_they_need(tmp_path: Path) -> None:
    """collect of a spec built in memory or with no file, ray helpers given no build or no
    URL: PromptcErrors saying what is needed, never Errno 20 or a bare TypeError; an
    in-memory build's summary names no folder it was never written to."""
    spec = SPECS / "sentiment.yaml"
    in_memory = promptc.open_build(spec)
    assert "→" not in in_memory.summary()
    with pytest.raises(promptc.PromptcError) as e:
        promptc.collect(in_memory, tmp_path / "out.jsonl")
    assert e.value.code == "not-a-build"
    built = promptc.write_build(promptc.load_spec(spec), tmp_path / "b")
    with pytest.raises(promptc.PromptcError) as e:
        promptc.collect(built)
    assert e.value.code == "bad-argument" and e.value.message.startswith("files is empty")
    from promptc.ray import ChatEndpoint, request_rows

    with pytest.raises(promptc.PromptcError) as e:
        list(request_rows(spec))
    assert e.value.code == "not-a-build"
    with pytest.raises(promptc.PromptcError) as e:
        ChatEndpoint(None)  # type: ignore[arg-type]
    assert e.value.code == "bad-argument"
