"""eval's arithmetic on fixed result files, against answers computed by hand."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import promptc
import pytest
from promptc.build import BUILD_FORMAT, BatchLine
from promptc.build.task_file import item_lines, task_text
from promptc.cli.app import run
from promptc.eval import score as S
from promptc.ir import OutputField
from promptc.spec.lower import compile_spec
from promptc.values import value_type

NUM = OutputField("answer", value_type("number"))


def test_wilson_interval_by_hand() -> None:
    # 8 of 10, z = 1.96: centre (0.8 + 0.19208) / 1.38416 = 0.716680, half-width
    # 1.96 * sqrt(0.016 + 0.0096040) / 1.38416 = 0.226591 -> [0.490, 0.943]
    lo, hi = S.wilson(8, 10)
    assert lo == pytest.approx(0.4901625, abs=1e-6)
    assert hi == pytest.approx(0.9433178, abs=1e-6)
    assert S.wilson(0, 0) == (0.0, 1.0)
    lo, hi = S.wilson(0, 5)
    assert lo == 0.0 and hi == pytest.approx(0.4344825, abs=1e-6)


def test_exact_mcnemar_by_hand() -> None:
    # b=1, c=5: 2 * (C(6,0) + C(6,1)) / 2**6 = 2 * 7 / 64 = 0.21875
    assert S.mcnemar_exact(1, 5) == pytest.approx(0.21875)
    # b=0, c=6: 2 / 64 = 0.03125
    assert S.mcnemar_exact(0, 6) == pytest.approx(0.03125)
    assert S.mcnemar_exact(3, 3) == 1.0
    assert S.mcnemar_exact(0, 0) == 1.0


@pytest.mark.parametrize(
    ("field", "predicted", "gold", "tolerance", "right"),
    [
        (NUM, Decimal("18.0"), Decimal(18), None, True),
        (NUM, Decimal("18.01"), Decimal(18), None, False),
        (NUM, Decimal("18.01"), Decimal(18), Decimal("0.01"), True),
        (NUM, Decimal("18.02"), Decimal(18), Decimal("0.01"), False),
        (OutputField("n", value_type("integer")), 3, 3, None, True),
        (OutputField("n", value_type("integer")), True, 1, None, False),
        (OutputField("b", value_type("boolean")), False, False, None, True),
        (OutputField("b", value_type("boolean")), 0, False, None, False),
        (OutputField("e", value_type("enum"), choices=("Pos", "Neg")), "pos", "Pos", None, True),
        (OutputField("t", value_type("text")), "  Paris.\n", "paris", None, True),
        (OutputField("t", value_type("text")), "Ｐａｒｉｓ  France", "paris france", None, True),
        (OutputField("t", value_type("text")), "Lyon", "paris", None, False),
        (OutputField("t", value_type("text")), "!", "?", None, False),  # all punctuation
        (OutputField("t", value_type("text")), "?", "?", None, True),
    ],
)
def test_comparison_rules(
    field: OutputField, predicted: object, gold: object, tolerance: Decimal | None, right: bool
) -> None:
    assert field.type.matches(field, predicted, gold, tolerance) is right  # type: ignore[arg-type]


def rec(req: str, item: str | None, index: int, status: str, answer: object = None) -> dict:
    values = {} if answer is None else {"answer": Decimal(str(answer))}
    return {"request_id": req, "item_id": item, "index": index, "status": status, "values": values}


def test_accuracy_statuses_and_positions_by_hand() -> None:
    gold = {f"i{k}": {"answer": Decimal(k)} for k in range(1, 7)}
    results = [
        rec("r1", "i1", 1, "ok", 1),  # right, position 1
        rec("r1", "i2", 2, "ok", 9),  # wrong, position 2
        rec("r1", "i3", 3, "malformed"),  # wrong, position 3
        rec("r2", "i4", 1, "ok", 4),  # right, position 1
        rec("r2", "i5", 2, "ok", 5),  # right, position 2
        rec("r2", None, 4, "extra", 7),  # not an item
    ]  # i6: no answer at all -> missing
    s = S.score([NUM], gold, S.pick_answers(results))
    assert (s.overall.correct, s.overall.n) == (3, 6)
    assert (s.parse.correct, s.parse.n) == (4, 6)
    assert s.statuses == {
        "ok": 4,
        "missing": 1,
        "malformed": 1,
        "duplicate": 0,
        "misaligned": 0,
        "extra": 0,
        "truncated": 0,
    }
    assert (s.wrong, s.unparsed, s.truncated) == (1, 2, 0)
    assert {p: (r.correct, r.n) for p, r in s.by_position.items()} == {
        1: (2, 2),
        2: (1, 2),
        3: (0, 1),
    }
    assert s.correct == {"i1": True, "i2": False, "i3": False, "i4": True, "i5": True, "i6": False}


def test_retrieval_scores_each_item_by_its_own_batch() -> None:
    gold = {"a": {"answer": Decimal(1)}, "b": {"answer": Decimal(2)}}
    results = [
        rec("r1", "b", 1, "ok", 2),  # b as a demonstration in a's batch: does not count
        rec("r1", "a", 2, "ok", 1),  # a's own answer, at position 2
        rec("r2", "a", 1, "ok", 1),
        rec("r2", "b", 2, "ok", 5),  # b's own answer: wrong
    ]
    targets = {"r1": "a", "r2": "b"}
    s = S.score([NUM], gold, S.pick_answers(results, targets))
    assert s.correct == {"a": True, "b": False}
    assert {p: (r.correct, r.n) for p, r in s.by_position.items()} == {2: (1, 2)}


def test_a_repair_answer_counts_where_the_build_asked_its_item() -> None:
    gold = {"a": {"answer": Decimal(1)}, "b": {"answer": Decimal(2)}}
    results = [
        rec("r1", "a", 1, "ok", 1),
        rec("r1.repair1", "b", 1, "ok", 2),  # b was asked at position 2 of r1
    ]
    positions = {"r1": {"a": 1, "b": 2}}
    s = S.score([NUM], gold, S.pick_answers(results, None, positions))
    assert {p: (r.correct, r.n) for p, r in s.by_position.items()} == {1: (1, 1), 2: (1, 1)}
    # A hand-edited row's index of JSON true is no position (it is the int 1 to Python).
    odd = [{**rec("r9", "a", 1, "ok", 1), "index": True}]
    assert S.pick_answers(odd)["a"].position == 0


def test_a_voting_build_counts_each_rounds_answer_where_that_round_asked_it() -> None:
    """Three rounds; a is wrong in round 2 (at position 1), b is cut by max_tokens in round 3
    (at position 1): each voted answer sits where round 1 asked it, but every round's answer
    counts at its own position, and the cut one apart, as an item's is."""
    gold = {"a": {"answer": Decimal(1)}, "b": {"answer": Decimal(2)}}

    def voted(item: str, answer: int, rounds: list[tuple[str, str, int | None]]) -> dict:
        row = rec("r1", item, 0, "ok", answer)
        return {
            **row,
            "rounds": [
                {
                    "round": k,
                    "request_id": q,
                    "status": st,
                    "values": rec(q, item, 0, st, v)["values"],
                }
                for k, (q, st, v) in enumerate(rounds, 1)
            ],
        }

    results = [
        voted("a", 1, [("r1", "ok", 1), ("r1.v2", "ok", 7), ("r1.v3.live", "ok", 1)]),
        voted("b", 2, [("r1", "ok", 2), ("r1.v2", "ok", 2), ("r1.v3", S.TRUNCATED, None)]),
    ]
    # a's round 3 was asked by a stand-in of r1.v3 (early stop): where r1.v3 asked it.
    positions = {"r1": {"a": 1, "b": 2}, "r1.v2": {"a": 1, "b": 2}, "r1.v3": {"b": 1, "a": 2}}
    s = S.score([NUM], gold, S.pick_answers(results, None, positions))
    assert s.correct == {"a": True, "b": True}
    assert {p: (r.correct, r.n) for p, r in s.by_position.items()} == {1: (1, 2), 2: (3, 3)}
    assert s.truncated_by_position == {1: 1}
    assert s.by_position_rounds
    # Without rounds, each item's one answer at its position.
    plain = S.score([NUM], gold, S.pick_answers([rec("r1", "a", 1, "ok", 1)]))
    assert {p: (r.correct, r.n) for p, r in plain.by_position.items()} == {1: (1, 1)}
    assert not plain.by_position_rounds


def test_paired_comparison_by_hand() -> None:
    base = {"1": True, "2": True, "3": False, "4": False, "5": False, "6": True}
    other = {"1": True, "2": False, "3": True, "4": True, "5": True, "6": True, "7": True}
    p = S.paired(base, other)
    assert (p.n, p.only_baseline, p.only_variant) == (6, 1, 3)
    assert p.difference == pytest.approx(5 / 6 - 3 / 6)
    assert p.p_value == pytest.approx(2 * (1 + 4) / 16)  # b=1, c=3: 2·(C(4,0)+C(4,1))/2^4


def test_pareto_front() -> None:
    pts = [(100.0, 0.5), (50.0, 0.5), (200.0, 0.9), (300.0, 0.8), (50.0, 0.4)]
    assert S.pareto_front(pts) == [1, 2]


# ---------------------------------------------------------------- fixed result folders

SPEC = """\
promptc: 1
name: fixed
instruction: Answer.
inputs: {question: {type: text}}
outputs: {answer: {type: number}}
data: {path: d.jsonl, id: qid, gold: {answer: gold}}
model: {name: gpt-4o-mini}
"""


def folder(root: Path, name: str, kind: str, size: int, results: list[dict], **kw: object) -> Path:
    """A variant folder written by hand: the build of the spec ``s.yaml`` beside ``root``
    (its task.json and items.jsonl, as promptc build writes them), these results and an
    answer of 100 prompt and 10 completion tokens per request."""
    f = root / name
    f.mkdir(parents=True)
    requests = sorted({r["request_id"] for r in results})
    manifest = {
        "build_format": BUILD_FORMAT,
        "name": kw.get("spec_name", "fixed"),
        "target": "chat",
        "strategy": {"kind": kind, "batch_size": size},
        "selection": {"method": kw.get("method", "sequential")},
    }
    batches = [
        BatchLine(
            k,
            q,
            tuple(r["item_id"] for r in results if r["request_id"] == q and r["item_id"]),
            None,
            None,
            "",
            "answer",
        )
        for k, q in enumerate(requests)
    ]
    (f / "batches.jsonl").write_text("".join(b.text() + "\n" for b in batches), encoding="utf-8")
    digest = hashlib.sha256((f / "batches.jsonl").read_bytes()).hexdigest()
    manifest["files"] = {"batches.jsonl": digest}  # as a build lists it, for its readers
    task = compile_spec(root.parent / "s.yaml")
    for file, text in (("task.json", task_text(task)), ("items.jsonl", "".join(item_lines(task)))):
        (f / file).write_text(text, encoding="utf-8")
        manifest["files"][file] = hashlib.sha256(text.encode()).hexdigest()
    (f / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (f / "requests.jsonl").write_text(
        "".join(json.dumps({"id": q, "messages": []}) + "\n" for q in requests), encoding="utf-8"
    )
    (f / "outputs.jsonl").write_text(
        "".join(
            json.dumps(
                {"id": q, "output": "", "usage": {"prompt_tokens": 100, "completion_tokens": 10}}
            )
            + "\n"
            for q in requests
        ),
        encoding="utf-8",
    )
    (f / "results.jsonl").write_text(
        "".join(
            json.dumps({**r, "values": {k: float(v) for k, v in r["values"].items()}}) + "\n"
            for r in results
        ),
        encoding="utf-8",
    )
    return f


def fixed_spec(tmp_path: Path) -> Path:
    """SPEC and its 4 items (q1..q4, gold 1..4) in ``tmp_path``."""
    (tmp_path / "d.jsonl").write_text(
        "".join(
            json.dumps({"qid": f"q{k}", "question": f"{k}?", "gold": k}) + "\n" for k in range(1, 5)
        ),
        encoding="utf-8",
    )
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    return spec


@pytest.fixture
def fixed(tmp_path: Path) -> tuple[Path, Path, Path]:
    spec = fixed_spec(tmp_path)
    single = folder(
        tmp_path / "runs",
        "single",
        "single",
        1,
        [rec(f"r{k}", f"q{k}", 1, "ok", k if k != 4 else 0) for k in range(1, 5)],
    )
    batch = folder(
        tmp_path / "runs",
        "batch-2",
        "batch",
        2,
        [
            rec("r1", "q1", 1, "ok", 1),
            rec("r1", "q2", 2, "ok", 0),
            rec("r2", "q3", 1, "ok", 3),
            rec("r2", "q4", 2, "ok", 4),
        ],
    )
    return spec, single, batch


def test_a_session_that_sent_a_share_of_the_requests_times_that_share(
    fixed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    # The run resumed an interrupted one: its 1.5 s sent 2 of single's 4 requests. Its time
    # is that share's: 3 s for the variant's 4 questions (not 4 questions in 1.5 s).
    spec, single, batch = fixed
    (single / "timing.json").write_text('{"seconds": 1.5, "sent": 2}', encoding="utf-8")
    (batch / "timing.json").write_text('{"seconds": 0.5, "sent": 2}', encoding="utf-8")
    out = tmp_path / "report"
    args = ["eval", str(spec), "-o", str(out), "--no-charts", "--results", str(single), str(batch)]
    assert run(args) == 0
    s, b = json.loads((out / "report.json").read_text(encoding="utf-8"))["variants"]
    assert (s["seconds"], s["questions_per_second"]) == (3.0, round(4 / 3.0, 3))
    assert (b["seconds"], b["questions_per_second"]) == (0.5, 8.0)  # sent all of its own


def test_report_from_fixed_folders_by_hand(fixed: tuple[Path, Path, Path], tmp_path: Path) -> None:
    spec, single, batch = fixed
    out = tmp_path / "report"
    assert (
        run(
            ["eval", str(spec), "-o", str(out), "--no-charts", "--results", str(single), str(batch)]
        )
        == 0
    )
    doc = json.loads((out / "report.json").read_text(encoding="utf-8"))
    s, b = doc["variants"]
    assert s["variant"] == "single" and b["variant"] == "batch-2"
    assert (s["accuracy"]["correct"], s["accuracy"]["n"]) == (3, 4)
    assert (b["accuracy"]["correct"], b["accuracy"]["n"]) == (3, 4)
    assert b["by_position"] == {
        "1": {"accuracy": 1.0, "ci95": [round(x, 6) for x in S.wilson(2, 2)], "correct": 2, "n": 2},
        "2": {"accuracy": 0.5, "ci95": [round(x, 6) for x in S.wilson(1, 2)], "correct": 1, "n": 2},
    }
    # single right on q2, wrong on q4; batch the other way round: b = c = 1, p = 1
    assert b["paired"] == {
        "accuracy": 0.75,
        "baseline_accuracy": 0.75,
        "difference": 0.0,
        "mcnemar_p": 1.0,
        "n": 4,
        "only_baseline_correct": 1,
        "only_variant_correct": 1,
        "min_detectable_difference": None,  # 4 items: no difference is detectable
    }
    # No price: cost is tokens, input + output (usage: 100 + 10 a request).
    assert doc["cost_unit"] == "tokens" and doc["price"] is None
    # Shares of a total with 15 significant digits (a float's), however small.
    assert s["cost"] == {"total": 440, "per_question": 110.0, "per_correct": 146.666666666667}
    assert b["cost"] == {"total": 220, "per_question": 55.0, "per_correct": 73.3333333333333}
    assert (s["pareto"], b["pareto"]) == (False, True)  # as accurate, half the cost
    assert doc["recommendation"]["variant"] is None
    assert doc["recommendation"]["sentence"].startswith("no recommendation: too few items (4 ")
    assert s["calls_per_question"] == 1.0 and b["calls_per_question"] == 0.5
    assert s["input_tokens_per_question"] == 100.0 and b["input_tokens_per_question"] == 50.0
    assert b["tokens_from"] == "api usage"
    first = (out / "report.json").read_bytes()
    assert (
        run(
            ["eval", str(spec), "-o", str(out), "--no-charts", "--results", str(single), str(batch)]
        )
        == 0
    )
    assert (out / "report.json").read_bytes() == first
    assert "| batch-2" in (out / "report.md").read_text(encoding="utf-8")


def test_tolerance_counts_near_numbers(fixed: tuple[Path, Path, Path], tmp_path: Path) -> None:
    spec, single, _ = fixed
    out = tmp_path / "r"
    args = [
        "eval",
        str(spec),
        "-o",
        str(out),
        "--no-charts",
        "--format",
        "json",
        "--results",
        str(single),
    ]
    assert run([*args, "--tolerance", "4"]) == 0
    doc = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert doc["variants"][0]["accuracy"]["correct"] == 4 and doc["tolerance"] == "4"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("spec_name", "manifest.json: these results are of spec 'other', not of 'fixed'"),
        ("item", "results.jsonl:1:1: item 'zz' is not in the data of 'fixed'"),
        (
            "tolerance",
            "<command line>: --tolerance: tolerance 'close' is not a non-negative number",
        ),
        ("no-results", "is not answered and parsed: it has no results.jsonl"),
        ("no-gold", "data.gold: no item of 'fixed' has a gold answer, so nothing can be scored"),
        ("baseline", "<command line>: --baseline: baseline 'few-shot' is not among the variants"),
        ("twice", "two result folders are both variant 'single'"),
    ],
)
def test_bad_input_is_a_located_error(
    change: str,
    message: str,
    fixed: tuple[Path, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec, single, _ = fixed
    args = ["eval", str(spec), "-o", str(tmp_path / "r"), "--no-charts", "--results", str(single)]
    if change == "spec_name":
        other = folder(
            tmp_path / "x", "single", "single", 1, [rec("r1", "q1", 1, "ok", 1)], spec_name="other"
        )
        args[-1] = str(other)
    elif change == "item":
        other = folder(tmp_path / "x", "single", "single", 1, [rec("r1", "zz", 1, "ok", 1)])
        args[-1] = str(other)
    elif change == "tolerance":
        args += ["--tolerance", "close"]
    elif change == "no-results":
        (single / "results.jsonl").unlink()
    elif change == "no-gold":
        spec.write_text(SPEC.replace(", gold: {answer: gold}", ""), encoding="utf-8")
    elif change == "baseline":
        args += ["--baseline", "few-shot"]
    elif change == "twice":
        args.append(str(single))
    code = run(args)
    err = capsys.readouterr().err
    assert code in (1, 2)
    assert message in err
    assert "Traceback" not in err


def test_folders_covering_different_items_are_refused(
    fixed: tuple[Path, Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A build of 2 items beside one of 4 (``build --data`` of a subset): scored each on its
    own items, the 2-item variant would be compared, and recommended, on other items than the
    one beside it. eval refuses, naming each folder's items and how many they share; the API
    holds the same rule."""
    spec, _, batch = fixed
    few = folder(
        tmp_path / "few",
        "single",
        "single",
        1,
        [rec("r1", "q1", 1, "ok", 1), rec("r2", "q2", 1, "ok", 2)],
    )
    out = tmp_path / "r"
    code = run(
        ["eval", str(spec), "-o", str(out), "--no-charts", "--results", str(few), str(batch)]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert (
        "<command line>: --results: the result folders cover different items, so their "
        f"accuracies cannot be compared item by item: {str(few)!r} (single): 2 item(s), "
        f"{str(batch)!r} (batch-2): 4 item(s); 2 in every folder; not in every folder: "
        "'q3', 'q4' (score folders built from the same spec and data: build every variant "
        "with the same --data, or let promptc eval build and run them all on the same items)"
    ) in err
    assert "Traceback" not in err and not (out / "report.json").exists()
    with pytest.raises(promptc.PromptcError) as e:
        promptc.evaluate(spec, [batch, few])
    assert e.value.code == "unpaired-items"
    # Both on the same 2 items: the report, the paired test and the too-few-items guard all
    # count those 2.
    pair = folder(
        tmp_path / "pair",
        "batch-2",
        "batch",
        2,
        [rec("r1", "q1", 1, "ok", 1), rec("r1", "q2", 2, "ok", 0)],
    )
    doc = promptc.evaluate(spec, [few, pair])
    assert doc["items"] == 2 and doc["variants"][1]["paired"]["n"] == 2
    assert doc["recommendation"]["sentence"].startswith("no recommendation: too few items (2 ")


# ---------------------------------------------------------------- properties

from hypothesis import given
from hypothesis import strategies as st


@given(st.integers(0, 500), st.integers(0, 500))
def test_wilson_holds_the_observed_rate(k: int, extra: int) -> None:
    n = k + extra
    lo, hi = S.wilson(k, n)
    assert 0.0 <= lo <= hi <= 1.0
    if n:
        assert lo - 1e-12 <= k / n <= hi + 1e-12


@given(st.integers(0, 300), st.integers(0, 300))
def test_mcnemar_is_symmetric_and_a_probability(b: int, c: int) -> None:
    p = S.mcnemar_exact(b, c)
    assert p == S.mcnemar_exact(c, b)
    assert 0.0 < p <= 1.0
    if b == c:
        assert p == 1.0


try:
    from scipy import stats as scipy_stats
except ImportError:  # scipy comes with the embed extra; without it this cross-check is skipped
    scipy_stats = None


@pytest.mark.skipif(scipy_stats is None, reason="scipy is not installed")
@given(st.integers(0, 200), st.integers(0, 200))
def test_mcnemar_matches_scipys_exact_binomial_test(b: int, c: int) -> None:
    stats = scipy_stats
    assert stats is not None
    if b + c == 0:
        return
    expected = stats.binomtest(b, b + c, 0.5, alternative="two-sided").pvalue
    assert S.mcnemar_exact(b, c) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_tokens_fall_back_to_the_tokenizer_without_usage(
    fixed: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    pytest.importorskip("bpe_openai")
    spec, single, _ = fixed
    (single / "outputs.jsonl").write_text(
        "".join(json.dumps({"id": f"r{k}", "output": "18"}) + "\n" for k in range(1, 5)),
        encoding="utf-8",
    )
    out = tmp_path / "r"
    assert run(["eval", str(spec), "-o", str(out), "--no-charts", "--results", str(single)]) == 0
    (v,) = json.loads((out / "report.json").read_text(encoding="utf-8"))["variants"]
    assert v["tokens_from"] == "tokenizer o200k_base"
    assert v["output_tokens_per_question"] == 1.0  # "18" is one o200k token
    assert v["input_tokens_per_question"] == 3.0  # no messages: the reply priming alone


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategies", "single,fewshot"], "--strategies: unknown strategy 'fewshot'"),
        (["--batch-sizes", "4,-1"], "--batch-sizes: batch size '-1' is not a whole number"),
        ([], "promptc eval needs a model: give --base-url URL or --local"),
        (["--strategies", "few-shot"], "strategy few-shot needs at least one demo"),
    ],
)
def test_eval_option_errors_before_anything_is_sent(
    args: list[str],
    message: str,
    fixed: tuple[Path, Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec, _, _ = fixed
    url = [] if not args else ["--base-url", "http://127.0.0.1:9/v1"]
    code = run(["eval", str(spec), "-o", str(tmp_path / "r"), *url, *args])
    err = capsys.readouterr().err
    assert code in (1, 2) and message in err and "Traceback" not in err
    assert not (tmp_path / "r" / "variants").exists()


def _row(variant: str, accuracy: float, per_question: float) -> dict[str, object]:
    return {
        "variant": variant,
        "accuracy": {"accuracy": accuracy},
        "cost": {"per_question": per_question},
        "truncated": 0,
        "unanswered_requests": 0,
    }


def test_a_variant_as_costly_as_the_best_and_less_accurate_is_never_recommended() -> None:
    """``auto-demo-4`` sorts before ``batch-4`` by name, costs the same and got one item
    fewer right: it is dominated, and the best is recommended."""
    from promptc.eval.decide import recommend

    items = [f"i{k}" for k in range(40)]
    correct = {
        "batch-4": dict.fromkeys(items, True),
        "auto-demo-4": {i: i != "i0" for i in items},
    }
    rows = [_row("batch-4", 1.0, 35.0), _row("auto-demo-4", 39 / 40, 35.0)]
    costs = {"batch-4": Fraction(35), "auto-demo-4": Fraction(35), "single": Fraction(30)}
    out = recommend(rows, correct, len(items), 20.0, "tokens", costs)
    assert out["variant"] == "batch-4"
    assert out["sentence"].startswith("recommended: batch-4, the most accurate variant (100.0%)")
    # A cheaper one within the margin is still the one recommended.
    rows.append(_row("single", 39 / 40, 30.0))
    correct["single"] = correct["auto-demo-4"]
    assert recommend(rows, correct, len(items), 20.0, "tokens", costs)["variant"] == "single"


def test_tokenizer_counts_the_input_of_the_requests_answered_as_they_were_sent(
    tmp_path: Path,
) -> None:
    """Without usage, input tokens are counted over what was sent: a request that got no
    answer (r0002) is not, and a repair is counted as the cut-down request it was."""
    pytest.importorskip("bpe_openai")
    from promptc.build import read_requests
    from promptc.plan.tokenizers import tokenizer_for
    from promptc.run.repair import subset_request

    (tmp_path / "d.jsonl").write_text(
        "".join(
            json.dumps({"qid": f"q{k}", "question": f"What is {k} plus {k}?", "gold": 2 * k}) + "\n"
            for k in range(1, 5)
        ),
        encoding="utf-8",
    )
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC + "strategy: {kind: batch, batch_size: 2}\n", encoding="utf-8")
    build = tmp_path / "b"
    assert run(["build", str(spec), "-o", str(build)]) == 0
    repair = {"attempt": 1, "item_ids": ["q2"], "kind": "batch", "of": "r0001"}
    answers = [
        {"id": "r0001", "output": "A[1]: 2\nA[2]: ?"},
        {"id": "r0001.repair1", "output": "A[1]: 4", "repair": repair},
    ]
    (build / "outputs.jsonl").write_text(
        "".join(json.dumps(a) + "\n" for a in answers), encoding="utf-8"
    )
    outputs = str(build / "outputs.jsonl")
    assert run(["parse", str(build), outputs, "-o", str(build / "results.jsonl")]) == 0
    out = tmp_path / "r"
    assert run(["eval", str(spec), "-o", str(out), "--no-charts", "--results", str(build)]) == 0
    (v,) = json.loads((out / "report.json").read_text(encoding="utf-8"))["variants"]
    assert v["tokens_from"] == "tokenizer o200k_base"
    tok = tokenizer_for("gpt-4o-mini")
    task = promptc.load_spec(spec)
    first = next(r for r in read_requests(build) if r.id == "r0001")
    cut = subset_request(task, first, [2], "r0001.repair1")
    assert cut is not None and len(cut.messages[-1]["content"]) < len(first.messages[-1]["content"])
    sent = tok.count_messages(first.messages) + tok.count_messages(cut.messages)
    assert v["input_tokens_per_question"] == round(sent / 4, 3)


def test_report_md_links_only_charts_written_and_shows_every_truncated_position(
    tmp_path: Path,
) -> None:
    """``--no-charts``: report.md links no PNG that is not there. Position 2 of batch-2 lost
    every item to max_tokens: its column is still shown, with its truncated count."""
    spec = fixed_spec(tmp_path)
    batch = folder(
        tmp_path / "runs",
        "batch-2",
        "batch",
        2,
        [
            rec("r1", "q1", 1, "ok", 1),
            rec("r1", "q2", 2, "truncated"),
            rec("r2", "q3", 1, "ok", 3),
            rec("r2", "q4", 2, "truncated"),
        ],
    )
    out = tmp_path / "report"
    assert run(["eval", str(spec), "-o", str(out), "--no-charts", "--results", str(batch)]) == 0
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "](" not in md and not list(out.glob("*.png"))
    assert "| variant | 1 | 2 |" in md and "| -, 2 truncated |" in md


def test_results_written_before_the_latest_repair_answers_are_refused(tmp_path: Path) -> None:
    """A run killed by SIGKILL after a repair answer reached outputs.jsonl, before it could
    write results.jsonl: scored, the repair's call and cost would count, its answer not."""
    (tmp_path / "d.jsonl").write_text(
        "".join(
            json.dumps({"qid": f"q{k}", "question": f"What is {k} plus {k}?", "gold": 2 * k}) + "\n"
            for k in range(1, 5)
        ),
        encoding="utf-8",
    )
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC + "strategy: {kind: batch, batch_size: 2}\n", encoding="utf-8")
    build_dir = tmp_path / "b"
    assert run(["build", str(spec), "-o", str(build_dir)]) == 0
    outputs = build_dir / "outputs.jsonl"
    lines = [
        {"id": "r0001", "output": "A[1]: 2\nA[2]: ?"},
        {"id": "r0002", "output": "A[1]: 6\nA[2]: 8"},
    ]
    outputs.write_text("".join(json.dumps(a) + "\n" for a in lines), encoding="utf-8")
    assert run(["parse", str(build_dir), str(outputs), "-o", str(build_dir / "results.jsonl")]) == 1
    repair = {"attempt": 1, "item_ids": ["q2"], "kind": "batch", "of": "r0001"}
    with outputs.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"id": "r0001.repair1", "output": "A[1]: 4", "repair": repair}) + "\n")
    out = tmp_path / "r"
    assert run(["eval", str(spec), "-o", str(out), "--no-charts", "--results", str(build_dir)]) == 2
    assert not (out / "report.json").exists()
    # Parsed again, the folder is scored.
    assert run(["parse", str(build_dir), str(outputs), "-o", str(build_dir / "results.jsonl")]) == 0
    assert run(["eval", str(spec), "-o", str(out), "--no-charts", "--results", str(build_dir)]) == 0
