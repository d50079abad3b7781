"""The dialects a value's regex is spelled in: lark's, Python's, GBNF and the portable regex.

A value type's form is written once, as a lark terminal in ``grammars/`` (``number.lark`` …).
:func:`fragment_terminals` lets lark compile it to a Python regex, which the parser reads by;
:func:`regex_to_gbnf` and :func:`portable` spell that very regex in GBNF (llama.cpp) and in
the regex dialect that constrained-decoding engines share (vLLM, xgrammar, outlines-core), so
that what a constrained model may write is what the parser reads. Both converters walk
Python's own parse of the regex (:func:`parse`) and share what the two dialects spell alike
(a character class's code points, a repetition's bounds); each keeps only its own spelling.
"""

from __future__ import annotations

import importlib
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

_CONTROL_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\f": "\\f", "\v": "\\v"}


# ---------------------------------------------------------------- lark → Python


def _escape_controls(regex: str) -> str:
    """Lark evaluates ``\\n`` in its regex literals; spell such characters as escapes again."""
    return "".join(_CONTROL_ESCAPES.get(c, c) for c in regex)


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
        terminals = {n for n in builder._definitions if n.isupper() or n.lstrip("_").isupper()}
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


# ---------------------------------------------------------------- GBNF

#: A character other than white space, as GBNF spells it (ASCII white space).
GBNF_NOT_WS = "[^ \\t\\n\\r\\x0B\\x0C]"


def gbnf_string(text: str) -> str:
    """A GBNF string literal."""
    out = []
    for ch in text:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _gbnf_class_char(ch: str) -> str:
    if ch in "\\]^[-":
        return "\\" + ch if ch != "-" else "\\x2D"
    if ch == "\n":
        return "\\n"
    if ch == "\r":
        return "\\r"
    if ch == "\t":
        return "\\t"
    if ord(ch) < 0x20 or ord(ch) == 0x7F:
        return f"\\x{ord(ch):02X}"
    return ch


def _gbnf_class(items: list[tuple[int, int]], negate: bool) -> str:
    """A GBNF character class from (low, high) code point ranges."""
    body = []
    for lo, hi in sorted(set(items)):
        if lo == hi:
            body.append(_gbnf_class_char(chr(lo)))
        else:
            body.append(_gbnf_class_char(chr(lo)) + "-" + _gbnf_class_char(chr(hi)))
    return "[" + ("^" if negate else "") + "".join(body) + "]"


def regex_to_gbnf(regex: str) -> str:
    """Converts a regex without anchors or lookarounds to one GBNF expression.

    Handles what the value fragments use: literals, classes, ``\\d``, alternation, groups,
    inline ``(?i:…)``, repetition. ``\\d`` becomes ``[0-9]`` (GBNF is ASCII here).

    Raises:
        GrammarError: The regex uses a construct GBNF cannot express (anchors, lookarounds,
            back-references).
    """
    return _gbnf_seq(parse(regex), False)


def _gbnf_seq(items: Any, icase: bool) -> str:
    out: list[str] = []
    buf: list[str] = []

    def flush() -> None:
        if buf:
            out.append(gbnf_string("".join(buf)))
            buf.clear()

    for op, av in items:
        if op is SRE.LITERAL:
            ch = chr(av)
            if icase and ch.lower() != ch.upper():
                flush()
                out.append(_gbnf_class(cases(av, av), False))
            else:
                buf.append(ch)
            continue
        flush()
        out.append(_gbnf_atom(op, av, icase))
    flush()
    return " ".join(out) if out else '""'


def _gbnf_atom(op: Any, av: Any, icase: bool) -> str:
    if op is SRE.NOT_LITERAL:
        return _gbnf_class(cases(av, av) if icase else [(av, av)], True)
    if op is SRE.ANY:
        return "[^\\n]"
    if op is SRE.IN:
        return _gbnf_class(*class_spans(av, icase, "in GBNF"))
    if op is SRE.BRANCH:
        return "(" + " | ".join(_gbnf_seq(b, icase) for b in av[1]) + ")"
    if op is SRE.SUBPATTERN:
        _, add, _, sub = av
        return "(" + _gbnf_seq(sub, icase or bool(add & SRE.SRE_FLAG_IGNORECASE)) + ")"
    if op is SRE.ATOMIC_GROUP:
        return "(" + _gbnf_seq(av, icase) + ")"
    if op in (SRE.MAX_REPEAT, SRE.MIN_REPEAT, SRE.POSSESSIVE_REPEAT):
        lo, hi, sub = av
        inner = _gbnf_seq(sub, icase)
        if " " in inner and not (inner.startswith("(") and inner.endswith(")")):
            inner = "(" + inner + ")"
        return inner + quantifier(lo, hi)
    raise GrammarError(f"cannot express the regex construct {op} in GBNF")


# ---------------------------------------------------------------- the portable regex dialect

#: A character other than white space, as the portable dialect spells it.
PORTABLE_NOT_WS = "[^ \\t\\n\\r\\f\\v]"
#: Characters with a meaning outside a character class, escaped with a backslash.
_SPECIAL = set("\\^$.|?*+()[]{}")
#: Characters with a meaning inside a character class.
_CLASS_SPECIAL = set("\\]^[-")


def escape(text: str) -> str:
    """``text`` as a literal of the portable dialect."""
    out = []
    for ch in text:
        if ch in _CONTROL_ESCAPES:
            out.append(_CONTROL_ESCAPES[ch])
        elif ch in _SPECIAL:
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def _portable_class_char(code: int) -> str:
    ch = chr(code)
    if ch in _CONTROL_ESCAPES:
        return _CONTROL_ESCAPES[ch]
    if ch in _CLASS_SPECIAL:
        return "\\" + ch
    if code < 0x20 or code == 0x7F:
        return f"\\x{code:02x}"
    return ch


def _portable_class(spans: list[tuple[int, int]], negate: bool) -> str:
    body = "".join(
        _portable_class_char(lo)
        if lo == hi
        else f"{_portable_class_char(lo)}-{_portable_class_char(hi)}"
        for lo, hi in sorted(set(spans))
    )
    return "[" + ("^" if negate else "") + body + "]"


def portable(regex: str) -> str:
    """A Python regex of a value fragment in the portable dialect.

    Handles what the value fragments use: literals, classes, ``\\d``, alternation, groups
    (written non-capturing), inline ``(?i:…)`` (each letter as a class of its two cases),
    repetition (lazy repetition as greedy: a constraint has no preference). ``\\d`` becomes
    ``[0-9]``.

    Raises:
        GrammarError: The regex uses a construct the dialect lacks (anchors, lookarounds,
            back-references).
    """
    return _portable_seq(parse(regex), False)


def _portable_seq(items: Any, icase: bool) -> str:
    return "".join(_portable_atom(op, av, icase) for op, av in items)


def _portable_atom(op: Any, av: Any, icase: bool) -> str:
    if op is SRE.LITERAL:
        if icase and chr(av).lower() != chr(av).upper():
            return _portable_class(cases(av, av), False)
        return escape(chr(av))
    if op is SRE.NOT_LITERAL:
        return _portable_class(cases(av, av) if icase else [(av, av)], True)
    if op is SRE.ANY:
        return "[^\\n]"
    if op is SRE.IN:
        return _portable_class(*class_spans(av, icase, "portably"))
    if op is SRE.BRANCH:
        return "(?:" + "|".join(_portable_seq(b, icase) for b in av[1]) + ")"
    if op is SRE.SUBPATTERN:
        _, add, _, sub = av
        return "(?:" + _portable_seq(sub, icase or bool(add & SRE.SRE_FLAG_IGNORECASE)) + ")"
    if op is SRE.ATOMIC_GROUP:
        return "(?:" + _portable_seq(av, icase) + ")"
    if op in (SRE.MAX_REPEAT, SRE.MIN_REPEAT, SRE.POSSESSIVE_REPEAT):
        lo, hi, sub = av
        inner = _portable_seq(sub, icase)
        if not _is_atom(inner):
            inner = "(?:" + inner + ")"
        return inner + quantifier(lo, hi)
    raise GrammarError(f"cannot express the regex construct {op} portably")


def _is_atom(regex: str) -> bool:
    """Whether ``regex`` is one class, one (escaped) character or one group."""
    if regex.startswith("(?:") and regex.endswith(")") and _closes_at_end(regex):
        return True
    if regex.startswith("[") and regex.endswith("]") and _class_end(regex) == len(regex):
        return True
    return len(regex) == 1 or (len(regex) == 2 and regex[0] == "\\")


def _closes_at_end(regex: str) -> bool:
    depth, k = 0, 0
    while k < len(regex):
        ch = regex[k]
        if ch == "\\":
            k += 2
            continue
        if ch == "[":
            k = _class_end(regex, k)
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0 and k != len(regex) - 1:
                return False
        k += 1
    return True


def _class_end(regex: str, start: int = 0) -> int:
    """The offset just after the class that opens at ``start``."""
    k = start + 1
    if k < len(regex) and regex[k] == "^":
        k += 1
    while k < len(regex):
        if regex[k] == "\\":
            k += 2
            continue
        if regex[k] == "]":
            return k + 1
        k += 1
    return len(regex)
