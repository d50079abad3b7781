"""The marker scanner: every ``Q[i]:`` / ``A[i]:`` of an output, with the decoration around it.

Markers are recognised whatever markdown emphasis, headings, bullets or fences surround them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from promptc import markers
from promptc.ir import Markers

# --------------------------------------------------------------------------------------------
# The marker scanner
# --------------------------------------------------------------------------------------------


#: Markdown emphasis around a marker, white space inside it: each at most this long, so that a
#: marker is a bounded stretch around its ``[`` (:func:`iter_markers` finds it from there).
_EMPHASIS_MAX = 3
_BLANKS_MAX = 3
_INDEX_DIGITS = 9


@lru_cache(maxsize=32)
def marker_pattern(question: str, answer: str) -> re.Pattern[str]:
    """The scanner's regex for the task's question and answer prefixes (``Q``, ``A``)."""
    # Every part is a bounded repetition, so one attempt costs O(1) and a scan is linear.
    e = re.escape
    ws = f"[ \\t]{{0,{_BLANKS_MAX}}}"
    em = f"[*_]{{0,{_EMPHASIS_MAX}}}"
    # Longest first, so that of two prefixes where one starts the other the longer is tried.
    prefixes = "|".join(e(p) for p in sorted((question, answer), key=len, reverse=True))
    return re.compile(
        f"(?<![0-9A-Za-z])(?P<open>{em}){ws}(?P<prefix>{prefixes}){ws}{e(markers.INDEX_OPEN)}"
        f"{ws}(?P<index>[0-9]{{1,{_INDEX_DIGITS}}}){ws}{e(markers.INDEX_CLOSE)}(?P<mid>{em}){ws}"
        f"{e(markers.MARKER_END)}(?P<close>{em})",
        re.IGNORECASE,
    )


MARKER_PATTERN = marker_pattern(markers.QUESTION_PREFIX, markers.ANSWER_PREFIX)


# What may stand between a line start and a marker and still be decoration: a heading, a
# quote, a list bullet, emphasis.
_DECORATION = re.compile(r"[ \t#>*_\-+]*")


FENCE_LINE = re.compile(r"[ \t]*(```|~~~)[^\n`]*")


@dataclass
class Marker:
    kind: str  # its role: markers.QUESTION_PREFIX or markers.ANSWER_PREFIX, whatever its text
    index: int
    start: int  # where the marker (with its decoration) starts, normalised text
    end: int  # just after it
    cut: int  # where the previous body ends
    open: str
    close: str


#: Decoration before a marker is looked for this far back on its line.
_DECORATION_REACH = 16


def iter_markers(norm: str, marker_set: Markers = markers.DEFAULT) -> Iterator[Marker]:
    """Every question and answer marker of a normalised output (the task's prefixes, in any
    case), in order, found as it is asked for: the matches of :func:`marker_pattern`, as
    ``finditer`` would find them.

    Every marker holds one :data:`~promptc.markers.INDEX_OPEN` (``[``), at most a few
    characters from its start and its end: the scanner finds each ``[`` (a string search) and
    looks for a marker around it alone, rather than trying the pattern at every character of
    the output (three quarters of reading a markdown-heavy GSM8K output). The work per marker
    is bounded: its decoration is looked for at most :data:`_DECORATION_REACH` characters
    back, never back to a distant line start.
    """
    q_prefix = marker_set.question.casefold()
    pattern = marker_pattern(marker_set.question, marker_set.answer)
    # From a marker's start to its "[", and from its "[" to its end, at most.
    before = 2 * _BLANKS_MAX + _EMPHASIS_MAX + max(len(marker_set.question), len(marker_set.answer))
    after = len(markers.INDEX_OPEN + markers.INDEX_CLOSE + markers.MARKER_END) + _INDEX_DIGITS
    after += 3 * _BLANKS_MAX + 2 * _EMPHASIS_MAX
    pos = 0
    bracket = norm.find(markers.INDEX_OPEN)
    while bracket >= 0:
        # A marker that starts before this "[" holds it: the earlier ones hold no marker.
        m = pattern.search(norm, max(pos, bracket - before), bracket + after)
        if m is None or m.start() > bracket:
            bracket = norm.find(markers.INDEX_OPEN, bracket + 1)
            continue
        pos = m.end()
        bracket = norm.find(markers.INDEX_OPEN, pos)
        yield _marker(norm, m, q_prefix)


def _marker(norm: str, m: re.Match[str], q_prefix: str) -> Marker:
    """The marker of a match of :func:`marker_pattern`, with its decoration."""
    # Blanks before a marker are not part of it (emphasis is): the item's span starts at the
    # marker, as the regex path's does.
    start = m.start() if m.group("open") else m.start("prefix")
    lo = max(0, start - _DECORATION_REACH - 1)
    nl = norm.rfind("\n", lo, start)
    ls = nl + 1 if nl >= 0 else (0 if lo == 0 else -1)  # -1: the line starts further back
    cut = start
    if ls >= 0 and start - ls <= _DECORATION_REACH and _DECORATION.fullmatch(norm, ls, start):
        cut = ls
    prefix, index, opening, mid, close = m.group("prefix", "index", "open", "mid", "close")
    return Marker(
        markers.QUESTION_PREFIX if prefix.casefold() == q_prefix else markers.ANSWER_PREFIX,
        int(index),
        start,
        m.end(),
        cut,
        opening,
        close or mid,
    )


def scan_markers(norm: str, marker_set: Markers = markers.DEFAULT) -> list[Marker]:
    """Every marker of a normalised output, in order."""
    return list(iter_markers(norm, marker_set))
