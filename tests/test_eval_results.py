"""``promptc eval --results`` on folders that ``promptc run`` answered against a scripted
server: what it scores is what ``run`` and ``parse`` say of the same answers. A repaired item
counts (retrieval builds included), the calls it cost count as its tokens do, answers to the
prompts of an earlier build of the folder are refused, and ``--limit`` does one documented
thing in the command and the API. Messages word for word."""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

import promptc
import pytest
from loopback import QuietHandler, chat_completion, send_json, serving
from promptc.cli.app import run

SPECS = Path(__file__).resolve().parents[1] / "specs"
GOLD = {
    d["text"]: d["label"]
    for d in map(json.loads, (SPECS / "data" / "sentiment.jsonl").read_text().splitlines())
}


class Sentiment(QuietHandler):
    """Answers every review with its gold label, except (``bad_last``) the last review of a
    request of several, answered ``zzz``: malformed, so ``promptc run`` repairs it alone."""

    bad_last: ClassVar[bool] = False

    def do_GET(self) -> None:  # the endpoint check eval makes before sending
        send_json(self, {"object": "list", "data": [{"id": "m", "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        user = body["messages"][-1]["content"]
        reviews = re.findall(r"^Q\[\d+\]: ?(.*)$", user, re.MULTILINE) or [user]
        labels = [GOLD.get(r, "positive") for r in reviews]
        if Sentiment.bad_last and len(labels) > 1:
            labels[-1] = "zzz"
        send_json(
            self,
            chat_completion("\n".join(f"A[{i}]: {a}" for i, a in enumerate(labels, 1)), 100, 10),
        )


def _counting() -> tuple[type[Sentiment], list[int]]:
    """A Sentiment server that counts the requests it answers, and that count."""
    posts: list[int] = []

    class Counting(Sentiment):
        def do_POST(self) -> None:
            posts.append(1)
            super().do_POST()

    return Counting, posts


def _spec(root: Path, *, selection: str = "sequential", batch_size: int = 8) -> Path:
    """The sentiment spec (20 items) in ``root``, with this selection and batch size."""
    (root / "data").mkdir(parents=True)
    (root / "data" / "sentiment.jsonl").write_bytes(
        (SPECS / "data" / "sentiment.jsonl").read_bytes()
    )
    text = (SPECS / "sentiment.yaml").read_text(encoding="utf-8")
    text = text.replace("{method: sequential}", f"{{method: {selection}}}")
    spec = root / "s.yaml"
    spec.write_text(text.replace("batch_size: 8", f"batch_size: {batch_size}"), encoding="utf-8")
    return spec


def _answered(spec: Path, folder: Path, url: str, *, bad_last: bool) -> None:
    """``promptc build`` then ``promptc run --parse`` (repair on, as by default)."""
    Sentiment.bad_last = bad_last
    assert run(["build", str(spec), "-o", str(folder)]) == 0
    assert run(["run", str(folder), "--base-url", url, "--parse", "--no-cache"]) == 0


def _report(spec: Path, out: Path, *folders: Path) -> dict:
    code = run(["eval", str(spec), "-o", str(out), "--no-charts", "--results", *map(str, folders)])
    assert code == 0
    return json.loads((out / "report.json").read_text(encoding="utf-8"))


def test_repaired_items_count_in_a_retrieval_build(tmp_path: Path) -> None:
    """Retrieval: one request per item; every target answered malformed and repaired alone
    (``r0001.repair1``). results.jsonl says 20 ok, all gold: eval scores 20 of 20, and its
    calls are the 20 requests and the 20 repairs, as its tokens are."""
    spec = _spec(tmp_path / "p", selection="retrieval", batch_size=4)
    folder = tmp_path / "rb"
    with serving(Sentiment) as url:
        _answered(spec, folder, url, bad_last=True)
    rows = [json.loads(x) for x in (folder / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 20 and {r["status"] for r in rows} == {"ok"}
    assert all(r["request_id"].endswith(".repair1") for r in rows)
    (v,) = _report(spec, tmp_path / "ev", folder)["variants"]
    assert (v["accuracy"]["correct"], v["accuracy"]["n"]) == (20, 20)
    assert (v["unparsed"], v["statuses"]["ok"]) == (0, 20)
    assert (v["requests"], v["repair_requests"], v["calls_per_question"]) == (20, 20, 2.0)
    assert v["input_tokens_per_question"] == 200.0  # 40 answers of 100 tokens, 20 items


def test_calls_count_the_repairs_as_the_tokens_do(tmp_path: Path) -> None:
    """batch-8 of 20 items: 3 requests, each last item repaired alone: 6 calls, 6 answers'
    tokens (100 in each), on 20 questions."""
    spec = _spec(tmp_path / "p")
    folder = tmp_path / "b"
    with serving(Sentiment) as url:
        _answered(spec, folder, url, bad_last=True)
    (v,) = _report(spec, tmp_path / "ev", folder)["variants"]
    assert (v["requests"], v["answered_requests"], v["repair_requests"]) == (3, 6, 3)
    assert v["calls_per_question"] == 0.3 and v["input_tokens_per_question"] == 30.0
    assert v["accuracy"]["correct"] == 20


def test_a_repaired_item_is_placed_where_its_batch_asked_it(tmp_path: Path) -> None:
    """batch-8 of 20 items (8, 8, 4): each request's last item is answered malformed, then
    repaired alone (index 1 of ``r000K.repair1``). Accuracy by position is about the batch
    the strategy sent: those items count at 8, 8 and 4, not at 1."""
    spec = _spec(tmp_path / "p")
    folder = tmp_path / "b"
    with serving(Sentiment) as url:
        _answered(spec, folder, url, bad_last=True)
    (v,) = _report(spec, tmp_path / "ev", folder)["variants"]
    by_position = {int(p): r["n"] for p, r in v["by_position"].items()}
    assert by_position == {1: 3, 2: 3, 3: 3, 4: 3, 5: 2, 6: 2, 7: 2, 8: 2}


def test_a_folder_asked_other_questions_than_the_data_holds_now_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The data edited after the run: same ids, other reviews (and their gold). The folder's
    answers are to the old reviews: scored against the new gold they would be a false
    accuracy. Refused at the build's items.jsonl; nothing written."""
    spec = _spec(tmp_path / "p")
    folder = tmp_path / "b"
    with serving(Sentiment) as url:
        _answered(spec, folder, url, bad_last=False)
    data = tmp_path / "p" / "data" / "sentiment.jsonl"
    rows = [json.loads(x) for x in data.read_text(encoding="utf-8").splitlines()]
    rows[1] = {**rows[1], "text": "Another review altogether.", "label": "negative"}
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    capsys.readouterr()
    out = tmp_path / "ev"
    assert run(["eval", str(spec), "-o", str(out), "--no-charts", "--results", str(folder)]) == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        f"{folder / 'items.jsonl'}: 1 item(s) of {str(folder)!r} were asked other inputs "
        "than the data holds now (first: 's02'): its answers are to other questions (build and "
        "run it again: promptc build SPEC -o DIR, then promptc run DIR --parse)"
    )
    assert not out.exists()


def test_eval_without_repair_scores_no_repair_an_earlier_eval_left(tmp_path: Path) -> None:
    """eval --repair 1, then the same eval without it into the same folder: repair is off,
    so the variant is scored as a fresh folder scores it (its requests' answers alone), not
    with the repair answers the first eval left there."""
    spec = _spec(tmp_path / "p")
    out = tmp_path / "ev"
    Sentiment.bad_last = True
    with serving(Sentiment) as url:
        args = ["eval", str(spec), "--base-url", url, "--strategies", "batch"]
        args += ["--batch-sizes", "8", "-o", str(out), "--no-charts"]
        assert run([*args, "--repair", "1"]) == 0
        repaired = json.loads((out / "report.json").read_text(encoding="utf-8"))["variants"][0]
        assert run(args) == 0
    (v,) = json.loads((out / "report.json").read_text(encoding="utf-8"))["variants"]
    assert repaired["accuracy"]["correct"] == 20 and repaired["repair_requests"] == 3
    assert (v["accuracy"]["correct"], v["repair_requests"], v["requests"]) == (17, 0, 3)


def test_answers_to_an_earlier_builds_prompts_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rebuilt with another instruction over the same batches, the folder keeps the old
    answers and results: promptc parse calls them stale, and so does eval, at results.jsonl's
    first line of the request; no report is written. Answers recorded without a prompt hash
    (by hand, or by a promptc older than the field) cannot be told apart and are scored."""
    spec = _spec(tmp_path / "p")
    folder = tmp_path / "v"
    with serving(Sentiment) as url:
        _answered(spec, folder, url, bad_last=False)
    text = spec.read_text(encoding="utf-8")
    spec.write_text(text.replace("instruction: >-\n", "instruction: >-\n  Think twice.\n"))
    assert run(["build", str(spec), "-o", str(folder)]) == 0
    capsys.readouterr()
    out = tmp_path / "ev"
    args = ["eval", str(spec), "-o", str(out), "--no-charts", "--results", str(folder)]
    assert run(args) == 2
    err = capsys.readouterr().err
    assert (
        f"{folder / 'results.jsonl'}:1:1: the answer of request 'r0001' in outputs.jsonl was "
        "produced for another prompt than this build's: results.jsonl was parsed for an "
        "earlier build of the folder (run the build again: promptc run BUILD_DIR --parse)"
    ) in err
    assert "Traceback" not in err and not (out / "report.json").exists()
    with pytest.raises(promptc.PromptcError) as e:
        promptc.evaluate(spec, [folder])
    assert e.value.code == "stale-result"
    outputs = folder / "outputs.jsonl"
    answers = [json.loads(x) for x in outputs.read_text(encoding="utf-8").splitlines()]
    outputs.write_text(
        "".join(
            json.dumps({k: v for k, v in a.items() if k != "prompt_sha256"}) + "\n" for a in answers
        ),
        encoding="utf-8",
    )
    assert _report(spec, out, folder)["variants"][0]["accuracy"]["correct"] == 20


def test_limit_with_results_is_one_rule_in_the_command_and_the_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--limit 5`` with a folder of 20 answered items: its calls and tokens are of its 20
    items, so it cannot be scored on 5. The command refuses it (it used to score all 20
    without a word), naming --limit, and the API refuses it the same way (it used to say the
    results were of another data file). A folder holding no item past the limit is scored."""
    spec = _spec(tmp_path / "p")
    folder = tmp_path / "b"
    with serving(Sentiment) as url:
        _answered(spec, folder, url, bad_last=False)
        capsys.readouterr()
        out = tmp_path / "ev"
        args = ["eval", str(spec), "-o", str(out), "--no-charts", "--results", str(folder)]
        assert run([*args, "--limit", "5"]) == 2
        err = capsys.readouterr().err
        assert (
            f"<command line>: --limit: {str(folder)!r} holds 20 item(s), 15 of them past the "
            "first 5 that --limit scores: its calls and tokens are of all its items, so it "
            "cannot be scored on the first 5 alone (give --limit when promptc eval runs the "
            "variants; answered folders are scored on all their items, without --limit)"
        ) in err
        assert "Traceback" not in err and not (out / "report.json").exists()
        with pytest.raises(promptc.PromptcError) as e:
            promptc.evaluate(spec, [folder], limit=5)
        assert e.value.code == "limit-cuts-build"
        assert promptc.evaluate(spec, [folder], limit=20)["items"] == 20
        # eval's own runs with --limit 8: the folders hold the first 8, scored on them.
        assert (
            run(
                [
                    "eval",
                    str(spec),
                    "-o",
                    str(tmp_path / "own"),
                    "--no-charts",
                    "--base-url",
                    url,
                    "--strategies",
                    "batch",
                    "--batch-sizes",
                    "8",
                    "--limit",
                    "8",
                ]
            )
            == 0
        )
    own = tmp_path / "own" / "variants" / "batch-8"
    assert promptc.evaluate(spec, [own], limit=8)["items"] == 8
    assert _report(spec, tmp_path / "again", own)["items"] == 8


def test_the_report_and_charts_replace_links_left_in_the_folder(tmp_path: Path) -> None:
    """Every file eval writes into ``-o DIR`` of an earlier eval's report (report.md,
    report.html, the two charts; report.json is the marker, a link there is refused) is
    replaced whole: a link left there under one of those names is replaced, and the file it
    names stays as it was."""
    spec = _spec(tmp_path / "p")
    folder = tmp_path / "b"
    with serving(Sentiment) as url:
        _answered(spec, folder, url, bad_last=False)
    out = tmp_path / "ev"
    _report(spec, out, folder)
    names = [
        "report.md",
        "report.html",
        "accuracy-vs-tokens.png",
        "accuracy-by-position.png",
    ]
    for name in names:
        (tmp_path / f"theirs-{name}").write_text("theirs", encoding="utf-8")
        (out / name).unlink(missing_ok=True)
        (out / name).symlink_to(tmp_path / f"theirs-{name}")
    assert run(["eval", str(spec), "-o", str(out), "--results", str(folder)]) == 0
    for name in names:
        assert (tmp_path / f"theirs-{name}").read_text(encoding="utf-8") == "theirs"
        assert (out / name).is_file() and not (out / name).is_symlink()
    assert (out / "accuracy-vs-tokens.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))["variants"]


def test_calls_are_the_answers_of_an_early_stopped_vote(tmp_path: Path) -> None:
    """Three voting rounds with early stop after two that agree: the third round's requests
    are not sent (every item settled), so they are no calls; calls per question are the
    answers the folder holds, as many as the requests the server answered."""
    spec = _spec(tmp_path / "p", batch_size=4)
    text = spec.read_text(encoding="utf-8")
    spec.write_text(
        text.replace("batch_size: 4", "batch_size: 4\n  vote: {rounds: 3, early_stop: 2}"),
        encoding="utf-8",
    )
    folder = tmp_path / "v"
    Counting, posts = _counting()

    with serving(Counting) as url:
        _answered(spec, folder, url, bad_last=False)
    answers = (folder / "outputs.jsonl").read_text(encoding="utf-8").splitlines()
    (v,) = _report(spec, tmp_path / "ev", folder)["variants"]
    assert v["requests"] == 15 and len(answers) == len(posts) < 15
    assert v["calls_per_question"] == round(len(posts) / 20, 6)
    assert v["repair_requests"] == 0


class FirstWrong(Sentiment):
    """Answers the first review of every request wrong, every other one with its gold label."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reviews = re.findall(r"^Q\[\d+\]: ?(.*)$", body["messages"][-1]["content"], re.MULTILINE)
        labels = [GOLD[r] for r in reviews]
        labels[0] = "negative" if labels[0] == "positive" else "positive"
        text = "\n".join(f"A[{i}]: {a}" for i, a in enumerate(labels, 1))
        send_json(self, chat_completion(text, 100, 10))


def test_accuracy_by_position_of_a_vote_counts_every_rounds_answer(tmp_path: Path) -> None:
    """batch-4 of 20 items, three voting rounds (each item at three positions), the model
    wrong at position 1 alone: every voted answer is right, and accuracy by position shows
    position 1 at 0 % of its 15 answers, where the voted answers alone would leave it out."""
    spec = _spec(tmp_path / "p", batch_size=4)
    text = spec.read_text(encoding="utf-8")
    spec.write_text(
        text.replace("batch_size: 4", "batch_size: 4\n  vote: {rounds: 3}"), encoding="utf-8"
    )
    folder = tmp_path / "v"
    with serving(FirstWrong) as url:
        assert run(["build", str(spec), "-o", str(folder)]) == 0
        assert run(["run", str(folder), "--base-url", url, "--parse", "--no-cache"]) == 0
    (v,) = _report(spec, tmp_path / "ev", folder)["variants"]
    assert v["accuracy"]["correct"] == 20
    by_position = {int(p): (r["correct"], r["n"]) for p, r in v["by_position"].items()}
    assert by_position == {1: (0, 15), 2: (15, 15), 3: (15, 15), 4: (15, 15)}
    assert v["by_position_counts"] == "rounds"
    md = (tmp_path / "ev" / "report.md").read_text(encoding="utf-8")
    assert "each round's answer counts at the position where that round asked it" in md


def test_a_variant_whose_requests_got_no_answer_is_said_and_not_recommended(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A server that refused one request of three: the variant's missing items would count as
    unparsed and their cost as nothing; eval says so and recommends none on them."""
    spec = _spec(tmp_path / "p", batch_size=4)
    folder = tmp_path / "v"
    posts: list[int] = []

    class Failing(Sentiment):
        def do_POST(self) -> None:
            posts.append(1)
            if len(posts) % 3 == 0:
                self.rfile.read(int(self.headers["Content-Length"]))
                send_json(self, {"error": {"message": "bad"}}, 400)
                return
            super().do_POST()

    Sentiment.bad_last = False
    with serving(Failing) as url:
        assert run(["build", str(spec), "-o", str(folder)]) == 0
        argv = ["run", str(folder), "--base-url", url, "--parse", "--no-cache"]
        assert run([*argv, "--allow-failures", "--concurrency", "1"]) == 0
    capsys.readouterr()
    report = _report(spec, tmp_path / "ev", folder)
    (v,) = report["variants"]
    assert (v["requests"], v["unanswered_requests"]) == (5, 1)
    assert report["recommendation"]["variant"] is None
    assert report["recommendation"]["sentence"].endswith(
        "(batch-4 left out: requests that got no answer)"
    )
    md = (tmp_path / "ev" / "report.md").read_text(encoding="utf-8")
    assert "NO ANSWER: batch-4 (1 of 5 request(s)) got no answer from the server" in md
    # Priced on its answered requests alone, it would look cheap: on no front, and said so.
    assert v["pareto"] is False
    assert "they are on no Pareto front (*) and never recommended" in md
    assert "| batch-4 |" in md and "| batch-4 * |" not in md


@pytest.mark.parametrize(
    ("plant", "message"),
    [
        ("removed", "{folder!r} is not a build: it has no items.jsonl"),
        ("dangling link", "items.jsonl is a symbolic link, not a regular file"),
        ("named pipe", "items.jsonl is a named pipe, not a regular file"),
        ("folder", "items.jsonl is a folder, not a regular file"),
        ("edited", "items.jsonl does not match the sha256 that manifest.json lists for it"),
    ],
)
def test_a_build_without_its_own_items_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], plant: str, message: str
) -> None:
    """The manifest lists items.jsonl: without it (or with a link, a pipe, a folder or an
    edited file in its place) eval cannot tell whether the answers are to the questions the
    data hold now, and refuses the folder as parse and run do: never a score of answers to
    other questions. Nothing written."""
    spec = _spec(tmp_path / "p")
    folder = tmp_path / "b"
    with serving(Sentiment) as url:
        _answered(spec, folder, url, bad_last=False)
    items = folder / "items.jsonl"
    if plant == "edited":
        items.write_text(items.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    else:
        items.unlink()
    if plant == "dangling link":
        items.symlink_to(tmp_path / "nowhere" / "items.jsonl")
    elif plant == "named pipe":
        os.mkfifo(items)
    elif plant == "folder":
        items.mkdir()
    capsys.readouterr()
    out = tmp_path / "ev"
    assert run(["eval", str(spec), "-o", str(out), "--no-charts", "--results", str(folder)]) == 2
    err = capsys.readouterr().err
    assert message.format(folder=str(folder)) in err and str(items) in err
    assert "Traceback" not in err and not out.exists()


@pytest.mark.parametrize(
    ("mine", "name", "why"),
    [
        ({"report.md": "# my notes\n", "todo.txt": "call Bob\n"}, "todo.txt", ""),
        (
            {"report.json": '{"mine": true}\n', "report.md": "# my notes\n"},
            "report.json",
            " (it is not a report of promptc eval: no 'report_format' marker)",
        ),
        (
            {"accuracy-vs-tokens.png": "not a chart\n"},
            "accuracy-vs-tokens.png",
            " (there is no report.json of promptc eval beside it)",
        ),
        ({"variants": "a file\n"}, "variants", " (eval keeps its variants in a folder there)"),
    ],
)
def test_eval_writes_into_no_folder_of_the_users_files(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mine: dict[str, str],
    name: str,
    why: str,
) -> None:
    """-o names a folder of the user's own files, some under the names of eval's report: eval
    refuses it before anything is built or sent, naming the first file it did not write, and
    every file is left as it was; with --results likewise. An earlier eval's report (its
    report.json carries eval's marker) is replaced, as before."""
    spec = _spec(tmp_path / "p")
    notes = tmp_path / "notes"
    notes.mkdir()
    for file, text in mine.items():
        (notes / file).write_text(text, encoding="utf-8")
    Counting, posts = _counting()

    message = (
        f"{notes / name}: {str(notes)!r} holds {name!r}, which promptc eval did not write{why}; "
        "promptc eval writes its report only into a new or empty folder or over an earlier "
        "eval's report (give a new or empty folder with -o, or move that file away)"
    )
    folder = tmp_path / "b"
    with serving(Counting) as url:
        args = ["eval", str(spec), "--base-url", url, "--strategies", "single"]
        assert run([*args, "-o", str(notes), "--no-charts"]) == 2
        assert capsys.readouterr().err.splitlines() == [message]
        assert not posts
        _answered(spec, folder, url, bad_last=False)
    capsys.readouterr()
    assert run(["eval", str(spec), "-o", str(notes), "--results", str(folder)]) == 2
    assert capsys.readouterr().err.splitlines() == [message]
    assert sorted(p.name for p in notes.iterdir()) == sorted(mine)
    for file, text in mine.items():
        assert (notes / file).read_text(encoding="utf-8") == text
    # An eval's own report folder is replaced, its variants folder kept.
    out = tmp_path / "ev"
    _report(spec, out, folder)
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))["report_format"] == 1
    (out / "variants").mkdir()
    _report(spec, out, folder)


def test_a_link_under_report_json_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """report.json a link to a file of the user's: neither read as a report nor written
    through."""
    spec = _spec(tmp_path / "p")
    folder = tmp_path / "b"
    with serving(Sentiment) as url:
        _answered(spec, folder, url, bad_last=False)
    out = tmp_path / "ev"
    _report(spec, out, folder)
    target = tmp_path / "mine.json"
    report = (out / "report.json").read_text(encoding="utf-8")
    target.write_text(report, encoding="utf-8")
    (out / "report.json").unlink()
    (out / "report.json").symlink_to(target)
    capsys.readouterr()
    assert run(["eval", str(spec), "-o", str(out), "--no-charts", "--results", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "report.json is a symbolic link, not a regular file" in err
    assert (out / "report.json").is_symlink() and "Traceback" not in err
    assert target.read_text(encoding="utf-8") == report


@pytest.mark.parametrize(
    "given",
    [
        ["--strategies", "single"],
        ["--batch-sizes", "4"],
        ["--selection", "random"],
        ["--local"],
        ["--base-url", "http://127.0.0.1:9/v1", "--local"],
        ["--model-path", "m.gguf"],
        ["--repair", "1"],
        ["--concurrency", "2"],
        ["--cache", "c.sqlite"],
        ["--grammar", "none"],
        ["--timeout", "5"],
        ["--model", "m"],
        ["--api-key-env", "KEY"],
    ],
)
def test_eval_results_refuses_options_of_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], given: list[str]
) -> None:
    """--results scores answered folders: nothing is built or run, so an option of building
    or running (which would do nothing, or pick variants it does not pick) is a usage error
    naming it, as a bad option is without --results. Nothing written."""
    spec = _spec(tmp_path / "p")
    folder = tmp_path / "b"
    with serving(Sentiment) as url:
        _answered(spec, folder, url, bad_last=False)
    capsys.readouterr()
    out = tmp_path / "ev"
    args = ["eval", str(spec), "-o", str(out), "--no-charts", "--results", str(folder)]
    assert run([*args, *given]) == 2
    (err,) = capsys.readouterr().err.splitlines()
    assert err == (
        f"<command line>: {given[0]}: this option applies only when promptc eval runs the "
        "variants; with --results the answered folders are scored as they are, and it would do "
        "nothing (leave it out; to score fewer variants, give --results only their folders)"
    )
    assert not out.exists()


@pytest.mark.parametrize("command", ["plan", "eval", "eval-results"])
def test_a_cached_price_alone_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """--price-cached with no price for the other tokens (none given, no model.price) would
    price nothing: a usage error naming it, as --price-in alone is, in plan and eval alike,
    before anything is sent."""
    spec = _spec(tmp_path / "p")
    folder = tmp_path / "b"
    Counting, posts = _counting()

    with serving(Counting) as url:
        if command == "eval-results":
            _answered(spec, folder, url, bad_last=False)
            args = ["eval", str(spec), "-o", str(tmp_path / "ev"), "--results", str(folder)]
        elif command == "eval":
            args = ["eval", str(spec), "-o", str(tmp_path / "ev"), "--base-url", url]
        else:
            args = ["plan", str(spec)]
        if command != "plan":
            args.append("--no-charts")
        posts.clear()
        capsys.readouterr()
        assert run([*args, "--price-cached", "0.5"]) == 2
    (err,) = capsys.readouterr().err.splitlines()
    assert err == (
        "<command line>: --price-cached: a price of cached input tokens alone prices none of the "
        "others: give --price-in and --price-out too (USD per million tokens), or model.price in "
        "the spec"
    )
    assert not posts and not (tmp_path / "ev").exists()
    # With the other prices it is taken.
    if command != "eval":
        assert run([*args, "--price-cached", "0.5", "--price-in", "1", "--price-out", "2"]) == 0


def test_results_parsed_where_they_were_asked_are_scored_as_answered(tmp_path: Path) -> None:
    """A folder holding results.jsonl and no outputs.jsonl (what promptc.ray's write_results
    leaves, or parse -o of answers kept elsewhere): its requests were answered, their usage is
    unknown — never "got no answer from the server", 0 calls and a cost of 0."""
    spec = _spec(tmp_path / "p")
    folder = tmp_path / "b"
    with serving(Sentiment) as url:
        _answered(spec, folder, url, bad_last=False)
    kept = tmp_path / "answers.jsonl"
    os.replace(folder / "outputs.jsonl", kept)
    assert run(["parse", str(folder), str(kept), "-o", str(folder / "results.jsonl")]) == 0
    (v,) = _report(spec, tmp_path / "ev", folder)["variants"]
    assert v["accuracy"]["correct"] == 20 and not v.get("unanswered_requests")
    assert (v["requests"], v["answered_requests"]) == (3, 3)
    assert v["calls_per_question"] == 0.15
    assert v["input_tokens_per_question"] is None and v["cost"]["total"] is None
    report = (tmp_path / "ev" / "report.md").read_text(encoding="utf-8")
    assert "NO ANSWER" not in report


@pytest.mark.parametrize(
    "tolerance", [-1, Decimal(-1), float("nan"), Decimal("NaN"), float("inf"), [], True]
)
def test_evaluate_holds_a_tolerance_of_any_type_to_the_commands_rule(
    tmp_path: Path, tolerance: object
) -> None:
    """evaluate(tolerance=-1) scored a perfect model 0 % without a word and NaN raised
    decimal.InvalidOperation from the scorer: only a text tolerance was checked."""
    spec = _spec(tmp_path / "p")
    folder = tmp_path / "b"
    with serving(Sentiment) as url:
        _answered(spec, folder, url, bad_last=False)
    with pytest.raises(promptc.PromptcError) as info:
        promptc.evaluate(spec, [folder], tolerance=tolerance)  # type: ignore[arg-type]
    assert info.value.code in ("bad-tolerance", "bad-argument")
    assert promptc.evaluate(spec, [folder], tolerance=Decimal("0.5"))["items"] == 20


def test_evaluate_says_why_it_cannot_write_its_report_there(tmp_path: Path) -> None:
    """report_dir a file, under a file, or not a path: a promptc error naming it (it was a
    bare FileExistsError, NotADirectoryError or TypeError), the file untouched."""
    spec = _spec(tmp_path / "p")
    folder = tmp_path / "b"
    with serving(Sentiment) as url:
        _answered(spec, folder, url, bad_last=False)
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n", encoding="utf-8")
    for place, code in ((notes, "unwritable"), (notes / "sub", "unwritable"), (42, "bad-argument")):
        with pytest.raises(promptc.PromptcError) as info:
            promptc.evaluate(spec, [folder], report_dir=place)  # type: ignore[arg-type]
        assert info.value.code == code
    assert notes.read_text(encoding="utf-8") == "mine\n"


def test_the_page_gives_each_item_the_verdict_the_figures_count(tmp_path: Path) -> None:
    """With --tolerance, an answer within it is right in report.json and in report.html's
    item table alike (the page judged it without the tolerance: 'correct: no')."""
    root = tmp_path / "p"
    (root / "data").mkdir(parents=True)
    (root / "data" / "math.jsonl").write_bytes((SPECS / "data" / "math.jsonl").read_bytes())
    spec = root / "math.yaml"
    spec.write_bytes((SPECS / "math.yaml").read_bytes())
    folder = tmp_path / "b"
    assert run(["build", str(spec), "-o", str(folder), "--strategy", "single"]) == 0
    gold = {
        i["id"]: Decimal(str(i["gold"]["answer"]))
        for i in map(json.loads, (folder / "items.jsonl").read_text().splitlines())
    }
    requests = [json.loads(x) for x in (folder / "requests.jsonl").read_text().splitlines()]
    answers = tmp_path / "outputs.jsonl"
    answers.write_text(
        "".join(
            json.dumps(
                {
                    "id": r["id"],
                    "output": f"So. The answer is {gold[r['item_ids'][0]] + Decimal('0.25')}.",
                }
            )
            + "\n"
            for r in requests
        ),
        encoding="utf-8",
    )
    assert run(["parse", str(folder), str(answers), "-o", str(folder / "results.jsonl")]) == 0
    out = tmp_path / "ev"
    argv = ["eval", str(spec), "-o", str(out), "--no-charts", "--results", str(folder)]
    assert run([*argv, "--tolerance", "0.5"]) == 0
    (v,) = json.loads((out / "report.json").read_text(encoding="utf-8"))["variants"]
    assert v["accuracy"]["correct"] == len(gold)
    page = (out / "report.html").read_text(encoding="utf-8")
    verdicts = re.findall(r'<td class="status">ok</td><td>(yes|no)</td>', page)
    assert verdicts == ["yes"] * len(gold)
    assert run([*argv, "--tolerance", "0.1"]) == 0
    page = (out / "report.html").read_text(encoding="utf-8")
    assert re.findall(r'<td class="status">ok</td><td>(yes|no)</td>', page) == ["no"] * len(gold)
