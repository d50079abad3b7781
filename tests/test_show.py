"""promptc show of a large job: the batches from the selection alone, and request K rendered
with those before it at most, never the whole job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from promptc.cli.app import run
from promptc.render.renderer import GROUP_REQUESTS, Renderer

ITEMS = 1200  # auto-demo, 2 a request: 600 requests, more than one group of the renderer


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    rows = "".join(
        json.dumps({"id": f"t{i:04d}", "text": f"text {i}"}) + "\n" for i in range(ITEMS)
    )
    (tmp_path / "d.jsonl").write_text(rows, encoding="utf-8")
    path = tmp_path / "s.yaml"
    path.write_text(
        "promptc: 1\nname: big\ninstruction: Label it.\ninputs: {text: {}}\n"
        "outputs: {label: {type: enum, choices: [a, b]}}\n"
        "demos:\n  - {text: one, label: a}\n"
        "data: {path: d.jsonl, id: id}\n"
        "strategy: {kind: auto-demo, batch_size: 2}\nmodel: {name: m}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def rendered(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of requests rendered, counted as the renderer hands them out."""
    count = [0]
    group = Renderer._render_group

    def counted(self: Renderer, *args: Any) -> Any:
        made, failure = group(self, *args)
        count[0] += len(made)
        return made, failure

    monkeypatch.setattr(Renderer, "_render_group", counted)
    return count


def show(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert run(["show", *args]) == 0
    return capsys.readouterr().out


def test_show_request_renders_no_request_after_the_one_shown(
    spec: Path, rendered: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    first = show(capsys, str(spec), "--request", "1")
    assert first.startswith("request r0001 · auto-demo · 2 items: t0000, t0001\n")
    assert rendered[0] <= GROUP_REQUESTS  # the first group of the stream, not 600 requests
    rendered[0] = 0
    shown = json.loads(show(capsys, str(spec), "--request", "r0002", "--format", "json"))
    assert shown["item_ids"] == ["t0002", "t0003"]
    assert rendered[0] <= GROUP_REQUESTS
    last = show(capsys, str(spec), "--request", "600")
    assert last == show(capsys, str(spec), "--request", "r0600")
    assert last.startswith("request r0600 · auto-demo · 2 items: t1198, t1199\n")


def test_show_batches_renders_nothing_and_prints_every_batch(
    spec: Path, rendered: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    text = show(capsys, str(spec), "--batches").splitlines()
    assert text[1:3] == ["  1  r0001  t0000, t0001", "  2  r0002  t0002, t0003"]
    assert text[-1] == "600  r0600  t1198, t1199" and len(text) == 601
    out = show(capsys, str(spec), "--batches", "--format", "json")
    doc = json.loads(out)
    # Written a batch at a time, in the very bytes of one JSON document of promptc's.
    assert out == json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    assert [b["request"] for b in doc["batches"]] == [f"r{k:04d}" for k in range(1, 601)]
    assert doc["selection"]["requests"] == 600
    assert rendered[0] == 0


def test_a_retrieval_batch_is_shown_with_its_target_and_similarities() -> None:
    import io

    from promptc import ir
    from promptc.cli.show import show_batches

    out = io.StringIO()
    batch = ir.Batch(0, ("a", "b"), (0, 1), target=0, similarities=(1.0, 0.5))
    show_batches([batch], iter(["r0001"]), {"method": "retrieval"}, out)
    assert out.getvalue() == (
        "method: retrieval\n"
        "* marks the target item, whose answer the batch is for\n"
        "1  r0001  a* (1.000), b (0.500)\n"
    )
