"""What ``promptc run`` reads of a build folder and writes beside it, held to the project's
bar: a build file that is not the build's (a request's own grammar missing, edited or
replaced; a request line whose parameters are no object) is refused, naming it, before
anything is sent; an output path that cannot take the run's file, or holds a file that is not
promptc's, is refused before anything is paid for; a model's refusal is kept on disk; a
redirect that would turn the POST into a GET is not followed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from loopback import QuietHandler, chat_completion, send_json, serving
from promptc.build import build
from promptc.cli.app import run
from promptc.spec.lower import compile_spec
from test_folder_trust import no_hang  # noqa: F401  (autouse: a planted FIFO fails, not hangs)

SPECS = Path(__file__).resolve().parents[1] / "specs"


class _Recording(QuietHandler):
    """Answers every item of a prompt ``(a)``, records each body it was sent."""

    bodies: ClassVar[list[dict[str, Any]]] = []
    answer: ClassVar[Callable[[dict[str, Any]], dict[str, Any]] | None] = None

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append(body)
        if type(self).answer is not None:
            send_json(self, type(self).answer(body))  # type: ignore[misc]
            return
        prompt = body["messages"][-1]["content"]
        n = sum(1 for line in prompt.splitlines() if line.startswith("Q["))
        send_json(self, chat_completion("\n".join(f"A[{i}]: (a)" for i in range(1, n + 1))))

    def do_GET(self) -> None:
        send_json(self, {"error": "no"}, status=404)


@pytest.fixture
def server() -> Iterator[tuple[str, type[_Recording]]]:
    handler = type("Handler", (_Recording,), {"bodies": [], "answer": None})
    with serving(handler) as base:
        yield base, handler


def _build(tmp_path: Path, spec: str = "commonsense-qa.yaml", name: str = "b") -> Path:
    out = tmp_path / name
    build(compile_spec(SPECS / spec), out)
    return out


def _rehash(out: Path, name: str) -> None:
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    manifest["files"][name] = hashlib.sha256((out / name).read_bytes()).hexdigest()
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


# --------------------------------------------------------------------------------------------
# A request's own grammar
# --------------------------------------------------------------------------------------------


def _unlist(out: Path) -> None:
    path = out / "batches.jsonl"
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    lines[0]["grammar_files"] = {}
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    _rehash(out, "batches.jsonl")


OWN_CHANGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing": (lambda p: p.unlink(), "it is missing, though batches.jsonl lists it"),
    "fifo": (lambda p: (p.unlink(), os.mkfifo(p)), "is a named pipe, not a regular file"),
    "folder": (lambda p: (p.unlink(), p.mkdir()), "is a folder, not a regular file"),
    "edited": (
        lambda p: p.write_text(p.read_text() + '\nroot ::= "x"\n'),
        "it does not match the sha256 batches.jsonl lists",
    ),
    "unlisted": (lambda p: _unlist(p.parents[1]), "batches.jsonl lists no sha256 for it"),
}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
@pytest.mark.parametrize("mode", ["gbnf", "json-schema"])
@pytest.mark.parametrize("change", sorted(OWN_CHANGES))
def test_a_requests_own_grammar_that_is_not_the_builds_is_refused_before_sending(
    tmp_path: Path,
    server: tuple[str, type[_Recording]],
    capsys: pytest.CaptureFixture[str],
    change: str,
    mode: str,
) -> None:
    # The shared answer grammar admits every item's options: sent in the place of a
    # request's own, it would no longer hold the model to the item's.
    url, handler = server
    out = _build(tmp_path)
    suffix = ".gbnf" if mode == "gbnf" else ".schema.json"
    mutate, said = OWN_CHANGES[change]
    mutate(out / "grammars" / f"r0001{suffix}")
    argv = ["run", str(out), "--base-url", url, "--grammar", mode, "--no-cache", "--repair", "0"]
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert f"grammars/r0001{suffix}" in err and said in err, err
    assert handler.bodies == []
    assert not (out / "outputs.jsonl").exists()


def test_an_edited_shared_grammar_is_refused(
    tmp_path: Path, server: tuple[str, type[_Recording]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, handler = server
    out = _build(tmp_path, "sentiment.yaml")
    with (out / "answer.gbnf").open("a", encoding="utf-8") as f:
        f.write('\nroot ::= "anything"\n')
    assert run(["run", str(out), "--base-url", url, "--grammar", "gbnf", "--no-cache"]) == 2
    assert (
        "grammar file answer.gbnf of request r0001: it does not match the sha256 "
        "manifest.json lists; the build folder was changed after promptc build"
    ) in capsys.readouterr().err
    assert handler.bodies == []


def test_the_builds_own_grammars_are_sent_as_they_are(
    tmp_path: Path, server: tuple[str, type[_Recording]]
) -> None:
    url, handler = server
    out = _build(tmp_path)
    argv = ["run", str(out), "--base-url", url, "--grammar", "gbnf", "--no-cache", "--repair", "0"]
    assert run(argv) in (0, 4)
    sent = {b["messages"][-1]["content"]: b["grammar"] for b in handler.bodies}
    for line in (out / "requests.jsonl").read_text(encoding="utf-8").splitlines():
        request = json.loads(line)
        own = (out / "grammars" / f"{request['id']}.gbnf").read_text(encoding="utf-8")
        assert sent[request["messages"][-1]["content"]] == own


# --------------------------------------------------------------------------------------------
# A request line's params
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "kind"),
    [([1, 2], "a list"), (None, "null"), ("temperature=0", "a string"), (5, "a number")],
)
def test_params_that_are_no_object_are_refused_at_their_line(
    tmp_path: Path,
    server: tuple[str, type[_Recording]],
    capsys: pytest.CaptureFixture[str],
    params: object,
    kind: str,
) -> None:
    # Sent as they were, the request went without its model and token budget.
    url, handler = server
    out = _build(tmp_path, "sentiment.yaml")
    path = out / "requests.jsonl"
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    rows[1]["params"] = params
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    _rehash(out, "requests.jsonl")
    assert run(["run", str(out), "--base-url", url, "--no-cache"]) == 2
    assert capsys.readouterr().err == (
        f"error: {path}:2:1: request r0002 has 'params' that are {kind}, not an object; "
        "expected its sampling parameters (model, max_tokens …) as promptc build writes them\n"
    )
    assert handler.bodies == []


# --------------------------------------------------------------------------------------------
# Where the run's files go
# --------------------------------------------------------------------------------------------


def test_a_folder_at_results_jsonl_is_refused_before_anything_is_sent(
    tmp_path: Path, server: tuple[str, type[_Recording]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, handler = server
    out = _build(tmp_path, "sentiment.yaml")
    (out / "results.jsonl").mkdir()
    assert run(["run", str(out), "--base-url", url, "--no-cache", "--parse"]) == 2
    err = capsys.readouterr().err
    assert (
        f"error: {out / 'results.jsonl'}: results.jsonl is a folder, not a regular file"
    ) in err, err
    assert handler.bodies == []
    # --results naming a folder, or a file in none: the same, naming the option.
    for where in (tmp_path, tmp_path / "no" / "r.jsonl"):
        argv = ["run", str(out), "--base-url", url, "--parse", "--results", str(where)]
        assert run(argv) == 2
        assert "--results" in capsys.readouterr().err
    assert handler.bodies == []


def test_collect_refuses_a_folder_at_results_jsonl_before_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "b"
    build(compile_spec(SPECS / "sentiment.yaml"), out, target="openai-batch")
    answers = tmp_path / "batch_output.jsonl"
    answers.write_text("", encoding="utf-8")
    for name in ("results.jsonl", "outputs.jsonl"):
        (out / name).mkdir()
        assert run(["collect", str(out), str(answers)]) == 2
        assert f"{name} is a folder, not a regular file" in capsys.readouterr().err
        (out / name).rmdir()


def _users_files(tmp_path: Path) -> dict[str, Path]:
    """A user's files that are no answers nor results of promptc: a JSONL data file (its
    first line a JSON object too), one whose rows even have an id and an output, a spec."""
    folder = tmp_path / "mine"
    folder.mkdir()
    data = folder / "reviews.jsonl"
    data.write_text('{"id": "s01", "text": "Great."}\n{"id": "s02", "text": "Bad."}\n')
    labelled = folder / "labelled.jsonl"
    labelled.write_text('{"id": "s01", "output": "positive"}\n')
    spec = folder / "spec.yaml"
    spec.write_text((SPECS / "sentiment.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    return {"data": data, "labelled": labelled, "spec": spec}


@pytest.mark.parametrize("which", ["data", "labelled", "spec"])
def test_no_output_option_replaces_a_users_file(
    tmp_path: Path,
    server: tuple[str, type[_Recording]],
    capsys: pytest.CaptureFixture[str],
    which: str,
) -> None:
    url, handler = server
    out = _build(tmp_path, "sentiment.yaml")
    mine = _users_files(tmp_path)[which]
    before = mine.read_bytes()
    base = ["run", str(out), "--base-url", url, "--no-cache", "--repair", "0"]
    assert run([*base, "-o", str(mine)]) == 2
    err = capsys.readouterr().err
    assert f"error: -o {mine} is not an outputs file of promptc" in err
    assert handler.bodies == []
    assert run([*base, "--parse", "--results", str(mine)]) == 2
    assert f"error: --results {mine} is not a results file of promptc" in (capsys.readouterr().err)
    assert handler.bodies == []
    # Answers, then parse -o over the user's file.
    assert run([*base, "--allow-failures"]) == 0
    capsys.readouterr()
    assert run(["parse", str(out), str(out / "outputs.jsonl"), "-o", str(mine)]) == 2
    assert f"error: -o {mine} is not a results file of promptc" in capsys.readouterr().err
    # -o beside the user's results.jsonl: the results file --parse writes there is checked.
    (mine.parent / "results.jsonl").write_bytes(before)
    assert run([*base, "--parse", "-o", str(mine.parent / "new.jsonl")]) == 2
    assert "the results file" in capsys.readouterr().err
    assert mine.read_bytes() == before
    assert (mine.parent / "results.jsonl").read_bytes() == before


def test_promptcs_own_files_are_replaced_as_before(
    tmp_path: Path, server: tuple[str, type[_Recording]]
) -> None:
    url, _ = server
    out = _build(tmp_path, "sentiment.yaml")
    answers, results = tmp_path / "a.jsonl", tmp_path / "r.jsonl"
    base = ["run", str(out), "--base-url", url, "--no-cache", "--repair", "0", "--allow-failures"]
    argv = [*base, "-o", str(answers), "--parse", "--results", str(results)]
    assert run(argv) == 0
    assert run(argv) == 0  # a resumed run, over its own files
    table = tmp_path / "t.txt"
    for target in (results, table, table):  # results, then a table, then over the table
        fmt = ["--format", "table"] if target == table else []
        assert run(["parse", str(out), str(answers), "-o", str(target), *fmt]) in (0, 1)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert run([*base, "-o", str(empty)]) == 0
    assert json.loads(empty.read_text().splitlines()[0])["id"] == "r0001"


# --------------------------------------------------------------------------------------------
# A model's refusal
# --------------------------------------------------------------------------------------------


def _refusal(body: dict[str, Any]) -> dict[str, Any]:
    answer = chat_completion("")
    answer["choices"][0]["message"] = {
        "role": "assistant",
        "content": None,
        "refusal": "I cannot classify reviews.",
    }
    return answer


def test_a_refusal_is_kept_in_the_outputs_and_said_by_every_result(
    tmp_path: Path, server: tuple[str, type[_Recording]], capsys: pytest.CaptureFixture[str]
) -> None:
    url, handler = server
    handler.answer = _refusal
    out = _build(tmp_path, "sentiment.yaml")
    argv = ["run", str(out), "--base-url", url, "--no-cache", "--parse", "--repair", "0"]
    assert run(argv) == 4
    assert "the model refused: I cannot classify reviews." in capsys.readouterr().err
    records = [json.loads(x) for x in (out / "outputs.jsonl").read_text().splitlines()]
    assert records and all(
        r["output"] == "" and r["refusal"] == "I cannot classify reviews." for r in records
    )
    said = "no answer: the model refused: I cannot classify reviews."
    results = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert results and all(r["status"] == "missing" and r["message"] == said for r in results)
    # promptc parse reads the same from outputs.jsonl.
    assert run(["parse", str(out), str(out / "outputs.jsonl")]) == 1
    parsed = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["message"] for r in parsed] == [said] * len(results)


# --------------------------------------------------------------------------------------------
# A redirect
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303])
def test_a_redirect_that_would_make_the_post_a_get_is_not_followed(
    tmp_path: Path,
    server: tuple[str, type[_Recording]],
    capsys: pytest.CaptureFixture[str],
    status: int,
) -> None:
    # Followed, the POST became a GET and the other host's 404 was reported as the URL's.
    target, handler = server
    got: list[str] = []

    class Redirecting(QuietHandler):
        def _move(self) -> None:
            got.append(self.command)
            self.send_response(status)
            self.send_header("Location", f"{target}/chat/completions")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_GET = _move

    out = _build(tmp_path, "sentiment.yaml")
    with serving(Redirecting) as url:
        argv = ["run", str(out), "--base-url", url, "--no-cache", "--limit", "1"]
        assert run([*argv, "--max-retries", "3"]) == 1
    err = capsys.readouterr().err
    assert (
        f"error: request r0001: the server redirected the request (HTTP {status}: POST "
        f"{url}/chat/completions is redirected to {target}/chat/completions, which would be "
        "sent as a GET without the request) after 1 attempt; give --base-url the address it "
        "redirects to"
    ) in err, err
    assert got.count("POST") == 1  # not retried (the GETs: what run asks of the server)
    assert handler.bodies == []  # nothing was sent where it points
