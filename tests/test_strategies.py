"""The strategies: singletons found by name, whatever copies or pickles them."""

from __future__ import annotations

import copy
import pickle

import pytest
from promptc.strategies import NAMES, STRATEGIES, Strategy, find_strategy, strategy


@pytest.mark.parametrize("kind", STRATEGIES.values(), ids=str)
def test_a_strategy_is_a_singleton_through_copies_and_pickles(kind: Strategy) -> None:
    assert copy.copy(kind) is kind and copy.deepcopy(kind) is kind
    assert pickle.loads(pickle.dumps(kind)) is kind


def test_strategies_are_found_by_name() -> None:
    assert NAMES == ("single", "few-shot", "batch", "auto-demo")
    for name, kind in STRATEGIES.items():
        assert str(kind) == kind.name == name
        assert strategy(name) is kind and strategy(kind) is kind and find_strategy(name) is kind
    assert find_strategy("fewshot") is None and find_strategy(["batch"]) is None
    with pytest.raises(KeyError, match="expected one of single, few-shot, batch, auto-demo"):
        strategy("fewshot")
