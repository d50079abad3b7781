"""What the GBNF and portable-regex emitters share: Python's own parse of a value fragment's
regex, and the parts of its tree that both dialects spell alike (the code points of a
character class, a repetition's bounds). Each emitter keeps only its own spelling.
"""

from __future__ import annotations

import importlib
from typing import Any

from promptc.errors import GrammarError

#: The regex parser of the standard library (``re._parser`` since 3.11) and its constants.
SRE: Any = importlib.import_module("re._constants")
_PARSER: Any = importlib.import_module("re._parser")

#: The code point ranges of ``\d``, ``\s`` and ``\w`` as the value fragments mean them (ASCII).
CATEGORIES: dict[Any, list[tuple[int, int]]] = {
    SRE.CATEGORY_DIGIT: [(ord("0"), ord("9"))],
    SRE.CATEGORY_SPACE: [(ord(c), ord(c)) for c in " \t\n\r\x0b\x0c"],
    SRE.CATEGORY_WORD: [
        (ord("a"), ord("z")),
        (ord("A"), ord("Z")),
        (ord("0"), ord("9")),
        (ord("_"), ord("_")),
    ],
}


def parse(regex: str) -> Any:
    """The parse tree of ``regex``: a sequence of ``(op, argument)`` pairs."""
    return _PARSER.parse(regex)


def cases(lo: int, hi: int) -> list[tuple[int, int]]:
    """The range ``lo``–``hi`` and, for its ASCII letters, the same letters in the other case."""
    out = [(lo, hi)]
    for a, b, shift in ((ord("a"), ord("z"), -32), (ord("A"), ord("Z"), 32)):
        x, y = max(lo, a), min(hi, b)
        if x <= y:
            out.append((x + shift, y + shift))
    return out


def class_spans(items: Any, icase: bool, dialect: str) -> tuple[list[tuple[int, int]], bool]:
    """The code point ranges of a character class (an ``IN`` node's items) and whether it is
    negated; both cases of each letter under ``(?i)``.

    Raises:
        GrammarError: An item ``dialect`` (named in the message) cannot express.
    """
    negate = False
    spans: list[tuple[int, int]] = []
    for op, av in items:
        if op is SRE.NEGATE:
            negate = True
        elif op is SRE.LITERAL:
            spans.extend(cases(av, av) if icase else [(av, av)])
        elif op is SRE.RANGE:
            spans.extend(cases(*av) if icase else [av])
        elif op is SRE.CATEGORY and av in CATEGORIES:
            spans.extend(CATEGORIES[av])
        else:
            raise GrammarError(f"cannot express the character class item {op} {dialect}")
    return spans, negate


def quantifier(lo: int, hi: int) -> str:
    """A repetition's suffix, the same in both dialects: ``?``, ``*``, ``+`` or ``{m,n}``."""
    if (lo, hi) == (0, 1):
        return "?"
    if (lo, hi) == (0, SRE.MAXREPEAT):
        return "*"
    if (lo, hi) == (1, SRE.MAXREPEAT):
        return "+"
    if hi == SRE.MAXREPEAT:
        return f"{{{lo},}}"
    if lo == hi:
        return f"{{{lo}}}"
    return f"{{{lo},{hi}}}"
