"""Reading one answer body with the grammar: candidate readings (fences, emphasis and trailing
chatter cut away) tried in order until one parses.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from promptc.ir import Value
from promptc.parse.normalise import EDGE_NOISE, SPACE, UNICODE_SPACES, NormalisedText
from promptc.parse.results import FOUND_CHARS
from promptc.parse.scan import FENCE_LINE, Marker
from promptc.text import excerpt

if TYPE_CHECKING:
    from promptc.grammar.answer import AnswerGrammar

#: At most this many shorter readings (cut at line ends) of one answer body are tried.
MAX_CUTS = 16


#: Bodies longer than this are not cut into shorter readings (bounds work on huge outputs).
MAX_CUT_BODY = 20_000


# --------------------------------------------------------------------------------------------
# Reading one answer body
# --------------------------------------------------------------------------------------------


@dataclass
class Reading:
    """One answer body, read: values if well-formed, else the diagnosis of the full body."""

    values: dict[str, Value] | None
    start: int  # normalised offsets of the text that was read
    end: int
    expected: tuple[str, ...] = ()
    found: str | None = None
    error_at: int = 0  # normalised offset of the mismatch
    #: Read by the lenient form of the answer format, not the exact one.
    lenient: bool = False


def strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    """``text[start:end]`` without white space at either end, as offsets."""
    seg = text[start:end]
    inner = seg.strip(SPACE)
    if not inner:
        return start, start
    lead = len(seg) - len(seg.lstrip(SPACE))
    return start + lead, start + lead + len(inner)


def _candidates(
    text: NormalisedText, start: int, end: int, marker: Marker | None
) -> Iterator[tuple[int, int]]:
    """Readings of a body, best first: as is; without fences and emphasis; cut at line ends."""
    norm = text.norm
    s, e = strip_span(norm, start, end)
    yield s, e
    s, e = _strip_fences(norm, s, e)
    opening = marker.open if marker is not None and not marker.close else ""
    yield _trim(norm, s, e, opening)
    if e - s > MAX_CUT_BODY:
        return
    # Longest first: the answer proper is a prefix; chatter or a fence follows it.
    pos, cuts = e, 0
    while cuts < MAX_CUTS:
        nl = norm.rfind("\n", s, pos)
        if nl < 0:
            break
        cuts += 1
        pos = nl
        cs, ce = _trim(norm, s, nl, opening)
        if ce > cs:
            yield cs, ce


def _strip_fences(norm: str, s: int, e: int) -> tuple[int, int]:
    """Without fence lines (```` ``` ````, ``~~~``) at either end."""
    for _ in range(4):
        nl = norm.rfind("\n", s, e)
        last_start = nl + 1 if nl >= 0 else s
        if not FENCE_LINE.fullmatch(norm, last_start, e):
            break
        s, e = strip_span(norm, s, last_start)
    for _ in range(4):
        nl = norm.find("\n", s, e)
        first_end = nl if nl >= 0 else e
        if not FENCE_LINE.fullmatch(norm, s, first_end):
            break
        s, e = strip_span(norm, first_end, e)
    return s, e


_EMPHASIS = re.compile(r"[*_]{1,3}")


_VISIBLE = re.compile(r"\S")


_STRONG = re.compile(r"\*\*|__")


def _trim(norm: str, s: int, e: int, opening: str) -> tuple[int, int]:
    """Whitespace, the emphasis that closes an opening one before the marker (``**A[2]: x**``),
    and emphasis wrapping the whole answer (``A[2]: **x**``)."""
    s, e = strip_span(norm, s, e)
    if opening and norm.endswith(opening, s, e):
        s, e = strip_span(norm, s, e - len(opening))
    m = _EMPHASIS.match(norm, s, e)
    if m is not None and e - s > 2 * len(m.group()) and norm.endswith(m.group(), s, e):
        s, e = strip_span(norm, m.end(), e - len(m.group()))
    return s, e


class AnswerReader:
    """Reads answer bodies with a grammar, tolerating lookalikes and never raising."""

    def __init__(self, grammar: AnswerGrammar, prefix_ok: bool = False) -> None:
        self.grammar = grammar
        # When the format ends with literal text ("… The answer is {answer}."), an answer
        # followed by chatter on its own line can still be told apart: read the longest
        # prefix of the body that is an answer. (Not when it ends with a field: "7 apples"
        # is not the number 7.)
        # The answer regex also screens candidate readings: only the first reading of a body
        # is diagnosed (the grammar's diagnosis tries every split, which is costly).
        self.body: re.Pattern[str] | None = None
        try:
            self.body = re.compile(grammar.answer_regex)
        except (re.error, AttributeError, TypeError):
            self.body = None
        self.prefix = self.body if prefix_ok else None
        self._tail: tuple[NormalisedText, int] | None = None

    def parse(self, body: str) -> dict[str, Value]:
        return dict(self.grammar.parse_answer(body))

    def read(
        self,
        text: NormalisedText,
        start: int,
        end: int,
        marker: Marker | None,
        diagnose: bool = True,
    ) -> Reading:
        """The first well-formed reading of a body, else the diagnosis of its first reading
        (only screened, not diagnosed, when ``diagnose`` is false)."""
        first: Reading | None = None
        tried: dict[tuple[int, int], None] = {}  # in the order tried, best first
        for s, e in _candidates(text, start, end, marker):
            if (s, e) in tried:
                continue
            tried[s, e] = None
            reading = self._read_one(text, s, e, diagnose=diagnose and first is None)
            if reading.values is not None:
                return reading
            if first is None:
                first = reading
        assert first is not None
        # What models write beside the exact format (the final period left out, the answer on
        # the line after its literal, a unit after a number): read leniently, on the same
        # candidate readings (so the body stays the one of this marker), before an exact
        # prefix of the body, which would read "... the answer is 12. No: the answer is 27"
        # as 12.
        for s, e in tried:
            lenient = self._read_lenient(text, s, e)
            if lenient is not None:
                return lenient
        if self.prefix is not None:
            s0, e0 = strip_span(text.norm, start, end)
            if not self.grammar.kind.one_item:  # one line per answer
                nl = text.norm.find("\n", s0, e0)
                e0 = nl if nl >= 0 else e0
            m = self.prefix.match(text.norm, s0, e0)
            if m is not None and m.end() > s0:
                reading = self._read_one(text, s0, m.end(), diagnose=False)
                if reading.values is not None:
                    return reading
        return first

    def _as_written(
        self, text: NormalisedText, s: int, e: int, values: dict[str, Value]
    ) -> dict[str, Value]:
        """``values`` read from the normalised body ``norm[s:e]``, with each text value sliced
        from the original instead (as the fast path does): a text value keeps the model's own
        characters, whichever form of the body was read."""
        texts = [f.name for f in self.grammar.fields if f.type.free_text]
        if not texts or self.body is None:
            return values
        m = self.body.fullmatch(text.norm, s, e)
        if m is None:
            return values
        out = dict(values)
        for name in texts:
            a, b = m.span(name)
            if b > a:
                out[name] = text.original[text.orig(a) : text.orig(b - 1) + 1]
        return out

    def _trim_spaces(self, values: dict[str, Value]) -> dict[str, Value]:
        """``values`` with Unicode spaces stripped from the edges of its text values."""
        out = dict(values)
        for f in self.grammar.fields:
            v = out.get(f.name)
            if f.type.free_text and isinstance(v, str):
                out[f.name] = v.strip(UNICODE_SPACES)
        return out

    def _read_lenient(self, text: NormalisedText, s: int, e: int) -> Reading | None:
        """One candidate reading by the lenient answer regex, as written then normalised."""
        lenient = getattr(self.grammar, "parse_answer_lenient", None)
        if lenient is None:
            return None
        raw = text.original[text.orig_start(s) : text.orig(e)].strip(EDGE_NOISE)
        for body in (raw, text.norm[s:e]) if raw != text.norm[s:e] else (raw,):
            values = lenient(body)
            if values is not None:
                return Reading(values, s, e, lenient=True)
        return None

    def _read_one(self, text: NormalisedText, s: int, e: int, diagnose: bool = True) -> Reading:
        # As written first (keeps the model's own characters in text values); then, if the
        # output had lookalikes, normalised.
        o_s, o_e = text.orig_start(s), text.orig(e)
        # Zero-width characters at the edges of an answer are noise, like white space.
        raw = text.original[o_s:o_e].strip(EDGE_NOISE)
        got = self._try(raw, diagnose)
        if isinstance(got, dict) and raw != text.norm[s:e]:
            # A Unicode space at a text value's edge is a space, as in the normalised form
            # (and on the fast path): not part of the value.
            got = self._trim_spaces(got)
        if not isinstance(got, dict) and raw != text.norm[s:e]:
            got = self._try(text.norm[s:e], diagnose)
            if isinstance(got, dict):
                got = self._as_written(text, s, e, got)
        if not isinstance(got, dict) and ("**" in raw or "__" in raw):
            # Emphasis inside the answer ("The answer is **18**."): read it without.
            plain = _STRONG.sub("", text.norm[s:e])
            again = self._try(plain, diagnose=False)
            if isinstance(again, dict):
                got = again
        if isinstance(got, dict):
            return Reading(got, s, e)
        if not diagnose:  # only screened: nobody reads why it failed (an extra, a later cut)
            return Reading(None, s, e, error_at=s)
        offset, expected = got
        at = min(s + offset, e)
        # Bounded by the body (never the rest of the output): this runs for every answer.
        if _VISIBLE.search(text.norm, at, e) is not None:
            found = excerpt(
                text.original,
                text.orig(at),
                FOUND_CHARS,
                end="end of output",
                quote=False,
                stop=text.orig(e),
            )
        elif e < self._visible_end(text):
            found = "end of the answer"
        else:
            found = "end of output"
        return Reading(None, s, e, expected, found, at)

    def _visible_end(self, text: NormalisedText) -> int:
        """Where the last visible character of the output ends (computed once per output)."""
        if self._tail is None or self._tail[0] is not text:
            self._tail = (text, len(text.norm.rstrip()))
        return self._tail[1]

    def _try(
        self, body: str, diagnose: bool = True
    ) -> dict[str, Value] | tuple[int, tuple[str, ...]]:
        if not diagnose and self.body is not None and self.body.fullmatch(body) is None:
            return 0, ()
        try:
            return self.parse(body)
        except RecursionError:
            return 0, ("an answer",)
        except Exception as exc:  # noqa: BLE001 - the parser must never raise on model text
            offset = getattr(exc, "offset", 0)
            if not isinstance(offset, int) or not 0 <= offset <= len(body):
                offset = 0
            expected = getattr(exc, "expected", None)
            return offset, tuple(str(x) for x in expected) if expected else ("an answer",)
