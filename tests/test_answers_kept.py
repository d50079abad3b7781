"""Nothing paid for is lost, and no answer is credited to the wrong items: ``collect`` keeps
every answer it reads (second ones, a build's earlier ones, odd usage fields, every content
form, a BOM), ``parse`` credits an answer only to a request with the prompt it answered, and
user input that is absurd ends in a located error (never exit 3). Messages word for word.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
from loopback import QuietHandler, chat_completion, send_json, serving
from promptc.build import build
from promptc.cli.app import run
from promptc.run.collect import collect
from promptc.run.outputs import read_outputs_file
from promptc.spec.lower import compile_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"
ANSWER = "A[1]: positive\nA[2]: negative\nA[3]: neutral\nA[4]: positive"
OTHER = "A[1]: negative\nA[2]: negative\nA[3]: negative\nA[4]: negative"
IDS = [f"r000{k}" for k in range(1, 6)]


def _build(out: Path, batch_size: int = 4, target: str = "openai-batch") -> Path:
    overrides = {("strategy", "kind"): "batch", ("strategy", "batch_size"): batch_size}
    build(compile_spec(SPECS / "sentiment.yaml", overrides=overrides), out, target=target)
    return out


def _line(rid: str, content: Any = ANSWER, usage: Any = None, **message: Any) -> str:
    body = {
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"content": content, **message}}
        ],
        "usage": usage if usage is not None else {"prompt_tokens": 5, "completion_tokens": 3},
    }
    return json.dumps(
        {"id": f"b{rid}", "custom_id": rid, "response": {"status_code": 200, "body": body}}
    )


def _results(path: Path, lines: list[str], prefix: str = "") -> Path:
    path.write_text(prefix + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_collect_keeps_second_answers_and_those_the_build_held(tmp_path: Path) -> None:
    folder = _build(tmp_path / "b")
    earlier = {"id": "r0003", "output": "an answer run got", "request_sha256": "k"}
    (folder / "outputs.jsonl").write_text(json.dumps(earlier) + "\n", encoding="utf-8")
    lines = [_line(rid) for rid in IDS] + [_line("r0002", OTHER)]
    result = collect(folder, _results(tmp_path / "out.jsonl", lines))
    assert result.duplicates == ["out.jsonl:6 ('r0002')"]
    assert result.notes == [
        (
            "2 answer(s) that outputs.jsonl held or the files repeated are not the ones "
            "collected; moved to outputs.replaced.jsonl as they were"
        )
    ]
    aside = read_outputs_file(folder / "outputs.replaced.jsonl")
    assert {k: v["output"] for k, v in aside.answers.items()} == {
        "r0003": "an answer run got",
        "r0002": OTHER,
    }
    kept = read_outputs_file(folder / "outputs.jsonl").answers
    assert [kept[rid]["output"] for rid in IDS] == [ANSWER] * 5
    assert result.summary().startswith("5 request(s) answered; 1 second answer(s) moved aside")


def test_collect_keeps_the_answers_held_that_its_files_do_not_replace(tmp_path: Path) -> None:
    """Round after round, each call given only its newest file: the answers of earlier rounds
    stay (an answer paid for is never dropped for being absent from this call's files), and
    an answer to another prompt (a build since rebuilt) is moved aside, not credited."""
    folder = _build(tmp_path / "b")
    collect(folder, _results(tmp_path / "one.jsonl", [_line(rid) for rid in IDS[:4]]))
    with (folder / "outputs.jsonl").open("a", encoding="utf-8") as f:
        stale = {"id": "r0005", "output": ANSWER, "prompt_sha256": "0" * 64}
        f.write(json.dumps(stale) + "\n")
    assert set(read_outputs_file(folder / "outputs.jsonl").answers) == {*IDS[:4], "r0005"}
    result = collect(folder, _results(tmp_path / "two.jsonl", [_line("r0005", OTHER)]))
    assert (result.answered, result.kept, result.failed) == (5, 4, {})
    assert result.statuses["ok"] == 20
    assert result.tokens == [5, 3]  # the files' answers only: the kept ones were counted before
    assert result.summary().startswith("5 request(s) answered; 4 answer(s) kept from outputs.jsonl")
    kept = read_outputs_file(folder / "outputs.jsonl").answers
    assert [kept[rid]["output"] for rid in IDS] == [ANSWER] * 4 + [OTHER]
    aside = read_outputs_file(folder / "outputs.replaced.jsonl").answers
    assert aside["r0005"]["prompt_sha256"] == "0" * 64
    # Given nothing new, collect keeps every answer and writes the same results.
    results = (folder / "results.jsonl").read_bytes()
    again = collect(folder, _results(tmp_path / "none.jsonl", []))
    assert (again.answered, again.kept, again.not_ok) == (5, 5, 0)
    assert (folder / "results.jsonl").read_bytes() == results


def test_run_resumes_from_the_answers_collect_took(tmp_path: Path) -> None:
    """A batch answered four of five requests; promptc run finishes the build with the chat
    API, sending the fifth alone — the collected answers are to these very prompts. Sent
    with another model, every request is asked again (the answers moved aside, not lost)."""
    folder = _build(tmp_path / "b")
    collect(folder, _results(tmp_path / "out.jsonl", [_line(rid) for rid in IDS[:4]]))
    sent: list[str] = []

    class Answers(QuietHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            sent.append(body["model"])
            send_json(self, chat_completion(ANSWER))

    with serving(Answers) as url:
        argv = ["run", str(folder), "--base-url", url, "--grammar", "none", "--no-cache"]
        assert run([*argv, "--parse"]) == 0
        assert sent == ["gpt-4o-mini"]
        assert read_outputs_file(folder / "outputs.jsonl").answers.keys() == set(IDS)
        assert run([*argv, "--model", "another-model"]) == 0
    assert sent == ["gpt-4o-mini"] + ["another-model"] * 5
    assert read_outputs_file(folder / "outputs.replaced.jsonl").answers.keys() == set(IDS)


def test_run_after_the_batch_loop_keeps_the_collected_repair_answer(tmp_path: Path) -> None:
    """The batch lost r0002; its repair build asked it again whole, and collect took that
    answer (every item ok). promptc run then sends nothing: the repair answer is r0002's,
    kept in outputs.jsonl, and results.jsonl is collect's."""
    folder = _build(tmp_path / "b")
    first = _results(tmp_path / "out.jsonl", [_line(rid) for rid in IDS if rid != "r0002"])
    collect(folder, first)
    again = _results(tmp_path / "rep.jsonl", [_line("r0002.repair1")])
    done = collect(folder, first, again)
    assert done.not_ok == 0
    collected = (folder / "results.jsonl").read_text(encoding="utf-8")
    sent: list[str] = []

    class Answers(QuietHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            sent.append("x")
            send_json(self, chat_completion(OTHER))

    with serving(Answers) as url:
        argv = ["run", str(folder), "--base-url", url, "--grammar", "none", "--no-cache"]
        assert run([*argv, "--parse"]) == 0
    assert sent == []
    assert "r0002.repair1" in read_outputs_file(folder / "outputs.jsonl").answers
    assert not (folder / "outputs.replaced.jsonl").exists()
    assert (folder / "results.jsonl").read_text(encoding="utf-8") == collected


def test_collect_reads_every_content_form_odd_usage_and_a_bom(tmp_path: Path) -> None:
    folder = _build(tmp_path / "b")
    parts = [{"type": "text", "text": ANSWER[:20]}, {"type": "text", "text": ANSWER[20:]}]
    lines = [
        _line("r0001", parts),
        _line("r0002", usage={"prompt_tokens": "lots", "completion_tokens": "12 tokens"}),
        _line("r0003").replace('"prompt_tokens": 5', '"prompt_tokens": 1e999'),
        _line("r0004", None, refusal="I cannot help with that."),
        _line("r0005"),
    ]
    result = collect(folder, _results(tmp_path / "out.jsonl", lines, prefix="\ufeff"))
    assert result.answered == 4 and not result.unknown
    assert result.failed == {"r0004": "the model refused: I cannot help with that."}
    assert result.notes == [
        (
            "out.jsonl:2: usage.prompt_tokens is a string 'lots', not a whole number of tokens; "
            "not counted"
        ),
        (
            "out.jsonl:2: usage.completion_tokens is a string '12 tokens', not a whole number of "
            "tokens; not counted"
        ),
        (
            "out.jsonl:3: usage.prompt_tokens is a number inf, not a whole number of tokens; "
            "not counted"
        ),
    ]
    assert result.tokens == [5 + 5, 3 + 3 + 3]
    kept = read_outputs_file(folder / "outputs.jsonl").answers
    assert kept["r0001"]["output"] == ANSWER
    assert result.statuses["ok"] == 16


def test_a_token_count_past_pythons_digit_limit_keeps_its_answer(tmp_path: Path) -> None:
    """A 5,000-digit integer is valid JSON that Python's int conversion refuses (4,300 digits
    at most): the line is still read, its answer kept, and the count said, abbreviated."""
    folder = _build(tmp_path / "b")
    huge = "9" * 5000
    lines = [_line(rid) for rid in IDS]
    lines[1] = lines[1].replace('"prompt_tokens": 5', f'"prompt_tokens": {huge}')
    assert huge in lines[1]
    result = collect(folder, _results(tmp_path / "out.jsonl", lines))
    assert result.answered == 5 and not result.failed
    assert result.notes == [
        (
            "out.jsonl:2: usage.prompt_tokens is a number 99999999999999999999… (5000 digits), "
            "not a whole number of tokens; not counted"
        )
    ]
    assert read_outputs_file(folder / "outputs.jsonl").answers["r0002"]["output"] == ANSWER


def test_collect_says_unknown_ids_by_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = _build(tmp_path / "b")
    lines = [_line(rid) for rid in IDS] + [_line("r9999"), _line("r0001", OTHER)]
    assert run(["collect", str(folder), str(_results(tmp_path / "out.jsonl", lines))]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[:2] == [
        "skipped out.jsonl:6 ('r9999'): not a request of this build",
        "set aside out.jsonl:7 ('r0001'): a second answer for that request",
    ]


def test_parse_credits_no_answer_made_for_another_prompt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _build(tmp_path / "b")
    collect(folder, _results(tmp_path / "out.jsonl", [_line(rid) for rid in IDS]))
    answers = tmp_path / "answers.jsonl"
    answers.write_bytes((folder / "outputs.jsonl").read_bytes())
    assert run(["parse", str(folder), str(answers)]) == 0
    capsys.readouterr()
    _build(folder, batch_size=3)  # the same ids, other prompts
    assert run(["parse", str(folder), str(answers)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[0] == (
        f"error: {answers}:1:1: this answer of request 'r0001' was produced for another prompt "
        f"than {folder} holds (the build was changed since); it is not credited to its items "
        "(run the build again: promptc run sends only what is not answered)"
    )


def _rehash(folder: Path) -> None:
    import hashlib

    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    for name in manifest["files"]:
        manifest["files"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_a_tampered_rehashed_build_is_refused_not_misread(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    outputs = tmp_path / "o.jsonl"
    outputs.write_text(json.dumps({"id": "r0001", "output": ANSWER}) + "\n", encoding="utf-8")
    folder = _build(tmp_path / "dup", target="chat")
    items = folder / "items.jsonl"
    items.write_text(items.read_text(encoding="utf-8").split("\n")[0] + "\n", encoding="utf-8")
    with items.open("a", encoding="utf-8") as f:
        f.write(items.read_text(encoding="utf-8"))
    _rehash(folder)
    assert run(["parse", str(folder), str(outputs)]) == 2
    assert capsys.readouterr().err == (
        f"error: {items}: cannot read items.jsonl: item id 's01' appears twice (rebuild it "
        "with promptc build SPEC -o DIR)\n"
    )
    folder = _build(tmp_path / "big", target="chat")
    lines = (folder / "requests.jsonl").read_text(encoding="utf-8").split("\n")
    record = json.loads(lines[0])
    record["item_ids"] = [f"x{k}" for k in range(50_000)]
    (folder / "requests.jsonl").write_text(
        "\n".join([json.dumps(record), *lines[1:]]), encoding="utf-8"
    )
    assert run(["parse", str(folder), str(outputs)]) == 2
    assert capsys.readouterr().err == (
        f"error: {folder / 'requests.jsonl'}:1:1: request r0001 lists 50000 items; a request "
        "holds at most 1000\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--batch-sizes", "9" * 5000],
            (
                f"<command line>: --batch-sizes: batch size '{'9' * 39}…' is not a whole number "
                "from 1 to 1000"
            ),
        ),
        (
            ["--batch-sizes", "²"],
            "<command line>: --batch-sizes: batch size '²' is not a whole number from 1 to 1000",
        ),
        (
            ["--price-in", "1e308", "--price-out", "1"],
            (
                "<command line>: --price-in: price '1e308' is more than 1000000 US dollars per "
                "million tokens"
            ),
        ),
    ],
)
def test_absurd_numbers_are_usage_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["plan", str(SPECS / "sentiment.yaml"), *argv]) == 2
    assert capsys.readouterr().err.splitlines()[0] == message


@pytest.mark.parametrize("value", ["nan", "inf", "-nan", "Infinity"])
def test_a_timeout_or_price_that_is_no_finite_number_is_refused(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``float()`` reads these and every range comparison lets nan through: refused by name."""
    folder = _build(tmp_path / "b")
    assert run(["run", str(folder), "--timeout", value]) == 2
    err = capsys.readouterr().err
    assert "Invalid value for '--timeout'" in err and "Traceback" not in err
    assert not (folder / "outputs.jsonl").exists()
    assert run(["plan", str(SPECS / "sentiment.yaml"), "--max-cost", value]) == 2
    assert "Invalid value for '--max-cost'" in capsys.readouterr().err
    for option in ("--price-cached", "--price-in"):
        assert run(["plan", str(SPECS / "sentiment.yaml"), option, value, "--price-out", "1"]) == 2
        assert f"<command line>: {option}: price '{value}'" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["my tasks", "-dash", "it's", "$HOME x", "a" * 300])
def test_init_says_a_next_command_a_shell_runs_as_said(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    status = run(["init", "--", name])
    out, err = capsys.readouterr()
    if len(name) > 255:  # longer than a file name may be: said, nothing written
        assert status == 2 and "File name too long" in err
        assert list(tmp_path.iterdir()) == []
        return
    assert status == 0
    next_line = out.splitlines()[-1]
    words = shlex.split(next_line.removeprefix("next: "))
    folder = f"./{name}" if name.startswith("-") else name
    assert words == [
        "promptc",
        "check",
        f"{folder}/task.yaml",
        "&&",
        "promptc",
        "build",
        f"{folder}/task.yaml",
        "-o",
        f"{folder}/build",
    ]
    assert (tmp_path / name / "task.yaml").is_file()


def test_parse_never_writes_results_over_answers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _build(tmp_path / "b", target="chat")
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"id": "r0001", "output": ANSWER}) + "\n", encoding="utf-8")
    before = answers.read_bytes()
    for out in (answers, folder / "outputs.jsonl"):
        assert run(["parse", str(folder), str(answers), "-o", str(out)]) == 2
        assert capsys.readouterr().err == (
            f"error: -o {out} would replace answers; give another file\n"
        )
    assert answers.read_bytes() == before
    assert not (folder / "outputs.jsonl").exists()


def test_collect_takes_the_answers_run_gave_the_repair_build(tmp_path: Path) -> None:
    """The batch lost r0002; its repair build was answered with promptc run (its
    outputs.jsonl: id and output): collect takes those answers as the repair's."""
    folder = _build(tmp_path / "b")
    first = _results(tmp_path / "out.jsonl", [_line(rid) for rid in IDS if rid != "r0002"])
    collect(folder, first)
    run_outputs = tmp_path / "repair-outputs.jsonl"
    run_outputs.write_text(
        json.dumps({"id": "r0002.repair1", "output": ANSWER, "finish_reason": "stop"}) + "\n",
        encoding="utf-8",
    )
    done = collect(folder, first, run_outputs)
    assert done.not_ok == 0 and done.unknown == []
    assert "r0002.repair1" in read_outputs_file(folder / "outputs.jsonl").answers


def test_collect_says_a_torn_line_is_no_json_not_another_builds(tmp_path: Path) -> None:
    folder = _build(tmp_path / "b")
    lines = [_line(rid) for rid in IDS]
    torn = _results(tmp_path / "out.jsonl", [*lines[:4], lines[4][: len(lines[4]) // 2]])
    done = collect(folder, torn)
    assert done.unknown == [] and len(done.unreadable) == 1
    assert done.unreadable[0].startswith("out.jsonl:5 (")
    assert "1 line(s) that are no JSON object" in done.summary()
    assert done.failed == {"r0005": "no line in the files"}


class _Answers(QuietHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        send_json(self, chat_completion(ANSWER))


def test_run_limit_parse_writes_what_parse_writes_of_the_same_answers(tmp_path: Path) -> None:
    """run --limit 1 --parse: the requests past the limit keep their answers' rows, read as
    promptc parse reads them (whatever grammar mode they were asked in), their repair answers
    merged: one results.jsonl whichever of the two wrote it."""
    folder = _build(tmp_path / "b", target="chat")
    held = [{"id": rid, "output": ANSWER, "finish_reason": "stop"} for rid in IDS[1:]]
    held[0]["output"] = "A[1]: maybe\nA[2]: negative\nA[3]: neutral\nA[4]: positive"
    repair = {"attempt": 1, "item_ids": ["s05"], "kind": "batch", "of": "r0002"}
    held.append({"id": "r0002.repair1", "output": "A[1]: positive", "repair": repair})
    outputs = folder / "outputs.jsonl"
    outputs.write_text("".join(json.dumps(a) + "\n" for a in held), encoding="utf-8")
    with serving(_Answers) as url:
        args = ["run", str(folder), "--base-url", url, "--limit", "1", "--parse", "--no-cache"]
        assert run([*args, "--grammar", "none", "--repair", "0"]) == 0
    ran = (folder / "results.jsonl").read_text(encoding="utf-8")
    parsed = tmp_path / "parsed.jsonl"
    assert run(["parse", str(folder), str(outputs), "-o", str(parsed)]) == 0
    assert ran == parsed.read_text(encoding="utf-8")
    assert '"request_id": "r0002.repair1", "item_id": "s05"' in ran


def test_a_whole_last_answer_without_its_line_break_is_an_answer(tmp_path: Path) -> None:
    """outputs.jsonl saved without its final line break (an editor, head -c, "\\n".join):
    run took its last answer for a line torn by a kill, moved it aside and bought it again;
    collect did the same. It is that answer; run sends nothing and the file ends with its
    line break again. A line torn mid-way is still set aside."""
    folder = _build(tmp_path / "b", target="chat")
    outputs = folder / "outputs.jsonl"
    posts: list[str] = []

    class Counting(_Answers):
        def do_POST(self) -> None:
            posts.append(self.path)
            super().do_POST()

    with serving(Counting) as url:
        args = ["run", str(folder), "--base-url", url, "--no-cache", "--grammar", "none"]
        assert run(args) == 0
        assert len(posts) == len(IDS)
        written = outputs.read_text(encoding="utf-8")
        outputs.write_text(written.removesuffix("\n"), encoding="utf-8")
        found = read_outputs_file(outputs)
        assert sorted(found.answers) == sorted(IDS) and found.unplaced == []
        assert found.unterminated
        assert run(args) == 0
    assert len(posts) == len(IDS) and not (folder / "outputs.replaced.jsonl").exists()
    assert outputs.read_text(encoding="utf-8") == written
    lines = written.splitlines()
    outputs.write_text("\n".join([*lines[:-1], lines[-1][:30]]), encoding="utf-8")
    torn = read_outputs_file(outputs)
    assert len(torn.answers) == len(IDS) - 1
    assert torn.unplaced == [(len(IDS), lines[-1][:30].encode())]
