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
from promptc.text import public_url, url_problem

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


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://[::1", "invalid ipv6 url"),
        ("http://127.0.0.1:99999/v1", "port out of range 0-65535"),
        ("http://127.0.0.1:-1/v1", "port could not be cast to integer value as '-1'"),
        ("ftp://example.com/v1", "expected a URL starting http:// or https://"),
        ("http:///v1", "it names no host"),
    ],
)
def test_a_base_url_that_is_no_servers_is_a_usage_error(url: str, problem: str) -> None:
    # Refused when the options are made, naming the option: never a ValueError (exit 3)
    # from deep inside the HTTP client.
    assert url_problem(url) == problem
    with pytest.raises(UsageError) as e:
        RunOptions(base_url=url)
    assert e.value.code == "bad-url" and e.value.path == ("--base-url",)
    assert e.value.format().endswith(f"is not a server's URL: {problem}")
    assert url_problem("https://user:pw@api.example.com:8443/v1") is None
    assert public_url("http://user:pw@[::1/v1?k=1") == "http://[::1/v1"


def test_a_results_path_no_file_can_be_written_at_is_refused_before_sending(tmp_path: Path) -> None:
    # Said before anything is sent: the results were written last, after every answer was
    # paid for, and the error came as a bare OSError.
    (tmp_path / "afile").write_text("x", encoding="utf-8")
    for where, said in (
        (tmp_path, "is a folder"),
        (tmp_path / "nodir" / "r.jsonl", "is in no folder"),
        (tmp_path / "afile" / "r.jsonl", "is in no folder"),
    ):
        options = RunOptions(base_url="http://127.0.0.1:9/v1", parse=True, results_path=where)
        with pytest.raises(UsageError) as e:
            options.check_files(tmp_path / "b")
        assert e.value.code == "bad-results-path" and said in e.value.message
