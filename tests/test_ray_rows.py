"""promptc.ray without a cluster: the rows it hands a processor (every sampling parameter of
the build, the grammar form checked) and the results.jsonl it writes from parsed answers (each
item's voting rounds combined, byte for byte what ``promptc parse`` writes from the same
answers). The same pipeline on a local Ray instance is tests/integration/test_ray.py."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import promptc
import pytest
from promptc.build import build
from promptc.cli.parse import run_parse
from promptc.errors import UsageError
from promptc.ray import (
    ChatEndpoint,
    ParseAnswers,
    http_payload,
    request_rows,
    result_lines,
    vllm_request,
)
from promptc.spec.lower import compile_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"


def _build(tmp_path: Path, spec: str, **overrides: object) -> Path:
    task = compile_spec(
        SPECS / spec,
        overrides={tuple(k.split("__")): v for k, v in overrides.items()},
    )
    folder = tmp_path / "build"
    build(task, folder)
    return folder


def _answer(rid: str, n: int, choices: list[str]) -> str:
    """A scripted answer that differs round to round: some items left out or malformed, and an
    extra answer now and then."""
    lines = []
    for k in range(1, n + 1):
        h = hashlib.sha256(f"{rid}/{k}".encode()).digest()[0]
        if h % 11 == 0:
            continue  # missing
        if h % 13 == 0:
            lines.append(f"A[{k}]: ???")  # malformed
            continue
        lines.append(f"A[{k}]: {choices[h % len(choices)]}")
    if hashlib.sha256(rid.encode()).digest()[0] % 5 == 0:
        lines.append(f"A[{n + 3}]: {choices[0]}")  # extra
    return "\n".join(lines)


def _through_parse_answers(
    folder: Path, outputs: dict[str, str], finishes: dict[str, str] | None = None
) -> list[str]:
    """What parse_dataset then write_results do, without Ray: ParseAnswers over the answers
    (in two batches, as workers would get them), sorted by position and seq."""
    rows = list(request_rows(folder))
    parse = ParseAnswers(str(folder), "generated_text")
    got: list[tuple[int, int, str]] = []
    for part in (rows[::2], rows[1::2]):
        batch = {
            "id": [r["id"] for r in part],
            "position": [r["position"] for r in part],
            "generated_text": [outputs[r["id"]] for r in part],
        }
        if finishes is not None:
            batch["finish_reason"] = [finishes.get(r["id"], "stop") for r in part]
        out = parse(batch)
        got += zip(out["position"], out["seq"], out["line"], strict=True)
    return result_lines([line for _, _, line in sorted(got)])


def _promptc_parse(
    folder: Path, outputs: dict[str, str], tmp_path: Path, finishes: dict[str, str] | None = None
) -> str:
    path = tmp_path / "answers.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": k, "output": v, "finish_reason": (finishes or {}).get(k, "stop")})
            + "\n"
            for k, v in outputs.items()
        ),
        encoding="utf-8",
    )
    out, err = io.StringIO(), io.StringIO()
    run_parse(str(folder), str(path), None, "recover", "jsonl", out, err)
    return out.getvalue()


@pytest.mark.parametrize(
    ("spec", "overrides", "choices"),
    [
        (
            "sentiment.yaml",
            {"strategy__kind": "batch", "strategy__batch_size": 4},
            ["positive", "negative", "neutral", "pos"],
        ),
        ("math-batch.yaml", {}, ["So. The answer is 2.50.", "Then. The answer is 1e3."]),
    ],
)
@pytest.mark.parametrize("vote", [None, {"rounds": 3}, {"rounds": 3, "early_stop": 2}])
def test_results_are_what_promptc_parse_writes_from_the_same_answers(
    tmp_path: Path,
    spec: str,
    overrides: dict[str, object],
    choices: list[str],
    vote: dict[str, int] | None,
) -> None:
    if vote is not None:
        overrides = {**overrides, "strategy__vote": vote}
    folder = _build(tmp_path, spec, **overrides)
    rows = list(request_rows(folder))
    # Each answer holds as many A[k] as its request has items.
    outputs = {
        r["id"]: _answer(r["id"], len(json.loads(line)["item_ids"]), choices)
        for r, line in zip(rows, (folder / "batches.jsonl").read_text().splitlines(), strict=True)
    }
    lines = _through_parse_answers(folder, outputs)
    expected = _promptc_parse(folder, outputs, tmp_path)
    assert "".join(x + "\n" for x in lines) == expected
    results = [json.loads(x) for x in lines]
    items = {r["item_id"] for r in results if r["item_id"] is not None}
    assert len([r for r in results if r["item_id"] is not None]) == len(items)  # one line each
    if vote is not None:
        assert all(len(r["rounds"]) == 3 for r in results if r["item_id"] is not None)


def test_an_answer_cut_off_at_max_tokens_loses_its_unfinished_items_as_in_promptc_parse(
    tmp_path: Path,
) -> None:
    folder = _build(
        tmp_path,
        "sentiment.yaml",
        strategy__kind="batch",
        strategy__batch_size=4,
        strategy__vote={"rounds": 2},
    )
    rows = list(request_rows(folder))
    outputs = {r["id"]: "A[1]: positive\nA[2]: negative\nA[3]: neu" for r in rows}
    finishes = {rows[0]["id"]: "length", rows[7]["id"]: "length"}
    lines = _through_parse_answers(folder, outputs, finishes)
    assert "".join(x + "\n" for x in lines) == _promptc_parse(folder, outputs, tmp_path, finishes)
    statuses = [r["status"] for x in lines for r in json.loads(x)["rounds"]]
    assert statuses.count("truncated") == 4  # items 3 and 4 of the two cut answers


def test_an_answer_to_a_request_the_build_does_not_hold_is_refused(tmp_path: Path) -> None:
    folder = _build(tmp_path, "sentiment.yaml", strategy__kind="batch", strategy__batch_size=4)
    with pytest.raises(UsageError) as e:
        ParseAnswers(str(folder), "generated_text")(
            {"id": ["r0001.v3.live"], "position": [0], "generated_text": ["A[1]: positive"]}
        )
    assert e.value.message == (
        f"an answer for request 'r0001.v3.live', which {folder} does not hold; expected "
        f"answers to the rows of requests_dataset({folder}) (a repair or early-stop answer "
        "of promptc run is not one)"
    )


PARAMS_SPEC = """\
promptc: 1
name: h
instruction: Classify.
inputs: {review: {type: text}}
outputs: {sentiment: {type: enum, choices: [positive, negative]}}
data: {path: data.jsonl, id: id, fields: {review: text}}
strategy: {kind: batch, batch_size: 2}
model: MODEL
"""


def _params_build(tmp_path: Path, model: str) -> dict[str, object]:
    (tmp_path / "data.jsonl").write_text(
        "".join(json.dumps({"id": f"s{k}", "text": f"review {k}"}) + "\n" for k in range(3))
    )
    spec = tmp_path / "spec.yaml"
    spec.write_text(PARAMS_SPEC.replace("MODEL", model))
    folder = tmp_path / "build"
    build(compile_spec(spec), folder)
    return next(iter(request_rows(folder)))


def test_vllm_gets_every_sampling_parameter_of_the_build(tmp_path: Path) -> None:
    row = _params_build(
        tmp_path,
        '{name: m, max_tokens: 80, temperature: 0.7, top_p: 0.9, seed: 7, stop: ["\\n\\n"], '
        "extra: {mirostat: 2}}",
    )
    sampling = vllm_request(row)["sampling_params"]
    grammar = sampling.pop("guided_decoding")
    assert grammar == {"grammar": row["gbnf"]} and "root ::=" in grammar["grammar"]
    assert sampling == {
        "max_tokens": 80,
        "mirostat": 2,
        "seed": 7,
        "stop": ["\n\n"],
        "temperature": 0.7,
        "top_p": 0.9,
    }
    assert sampling == json.loads(str(row["sampling_params"]))


def test_vllm_gets_no_parameter_the_spec_did_not_set(tmp_path: Path) -> None:
    row = _params_build(tmp_path, "{name: m, max_tokens_per_item: 10}")
    sampling = vllm_request(row)["sampling_params"]
    del sampling["guided_decoding"]
    assert sampling == json.loads(str(row["sampling_params"]))
    assert "temperature" not in sampling and set(sampling) == {"max_tokens"}


def test_vllm_calls_max_completion_tokens_max_tokens(tmp_path: Path) -> None:
    row = {
        "id": "r0001",
        "position": 0,
        "messages": [],
        "gbnf": 'root ::= "x"',
        "sampling_params": json.dumps({"max_completion_tokens": 9, "top_k": 3}),
    }
    assert vllm_request(row)["sampling_params"] == {
        "max_tokens": 9,
        "top_k": 3,
        "guided_decoding": {"grammar": 'root ::= "x"'},
    }


@pytest.mark.parametrize(("form", "hint"), [("GBNF", "gbnf"), ("json-schema", "json_schema")])
def test_an_unknown_grammar_form_is_refused_naming_the_accepted_ones(
    tmp_path: Path, form: str, hint: str
) -> None:
    row = _params_build(tmp_path, "{name: m, max_tokens: 9}")
    for call in (lambda: http_payload(row, form), lambda: ChatEndpoint("http://x/v1", form)):  # type: ignore[arg-type]
        with pytest.raises(UsageError) as e:
            call()
        assert e.value.message == (
            f"unknown grammar form {form!r}: expected one of 'gbnf', 'json_schema', 'none'"
        )
        assert e.value.hint == f"did you mean '{hint}'?"
    assert http_payload(row, "gbnf")["payload"]["grammar"] == row["gbnf"]
    schema = http_payload(row, "json_schema")["payload"]["response_format"]["json_schema"]
    assert schema["schema"] == json.loads(str(row["json_schema"]))
    body = http_payload(row, "none")["payload"]
    assert "grammar" not in body and "response_format" not in body


def test_the_chat_endpoint_reads_answers_as_run_does_and_says_what_failed(
    tmp_path: Path,
) -> None:
    """Content given as text parts is the answer's text; an error status, an answer with no
    choices or a body that is not JSON is a message naming the request and the URL (it was
    an HTTPError, IndexError or UnicodeDecodeError)."""
    from loopback import QuietHandler, chat_completion, send_json, serving
    from promptc.errors import BackendError

    folder = _build(tmp_path, "sentiment.yaml")
    row = next(iter(request_rows(folder)))
    replies: list[tuple[int, object]] = []

    class Scripted(QuietHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            status, payload = replies.pop(0)
            send_json(self, payload, status)

    parts = chat_completion("")
    parts["choices"][0]["message"]["content"] = [{"type": "text", "text": "A[1]: positive"}]
    with serving(Scripted) as url:
        endpoint = ChatEndpoint(url, timeout=5)
        replies.append((200, parts))
        assert endpoint(row)["generated_text"] == "A[1]: positive"
        failures = {
            'HTTP 500: {"error": "down"}': (500, {"error": "down"}),
            "choices is empty": (200, {**chat_completion("x"), "choices": []}),
            "its body is not JSON": (200, b"<html>"),
        }
        for why, reply in failures.items():
            replies.append(reply)
            with pytest.raises(BackendError) as e:
                endpoint(row)
            assert e.value.code == "chat-endpoint"
            assert e.value.message.startswith(
                f"request {row['id']}: {url}/chat/completions gave no answer: {why}"
            )


def test_an_auto_demo_row_carries_its_own_grammar_as_run_sends_it(tmp_path: Path) -> None:
    # The build's shared .gbnf lets a repeated question be any line: each row's gbnf and
    # JSON Schema pin its questions, as promptc run, vllm-batch bodies and iter_requests do.
    task = compile_spec(SPECS / "gsm8k.yaml")
    folder = tmp_path / "b"
    build(task, folder)
    first = next(iter(promptc.iter_requests(task)))
    (row, *_) = request_rows(folder)
    question = task.items[0].inputs["question"]
    assert json.dumps(question) in row["gbnf"] and json.dumps(question) in first.grammar.gbnf
    assert json.dumps(question) in row["json_schema"]
    assert first.grammar.json_schema == json.loads(row["json_schema"])


def test_answers_to_another_builds_requests_are_refused_by_their_prompt(tmp_path: Path) -> None:
    """batch-8's answers parsed into batch-4's folder: both have requests r0001 …, so ids alone
    passed them, and eval scored a perfect model 38.9 %. An answer row keeps its request's
    prompt_sha256, which is not the other build's prompt of that id."""
    four = _build(tmp_path / "4", "sentiment.yaml", strategy__kind="batch", strategy__batch_size=4)
    eight = _build(tmp_path / "8", "sentiment.yaml", strategy__kind="batch", strategy__batch_size=8)
    rows = list(request_rows(eight))
    batch = {
        "id": [r["id"] for r in rows],
        "position": [r["position"] for r in rows],
        "prompt_sha256": [r["prompt_sha256"] for r in rows],
        "generated_text": ["A[1]: positive" for _ in rows],
    }
    assert ParseAnswers(str(eight), "generated_text")(batch)["status"]  # its own: parsed
    with pytest.raises(UsageError) as info:
        ParseAnswers(str(four), "generated_text")(batch)
    assert info.value.code == "unknown-answer" and "prompt_sha256 differs" in info.value.message


def test_answers_without_the_text_column_are_refused_naming_the_columns(tmp_path: Path) -> None:
    """text_column left at generated_text for rows that call it 'text': a KeyError from the
    worker; now a promptc error naming the column and those the rows have."""
    folder = _build(tmp_path, "sentiment.yaml", strategy__kind="batch", strategy__batch_size=4)
    rows = list(request_rows(folder))
    batch = {"id": [rows[0]["id"]], "position": [0], "text": ["A[1]: positive"]}
    with pytest.raises(UsageError) as info:
        ParseAnswers(str(folder), "generated_text")(batch)
    assert info.value.code == "bad-argument"
    assert info.value.message.startswith(
        "the answers have no column 'generated_text'; they have 'id', 'position', 'text'"
    )
