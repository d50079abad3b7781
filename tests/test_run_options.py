"""RunOptions from Python: every field is checked when made, a wrong type or a non-finite
number named with what was expected (a NaN timeout failed every request; a string
concurrency raised a TypeError deep in the run)."""

from __future__ import annotations

import pytest
from promptc import RunOptions
from promptc.errors import UsageError


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"timeout": float("nan")}, "timeout nan is not a finite number"),
        ({"poll_interval": float("inf")}, "poll_interval inf is not a finite number"),
        ({"base_url": 5}, "base_url 5 is not a string or None"),
        ({"limit": True}, "limit True is not a whole number or None"),
        ({"concurrency": "4"}, "concurrency '4' is not a whole number"),
        ({"parse": 1}, "parse 1 is not true or false"),
    ],
)
def test_a_field_of_another_type_is_a_usage_error(fields: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError) as e:
        RunOptions(**fields)  # type: ignore[arg-type]
    assert e.value.message == message and e.value.code == "bad-run-option"


def test_the_defaults_and_paths_are_taken() -> None:
    from pathlib import Path

    RunOptions()
    RunOptions(timeout=5, cache_path=Path("c.sqlite"), limit=3, base_url="http://x/v1")
