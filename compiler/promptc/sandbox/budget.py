"""The render budget: bounded time and memory for any template, a spec's own included.

Jinja's sandbox keeps a template away from Python's internals, but not from the machine's
limits: ``{% for i in range(99999) %}{% for j in range(99999) %}`` runs for hours,
``{{ 'x' * 10**10 }}`` asks for ten gigabytes, a macro that calls itself exhausts the stack.
promptc renders every template (the shipped ones too) within these limits, each ending in a
:class:`~promptc.errors.TemplateError` at the template's file:line that names it (code
``template-budget``):

=====================  ==========================  ===========================================
bounded                the bound                   checked
=====================  ==========================  ===========================================
one message's text     :data:`MAX_MESSAGE_CHARS`   while the message's text is produced
one value              :data:`MAX_VALUE_SIZE`      before ``*`` repeats a string or list, and
                                                   after ``+``, filters and calls
an integer             :data:`MAX_INTEGER_BITS`    before ``*`` and ``**`` compute it
a width or count       :data:`MAX_VALUE_SIZE`      the width of ``center``, ``indent``,
                                                   ``ljust`` …, ``%`` and ``format`` widths,
                                                   what ``replace`` and ``join`` would build
loop iterations        :data:`MAX_LOOP_ITERATIONS` per message, over every ``range()``
nesting                :data:`MAX_NESTING`         macro calls, ``caller()``, ``super()`` and
                                                   recursive loops inside one another; includes
                                                   (and imports) inside one another
wall-clock time        :data:`MAX_RENDER_SECONDS`  per message: an OS timer, and at every
                                                   64th loop step or call and every filter
memory                 :data:`MAX_RENDER_MEMORY`   the address space rendering may add (an
                                                   OS limit)
=====================  ==========================  ===========================================

The first rows are checked in Jinja's sandbox, through its public hooks
(:mod:`promptc.sandbox.environment`): they stop the common runaways before they allocate, with a
message that says which limit. What no hook sees (``~``, a loop over a list that calls
nothing) meets the OS-level limits of
:mod:`promptc.sandbox.os_limits`, or Python's own stack.

The bounds sit far above what any prompt needs (the shipped templates render a 1,000-item
request in a few milliseconds) and far below what would hurt the machine.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Iterator
from string import Template
from typing import Any, TypeGuard

import jinja2
from jinja2.exceptions import TemplateSyntaxError

from promptc import limits
from promptc.errors import Location, TemplateError

#: Characters of one rendered message (:data:`promptc.limits.MAX_MESSAGE_CHARS`).
MAX_MESSAGE_CHARS = limits.MAX_MESSAGE_CHARS

#: Characters of one string (items of one list) a template builds.
MAX_VALUE_SIZE = 2_000_000

#: Bits of one integer a template computes (about 30,000 decimal digits).
MAX_INTEGER_BITS = 100_000

#: Iterations of every ``range()`` together, while one message renders.
MAX_LOOP_ITERATIONS = 1_000_000

#: Macro calls inside one another; includes inside one another.
MAX_NESTING = 64

#: Brackets and statements inside one another in a template's source. Jinja's parser recurses
#: once per level, so a template nested thousands deep would exhaust Python's stack before it
#: could be reported; a prompt needs a handful.
MAX_SOURCE_NESTING = 50

#: Seconds one message may take to render.
MAX_RENDER_SECONDS = 10.0

#: Bytes of address space rendering may add to what the process holds when it starts.
MAX_RENDER_MEMORY = 256 * 2**20

#: How often (in loop iterations and calls) the clock is read; filters read it every time.
_CLOCK_EVERY = 64


#: The message of every budget error (``template-budget`` in the render stage's table).
BUDGET_MESSAGE = "template exceeds the limit of $limit: $why"


def budget_error(limit: str, why: str, location: Location | None = None) -> TemplateError:
    """The ``template-budget`` error: which limit, and what crossed it (located by the
    renderer, at the innermost template line of the traceback, when ``location`` is none)."""
    message = Template(BUDGET_MESSAGE).substitute(limit=limit, why=why)
    return TemplateError(message, location=location, code="template-budget")


def nesting_error() -> TemplateError:
    """The budget error of macro calls or includes nested deeper than :data:`MAX_NESTING`."""
    return budget_error(
        f"{MAX_NESTING} nested macro calls and includes",
        "a macro or include nests deeper (one that calls or includes itself without end?)",
    )


class Budget:
    """The counters of one message's rendering, from :meth:`start` to :meth:`stop`.

    Outside a message the deadline is infinite: the clock never runs out between messages.
    """

    def __init__(self) -> None:
        self.iterations = 0
        self.depth = 0
        self.calls = 0
        self.deadline = math.inf
        #: Messages started so far: which one is rendering (a namespace's writes last for it).
        self.messages = 0

    def start(self) -> None:
        self.messages += 1
        self.iterations = 0
        self.depth = 0
        self.calls = 0
        self.deadline = time.monotonic() + MAX_RENDER_SECONDS

    def stop(self) -> None:
        self.deadline = math.inf

    def clock(self) -> None:
        """Raises the time limit's error once the message's deadline has passed."""
        if time.monotonic() > self.deadline:
            self.deadline = math.inf  # said once: the error unwinds the message
            raise budget_error(
                f"{MAX_RENDER_SECONDS:g} seconds per message",
                "rendering one message took longer",
            )

    def loop(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """``iterable``, counted against :data:`MAX_LOOP_ITERATIONS`."""
        for value in iterable:
            self.iterations += 1
            if self.iterations % _CLOCK_EVERY == 0:
                if self.iterations > MAX_LOOP_ITERATIONS:
                    raise budget_error(
                        f"{MAX_LOOP_ITERATIONS:,} loop iterations per message",
                        "the loops of this message ran more often",
                    )
                self.clock()
            yield value

    def enter(self) -> None:
        self.depth += 1
        self.calls += 1
        if self.depth > MAX_NESTING:
            self.depth -= 1  # this level is not entered; the outer ones leave as it unwinds
            raise nesting_error()
        if self.calls % _CLOCK_EVERY == 0:  # macros calling macros fan out without a loop
            self.clock()

    def leave(self) -> None:
        self.depth = max(0, self.depth - 1)


#: Statements that open a body closed by ``{% end… %}``.
_OPENING_STATEMENTS = frozenset(
    {"for", "if", "macro", "call", "filter", "block", "with", "autoescape", "trans"}
)


def check_nesting(
    env: jinja2.Environment, source: str, name: str | None, filename: str | None
) -> None:
    """Refuses a template source nested deeper than :data:`MAX_SOURCE_NESTING`, with a
    syntax error at the line where it does, before Jinja's recursive parser sees it.

    Reads the source with Jinja's lexer, which does not recurse; a source the lexer refuses
    is left to the parser, which says why.
    """
    brackets = statements = 0
    after_block_begin = False
    try:
        for lineno, kind, value in env.lex(source, name, filename):
            if kind == "whitespace":
                continue
            if kind == "operator":
                if value in "([{":
                    brackets += 1
                elif value in ")]}":
                    brackets = max(0, brackets - 1)
            elif kind == "name" and after_block_begin:
                if value in _OPENING_STATEMENTS:
                    statements += 1
                elif value.startswith("end"):
                    statements = max(0, statements - 1)
            after_block_begin = kind == "block_begin"
            if brackets + statements > MAX_SOURCE_NESTING:
                raise TemplateSyntaxError(
                    f"brackets and statements nest deeper than the limit of {MAX_SOURCE_NESTING} "
                    "levels",
                    lineno,
                    name,
                    filename,
                )
    except TemplateSyntaxError as e:
        if e.message and "nest deeper than the limit" in e.message:
            raise


# ---------------------------------------------------------------- sizes


def _size(value: object) -> int:
    """Characters and items of a value, nested ones included (what printing it would write,
    roughly), counted only up to just past :data:`MAX_VALUE_SIZE`: a list repeating one large
    list need not be walked to be refused."""
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, (list, tuple, dict)):
        return 0
    total = 0
    todo: list[object] = [value]
    while todo and total <= MAX_VALUE_SIZE:
        v = todo.pop()
        if isinstance(v, str):
            total += len(v)
        elif isinstance(v, (list, tuple)):
            total += len(v) + 1
            todo.extend(v)
        elif isinstance(v, dict):
            total += len(v) + 1
            todo.extend(v.keys())
            todo.extend(v.values())
        else:
            total += 1
    return total


def checked(value: Any) -> Any:
    """``value``, if it is within :data:`MAX_VALUE_SIZE` and :data:`MAX_INTEGER_BITS`."""
    if _size(value) > MAX_VALUE_SIZE:
        raise budget_error(
            f"{MAX_VALUE_SIZE:,} characters (or list items) per value",
            "an expression built a larger one",
        )
    if isinstance(value, int) and value.bit_length() > MAX_INTEGER_BITS:
        raise _int_error()
    return value


def _int_error() -> TemplateError:
    return budget_error(
        f"{MAX_INTEGER_BITS:,}-bit integers", "an arithmetic expression would compute a larger one"
    )


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuses ``*`` and ``**`` whose result would cross a bound, before computing it."""
    both_int = _is_int(left) and _is_int(right)
    if operator == "**":
        if (
            both_int
            and right > 0
            and abs(left) > 1
            and left.bit_length() * right > MAX_INTEGER_BITS
        ):
            raise _int_error()
    elif operator == "*":
        if both_int and left.bit_length() + right.bit_length() > MAX_INTEGER_BITS + 1:
            raise _int_error()
        for seq, count in ((left, right), (right, left)):
            if _size(seq) and _is_int(count) and _size(seq) * count > MAX_VALUE_SIZE:
                raise budget_error(
                    f"{MAX_VALUE_SIZE:,} characters (or list items) per value",
                    "a repetition would build a larger one",
                )
    elif operator == "%" and isinstance(left, str):
        check_format_widths(left, right if isinstance(right, tuple) else (right,))


_PERCENT_WIDTH = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\d+|\*)?(?:\.(\d+|\*))?")
_BRACE_WIDTH = re.compile(r"\{[^{}]*:[^{}]*?(\d+)[^{}]*\}")


def check_format_widths(fmt: str, args: Iterable[Any] = ()) -> None:
    """Refuses a ``%`` or ``str.format`` pattern whose width or precision crosses the bound."""
    widths = [int(n) for m in _PERCENT_WIDTH.finditer(fmt) for n in m.groups() if n and n != "*"]
    widths += [int(m.group(1)) for m in _BRACE_WIDTH.finditer(fmt) if len(m.group(1)) < 12]
    if "%" in fmt and "*" in fmt:
        widths += [a for a in args if _is_int(a)]
    if any(len(str(w)) > 12 or abs(w) > MAX_VALUE_SIZE for w in widths):
        raise _width_error()


def _width_error() -> TemplateError:
    return budget_error(
        f"{MAX_VALUE_SIZE:,} characters per value", "a width or count asks for more"
    )


def _check_width(width: object, times: int = 1) -> None:
    """Refuses a width (of ``times`` lines or tabs) past the value bound."""
    if _is_int(width) and width * times > MAX_VALUE_SIZE:
        raise _width_error()


def _check_replace(text: object, old: object, new: object) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        count = text.count(old) if old else len(text) + 1
        if len(text) + count * (len(new) - len(old)) > MAX_VALUE_SIZE:
            raise _width_error()


def _check_join(separator: object, parts: object) -> None:
    if isinstance(separator, str) and isinstance(parts, (list, tuple)):
        total = len(separator) * max(0, len(parts) - 1)
        total += sum(len(p) if isinstance(p, str) else 0 for p in parts)
        if total > MAX_VALUE_SIZE:
            raise _width_error()


#: ``str`` methods with a width argument, and its position.
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})


def check_call(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuses the ``str`` method calls whose result would cross the value bound."""
    target = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format
    owner = getattr(target, "__self__", None)
    if not isinstance(owner, str):
        return
    name = getattr(target, "__name__", "")
    if name in _WIDTH_METHODS:
        width = args[0] if args else kwargs.get("width", kwargs.get("tabsize", 0))
        _check_width(width, owner.count("\t") if name == "expandtabs" else 1)
    elif name == "replace" and len(args) >= 2:
        _check_replace(owner, args[0], args[1])
    elif name == "join" and args:
        _check_join(owner, args[0])
    elif name in ("format", "format_map"):
        check_format_widths(owner)


def check_filter(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Refuses the filter calls whose result would cross the value bound (``args[0]`` is the
    value filtered)."""
    if name in ("center", "indent", "wordwrap"):
        lines = args[0].count("\n") + 1 if name == "indent" and isinstance(args[0], str) else 1
        _check_width(args[1] if len(args) > 1 else kwargs.get("width", 0), lines)
    elif name == "replace" and len(args) >= 3:
        _check_replace(args[0], args[1], args[2])
    elif name == "join" and args:
        separator = args[1] if len(args) > 1 else kwargs.get("d", "")
        _check_join(separator, list(args[0]) if isinstance(args[0], (list, tuple)) else None)
    elif name == "format" and args and isinstance(args[0], str):
        check_format_widths(args[0], args[1:])
