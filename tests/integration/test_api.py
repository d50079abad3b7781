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
