"""Voting rounds never ask a prompt twice: more rounds than the data's batches have positions,
or a round that would deal a batch an earlier round asked, is an error at
``strategy.vote.rounds`` naming the most rounds the data allows (``vote-rounds``); the spec's
check refuses ``rounds`` above ``batch_size`` (``vote-batch-size``)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from promptc import ir
from promptc.build import assemble
from promptc.build.rounds import with_rounds
from promptc.errors import PromptcErrors, SelectionError
from promptc.select.batches import SelectionResult
from promptc.spec.lower import compile_spec

SPEC = """\
promptc: 1
name: h
instruction: Classify.
inputs: {review: {type: text}}
outputs: {sentiment: {type: enum, choices: [positive, negative]}}
data: {path: d.jsonl, id: id, fields: {review: text}}
strategy: {kind: batch, batch_size: SIZE, vote: {rounds: ROUNDS}}
model: {name: m, max_tokens: 50}
"""


def _spec(tmp_path: Path, items: int, size: int, rounds: int) -> Path:
    (tmp_path / "d.jsonl").write_text(
        "".join(json.dumps({"id": f"s{k}", "text": f"review {k}"}) + "\n" for k in range(items))
    )
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC.replace("SIZE", str(size)).replace("ROUNDS", str(rounds)))
    return spec


def test_rounds_above_the_batch_size_are_refused_by_the_spec_check(tmp_path: Path) -> None:
    # The QA case: 8 items in batches of 4, 8 rounds (16 requests, 8 distinct prompts).
    spec = _spec(tmp_path, 8, 4, 8)
    with pytest.raises(PromptcErrors) as e:
        compile_spec(spec)
    (problem,) = e.value
    assert problem.code == "vote-batch-size"
    assert problem.path == ("strategy", "vote", "rounds")
    assert (problem.location.line, problem.location.col) == (7, 55)  # type: ignore[union-attr]
    assert problem.message == (
        "rounds 8 is more than the batch_size 4: each round asks every item at another of a "
        "batch's 4 positions; expected at most 4"
    )
    assert problem.hint == (
        "a later round would ask the prompts of an earlier one again; lower "
        "strategy.vote.rounds, or raise strategy.batch_size"
    )


@pytest.mark.parametrize(
    ("items", "size", "rounds", "message"),
    [
        (  # one batch, narrower than batch_size
            3,
            4,
            4,
            (
                "rounds 4 is more than this data allows: round 4 would put every item back at a "
                "position it had (the widest batch has 3); expected at most 3"
            ),
        ),
        (  # one item
            1,
            4,
            2,
            (
                "rounds 2 is more than this data allows: round 2 would put every item back at a "
                "position it had (the widest batch has 1); expected at most 1"
            ),
        ),
    ],
)
def test_build_and_plan_refuse_rounds_the_data_cannot_deal(
    tmp_path: Path, items: int, size: int, rounds: int, message: str
) -> None:
    spec = _spec(tmp_path, items, size, rounds)
    task = compile_spec(spec)
    with pytest.raises(SelectionError) as e:
        assemble(task)
    assert e.value.code == "vote-rounds" and e.value.message == message
    assert e.value.path == ("strategy", "vote", "rounds")
    assert (e.value.location.line, e.value.location.col) == (7, 55)  # type: ignore[union-attr]
    assert e.value.hint == (
        "its answers would count as more votes; lower strategy.vote.rounds, or raise "
        "strategy.batch_size"
    )
    plan = subprocess.run(
        [sys.executable, "-m", "promptc", "plan", str(spec), "--strategies", "batch"]
        + ["--batch-sizes", str(size)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert plan.returncode == 1
    assert f"{spec}:7:55: strategy.vote.rounds: {message} (" in plan.stderr
    most = int(message.rsplit(" ", 1)[1])  # the rounds it names are dealt
    lines = assemble(compile_spec(_spec(tmp_path, items, size, most))).files["batches.jsonl"]
    asked = [tuple(json.loads(x)["item_ids"]) for x in lines.splitlines()]
    assert len(asked) == len(set(asked)) == -(-items // size) * most


def test_a_round_the_dealing_would_repeat_is_dealt_anew(tmp_path: Path) -> None:
    """A short last batch: the dealing puts [s3] alone in round 1 and again in round 3, so
    round 3 is reshuffled (seeded: the same build every time), every item asked once in it,
    no batch asked twice."""
    task = compile_spec(_spec(tmp_path, 4, 3, 3))
    lines = assemble(task).files["batches.jsonl"]
    rows = [json.loads(x) for x in lines.splitlines()]
    asked = [tuple(x["item_ids"]) for x in rows]
    assert len(asked) == len(set(asked)) == 6
    every = sorted(i for x in rows if x["round"] == 1 for i in x["item_ids"])
    for r in (2, 3):  # each round asks every item once
        assert sorted(i for x in rows if x["round"] == r for i in x["item_ids"]) == every
    assert len(every) == len(set(every)) == 4
    assert assemble(compile_spec(_spec(tmp_path, 4, 3, 3))).files["batches.jsonl"] == lines


@pytest.mark.parametrize("size", range(2, 9))
def test_no_build_asks_a_batch_twice(tmp_path: Path, size: int) -> None:
    base = compile_spec(_spec(tmp_path, 1, size, 1))
    for n in range(1, 41):
        first = [
            ir.Batch(
                b,
                tuple(f"i{k}" for k in range(s, min(n, s + size))),
                tuple(range(s, min(n, s + size))),
            )
            for b, s in enumerate(range(0, n, size))
        ]
        for rounds in range(2, size + 1):
            strategy = dataclasses.replace(base.strategy, vote=ir.Vote(rounds))
            task = dataclasses.replace(base, strategy=strategy)
            try:
                dealt = with_rounds(task, SelectionResult(first)).batches
            except SelectionError as e:
                assert e.code == "vote-rounds"
                continue
            asked = [b.item_ids for b in dealt]
            assert len(set(asked)) == len(asked) == len(first) * rounds, (n, rounds)


@pytest.mark.parametrize(("n", "size", "rounds"), [(20, 8, 3), (20, 4, 3), (30, 8, 4), (21, 5, 3)])
def test_each_round_puts_every_item_at_a_position_it_has_not_had(
    n: int, size: int, rounds: int
) -> None:
    """With a short last batch (20 items in batches of 8), the dealt places closed up and 14
    of 20 items came back to a position they had in an earlier round (s01 was Q[1] twice)."""
    base = compile_spec_with_rounds(n, size, rounds)
    dealt = with_rounds(base, SelectionResult(_first(n, size))).batches
    seen: dict[str, set[int]] = {}
    again = []
    for b in dealt:
        for p, i in enumerate(b.item_ids):
            if p in seen.setdefault(i, set()):
                again.append((i, b.round, p))
            seen[i].add(p)
    assert again == []
    assert all(len(v) == rounds for v in seen.values()) and len(seen) == n


def _first(n: int, size: int) -> list[ir.Batch]:
    return [
        ir.Batch(
            b, tuple(f"i{k}" for k in range(s, min(n, s + size))), tuple(range(s, min(n, s + size)))
        )
        for b, s in enumerate(range(0, n, size))
    ]


def compile_spec_with_rounds(n: int, size: int, rounds: int) -> ir.Task:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        base = compile_spec(_spec(Path(folder), 1, size, 1))
    return dataclasses.replace(
        base, strategy=dataclasses.replace(base.strategy, vote=ir.Vote(rounds))
    )


def test_retrieval_deals_at_most_a_batch_of_rounds_each_target_batch_its_own() -> None:
    import numpy as np
    from promptc.select import similarity

    for n in range(1, 9):
        vectors = np.random.default_rng(n).normal(size=(n, 6)).astype(np.float32)
        for size in range(1, 6):
            for rounds in range(1, 8):
                groups = similarity.find_groups(vectors, size, "retrieval", rounds=rounds).groups
                assert max(g.round for g in groups) == min(rounds, size, n)
                for i in range(n):
                    mine = [g.members for g in groups if g.members[g.target or 0] == i]
                    assert len(set(mine)) == len(mine)  # the target moves each round


def test_a_selection_that_dealt_too_few_positions_for_its_rounds_is_refused(
    tmp_path: Path,
) -> None:
    base = compile_spec(_spec(tmp_path, 4, 4, 3))
    dealt = [ir.Batch(0, ("a", "b"), (0, 1), target=1), ir.Batch(1, ("b", "a"), (1, 0), target=1)]
    with pytest.raises(SelectionError) as e:
        with_rounds(base, SelectionResult(dealt))
    assert e.value.message == (
        "rounds 3 is more than this data allows: round 3 would put every item back at a "
        "position it had (the widest batch has 2); expected at most 2"
    )


def test_plan_leaves_out_the_variants_too_small_for_the_rounds(tmp_path: Path) -> None:
    """Five rounds on a spec of batches of 8: plan's batch-4 variants cannot hold them; they
    are left out, said, and the others planned (the whole plan failed on them)."""
    spec = _spec(tmp_path, 20, 8, 5)
    done = subprocess.run(
        [sys.executable, "-m", "promptc", "plan", str(spec), "--strategies", "batch,auto-demo"]
        + ["--batch-sizes", "4,8", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert [v["variant"] for v in plan["variants"]] == ["batch-8", "auto-demo-8"]
    assert plan["left_out"] == [
        f"{name} is left out: batches of 4 are fewer positions than the spec's voting rounds "
        "(strategy.vote.rounds)"
        for name in ("batch-4", "auto-demo-4")
    ]
    assert "note: batch-4 is left out" in done.stderr


def test_plan_leaves_out_a_variant_whose_data_make_batches_too_narrow(tmp_path: Path) -> None:
    """Two items of data: batch-4's batches hold 2, fewer than 3 rounds. Left out and said
    before anything is planned or sent; single is planned (the whole plan failed)."""
    spec = _spec(tmp_path, 2, 4, 3)
    done = subprocess.run(
        [sys.executable, "-m", "promptc", "plan", str(spec), "--strategies", "single,batch"]
        + ["--batch-sizes", "4", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert [v["variant"] for v in plan["variants"]] == ["single"]
    assert plan["left_out"] == [
        (
            "batch-4 is left out: rounds 3 is more than this data allows: round 3 would put "
            "every item back at a position it had (the widest batch has 2); expected at most 2"
        )
    ]


def test_plan_with_its_default_strategies_leaves_out_few_shot_of_a_spec_without_demos(
    tmp_path: Path,
) -> None:
    """A spec without demos that check calls valid: plan with no options failed on few-shot,
    which the default strategies list ('strategy few-shot needs at least one demo', at the
    command line, from an option nobody gave). It is left out and said; asked for alone, it
    is still the spec's error."""
    spec = _spec(tmp_path, 8, 4, 1)
    base = [sys.executable, "-m", "promptc", "plan", str(spec)]
    done = subprocess.run([*base, "--format", "json"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert "few-shot" not in [v["variant"] for v in plan["variants"]]
    assert plan["left_out"] == [
        "few-shot is left out: the spec has no demos to show (add demos to compare it)"
    ]
    alone = subprocess.run(
        [*base, "--strategies", "few-shot"], capture_output=True, text=True, check=False
    )
    assert alone.returncode == 1 and "few-shot needs at least one demo" in alone.stderr
