"""The dialects a value's regex is spelled in: lark's, Python's, GBNF and the portable regex.

A value type's form is written once, as a lark terminal in ``grammars/`` (``number.lark`` …).
:func:`fragment_terminals` lets lark compile it to a Python regex, which the parser reads by;
:data:`GBNF` and :data:`PORTABLE` spell that very regex in GBNF (llama.cpp) and in the regex
dialect that constrained-decoding engines share (vLLM, xgrammar, outlines-core), so that what a
constrained model may write is what the parser reads. One walk of Python's own parse of the
regex (:func:`parse`, :meth:`Dialect.spell`) serves both; each dialect keeps only its own
spelling (of a literal, a class's characters, a group).
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from promptc.errors import GrammarError
from promptc.resources import read_grammar

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

#: The parse tree's repetitions (lazy and possessive ones spelled as greedy).
_REPEATS = (SRE.MAX_REPEAT, SRE.MIN_REPEAT, SRE.POSSESSIVE_REPEAT)

_CONTROL_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\f": "\\f", "\v": "\\v"}


# ---------------------------------------------------------------- lark → Python


def _escape_controls(regex: str) -> str:
    """Lark evaluates ``\\n`` in its regex literals; spell such characters as escapes again."""
    return "".join(_CONTROL_ESCAPES.get(c, c) for c in regex)


#: A terminal's definition in a lark grammar: its upper-case name (``_`` first for a filtered
#: one) and an optional priority, at the start of a line.
_TERMINAL_DEFINITION = re.compile(r"^(_?[A-Z][A-Z0-9_]*)(?:\.-?\d+)?[ \t]*:", re.MULTILINE)


def lark_terminals(source: str, name: str, terminals: set[str] | None = None) -> dict[str, str]:
    """The terminals of a lark grammar text, each compiled by lark to one Python regex.

    Args:
        source: Lark grammar text.
        name: Its file name, for lark's messages.
        terminals: The terminals wanted; by default every upper-case definition.
    """
    # lark.load_grammar costs about 45 ms to import: ``promptc check`` compiles no grammar.
    from lark.load_grammar import GrammarBuilder

    builder = GrammarBuilder()
    builder.load_grammar(source, name)
    if terminals is None:
        terminals = set(_TERMINAL_DEFINITION.findall(source))
    compiled, _, _ = builder.build().compile([], terminals)
    return {t.name: _escape_controls(t.pattern.to_regexp()) for t in compiled}


@cache
def fragment_terminals(name: str) -> dict[str, str]:
    """The terminals of ``grammars/<name>``, each compiled by lark to one Python regex.

    Args:
        name: A fragment file name such as ``"number.lark"``.
    """
    return lark_terminals(read_grammar(name), name)


def lark_string(text: str) -> str:
    """A lark string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# ---------------------------------------------------------------- what both dialects share


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


@dataclass(frozen=True)
class Dialect:
    """How one dialect spells the regex constructs the value fragments use: literals, classes,
    ``\\d``, alternation, groups, inline ``(?i:…)`` (each letter as a class of its two cases),
    repetition (lazy repetition as greedy: a constraint has no preference). ``\\d`` becomes
    ``[0-9]`` (the dialects are ASCII here)."""

    #: How messages say "in this dialect" (``in GBNF``, ``portably``).
    where: str
    #: A run of literal characters.
    literal: Callable[[str], str]
    #: One character (a code point) in a character class.
    class_char: Callable[[int], str]
    #: What opens a group (closed by ``)``), and what separates alternatives.
    group: str
    alternative: str
    #: What separates the parts of a sequence, and what spells an empty one.
    join: str
    empty: str
    #: Whether a repeated part (its parse, and as spelled) needs no group around it.
    is_atom: Callable[[Any, str], bool]

    def spell(self, regex: str) -> str:
        """``regex`` (a Python regex without anchors, lookarounds or back-references) in this
        dialect.

        Raises:
            GrammarError: The regex uses a construct the dialect lacks.
        """
        return self._seq(parse(regex), False)

    def _seq(self, items: Any, icase: bool) -> str:
        out: list[str] = []
        run: list[str] = []  # literal characters, spelled as one literal
        for op, av in items:
            if op is SRE.LITERAL and not (icase and chr(av).lower() != chr(av).upper()):
                run.append(chr(av))
                continue
            if run:
                out.append(self.literal("".join(run)))
                run.clear()
            out.append(self._atom(op, av, icase))
        if run:
            out.append(self.literal("".join(run)))
        return self.join.join(out) if out else self.empty

    def _class(self, spans: list[tuple[int, int]], negate: bool) -> str:
        """A character class from (low, high) code point ranges."""
        c = self.class_char
        body = "".join(c(lo) if lo == hi else f"{c(lo)}-{c(hi)}" for lo, hi in sorted(set(spans)))
        return "[" + ("^" if negate else "") + body + "]"

    def _atom(self, op: Any, av: Any, icase: bool) -> str:
        if op is SRE.LITERAL:  # a letter under (?i)
            return self._class(cases(av, av), False)
        if op is SRE.NOT_LITERAL:
            return self._class(cases(av, av) if icase else [(av, av)], True)
        if op is SRE.ANY:
            return "[^\\n]"
        if op is SRE.IN:
            return self._class(*class_spans(av, icase, self.where))
        if op is SRE.BRANCH:
            return self.group + self.alternative.join(self._seq(b, icase) for b in av[1]) + ")"
        if op is SRE.SUBPATTERN:
            _, add, _, sub = av
            return self.group + self._seq(sub, icase or bool(add & SRE.SRE_FLAG_IGNORECASE)) + ")"
        if op is SRE.ATOMIC_GROUP:
            return self.group + self._seq(av, icase) + ")"
        if op in _REPEATS:
            lo, hi, sub = av
            inner = self._seq(sub, icase)
            return (inner if self.is_atom(sub, inner) else self.group + inner + ")") + quantifier(
                lo, hi
            )
        raise GrammarError(f"cannot express the regex construct {op} {self.where}")


# ---------------------------------------------------------------- spelling characters


def _char_speller(named: dict[str, str], backslashed: str, hex_form: str) -> Callable[[str], str]:
    """How a dialect spells one character in a literal or a class: by name (``\\n``), behind
    a backslash, as a hex escape (other control characters), or as itself."""

    def spell(ch: str) -> str:
        if ch in named:
            return named[ch]
        if ch in backslashed:
            return "\\" + ch
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            return hex_form.format(ord(ch))
        return ch

    return spell


# ---------------------------------------------------------------- GBNF

#: A character other than white space, as GBNF spells it (ASCII white space).
GBNF_NOT_WS = "[^ \\t\\n\\r\\x0B\\x0C]"

_GBNF_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_gbnf_char = _char_speller(_GBNF_NAMED, '\\"', "\\x{:02X}")
_gbnf_class_char = _char_speller({**_GBNF_NAMED, "-": "\\x2D"}, "\\]^[", "\\x{:02X}")


def gbnf_string(text: str) -> str:
    """A GBNF string literal."""
    return '"' + "".join(map(_gbnf_char, text)) + '"'


#: llama.cpp's GBNF; ``\\d`` becomes ``[0-9]``.
GBNF = Dialect(
    where="in GBNF",
    literal=gbnf_string,
    class_char=lambda code: _gbnf_class_char(chr(code)),
    group="(",
    alternative=" | ",
    join=" ",
    empty='""',
    is_atom=lambda sub, s: " " not in s or (s.startswith("(") and s.endswith(")")),
)


# ---------------------------------------------------------------- the portable regex dialect

#: A character other than white space, as the portable dialect spells it.
PORTABLE_NOT_WS = "[^ \\t\\n\\r\\f\\v]"
_portable_char = _char_speller(_CONTROL_ESCAPES, "\\^$.|?*+()[]{}", "\\x{:02x}")
_portable_class_char = _char_speller(_CONTROL_ESCAPES, "\\]^[-", "\\x{:02x}")


def escape(text: str) -> str:
    """``text`` as a literal of the portable dialect."""
    return "".join(map(_portable_char, text))


#: The regex dialect constrained-decoding engines share (no named groups, lookarounds,
#: atomic groups, inline flags or anchors); groups are written non-capturing.
PORTABLE = Dialect(
    where="portably",
    literal=escape,
    class_char=lambda code: _portable_class_char(chr(code)),
    group="(?:",
    alternative="|",
    join="",
    empty="",
    # One class, one character or one group: a single item that is no repetition.
    is_atom=lambda sub, s: len(sub) == 1 and sub[0][0] not in _REPEATS,
)
