"""Model output → one result per item: ``ok | missing | malformed | duplicate | misaligned | extra``.

This is the last stage of the pipeline: it reads what a model wrote for one request, with the
answer grammar of that request's shape (:func:`promptc.grammar.answer.build_grammar`), and tells, item
by item, what the model answered and whether it can be trusted. It never attributes an answer
to the wrong item and never raises on any output string.

Two modes:

``strict``
    The whole output must match the grammar (the fast path's regex, then
    :meth:`AnswerGrammar.parse_strict`). Values are reported only when it does; otherwise the
    item where the grammar stopped gets the diagnosis (output line:col, expected tokens, what
    was found) and every other item says that strict mode rejected the output there.

``recover`` (default)
    Keeps every well-formed item of a partly broken output. A fast path first matches the whole
    output against the grammar's regular expression; when that fails, a marker scanner finds
    every ``Q[i]:`` / ``A[i]:`` (tolerating markdown emphasis, headings, fences, chatter,
    full-width lookalikes) and each answer body is read on its own with
    :meth:`AnswerGrammar.parse_answer`.

The rules, in full, are in ``docs/parsing.md``; the constants that tune them are below.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import string
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from itertools import chain, repeat
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from promptc import markers
from promptc.errors import OutputParseError
from promptc.ir import Item, Literal_, Request, StrategyKind, Task, Value

if TYPE_CHECKING:
    from promptc.grammar.answer import AnswerGrammar

Status = Literal["ok", "missing", "malformed", "duplicate", "misaligned", "extra"]
STATUSES: tuple[Status, ...] = ("ok", "missing", "malformed", "duplicate", "misaligned", "extra")
Mode = Literal["recover", "strict"]
MODES: tuple[Mode, ...] = ("recover", "strict")

#: A repeated ``Q[i]`` matches item i's question when the similarity (difflib ratio of the
#: normalised texts: casefolded, NFKC, punctuation stripped, whitespace collapsed) is at least
#: this. 0.9 tolerates a dropped word or a typo in a sentence, not a different question.
QUESTION_SIMILARITY = 0.9
#: Questions are compared on at most this many normalised characters (difflib is quadratic).
QUESTION_COMPARE_CHARS = 2000
#: ``found`` shows at most this many characters of what the output had.
FOUND_CHARS = 40
#: At most this many occurrences of one index are read; the rest count as repeats unread.
MAX_OCCURRENCES = 16
#: At most this many shorter readings (cut at line ends) of one answer body are tried.
MAX_CUTS = 16
#: Bodies longer than this are not cut into shorter readings (bounds work on huge outputs).
MAX_CUT_BODY = 20_000
#: At most this many leading lines of chatter are skipped for single/few-shot outputs.
MAX_SINGLE_SKIP = 8


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


# Results are NamedTuples (immutable and typed like frozen dataclasses, and about five times
# cheaper to create) and spans compute line:col only when read: the fast path makes 8 results
# per output for 10,000s of outputs, and this is most of its cost after the regex match.


class Position(NamedTuple):
    """A place in the original output: 1-based line and column (code points), 0-based offset."""

    line: int
    col: int
    offset: int

    def __str__(self) -> str:
        return f"{self.line}:{self.col}"


class Lines:
    """Offset → :class:`Position` in one output; the line table is built on first use.

    A line ends at ``\n``, ``\r\n`` or a lone ``\r`` (what an editor shows).
    """

    __slots__ = ("_starts", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._starts: list[int] | None = None

    def position(self, offset: int) -> Position:
        starts = self._starts
        if starts is None:
            ends = r"\r\n|\r|\n" if "\r" in self.text else "\n"
            starts = self._starts = [0] + [m.end() for m in re.finditer(ends, self.text)]
        line = bisect_right(starts, offset)
        return Position(line, offset - starts[line - 1] + 1, offset)


class Span:
    """A stretch of the output: ``start`` is its first character, ``end`` the position just
    after its last one.

    Spans hold offsets; lines and columns are worked out when read (from a line table shared
    by every span of the output), so that the fast path does not pay for positions per item.
    Two spans are equal when their offsets are.
    """

    __slots__ = ("_lines", "end_offset", "start_offset")

    def __init__(self, start_offset: int, end_offset: int, lines: Lines) -> None:
        self.start_offset = start_offset
        self.end_offset = end_offset
        self._lines = lines

    @property
    def start(self) -> Position:
        return self._lines.position(self.start_offset)

    @property
    def end(self) -> Position:
        return self._lines.position(self.end_offset)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Span):
            return NotImplemented
        return (self.start_offset, self.end_offset) == (other.start_offset, other.end_offset)

    def __hash__(self) -> int:
        return hash((self.start_offset, self.end_offset))

    def __repr__(self) -> str:
        return f"Span({self.start_offset}, {self.end_offset}: {self})"

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


class ItemResult(NamedTuple):
    """What the output says about one item of a request.

    Attributes:
        request_id: The request's id.
        item_id: The item's id; ``None`` for an ``extra`` answer (an index not in the request).
        index: The item's 1-based position in the request (the ``i`` of ``A[i]``).
        status: ``ok``, ``missing``, ``malformed``, ``duplicate``, ``misaligned`` or ``extra``.
        values: Output field → normalised value. Trust them when the status is ``ok``; for
            ``duplicate``, ``misaligned`` and ``extra`` they are what the first well-formed
            answer said, for inspection; empty otherwise.
        span: Where the item is in the output (from its first marker to the end of its
            answer); ``None`` when missing.
        expected: For a failure, what would have been accepted, as readable tokens.
        found: For a failure, the text found instead (abbreviated), or ``"end of output"``.
        message: One sentence for people.
    """

    request_id: str
    item_id: str | None
    index: int  # type: ignore[assignment]  # a field, shadowing tuple.index on purpose
    status: Status
    values: Mapping[str, Value] = MappingProxyType({})
    span: Span | None = None
    expected: tuple[str, ...] = ()
    found: str | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data. Numbers stay :class:`~decimal.Decimal`: write them with
        :func:`dumps` (exact JSON numbers), read them back with ``parse_float=Decimal``."""
        span = None
        if self.span is not None:
            span = {
                "start": {
                    "line": self.span.start.line,
                    "col": self.span.start.col,
                    "offset": self.span.start.offset,
                },
                "end": {
                    "line": self.span.end.line,
                    "col": self.span.end.col,
                    "offset": self.span.end.offset,
                },
            }
        return {
            "request_id": self.request_id,
            "item_id": self.item_id,
            "index": self.index,
            "status": self.status,
            "values": dict(self.values),
            "span": span,
            "expected": list(self.expected),
            "found": self.found,
            "message": self.message,
        }

    def to_json(self) -> str:
        """One JSON line (keys in a fixed order, Decimals as exact JSON numbers)."""
        return dumps(self.to_dict())


def dumps(data: object) -> str:
    """JSON text in which :class:`~decimal.Decimal` values are exact JSON numbers.

    ``Decimal("0.1")`` is written ``0.1`` (never ``0.1000000000000000055…``), in the canonical
    form of :func:`promptc.values.write_value` (no exponent). Everything else is written as
    :func:`json.dumps` writes it, with non-ASCII text kept as is.
    """
    if isinstance(data, Decimal):
        return _decimal_text(data)
    if isinstance(data, Mapping):
        return (
            "{"
            + ", ".join(
                f"{json.dumps(str(k), ensure_ascii=False)}: {dumps(v)}" for k, v in data.items()
            )
            + "}"
        )
    if isinstance(data, (list, tuple)):
        return "[" + ", ".join(dumps(v) for v in data) + "]"
    return json.dumps(data, ensure_ascii=False)


def _decimal_text(d: Decimal) -> str:
    if not d.is_finite():  # cannot come from read_value; JSON has no such numbers
        return json.dumps(str(d))
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def summarize(results: Iterable[ItemResult]) -> dict[str, int]:
    """Counts per status, every status present (zeros included), in :data:`STATUSES` order."""
    counts: dict[str, int] = {s: 0 for s in STATUSES}
    for r in results:
        counts[r.status] += 1
    return counts


# --------------------------------------------------------------------------------------------
# The request being parsed
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestShape:
    """What parsing needs to know of a request: its id, strategy, items and their questions.

    ``questions[k]`` is the text item k's ``Q[k+1]`` must repeat in ``auto-demo`` (see
    :func:`promptc.markers.question_text`); empty strings when unknown.
    """

    id: str
    kind: StrategyKind
    item_ids: tuple[str, ...]
    questions: tuple[str, ...]


_ITEMS: list[tuple[Task, dict[str, Item]]] = []


def items_by_id(task: Task) -> Mapping[str, Item]:
    """The task's items by id, made once per task (a build has one task and many requests)."""
    if _ITEMS and _ITEMS[0][0] is task:
        return _ITEMS[0][1]
    by_id = {it.id: it for it in task.items}
    _ITEMS[:] = [(task, by_id)]
    return by_id


def request_shape(task: Task, request: object) -> RequestShape:
    """Reads an :class:`~promptc.ir.Request`, a ``requests.jsonl`` line (a mapping) or any object
    with ``id``, ``kind`` and ``item_ids`` (and optionally ``questions``).

    Questions not given are looked up among ``task.items`` by item id.

    Raises:
        OutputParseError: The request lacks an id or item ids, or names an unknown strategy.
    """

    def get(name: str) -> Any:
        if isinstance(request, Mapping):
            return request.get(name)
        return getattr(request, name, None)

    rid = get("id") if get("id") is not None else get("request_id")
    kind = get("kind") or task.strategy.kind
    if isinstance(request, Request):
        item_ids: Any = request.batch.item_ids
    else:
        item_ids = get("item_ids")
        batch = get("batch")
        if item_ids is None and batch is not None:
            item_ids = getattr(batch, "item_ids", None)
    if rid is None or item_ids is None or isinstance(item_ids, (str, bytes)):
        raise OutputParseError(
            "a request needs an 'id' and a list of 'item_ids'", code="bad-request"
        )
    if kind not in ("single", "few-shot", "batch", "auto-demo"):
        raise OutputParseError(
            f"unknown strategy kind {kind!r} in request {rid}; expected single, few-shot, "
            "batch or auto-demo",
            code="bad-request",
        )
    ids = tuple(str(i) for i in item_ids)
    questions = get("questions")
    if questions is None:
        by_id = items_by_id(task)
        qs = []
        for i in ids:
            it = by_id.get(i)
            try:
                qs.append(markers.question_text(task.inputs, it.inputs) if it else "")
            except KeyError:
                qs.append("")
        questions = qs
    return RequestShape(str(rid), kind, ids, tuple(str(q) for q in questions))


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
_SPACE = " \t\n\f\v"  # white space of the normalised text (\r is gone)
_EDGE_NOISE = " \t\n\r\f\v" + _INVISIBLE
_LOOKALIKE = re.compile(
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
    if _LOOKALIKE.search(text) is None:
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


class _Text:
    """An output, its normalised form, and positions in the original."""

    def __init__(self, original: str) -> None:
        self.original = original
        self.norm, self._offsets = normalise_lookalikes(original)
        self.lines = Lines(original)

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


_MARKER = _build_marker_regex()
# What may stand between a line start and a marker and still be decoration: a heading, a
# quote, a list bullet, emphasis.
_DECORATION = re.compile(r"[ \t#>*_\-+]*")
_FENCE_LINE = re.compile(r"[ \t]*(```|~~~)[^\n`]*")


@dataclass
class _Marker:
    kind: str  # markers.QUESTION_PREFIX or markers.ANSWER_PREFIX
    index: int
    start: int  # where the marker (with its decoration) starts, normalised text
    end: int  # just after it
    cut: int  # where the previous body ends
    open: str
    close: str


def _scan(norm: str) -> list[_Marker]:
    line_starts = [0] + [m.end() for m in re.finditer("\n", norm)]
    found: list[_Marker] = []
    q_prefix = markers.QUESTION_PREFIX.casefold()
    for m in _MARKER.finditer(norm):
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
            _Marker(
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


# --------------------------------------------------------------------------------------------
# Reading one answer body
# --------------------------------------------------------------------------------------------


@dataclass
class _Reading:
    """One answer body, read: values if well-formed, else the diagnosis of the full body."""

    values: dict[str, Value] | None
    start: int  # normalised offsets of the text that was read
    end: int
    expected: tuple[str, ...] = ()
    found: str | None = None
    error_at: int = 0  # normalised offset of the mismatch


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    """``text[start:end]`` without white space at either end, as offsets."""
    seg = text[start:end]
    inner = seg.strip(_SPACE)
    if not inner:
        return start, start
    lead = len(seg) - len(seg.lstrip(_SPACE))
    return start + lead, start + lead + len(inner)


def _candidates(
    text: _Text, start: int, end: int, marker: _Marker | None
) -> Iterator[tuple[int, int]]:
    """Readings of a body, best first: as is; without fences and emphasis; cut at line ends."""
    norm = text.norm
    s, e = _strip_span(norm, start, end)
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
        if not _FENCE_LINE.fullmatch(norm, last_start, e):
            break
        s, e = _strip_span(norm, s, last_start)
    for _ in range(4):
        nl = norm.find("\n", s, e)
        first_end = nl if nl >= 0 else e
        if not _FENCE_LINE.fullmatch(norm, s, first_end):
            break
        s, e = _strip_span(norm, first_end, e)
    return s, e


_EMPHASIS = re.compile(r"[*_]{1,3}")
_STRONG = re.compile(r"\*\*|__")


def _trim(norm: str, s: int, e: int, opening: str) -> tuple[int, int]:
    """Whitespace, the emphasis that closes an opening one before the marker (``**A[2]: x**``),
    and emphasis wrapping the whole answer (``A[2]: **x**``)."""
    s, e = _strip_span(norm, s, e)
    if opening and norm.endswith(opening, s, e):
        s, e = _strip_span(norm, s, e - len(opening))
    m = _EMPHASIS.match(norm, s, e)
    if m is not None and e - s > 2 * len(m.group()) and norm.endswith(m.group(), s, e):
        s, e = _strip_span(norm, m.end(), e - len(m.group()))
    return s, e


class _Reader:
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

    def parse(self, body: str) -> dict[str, Value]:
        return dict(self.grammar.parse_answer(body))

    def read(
        self, text: _Text, start: int, end: int, marker: _Marker | None, diagnose: bool = True
    ) -> _Reading:
        """The first well-formed reading of a body, else the diagnosis of its first reading
        (only screened, not diagnosed, when ``diagnose`` is false)."""
        first: _Reading | None = None
        tried: set[tuple[int, int]] = set()
        for s, e in _candidates(text, start, end, marker):
            if (s, e) in tried:
                continue
            tried.add((s, e))
            reading = self._read_one(text, s, e, diagnose=diagnose and first is None)
            if reading.values is not None:
                return reading
            if first is None:
                first = reading
        assert first is not None
        if self.prefix is not None:
            s0, e0 = _strip_span(text.norm, start, end)
            if self.grammar.kind not in ("single", "few-shot"):  # one line per answer
                nl = text.norm.find("\n", s0, e0)
                e0 = nl if nl >= 0 else e0
            m = self.prefix.match(text.norm, s0, e0)
            if m is not None and m.end() > s0:
                reading = self._read_one(text, s0, m.end(), diagnose=False)
                if reading.values is not None:
                    return reading
        return first

    def _read_one(self, text: _Text, s: int, e: int, diagnose: bool = True) -> _Reading:
        # As written first (keeps the model's own characters in text values); then, if the
        # output had lookalikes, normalised.
        o_s, o_e = text.orig_start(s), text.orig(e)
        # Zero-width characters at the edges of an answer are noise, like white space.
        raw = text.original[o_s:o_e].strip(_EDGE_NOISE)
        got = self._try(raw, diagnose)
        if not isinstance(got, dict) and raw != text.norm[s:e]:
            got = self._try(text.norm[s:e], diagnose)
        if not isinstance(got, dict) and ("**" in raw or "__" in raw):
            # Emphasis inside the answer ("The answer is **18**."): read it without.
            plain = _STRONG.sub("", text.norm[s:e])
            again = self._try(plain, diagnose=False)
            if isinstance(again, dict):
                got = again
        if isinstance(got, dict):
            return _Reading(got, s, e)
        offset, expected = got
        at = min(s + offset, e)
        if text.norm[at:e].strip():
            found = _found_at(text.original[: text.orig(e)], text.orig(at))
        elif text.norm[e:].strip():
            found = "end of the answer"
        else:
            found = "end of output"
        return _Reading(None, s, e, expected, found, at)

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


# --------------------------------------------------------------------------------------------
# Question alignment (auto-demo)
# --------------------------------------------------------------------------------------------

_PUNCT = str.maketrans({c: " " for c in string.punctuation + "“”‘’«»…–—¿¡"})


def normalise_question(text: str) -> str:
    """The form questions are compared in: NFKC, casefolded, punctuation → space, whitespace
    collapsed."""
    t = unicodedata.normalize("NFKC", text).casefold().translate(_PUNCT)
    return " ".join(t.split())


def question_similarity(written: str, expected: str) -> float:
    """1.0 for the same question; difflib's ratio of the normalised texts otherwise."""
    if written == expected:
        return 1.0
    a, b = _compared(written), _compared(expected)
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def question_matches(written: str, expected: str) -> bool:
    """Whether ``question_similarity(written, expected) >= QUESTION_SIMILARITY``, skipping the
    full comparison when difflib's cheap upper bounds already fall short."""
    if written == expected:
        return True
    a, b = _compared(written), _compared(expected)
    if a == b:
        return True
    if not a or not b:
        return False
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return (
        sm.real_quick_ratio() >= QUESTION_SIMILARITY
        and sm.quick_ratio() >= QUESTION_SIMILARITY
        and sm.ratio() >= QUESTION_SIMILARITY
    )


def _compared(text: str) -> str:
    return normalise_question(text)[:QUESTION_COMPARE_CHARS]


# --------------------------------------------------------------------------------------------
# Grammar
# --------------------------------------------------------------------------------------------

_GRAMMARS: dict[tuple[int, int, str], tuple[Task, AnswerGrammar]] = {}


def grammar_for(task: Task, n_items: int, kind: StrategyKind) -> AnswerGrammar:
    """The answer grammar of a request shape, built once per (task, size, kind)."""
    key = (id(task), n_items, kind)
    hit = _GRAMMARS.get(key)
    if hit is not None and hit[0] is task:
        return hit[1]
    from promptc.grammar.answer import build_grammar

    g = build_grammar(task, n_items, kind)
    if len(_GRAMMARS) > 256:
        _GRAMMARS.clear()
    _GRAMMARS[key] = (task, g)
    return g


# --------------------------------------------------------------------------------------------
# parse_output
# --------------------------------------------------------------------------------------------


def parse_output(
    task: Task,
    request: object,
    output: str,
    *,
    mode: Mode = "recover",
    grammar: AnswerGrammar | None = None,
) -> list[ItemResult]:
    """Parses one request's model output into one result per item (plus ``extra`` results).

    Args:
        task: The compiled task (its outputs and answer format define the grammar; its items
            give the questions an Auto-Demo answer must repeat).
        request: An :class:`~promptc.ir.Request`, a ``requests.jsonl`` line, or any object with
            ``id``, ``kind`` and ``item_ids`` (see :func:`request_shape`).
        output: What the model wrote. Any string: this function never raises on it.
        mode: ``"recover"`` (default) or ``"strict"``.
        grammar: The request shape's grammar, if the caller has it already.

    Returns:
        The request's items in order, then ``extra`` answers by index.

    Raises:
        OutputParseError: ``request`` or ``mode`` is not usable (never for the output text).
    """
    if mode not in MODES:
        raise OutputParseError(
            f"unknown parse mode {mode!r}; expected recover or strict", code="bad-mode"
        )
    shape = request if isinstance(request, RequestShape) else request_shape(task, request)
    if not isinstance(output, str):
        raise OutputParseError(
            f"the output of request {shape.id} is {type(output).__name__}, expected text",
            code="bad-output",
        )
    g = grammar or grammar_for(task, len(shape.item_ids), shape.kind)
    if mode == "strict":
        return _strict(shape, g, output)
    fast = _fast(shape, g, output)
    if fast is not None:
        return fast
    return _recover(shape, g, output, _ends_with_literal(task))


def parse_output_recover_slow(
    task: Task, request: object, output: str, *, grammar: AnswerGrammar | None = None
) -> list[ItemResult]:
    """``recover`` mode without the fast path: the marker scanner alone (for tests and bench)."""
    shape = request if isinstance(request, RequestShape) else request_shape(task, request)
    g = grammar or grammar_for(task, len(shape.item_ids), shape.kind)
    return _recover(shape, g, output, _ends_with_literal(task))


def _ends_with_literal(task: Task) -> bool:
    segs = task.answer_format.segments
    return bool(segs) and isinstance(segs[-1], Literal_) and bool(segs[-1].text.strip())


# --- helpers shared by the paths ------------------------------------------------------------


def _is_multi(kind: str) -> bool:
    return kind in ("batch", "auto-demo")


def _align(shape: RequestShape, index: int, written: str | None) -> tuple[bool, str]:
    """Whether a repeated question matches item ``index``'s, and why not."""
    if shape.kind != "auto-demo" or written is None:
        return True, ""
    expected = shape.questions[index - 1] if index - 1 < len(shape.questions) else ""
    if not expected:
        return True, ""
    if question_matches(written, expected):
        return True, ""
    # Rounded down, so that a similarity just below the threshold never reads as equal to it.
    sim = math.floor(question_similarity(written, expected) * 100) / 100
    msg = (
        f"{_label(markers.QUESTION_PREFIX, index)} does not repeat item {index}'s question "
        f"(similarity {sim:.2f} < {QUESTION_SIMILARITY})"
    )
    for j, q in enumerate(shape.questions, 1):
        if j != index and q and question_matches(written, q):
            msg += f"; it is item {j}'s question"
            break
    return False, msg


def _label(prefix: str, index: int) -> str:
    """``A[3]`` (the marker without its colon), as messages name an answer or question."""
    return markers.marker(prefix, index)[: -len(markers.MARKER_END)]


def _item_id(shape: RequestShape, index: int) -> str | None:
    return shape.item_ids[index - 1] if 1 <= index <= len(shape.item_ids) else None


# --- fast path ------------------------------------------------------------------------------


def _fast(shape: RequestShape, g: AnswerGrammar, output: str) -> list[ItemResult] | None:
    """Results straight from the whole-output regex, or ``None`` if it does not match.

    Outputs with lookalike characters take the slow path, which normalises them (the grammar
    itself would read a non-breaking space after ``A[1]:`` as part of a text value).
    """
    if not (output.isascii() and "\r" not in output) and _LOOKALIKE.search(output) is not None:
        return None
    plan = _fast_plan(g)
    if plan is None:  # a grammar without the group layout below: its own regex parser
        try:
            return _from_parsed(shape, output, g.parse_strict_regex(output))
        except Exception:  # noqa: BLE001 - any mismatch means: take the slow path
            return None
    m = plan.pattern.fullmatch(output)
    if m is None:
        return None
    if plan.columns is None:
        return _fast_items(shape, plan, m, output)
    return _fast_columns(shape, plan.columns, m, output)


def _fast_items(
    shape: RequestShape, plan: _FastPlan, m: re.Match[str], output: str
) -> list[ItemResult] | None:
    """The fast path's results, one item at a time (for any group layout)."""
    regs = m.regs
    questions = shape.questions
    item_ids = shape.item_ids
    rid = shape.id
    results: list[ItemResult] = []
    lines = Lines(output)
    new = tuple.__new__  # the NamedTuples' own constructor, without its argument handling
    try:
        for index, q_group, start_group, end_group, fields in plan.items:
            values: dict[str, Value] = {}
            for name, group, read in fields:
                gs, ge = regs[group]
                values[name] = output[gs:ge] if read is None else read(output[gs:ge])
            status: Status = "ok"
            why = ""
            if q_group:
                qs, qe = regs[q_group]
                written = output[qs:qe].rstrip(_ASCII_WS)
                if index - 1 < len(questions) and written != questions[index - 1]:
                    aligned, why = _align(shape, index, written)
                    status = "ok" if aligned else "misaligned"
            results.append(
                new(
                    ItemResult,
                    (
                        rid,
                        item_ids[index - 1] if index <= len(item_ids) else None,
                        index,
                        status,
                        values,
                        Span(regs[start_group][0], regs[end_group][1], lines),
                        (),
                        None,
                        why,
                    ),
                )
            )
    except ValueError:  # a value the fragments accept and read_value refuses: read it slowly
        return None
    return results


def _fast_columns(
    shape: RequestShape, cols: _FastColumns, m: re.Match[str], output: str
) -> list[ItemResult] | None:
    """The fast path's results, read a column (one field of every item) at a time.

    Equal to :func:`_fast_items` on the same plan: every step is a C-level map over the items
    (``Match.group`` with many groups, ``map``, ``zip``), so that no Python code runs per item
    except a value reader that has no batch form and :class:`Span`'s ``__init__``.
    """
    n = cols.n
    group = m.group
    one = n == 1  # Match.group returns the bare value, not a 1-tuple, for one
    columns: list[Sequence[Value]] = []
    try:
        for col, read, is_number in cols.fields:
            texts: tuple[str | None, ...] = (group(col[0]),) if one else group(*col)
            if None in texts:  # a group that did not take part: its slice was ""
                texts = tuple("" if t is None else t for t in texts)
            if read is None:
                columns.append(texts)  # type: ignore[arg-type]
            elif is_number:
                columns.append(_read_numbers(read, texts))  # type: ignore[arg-type]
            else:
                columns.append(list(map(read, texts)))  # type: ignore[arg-type]
    except ValueError:  # a value the fragments accept and read_value refuses: read it slowly
        return None
    values = _dicts(cols.names, columns, n)
    statuses: Iterable[Status] = repeat("ok")
    whys: Iterable[str] = repeat("")
    if cols.questions:
        raw: tuple[str | None, ...] = (group(cols.questions[0]),) if one else group(*cols.questions)
        if None in raw:
            raw = tuple("" if t is None else t for t in raw)
        written = tuple(map(str.rstrip, raw, repeat(_ASCII_WS)))  # type: ignore[arg-type]
        expected = tuple(shape.questions[:n])
        if written[: len(expected)] != expected:
            statuses, whys = _fast_alignment(shape, written, expected)
    # Match.start/end per group, not Match.regs, which builds a pair for every group.
    spans = map(Span, map(m.start, cols.starts), map(m.end, cols.ends), repeat(Lines(output)))
    item_ids = chain(shape.item_ids[:n], repeat(None))
    new = tuple.__new__  # the NamedTuples' own constructor, without its argument handling
    return list(
        map(
            new,
            repeat(ItemResult),
            zip(
                repeat(shape.id),
                item_ids,
                cols.indexes,
                statuses,
                values,
                spans,
                repeat(()),
                repeat(None),
                whys,
            ),
        )
    )


def _fast_alignment(
    shape: RequestShape, written: Sequence[str], expected: Sequence[str]
) -> tuple[list[Status], list[str]]:
    """Status and message of each item whose repeated question is not its item's word for
    word (the others are ``ok``)."""
    statuses: list[Status] = ["ok"] * len(written)
    whys = [""] * len(written)
    for k, (w, q) in enumerate(zip(written, expected)):
        if w != q:
            aligned, whys[k] = _align(shape, k + 1, w)
            statuses[k] = "ok" if aligned else "misaligned"
    return statuses, whys


def _dicts(
    names: tuple[str, ...], columns: Sequence[Sequence[Value]], n: int
) -> list[dict[str, Value]]:
    """Per item, field name → value, from the values by field (a display for one to three
    fields, which builds a dict several times faster than ``dict(zip(…))``)."""
    if len(names) == 1:
        (a,), (ca,) = names, columns
        return [{a: x} for x in ca]
    if len(names) == 2:
        a, b = names
        ca, cb = columns
        return [{a: x, b: y} for x, y in zip(ca, cb)]
    if len(names) == 3:
        a, b, c = names
        ca, cb, cc = columns
        return [{a: x, b: y, c: z} for x, y, z in zip(ca, cb, cc)]
    if not names:
        return [{} for _ in range(n)]
    return list(map(dict, map(zip, repeat(names), zip(*columns))))


def _read_numbers(read: Callable[[str], Value], texts: Sequence[str]) -> list[Value]:
    """``[read(t) for t in texts]`` for a number field, with ``value_reader``'s fast form
    (``Decimal`` of plain ASCII without ``,``, ``$`` or ``_``, if finite) checked once for the
    whole column; any text outside it sends the column through ``read``."""
    joined = "".join(texts)
    if joined.isascii() and "," not in joined and "$" not in joined and "_" not in joined:
        try:
            numbers = list(map(Decimal, texts))
        except InvalidOperation:
            pass
        else:
            if all(map(Decimal.is_finite, numbers)):
                return numbers  # type: ignore[return-value]
    return list(map(read, texts))


_ASCII_WS = " \t\n\r\f\v"


@dataclass(frozen=True)
class _FastColumns:
    """The groups of a plan whose items all have the same fields, by column: per field, its
    group in every item, its reader (``None`` for text) and whether it is a number; the
    question group of every item (empty unless auto-demo), where each item starts and ends."""

    n: int
    names: tuple[str, ...]
    fields: tuple[tuple[tuple[int, ...], Callable[[str], Value] | None, bool], ...]
    questions: tuple[int, ...]
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    indexes: tuple[int, ...]


@dataclass(frozen=True)
class _FastPlan:
    """The whole-output regex and, per item, the groups to read: (index, question group or 0,
    group where the item starts, group where it ends, [(field name, group, reader)]); the
    reader is ``None`` for text, which is read as is. ``columns`` holds the same groups by
    field when every item has the same fields (always, for the grammars promptc builds)."""

    pattern: re.Pattern[str]
    items: tuple[
        tuple[int, int, int, int, tuple[tuple[str, int, Callable[[str], Value] | None], ...]], ...
    ]
    columns: _FastColumns | None = None


_FAST_PLANS: dict[int, tuple[AnswerGrammar, _FastPlan | None]] = {}


def _fast_plan(g: AnswerGrammar) -> _FastPlan | None:
    hit = _FAST_PLANS.get(id(g))
    if hit is not None and hit[0] is g:
        return hit[1]
    plan: _FastPlan | None = None
    try:
        plan = _make_fast_plan(g)
    except (AttributeError, KeyError, TypeError, ValueError, re.error):
        plan = None
    if len(_FAST_PLANS) > 256:
        _FAST_PLANS.clear()
    _FAST_PLANS[id(g)] = (g, plan)
    return plan


def _make_fast_plan(g: AnswerGrammar) -> _FastPlan | None:
    # AnswerGrammar.item_groups holds group numbers of this very pattern.
    if g.regex is None:
        return None
    pattern = re.compile(g.regex)
    text = {f.name for f in g.fields if f.type == "text"}
    # The grammar's own reading plan; text is read as is (no reader call on the hot path).
    items = [
        (
            i,
            q,
            start,
            end,
            tuple((name, group, None if name in text else read) for name, group, read in fields),
        )
        for i, start, end, q, fields in g.item_groups
    ]
    return _FastPlan(pattern, tuple(items), _fast_columns_of(g, items))


def _fast_columns_of(
    g: AnswerGrammar,
    items: Sequence[
        tuple[int, int, int, int, tuple[tuple[str, int, Callable[[str], Value] | None], ...]]
    ],
) -> _FastColumns | None:
    """The plan's groups by column, or ``None`` if its items do not all have the same fields
    (each once) or it has no item."""
    if not items:
        return None
    names = tuple(name for name, _, _ in items[0][4])
    if len(set(names)) != len(names):
        return None
    for it in items:
        if tuple(name for name, _, _ in it[4]) != names:
            return None
    types = {f.name: f.type for f in g.fields}
    fields = tuple(
        (tuple(it[4][k][1] for it in items), items[0][4][k][2], types[name] == "number")
        for k, name in enumerate(names)
    )
    questions = tuple(it[1] for it in items)
    if any(questions) and not all(questions):
        return None
    starts = tuple(it[2] for it in items)
    ends = tuple(it[3] for it in items)
    return _FastColumns(
        len(items),
        names,
        fields,
        questions if all(questions) else (),
        starts,
        ends,
        tuple(it[0] for it in items),
    )


def _from_parsed(shape: RequestShape, output: str, items: Sequence[Any]) -> list[ItemResult]:
    text = _Text(output)
    results: list[ItemResult] = []
    for it in items:
        idx = int(it.index)
        span = _parsed_span(text, it)
        aligned, why = _align(shape, idx, getattr(it, "question", None))
        results.append(
            ItemResult(
                shape.id,
                _item_id(shape, idx),
                idx,
                "ok" if aligned else "misaligned",
                dict(it.values),
                span,
                (),
                None,
                why,
            )
        )
    return results


def _parsed_span(text: _Text, item: Any) -> Span | None:
    span = getattr(item, "span", None)
    if span is None:
        return None
    start = getattr(span, "start", None)
    end = getattr(span, "end", None)
    if isinstance(start, int) and isinstance(end, int):
        return Span(start, end, text.lines)
    return None


# --- strict ---------------------------------------------------------------------------------


def _strict(shape: RequestShape, g: AnswerGrammar, output: str) -> list[ItemResult]:
    fast = _fast(shape, g, output)  # the same regex parse_strict tries first, read directly
    if fast is not None:
        return fast
    try:
        items = g.parse_strict(output)
    except Exception as exc:  # noqa: BLE001 - a mismatch, or any parser failure
        return _strict_failure(shape, output, exc)
    return _from_parsed(shape, output, items)


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
    text = _Text(output)
    offset, expected = _error_parts(output, exc)
    found = _found_at(output, offset)
    pos = text.position(offset)
    n = len(shape.item_ids)
    at, status = 1, "malformed"
    if _is_multi(shape.kind):
        last: re.Match[str] | None = None
        for m in _MARKER.finditer(output, 0, offset + 1):
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
        nxt = _MARKER.match(rest)
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


def _found_at(text: str, offset: int) -> str:
    """What stands at ``offset``: the rest of its line (abbreviated), or a line end."""
    rest = text[offset:]
    if not rest.strip():
        return "end of output"
    line = rest.split("\n", 1)[0]
    if not line.strip():
        return "a line break"
    return line if len(line) <= FOUND_CHARS else line[: FOUND_CHARS - 1] + "…"


# --- recover --------------------------------------------------------------------------------


@dataclass
class _Occurrence:
    answer: _Marker | None
    question: _Marker | None
    reading: _Reading | None
    question_text: str | None
    aligned: bool = True
    why: str = ""
    q_end: int = 0  # normalised offset where a question's text ends


def _recover(
    shape: RequestShape, g: AnswerGrammar, output: str, prefix_ok: bool = False
) -> list[ItemResult]:
    text = _Text(output)
    reader = _Reader(g, prefix_ok)
    if not _is_multi(shape.kind):
        return _recover_single(shape, text, reader)
    norm = text.norm
    n = len(shape.item_ids)
    found = _scan(norm)
    occurrences: dict[int, list[_Occurrence]] = {}
    pending_q: tuple[_Marker, int] | None = None
    for k, m in enumerate(found):
        body_end = found[k + 1].cut if k + 1 < len(found) else len(norm)
        if m.kind == markers.QUESTION_PREFIX:
            if shape.kind != "auto-demo":
                continue  # a batch answer has no questions; Q[i] is chatter there
            if pending_q is not None:
                _orphan(occurrences, pending_q[0], text, pending_q[1])
            pending_q = (m, body_end)
            continue
        occ_list = occurrences.setdefault(m.index, [])
        q = pending_q[0] if pending_q is not None else None
        q_text = None
        if pending_q is not None:
            qs, qe = _strip_span(text.norm, pending_q[0].end, pending_q[1])
            q_text = text.original[text.orig_start(qs) : text.orig(qe)]
        pending_q = None
        if len(occ_list) >= MAX_OCCURRENCES:
            occ_list.append(_Occurrence(m, q, None, q_text))
            continue
        # An answer to an index the request does not have is kept only if well-formed.
        reading = reader.read(text, m.end, body_end, m, diagnose=1 <= m.index <= n)
        occ = _Occurrence(m, q, reading, q_text)
        if q is not None and q.index != m.index:
            occ.aligned = False
            occ.why = (
                f"{_label(markers.ANSWER_PREFIX, m.index)} follows "
                f"{_label(markers.QUESTION_PREFIX, q.index)}"
            )
        else:
            occ.aligned, occ.why = _align(shape, m.index, q_text)
        occ_list.append(occ)
    if pending_q is not None:
        _orphan(occurrences, pending_q[0], text, pending_q[1])

    results = [_judge(shape, text, i, occurrences.get(i, [])) for i in range(1, n + 1)]
    for i in sorted(occurrences):
        if not 1 <= i <= n:
            results.append(_extra(shape, text, i, occurrences[i]))
    return results


def _orphan(occ: dict[int, list[_Occurrence]], q: _Marker, text: _Text, body_end: int) -> None:
    """A question not followed by its answer (e.g. the output ended after it)."""
    lst = occ.setdefault(q.index, [])
    if len(lst) < MAX_OCCURRENCES:
        lst.append(_Occurrence(None, q, None, None, aligned=True, q_end=body_end))


def _occ_span(text: _Text, occ: _Occurrence) -> Span:
    start_m = occ.question or occ.answer
    assert start_m is not None
    start = start_m.start
    if occ.reading is not None:
        end = occ.reading.end
    else:
        end = start_m.end
    return text.span(start, max(end, start))


def _judge(shape: RequestShape, text: _Text, index: int, occs: list[_Occurrence]) -> ItemResult:
    item_id = _item_id(shape, index)
    amark = markers.answer_marker(index)
    aname = _label(markers.ANSWER_PREFIX, index)
    if not occs:
        return ItemResult(
            shape.id,
            item_id,
            index,
            "missing",
            {},
            None,
            (amark,),
            None,
            f"no {aname} in the output",
        )
    answered = [o for o in occs if o.answer is not None]
    good = [o for o in answered if o.reading is not None and o.reading.values is not None]
    good_aligned = [o for o in good if o.aligned]
    if good_aligned:
        first = good_aligned[0]
        assert first.reading is not None and first.reading.values is not None
        values = first.reading.values
        differing = [
            o for o in good_aligned[1:] if o.reading is not None and o.reading.values != values
        ]
        span = _occ_span(text, first)
        note = first.why
        if differing:
            other = differing[0]
            where = _occ_span(text, other).start
            return ItemResult(
                shape.id,
                item_id,
                index,
                "duplicate",
                values,
                span,
                (),
                None,
                f"{aname} answered {len(good_aligned)} times with different values: "
                f"{_show(values)} at {span.start}, {_show(other.reading.values or {})} "  # type: ignore[union-attr]
                f"at {where}",
            )
        return ItemResult(shape.id, item_id, index, "ok", values, span, (), None, note)
    if good:
        first = good[0]
        assert first.reading is not None and first.reading.values is not None
        return ItemResult(
            shape.id,
            item_id,
            index,
            "misaligned",
            first.reading.values,
            _occ_span(text, first),
            (),
            None,
            first.why,
        )
    # Nothing well-formed: diagnose the first answer, or the question left without one.
    if answered:
        o = answered[0]
        r = o.reading
        assert o.answer is not None
        if r is None:  # beyond MAX_OCCURRENCES: not read
            return ItemResult(
                shape.id,
                item_id,
                index,
                "malformed",
                {},
                _occ_span(text, o),
                ("an answer",),
                None,
                f"{aname} repeated too often to read",
            )
        pos = text.position(text.orig(r.error_at))
        return ItemResult(
            shape.id,
            item_id,
            index,
            "malformed",
            {},
            _occ_span(text, o),
            r.expected,
            r.found,
            f"{aname}: expected {' or '.join(r.expected)}, found {r.found!r} at {pos}",
        )
    o = occs[0]
    assert o.question is not None
    rest = text.norm[o.q_end :].strip()
    found = _found_at(rest, 0)
    q_end = _strip_span(text.norm, o.question.end, o.q_end)[1]
    pos = text.position(text.orig(q_end))
    return ItemResult(
        shape.id,
        item_id,
        index,
        "malformed",
        {},
        text.span(o.question.start, q_end),
        (amark,),
        found,
        f"{_label(markers.QUESTION_PREFIX, index)} is not followed by {aname}"
        + (" (the output ends)" if not rest else f" (found {found!r})")
        + f" at {pos}",
    )


def _extra(shape: RequestShape, text: _Text, index: int, occs: list[_Occurrence]) -> ItemResult:
    n = len(shape.item_ids)
    values: dict[str, Value] = {}
    for o in occs:
        if o.reading is not None and o.reading.values is not None:
            values = o.reading.values
            break
    first = occs[0]
    kind = _label(
        markers.ANSWER_PREFIX if first.answer is not None else markers.QUESTION_PREFIX, index
    )
    return ItemResult(
        shape.id,
        None,
        index,
        "extra",
        values,
        _occ_span(text, first),
        (),
        None,
        f"{kind} is not an item of this request (it has items 1 to {n})",
    )


def _show(values: Mapping[str, Value]) -> str:
    """``answer='18', reasoning='First…'`` for messages."""
    return ", ".join(f"{k}={_found_at(_plain(v), 0)!r}" for k, v in values.items())


def _plain(value: Value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return _decimal_text(value)
    return str(value)


def _recover_single(shape: RequestShape, text: _Text, reader: _Reader) -> list[ItemResult]:
    norm = text.norm
    item_id = shape.item_ids[0] if shape.item_ids else None
    s, e = _strip_span(text.norm, 0, len(norm))
    if not text.original.strip(_EDGE_NOISE):
        return [
            ItemResult(
                shape.id,
                item_id,
                1,
                "missing",
                {},
                None,
                ("an answer",),
                "end of output",
                "the output is empty",
            )
        ]
    # Where the answer may be: after an A[1]: marker if the model wrote one; inside a fence;
    # the whole output; the output without its first lines of chatter.
    starts: list[tuple[int, _Marker | None]] = []
    for m in _scan(norm):
        if m.kind == markers.ANSWER_PREFIX and m.index == 1:
            starts.append((m.end, m))
            break
    fence = re.search(r"(?m)^[ \t]*(```|~~~)[^\n]*\n", norm)
    if fence is not None:
        starts.append((fence.end(), None))
    starts.append((s, None))
    pos = s
    for _ in range(MAX_SINGLE_SKIP):
        nl = norm.find("\n", pos, e)
        if nl < 0:
            break
        pos = nl + 1
        starts.append((pos, None))
    first: _Reading | None = None
    tried: set[int] = set()
    for st, marker in starts:
        if st in tried:
            continue
        tried.add(st)
        r = reader.read(text, st, e, marker)
        if r.values is not None:
            return [ItemResult(shape.id, item_id, 1, "ok", r.values, text.span(r.start, r.end))]
        if first is None:
            first = r
    assert first is not None
    pos_err = text.position(text.orig(first.error_at))
    return [
        ItemResult(
            shape.id,
            item_id,
            1,
            "malformed",
            {},
            text.span(first.start, first.end),
            first.expected,
            first.found,
            f"expected {' or '.join(first.expected)}, found {first.found!r} at {pos_err}",
        )
    ]
