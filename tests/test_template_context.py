"""What templates see of the strategy: its name, as docs/templates.md lists them, so that a
spec's own template can branch on it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from promptc import ir
from promptc.render.context import task_context
from promptc.strategies import NAMES


@pytest.mark.parametrize("kind", NAMES)
def test_kind_is_the_strategy_name(kind: str, task_factory: Callable[..., ir.Task]) -> None:
    task = task_factory(kind=kind)
    context = task_context(task)
    assert context["kind"] == kind and isinstance(context["kind"], str)
