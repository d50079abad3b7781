"""What the tests of the parser's two paths share: a GSM8K batch task of three, its canonical
output, the recover scanner alone, and the check that the grammar's regex, where it reads an
output, reads it as the scanner does."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from promptc.ir import Task
from promptc.parse.output import check_options, grammar_for, parse_output
from promptc.parse.recover import parse_recover
from promptc.parse.results import ItemResult
from promptc.parse.shape import request_shape
from promptc.parse.strict import item_results, match_output
from promptc.spec.lower import compile_spec

#: A batch task of 3 in the format "{reasoning} The answer is {answer}." (fixtures do not mix
#: with hypothesis' examples).
TASK = compile_spec(
    Path(__file__).resolve().parents[1] / "specs" / "gsm8k.yaml",
    overrides={("strategy", "batch_size"): 3},
)

OUTPUT = (
    "A[1]: She had 48 - 24 = 24 clips left, so 48 + 24 = 72 in all. The answer is 72.\n"
    "A[2]: 50 minutes is 50 / 60 of an hour, 12 * 50 / 60 = 10. The answer is 10.\n"
    "A[3]: She has 100 / 2 = 50 and needs 100 - 50 - 15 - 30 = 5 more. The answer is -5."
)

REQUEST = {"id": "r0001", "kind": "batch", "item_ids": ["q0", "q1", "q2"]}


def view(results: Sequence[ItemResult]) -> list[object]:
    """What both paths must agree on: statuses, values and spans."""
    return [
        (r.status, r.values, r.span.start if r.span else None, r.span.end if r.span else None)
        for r in results
    ]


def scanner(task: Task, request: object, out: str) -> list[ItemResult]:
    """``recover`` mode without the grammar's regex: the marker scanner alone, then the
    per-item option check that :func:`parse_output` makes too."""
    shape = request_shape(task, request)
    g = grammar_for(task, len(shape.item_ids), shape.kind)
    return check_options(task, parse_recover(shape, g, out), "recover")


def regex_path(task: Task, request: object, out: str) -> list[ItemResult] | None:
    """The results of the grammar's regex for ``out`` (``None`` where it does not read it)."""
    shape = request_shape(task, request)
    g = grammar_for(task, len(shape.item_ids), shape.kind)
    items = match_output(g, out)
    return None if items is None else item_results(shape, g, items)


def fast_and_slow(out: str) -> tuple[list[ItemResult] | None, list[ItemResult]]:
    """The regex's results for ``out`` (``None`` where it does not read it) and the
    scanner's."""
    return regex_path(TASK, REQUEST, out), scanner(TASK, REQUEST, out)


def assert_paths_agree(out: str) -> list[ItemResult] | None:
    """The regex does not read ``out`` or reads it as the scanner does; so does the whole
    parser. Returns the regex's results."""
    fast, slow = fast_and_slow(out)
    if fast is not None:
        assert view(fast) == view(slow)
    assert view(parse_output(TASK, REQUEST, out)) == view(slow)
    return fast
