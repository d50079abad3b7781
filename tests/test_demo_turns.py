"""``demos_as: turns``: every demo batch a user message (the template's own user block, the demos
as its items) and an assistant message (their answers as the grammar writes them), for every
strategy that shows demos; the assistant turns parse strictly with the demos' values."""

from __future__ import annotations

from pathlib import Path

import pytest
from promptc.parse.output import parse_output
from promptc.render.renderer import render
from promptc.select.methods import select
from promptc.spec.lower import compile_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"


@pytest.mark.parametrize(
    ("spec", "kind", "size"),
    [
        ("math", "few-shot", 1),
        ("math", "batch", 2),
        ("math", "auto-demo", 2),
        ("nli", "batch", 2),
        ("gsm8k-batch-prompting", "batch", 2),
        ("mnli", "batch", 2),
    ],
)
def test_demos_as_turns(spec: str, kind: str, size: int) -> None:
    overrides: dict[tuple[str, ...], object] = {("strategy", "kind"): kind, ("demos_as",): "turns"}
    if kind != "few-shot":
        overrides[("strategy", "batch_size")] = size
    task = compile_spec(SPECS / f"{spec}.yaml", overrides=overrides)
    assert task.demos_as == "turns"
    request = render(task, select(task))[0]
    roles = [m.role for m in request.messages]
    n_turns = -(-len(task.demos) // size)
    assert roles[-1] == "user"
    assert roles[-1 - 2 * n_turns : -1] == ["user", "assistant"] * n_turns
    assert roles[: -1 - 2 * n_turns] in ([], ["system"])
    shown = "\n".join(m.content for m in request.messages if m.role != "assistant")
    demos = list(task.demos)
    for k in range(n_turns):
        user = request.messages[-1 - 2 * n_turns + 2 * k]
        answer = request.messages[-1 - 2 * n_turns + 2 * k + 1]
        group = demos[k * size : (k + 1) * size]
        for d in group:  # the demo's inputs are in its user turn, and only there
            value = next(iter(d.inputs.values()))
            assert value in user.content and shown.count(value) == 1
        shape = {"id": "demo", "kind": kind, "item_ids": [f"d{i}" for i in range(len(group))]}
        results = parse_output(task, shape, answer.content, mode="strict")
        assert [r.status for r in results] == ["ok"] * len(group), answer.content
        assert [dict(r.values) for r in results] == [dict(d.outputs) for d in group]


def test_single_stays_zero_shot() -> None:
    task = compile_spec(
        SPECS / "math.yaml", overrides={("strategy", "kind"): "single", ("demos_as",): "turns"}
    )
    roles = [m.role for m in render(task, select(task))[0].messages]
    assert roles == ["system", "user"]
