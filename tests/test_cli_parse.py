"""``promptc parse`` through click's CliRunner, on real builds of the example specs."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from promptc import markers
from promptc.build import build
from promptc.cli.parse import parse_command
from promptc.spec.lower import compile_spec

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the example specs, so that builds and spec share a folder."""
    dest = tmp_path_factory.mktemp("project") / "specs"
    shutil.copytree(ROOT / "specs", dest)
    return dest


def run(*args: object) -> Result:
    return CliRunner().invoke(parse_command, [str(a) for a in args])


@pytest.fixture(scope="module")
def math_build(specs: Path) -> Path:
    out = specs.parent / "build"
    build(compile_spec(specs / "math.yaml"), out)
    return out


def requests_of(build_dir: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (build_dir / "requests.jsonl").read_text().splitlines()]


def good_output(request: dict[str, object], answer_base: int = 0) -> str:
    """A canonical Auto-Demo answer to a math request (questions as the task shows them)."""
    task = compile_spec(ROOT / "specs" / "math.yaml")
    items = {i.id: i for i in task.items}
    lines = []
    for i, item_id in enumerate(request["item_ids"], 1):  # type: ignore[arg-type]
        q = markers.question_text(task.inputs, items[item_id].inputs)
        lines.append(f"{markers.question_marker(i)} {q}")
        lines.append(f"{markers.answer_marker(i)} Add them up. The answer is {answer_base + i}.")
    return "\n".join(lines)


def jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def lines_of(result: Result) -> list[dict[str, object]]:
    return [json.loads(line, parse_float=Decimal) for line in result.stdout.splitlines()]


def test_jsonl_in_every_accepted_form(math_build: Path, tmp_path: Path) -> None:
    reqs = requests_of(math_build)
    assert len(reqs) == 3
    outputs = jsonl(
        tmp_path / "out.jsonl",
        [
            {"id": reqs[0]["id"], "output": good_output(reqs[0])},
            {"request_id": reqs[1]["id"], "text": good_output(reqs[1], 10)},
            {
                "id": "batch_req_1",
                "custom_id": reqs[2]["id"],
                "response": {
                    "status_code": 200,
                    "body": {"choices": [{"message": {"content": good_output(reqs[2], 20)}}]},
                },
                "error": None,
            },
        ],
    )
    result = run(math_build, outputs)
    assert result.exit_code == 0, result.output
    rows = lines_of(result)
    assert len(rows) == 20
    assert {r["status"] for r in rows} == {"ok"}
    assert rows[0]["request_id"] == reqs[0]["id"] and rows[0]["item_id"] == "m01"
    assert rows[8]["values"] == {"reasoning": "Add them up.", "answer": 11}
    assert rows[-1]["index"] == 4 and rows[-1]["values"]["answer"] == 24  # type: ignore[index]
    assert result.stderr == (
        "20 results from 3 request(s): 20 ok, 0 missing, 0 malformed, "
        "0 duplicate, 0 misaligned, 0 extra, 0 truncated\n"
    )


def test_content_as_a_list_of_parts_is_read_as_collect_reads_it(
    math_build: Path, tmp_path: Path
) -> None:
    # The chat API's other form of a message's content: its text parts, joined.
    reqs = requests_of(math_build)
    parts = [
        [{"type": "text", "text": t[:5]}, {"type": "image_url"}, {"type": "text", "text": t[5:]}]
        for t in (good_output(r, 10 * k) for k, r in enumerate(reqs))
    ]
    outputs = jsonl(
        tmp_path / "out.jsonl",
        [
            {"id": reqs[0]["id"], "content": parts[0]},
            {
                "custom_id": reqs[1]["id"],
                "response": {
                    "status_code": 200,
                    "body": {"choices": [{"message": {"content": parts[1]}}]},
                },
            },
            {"id": reqs[2]["id"], "output": good_output(reqs[2], 20)},
        ],
    )
    result = run(math_build, outputs)
    assert result.exit_code == 0, result.output
    assert {r["status"] for r in lines_of(result)} == {"ok"} and len(lines_of(result)) == 20


def test_spec_and_build_dir_give_the_same_results(
    math_build: Path, specs: Path, tmp_path: Path
) -> None:
    reqs = requests_of(math_build)
    outputs = jsonl(tmp_path / "out.jsonl", [{"id": reqs[1]["id"], "output": good_output(reqs[1])}])
    a = run(math_build, outputs)
    b = run(specs / "math.yaml", outputs)
    assert a.exit_code == b.exit_code == 0
    assert a.stdout == b.stdout


def test_a_broken_item_gives_exit_1_and_the_diagnosis(math_build: Path, tmp_path: Path) -> None:
    reqs = requests_of(math_build)
    text = good_output(reqs[0]).replace("The answer is 3.", "The answer is three.")
    outputs = jsonl(tmp_path / "out.jsonl", [{"id": reqs[0]["id"], "output": text}])
    result = run(math_build, outputs)
    assert result.exit_code == 1
    bad = [r for r in lines_of(result) if r["status"] != "ok"]
    assert len(bad) == 1 and bad[0]["index"] == 3 and bad[0]["status"] == "malformed"
    assert bad[0]["expected"] and bad[0]["found"]
    assert result.stderr.endswith(
        "8 results from 1 request(s): 7 ok, 0 missing, 1 malformed, "
        "0 duplicate, 0 misaligned, 0 extra, 0 truncated\n"
        "note: 2 request(s) of " + str(math_build) + " have no output in " + str(outputs) + "\n"
    )


def test_malformed_jsonl_lines_are_reported_and_the_rest_parsed(
    math_build: Path, tmp_path: Path
) -> None:
    reqs = requests_of(math_build)
    path = tmp_path / "out.jsonl"
    path.write_text(
        json.dumps({"id": reqs[0]["id"], "output": good_output(reqs[0])})
        + "\n"
        + '{"id": "r0002", "output": "A[1]: 1",}\n'
        + "[1, 2]\n"
        + json.dumps({"output": "no id"})
        + "\n"
        + json.dumps({"id": "r0009", "output": "x"})
        + "\n"
        + json.dumps({"id": reqs[0]["id"], "output": "again"})
        + "\n"
        + json.dumps({"id": reqs[2]["id"]})
        + "\n",
        encoding="utf-8",
    )
    result = run(math_build, path)
    assert result.exit_code == 1
    assert len(lines_of(result)) == 8  # the one good line
    err = result.stderr.splitlines()
    assert err[:6] == [
        f"error: {path}:2:37: not a JSON line: Expecting property name enclosed in double quotes",
        (
            f"error: {path}:3:1: expected a JSON object with one of custom_id, request_id, id and "
            "the output text, found list"
        ),
        f"error: {path}:4:1: no request id: expected one of the keys custom_id, request_id, id",
        (
            f"error: {path}:5:1: unknown request id 'r0009'; expected one of the ids in "
            f"{math_build} (did you mean 'r0003'?)"
        ),
        (
            f"error: {path}:6:1: a second output for request 'r0001' (the first is at line 1); only "
            "the first is parsed"
        ),
        (
            f"error: {path}:7:1: no output text: expected 'output' or 'text', or an OpenAI response "
            "with response.body.choices[0].message.content"
        ),
    ]


def test_text_file_needs_request_when_the_build_has_several(
    math_build: Path, tmp_path: Path
) -> None:
    reqs = requests_of(math_build)
    path = tmp_path / "out.txt"
    path.write_text("Sure!\n" + good_output(reqs[1]) + "\nDone.", encoding="utf-8")
    result = run(math_build, path)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {path} holds one output, and {math_build} has 3 requests: "
        "say which with --request ID\n"
    )
    result = run(math_build, path, "--request", reqs[1]["id"])
    assert result.exit_code == 0, result.output
    rows = lines_of(result)
    assert [r["item_id"] for r in rows] == ["m09", "m10", "m11", "m12", "m13", "m14", "m15", "m16"]
    assert rows[0]["span"]["start"]["line"] == 2  # type: ignore[index]
    strict = run(math_build, path, "--request", reqs[1]["id"], "--mode", "strict")
    assert strict.exit_code == 1
    assert all(r["status"] == "malformed" for r in lines_of(strict))


def test_unknown_request_is_a_usage_error(math_build: Path, tmp_path: Path) -> None:
    path = tmp_path / "out.txt"
    path.write_text("A[1]: 1", encoding="utf-8")
    result = run(math_build, path, "--request", "r001")
    assert result.exit_code == 2
    assert (
        result.stderr == f"error: unknown request 'r001' in {math_build} (did you mean 'r0001'?)\n"
    )


def test_table_and_output_file(math_build: Path, tmp_path: Path) -> None:
    reqs = requests_of(math_build)
    outputs = jsonl(
        tmp_path / "out.jsonl", [{"id": reqs[2]["id"], "output": good_output(reqs[2])[:-40]}]
    )
    result = run(math_build, outputs, "--format", "table")
    assert result.exit_code == 1
    assert "request" in result.stdout and "status" in result.stdout
    assert "malformed" in result.stdout and "r0003" in result.stdout
    # Each item's input beside its answer: the question, on one line, cut to 60 characters.
    assert "input" in result.stdout.splitlines()[0]
    from promptc.cli.parse import input_text
    from promptc.parse.build_input import open_build

    items = {it.id: it for it in open_build(math_build).task.items}
    first = reqs[2]["item_ids"][0]
    assert input_text(items[first].inputs)[:25] in result.stdout  # folded to fit 160 columns
    assert input_text({"q": "a\n b " + "x" * 80}) == "a b " + "x" * 55 + "…"
    target = tmp_path / "results.jsonl"
    result = run(math_build, outputs, "-o", target)
    assert result.exit_code == 1 and result.stdout == ""
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "malformed"]


def test_output_file_may_be_a_pipe(math_build: Path, tmp_path: Path) -> None:
    # promptc parse -o PIPE (or -o /dev/null): the results go into the pipe, which stays one.
    reqs = requests_of(math_build)
    outputs = jsonl(tmp_path / "out.jsonl", [{"id": reqs[0]["id"], "output": good_output(reqs[0])}])
    pipe = tmp_path / "results.pipe"
    os.mkfifo(pipe)
    got: list[str] = []
    reader = threading.Thread(
        target=lambda: got.append(pipe.read_text(encoding="utf-8")), daemon=True
    )
    reader.start()
    result = run(math_build, outputs, "-o", pipe)
    reader.join(timeout=20)
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(x) for x in got[0].splitlines()]
    assert rows and {r["status"] for r in rows} == {"ok"}
    assert {r["request_id"] for r in rows} == {reqs[0]["id"]}
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)


def test_a_closed_stdout_is_no_internal_error(math_build: Path, tmp_path: Path) -> None:
    # `promptc parse … >&-`: nowhere to write the results, as for a reader gone away.
    reqs = requests_of(math_build)
    outputs = jsonl(tmp_path / "out.jsonl", [{"id": reqs[0]["id"], "output": good_output(reqs[0])}])
    done = subprocess.run(
        [sys.executable, "-m", "promptc", "parse", str(math_build), str(outputs)],
        stderr=subprocess.PIPE,
        text=True,
        check=False,
        preexec_fn=lambda: os.close(1),  # the child's own stdout, closed
    )
    assert done.returncode == 0, done.stderr
    assert "internal error" not in done.stderr


def test_unknown_ids_are_each_said_and_the_first_hinted(math_build: Path, tmp_path: Path) -> None:
    # A file of another build holds thousands of unknown ids: each is said at its line, the
    # first 20 with a did-you-mean (each hint compares with every id of the build).
    outputs = jsonl(
        tmp_path / "other.jsonl", [{"id": f"x{k}", "output": "A[1]: 1"} for k in range(25)]
    )
    result = run(math_build, outputs)
    said = [x for x in result.stderr.splitlines() if "unknown request id" in x]
    assert len(said) == 25
    assert sum("did you mean" in x for x in said) <= 20
    assert all("did you mean" not in x for x in said[20:])


def test_not_a_build(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    path = tmp_path / "out.txt"
    path.write_text("x", encoding="utf-8")
    result = run(tmp_path / "empty", path)
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {tmp_path / 'empty' / 'manifest.json'}: {str(tmp_path / 'empty')!r} is not a "
        "build: it has no manifest.json (give a folder written by promptc build SPEC -o DIR)\n"
    )
    result = run(tmp_path / "nope", path)
    assert result.exit_code == 2  # click: the path does not exist


def test_a_truncated_requests_line_is_reported_inside_that_line(
    specs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "build"
    build(compile_spec(specs / "math.yaml"), out)
    (out / "requests.jsonl").write_text('{"id": "r0001",\n', encoding="utf-8")
    path = tmp_path / "out.txt"
    path.write_text("A[1]: x", encoding="utf-8")
    result = run(out, path, "--request", "r0001")
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {out / 'requests.jsonl'}:1:16: not JSON: Expecting "
        "property name enclosed in double quotes\n"
    )


def test_openai_batch_build_and_exact_decimals(specs: Path, tmp_path: Path) -> None:
    task = compile_spec(specs / "math-batch.yaml")
    out = specs.parent / "openai-build"
    build(task, out, target="openai-batch")
    first = json.loads((out / "requests.jsonl").read_text().splitlines()[0])
    assert "custom_id" in first and "item_ids" not in first
    ids = json.loads((out / "batches.jsonl").read_text().splitlines()[0])["item_ids"]
    text = "\n".join(
        f"{markers.answer_marker(i)} So. The answer is 0.1." for i in range(1, len(ids) + 1)
    )
    outputs = jsonl(
        tmp_path / "o.jsonl",
        [
            {
                "custom_id": first["custom_id"],
                "response": {"body": {"choices": [{"message": {"content": text}}]}},
            }
        ],
    )
    result = run(out, outputs)
    assert result.exit_code == 0, result.output
    assert '"answer": 0.1}' in result.stdout.splitlines()[0]
    assert [r["item_id"] for r in lines_of(result)] == ids


def test_registered_in_the_promptc_group(math_build: Path, tmp_path: Path) -> None:
    from promptc.cli.app import cli

    reqs = requests_of(math_build)
    outputs = jsonl(tmp_path / "out.jsonl", [{"id": reqs[0]["id"], "output": good_output(reqs[0])}])
    result = CliRunner().invoke(cli, ["parse", str(math_build), str(outputs)])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 8


def test_request_filter_and_empty_outputs(math_build: Path, tmp_path: Path) -> None:
    reqs = requests_of(math_build)
    outputs = jsonl(tmp_path / "out.jsonl", [{"id": reqs[0]["id"], "output": good_output(reqs[0])}])
    kept = run(math_build, outputs, "--request", reqs[0]["id"])
    assert kept.exit_code == 0 and len(lines_of(kept)) == 8
    absent = run(math_build, outputs, "--request", reqs[1]["id"])
    assert absent.exit_code == 1 and absent.stdout == ""
    assert absent.stderr.startswith(
        f"error: {outputs}: no output for request 'r0002' in {outputs}\n"
    )
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    result = run(math_build, empty)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {empty}: no outputs in {empty}\n")


def test_output_file_is_left_alone_on_usage_errors(math_build: Path, tmp_path: Path) -> None:
    target = tmp_path / "results.jsonl"
    target.write_text("previous\n", encoding="utf-8")
    text = tmp_path / "out.txt"
    text.write_text("A[1]: 1", encoding="utf-8")
    result = run(math_build, text, "-o", target)
    assert result.exit_code == 2
    assert target.read_text(encoding="utf-8") == "previous\n"


#: What ``str.splitlines`` (and a text file read with universal newlines) would take for a
#: line end, inside an answer: a JSON line ends at "\n" alone.
LINE_BREAKERS = ["\u2028", "\u2029", "\u0085", "\r", "\ufeff", "\x1c", "\x1e", "\x0b"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_answers_holding_line_separators_reach_the_parser_as_written(
    math_build: Path, data: st.DataObject
) -> None:
    """U+2028, U+2029, U+0085, a lone CR, a BOM… inside an answer, written raw or escaped:
    ``promptc parse`` reads the answer as the model wrote it, and its results are those of
    parsing that text directly."""
    from promptc.parse.output import parse_output
    from promptc.parse.output_records import read_outputs
    from promptc.run.repair import result_line

    reqs = requests_of(math_build)
    text = good_output(reqs[0])
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        text = text[:at] + data.draw(st.sampled_from(LINE_BREAKERS)) + text[at:]
    raw = data.draw(st.booleans())
    with tempfile.TemporaryDirectory() as tmp:
        # Named .txt, the file is known for JSON Lines by its first line alone.
        outputs = Path(tmp) / ("out" + data.draw(st.sampled_from([".jsonl", ".txt"])))
        line = json.dumps({"id": reqs[0]["id"], "output": text}, ensure_ascii=not raw)
        outputs.write_text(line + "\n", encoding="utf-8")
        (record,) = read_outputs(outputs, [])
        assert record.text == text
        result = run(math_build, outputs)
    task = compile_spec(math_build.parent / "specs" / "math.yaml")
    want = [json.loads(result_line(r, 1)) for r in parse_output(task, reqs[0], text)]
    assert [json.loads(x) for x in result.stdout.split("\n") if x] == want
