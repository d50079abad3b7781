"""Output text with lookalike characters normalised, and positions mapped back to the original.

Full-width brackets and colons, unusual spaces, invisible characters and the minus sign read
as their ASCII forms so that markers and values are found; every span still points into the
text the model wrote.
"""

from __future__ import annotations

import re
from functools import cached_property

from promptc.text import INVISIBLE, INVISIBLE_CHARS, ONE_TO_ONE, LineTable, Position, Span

# --------------------------------------------------------------------------------------------
# Text with lookalikes normalised, positions mapped back
# --------------------------------------------------------------------------------------------

#: The lookalikes that change the length of the text: removed, or two characters read as one.
RESHAPING = re.compile("[" + INVISIBLE_CHARS + "]|\\r\\n?")


_ASCII_BYTES = bytes(range(128))
_ONE_TO_ONE_SET = frozenset(map(chr, ONE_TO_ONE))


def normalise_lookalikes(text: str) -> tuple[str, list[int] | None]:
    """Replaces lookalikes by the ASCII they imitate; returns the text and, if its length
    changed, the offset in ``text`` of every character of the result (plus one entry for the
    end). ``None`` means every offset is its own: the text is unchanged, or changed one
    character for one.

    Full-width ASCII (``Ａ［２］：``) → ASCII; non-breaking and other Unicode spaces → space;
    ``【】`` → ``[]``; ``∶`` and ``﹕`` → ``:``; ``−`` (minus sign) → ``-``; U+2028, U+2029
    and U+0085 (line separators) → ``\n``: one for one, by
    :data:`ONE_TO_ONE`. Zero-width characters and soft hyphens → removed; ``\r\n`` and
    ``\r`` → ``\n``: these need the offset table.
    """
    if text.isascii() and "\r" not in text:
        return text, None
    # The characters that are not ASCII, in order: encoding and deleting the ASCII bytes are
    # two C loops at about a nanosecond a byte, several times faster than a regex search for
    # a class of characters on a 2,000-character output with a few non-ASCII characters.
    rest = text.encode("utf-8", "surrogatepass").translate(None, _ASCII_BYTES)
    others = rest.decode("utf-8", "surrogatepass")
    # ``str.translate`` looks up every character in the table, about 4 ns each; a text holds
    # few distinct lookalikes, and ``str.replace`` of each (a C search) is several times
    # faster. Every lookalike maps to ASCII, which none maps from: the order does not matter.
    norm = text
    for ch in _ONE_TO_ONE_SET.intersection(others):
        norm = norm.replace(ch, ONE_TO_ONE[ord(ch)])
    if "\r" not in text and INVISIBLE.isdisjoint(others):
        return norm, None
    out: list[str] = []
    offsets: list[int] = []
    pos = 0
    for m in RESHAPING.finditer(norm):
        a = m.start()
        out.append(norm[pos:a])
        offsets.extend(range(pos, a))
        if m.group()[0] == "\r":  # \r\n or \r: a line break; the others are removed
            out.append("\n")
            offsets.append(a)
        pos = m.end()
    out.append(norm[pos:])
    offsets.extend(range(pos, len(norm)))
    offsets.append(len(text))
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

    @cached_property
    def visible_end(self) -> int:
        """Where the last visible character of the normalised text ends."""
        return len(self.norm.rstrip())

    def span(self, norm_start: int, norm_end: int) -> Span:
        start = self.orig(norm_start)
        end = self.orig(norm_end) if norm_end > norm_start else start
        return Span(start, end, self.lines)
