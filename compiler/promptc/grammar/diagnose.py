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

from promptc.grammar.lark_source import Blueprint, Part
from promptc.text import excerpt

_WS = " \t\n\r\f\v"
#: Readings tried before the diagnosis settles for the best failure found so far, so that an
#: adversarial answer (many delimiters between two text fields) cannot make it hang.
_MAX_READINGS = 20_000


def part_name(part: Part) -> str:
    """A part as error messages name it: ``answer: a number …`` or ``'The answer is'``."""
    if part.field is not None:
        return f"{part.field.name}: {part.field.type.expected(part.field)}"
    text = part.text.strip()
    return repr(text) if text else "a space"


def diagnose(blueprint: Blueprint, text: str) -> tuple[int, list[str], str]:
    """The failure point of ``text`` against ``blueprint``'s answer body.

    A failed reading is ranked by how far the *typed* parts carried it: the place where the
    failing part was tried, except that right after a text field it counts from where that
    text began (a text that swallowed the rest of the line proves nothing). Ties go to the
    reading that got further through the format.

    Returns:
        (offset in ``text``, the names of what could have come there, what is there instead).
    """
    parts = blueprint.parts
    compiled = [re.compile(p.bare) for p in parts]
    space = _WS if blueprint.multiline else " \t"
    start = len(text) - len(text.lstrip(space))
    best_key: tuple[int, int, int] = (-1, -1, -1)
    best_names: set[str] = set()
    seen: set[tuple[int, int]] = set()

    def record(k: int, pos: int, progress: int, names: list[str]) -> None:
        nonlocal best_key, best_names
        key = (progress, k, pos)
        if key > best_key:
            best_key, best_names = key, set(names)
        elif key == best_key:
            best_names.update(names)

    def is_text(k: int) -> bool:
        f = parts[k].field
        return f is not None and f.type.free_text

    # For each text part followed by a literal: every place the literal matches after a
    # non-space character, computed once (a text's candidate ends are then a bisect away).
    literal_ends: dict[int, list[int]] = {}
    for k in range(len(parts) - 1):
        if is_text(k) and parts[k + 1].field is None:
            # Every position the literal matches at, overlapping ones included (a lookahead
            # finds them all in one pass of the regex engine, not one match per character).
            starts = re.compile(f"(?=(?:{parts[k + 1].bare}))")
            literal_ends[k] = [
                e for m in starts.finditer(text, 1) if text[(e := m.start()) - 1] not in _WS
            ]

    def ends(k: int, pos: int, progress: int) -> list[int]:
        part = parts[k]
        if is_text(k):
            if pos >= len(text) or text[pos] in _WS:
                return []
            nl = text.find("\n", pos)
            stop = len(text) if blueprint.multiline or nl < 0 else nl
            greedy = not any(is_text(j) for j in range(k + 1, len(parts)))
            if k in literal_ends:
                table = literal_ends[k]
                out = table[bisect.bisect_right(table, pos) : bisect.bisect_right(table, stop)]
                if not out:  # the literal after the text is nowhere: say so, after the text
                    last = len(text[:stop].rstrip(_WS))
                    record(k + 1, max(last, pos + 1), progress, [part_name(parts[k + 1])])
            else:
                out = [e for e in range(pos + 1, stop + 1) if text[e - 1] not in _WS]
            return out[::-1] if greedy else out  # the last text field is greedy: longest first
        if part.field is None:
            m = compiled[k].match(text, pos)
            return [m.end()] if m else []
        # A typed value is short: try every length, longest first.
        limit = min(len(text), pos + 200)
        return [e for e in range(limit, pos, -1) if compiled[k].fullmatch(text, pos, e)]

    def walk(k: int, pos: int, progress: int) -> bool:
        if (k, pos) in seen or len(seen) > _MAX_READINGS:
            return False
        seen.add((k, pos))
        if k == len(parts):
            if text[pos:].strip(space) == "":
                return True
            record(k, pos, progress, ["end of the answer"])
            return False
        candidates = ends(k, pos, progress)
        if not candidates:
            record(k, pos, progress, [part_name(parts[k])])
            return False
        nxt_progress = pos if is_text(k) else None
        return any(
            walk(k + 1, e, nxt_progress if nxt_progress is not None else e) for e in candidates
        )

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * len(parts) + 100))
    try:
        if walk(0, start, start):
            return (len(text), [], "nothing: the answer matches")
    finally:
        sys.setrecursionlimit(limit)
    _, _, offset = best_key
    return offset, sorted(best_names), excerpt(text, offset)
