"""plan tells the truth about output and cost: the cap is a warning, never an estimate; the
prefix every request repeats is priced at the cached rate; ``--probe`` measures an engine and
estimates wall time from it (against a scripted server, values computed by hand)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import ClassVar

import pytest
from loopback import QuietHandler, send_json, serving
from promptc.cli.app import run
from promptc.plan import estimate
from promptc.plan.probe import Rates, probe

pytest.importorskip("bpe_openai")
REPO = Path(__file__).resolve().parents[1]
GSM8K = str(REPO / "specs" / "gsm8k.yaml")
SENTIMENT = str(REPO / "specs" / "sentiment.yaml")


def plan_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict, str]:
    code = run(["plan", *args, "--format", "json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def test_a_binding_cap_is_a_warning_and_never_the_estimate(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    text = Path(GSM8K).read_text(encoding="utf-8")
    (tmp_path / "data").mkdir()
    data = REPO / "specs" / "data" / "gsm8k_format.jsonl"
    (tmp_path / "data" / data.name).write_bytes(data.read_bytes())
    assert "max_tokens: 2048" in text and "path: data/gsm8k_format.jsonl" in text
    capped_spec = tmp_path / "gsm8k.yaml"
    # 200 tokens fit four GSM8K answers, not four repeated questions with their reasoning.
    capped_spec.write_text(text.replace("max_tokens: 2048", "max_tokens: 200"), encoding="utf-8")
    args = ["--strategies", "single,batch,auto-demo", "--batch-sizes", "1,4"]
    code, free, err = plan_json(capsys, GSM8K, *args)
    assert code == 0 and "warning" not in err
    code, doc, err = plan_json(capsys, str(capped_spec), *args)
    assert code == 0
    rows = {r["variant"]: r for r in doc["variants"]}
    capped = [name for name, r in rows.items() if r["capped_requests"]]
    assert "auto-demo-4" in capped and "single" not in capped
    # Every variant whose cap binds is warned about, at the spec's model, with what it needs.
    warned = [line for line in err.splitlines() if "model.max_tokens: warning:" in line]
    assert len(warned) == len(capped)
    for name in capped:
        (line,) = [w for w in warned if f"warning: {name}: " in w]
        assert line.startswith(f"{capped_spec}:")
        assert (
            f"need more output than model.max_tokens 200 (up to {rows[name]['output_tokens_needed']:,} tokens)"
            in line
        )
        assert rows[name]["output_tokens_needed"] > rows[name]["max_tokens"] == 200
    # The estimate is what the answers need, whatever the cap: the same as without it.
    for r in free["variants"]:
        assert rows[r["variant"]]["output_tokens"] == r["output_tokens"]
    assert rows["auto-demo-4"]["output_tokens_per_question"] >= (
        rows["auto-demo-1"]["output_tokens_per_question"] - 1
    )


def test_the_repeated_prefix_is_priced_at_the_cached_rate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = [SENTIMENT, "--strategies", "few-shot", "--price-in", "1", "--price-out", "2"]
    _, full, _ = plan_json(capsys, *args)
    _, cached, _ = plan_json(capsys, *args, "--price-cached", "0.5")
    (f,), (c,) = full["variants"], cached["variants"]
    # The same prefix (instruction and demos) in all 20 requests: 19 of them serve it cached.
    assert c["cached_input_tokens"] == f["cached_input_tokens"] > 0
    assert c["cached_input_tokens"] % (c["requests"] - 1) == 0
    saved = Decimal(c["cached_input_tokens"]) * Decimal("0.5") / 1_000_000
    assert Decimal(f["cost_usd"]) - Decimal(c["cost_usd"]) == saved.quantize(Decimal("0.000001"))
    assert cached["price"]["cached_input_usd_per_mtok"] == "0.5"


def test_repeated_prefix_is_the_leading_messages_all_requests_share() -> None:
    a = [{"role": "system", "content": "S"}, {"role": "user", "content": "1"}]
    b = [{"role": "system", "content": "S"}, {"role": "user", "content": "2"}]
    assert estimate.repeated_prefix([a, b]) == [a[0]]
    assert estimate.repeated_prefix([a]) == []  # one request: nothing served twice
    assert estimate.repeated_prefix([a, a]) == a
    p = estimate.Pricing(Decimal(1), Decimal(2), "options", Decimal("0.25"))
    # 1,000 in of which 400 cached, 100 out: 600 × 1 + 400 × 0.25 + 100 × 2 = 900 per million.
    assert p.cost(1000, 100, 400) == Decimal("0.000900")
    assert estimate.Pricing(Decimal(1), Decimal(2), "x").cost(1000, 100, 400) == Decimal("0.0012")


class Timed(QuietHandler):
    """Answers like llama.cpp's server: usage and ``timings`` for each phase."""

    bodies: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Timed.bodies.append(body)
        read = body["max_tokens"] == 1
        prompt, written = (400, 1) if read else (20, 64)
        send_json(
            self,
            {
                "choices": [{"index": 0, "finish_reason": "length", "message": {"content": "x"}}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": written},
                # 200 prompt tokens a second, 10 generated ones.
                "timings": {
                    "prompt_n": prompt,
                    "prompt_ms": prompt * 5.0,
                    "predicted_n": written,
                    "predicted_ms": written * 100.0,
                },
            },
        )


def test_probe_reads_the_servers_timings_and_estimates_each_variant(
    capsys: pytest.CaptureFixture[str],
) -> None:
    Timed.bodies.clear()
    with serving(Timed) as url:
        rates = probe(url, "m")
        assert rates == Rates(200.0, 10.0, "server timings")
        assert [b["max_tokens"] for b in Timed.bodies] == [1, 64]  # two short requests
        code, doc, _ = plan_json(
            capsys,
            SENTIMENT,
            "--strategies",
            "single,batch",
            "--batch-sizes",
            "8",
            "--probe",
            "--base-url",
            url,
        )
    assert code == 0
    assert doc["probe"] == {
        "generated_tokens_per_second": 10.0,
        "measured_from": "server timings",
        "prompt_tokens_per_second": 200.0,
    }
    for r in doc["variants"]:
        # Each variant: its input less the cached prefix read at 200/s, its output written at
        # 10/s, one request at a time.
        seconds = (r["input_tokens"] - r["cached_input_tokens"]) / 200 + r["output_tokens"] / 10
        assert r["seconds_estimate"] == pytest.approx(seconds, abs=0.2)
        assert r["questions_per_second_estimate"] == pytest.approx(r["items"] / seconds, rel=0.02)


def test_probe_without_timings_solves_the_wall_times() -> None:
    class Wall(QuietHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            read = body["max_tokens"] == 1
            prompt, written = (400, 1) if read else (20, 64)
            send_json(
                self,
                {
                    "choices": [{"index": 0, "message": {"content": "x"}}],
                    "usage": {"prompt_tokens": prompt, "completion_tokens": written},
                },
            )

    with serving(Wall) as url:
        rates = probe(url, "m")
    assert rates.source == "wall time" and rates.read > 0 and rates.write > 0


def test_probe_takes_no_absurd_timings_for_a_rate() -> None:
    # Timings of 1e-300 ms made a rate of 300 digits: no engine's. The wall times decide.
    class Absurd(QuietHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            read = body["max_tokens"] == 1
            prompt, written = (400, 1) if read else (20, 64)
            timings = {"prompt_n": prompt, "prompt_ms": 1e-300, "predicted_n": written}
            send_json(
                self,
                {
                    "choices": [{"index": 0, "message": {"content": "x"}}],
                    "usage": {"prompt_tokens": prompt, "completion_tokens": written},
                    "timings": {**timings, "predicted_ms": 1e-300},
                },
            )

    with serving(Absurd) as url:
        rates = probe(url, "m")
    assert rates.source == "wall time" and 0 < rates.read < 1e8 and 0 < rates.write < 1e8


def test_probe_needs_an_engine(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["plan", SENTIMENT, "--probe"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == (
        "<command line>: --probe: --probe needs an engine to measure: give --local or "
        "--base-url URL"
    )


def test_a_spec_that_votes_is_planned_with_every_round(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """``strategy.vote``: each round's requests are counted (their tokens and cost), so the
    plan of three rounds is three times the plan of one (the items are the same)."""
    text = Path(SENTIMENT).read_text(encoding="utf-8")
    assert "  selection: {method: sequential}\n" in text
    (tmp_path / "data").mkdir()
    data = REPO / "specs" / "data" / "sentiment.jsonl"
    (tmp_path / "data" / data.name).write_bytes(data.read_bytes())
    voting = tmp_path / "sentiment.yaml"
    voting.write_text(
        text.replace(
            "  selection: {method: sequential}\n",
            "  selection: {method: sequential}\n  vote: {rounds: 3, early_stop: 2}\n",
        ),
        encoding="utf-8",
    )
    args = ["--strategies", "batch", "--batch-sizes", "8"]
    code, one, _ = plan_json(capsys, SENTIMENT, *args)
    assert code == 0
    code, three, _ = plan_json(capsys, str(voting), *args)
    assert code == 0
    (a,), (b,) = one["variants"], three["variants"]
    assert b["requests"] == 3 * a["requests"]
    assert b["input_tokens"] == 3 * a["input_tokens"]
    assert b["items"] == a["items"] == 20


class _Chars:
    """A tokenizer that counts characters: the output estimate's texts add up exactly."""

    name, exact = "chars", True

    def count(self, text: str) -> int:
        return len(text)

    def count_messages(self, messages: object) -> int:
        return 0

    def close(self) -> None:
        pass


def test_the_output_estimate_counts_the_text_the_model_writes() -> None:
    """Auto-Demo on mnli (markers ``Answer[i]:``, indexed inputs): per item, the repeated
    ``Premise[i]: …`` / ``Hypothesis[i]: …`` lines as the prompt shows them, the task's answer
    marker and the answer."""
    from promptc.markers import question_block
    from promptc.render.renderer import render
    from promptc.select.methods import select
    from promptc.spec.lower import compile_spec

    task = compile_spec(
        REPO / "specs" / "mnli.yaml",
        overrides={("strategy", "kind"): "auto-demo", ("strategy", "batch_size"): 3},
    )
    request = render(task, select(task))[0]
    by_id = {i.id: i for i in task.items}
    written = "".join(
        question_block(task.inputs, by_id[i].inputs, k, task.markers)
        + f"\nAnswer[{k}]: entailment\n"
        for k, i in enumerate(request.batch.item_ids, start=1)
    )
    assert "Premise[1]: " in written and "Hypothesis[3]: " in written
    assert all(f"Premise[{k}]: " in request.messages[-1].content for k in (1, 2, 3))
    mine = [by_id[i] for i in request.batch.item_ids]
    got = estimate.request_output(task, request, len("entailment"), _Chars(), mine)
    assert got == len(written)
