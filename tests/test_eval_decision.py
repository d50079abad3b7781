"""eval end to end against a scripted server whose answers are right, wrong or cut by
``max_tokens`` by design: accuracy, truncation, costs, the Pareto front and the recommendation
are checked against values computed by hand here."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest
from loopback import QuietHandler, send_json, serving
from promptc.cli.app import run

REPO = Path(__file__).resolve().parents[1]

SPEC = """\
promptc: 1
name: scripted
instruction: Answer with the number.
inputs: {question: {type: text}}
outputs: {answer: {type: number}}
data: {path: d.jsonl, id: qid, fields: {question: question}, gold: {answer: gold}}
strategy: {kind: batch, batch_size: 4}
model: {name: gpt-4o-mini, temperature: 0, max_tokens: 64}
"""
ITEMS = 20
#: Items each variant answers wrongly, by request size (1: single, 2: batch-2, 4: batch-4).
WRONG = {1: set(), 2: {5}, 4: {3}}
#: batch-4's last request (items 17 to 20) stops at max_tokens after its first answer.
CUT_AT = 17


def usage(k: int) -> dict[str, int]:
    """Usage the server reports for a request of ``k`` items."""
    return {"prompt_tokens": 50 + 10 * k, "completion_tokens": 5 * k, "total_tokens": 50 + 15 * k}


class Scripted(QuietHandler):
    seen: ClassVar[list[int]] = []

    def do_GET(self) -> None:  # the endpoint check eval makes before sending
        send_json(self, {"object": "list", "data": [{"id": "m", "object": "model"}]})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        asked = [int(n) for n in re.findall(r"What is (\d+)\?", body["messages"][-1]["content"])]
        k = len(asked)
        Scripted.seen.append(k)
        answers = [str(n + 1 if n in WRONG[k] else n) for n in asked]
        finish = "stop"
        if k == 1:
            text = answers[0]
        else:
            lines = [f"A[{i}]: {a}" for i, a in enumerate(answers, 1)]
            if asked[0] == CUT_AT and k == 4:
                lines, finish = [lines[0], "A[2]:"], "length"
            text = "\n".join(lines)
        send_json(
            self,
            {
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "m",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": finish,
                        "message": {"role": "assistant", "content": text},
                    }
                ],
                "usage": usage(k),
            },
        )


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    (tmp_path / "d.jsonl").write_text(
        "".join(
            json.dumps({"qid": f"q{k}", "question": f"What is {k}?", "gold": k}) + "\n"
            for k in range(1, ITEMS + 1)
        ),
        encoding="utf-8",
    )
    path = tmp_path / "s.yaml"
    path.write_text(SPEC, encoding="utf-8")
    return path


def test_eval_against_a_scripted_server_matches_hand_computed_values(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    with serving(Scripted) as url:
        code = run(
            [
                "eval",
                str(spec),
                "--base-url",
                url,
                "--strategies",
                "single,batch",
                "--batch-sizes",
                "2,4",
                "--price-in",
                "1",
                "--price-out",
                "2",
                "--margin",
                "20",
                "--cache",
                str(tmp_path / "cache.sqlite"),
                "--no-charts",
                "-o",
                str(out),
            ]
        )
    assert code == 0, capsys.readouterr().err
    doc = json.loads((out / "report.json").read_text(encoding="utf-8"))
    rows = {r["variant"]: r for r in doc["variants"]}
    assert list(rows) == ["single", "batch-2", "batch-4"]
    single, b2, b4 = rows["single"], rows["batch-2"], rows["batch-4"]

    # Accuracy: single 20/20; batch-2 wrong on q5; batch-4 wrong on q3 and cut after q17.
    assert (single["accuracy"]["correct"], b2["accuracy"]["correct"]) == (20, 19)
    assert b4["accuracy"]["correct"] == 16
    assert (b4["wrong"], b4["unparsed"], b4["truncated"]) == (1, 0, 3)
    assert (b4["truncated_requests"], b2["truncated"], single["truncated"]) == (1, 0, 0)
    assert b4["statuses"]["truncated"] == 3
    # The truncated items are out of accuracy by position: the budget, not the position.
    assert {p: (r["correct"], r["n"]) for p, r in b4["by_position"].items()} == {
        "1": (5, 5),
        "2": (4, 4),
        "3": (3, 4),
        "4": (4, 4),
    }
    assert b4["truncated_by_position"] == {"2": 1, "3": 1, "4": 1}
    assert doc["truncated_variants"] == ["batch-4"]

    # Cost at USD 1 in and 2 out per million tokens, from the server's usage:
    # single: 20 requests × (60 in, 5 out); batch-2: 10 × (70, 10); batch-4: 5 × (90, 20).
    def usd(requests: int, k: int) -> float:
        u = usage(k)
        return requests * (u["prompt_tokens"] * 1 + u["completion_tokens"] * 2) / 1e6

    for row, requests, k, correct in ((single, 20, 1, 20), (b2, 10, 2, 19), (b4, 5, 4, 16)):
        total = usd(requests, k)
        assert float(row["cost"]["total"]) == pytest.approx(total, abs=1e-12)
        assert row["cost"]["per_question"] == pytest.approx(total / ITEMS, abs=1e-12)
        assert row["cost"]["per_correct"] == pytest.approx(total / correct, abs=1e-12)
    assert doc["cost_unit"] == "USD"
    # single 0.00007/q at 100%, batch-2 0.000045 at 95%, batch-4 0.0000325 at 80%: each
    # cheaper variant is less accurate, so all three are on the front.
    assert [r["pareto"] for r in doc["variants"]] == [True, True, True]

    # The recommendation: batch-4 is cheapest but truncated, so it is left out. batch-2 against
    # the best (single): b = 1 (q5), c = 0, n = 20; Agresti-Min: d = (1.5 - 0.5) / 22,
    # bound = d + 1.645 sqrt(((1.5 + 0.5) / 22 - d^2) / 22) = 15.0 points < 20.
    d = 1 / 22
    bound = 100 * (d + 1.6448536269514722 * math.sqrt((2 / 22 - d * d) / 22))
    assert bound == pytest.approx(14.998, abs=1e-3)
    rec = doc["recommendation"]
    assert rec["variant"] == "batch-2" and rec["best"] == "single"
    assert rec["loss_bound_points"] == pytest.approx(bound, abs=1e-3)
    assert rec["sentence"].startswith(
        "recommended: batch-2, the cheapest variant not worse than the best, single (100.0%), "
        "by more than 20 points"
    )
    assert rec["sentence"].endswith("(batch-4 left out: truncated)")

    md = (out / "report.md").read_text(encoding="utf-8")
    first = md.split("\n\n")[1]
    assert first.startswith("**TRUNCATED: batch-4 (3 of 20 items, 1 request(s)) stopped at")
    assert "not comparable until the budget is raised" in first


def test_the_default_margin_needs_more_items(spec: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    with serving(Scripted) as url:
        args = ["eval", str(spec), "--base-url", url, "--strategies", "single,batch"]
        args += [
            "--batch-sizes",
            "2",
            "--cache",
            str(tmp_path / "c.sqlite"),
            "--no-charts",
            "-o",
            str(out),
        ]
        assert run(args) == 0
    doc = json.loads((out / "report.json").read_text(encoding="utf-8"))
    # 1.645 / (n + 2) < 0.02 first holds at n = 81.
    assert doc["recommendation"] == {
        "variant": None,
        "margin_points": 2.0,
        "items_needed": 81,
        "sentence": "no recommendation: too few items (20 scored; a paired test can show a "
        "variant within 2 points of the best only from 81 items)",
    }
    assert doc["cost_unit"] == "tokens"  # no price: total tokens per question
    assert doc["variants"][0]["cost"]["per_question"] == 65.0  # 60 in + 5 out
    assert doc["variants"][1]["paired"]["min_detectable_difference"] is None  # 1 disagreement


def test_a_dead_endpoint_is_one_error_within_seconds_and_no_report(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    started = time.monotonic()
    args = ["--strategies", "single,batch", "--no-charts", "-o", str(out)]
    code = run(["eval", str(spec), "--base-url", "http://127.0.0.1:9/v1", *args])
    err = capsys.readouterr().err
    assert time.monotonic() - started < 10
    assert code == 1 and "Traceback" not in err
    expected = (
        "<command line>: --base-url: nothing answers at http://127.0.0.1:9/v1 ([Errno 111] "
        "Connection refused): no request was sent and no report written (start the server or "
        "fix --base-url; --local answers with the embedded model)"
    )
    # The one error; besides it only the spec's own warnings (its max_tokens 64 may cut batch-8).
    lines = err.strip().splitlines()
    assert [x for x in lines if "warning:" not in x] == [expected]
    assert not out.exists()


def test_missing_matplotlib_is_said_before_anything_is_sent(
    spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import builtins

    real = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kw: Any) -> Any:
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    Scripted.seen.clear()
    out = tmp_path / "report"
    with serving(Scripted) as url:
        code = run(["eval", str(spec), "--base-url", url, "--strategies", "single", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and Scripted.seen == [] and not out.exists()
    assert "promptc eval's charts need matplotlib, which is not installed" in err


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian's chromium package)")
def test_report_html_opens_in_headless_chromium(spec: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "report"
    with serving(Scripted) as url:
        args = ["eval", str(spec), "--base-url", url, "--strategies", "single,batch"]
        args += ["--batch-sizes", "2,4", "--cache", str(tmp_path / "c.sqlite"), "-o", str(out)]
        assert run(args) == 0
    page = out / "report.html"
    text = page.read_text(encoding="utf-8")
    # Self-contained: nothing is fetched from anywhere.
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", text)
    assert text.count("data:image/png;base64,") == 2
    dom = chromium_dom(page, tmp_path)
    log = (tmp_path / "chromium.log").read_text(encoding="utf-8")
    assert "CONSOLE" not in log, log  # no console message at all, let alone an error
    body = dom[dom.index('<table id="items">') :]
    rows = re.findall(r'<tr class="[a-z]+" data-status="([a-z]+)" data-variant="([^"]+)"', body)
    # One row per item and variant, each variant there, and the statuses as scored.
    assert len(rows) == ITEMS * 3
    assert {v for _, v in rows} == {"single", "batch-2", "batch-4"}
    assert sum(1 for s, v in rows if v == "batch-4" and s == "truncated") == 3
    assert f'<span id="shown">{ITEMS * 3} of {ITEMS * 3} rows</span>' in dom  # the script ran
    for variant in ("single", "batch-2", "batch-4"):
        assert f"<td>{variant}" in dom[: dom.index('<table id="items">')]  # the summary table


def chromium_dom(page: Path, tmp_path: Path) -> str:
    """The page's DOM after its scripts ran, in headless Chromium; its log beside it."""
    assert CHROMIUM is not None
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",  # tests may run as root, which the sandbox refuses
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    (tmp_path / "chromium.log").write_text(done.stderr, encoding="utf-8")
    return done.stdout


class Refusing(QuietHandler):
    """Lists its models, then refuses every request (as a server that lacks the model does)."""

    def do_GET(self) -> None:
        send_json(self, {"object": "list", "data": []})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        send_json(self, {"error": {"message": "no such model", "type": "invalid_request"}}, 400)


def test_no_report_is_written_when_nothing_was_answered(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    with serving(Refusing) as url:
        args = ["eval", str(spec), "--base-url", url, "--strategies", "single", "--no-charts"]
        code = run([*args, "--limit", "2", "--cache", str(tmp_path / "c.sqlite"), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "<command line>: no request of any variant was answered, so no report was written "
        "(see the failures above; check the server and run eval again: answers already "
        "received are cached)"
    )
    assert not (out / "report.json").exists() and not (out / "report.md").exists()


def test_eval_warns_of_a_fixed_budget_too_small_before_anything_is_sent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fixed ``model.max_tokens`` that cannot fit a variant's requests is said, at the spec's
    line, before the endpoint is even asked (here it answers nothing: nothing is sent)."""
    specs = tmp_path / "specs"
    shutil.copytree(REPO / "specs", specs)
    spec = specs / "reading.yaml"
    text = spec.read_text(encoding="utf-8")
    assert "max_tokens_per_item: 64" in text
    spec.write_text(text.replace("max_tokens_per_item: 64", "max_tokens: 24"), encoding="utf-8")
    argv = ["eval", str(spec), "--base-url", "http://127.0.0.1:9/v1"]
    code = run([*argv, "--strategies", "auto-demo", "--batch-sizes", "4", "--no-charts"])
    err = capsys.readouterr().err
    assert code == 1
    (warning,) = [line for line in err.splitlines() if "warning:" in line]
    assert warning.startswith(f"{spec}:")
    assert "model.max_tokens 24 may cut off the requests of auto-demo-4" in warning
    assert not (tmp_path / "report.md").exists()


@pytest.mark.parametrize("planted", ["variants", "variants/single"])
def test_eval_refuses_a_link_planted_in_its_folder(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], planted: str
) -> None:
    """eval writes each variant's build under -o DIR/variants/NAME: a link planted there is
    refused by name, and nothing is written where it points."""
    out = tmp_path / "report"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / planted).parent.mkdir(parents=True, exist_ok=True)
    (out / planted).symlink_to(elsewhere)
    with serving(Refusing) as url:
        args = ["eval", str(spec), "--base-url", url, "--strategies", "single", "--no-charts"]
        code = run([*args, "--limit", "2", "--cache", str(tmp_path / "c.sqlite"), "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"refusing to write through {out / planted}, a symbolic link" in err
    assert list(elsewhere.iterdir()) == []


def test_costs_are_compared_exactly_not_as_rounded_totals(
    spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """At USD 0.001 per million tokens in and out, the three variants' totals (single 1,300
    tokens, batch-2 800, batch-4 550) are all USD 0.000001 to the millionth: compared so
    rounded, they would tie, single alone would be on the front and, its equal in cost,
    recommended. Compared exactly, each cheaper variant is less accurate: all three are on the
    front, and batch-2 (95 %, within 20 points of single's 100 %) is the cheapest candidate
    (batch-4 is truncated). Every figure shown recomputes from the usage."""
    out = tmp_path / "report"
    with serving(Scripted) as url:
        args = ["eval", str(spec), "--base-url", url, "--strategies", "single,batch"]
        args += ["--batch-sizes", "2,4", "--price-in", "0.001", "--price-out", "0.001"]
        args += ["--margin", "20", "--cache", str(tmp_path / "c.sqlite"), "--no-charts"]
        assert run([*args, "-o", str(out)]) == 0, capsys.readouterr().err
    doc = json.loads((out / "report.json").read_text(encoding="utf-8"))
    rows = {r["variant"]: r for r in doc["variants"]}
    tokens = {"single": 20 * 65, "batch-2": 10 * 80, "batch-4": 5 * 110}
    for name, total in tokens.items():
        cost = rows[name]["cost"]
        assert Decimal(cost["total"]) == Decimal(total) * Decimal("0.001") / 1_000_000
        assert cost["per_question"] == pytest.approx(total * 1e-9 / ITEMS, rel=1e-12)
    assert [r["pareto"] for r in doc["variants"]] == [True, True, True]
    assert doc["recommendation"]["variant"] == "batch-2"
    # Shown per 1,000 questions with the decimals the cheapest needs, never 0.0000 for all.
    table = capsys.readouterr().out
    for name, figure in (
        ("single", "0.0000650"),
        ("batch-2", "0.0000400"),
        ("batch-4", "0.0000275"),
    ):
        assert re.search(rf"^{name} \*.*\b{figure}\b", table, re.MULTILINE), table
