"""``promptc eval --results`` on folders that ``promptc run`` answered against a scripted
server: what it scores is what ``run`` and ``parse`` say of the same answers. A repaired item
counts (retrieval builds included), the calls it cost count as its tokens do, answers to the
prompts of an earlier build of the folder are refused, and ``--limit`` does one documented
thing in the command and the API. Messages word for word."""

from __future__ import annotations

import json
import re
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
    """Every file eval writes into ``-o DIR`` (report.json, report.md, report.html, the two
    charts) is replaced whole: a link left there under one of those names is replaced, and
    the file it names stays as it was."""
    spec = _spec(tmp_path / "p")
    folder = tmp_path / "b"
    with serving(Sentiment) as url:
        _answered(spec, folder, url, bad_last=False)
    out = tmp_path / "ev"
    out.mkdir()
    names = [
        "report.json",
        "report.md",
        "report.html",
        "accuracy-vs-tokens.png",
        "accuracy-by-position.png",
    ]
    for name in names:
        (tmp_path / f"theirs-{name}").write_text("theirs", encoding="utf-8")
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
    posts: list[int] = []

    class Counting(Sentiment):
        def do_POST(self) -> None:
            posts.append(1)
            super().do_POST()

    with serving(Counting) as url:
        _answered(spec, folder, url, bad_last=False)
    answers = (folder / "outputs.jsonl").read_text(encoding="utf-8").splitlines()
    (v,) = _report(spec, tmp_path / "ev", folder)["variants"]
    assert v["requests"] == 15 and len(answers) == len(posts) < 15
    assert v["calls_per_question"] == round(len(posts) / 20, 6)
    assert v["repair_requests"] == 0


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
