"""promptc never writes over what it owns or misreads it: a run's ``-o``/``--results`` and a
collect's repair folder never replace answers or the build's files; ``check --specs-only``
opens only regular files; a data row's ``NaN`` is refused where it is read; ``eval`` reads
back only results it can trust and never prices cached input above the input. Messages word
for word.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import promptc
import pytest
from promptc.build import build
from promptc.cli.app import run
from promptc.errors import PromptcErrors, UsageError
from promptc.spec.lower import compile_spec
from test_eval_score import SPEC as EVAL_SPEC
from test_eval_score import folder, rec

SPECS = Path(__file__).resolve().parents[1] / "specs"
NOWHERE = "http://127.0.0.1:9/v1"


def _build(out: Path, target: str = "chat") -> Path:
    build(compile_spec(SPECS / "sentiment.yaml"), out, target=target)
    return out


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_run_never_writes_results_or_answers_over_answers_or_the_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    folder = _build(Path("b"))
    (folder / "outputs.jsonl").write_text('{"id": "r0001", "output": "paid"}\n', "utf-8")
    before = _files(folder)
    cases = {
        ("--results", "b/outputs.jsonl"): (
            "--results b/outputs.jsonl would replace answers; give another file"
        ),
        ("--results", "b/requests.jsonl"): (
            "--results b/requests.jsonl would replace requests.jsonl of the build in b; "
            "give another file"
        ),
        ("--results", "b/manifest.json"): (
            "--results b/manifest.json would replace manifest.json of the build in b; "
            "give another file"
        ),
        ("-o", "b/manifest.json"): (
            "-o b/manifest.json would replace manifest.json of the build in b; give another file"
        ),
        ("-o", "b/results.jsonl"): (
            "-o b/results.jsonl is where the results go; give the answers another file"
        ),
        ("-o", "b/outputs.replaced.jsonl"): (
            "-o b/outputs.replaced.jsonl would replace answers; give another file"
        ),
    }
    for (option, path), message in cases.items():
        args = ["run", "b", "--base-url", NOWHERE, "--no-cache", "--parse", option, path]
        assert run(args) == 2
        assert capsys.readouterr().err == f"error: {message}\n"
    args = ["run", "b", "--base-url", NOWHERE, "--parse", "-o", "x.jsonl", "--results", "x.jsonl"]
    assert run(args) == 2
    assert capsys.readouterr().err == (
        "error: --results x.jsonl would replace answers; give another file\n"
    )
    assert _files(folder) == before


def test_run_build_from_python_never_writes_over_answers_or_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Python API keeps the CLI's rule: its options are named as RunOptions names them."""
    monkeypatch.chdir(tmp_path)
    folder = _build(Path("b"))
    (folder / "outputs.jsonl").write_text('{"id": "r0001", "output": "paid"}\n', "utf-8")
    before = _files(folder)
    cases = {
        ("outputs_path", "b/task.json"): (
            "outputs_path b/task.json would replace task.json of the build in b; give another file"
        ),
        ("outputs_path", "b/results.jsonl"): (
            "outputs_path b/results.jsonl is where the results go; give the answers another file"
        ),
        ("results_path", "b/outputs.jsonl"): (
            "results_path b/outputs.jsonl would replace answers; give another file"
        ),
        ("results_path", "b/batches.jsonl"): (
            "results_path b/batches.jsonl would replace batches.jsonl of the build in b; "
            "give another file"
        ),
    }
    for (option, path), message in cases.items():
        with pytest.raises(UsageError) as caught:
            promptc.run_build("b", base_url=NOWHERE, use_cache=False, parse=True, **{option: path})
        assert (caught.value.message, caught.value.code) == (message, "overwrite")
    with pytest.raises(UsageError) as caught:
        promptc.run_build("b", base_url=NOWHERE, parse=True, outputs_path="x", results_path="x")
    assert caught.value.message == "results_path x would replace answers; give another file"
    assert _files(folder) == before
    # A file that holds no answers (a spec given by mistake) is not taken over.
    spec = tmp_path / "spec.yaml"
    spec.write_text("promptc: 1\n\nname: x\n", encoding="utf-8")
    with pytest.raises(UsageError) as caught:
        promptc.run_build("b", base_url=NOWHERE, outputs_path=str(spec))
    assert caught.value.message == (
        f"outputs_path {spec} is not an outputs file of promptc (its first line is no answer "
        "with the keys id, output and request_sha256 that promptc run writes): answers would "
        "replace what it holds; give a new or empty file, or an outputs file of promptc run"
    )
    assert spec.read_text(encoding="utf-8") == "promptc: 1\n\nname: x\n"
    # A named pipe is never opened to look (no one writes to it: the read would never end).
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    code = (
        "import promptc, sys\n"
        "try:\n"
        f"    promptc.run_build('b', base_url={NOWHERE!r}, outputs_path={str(pipe)!r})\n"
        "except promptc.PromptcError as e:\n"
        "    sys.exit(2)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], timeout=60, check=False)
    assert done.returncode == 2


def test_parse_never_writes_results_over_the_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _build(tmp_path / "b")
    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"id": "r0001", "output": "A[1]: positive"}\n', encoding="utf-8")
    before = _files(folder)
    out = folder / "requests.jsonl"
    assert run(["parse", str(folder), str(answers), "-o", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"error: -o {out} would replace requests.jsonl of the build in {folder}; "
        "give another file\n"
    )
    assert _files(folder) == before


def _batch_output(path: Path, sizes: dict[str, int]) -> Path:
    """A Batch API output file answering each request id with ``n`` positive items."""
    rows = []
    for rid, n in sizes.items():
        content = "\n".join(f"A[{i}]: positive" for i in range(1, n + 1))
        body = {"choices": [{"message": {"content": content}, "finish_reason": "stop"}]}
        rows.append(json.dumps({"custom_id": rid, "response": {"status_code": 200, "body": body}}))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_collect_never_writes_the_repair_build_over_the_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _build(tmp_path / "sb", target="openai-batch")
    out = _batch_output(tmp_path / "out.jsonl", {"r0002": 8, "r0003": 4})
    before = _files(folder)
    assert run(["collect", str(folder), str(out), "-o", str(folder)]) == 2
    assert capsys.readouterr().err == (
        f"error: {folder}: {str(folder)!r} holds 'manifest.json', which this build reads; "
        "the repair build would overwrite it (give another folder with -o)\n"
    )
    assert _files(folder) == before


def test_a_repair_build_is_collected_as_any_build(tmp_path: Path) -> None:
    folder = _build(tmp_path / "sb", target="openai-batch")
    out = _batch_output(tmp_path / "out.jsonl", {"r0002": 8, "r0003": 4})
    assert run(["collect", str(folder), str(out)]) == 4
    repair = folder / "repair"
    assert [json.loads(x)["custom_id"] for x in (repair / "requests.jsonl").open()] == [
        "r0001.repair1"
    ]
    # Its requests have their own ids (r0001.repair1): collected as a build, with no answer,
    # they are asked again in its own repair build (this was a KeyError, exit 3).
    assert run(["collect", str(repair), str(out)]) == 4
    again = repair / "repair" / "requests.jsonl"
    assert [json.loads(x)["custom_id"] for x in again.open()] == ["r0001.repair1.repair1"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX's")
def test_check_specs_only_says_a_named_pipe_is_no_file_without_reading_it(tmp_path: Path) -> None:
    """Read to see whether it is a spec, a pipe no one writes to blocked check forever: it is
    taken for a spec without being opened, and the loader says why it cannot be read."""
    pipe = tmp_path / "staged.yaml"
    os.mkfifo(pipe)
    command = [sys.executable, "-m", "promptc", "check", "--specs-only", str(pipe)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr == (
        f"{pipe}: cannot read spec file {str(pipe)!r}: not a regular file\n{pipe}: 1 error\n"
    )


NUMBER_SPEC = """\
promptc: 1
name: d
instruction: Classify.
inputs: {review: {type: text}}
outputs: {score: {type: number}}
data: {path: DATA, id: id, fields: {review: text}, gold: {score: g}}
strategy: {kind: batch, batch_size: 2}
model: {name: m, max_tokens: 50}
"""


@pytest.mark.parametrize(
    ("name", "text", "where", "constant"),
    [
        (
            "d.jsonl",
            '{"id":"1","text":"x","g":NaN}\n',
            "d.jsonl:1:26",
            "NaN",
        ),
        (
            "d.jsonl",
            '{"id":"1","text":"x","g":1}\n{"id":"2","text":"NaN, \\"Infinity\\"","g":Infinity}\n',
            "d.jsonl:2:42",
            "Infinity",
        ),
        (
            "d.json",
            '[{"id":"1","text":"x","g":1},\n {"id":"2","text":"x","g":-Infinity}]',
            "d.json:2:27",
            "-Infinity",
        ),
    ],
)
def test_a_bare_nan_or_infinity_in_the_data_is_refused_where_it_is_read(
    tmp_path: Path, name: str, text: str, where: str, constant: str
) -> None:
    """Python's json reads them; the build written from them could not be read back."""
    (tmp_path / name).write_text(text, encoding="utf-8")
    spec = tmp_path / "spec.yaml"
    spec.write_text(NUMBER_SPEC.replace("DATA", name), encoding="utf-8")
    with pytest.raises(PromptcErrors) as raised:
        compile_spec(spec)
    message = (
        f"{where}: invalid JSON: {constant} is not a JSON number; expected a finite number "
        "(or a string)"
    )
    assert [e.format().removeprefix(f"{tmp_path}/") for e in raised.value.errors] == [message]


def _eval_variant(tmp_path: Path) -> tuple[Path, Path]:
    """A spec of 4 number questions and a single variant's folder, every answer right."""
    (tmp_path / "d.jsonl").write_text(
        "".join(
            json.dumps({"qid": f"q{k}", "question": f"{k}?", "gold": k}) + "\n"
            for k in (1, 2, 3, 4)
        ),
        encoding="utf-8",
    )
    spec = tmp_path / "s.yaml"
    spec.write_text(EVAL_SPEC, encoding="utf-8")
    results = [rec(f"r{k}", f"q{k}", 1, "ok", k) for k in (1, 2, 3, 4)]
    return spec, folder(tmp_path / "runs", "single", "single", 1, results)


def _eval(spec: Path, variant: Path, out: Path, *args: str) -> tuple[int, dict]:
    argv = ["eval", str(spec), "-o", str(out), "--no-charts", *args, "--results", str(variant)]
    status = run(argv)
    doc = json.loads((out / "report.json").read_text("utf-8")) if status == 0 else {}
    return status, doc


def test_eval_never_prices_cached_input_above_the_input(tmp_path: Path) -> None:
    """A server saying it served 150 of 100 prompt tokens from its cache priced the input
    below zero: cached input is clamped to the input, and the report says so."""
    spec, single = _eval_variant(tmp_path)
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 10,
        "prompt_tokens_details": {"cached_tokens": 150},
    }
    (single / "outputs.jsonl").write_text(
        "".join(
            json.dumps({"id": f"r{k}", "output": "", "usage": usage}) + "\n" for k in (1, 2, 3, 4)
        ),
        encoding="utf-8",
    )
    prices = ["--price-in", "1", "--price-out", "1", "--price-cached", "0.5"]
    status, doc = _eval(spec, single, tmp_path / "r", *prices)
    assert status == 0
    (v,) = doc["variants"]
    assert v["cached_input_tokens_per_question"] == 100.0
    assert v["tokens_from"] == "api usage; cached input clamped to the 400 input tokens"
    # 4 × (0 uncached at 1 + 100 cached at 0.5 + 10 out at 1) per million
    assert v["cost"]["total"] == "0.000240"


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text("utf-8").splitlines()]


def _write_lines(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_eval_refuses_results_it_cannot_score(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unknown status counted as unparsed, a second row of an item was scored, and an
    empty results.jsonl beside answers scored every item unparsed: each is a located error
    (a run that answered nothing leaves both empty, which eval says otherwise)."""
    spec, single = _eval_variant(tmp_path)
    results = single / "results.jsonl"
    rows = _lines(results)
    _write_lines(results, [{**rows[0], "status": 5}, *rows[1:]])
    assert run(["eval", str(spec), "-o", str(tmp_path / "r"), "--results", str(single)]) == 2
    assert capsys.readouterr().err == (
        f"{results}:1:1: item 'q1': status 5 is not a parse status; expected one of "
        "ok, missing, malformed, duplicate, misaligned, extra, truncated\n"
    )
    _write_lines(results, [*rows, rows[1]])
    assert run(["eval", str(spec), "-o", str(tmp_path / "r"), "--results", str(single)]) == 2
    assert capsys.readouterr().err == (
        f"{results}:5:1: item 'q2' of request 'r2' has a second result here; the first "
        "is at line 2\n"
    )
    results.write_text("", encoding="utf-8")
    assert run(["eval", str(spec), "-o", str(tmp_path / "r"), "--results", str(single)]) == 2
    assert capsys.readouterr().err == (
        f"{results}: results.jsonl holds no result, but outputs.jsonl holds 4 answer(s); "
        "expected one result per item of the build (run promptc run --parse on the build "
        "again)\n"
    )


def test_eval_refuses_results_parsed_for_an_earlier_build_of_the_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder built again over its answers (build keeps outputs.jsonl and results.jsonl)
    holds results of requests that now hold other items: scored, they were reported as the
    new build's variant. A repair answer's row names its origin request, and is kept."""
    spec, single = _eval_variant(tmp_path)
    results = single / "results.jsonl"
    rows = _lines(results)
    argv = ["eval", str(spec), "-o", str(tmp_path / "r"), "--results", str(single)]
    _write_lines(results, [{**rows[0], "request_id": "r1.repair1"}, *rows[1:]])
    assert run(argv) == 0
    capsys.readouterr()
    _write_lines(results, [rows[0], {**rows[1], "request_id": "r1"}, *rows[2:]])
    assert run(argv) == 2
    assert capsys.readouterr().err == (
        f"{results}:2:1: item 'q2' is not in request 'r1' of this build: results.jsonl was "
        "parsed for an earlier build of the folder (run the build again: promptc run "
        "BUILD_DIR --parse)\n"
    )


def test_eval_says_where_a_damaged_results_file_is_wrong(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hand-edited or damaged rows (ids of another type, a 5,000-digit number, bytes that are
    not UTF-8, nesting past the stack) and a results file or timing linked from outside the
    folder are located usage errors, never an internal error."""
    spec, single = _eval_variant(tmp_path)
    results = single / "results.jsonl"
    rows = _lines(results)
    text = "".join(json.dumps(r) + "\n" for r in rows)
    cases = {
        "item list": (
            json.dumps({**rows[0], "item_id": ["q1"]}) + "\n",
            "1:1: item_id is ['q1']; expected a string",
        ),
        "request list": (
            json.dumps({**rows[0], "request_id": ["r1"]}) + "\n",
            "1:1: request_id is ['r1']; expected a string",
        ),
        "long number": (
            json.dumps({**rows[0], "index": 1}).replace('"index": 1', '"index": ' + "9" * 5000)
            + "\n",
            (
                "1:1: not JSON promptc can read: Exceeds the limit (4300 digits) for integer "
                "string conversion"
            ),
        ),
        "deep": (
            "[" * 100_000 + "]" * 100_000 + "\n",
            "1:1: not JSON promptc can read: nested too deep",
        ),
        "huge exponent": (
            json.dumps({**rows[0], "index": 1}).replace(
                '"index": 1', '"index": 4E1000000000000000000'
            )
            + "\n",
            "1:1: not JSON promptc can read: a number past what promptc holds",
        ),
    }
    argv = ["eval", str(spec), "-o", str(tmp_path / "r"), "--results", str(single)]
    for name, (line, message) in cases.items():
        results.write_text(text + line, encoding="utf-8")
        if name != "deep":
            results.write_text(line + text, encoding="utf-8")
        assert run(argv) == 2, name
        err = capsys.readouterr().err
        shown = message if name != "deep" else message.replace("1:1", f"{len(rows) + 1}:1")
        assert err == f"{results}:{shown}\n", name
    results.write_bytes(text.encode() + b"\xff\xfe\n")
    assert run(argv) == 2
    assert (
        capsys.readouterr().err == f"{results}:{len(rows) + 1}:1: results.jsonl is not UTF-8 text\n"
    )
    outside = tmp_path / "outside.jsonl"
    outside.write_text(text, encoding="utf-8")
    results.unlink()
    results.symlink_to(outside)
    assert run(argv) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    results.unlink()
    results.write_text(text, encoding="utf-8")
    timing = single / "timing.json"
    (tmp_path / "timing.json").write_text('{"seconds": 1}', encoding="utf-8")
    timing.unlink(missing_ok=True)
    timing.symlink_to(tmp_path / "timing.json")
    assert run(argv) == 2
    assert "is a symbolic link" in capsys.readouterr().err


@pytest.mark.parametrize("seconds", ["-1", "NaN", "Infinity"])
def test_eval_refuses_a_timing_it_cannot_divide_by(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seconds: str
) -> None:
    spec, single = _eval_variant(tmp_path)
    timing = single / "timing.json"
    timing.write_text(f'{{"seconds": {seconds}, "sent": -5}}', encoding="utf-8")
    assert run(["eval", str(spec), "-o", str(tmp_path / "r"), "--results", str(single)]) == 2
    shown = {"-1": "-1", "NaN": "nan", "Infinity": "inf"}[seconds]
    assert capsys.readouterr().err == (
        f"{timing}: seconds is {shown}; expected a finite number of seconds, 0 or more "
        "(remove the file: eval writes it when it sends the requests)\n"
    )
    timing.write_text('{"seconds": 2}', encoding="utf-8")
    status, doc = _eval(spec, single, tmp_path / "r")
    assert status == 0 and doc["variants"][0]["questions_per_second"] == 2.0


def test_a_build_file_that_cannot_be_replaced_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder standing where task.json goes: the error names task.json, not the folder."""
    folder = _build(tmp_path / "b")
    (folder / "task.json").unlink()
    (folder / "task.json").mkdir()
    assert run(["build", str(SPECS / "sentiment.yaml"), "-o", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{folder / 'task.json'}: cannot write the build to '{folder}': ")
