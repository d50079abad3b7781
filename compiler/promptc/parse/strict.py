"""Strict parsing: the whole output must match the grammar; where it does not, the item at which
the grammar stopped gets the diagnosis (output line:col, expected tokens, what was found).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from promptc import markers
from promptc.parse.fast import parse_fast, results_from_parsed
from promptc.parse.normalise import NormalisedText
from promptc.parse.results import FOUND_CHARS, ItemResult, Span
from promptc.parse.scan import MARKER_PATTERN
from promptc.parse.shape import RequestShape, is_multi_item

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
        return _strict_failure(shape, output, exc)
    return results_from_parsed(shape, output, items)


_EXPECTED_FOUND = re.compile(
    r"expected (?:one of )?(?P<expected>.*?), found (?P<found>.*)\Z", re.DOTALL
)


_TOKEN_START = re.compile(r"['\"]|a new line|end of|white space|the question|an? |[A-Za-z_]\w*: ")


def _error_parts(output: str, exc: Exception) -> tuple[int, tuple[str, ...]]:
    """Offset and expected tokens of a grammar error, from its attributes or its message."""
    offset = getattr(exc, "offset", None)
    if not isinstance(offset, int):
        offset = 0
        loc = getattr(exc, "location", None)
        if loc is not None and getattr(loc, "line", 0) > 0:
            starts = [0] + [m.end() for m in re.finditer("\n", output)]
            line = min(loc.line, len(starts))
            offset = starts[line - 1] + max(loc.col, 1) - 1
    offset = max(0, min(offset, len(output)))
    raw_expected = getattr(exc, "expected", None)
    if raw_expected:
        return offset, tuple(str(x) for x in raw_expected)
    m = _EXPECTED_FOUND.search(getattr(exc, "message", str(exc)))
    if m is None:
        return offset, ("an answer",)
    # "expected one of 'A[1]:', answer: a number such as 18, -3.5 or 1,234, found …": token
    # names may hold ", " themselves, so a piece starts a new token only if it looks like one.
    tokens: list[str] = []
    for piece in m.group("expected").split(", "):
        if tokens and not _TOKEN_START.match(piece):
            tokens[-1] += ", " + piece
        else:
            tokens.append(piece)
    return offset, tuple(tokens)


def _strict_failure(shape: RequestShape, output: str, exc: Exception) -> list[ItemResult]:
    text = NormalisedText(output)
    offset, expected = _error_parts(output, exc)
    found = found_at(output, offset)
    pos = text.position(offset)
    n = len(shape.item_ids)
    at, status = 1, "malformed"
    if is_multi_item(shape.kind):
        last: re.Match[str] | None = None
        for m in MARKER_PATTERN.finditer(output, 0, offset + 1):
            if 1 <= int(m.group("index")) <= n and m.start() <= offset:
                last = m
        if last is not None:
            at = int(last.group("index"))
            is_answer = last.group("prefix").casefold() == markers.ANSWER_PREFIX.casefold()
            if is_answer and "\n" in output[last.end() : offset] and at < n:
                at += 1  # the item's line ended well: the grammar stopped before the next one
        wanted = [
            j
            for j in range(at + 1, n + 1)
            if any(
                markers.answer_marker(j) in t or markers.question_marker(j) in t for t in expected
            )
        ]
        if wanted:
            at = wanted[0]  # the item's answer is complete; the next marker was due
        # Nothing for this item where it was due, only later items or the end: missing.
        rest = output[offset:].lstrip()
        nxt = MARKER_PATTERN.match(rest)
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


_VISIBLE = re.compile(r"\S")


def found_at(text: str, offset: int, end: int | None = None) -> str:
    """What stands at ``offset`` (in ``text[:end]``): the rest of its line (abbreviated), or
    a line end. Reads only up to the first visible character and :data:`FOUND_CHARS` more,
    never the rest of the text: recovery asks this once per answer of a long output."""
    stop = len(text) if end is None else end
    visible = _VISIBLE.search(text, offset, stop)
    if visible is None:
        return "end of output"
    if text.find("\n", offset, visible.start()) >= 0:
        return "a line break"
    line = text[offset : min(stop, offset + FOUND_CHARS + 1)].split("\n", 1)[0]
    return line if len(line) <= FOUND_CHARS else line[: FOUND_CHARS - 1] + "…"
