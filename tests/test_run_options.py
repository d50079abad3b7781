"""RunOptions from Python: every field is checked when made, a wrong type or a non-finite
number named with what was expected (a NaN timeout failed every request; a string
concurrency raised a TypeError deep in the run)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import promptc
import pytest
from promptc import RunOptions
from promptc.errors import UsageError

SPECS = Path(__file__).resolve().parents[1] / "specs"


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


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: promptc.evaluate(SPECS / "sentiment.yaml", [], margin=-5),
            "margin is -5; expected accuracy points, over 0 and at most 100",
        ),
        (
            lambda: promptc.evaluate(SPECS / "sentiment.yaml", [], margin=float("nan")),
            "margin is nan; expected accuracy points, over 0 and at most 100",
        ),
        (
            lambda: promptc.evaluate(SPECS / "sentiment.yaml", [], limit=0),
            "limit is 0; expected a whole number of items, 1 or more",
        ),
        (
            lambda: promptc.evaluate(SPECS / "sentiment.yaml", [], limit=-3),
            "limit is -3; expected a whole number of items, 1 or more",
        ),
        (
            lambda: promptc.run_variants(SPECS / "sentiment.yaml", "nowhere", limit=True),
            "limit is True; expected a whole number of items, 1 or more",
        ),
    ],
    ids=["margin-negative", "margin-nan", "limit-0", "limit-negative", "limit-bool"],
)
def test_eval_options_from_python_are_checked_as_the_cli_checks_them(
    call: Callable[[], object], message: str
) -> None:
    """--margin and --limit refuse these; from Python, a negative margin worded a nonsense
    recommendation and limit=-3 cut the last three items off."""
    with pytest.raises(UsageError) as caught:
        call()
    assert (caught.value.message, caught.value.code) == (message, "bad-option")


@pytest.mark.parametrize("limit", [0, -3])
def test_a_limit_below_one_is_refused_as_run_limit_is(limit: int) -> None:
    """``run --limit 0`` sent nothing and said '0/0 requests answered'; eval refused it."""
    with pytest.raises(UsageError) as e:
        RunOptions(limit=limit)
    assert (e.value.message, e.value.code) == (
        f"limit must be at least 1, not {limit}",
        "bad-limit",
    )
