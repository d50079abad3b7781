"""Strict parsing: the whole output must match the grammar; where it does not, the item at which
the grammar stopped gets the diagnosis (output line:col, expected tokens, what was found).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from promptc import markers
from promptc.errors import OutputParseError
from promptc.ir import Markers
from promptc.parse.fast import parse_fast, results_from_parsed
from promptc.parse.normalise import NormalisedText
from promptc.parse.results import FOUND_CHARS, ItemResult
from promptc.parse.scan import marker_pattern
from promptc.parse.shape import RequestShape
from promptc.text import Span, excerpt

if TYPE_CHECKING:
    from promptc.grammar.answer import AnswerGrammar

# --- strict ---------------------------------------------------------------------------------


def parse_strict(shape: RequestShape, g: AnswerGrammar, output: str) -> list[ItemResult]:
    fast = parse_fast(shape, g, output)  # the same regex parse_strict tries first, read directly
    if fast is not None:
        return fast
    try:
        items = g.parse_strict(output)
    except Exception as exc:  # noqa: BLE001 - a mismatch, or any parser failure
        return _strict_failure(shape, output, exc, g.blueprint.markers)
    return results_from_parsed(shape, output, items, g.blueprint.question_prefixes)


def _error_parts(output: str, exc: Exception) -> tuple[int, tuple[str, ...]]:
    """Offset and expected tokens of a strict parse failure, from the error's own fields.

    Any other exception (a parser failure that is not a mismatch) is placed at the start.
    """
    if isinstance(exc, OutputParseError) and exc.offset is not None:
        offset = max(0, min(exc.offset, len(output)))
        return offset, exc.expected or ("an answer",)
    return 0, ("an answer",)


def _strict_failure(
    shape: RequestShape, output: str, exc: Exception, mk: Markers = markers.DEFAULT
) -> list[ItemResult]:
    text = NormalisedText(output)
    offset, expected = _error_parts(output, exc)
    found = excerpt(output, offset, FOUND_CHARS, end="end of output", quote=False)
    pos = text.position(offset)
    n = len(shape.item_ids)
    at, status = 1, "malformed"
    if not shape.kind.one_item:
        last: re.Match[str] | None = None
        pattern = marker_pattern(mk.question, mk.answer)
        for m in pattern.finditer(output, 0, offset + 1):
            if 1 <= int(m.group("index")) <= n and m.start() <= offset:
                last = m
        if last is not None:
            at = int(last.group("index"))
            is_answer = last.group("prefix").casefold() == mk.answer.casefold()
            if is_answer and "\n" in output[last.end() : offset] and at < n:
                at += 1  # the item's line ended well: the grammar stopped before the next one
        wanted = [
            j
            for j in range(at + 1, n + 1)
            if any(
                markers.answer_marker(j, mk) in t or markers.question_marker(j, mk) in t
                for t in expected
            )
        ]
        if wanted:
            at = wanted[0]  # the item's answer is complete; the next marker was due
        # Nothing for this item where it was due, only later items or the end: missing.
        rest = output[offset:].lstrip()
        nxt = pattern.match(rest)
        if (last is None or at != int(last.group("index"))) and (
            not rest or (nxt is not None and int(nxt.group("index")) > at)
        ):
            status = "missing"
    reason = f"expected {' or '.join(expected)}, found {found!r} at {pos}"
    results: list[ItemResult] = []
    for i, item_id in enumerate(shape.item_ids, 1):
        if i == at:
            results.append(
                ItemResult(
                    shape.id,
                    item_id,
                    i,
                    status,  # type: ignore[arg-type]
                    {},
                    Span(offset, offset, text.lines),
                    expected,
                    found,
                    f"strict: {reason}",
                )
            )
        else:
            results.append(
                ItemResult(
                    shape.id,
                    item_id,
                    i,
                    "malformed",
                    {},
                    None,
                    (),
                    None,
                    f"strict: output rejected at {pos} (item {at}); parse with mode recover to "
                    "keep well-formed items",
                )
            )
    return results
