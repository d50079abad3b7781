"""Why an answer body does not match its answer format: the deepest failed reading.

Used by :meth:`promptc.grammar.answer.AnswerGrammar.diagnose_answer` once the fast regex has said no.
Every reading of the body is tried, part by part of the format and every possible length of
each field (memoised, so a body of n characters costs O(parts × n) readings). Among the
failures, the one that got furthest through the *format* wins, then the one furthest in the
*text*: in ``"{reasoning} The answer is {answer}."``, the body ``"so The answer is five."``
fails at ``five`` ("expected a number") rather than at its end ("expected ' The answer is '"),
which is what the writer of a prompt needs to hear.
"""

from __future__ import annotations

import bisect
import re
import sys

from promptc.grammar.lark_source import Blueprint, Part, leading_text_optional, literal_regex
from promptc.text import excerpt

_WS = " \t\n\r\f\v"
_SPACE = re.compile(f"[{re.escape(_WS)}]")
#: Readings tried before the diagnosis settles for the best failure found so far, so that an
#: adversarial answer (many delimiters between two text fields) cannot make it hang.
_MAX_READINGS = 20_000


def part_name(part: Part) -> str:
    """A part as error messages name it: ``answer: a number …`` or ``'The answer is'``."""
    if part.field is not None:
        return f"{part.field.name}: {part.field.type.expected(part.field)}"
    text = part.text.strip()
    return repr(text) if text else "a space"


def diagnose(
    blueprint: Blueprint, text: str, lead_optional: bool = False
) -> tuple[int, list[str], str]:
    """The failure point of ``text`` against ``blueprint``'s answer body.

    A failed reading is ranked by how far the *typed* parts carried it: the place where the
    failing part was tried, except that right after a text field it counts from where that
    text began (a text that swallowed the rest of the line proves nothing). Ties go to the
    reading that got further through the format.

    ``lead_optional`` (the recovering parser): a leading free text the recovering reader lets
    a model leave out (:func:`~promptc.grammar.lark_source.leading_text_optional`) is also
    read as left out, so that ``The answer is 0x37.`` fails at ``0x37``, not for want of
    ``The answer is``.

    Returns:
        (offset in ``text``, the names of what could have come there, what is there instead).
    """
    space = _WS if blueprint.multiline else " \t"
    start = len(text) - len(text.lstrip(space))
    reading = _Readings(blueprint, text, lead_optional and leading_text_optional(blueprint))
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * len(blueprint.parts) + 100))
    try:
        if reading.walk(0, start, start):
            return (len(text), [], "nothing: the answer matches")
    finally:
        sys.setrecursionlimit(limit)
    _, _, offset = reading.best_key
    return offset, sorted(reading.best_names), excerpt(text, offset)


class _Readings:
    """Every reading of one answer body, memoised, and the best failure among them."""

    def __init__(self, blueprint: Blueprint, text: str, lead_optional: bool) -> None:
        self.blueprint = blueprint
        self.parts = blueprint.parts
        self.text = text
        self.space = _WS if blueprint.multiline else " \t"
        self.compiled = [re.compile(p.bare) for p in self.parts]
        # For each typed part followed only by literals: those literals ending the answer,
        # after a non-space character (the lookbehind fails at once inside white space, which
        # a literal's leading white space would rescan from every position).
        # Where each such tail may start, found once: searched from every place a value is
        # tried, a text without the tail was read to its end each time (quadratic).
        ws = re.escape(_WS)
        self.tails: dict[int, list[int]] = {}
        for k, p in enumerate(self.parts):
            if p.field is None or p.field.type.free_text:
                continue
            if any(q.field is not None for q in self.parts[k + 1 :]):
                continue
            tail = re.compile(
                f"(?<=[^{ws}])(?:{''.join(q.bare for q in self.parts[k + 1 :])})"
                f"[{re.escape(self.space)}]*\\Z"
            )
            # Every start ends the text: only a few can (after a non-space character, the
            # literals then white space alone to the end).
            found, m = [], tail.search(text)
            while m is not None:
                found.append(m.start())
                # (A search from past the end is one from the end: it would find it again.)
                m = tail.search(text, m.start() + 1) if m.start() < len(text) else None
            self.tails[k] = found
        # With the leading text left out, the literal after it starts the answer: without
        # its leading white space.
        self.bare_lead = (
            re.compile(literal_regex(self.parts[1].text.lstrip(), blueprint.multiline))
            if lead_optional
            else None
        )
        self.best_key: tuple[int, int, int] = (-1, -1, -1)
        self.best_names: set[str] = set()
        self.seen: set[tuple[int, int]] = set()
        # For each text part followed by a literal: every place the literal matches after a
        # non-space character, computed once (a text's candidate ends are then a bisect away).
        self.literal_ends: dict[int, list[int]] = {}
        for k in range(len(self.parts) - 1):
            if self.is_text(k) and self.parts[k + 1].field is None:
                # Every position the literal matches at after a non-space character, overlapping
                # ones included (a lookahead finds them all in one pass of the regex engine).
                # The lookbehind comes first: inside a run of white space it fails at once, where
                # the literal's leading white space would rescan the run from every position
                # (quadratic: 80 KB of newlines took 19 s).
                starts = re.compile(f"(?<=[^{re.escape(_WS)}])(?=(?:{self.parts[k + 1].bare}))")
                self.literal_ends[k] = [m.start() for m in starts.finditer(text, 1)]

    def record(self, k: int, pos: int, progress: int, names: list[str]) -> None:
        key = (progress, k, pos)
        if key > self.best_key:
            self.best_key, self.best_names = key, set(names)
        elif key == self.best_key:
            self.best_names.update(names)

    def is_text(self, k: int) -> bool:
        f = self.parts[k].field
        return f is not None and f.type.free_text

    def ends(self, k: int, pos: int, progress: int) -> list[int]:
        """Where part ``k`` may end when it starts at ``pos``, in the order to try them."""
        parts, text = self.parts, self.text
        part = parts[k]
        if self.is_text(k):
            if pos >= len(text) or text[pos] in _WS:
                return []
            nl = text.find("\n", pos)
            stop = len(text) if self.blueprint.multiline or nl < 0 else nl
            greedy = not any(self.is_text(j) for j in range(k + 1, len(parts)))
            if k in self.literal_ends:
                table = self.literal_ends[k]
                out = table[bisect.bisect_right(table, pos) : bisect.bisect_right(table, stop)]
                if not out:  # the literal after the text is nowhere: say so, after the text
                    last = len(text[:stop].rstrip(_WS))
                    self.record(k + 1, max(last, pos + 1), progress, [part_name(parts[k + 1])])
            else:
                out = [e for e in range(pos + 1, stop + 1) if text[e - 1] not in _WS]
            return out[::-1] if greedy else out  # the last text field is greedy: longest first
        if part.field is None:
            m = self.compiled[k].match(text, pos)
            return [m.end()] if m else []
        # A typed value with only literals after it, the answer ending with them: the value is
        # all of the word that stands between (``0x37`` of ``The answer is 0x37.``, not its
        # ``0``; but ``5`` of ``5. Hope this helps.``, what follows out of place).
        starts = self.tails.get(k)
        if starts is not None:
            i = bisect.bisect_left(starts, pos)
            end = starts[i] if i < len(starts) else None
            if end is not None and _SPACE.search(text, pos, end) is None:
                return [end] if self.compiled[k].fullmatch(text, pos, end) else []
        # A typed value is short: try every length, longest first.
        limit = min(len(text), pos + 200)
        return [e for e in range(limit, pos, -1) if self.compiled[k].fullmatch(text, pos, e)]

    def ends_after(self, k: int, pos: int, lead: str, progress: int) -> bool:
        """Whether the answer ends right after ``lead``, the text of literal ``k``, at ``pos``
        (``2;`` of ``{n}; {note}``): then what is missing is the part after the literal, not
        the literal, and that failure is recorded."""
        text = self.text
        if (
            not lead
            or k + 1 == len(self.parts)
            or text[pos : pos + len(lead)].lower() != lead.lower()
            or text[pos + len(lead) :].strip()
        ):
            return False
        self.record(k + 1, len(text), progress, [part_name(self.parts[k + 1])])
        return True

    def walk(self, k: int, pos: int, progress: int) -> bool:
        """Whether the body reads from part ``k`` at ``pos`` to its end (failures recorded)."""
        if (k, pos) in self.seen or len(self.seen) > _MAX_READINGS:
            return False
        self.seen.add((k, pos))
        if k == len(self.parts):
            if self.text[pos:].strip(self.space) == "":
                return True
            self.record(k, pos, progress, ["end of the answer"])
            return False
        if k == 0 and self.bare_lead is not None:
            left_out = self.bare_lead.match(self.text, pos)
            if left_out is not None and self.walk(2, left_out.end(), left_out.end()):
                return True
            if left_out is None:
                self.ends_after(1, pos, self.parts[1].text.strip(), progress)
        candidates = self.ends(k, pos, progress)
        if not candidates:
            part = self.parts[k]
            lead = part.text.rstrip() if part.field is None else ""
            if not self.ends_after(k, pos, lead, progress):
                self.record(k, pos, progress, [part_name(part)])
            return False
        nxt_progress = pos if self.is_text(k) else None
        return any(
            self.walk(k + 1, e, nxt_progress if nxt_progress is not None else e) for e in candidates
        )
