"""``promptc collect``: Batch-API-shaped output and error files with known contents → results
and a repair build of exactly the items that are not ok."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from promptc.build import build, read_requests
from promptc.errors import UsageError
from promptc.parse.build_input import open_build
from promptc.run.collect import collect
from promptc.run.outputs import read_outputs_file
from promptc.spec.lower import compile_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"


def _ok_line(rid: str, text: str) -> dict[str, Any]:
    return {
        "id": f"batch_req_{rid}",
        "custom_id": rid,
        "response": {
            "status_code": 200,
            "request_id": f"req_{rid}",
            "body": {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": "gpt-4o-mini",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": text},
                    }
                ],
                "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
            },
        },
        "error": None,
    }


def _answers(indices: list[int], label: str = "positive") -> str:
    return "\n".join(f"A[{i}]: {label}" for i in indices)


def _write(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


@pytest.fixture(params=["openai-batch", "vllm-batch"])
def submitted(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, str]:
    task = compile_spec(
        SPECS / "sentiment.yaml",
        overrides={("strategy", "kind"): "batch", ("strategy", "batch_size"): 4},
    )
    out = tmp_path / "build"
    build(task, out, target=request.param)
    return out, request.param


def test_collect_results_and_a_repair_build_of_the_failed_items(
    submitted: tuple[Path, str], tmp_path: Path
) -> None:
    build_dir, target = submitted
    output = _write(
        tmp_path / "output.jsonl",
        [
            _ok_line("r0001", _answers([1, 2, 3, 4])),
            _ok_line("r0002", _answers([1, 3])),  # items 2 and 4 dropped
            _ok_line("r0003", "A[1]: maybe\n" + _answers([2, 3, 4])),  # item 1 malformed
            {
                "id": "batch_req_r0005",
                "custom_id": "r0005",
                "response": {"status_code": 500, "body": {"error": {"message": "overloaded"}}},
                "error": None,
            },
            _ok_line("r9999", "A[1]: positive"),  # not a request of this build
        ],
    )
    errors = _write(
        tmp_path / "errors.jsonl",
        [
            {
                "id": "batch_req_r0004",
                "custom_id": "r0004",
                "response": None,
                "error": {"code": "server_error", "message": "try again"},
            }
        ],
    )
    result = collect(build_dir, output, errors)
    assert result.answered == 3
    assert result.failed == {
        "r0004": "error server_error: try again",
        "r0005": "HTTP 500: overloaded",
    }
    assert result.unknown == ["output.jsonl:5 ('r9999')"]
    assert result.not_ok == 2 + 1 + 4 + 4 and result.statuses["ok"] == 9
    assert result.tokens == [300, 30]
    rows = [json.loads(x) for x in (build_dir / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 20 and len({r["item_id"] for r in rows}) == 20
    not_ok = [r["item_id"] for r in rows if r["status"] != "ok"]
    assert not_ok == ["s06", "s08", "s09", "s13", "s14", "s15", "s16", "s17", "s18", "s19", "s20"]

    repair = result.repair_dir
    assert repair == build_dir / "repair" and result.repair_requests == 4
    lines = [json.loads(x) for x in (repair / "requests.jsonl").read_text().splitlines()]
    assert [x["custom_id"] for x in lines] == [
        "r0002.repair1",
        "r0003.repair1",
        "r0004.repair1",
        "r0005.repair1",
    ]
    assert all(x["url"] == "/v1/chat/completions" and x["method"] == "POST" for x in lines)
    assert ("structured_outputs" in lines[0]["body"]) == (target == "vllm-batch")
    repaired = open_build(repair)  # self-contained: task, items and shapes from the folder
    assert [len(s.item_ids) for s in repaired.requests.values()] == [2, 1, 4, 4]
    assert sorted(it.id for it in repaired.task.items) == sorted(not_ok)
    assert next(r.item_ids for r in read_requests(repair)) == ("s06", "s08")
    assert "Q[1]: " in lines[0]["body"]["messages"][-1]["content"]
    assert "Q[3]: " not in lines[0]["body"]["messages"][-1]["content"]

    # The repair batch comes back right: nothing is left to repair.
    answers = _write(
        tmp_path / "repair-output.jsonl",
        [
            _ok_line(x["custom_id"], _answers(list(range(1, n + 1))))
            for x, n in zip(lines, [2, 1, 4, 4])
        ],
    )
    again = collect(repair, answers)
    assert again.not_ok == 0 and again.repair_dir is None and again.statuses["ok"] == 11


def test_collect_cli_exit_status(submitted: tuple[Path, str], tmp_path: Path) -> None:
    build_dir, _ = submitted
    output = _write(tmp_path / "out.jsonl", [_ok_line("r0001", _answers([1, 2, 3, 4]))])
    proc = subprocess.run(
        [sys.executable, "-m", "promptc", "collect", str(build_dir), str(output)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 4, proc.stderr
    assert "request r0002: no answer (no line in the files)" in proc.stderr
    assert "16 item(s) not ok: repair build of 4 request(s)" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_files_joined_with_cat_each_with_a_bom_are_read_whole(
    submitted: tuple[Path, str], tmp_path: Path
) -> None:
    # Two output files, each written with a byte order mark, joined: the BOM of the second
    # starts a line in the middle. Each line is an answer, by collect and by parse alike.
    build_dir, _ = submitted
    lines = [_ok_line(f"r000{k}", _answers([1, 2, 3, 4])) for k in range(1, 6)]
    joined = b"".join(
        b"\xef\xbb\xbf" + "".join(json.dumps(x) + "\n" for x in part).encode()
        for part in (lines[:2], lines[2:])
    )
    (tmp_path / "out.jsonl").write_bytes(joined)
    result = collect(build_dir, tmp_path / "out.jsonl", repair_dir=tmp_path / "repair")
    assert result.not_ok == 0 and not result.failed
    proc = subprocess.run(
        [sys.executable, "-m", "promptc", "parse", str(build_dir), str(tmp_path / "out.jsonl")],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 20


def test_parse_of_collected_outputs_gives_collects_rows_for_a_request_repaired_whole(
    submitted: tuple[Path, str], tmp_path: Path
) -> None:
    # r0002 got no answer in the batch: the repair build asks it again whole, its batch
    # answers it, and collect merges that answer. promptc parse of the outputs.jsonl collect
    # wrote must give the same rows: the repair answers items whose request has no line.
    build_dir, _ = submitted
    first = [_ok_line(rid, _answers([1, 2, 3, 4])) for rid in ("r0001", "r0003", "r0004", "r0005")]
    output = _write(tmp_path / "out.jsonl", first)
    collect(build_dir, output)
    repair_ids = [r.id for r in read_requests(build_dir / "repair", errors=[])]
    assert repair_ids == ["r0002.repair1"]
    asked = json.loads((build_dir / "repair" / "batches.jsonl").read_text().splitlines()[0])
    again = _write(tmp_path / "rep.jsonl", [_ok_line("r0002.repair1", _answers([1, 2, 3, 4]))])
    done = collect(build_dir, output, again)
    # The repair answer keeps the prompt it was asked with: promptc run, planning the same
    # repair, takes it rather than buying it again.
    kept = read_outputs_file(build_dir / "outputs.jsonl").answers["r0002.repair1"]
    assert kept["prompt_sha256"] == asked["prompt_sha256"]
    # Nothing is left to repair: the earlier round's repair build is said to be answered,
    # and r0002 is no request without an answer: its repair answered it.
    assert done.repair_dir is None
    assert done.failed == {} and done.answered_again == 1
    assert "1 answered by a repair that asked it whole" in done.summary()
    assert "without an answer" not in done.summary()
    assert done.notes == [
        (
            f"every item is ok: the repair build in {build_dir / 'repair'} is an earlier "
            "round's, answered now; do not send it again (remove it, or keep it as the record "
            "of that round)"
        )
    ]
    collected = (build_dir / "results.jsonl").read_text(encoding="utf-8")
    assert collected.count('"status": "ok"') == 20
    parsed = tmp_path / "parsed.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "promptc",
            "parse",
            str(build_dir),
            str(build_dir / "outputs.jsonl"),
            "-o",
            str(parsed),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "1 repair answer(s) merged (4 item(s) repaired)" in proc.stderr
    assert parsed.read_text(encoding="utf-8") == collected


def test_parse_of_collected_outputs_gives_collects_rows_for_a_vote_round_with_no_answer(
    tmp_path: Path,
) -> None:
    # Three voting rounds; one round's request got no answer in the batch. collect lists
    # that round as missing for its items (and counts it in their attempts); promptc parse
    # of the outputs.jsonl collect wrote gives the same rows.
    task = compile_spec(
        SPECS / "sentiment.yaml",
        overrides={
            ("strategy", "kind"): "batch",
            ("strategy", "batch_size"): 4,
            ("strategy", "vote"): {"rounds": 3},
        },
    )
    build_dir = tmp_path / "build"
    build(task, build_dir, target="openai-batch")
    shapes = open_build(build_dir).shapes
    lost = "r0001.v3"
    lines = [
        _ok_line(rid, _answers(list(range(1, len(shape.item_ids) + 1))))
        for rid, shape in shapes.items()
        if rid != lost
    ]
    collect(build_dir, _write(tmp_path / "out.jsonl", lines))
    collected = (build_dir / "results.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(x) for x in collected.splitlines()]
    lost_items = set(shapes[lost].item_ids)
    for row in rows:
        statuses = [r["status"] for r in row["rounds"]]
        if row["item_id"] in lost_items:
            assert statuses.count("missing") == 1 and len(statuses) == 3, row
        assert row["attempts"] == 3 and row["status"] == "ok", row
    parsed = tmp_path / "parsed.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "promptc",
            "parse",
            str(build_dir),
            str(build_dir / "outputs.jsonl"),
            "-o",
            str(parsed),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "1 request(s) of" in proc.stderr and "have no output" in proc.stderr
    assert parsed.read_text(encoding="utf-8") == collected


@pytest.mark.parametrize("kind", ["batch", "auto-demo"])
def test_collect_reads_json_answers_of_a_json_schema_vllm_batch(kind: str, tmp_path: Path) -> None:
    """A vllm-batch build whose bodies carry JSON Schema: the model answers in JSON, collect
    reads it item by item, and the repair build carries the schema of its own requests."""
    task = compile_spec(
        SPECS / "sentiment.yaml",
        overrides={("strategy", "kind"): kind, ("strategy", "batch_size"): 4},
    )
    out = tmp_path / "build"
    build(task, out, target="vllm-batch", vllm_grammar="json_schema")
    questions = {
        json.loads(x)["id"]: json.loads(x)["question"]
        for x in (out / "items.jsonl").read_text(encoding="utf-8").splitlines()
    }
    requests = read_requests(out)
    labels = ["positive", "negative", "neutral"]

    def json_answer(item_ids: tuple[str, ...], keep: list[int]) -> str:
        entries = []
        for k in keep:
            entry: dict[str, Any] = {"index": k}
            if kind == "auto-demo":
                entry["question"] = questions[item_ids[k - 1]]
            entry["sentiment"] = labels[int(item_ids[k - 1][1:]) % 3]
            entries.append(entry)
        return json.dumps({"answers": entries})

    lines = [_ok_line(r.id, json_answer(r.item_ids, [1, 2, 3, 4])) for r in requests]
    lines[1] = _ok_line("r0002", json_answer(requests[1].item_ids, [1, 2, 4]))  # item 3 dropped
    result = collect(out, _write(tmp_path / "output.jsonl", lines))
    assert result.not_ok == 1 and result.statuses["ok"] == 19 and result.repair_requests == 1
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert [(r["item_id"], r["values"]["sentiment"]) for r in rows if r["status"] == "ok"] == [
        (i, labels[int(i[1:]) % 3]) for r in requests for i in r.item_ids if i != "s07"
    ]
    assert [r["item_id"] for r in rows if r["status"] != "ok"] == ["s07"]

    repair = result.repair_dir
    assert repair is not None
    (line,) = [json.loads(x) for x in (repair / "requests.jsonl").read_text().splitlines()]
    assert line["custom_id"] == "r0002.repair1"
    schema = line["body"]["structured_outputs"]["json"]
    assert set(line["body"]["structured_outputs"]) == {"json"}
    (entry,) = schema["properties"]["answers"]["prefixItems"]
    if kind == "auto-demo":
        assert entry["properties"]["question"] == {"type": "string", "const": questions["s07"]}
    # The repair batch answers in JSON; collected with the first output, every item is ok.
    fixed = _write(
        tmp_path / "repair-output.jsonl",
        [_ok_line("r0002.repair1", json_answer(("s07",), [1]))],
    )
    merged = collect(out, tmp_path / "output.jsonl", fixed)
    assert merged.not_ok == 0 and merged.repair_dir is None
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    s07 = next(r for r in rows if r["item_id"] == "s07")
    assert (s07["request_id"], s07["attempts"], s07["values"]) == (
        "r0002.repair1",
        2,
        {"sentiment": labels[7 % 3]},
    )


def _sentiment_in_batches_of_4(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """sentiment.yaml built in batches of 4 for the Batch API, and an output line for each
    request answering every item."""
    task = compile_spec(
        SPECS / "sentiment.yaml",
        overrides={("strategy", "kind"): "batch", ("strategy", "batch_size"): 4},
    )
    build_dir = tmp_path / "build"
    build(task, build_dir, target="openai-batch")
    ids = [r.id for r in read_requests(build_dir)]
    return build_dir, [_ok_line(rid, _answers([1, 2, 3, 4])) for rid in ids]


def test_a_repair_build_never_asks_a_prompt_asked_already_nor_past_its_rounds(
    tmp_path: Path,
) -> None:
    """r0003's item 1 is asked alone in round 1 and is still malformed: round 2 would ask that
    very prompt again (a model answers it the same way, and every Batch API round is paid):
    nothing is left to ask, said. A one-item request whose item failed is not asked again
    whole either, as promptc run does not."""
    build_dir, lines = _sentiment_in_batches_of_4(tmp_path)
    lines[2] = _ok_line("r0003", "A[1]: maybe\n" + _answers([2, 3, 4]))
    first = collect(build_dir, _write(tmp_path / "output.jsonl", lines))
    assert first.repair_requests == 1 and first.repair_dir is not None
    (asked,) = [
        json.loads(x) for x in (first.repair_dir / "requests.jsonl").read_text().splitlines()
    ]
    assert asked["custom_id"] == "r0003.repair1"
    again = collect(
        build_dir,
        tmp_path / "output.jsonl",
        _write(tmp_path / "repair-output.jsonl", [_ok_line("r0003.repair1", "A[1]: maybe")]),
    )
    assert again.not_ok == 1 and again.repair_dir is None and again.repair_requests == 0
    assert any("nothing left to ask of them" in n for n in again.notes)

    single = compile_spec(SPECS / "sentiment.yaml", overrides={("strategy", "kind"): "single"})
    one = tmp_path / "single"
    build(single, one, target="openai-batch")
    ids = [r.id for r in read_requests(one)]
    lines = [_ok_line(rid, "positive") for rid in ids]
    lines[0] = _ok_line(ids[0], "maybe")
    result = collect(one, _write(tmp_path / "single-output.jsonl", lines))
    assert result.not_ok == 1 and result.repair_dir is None


def test_a_repair_run_made_of_a_repair_request_is_collected(tmp_path: Path) -> None:
    """The repair build answered by plain promptc run, which repaired its own request
    (r0003.repair1.repair1): that answer is an attempt at the build's r0003, collected, not
    skipped as 'not a request of this build' and its item bought again."""
    build_dir, lines = _sentiment_in_batches_of_4(tmp_path)
    lines[2] = _ok_line("r0003", "A[1]: maybe\nA[2]: maybe\n" + _answers([3, 4]))
    output = _write(tmp_path / "output.jsonl", lines)
    first = collect(build_dir, output)
    assert first.repair_dir is not None and first.not_ok == 2
    own = {"attempt": 1, "item_ids": ["s10"], "kind": "batch", "of": "r0003.repair1"}
    ran = _write(
        first.repair_dir / "outputs.jsonl",
        [
            {"id": "r0003.repair1", "output": "A[1]: positive\nA[2]: maybe"},
            {"id": "r0003.repair1.repair1", "output": "A[1]: negative", "repair": own},
        ],
    )
    again = collect(build_dir, output, ran)
    assert again.unknown == [] and again.not_ok == 0, again.summary()
    rows = [json.loads(x) for x in (build_dir / "results.jsonl").read_text().splitlines()]
    s10 = next(r for r in rows if r["item_id"] == "s10")
    assert (s10["request_id"], s10["status"], s10["values"]) == (
        "r0003.repair1.repair1",
        "ok",
        {"sentiment": "negative"},
    )


def test_a_repair_build_is_never_written_again_asking_other_items_under_an_id(
    tmp_path: Path,
) -> None:
    """collect of another output file of the build wrote b/repair again with r0001.repair1
    asking other items, beside the answers a run had given the first r0001.repair1; collected
    next, they were credited to the new items (false ok). Refused, nothing written; a run's
    answer to the earlier request under that id is skipped, said by file and line."""
    build_dir, lines = _sentiment_in_batches_of_4(tmp_path)
    lines[0] = _ok_line("r0001", "A[1]: positive\nA[2]: maybe\nA[3]: positive\nA[4]: maybe")
    first = collect(build_dir, _write(tmp_path / "out1.jsonl", lines))
    assert first.repair_dir is not None
    (record,) = json.loads((first.repair_dir / "manifest.json").read_text())[
        "repair_records"
    ].values()
    ran = _write(
        tmp_path / "ran.jsonl",
        [{"id": "r0001.repair1", "output": "A[1]: negative\nA[2]: negative", "repair": record}],
    )
    lines[0] = _ok_line("r0001", "A[1]: positive\nA[2]: positive\nA[3]: maybe\nA[4]: maybe")
    out2 = _write(tmp_path / "out2.jsonl", lines)
    before = {p: p.read_bytes() for p in build_dir.rglob("*") if p.is_file()}
    with pytest.raises(UsageError) as info:
        collect(build_dir, out2)
    assert info.value.code == "repair-build-changed"
    assert info.value.message == (
        f"the repair build in {first.repair_dir} asks r0001.repair1 of items s02, s04; this "
        "collect would ask it of items s03, s04, and an answer to the first would be credited "
        "to the second: nothing was written"
    )
    after = {p: p.read_bytes() for p in build_dir.rglob("*") if p.is_file()}
    assert after == before
    # With the run's answers to the repair build: s02 and s04 take them, s03 is asked again.
    done = collect(build_dir, out2, ran)
    assert done.stale == [] and done.not_ok == 1
    # A run's answer recorded for other items than the id asks now: skipped, never credited.
    other = {**record, "item_ids": ["s03", "s04"]}
    ran2 = _write(
        tmp_path / "ran2.jsonl",
        [{"id": "r0001.repair1", "output": "A[1]: negative\nA[2]: negative", "repair": other}],
    )
    skipped = collect(build_dir, out2, ran2)
    assert skipped.stale == ["ran2.jsonl:1 ('r0001.repair1')"]
    assert "skipped ran2.jsonl:1 ('r0001.repair1'): answers what an earlier repair build " in (
        "\n".join(skipped.messages())
    )


def test_a_status_written_as_text_is_read_and_one_without_a_message_says_so(
    tmp_path: Path,
) -> None:
    """``"status_code": "200"`` read as no answer ('HTTP 200: None'); a 503 without a body
    said 'HTTP 503: None'."""
    build_dir, lines = _sentiment_in_batches_of_4(tmp_path)
    lines[0]["response"]["status_code"] = "200"
    lines[1]["response"] = {"status_code": 503, "body": None}
    done = collect(build_dir, _write(tmp_path / "out.jsonl", lines))
    assert "r0001" not in done.failed
    assert done.failed["r0002"] == "HTTP 503 with no message"
