"""Shared fixtures: hand-built IR tasks, so that back-end stages are tested on their own."""

from __future__ import annotations

import atexit
import hashlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import settings
from llm_server import missing, running_server
from promptc import ir
from promptc.spec.answer_format import parse_answer_format
from promptc.strategies import strategy
from promptc.values import value_type

# In CI, property tests draw the same examples on every run, so that a red run points at a
# change and not at luck; locally they stay random, to keep finding new cases.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "specs"


def make_task(
    *,
    kind: str = "batch",
    batch_size: int = 3,
    n_items: int = 5,
    method: ir.SelectionMethod = "sequential",
    seed: int = 0,
    multi_field: bool = False,
    demos: int = 2,
    spec_dir: str | os.PathLike[str] = "/nonexistent-spec-dir",
    templates: Sequence[ir.TemplateRef] = (),
) -> ir.Task:
    """A small sentiment (or NLI, with ``multi_field``) task built directly as IR."""
    if multi_field:
        inputs = (ir.InputField("premise"), ir.InputField("hypothesis"))
        outputs = (
            ir.OutputField(
                "label", value_type("enum"), choices=("entailment", "neutral", "contradiction")
            ),
        )
        fmt = parse_answer_format("{label}")
        items = tuple(
            ir.Item(f"p{i}", i, {"premise": f"Premise number {i}.", "hypothesis": f"Claim {i}."})
            for i in range(n_items)
        )
        demo_list = [
            ir.Demo(
                {"premise": "A dog runs.", "hypothesis": "An animal moves."},
                {"label": "entailment"},
            ),
            ir.Demo(
                {"premise": "A cat sleeps.", "hypothesis": "The cat is running."},
                {"label": "contradiction"},
            ),
        ]
    else:
        inputs = (ir.InputField("question"),)
        outputs = (
            ir.OutputField("reasoning", value_type("text")),
            ir.OutputField("answer", value_type("number")),
        )
        fmt = parse_answer_format("{reasoning} The answer is {answer}.")
        items = tuple(
            ir.Item(f"q{i}", i, {"question": f"What is {i} plus {i}?"}) for i in range(n_items)
        )
        demo_list = [
            ir.Demo(
                {"question": "What is 2 plus 3?"}, {"reasoning": "2 + 3 = 5.", "answer": Decimal(5)}
            ),
            ir.Demo(
                {"question": "Half of 9?"}, {"reasoning": "9 / 2 = 4.5.", "answer": Decimal("4.5")}
            ),
        ]
    spec = ir.SourceFile(str(Path(spec_dir) / "task.yaml"), hashlib.sha256(b"x").hexdigest())
    return ir.Task(
        name="demo-task",
        description="A task built in a test.",
        instruction="Solve the task.",
        inputs=inputs,
        outputs=outputs,
        answer_format=fmt,
        demos=tuple(demo_list[:demos]),
        data=None,
        items=items,
        strategy=ir.StrategySpec(strategy(kind), batch_size, ir.Selection(method, seed)),
        model=ir.ModelConfig("test-model", temperature=0.0, max_tokens=256),
        templates=tuple(templates),
        spec=spec,
        spec_dir=str(spec_dir),
    )


@pytest.fixture
def task_factory() -> Callable[..., ir.Task]:
    return make_task


def pytest_runtest_setup(item: pytest.Item) -> None:
    """An ``llm`` test needs llama.cpp's server (xllamacpp) and the embedded model: it is
    skipped when one of them is absent, with a reason that says how to get it."""
    if item.get_closest_marker("llm") is not None and (reason := missing()) is not None:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def llm_base_url() -> Iterator[str]:
    """The base URL (``http://127.0.0.1:PORT/v1``) of the embedded llama.cpp server serving
    SmolLM2-135M-Instruct, shared by the session: started by the first test that asks for it,
    so that a run without such tests never pays for it, and stopped when the session ends."""
    reason = missing()
    if reason is not None:
        pytest.skip(reason)
    with running_server() as base_url:
        yield base_url


def pytest_unconfigure(config: pytest.Config) -> None:
    """Keeps pytest's summary the last thing a run prints.

    xgrammar's triton dependency reports nanobind "leaks" on stderr at interpreter exit, after
    the summary, where CI reads a run's closing lines. Every test has finished by now.
    """

    def silence_stderr() -> None:  # after pytest has restored the file descriptors it captured
        sys.stderr.flush()
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)

    atexit.register(silence_stderr)
