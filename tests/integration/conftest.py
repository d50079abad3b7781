"""Fixtures of the real-model integration tests: one llama.cpp server for the session, and
the example specs built into a scratch folder.

The server (SmolLM2-135M-Instruct, via tests/llm_server.py) starts on first use only, so that
a run without ``-m llm`` tests never pays for it. Tests that need it are marked
``@pytest.mark.llm`` and skipped only when llama_cpp is not importable (install the stack
with ``bash scripts/install-llm.sh``).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
SPECS = REPO / "specs"
sys.path.insert(0, str(TESTS))  # for llm_server

from llm_server import running_server

try:
    import llama_cpp  # noqa: F401

    LLAMA_IMPORT_ERROR: str | None = None
except Exception as exc:  # noqa: BLE001 - ImportError, or OSError if libllama fails to load
    LLAMA_IMPORT_ERROR = f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="session")
def llm_base_url() -> Iterator[str]:
    """The base URL (``http://127.0.0.1:PORT/v1``) of a SmolLM2 server shared by the session."""
    if LLAMA_IMPORT_ERROR is not None:
        pytest.skip(f"llama_cpp is not importable ({LLAMA_IMPORT_ERROR})")
    with running_server() as base_url:
        yield base_url


@pytest.fixture(scope="session")
def spec_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of specs/ (specs and data) in a scratch folder. Builds made next to it can find
    their spec again from the manifest, which is what ``--parse`` needs."""
    if not (SPECS / "math.yaml").is_file():
        pytest.skip("the example specs are not in specs/ yet")
    root = tmp_path_factory.mktemp("work")
    shutil.copytree(SPECS, root / "specs")
    return root / "specs"


def _build_spec(
    spec: Path, out: Path, overrides: Mapping[tuple[str, ...], object] | None = None
) -> Path:
    from promptc.build import build
    from promptc.spec.lower import compile_spec

    task = compile_spec(spec, overrides=dict(overrides) if overrides else None)
    build(task, out)
    return out


@pytest.fixture(scope="session")
def build_spec() -> Callable[..., Path]:
    """``build_spec(spec, out, overrides)`` compiles a spec (with key-path overrides, as
    ``promptc build --strategy/--batch-size`` does) and builds it into ``out``."""
    return _build_spec


@pytest.fixture
def sentiment4(tmp_path: Path, build_spec: Callable[..., Path]) -> Path:
    """specs/sentiment.yaml as a batch of 4 (20 items: 5 requests), built in ``tmp_path``."""
    overrides = {("strategy", "kind"): "batch", ("strategy", "batch_size"): 4}
    return build_spec(SPECS / "sentiment.yaml", tmp_path / "build", overrides)
