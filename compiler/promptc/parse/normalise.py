"""Output text with lookalike characters normalised, and positions mapped back to the original.

Full-width brackets and colons, unusual spaces, invisible characters and the minus sign read
as their ASCII forms so that markers and values are found; every span still points into the
text the model wrote.
"""

from __future__ import annotations

import re

from promptc.text import LineTable, Position, Span

# --------------------------------------------------------------------------------------------
# Text with lookalikes normalised, positions mapped back
# --------------------------------------------------------------------------------------------

_SPACES = (
    "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u202f\u205f\u3000"
)


_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"


_NEWLINES = "\r"


_EXTRA_MAP = {"\u3010": "[", "\u3011": "]", "\ufe55": ":", "\u2236": ":", "\u2212": "-"}


SPACE = " \t\n\f\v"  # white space of the normalised text (\r is gone)


EDGE_NOISE = " \t\n\r\f\v" + _INVISIBLE


LOOKALIKE = re.compile(
    "[\uff01-\uff5e" + _SPACES + _INVISIBLE + _NEWLINES + "".join(_EXTRA_MAP) + "]"
)


def _normal_char(ch: str) -> str:
    code = ord(ch)
    if 0xFF01 <= code <= 0xFF5E:  # full-width ASCII: Ａ［２］：
        return chr(code - 0xFEE0)
    if ch in _SPACES:
        return " "
    if ch in _INVISIBLE:
        return ""
    if ch in _NEWLINES:
        return "\n"
    return _EXTRA_MAP.get(ch, ch)


def normalise_lookalikes(text: str) -> tuple[str, list[int] | None]:
    """Replaces lookalikes by the ASCII they imitate; returns the text and, if it changed, the
    offset in ``text`` of every character of the result (plus one entry for the end).

    Full-width ASCII (``Ａ［２］：``) → ASCII; non-breaking and other Unicode spaces → space;
    zero-width characters and soft hyphens → removed; ``\\r\\n`` and ``\\r`` → ``\\n``; ``【】`` → ``[]``; ``∶`` and ``﹕`` → ``:``; ``−`` (minus sign) → ``-``.
    """
    if LOOKALIKE.search(text) is None:
        return text, None
    out: list[str] = []
    offsets: list[int] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\r" and i + 1 < n and text[i + 1] == "\n":
            out.append("\n")
            offsets.append(i)
            i += 2
            continue
        rep = _normal_char(ch)
        if rep:
            out.append(rep)
            offsets.append(i)
        i += 1
    offsets.append(n)
    return "".join(out), offsets


class NormalisedText:
    """An output, its normalised form, and positions in the original."""

    def __init__(self, original: str) -> None:
        self.original = original
        self.norm, self._offsets = normalise_lookalikes(original)
        self.lines = LineTable(original)

    def orig(self, norm_offset: int) -> int:
        if self._offsets is None:
            return norm_offset
        return self._offsets[max(0, min(norm_offset, len(self._offsets) - 1))]

    def orig_start(self, norm_offset: int) -> int:
        """Where a stretch that starts at ``norm_offset`` starts in the original: just after
        the previous kept character, so that removed characters (zero-width) before it belong
        to it, as they do for the grammar."""
        if self._offsets is None:
            return norm_offset
        if norm_offset <= 0:
            return 0
        prev = self._offsets[min(norm_offset, len(self._offsets) - 1) - 1]
        return prev + (2 if self.original.startswith("\r\n", prev) else 1)

    def position(self, orig_offset: int) -> Position:
        return self.lines.position(orig_offset)

    def span(self, norm_start: int, norm_end: int) -> Span:
        start = self.orig(norm_start)
        end = self.orig(norm_end) if norm_end > norm_start else start
        return Span(start, end, self.lines)
