"""promptc eval end to end against the real local SmolLM2 server: all four strategies over a
small labelled set, the report, report.json and both PNG charts."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from promptc.cli.app import run
from promptc.run.models import find_model

SPEC = """\
promptc: 1
name: tiny-sentiment
instruction: Classify the sentiment of the review as positive or negative.
inputs: {review: {type: text}}
outputs: {sentiment: {type: enum, choices: [positive, negative]}}
demos:
  - {review: I love it., sentiment: positive}
  - {review: It broke at once., sentiment: negative}
data: {path: d.jsonl, id: qid, gold: {sentiment: label}}
model: {name: smollm2, temperature: 0, max_tokens: 24}
"""
ROWS = [
    ("a", "Wonderful, works perfectly.", "positive"),
    ("b", "Terrible, it stopped working.", "negative"),
    ("c", "Great value, very happy.", "positive"),
    ("d", "Awful quality, do not buy.", "negative"),
]


def png_size(path: Path) -> tuple[int, int]:
    """The size of a PNG, after decoding it whole (a truncated or corrupt file fails)."""
    from PIL import Image

    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    with Image.open(path) as image:
        image.load()
        assert image.size == struct.unpack(">II", head[16:24])
        return image.size


@pytest.mark.llm
def test_eval_all_four_strategies_on_the_real_model(
    llm_base_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    (tmp_path / "d.jsonl").write_text(
        "".join(json.dumps({"qid": q, "review": r, "label": g}) + "\n" for q, r, g in ROWS),
        encoding="utf-8",
    )
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC, encoding="utf-8")
    report = tmp_path / "report"
    args = ["eval", str(spec), "--batch-sizes", "2", "--base-url", llm_base_url]
    args += ["-o", str(report), "--cache", str(tmp_path / "cache.sqlite")]
    assert run(args) == 0, capsys.readouterr().err
    doc = json.loads((report / "report.json").read_text(encoding="utf-8"))
    names = [v["variant"] for v in doc["variants"]]
    assert names == ["single", "few-shot", "batch-2", "auto-demo-2"]
    for v in doc["variants"]:
        assert v["items"] == 4
        assert sum(v["statuses"].values()) == 4
        assert v["tokens_from"] == "api usage" and v["input_tokens_per_question"] > 0
        assert (
            0 <= v["accuracy"]["ci95"][0] <= v["accuracy"]["accuracy"] <= v["accuracy"]["ci95"][1]
        )
        assert v["seconds"] is not None
    batch = doc["variants"][2]
    assert set(batch["by_position"]) <= {"1", "2"}
    assert doc["variants"][1]["paired"]["n"] == 4
    assert "| variant | accuracy [95% CI] |" in (report / "report.md").read_text(encoding="utf-8")
    for chart in ("accuracy-vs-tokens.png", "accuracy-by-position.png"):
        assert png_size(report / chart) == (800, 500)
    # plan's count with the model's own tokenizer is what the server reports it read.
    from promptc.plan.estimate import plan_spec
    from promptc.plan.variants import Variant
    from promptc.strategies import strategy

    grid = [Variant(strategy("single"), None), Variant(strategy("few-shot"), None)]
    grid += [Variant(strategy("batch"), 2), Variant(strategy("auto-demo"), 2)]
    plan = plan_spec(str(spec), grid, tokenizer=str(find_model()))
    assert plan.exact
    assert [round(p.input_per_question, 2) for p in plan.variants] == [
        v["input_tokens_per_question"] for v in doc["variants"]
    ]
    first = (report / "report.json").read_bytes()
    # A rerun is answered from the cache and the answers kept: the same report, byte for byte.
    assert run(args) == 0
    assert (report / "report.json").read_bytes() == first
    # And the folders can be scored without a model.
    folders = sorted((str(p) for p in (report / "variants").iterdir()), reverse=True)
    assert run(["eval", str(spec), "-o", str(tmp_path / "again"), "--results", *folders]) == 0
    # Scored from the folders alone, in any order, the report is the same, byte for byte.
    assert (tmp_path / "again" / "report.json").read_bytes() == first
