"""What the tests of the parser's two paths share: a GSM8K batch task of three, its canonical
output, and the check that the fast path, where it answers, reads as the slow path does."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from promptc.parse.fast import parse_fast
from promptc.parse.output import grammar_for, parse_output, parse_output_recover_slow
from promptc.parse.results import ItemResult
from promptc.parse.shape import request_shape
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


def fast_and_slow(out: str) -> tuple[list[ItemResult] | None, list[ItemResult]]:
    """The fast path's results for ``out`` (``None`` where it declines) and the slow path's."""
    fast = parse_fast(request_shape(TASK, REQUEST), grammar_for(TASK, 3, "batch"), out)
    return fast, parse_output_recover_slow(TASK, REQUEST, out)


def assert_paths_agree(out: str) -> list[ItemResult] | None:
    """The fast path declines or reads ``out`` as the slow path does; so does the whole
    parser. Returns the fast path's results."""
    fast, slow = fast_and_slow(out)
    if fast is not None:
        assert view(fast) == view(slow)
    assert view(parse_output(TASK, REQUEST, out)) == view(slow)
    return fast
