"""Reading one answer body with the grammar: candidate readings (fences, emphasis and trailing
chatter cut away) tried in order until one parses; when none does, the diagnosis of the first.

:class:`AnswerReader` reads a body exactly or leniently (:meth:`~AnswerReader.match`, by the
grammar's :attr:`~promptc.grammar.answer.AnswerGrammar.answer_regex` or its lenient form) or
says why it is no answer (:meth:`~AnswerReader.diagnose`), and reads the bodies the marker
scanner finds (:meth:`~AnswerReader.read`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from promptc.grammar.answer import AnswerGrammar
from promptc.grammar.diagnose import diagnose
from promptc.grammar.items import AnswerMismatch
from promptc.ir import Value
from promptc.parse.normalise import NormalisedText
from promptc.parse.results import FOUND_CHARS
from promptc.parse.scan import FENCE_LINE, Marker
from promptc.text import EDGE_NOISE, SPACE, UNICODE_SPACES, excerpt
from promptc.values import ValueOutOfBounds

#: At most this many shorter readings (cut at line ends) of one answer body are tried.
MAX_CUTS = 16


#: Bodies longer than this are not cut into shorter readings (bounds work on huge outputs).
MAX_CUT_BODY = 20_000


#: The longest answer (line, or whole ``single`` output) read in a format with two text
#: fields: telling where one free text ends and the next begins costs time quadratic in its
#: length, so longer answers are refused rather than left to run for minutes.
MAX_SPLIT_CHARS = 20_000


def splits_text(grammar: AnswerGrammar) -> bool:
    """Whether a text field of ``grammar`` is split from a later one (lazily), where matching
    an answer costs time quadratic in its length (:data:`MAX_SPLIT_CHARS`)."""
    return sum(1 for f in grammar.fields if f.type.free_text) >= 2


#: The most work telling one answer's text fields apart may take: its length times the ways
#: the separators it holds can be shared among k text fields (``comb(m, k - 1)`` for m
#: separators). Matching backtracks through each way: about 15 million units a second
#: (measured: 2 fields, 19,824 characters holding 6,600 separators, 8.9 s), so one answer
#: stays within about 0.15 s; an answer whose separators stand only between its fields
#: (m = k - 1) is one way, whatever its length up to :data:`MAX_SPLIT_CHARS`.
MAX_SPLIT_WORK = 2_000_000


@dataclass(frozen=True)
class SplitBound:
    """What splitting an answer between its text fields may cost, for one grammar.

    Attributes:
        fields: How many text fields the answer format has.
        separators: The literal texts between its first and its last text field (stripped,
            case-folded), which an answer may also hold inside a text value.
    """

    fields: int
    separators: tuple[str, ...]

    @classmethod
    def of(cls, grammar: AnswerGrammar) -> SplitBound:
        parts = grammar.blueprint.parts
        texts = [k for k, p in enumerate(parts) if p.field is not None and p.field.type.free_text]
        between = parts[texts[0] : texts[-1]] if len(texts) >= 2 else ()
        literals = {(p.text.strip() or p.text).casefold() for p in between if p.field is None}
        return cls(len(texts), tuple(sorted(literals)))

    def refusal(self, answer: str) -> tuple[str, str] | None:
        """What an answer too costly to split must be, and what it is; ``None`` when it can
        be split (always, with fewer than two text fields)."""
        if self.fields < 2:
            return None
        if len(answer) > MAX_SPLIT_CHARS:
            return (
                f"an answer of at most {MAX_SPLIT_CHARS:,} characters",
                f"{len(answer):,} characters",
            )
        folded = answer.casefold()
        held = sum(folded.count(s) for s in self.separators if s)
        if len(answer) * math.comb(held, self.fields - 1) <= MAX_SPLIT_WORK:
            return None
        shown = " or ".join(repr(s) for s in self.separators)
        return (
            f"an answer whose {self.fields} text fields hold fewer {shown}",
            f"{held:,} of them in {len(answer):,} characters",
        )


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

#: Emphasis or code wrapping a run of text: ``*18*``, ``_18_``, ``***18***``, `` `18` ``
#: (never a ``*`` with a space after it, as in ``3 * 4``, nor ``_`` inside a word).
_WRAPPED = re.compile(r"(?<![\w*`])([*_`]{1,3})(?=\S)(.+?)(?<=\S)\1(?![\w*`])")


def _unemphasised(raw: str, norm: str) -> list[str]:
    """``norm`` without emphasis, the ways it may be read: bold and underline removed
    anywhere, then any emphasis or code that wraps a run of text unwrapped."""
    out = []
    if "**" in raw or "__" in raw:
        out.append(_STRONG.sub("", norm))
    if "*" in raw or "_" in raw or "`" in raw:
        unwrapped = _WRAPPED.sub(r"\2", norm)
        if unwrapped != norm and unwrapped not in out:
            out.append(unwrapped)
    return out


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
    """Reads answer bodies with a grammar, tolerating lookalikes and never raising.

    Build it with :func:`answer_reader` (one per grammar, kept).
    """

    def __init__(self, grammar: AnswerGrammar) -> None:
        self.grammar = grammar
        space = "[ \\t\\n\\r\\f\\v]*" if grammar.blueprint.multiline else "[ \\t]*"
        #: One answer body, as the answer format writes it (a named group per field).
        self.body = re.compile(grammar.answer_regex)
        self._exact = re.compile(space + grammar.answer_regex + space)
        self._lenient = re.compile(space + grammar.lenient_answer_regex + space)
        self._texts = [f.name for f in grammar.fields if f.type.free_text]
        self._splits_text = splits_text(grammar)
        self.split = SplitBound.of(grammar)
        # When the format ends with literal text ("… The answer is {answer}."), an answer
        # followed by chatter on its own line can still be told apart: read the longest
        # prefix of the body that is an answer. (Not when it ends with a field: "7 apples"
        # is not the number 7.) The prefix ends where a word does: "3.14abc." or "1.2.3." is
        # a value that runs on past the literal, not the answer 3 or 1.2 and chatter.
        last = grammar.blueprint.parts[-1] if grammar.blueprint.parts else None
        ends_with_literal = last is not None and last.field is None and bool(last.text.strip())
        self.prefix = re.compile(grammar.answer_regex + r"(?!\w)") if ends_with_literal else None

    # ------------------------------------------------------------------ one body

    def match(self, body: str, lenient: bool = False) -> dict[str, Value] | None:
        """The values of ``body`` if it is an answer in the exact answer format (white space
        around it allowed), each normalised; else ``None``.

        ``lenient`` (the recovering parser's last resort): read by
        :attr:`~promptc.grammar.answer.AnswerGrammar.lenient_answer_regex`, which accepts the
        exact format and its departures; values are read from the text as written.
        """
        if len(body) > MAX_SPLIT_CHARS and lenient or self.split.refusal(body) is not None:
            return None
        m = (self._lenient if lenient else self._exact).fullmatch(body)
        return None if m is None else self._values(m)

    def diagnose(self, body: str) -> AnswerMismatch:
        """Why ``body`` is not an answer: the deepest point any reading of it reached
        (:func:`promptc.grammar.diagnose.diagnose`), or the value past its bounds.

        Reading is tried part by part, every possible length of each field; among the failed
        readings the one that got furthest *through the format* wins, then the one that got
        furthest in the text. (Lark's own Earley report is the furthest character, where a
        text field that can swallow everything makes the message useless.)
        """
        refused = self.split.refusal(body)
        if refused is not None:
            expected, found = refused
            return AnswerMismatch(min(len(body), MAX_SPLIT_CHARS), [expected], found)
        m = self._exact.fullmatch(body)
        if m is None:
            return AnswerMismatch(*diagnose(self.grammar.blueprint, body, lead_optional=True))
        for f in self.grammar.fields:
            try:
                f.type.read(f, m.group(f.name))
            except ValueOutOfBounds as e:  # the right form, past a bound: an answer still
                return AnswerMismatch(m.start(f.name), [f"{f.name}: {e.expected}"], e.found)
            except ValueError:  # the fragments and the reader disagree: a promptc bug
                break
        return AnswerMismatch(0, ["an answer"], excerpt(body, 0))

    def _values(self, m: re.Match[str]) -> dict[str, Value] | None:
        """The values of a match of one of the answer regexes (``None`` if one is refused)."""
        try:
            # A group that took no part (a leading free text the lenient reading lets a model
            # leave out) is an empty text.
            return {f.name: f.type.read(f, m.group(f.name) or "") for f in self.grammar.fields}
        except ValueError:
            return None

    # ------------------------------------------------------------------ bodies in an output

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
        tried: dict[tuple[int, int], None] = {}  # in the order tried, best first
        for s, e in _candidates(text, start, end, marker):
            if (s, e) in tried:
                continue
            tried[s, e] = None
            values = self._read_one(text, s, e)
            if values is not None:
                return Reading(values, s, e)
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
            m = None
            if self.split.refusal(text.norm[s0:e0]) is None:
                m = self.prefix.match(text.norm, s0, e0)
            if m is not None and m.end() > s0:
                values = self._read_one(text, s0, m.end())
                if values is not None:
                    return Reading(values, s0, m.end())
        s, e = next(iter(tried))
        return self._failure(text, s, e) if diagnose else Reading(None, s, e, error_at=s)

    def _read_one(self, text: NormalisedText, s: int, e: int) -> dict[str, Value] | None:
        """The values of one candidate reading ``norm[s:e]``, or ``None``."""
        # As written first (keeps the model's own characters in text values); then, if the
        # output had lookalikes, normalised.
        raw = _as_written(text, s, e)
        norm = text.norm[s:e]
        values = self.match(raw)
        if values is not None:
            # A Unicode space at a text value's edge is a space, as in the normalised form
            # (and on the regex path): not part of the value.
            return self._trim_spaces(values) if raw != norm else values
        if raw != norm:
            values = self.match(norm)
            if values is not None:
                return self._sliced(text, s, e, values)
        for plain in _unemphasised(raw, norm):
            # Emphasis inside the answer ("The answer is **18**.", "*18*"): read without.
            if self.split.refusal(plain) is None:
                m = self.body.fullmatch(plain)
                if m is not None:
                    return self._values(m)
        return None

    def _failure(self, text: NormalisedText, s: int, e: int) -> Reading:
        """The diagnosis of the reading ``norm[s:e]``, which is no answer: of the body as
        normalised where that differs from it as written."""
        raw = _as_written(text, s, e)
        norm = text.norm[s:e]
        body = norm if raw != norm else raw
        try:
            mismatch = self.diagnose(body)
            offset, expected = mismatch.offset, tuple(mismatch.expected)
        except RecursionError:  # the parser must never raise on model text
            offset, expected = 0, ()
        if not 0 <= offset <= len(body):
            offset = 0
        expected = expected or ("an answer",)
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
        elif e < text.visible_end:
            found = "end of the answer"
        else:
            found = "end of output"
        return Reading(None, s, e, expected, found, at)

    def _sliced(
        self, text: NormalisedText, s: int, e: int, values: dict[str, Value]
    ) -> dict[str, Value]:
        """``values`` read from the normalised body ``norm[s:e]``, with each text value sliced
        from the original instead (as the regex path does): a text value keeps the model's own
        characters, whichever form of the body was read."""
        if not self._texts:
            return values
        m = self.body.fullmatch(text.norm, s, e)
        if m is None:
            return values
        out = dict(values)
        for name in self._texts:
            a, b = m.span(name)
            if b > a:
                out[name] = text.original[text.orig(a) : text.orig(b - 1) + 1]
        return out

    def _trim_spaces(self, values: dict[str, Value]) -> dict[str, Value]:
        """``values`` with Unicode spaces stripped from the edges of its text values."""
        out = dict(values)
        for name in self._texts:
            v = out.get(name)
            if isinstance(v, str):
                out[name] = v.strip(UNICODE_SPACES)
        return out

    def _read_lenient(self, text: NormalisedText, s: int, e: int) -> Reading | None:
        """One candidate reading by the lenient answer regex, as written then normalised."""
        raw = _as_written(text, s, e)
        norm = text.norm[s:e]
        bodies = [raw, norm] if raw != norm else [raw]
        bodies += _unemphasised(raw, norm)  # "The answer is **18**", the final "." left out
        for body in bodies:
            values = self.match(body, lenient=True)
            if values is not None:
                return Reading(values, s, e, lenient=True)
        return None


def _as_written(text: NormalisedText, s: int, e: int) -> str:
    """The reading ``norm[s:e]`` as the model wrote it, without the white space and zero-width
    characters at its edges (noise there, as white space is)."""
    return text.original[text.orig_start(s) : text.orig(e)].strip(EDGE_NOISE)


@lru_cache(maxsize=64)
def answer_reader(grammar: AnswerGrammar) -> AnswerReader:
    """The reader of ``grammar``'s answers, made once per grammar: it compiles three regexes."""
    return AnswerReader(grammar)
