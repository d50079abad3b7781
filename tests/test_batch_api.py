"""``promptc run BUILD --batch-api`` against a local Batch API (:mod:`batch_server`: the files
and batches endpoints over real HTTP): three shards, a request that errors, a batch that
expires with a request unfinished; every other item ok, a repair build for the rest, exit 4;
and a run killed (SIGKILL) after its batches were created resumes them, creating none."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from batch_server import BatchServer, batch_api
from promptc.build import build, read_requests
from promptc.build.targets import OpenAIBatch, strict_schema
from promptc.run.batch_api import STATE_FILE, read_state
from promptc.spec.lower import compile_spec

openai = pytest.importorskip("openai")

SPECS = Path(__file__).resolve().parents[1] / "specs"


@pytest.fixture
def shards(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """sentiment.yaml in batches of 4 (5 requests), as openai-batch in shards of 2 requests."""
    monkeypatch.setattr(OpenAIBatch, "max_lines", 2)
    task = compile_spec(
        SPECS / "sentiment.yaml",
        overrides={("strategy", "kind"): "batch", ("strategy", "batch_size"): 4},
    )
    out = tmp_path / "build"
    build(task, out, target="openai-batch")
    assert [p.name for p in sorted(out.glob("requests-*.jsonl"))] == [
        "requests-0001.jsonl",
        "requests-0002.jsonl",
        "requests-0003.jsonl",
    ]
    return out


def _server(folder: Path) -> BatchServer:
    sizes = {r.id: len(r.item_ids) for r in read_requests(folder)}

    def answer(rid: str, body: dict[str, Any]) -> str:
        return "\n".join(f"A[{i}]: positive" for i in range(1, sizes[rid] + 1))

    # r0002 errors (HTTP 400); the second shard's batch expires before r0004 is done.
    return BatchServer(
        answer, errors={"r0002"}, unfinished={"r0004"}, expire={"requests-0002.jsonl"}
    )


def _run(folder: Path, url: str, *more: str, key: str = "sk-test") -> subprocess.Popen[str]:
    env = {**os.environ, "OPENAI_API_KEY": key}
    cmd = [sys.executable, "-m", "promptc", "run", str(folder), "--batch-api"]
    cmd += ["--base-url", url, "--poll-interval", "0.05", *more]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _results(folder: Path) -> list[dict[str, Any]]:
    lines = (folder / "results.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(x) for x in lines]


def _check_outcome(folder: Path) -> None:
    rows = _results(folder)
    assert len(rows) == 20
    bad = {r["item_id"] for r in rows if r["status"] != "ok"}
    by_request = {r.id: set(r.item_ids) for r in read_requests(folder)}
    assert bad == by_request["r0002"] | by_request["r0004"]
    repair = [r.id for r in read_requests(folder / "repair")]
    assert repair == ["r0002.repair1", "r0004.repair1"]
    answered = [json.loads(x)["id"] for x in (folder / "outputs.jsonl").open()]
    assert answered == ["r0001", "r0003", "r0005"]


def test_three_shards_an_error_and_an_expiry_end_in_a_repair_build(shards: Path) -> None:
    server = _server(shards)
    with batch_api(server) as url:
        proc = _run(shards, url)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 4, err
    assert server.created == 3
    _check_outcome(shards)
    state = read_state(shards)
    assert [b.status for b in state.values()] == ["completed", "expired", "completed"]
    assert "r0002: no answer (HTTP 400: bad request)" in err
    assert "r0004: no answer (error batch_expired" in err
    assert "8 of 20 item(s) are not ok" in err
    # Run again: everything is recorded and downloaded; nothing is created, the same result.
    with batch_api(server) as url:
        again = _run(shards, url)
        _, err2 = again.communicate(timeout=120)
    assert again.returncode == 4, err2
    assert server.created == 3
    _check_outcome(shards)


def _wait_for(predicate: Any, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _kill_once_recorded(proc: subprocess.Popen[str], shards: Path) -> None:
    """Kills (SIGKILL) the run once batch_api.json records the three shards' batches."""

    def all_recorded() -> bool:
        try:
            state = read_state(shards)
        except Exception:  # noqa: BLE001 - written atomically; a read may race the rename
            return False
        return len(state) == 3 and all(b.batch_id for b in state.values())

    _wait_for(all_recorded)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def test_a_run_killed_after_creating_its_batches_resumes_them(shards: Path) -> None:
    server = _server(shards)
    server.hold.clear()  # the batches stay in progress until released
    with batch_api(server) as url:
        _kill_once_recorded(_run(shards, url), shards)
        assert server.created == 3
        assert not (shards / "outputs.jsonl").exists()
        server.hold.set()
        again = _run(shards, url)
        _, err = again.communicate(timeout=120)
    assert again.returncode == 4, err
    assert server.created == 3  # no second batch
    assert "resuming batch" in err
    # Sent by the first run: this one resumed them.
    assert "(0 sent, 0 from cache, 3 already in outputs.jsonl)" in err, err
    _check_outcome(shards)


def test_a_batch_created_but_not_recorded_is_found_again(shards: Path) -> None:
    """Killed between the batch's creation and its record: the next run finds the batch by
    its input file on the server rather than creating another."""
    server = _server(shards)
    with batch_api(server) as url:
        proc = _run(shards, url)
        proc.communicate(timeout=120)
        state = json.loads((shards / STATE_FILE).read_text(encoding="utf-8"))
        for record in state["batches"]:
            record.update(batch_id=None, status=None, downloaded={})
        (shards / STATE_FILE).write_text(json.dumps(state), encoding="utf-8")
        again = _run(shards, url)
        _, err = again.communicate(timeout=120)
    assert again.returncode == 4, err
    assert server.created == 3
    assert "found on the server" in err
    _check_outcome(shards)


def test_batch_api_needs_an_openai_batch_build(tmp_path: Path) -> None:
    task = compile_spec(SPECS / "sentiment.yaml")
    build(task, tmp_path / "b")
    proc = _run(tmp_path / "b", "http://127.0.0.1:9/v1")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "--batch-api sends a build of --target openai-batch" in err


def test_batch_api_refuses_to_change_the_field_of_max_tokens(tmp_path: Path) -> None:
    """The Batch API uploads the build's bodies as written: --max-tokens-field would change
    nothing that is sent, so it is refused, pointing at the spec's model.max_tokens_field."""
    task = compile_spec(SPECS / "sentiment.yaml")
    build(task, tmp_path / "b", target="openai-batch")
    proc = _run(tmp_path / "b", "http://127.0.0.1:9/v1", "--max-tokens-field", "max_tokens")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "--max-tokens-field cannot change a build sent through the Batch API" in err
    assert "model.max_tokens_field" in err and "Traceback" not in err


def test_cancel_leaves_the_requests_to_the_repair_build(shards: Path) -> None:
    """A batch cancelled on the server (by its owner) ends the run like an expired one."""
    server = _server(shards)
    server.hold.clear()
    with batch_api(server) as url:
        proc = _run(shards, url)
        _wait_for(lambda: len(server.batches) == 3)
        client = openai.OpenAI(base_url=url, api_key="sk-test")
        client.batches.cancel("batch_0001")
        server.hold.set()
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 4, err
    rows = _results(shards)
    bad = {r["item_id"] for r in rows if r["status"] != "ok"}
    first = {i for r in read_requests(shards) if r.id in ("r0001", "r0002") for i in r.item_ids}
    assert first <= bad
    assert "batch_0001 cancelled" in err


def test_cancel_stops_the_recorded_batches_and_collects_them(shards: Path) -> None:
    """``--cancel`` after a run was killed while its batches were in progress: every batch
    is cancelled on the server, none is created, and every request goes to the repair build."""
    server = _server(shards)
    server.hold.clear()  # the batches stay in progress until cancelled
    with batch_api(server) as url:
        _kill_once_recorded(_run(shards, url), shards)
        cancel = _run(shards, url, "--cancel")
        _, err = cancel.communicate(timeout=120)
    assert cancel.returncode == 4, err
    assert server.created == 3
    assert {b["status"] for b in server.batches.values()} == {"cancelled"}
    assert "requests-0001.jsonl: batch batch_0001 cancelling" in err
    assert {b.status for b in read_state(shards).values()} == {"cancelled"}
    assert {r["status"] for r in _results(shards)} != {"ok"} and len(_results(shards)) == 20
    repair = [r.id for r in read_requests(shards / "repair")]
    assert repair == [f"r{k:04d}.repair1" for k in range(1, 6)]


def test_cancel_needs_recorded_batches_and_the_batch_api(shards: Path) -> None:
    proc = _run(shards, "http://127.0.0.1:9/v1", "--cancel")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert f"{shards / STATE_FILE} records no batch: nothing to cancel" in err
    env = {**os.environ, "OPENAI_API_KEY": "sk-test"}
    cmd = [sys.executable, "-m", "promptc", "run", str(shards), "--cancel"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "cancel is for the batches of --batch-api" in done.stderr


def test_the_repair_builds_answers_are_collected_into_the_build(shards: Path) -> None:
    """The loop a user follows: run (exit 4, a repair build), run the repair build, run the
    build again: its results now hold the repair answers, merged as collect merges them, and
    every item is ok; no batch is made for the build a second time."""

    def answer(rid: str, body: dict[str, Any]) -> str:
        asked = re.findall(r"^Q\[(\d+)\]:", body["messages"][-1]["content"], re.MULTILINE)
        return "\n".join(f"A[{i}]: positive" for i in asked)

    server = BatchServer(
        answer, errors={"r0002"}, unfinished={"r0004"}, expire={"requests-0002.jsonl"}
    )
    with batch_api(server) as url:
        first = _run(shards, url)
        _, err = first.communicate(timeout=120)
        assert first.returncode == 4 and "repair build of 2 request(s)" in err
        server.errors.clear()
        server.unfinished.clear()
        repair = _run(shards / "repair", url)
        _, err = repair.communicate(timeout=120)
        assert repair.returncode == 0, err
        again = _run(shards, url)
        _, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert server.created == 4  # the build's three, the repair build's one
    rows = _results(shards)
    assert len(rows) == 20 and {r["status"] for r in rows} == {"ok"}
    by_request = {r.id: set(r.item_ids) for r in read_requests(shards)}
    repaired = {r["item_id"] for r in rows if r["request_id"].endswith(".repair1")}
    assert repaired == by_request["r0002"] | by_request["r0004"]
    answered = [json.loads(x)["id"] for x in (shards / "outputs.jsonl").open()]
    assert answered == ["r0001", "r0003", "r0005", "r0002.repair1", "r0004.repair1"]


def test_a_repair_build_answered_by_promptc_run_is_collected_and_never_sent(
    shards: Path,
) -> None:
    """The repair build answered by plain promptc run (its outputs.jsonl, written here as
    run writes it: each answer with its prompt's hash): the build's next --batch-api run
    collects those answers (every item ok), and the repair build sent through the Batch API
    makes no batch: every request of it is answered already."""
    server = _server(shards)
    with batch_api(server) as url:
        first = _run(shards, url)
        _, err = first.communicate(timeout=120)
        assert first.returncode == 4 and "repair build of 2 request(s)" in err
        repair = shards / "repair"
        prompts = {
            r["request"]: r["prompt_sha256"]
            for r in map(json.loads, (repair / "batches.jsonl").read_text().splitlines())
        }
        sizes = {r.id: len(r.item_ids) for r in read_requests(repair)}
        (repair / "outputs.jsonl").write_text(
            "".join(
                json.dumps(
                    {
                        "id": rid,
                        "output": "\n".join(f"A[{i}]: positive" for i in range(1, n + 1)),
                        "prompt_sha256": prompts[rid],
                    }
                )
                + "\n"
                for rid, n in sizes.items()
            ),
            encoding="utf-8",
        )
        again = _run(shards, url)
        _, err = again.communicate(timeout=120)
        assert again.returncode == 0, err
        sent = _run(repair, url)
        _, err = sent.communicate(timeout=120)
    assert sent.returncode == 0, err
    assert "every request is answered in outputs.jsonl; not sent" in err
    assert server.created == 3  # the build's three shards, nothing for the repair build
    assert {r["status"] for r in _results(shards)} == {"ok"}


def test_a_repair_build_that_fails_again_is_followed_by_the_next(shards: Path) -> None:
    """The repair build's own batch fails an answer again: the build's next run still
    collects, and writes the next repair build over the one the Batch API answered."""

    def answer(rid: str, body: dict[str, Any]) -> str:
        asked = re.findall(r"^Q\[(\d+)\]:", body["messages"][-1]["content"], re.MULTILINE)
        return "\n".join(f"A[{i}]: positive" for i in asked)

    server = BatchServer(answer, errors={"r0002"})
    with batch_api(server) as url:
        assert _run(shards, url).wait(timeout=120) == 4
        server.errors = {"r0002.repair1"}
        assert _run(shards / "repair", url).wait(timeout=120) == 4
        again = _run(shards, url)
        _, err = again.communicate(timeout=120)
        assert again.returncode == 4, err
        assert "Traceback" not in err and "not a file of a promptc build" not in err
        # The request that errored is asked again whole, in a batch of its own this time.
        assert [r.id for r in read_requests(shards / "repair")] == ["r0002.repair1"]
        assert not (shards / "repair" / STATE_FILE).exists()
        server.errors = set()
        assert _run(shards / "repair", url).wait(timeout=120) == 0
        assert server.created == 5  # the build's three, then one batch per repair round
        last = _run(shards, url)
        _, err = last.communicate(timeout=120)
    assert last.returncode == 0, err
    assert {r["status"] for r in _results(shards)} == {"ok"}


def test_a_state_file_of_other_types_or_a_planted_link_is_refused(shards: Path) -> None:
    (shards / STATE_FILE).write_text(
        json.dumps(
            {
                "format": 1,
                "batches": [
                    {
                        "shard": "requests-0001.jsonl",
                        "sha256": "x",
                        "downloaded": "batch_api/../../x",
                    }
                ],
            }
        ),
        encoding="utf-8",
    )
    proc = _run(shards, "http://127.0.0.1:9/v1")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert "batch_api.json is not a record of batches promptc can read (the record of " in err
    outside = shards.parent / "elsewhere.json"
    outside.write_text(json.dumps({"format": 1, "batches": []}), encoding="utf-8")
    (shards / STATE_FILE).unlink()
    (shards / STATE_FILE).symlink_to(outside)
    proc = _run(shards, "http://127.0.0.1:9/v1")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert "batch_api.json is a symbolic link, not a regular file" in err
    assert "Traceback" not in err


def test_a_batch_status_the_api_does_not_have_ends_the_run_and_a_rerun_resumes(
    shards: Path,
) -> None:
    """A server saying a status OpenAI's batch object does not have would be polled for ever:
    the run stops with exit 1 naming it, the batches stay recorded, and the next run resumes."""
    server = _server(shards)
    server.hold.clear()
    with batch_api(server) as url:
        proc = _run(shards, url)
        _wait_for(lambda: len(server.batches) == 3)
        with server.lock:
            server.batches["batch_0001"]["status"] = "paused"
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 1, err
        assert "a batch with id 'batch_0001' and status 'paused'; expected one of cancelled" in err
        assert "Traceback" not in err
        with server.lock:
            server.batches["batch_0001"]["status"] = "in_progress"
        server.hold.set()
        again = _run(shards, url)
        _, err = again.communicate(timeout=120)
    assert again.returncode == 4, err
    assert server.created == 3
    _check_outcome(shards)


def test_answers_in_raw_utf8_with_line_separators_are_kept(shards: Path) -> None:
    """An output file in raw UTF-8 (not ASCII escapes) whose answers hold U+2028 and U+0085:
    each JSON line is read whole, and every answer is kept as the server wrote it."""
    sizes = {r.id: len(r.item_ids) for r in read_requests(shards)}

    def answer(rid: str, body: dict[str, Any]) -> str:
        said = "\n".join(f"A[{i}]: positive" for i in range(1, sizes[rid] + 1))
        return f"Answers\u2028\x85follow.\n{said}"

    server = BatchServer(answer, ascii=False)
    with batch_api(server) as url:
        proc = _run(shards, url)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    answers = [json.loads(x) for x in (shards / "outputs.jsonl").open(encoding="utf-8")]
    assert [a["id"] for a in answers] == [f"r{k:04d}" for k in range(1, 6)]
    assert all(a["output"] == answer(a["id"], {}) for a in answers)


def test_openai_batch_bodies_carry_the_strict_json_schema_and_its_answers_parse(
    tmp_path: Path,
) -> None:
    """``--target openai-batch --grammar json-schema``: each body's ``response_format`` is the
    request's strict JSON Schema (what ``promptc run --grammar json-schema`` sends); answers
    in that JSON form come back ok through the Batch API, and the repair build carries it too.
    """
    out = tmp_path / "b"
    cmd = [sys.executable, "-m", "promptc", "build", str(SPECS / "sentiment.yaml"), "-o"]
    cmd += [str(out), "--target", "openai-batch", "--grammar", "json-schema"]
    cmd += ["--strategy", "batch", "--batch-size", "4"]
    subprocess.run(cmd, check=True, capture_output=True)
    schema = json.loads((out / "answer.schema.json").read_text(encoding="utf-8"))
    lines = [json.loads(x) for x in (out / "requests.jsonl").open(encoding="utf-8")]
    assert [x["body"]["response_format"] for x in lines] == [strict_schema(schema)] * 5
    assert json.loads((out / "manifest.json").read_text())["response_format"] == "json_schema"
    # What promptc run reads of the lines: sampling parameters, not the constraint.
    assert all("response_format" not in r.params for r in read_requests(out))
    sizes = {r.id: len(r.item_ids) for r in read_requests(out)}

    def answer(rid: str, body: dict[str, Any]) -> str:
        assert body["response_format"]["json_schema"]["strict"] is True
        entries = [{"index": i, "sentiment": "negative"} for i in range(1, sizes[rid] + 1)]
        return json.dumps({"answers": entries})

    server = BatchServer(answer, errors={"r0003"})
    with batch_api(server) as url:
        proc = _run(out, url)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 4, err
    rows = _results(out)
    assert sum(r["status"] == "ok" for r in rows) == 16
    assert {r["values"].get("sentiment") for r in rows if r["status"] == "ok"} == {"negative"}
    repair = [json.loads(x) for x in (out / "repair" / "requests.jsonl").open()]
    assert [x["custom_id"] for x in repair] == ["r0003.repair1"]
    assert repair[0]["body"]["response_format"] == strict_schema(schema)


def test_openai_batch_refuses_a_gbnf_constraint(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "promptc", "build", str(SPECS / "sentiment.yaml"), "-o"]
    cmd += [str(tmp_path / "b"), "--target", "openai-batch", "--grammar", "gbnf"]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert (
        "--target openai-batch bodies cannot carry a gbnf grammar; they carry json-schema "
        "(promptc run --grammar chooses how a run sends it)"
    ) in proc.stderr


@pytest.mark.parametrize("kind", ["length", "no-length"])
def test_a_download_cut_half_way_is_fetched_again(shards: Path, kind: str) -> None:
    """The output file's download stops half-way (the connection closed, with or without a
    declared length): asked again, never exit 3, never half the answers kept as all."""
    folder = shards
    server = _server(folder)
    server.errors, server.unfinished, server.expire = set(), set(), set()
    server.cut, server.cut_kind = 1, kind
    with batch_api(server) as url:
        proc = _run(folder, url)
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "internal error" not in err
    assert {r["status"] for r in _results(folder)} == {"ok"}


def test_a_batch_the_api_refuses_as_a_whole_fails_the_run(shards: Path) -> None:
    """A batch that fails while validating (a model the API does not serve): the run fails
    (exit 1, saying what the API said), rather than calling its items not ok (exit 4)."""
    server = _server(shards)
    server.errors, server.unfinished, server.expire = set(), set(), set()
    server.refuse = {"requests-0002.jsonl"}
    with batch_api(server) as url:
        proc = _run(shards, url)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "The model does not exist." in err and "internal error" not in err


def test_a_key_the_server_echoes_is_written_nowhere(shards: Path) -> None:
    """The key echoed in answers and in an error line: *** in outputs.jsonl, results.jsonl,
    the downloads and every message, as on the chat path."""
    key = "sk-batch-secret-7d1c9e3a5b"
    sizes = {r.id: len(r.item_ids) for r in read_requests(shards)}

    def answer(rid: str, body: dict[str, Any]) -> str:
        said = "\n".join(f"A[{i}]: positive" for i in range(1, sizes[rid] + 1))
        return f"{said}\n(sent with Bearer {key})"

    server = BatchServer(answer, errors={"r0002"}, error_message=f"bad request from {key}")
    with batch_api(server) as url:
        proc = _run(shards, url, key=key)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 4, err
    assert key not in out + err and "bad request from ***" in err
    written = [p for p in shards.rglob("*") if p.is_file()]
    assert shards / "batch_api" / "requests-0001.output.jsonl" in written
    assert [p for p in written if key.encode() in p.read_bytes()] == []
    answers = [json.loads(x) for x in (shards / "outputs.jsonl").open(encoding="utf-8")]
    assert all(a["output"].endswith("(sent with Bearer ***)") for a in answers)


def test_a_key_after_an_escape_or_in_an_id_is_written_nowhere(shards: Path) -> None:
    """The key echoed on a line of its own (``\\n`` before it in the downloaded JSON), after
    a tab, in an error line and in the batches' ids: *** in every file and message, and the
    server's line break is no line break in a message."""
    key = "sk-batch-secret-7d1c9e3a5b"
    sizes = {r.id: len(r.item_ids) for r in read_requests(shards)}

    def answer(rid: str, body: dict[str, Any]) -> str:
        said = "\n".join(f"A[{i}]: positive" for i in range(1, sizes[rid] + 1))
        return f"{said}\n{key}\t{key}"

    server = BatchServer(
        answer,
        errors={"r0002"},
        error_message=f"bad header:\n{key}",
        batch_ids=f"batch_{key}_{{:04d}}",
    )
    with batch_api(server) as url:
        proc = _run(shards, url, key=key)
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 4, err
    assert key not in out + err
    assert "requests-0001.jsonl: batch batch_***_0001 created" in err.splitlines()
    assert "r0002: no answer (HTTP 400: bad header:\\n***): asked again in repair/" in err
    written = [p for p in shards.rglob("*") if p.is_file()]
    assert shards / "batch_api" / "requests-0001.output.jsonl" in written
    assert [p for p in written if key.encode() in p.read_bytes()] == []
    answers = [json.loads(x) for x in (shards / "outputs.jsonl").open(encoding="utf-8")]
    assert answers and all(a["output"].endswith("\n***\t***") for a in answers)


def test_a_batch_api_that_trickles_its_replies_is_held_to_the_timeout(shards: Path) -> None:
    """Every reply sent 10 bytes at a time, each well within the timeout of a read: the whole
    reply is held to --timeout, as on the chat path, and the run ends failed, not minutes
    later."""
    server = _server(shards)
    server.trickle = 0.2
    started = time.monotonic()
    with batch_api(server) as url:
        proc = _run(shards, url, "--timeout", "1", "--max-retries", "0")
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert time.monotonic() - started < 15
    assert (
        f"refused or failed (a reply of the Batch API from {url} took over 1 s) after 1 "
        "attempt; wait, or raise --timeout, then run again"
    ) in err


def test_a_download_cut_inside_a_line_every_time_keeps_its_whole_lines(shards: Path) -> None:
    """Every download of the output files stops half-way with no length declared: after the
    retries each file is kept as it came, its whole lines collected, the cut line said and
    its request asked again in the repair build; never a run that can only fail."""
    server = _server(shards)
    server.errors, server.unfinished, server.expire = set(), set(), set()
    server.cut, server.cut_kind = 1000, "no-length"
    with batch_api(server) as url:
        proc = _run(shards, url, "--max-retries", "1")
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 4, err
    assert "its last line is cut short; downloading it again" in err
    assert "no JSON object" in err and "internal error" not in err
    answered = [json.loads(x)["id"] for x in (shards / "outputs.jsonl").open()]
    assert answered and len(answered) < 5
    repair = {r.id.split(".")[0] for r in read_requests(shards / "repair")}
    assert repair == {f"r{k:04d}" for k in range(1, 6)} - set(answered)
