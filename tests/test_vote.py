"""Voting across permutations (``strategy.vote``): the spec, the build's rounds and how an
item's answers are combined. The run against a scripted server is
tests/integration/test_run_vote.py."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType

import pytest
from promptc.build import assemble
from promptc.build.batches import BatchLine
from promptc.errors import Location, PromptcErrors
from promptc.ir import Vote, request_id, round_of
from promptc.parse.results import ItemResult
from promptc.parse.vote import combine, settled
from promptc.spec.lower import compile_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"
READING = SPECS / "reading.yaml"


def _task(kind: str = "batch", size: int = 4, **vote: object) -> object:
    return compile_spec(
        READING,
        overrides={
            ("strategy", "kind"): kind,
            ("strategy", "batch_size"): size,
            ("strategy", "vote"): vote or {"rounds": 3},
        },
    )


def _batches(task: object) -> list[dict[str, object]]:
    text = assemble(task).files["batches.jsonl"]  # type: ignore[arg-type]
    return [json.loads(x) for x in text.splitlines()]


def test_the_spec_says_the_rounds() -> None:
    task = _task("batch", 5, rounds=5, early_stop=2)  # at most batch_size rounds
    assert task.strategy.vote == Vote(5, 2)  # type: ignore[attr-defined]
    assert task.strategy.rounds == 5  # type: ignore[attr-defined]
    plain = compile_spec(READING)
    assert plain.strategy.vote is None and plain.strategy.rounds == 1


def test_every_round_asks_every_item_once_at_another_position_with_other_neighbours() -> None:
    lines = _batches(_task("batch", 4, rounds=4))
    assert [x["request"] for x in lines[:5]] == ["r0001", "r0002", "r0003", "r0004", "r0001.v2"]
    assert [x["round"] for x in lines] == [1] * 4 + [2] * 4 + [3] * 4 + [4] * 4
    positions: dict[str, list[int]] = {}
    neighbours: dict[str, list[frozenset[str]]] = {}
    for r in range(1, 5):
        ids = [i for x in lines if x["round"] == r for i in x["item_ids"]]  # type: ignore[attr-defined]
        assert sorted(ids) == sorted(f"r{k:02d}" for k in range(1, 17))  # each once a round
        for x in lines:
            if x["round"] == r:
                for p, i in enumerate(x["item_ids"]):  # type: ignore[arg-type]
                    positions.setdefault(i, []).append(p)
                    neighbours.setdefault(i, []).append(frozenset(x["item_ids"]) - {i})  # type: ignore[arg-type]
    assert all(len(set(p)) == 4 for p in positions.values())  # 4 rounds, 4 positions
    # Two items share a batch again only when (r-1)(p-q) ≡ 0 (mod 4): never all of them.
    for got in neighbours.values():
        assert len(set(got)) == 4


def test_retrieval_rounds_take_the_next_neighbours_and_move_the_target() -> None:
    import numpy as np
    from promptc.select import neighbors, similarity

    vectors = np.random.default_rng(7).normal(size=(12, 6)).astype(np.float32)
    groups = similarity.find_groups(vectors, 3, "retrieval", rounds=3).groups
    assert [g.round for g in groups] == [1] * 12 + [2] * 12 + [3] * 12
    assert groups[:12] == similarity.find_groups(vectors, 3, "retrieval").groups
    nearest = neighbors.all_neighbors(similarity.normalize(vectors), 6).indices
    for i in range(12):
        mine = groups[i::12]
        assert all(g.members[g.target] == i for g in mine if g.target is not None)
        assert [g.target for g in mine] == [2, 0, 1]
        # Round r takes the item's nearest neighbours of ranks 2r-2 and 2r-1.
        assert [set(g.members) - {i} for g in mine] == [
            set(nearest[i][2 * r : 2 * r + 2].tolist()) for r in range(3)
        ]
    # Fewer items than the rounds need: the ranks wrap around, a batch keeps its size.
    few = similarity.find_groups(vectors[:4], 3, "retrieval", rounds=3).groups
    assert all(len(set(g.members)) == 3 for g in few)


def test_a_selection_that_dealt_its_rounds_is_kept() -> None:
    task = compile_spec(
        READING,
        overrides={
            ("strategy", "kind"): "batch",
            ("strategy", "batch_size"): 2,
            ("strategy", "vote"): {"rounds": 2},
        },
    )
    from promptc.build.rounds import with_rounds
    from promptc.ir import Batch
    from promptc.select.batches import SelectionResult

    dealt = [Batch(0, ("a", "b"), (0, 1), target=1), Batch(0, ("c", "a"), (2, 0), 0, round=2)]
    rounds = with_rounds(task, SelectionResult(dealt))  # type: ignore[arg-type]
    assert rounds.batches == dealt and rounds.info["vote_rounds"] == 2


def test_a_build_without_votes_writes_no_round() -> None:
    lines = assemble(compile_spec(READING)).files["batches.jsonl"].splitlines()
    assert all("round" not in json.loads(x) for x in lines)
    voted = _batches(_task())[5]
    line = BatchLine.read(json.dumps(voted), Location("batches.jsonl", 6))
    assert line.round == 2 and json.loads(line.text()) == voted


def test_request_ids_say_the_round() -> None:
    assert request_id(6, 4) == "r0007" and request_id(6, 4, 3) == "r0007.v3"
    assert [round_of(x) for x in ("r0007", "r0007.v3", "r0007.v3.live", "r0007.v12.repair2.1")] == [
        1,
        3,
        3,
        12,
    ]


def _answer(round_: int, value: bool | None, item: str = "q1") -> ItemResult:
    rid = request_id(0, 4, round_)
    if value is None:
        return ItemResult(rid, item, 1, "malformed")
    return ItemResult(rid, item, 1, "ok", MappingProxyType({"answer": value}))


def test_the_majority_wins_and_a_tie_goes_to_the_earliest_round() -> None:
    rows, extra = combine(
        [
            (_answer(1, False), 1),
            (_answer(2, True), 1),
            (_answer(3, True), 2),
            (_answer(4, None), 1),
        ]
    )
    assert [(x.request_id, x.values["answer"], n) for x, n in rows] == [("r0001.v2", True, 5)]
    assert extra["q1"]["votes"] == 2
    assert [(r["round"], r["status"]) for r in extra["q1"]["rounds"]] == [
        (1, "ok"),
        (2, "ok"),
        (3, "ok"),
        (4, "malformed"),
    ]
    tie, _ = combine([(_answer(2, True), 1), (_answer(1, False), 1)])  # rows in any order
    assert tie[0][0].values["answer"] is False and tie[0][0].request_id == "r0001"
    failed, extra = combine([(_answer(1, None), 1), (_answer(2, None), 1)])
    assert failed[0][0].status == "malformed" and extra["q1"]["votes"] == 0


def test_an_item_settles_when_its_last_answers_agree() -> None:
    same = [_answer(1, False), _answer(2, True), _answer(3, True)]
    assert settled(same, 2) and not settled(same, 3) and not settled(same, None)
    assert not settled([_answer(1, None), _answer(2, None)], 2)
    assert Counter(x.status for x in same) == {"ok": 3}


def test_rounds_agree_on_the_typed_answer_not_on_the_reasoning_beside_it() -> None:
    # A chain-of-thought answer: no two rounds write the reasoning word for word. Rounds
    # agree on the number (18 = 18.0), so 13 wins 2 to 1 and the item settles.
    fields = compile_spec(SPECS / "math.yaml").outputs

    def said(round_: int, reasoning: str, answer: str) -> ItemResult:
        values = {"reasoning": reasoning, "answer": Decimal(answer)}
        return ItemResult(request_id(0, 4, round_), "m01", 1, "ok", MappingProxyType(values))

    answers = [said(1, "So 12.", "12"), said(2, "Hence 13.", "13"), said(3, "It is 13.", "13.0")]
    rows, extra = combine([(x, 1) for x in answers], fields)
    assert rows[0][0].values["answer"] == 13 and extra["m01"]["votes"] == 2
    assert settled(answers, 2, fields) and not settled(answers, 3, fields)
    # Without the task's outputs the values are compared as they are.
    assert combine([(x, 1) for x in answers])[1]["m01"]["votes"] == 1


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {("strategy", "vote"): {"rounds": 3, "early_stop": 4}},
            "early_stop 4 is more than the 3 rounds; expected 2..3",
        ),
        (
            {("strategy", "kind"): "single", ("strategy", "vote"): {"rounds": 3}},
            "vote has no effect on strategy single, which sends one item per request",
        ),
    ],
)
def test_vote_errors(overrides: dict[tuple[str, ...], object], message: str) -> None:
    with pytest.raises(PromptcErrors) as e:
        compile_spec(READING, overrides={("strategy", "kind"): "batch", **overrides})
    assert [x.message for x in e.value] == [message]


def test_a_one_item_strategy_ignores_vote_in_a_spec_file(tmp_path: Path) -> None:
    spec = tmp_path / "reading.yaml"
    spec.write_text(
        READING.read_text().replace("  kind: few-shot\n", "  kind: few-shot\n  vote: {rounds: 3}\n")
    )
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "reading.csv").write_text((SPECS / "data" / "reading.csv").read_text())
    task = compile_spec(spec)
    assert task.strategy.vote == Vote(3) and task.strategy.rounds == 1
    assert [json.loads(x)["id"] for x in assemble(task).files["requests.jsonl"].splitlines()] == [
        f"r{k:04d}" for k in range(1, 17)
    ]


def test_the_build_summary_counts_every_round() -> None:
    built = assemble(_task("batch", 4, rounds=3, early_stop=2))  # type: ignore[arg-type]
    assert built.manifest["cost"] == (
        "4 requests for 16 items (up to 4 items per request), asked in 3 voting rounds: "
        "at most 12 requests"
    )
    plain = assemble(_task("batch", 4, rounds=2))  # type: ignore[arg-type]
    assert str(plain.manifest["cost"]).endswith("asked in 2 voting rounds: 8 requests")


def test_check_says_the_rounds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import shutil

    from promptc.cli.app import run

    shutil.copytree(SPECS / "data", tmp_path / "data")
    shutil.copy(READING, tmp_path / READING.name)
    spec = tmp_path / "voted.yaml"
    spec.write_text(
        f"promptc: 1\nextends: {READING.name}\nstrategy: {{kind: batch, vote: {{rounds: 3}}}}\n",
        encoding="utf-8",
    )
    assert run(["check", str(spec)]) == 0
    assert capsys.readouterr().out.rstrip().endswith(", 3 voting rounds")


def test_a_round_answered_whole_keeps_its_answer_beside_an_old_stand_in() -> None:
    # An early-stop run asked round 3 of q3 alone (r0001.v3.live); the build was then made
    # without early stop and round 3 asked whole (r0001.v3): every item's round-3 answer
    # is r0001.v3's, none replaced by the stand-in's.
    from promptc.run.repair import STAND_IN, merge_answers

    def ok(rid: str, item: str, index: int, value: bool) -> ItemResult:
        return ItemResult(rid, item, index, "ok", MappingProxyType({"answer": value}))

    whole = [ok("r0001.v3", f"q{k}", k, True) for k in range(1, 5)]
    live = [ok("r0001.v3.live", "q3", 1, False)]
    record = {"attempt": STAND_IN, "of": "r0001.v3", "positions": [3], "item_ids": ["q3"]}
    merged = merge_answers(
        ["r0001.v3"], {"r0001.v3": whole, "r0001.v3.live": live}, {"r0001.v3.live": record}
    )
    assert [(x.request_id, x.values["answer"]) for x, _ in merged.rows] == [("r0001.v3", True)] * 4


def test_check_refuses_rounds_the_data_make_too_many_as_build_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three items in batches of 4 cannot be asked in 4 rounds: check said valid, and build
    then refused the spec (vote-rounds). Both say so now, at strategy.vote.rounds."""
    import shutil

    from promptc.cli.app import run

    shutil.copytree(SPECS / "data", tmp_path / "data")
    shutil.copy(READING, tmp_path / READING.name)
    rows = (SPECS / "data" / "reading.csv").read_text(encoding="utf-8").splitlines()[:4]
    (tmp_path / "three.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    spec = tmp_path / "voted.yaml"
    spec.write_text(
        f"promptc: 1\nextends: {READING.name}\n"
        "strategy: {kind: batch, batch_size: 4, vote: {rounds: 4}}\n",
        encoding="utf-8",
    )
    assert run(["check", str(spec), "--data", str(tmp_path / "three.csv")]) == 1
    err = capsys.readouterr().err
    assert (
        f"{spec}:3:" in err
        and "strategy.vote.rounds: rounds 4 is more than this data allows" in err
    )
    args = ["build", str(spec), "--data", str(tmp_path / "three.csv"), "-o", str(tmp_path / "b")]
    assert run(args) == 1
    assert "rounds 4 is more than this data allows" in capsys.readouterr().err
