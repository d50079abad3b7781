"""Ray Data: a build folder as a Dataset of requests, answered by the embedded llama.cpp
server through ``map_batches`` (an OpenAI-compatible HTTP endpoint), parsed on the cluster,
written as results.jsonl that ``promptc eval --results`` reads. A local Ray instance; the
real model (marker ``llm``)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from promptc.build import build
from promptc.errors import UsageError
from promptc.ray import ChatEndpoint, parse_dataset, requests_dataset, write_results
from promptc.spec.lower import compile_spec

ray = pytest.importorskip("ray")

SPECS = Path(__file__).resolve().parents[2] / "specs"


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _through_ray(folder: Path, url: str) -> Path:
    answered = requests_dataset(folder).map(ChatEndpoint, fn_constructor_args=(url,), concurrency=1)
    return write_results(parse_dataset(answered, folder), folder)


def _eval_results(spec: Path, folder: Path, out: Path, *more: str) -> dict[str, Any]:
    """``promptc eval SPEC --results FOLDER --format json``: its report, the command ok."""
    proc = subprocess.run(
        [sys.executable, "-m", "promptc", "eval", str(spec), *more, "--results", str(folder)]
        + ["-o", str(out), "--no-charts", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


@pytest.mark.llm
def test_sentiment_in_batches_of_8_comes_back_ok_through_ray(
    cluster: None, llm_base_url: str, tmp_path: Path
) -> None:
    task = compile_spec(
        SPECS / "sentiment.yaml",
        overrides={("strategy", "kind"): "batch", ("strategy", "batch_size"): 8},
    )
    folder = tmp_path / "batch-8"
    build(task, folder)
    rows = requests_dataset(folder).take_all()
    assert [r["id"] for r in rows] == ["r0001", "r0002", "r0003"]
    assert "root ::=" in rows[0]["gbnf"] and json.loads(rows[0]["json_schema"])
    path = _through_ray(folder, llm_base_url)
    results = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(results) == 20
    assert {r["status"] for r in results} == {"ok"}
    assert [r["item_id"] for r in results] == [i.id for i in task.items]
    # promptc eval --results reads the folder Ray answered and scores it against the gold.
    report = _eval_results(SPECS / "sentiment.yaml", folder, tmp_path / "report")
    assert report["items"] == 20
    (variant,) = report["variants"]
    assert variant["variant"] == "batch-8" and variant["result_statuses"]["ok"] == 20
    gold = {i.id: i.gold["sentiment"] for i in task.items}
    right = sum(r["values"]["sentiment"] == gold[r["item_id"]] for r in results)
    assert variant["accuracy"]["correct"] == right and variant["accuracy"]["n"] == 20


@pytest.mark.llm
def test_eval_results_scores_what_ray_wrote(
    cluster: None, llm_base_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "nli4.json"
    rows = json.loads((SPECS / "data" / "nli.json").read_text(encoding="utf-8"))
    data.write_text(json.dumps(rows[:4]), encoding="utf-8")
    task = compile_spec(
        SPECS / "nli.yaml",
        overrides={("strategy", "batch_size"): 2, ("data", "path"): str(data)},
    )
    folder = tmp_path / "batch-2"
    build(task, folder)
    _through_ray(folder, llm_base_url)
    report = _eval_results(SPECS / "nli.yaml", folder, tmp_path / "report", "--data", str(data))
    assert report["items"] == 4
    assert [v["variant"] for v in report["variants"]] == ["batch-2"]


@pytest.mark.llm  # no model: marked as the other tests here, for the local Ray instance's start
def test_a_vote_build_through_ray_writes_what_promptc_parse_writes(
    cluster: None, tmp_path: Path
) -> None:
    from promptc.cli.parse import run_parse

    task = compile_spec(
        SPECS / "sentiment.yaml",
        overrides={
            ("strategy", "kind"): "batch",
            ("strategy", "batch_size"): 4,
            ("strategy", "vote"): {"rounds": 3},
        },
    )
    folder = tmp_path / "vote"
    build(task, folder)
    rows = requests_dataset(folder).take_all()
    labels = ["positive", "negative", "neutral"]
    answers = [
        {
            "id": r["id"],
            "position": r["position"],
            # Round by round other answers, so that the votes decide.
            "generated_text": "\n".join(
                f"A[{k}]: {labels[(k * r['position']) % 3]}"
                for k in range(1, r["messages"][-1]["content"].count("Q[") + 1)
            ),
        }
        for r in rows
    ]
    write_results(parse_dataset(ray.data.from_items(answers), folder), folder)
    outputs = tmp_path / "answers.jsonl"
    outputs.write_text(
        "".join(json.dumps({"id": a["id"], "output": a["generated_text"]}) + "\n" for a in answers)
    )
    out, err = io.StringIO(), io.StringIO()
    assert run_parse(str(folder), str(outputs), None, "recover", "jsonl", out, err) == 0
    written = (folder / "results.jsonl").read_text(encoding="utf-8")
    assert written == out.getvalue()
    results = [json.loads(x) for x in written.splitlines()]
    assert [r["item_id"] for r in results] == [i.id for i in task.items]  # 20 lines, not 60
    assert {len(r["rounds"]) for r in results} == {3}
    # The same answers in another order, numbered as batches.jsonl numbers each round's
    # requests (from 0 again): the build's own order decides, the same file.
    index = {
        json.loads(x)["request"]: json.loads(x)["index"]
        for x in (folder / "batches.jsonl").read_text(encoding="utf-8").splitlines()
    }
    shuffled = [{**a, "position": index[a["id"]]} for a in reversed(answers)]
    write_results(parse_dataset(ray.data.from_items(shuffled), folder), folder)
    assert (folder / "results.jsonl").read_text(encoding="utf-8") == written


@pytest.mark.llm  # no model: marked as the other tests here, for the local Ray instance's start
def test_two_answers_of_one_request_are_refused_not_written_twice(
    cluster: None, tmp_path: Path
) -> None:
    # A Dataset unioned with answers asked again: it has no first answer to keep (promptc
    # parse keeps a file's first line), and writing both wrote every item of it twice.
    folder = tmp_path / "b"
    build(compile_spec(SPECS / "sentiment.yaml"), folder)
    rows = requests_dataset(folder).take_all()
    good = [
        {"id": r["id"], "position": r["position"], "generated_text": "A[1]: positive"} for r in rows
    ]
    again = [dict(good[0], generated_text="A[1]: negative")]
    with pytest.raises(UsageError) as e:
        write_results(parse_dataset(ray.data.from_items(good + again), folder), folder)
    assert e.value.code == "two-answers" and "request 'r0001'" in e.value.message
    assert not (folder / "results.jsonl").exists()


@pytest.mark.llm  # no model: marked as the other tests here, for the local Ray instance's start
def test_results_of_another_build_are_refused_not_written_over_this_ones(
    cluster: None, tmp_path: Path
) -> None:
    """Rows parsed for the sentiment build, written into the math build: refused before the
    math build's results.jsonl is replaced."""
    sentiment, math = tmp_path / "s", tmp_path / "m"
    build(compile_spec(SPECS / "sentiment.yaml"), sentiment)
    build(compile_spec(SPECS / "math.yaml"), math)
    (math / "results.jsonl").write_text("kept\n", encoding="utf-8")
    rows = requests_dataset(sentiment).take_all()
    answers = [
        {"id": r["id"], "position": r["position"], "generated_text": "A[1]: positive"} for r in rows
    ]
    parsed = parse_dataset(ray.data.from_items(answers), sentiment)
    with pytest.raises(UsageError) as e:
        write_results(parsed, math)
    assert e.value.code == "unknown-answer"
    assert (math / "results.jsonl").read_text(encoding="utf-8") == "kept\n"
