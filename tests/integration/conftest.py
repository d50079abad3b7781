"""Fixtures of the integration tests: the example specs built into a scratch folder.

The real model's server is tests/conftest.py's session fixture ``llm_base_url`` (the embedded
llama.cpp server, started on first use only); tests that need it are marked
``@pytest.mark.llm``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

SPECS = Path(__file__).resolve().parents[2] / "specs"


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
