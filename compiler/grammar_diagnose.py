"""Why an answer body does not match its answer format: the deepest failed reading.

Used by :meth:`promptc.grammar.AnswerGrammar.diagnose_answer` once the fast regex has said no.
Every reading of the body is tried, part by part of the format and every possible length of
each field (memoised, so a body of n characters costs O(parts × n) readings). Among the
failures, the one that got furthest through the *format* wins, then the one furthest in the
*text*: in ``"{reasoning} The answer is {answer}."``, the body ``"so The answer is five."``
fails at ``five`` ("expected a number") rather than at its end ("expected ' The answer is '"),
which is what the writer of a prompt needs to hear.
"""

from __future__ import annotations

import re
import sys

from promptc.grammar_lark import Part, Plan
from promptc.values import expected

_WS = " \t\n\r\f\v"


def part_name(part: Part) -> str:
    """A part as error messages name it: ``answer: a number …`` or ``'The answer is'``."""
    if part.field is not None:
        return f"{part.field.name}: {expected(part.field)}"
    text = part.text.strip()
    return repr(text) if text else "a space"


def found_at(text: str, offset: int, limit: int = 24) -> str:
    """What is at ``offset``: a short excerpt of the rest of its line, or the end."""
    rest = text[offset:]
    if rest.strip(_WS) == "":
        return "end of the answer"
    line = rest.split("\n", 1)[0]
    if line == "":
        return "a line break"
    return repr(line if len(line) <= limit else line[:limit] + "…")


def diagnose(plan: Plan, text: str) -> tuple[int, list[str], str]:
    """The failure point of ``text`` against ``plan``'s answer body.

    Returns:
        (offset in ``text``, the names of what could have come there, what is there instead).
    """
    parts = plan.parts
    compiled = [re.compile(p.bare) for p in parts]
    space = _WS if plan.multiline else " \t"
    start = len(text) - len(text.lstrip(space))
    best: list[object] = [(-1, -1), set()]
    seen: set[tuple[int, int]] = set()

    def record(k: int, pos: int, names: list[str]) -> None:
        key = (k, pos)
        if key > best[0]:  # type: ignore[operator]
            best[0], best[1] = key, set(names)
        elif key == best[0]:
            best[1].update(names)  # type: ignore[attr-defined]

    def ends(k: int, pos: int) -> list[int]:
        part = parts[k]
        if part.field is not None and part.field.type == "text":
            if pos >= len(text) or text[pos] in _WS:
                return []
            stop = len(text) if plan.multiline else (text.find("\n", pos) % (len(text) + 1))
            out = [e for e in range(stop, pos, -1) if text[e - 1] not in _WS]
            if k + 1 < len(parts) and parts[k + 1].field is None:
                nxt = compiled[k + 1]
                out = [e for e in out if nxt.match(text, e)]
            return out
        if part.field is None:
            m = compiled[k].match(text, pos)
            return [m.end()] if m else []
        # A typed value is short: try every length, longest first.
        limit = min(len(text), pos + 200)
        return [e for e in range(limit, pos, -1) if compiled[k].fullmatch(text, pos, e)]

    def walk(k: int, pos: int) -> bool:
        if (k, pos) in seen:
            return False
        seen.add((k, pos))
        if k == len(parts):
            if text[pos:].strip(space) == "":
                return True
            record(k, pos, ["end of the answer"])
            return False
        candidates = ends(k, pos)
        if not candidates:
            record(k, pos, [part_name(parts[k])])
            return False
        return any(walk(k + 1, e) for e in candidates)

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * len(parts) + 100))
    try:
        if walk(0, start):
            return (len(text), [], "nothing: the answer matches")
    finally:
        sys.setrecursionlimit(limit)
    (_, offset), names = best  # type: ignore[misc]
    return offset, sorted(names), found_at(text, offset)  # type: ignore[arg-type]
