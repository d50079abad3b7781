"""The marker scanner: every ``Q[i]:`` / ``A[i]:`` of an output, with the decoration around it.

Markers are recognised whatever markdown emphasis, headings, bullets or fences surround them.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass

from promptc import markers

# --------------------------------------------------------------------------------------------
# The marker scanner
# --------------------------------------------------------------------------------------------


def _build_marker_regex() -> re.Pattern[str]:
    # Every part is a bounded repetition, so one attempt costs O(1) and a scan is linear.
    e = re.escape
    ws = "[ \\t]{0,3}"
    em = "[*_]{0,3}"
    prefixes = "|".join(e(p) for p in (markers.QUESTION_PREFIX, markers.ANSWER_PREFIX))
    return re.compile(
        f"(?<![0-9A-Za-z])(?P<open>{em}){ws}(?P<prefix>{prefixes}){ws}{e(markers.INDEX_OPEN)}"
        f"{ws}(?P<index>[0-9]{{1,9}}){ws}{e(markers.INDEX_CLOSE)}(?P<mid>{em}){ws}"
        f"{e(markers.MARKER_END)}(?P<close>{em})",
        re.IGNORECASE,
    )


MARKER_PATTERN = _build_marker_regex()


# What may stand between a line start and a marker and still be decoration: a heading, a
# quote, a list bullet, emphasis.
_DECORATION = re.compile(r"[ \t#>*_\-+]*")


FENCE_LINE = re.compile(r"[ \t]*(```|~~~)[^\n`]*")


@dataclass
class Marker:
    kind: str  # markers.QUESTION_PREFIX or markers.ANSWER_PREFIX
    index: int
    start: int  # where the marker (with its decoration) starts, normalised text
    end: int  # just after it
    cut: int  # where the previous body ends
    open: str
    close: str


def scan_markers(norm: str) -> list[Marker]:
    line_starts = [0] + [m.end() for m in re.finditer("\n", norm)]
    found: list[Marker] = []
    q_prefix = markers.QUESTION_PREFIX.casefold()
    for m in MARKER_PATTERN.finditer(norm):
        start = m.start()
        ls = line_starts[bisect_right(line_starts, start) - 1]
        cut = start
        if start - ls <= 16 and _DECORATION.fullmatch(norm, ls, start):
            cut = ls
        kind = (
            markers.QUESTION_PREFIX
            if m.group("prefix").casefold() == q_prefix
            else markers.ANSWER_PREFIX
        )
        found.append(
            Marker(
                kind,
                int(m.group("index")),
                start,
                m.end(),
                cut,
                m.group("open"),
                m.group("close") or m.group("mid"),
            )
        )
    return found
