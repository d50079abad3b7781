"""The sandbox every template renders in: Jinja's immutable sandbox, bounded through its
public hooks.

:class:`BoundedSandbox` subclasses :class:`jinja2.sandbox.ImmutableSandboxedEnvironment` and
uses only what Jinja offers for it:

- ``intercepted_binops`` and :meth:`~BoundedSandbox.call_binop`: ``*`` and ``**`` are refused
  before they compute past a bound, ``+`` and ``%`` checked;
- :meth:`~BoundedSandbox.call`, Jinja's own call with its safety check, wrapped: macro
  nesting is counted, ``str`` methods' widths and results checked;
- the environment's ``filters`` and ``globals``: every filter wrapped in the same checks, and
  ``range`` (Jinja's, within its ``MAX_RANGE``) counting its steps against the loop budget;
- its ``template_class``, whose :meth:`~jinja2.Template.new_context` (each ``include`` makes
  one from its includer's variables) and :meth:`~jinja2.Template.make_module` (each ``import``)
  count how deep includes and imports nest;
- its :meth:`~BoundedSandbox.preprocess`, which Jinja runs on every source before it parses
  it: a source nested too deep is refused before Jinja's recursive parser reads it.

What these cannot see is bounded around rendering by :mod:`promptc.sandbox.os_limits`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, cast

import jinja2
from jinja2.environment import TemplateModule
from jinja2.exceptions import TemplateRuntimeError
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

from promptc.sandbox.budget import (
    MAX_NESTING,
    MAX_VALUE_SIZE,
    Budget,
    check_binop,
    check_call,
    check_filter,
    check_nesting,
    checked,
    nesting_error,
)


class CountedRange(Sequence[int]):
    """What ``range()`` gives a template: Jinja's range, each step of a loop over it counted
    against the message's loop budget.

    Filters are handed the plain range (:func:`bounded_filter`): ``range(n) | list`` builds a
    value, which the value bound sees, and is not a loop.
    """

    __slots__ = ("budget", "range")

    def __init__(self, values: range, budget: Budget) -> None:
        self.range = values
        self.budget = budget

    def __iter__(self) -> Iterator[int]:
        return self.budget.loop(self.range)

    def __reversed__(self) -> Iterator[int]:
        return self.budget.loop(reversed(self.range))

    def __len__(self) -> int:
        return len(self.range)

    def __getitem__(self, index: Any) -> Any:  # an int, or a CountedRange for a slice
        if isinstance(index, slice):
            return CountedRange(self.range[index], self.budget)
        return self.range[index]

    def __contains__(self, value: object) -> bool:
        return value in self.range

    def __eq__(self, other: object) -> bool:
        return self.range == (other.range if isinstance(other, CountedRange) else other)

    def __hash__(self) -> int:
        return hash(self.range)

    def __repr__(self) -> str:
        return repr(self.range)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.range, name)  # start, stop and step


def bounded_filter(name: str, fn: Callable[..., Any], budget: Budget) -> Callable[..., Any]:
    """A filter whose arguments and result stay within the bounds (and that reads the clock:
    one filter may sort or join a long list)."""
    # Filters that take the context or environment first get it from Jinja as their first
    # argument: the value filtered is then the second.
    skip = 1 if getattr(fn, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(fn)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        budget.clock()
        args = tuple(a.range if type(a) is CountedRange else a for a in args)
        check_filter(name, args[skip:], kwargs)
        given = (*args[skip:], *kwargs.values())
        if name in _TO_TEXT:  # the object's text, address and all, would reach the prompt
            refuse_addresses(given)
        elif name in _OF_TEXT:  # the object's text, changed: lower, title, replace, urlencode
            refuse_addresses(given[:1])
        result = fn(*args, **kwargs)
        # Any other filter that makes text of objects (join of a list of them): the address
        # came from no text it was given.
        if (
            isinstance(result, str)
            and _ADDRESS.search(result) is not None
            and not any(isinstance(a, str) and _ADDRESS.search(a) for a in given)
        ):
            raise _address_error()
        return checked(result)

    return bounded


#: The variable holding how deep a context's includes nest: passed on with the includer's
#: variables, and no name a template can write.
INCLUDE_DEPTH = "promptc: include depth"


class BoundedTemplate(jinja2.Template):
    """A template that counts how deep includes and imports nest, refused past the bound."""

    def new_context(
        self,
        vars: dict[str, Any] | None = None,
        shared: bool = False,
        locals: Mapping[str, Any] | None = None,
    ) -> Context:
        depth = vars.get(INCLUDE_DEPTH, -1) + 1 if vars else 0  # the message's own is 0
        if depth > MAX_NESTING:
            raise nesting_error()
        # A copy: an include is given its includer's own mapping, which must not change.
        return super().new_context({**(vars or {}), INCLUDE_DEPTH: depth}, shared, locals)

    def make_module(
        self,
        vars: dict[str, Any] | None = None,
        shared: bool = False,
        locals: Mapping[str, Any] | None = None,
    ) -> TemplateModule:
        # An import (or an include without context) renders the whole template here, and one
        # that imports itself would do so without end.
        budget = cast(BoundedSandbox, self.environment).budget
        budget.enter()
        try:
            return super().make_module(vars, shared, locals)
        finally:
            budget.leave()


#: A Python object's default text, which holds its address in memory (``<function f at
#: 0x7f…>``): different in every process, so a prompt that shows it differs on every build.
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+>")


class MessageNamespace(Namespace):
    """``namespace()``, whose writes last for the message being rendered: a namespace made in
    the module of a template imported without context (which Jinja makes once and keeps)
    starts each message as it was made, so that one request's prompt cannot depend on the
    requests rendered before it. Its state is kept apart from :class:`Namespace`'s own."""

    def __init__(self, budget: Budget, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        made = dict(*args, **kwargs)
        object.__setattr__(self, "_state", [budget, made, budget.messages, dict(made)])

    def _now(self) -> dict[str, Any]:
        """The attributes as the message rendering now sees them."""
        state = object.__getattribute__(self, "_state")
        budget, made, message, attrs = state
        if budget.messages != message:  # another message: as it was made
            attrs = state[3] = dict(made)
            state[2] = budget.messages
        return cast(dict[str, Any], attrs)

    def __getattribute__(self, name: str) -> Any:
        if name in ("__class__", "_now"):
            return object.__getattribute__(self, name)
        try:
            return MessageNamespace._now(self)[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setitem__(self, name: str, value: Any) -> None:
        MessageNamespace._now(self)[name] = value

    def __repr__(self) -> str:
        return f"<Namespace {MessageNamespace._now(self)!r}>"


#: The filters that write a value's text (``str()`` or ``repr()``) of any object.
_TO_TEXT = frozenset({"string", "pprint", "format", "safe", "e", "escape", "forceescape"})

#: The filters that change the text of the value they are given (any object's, if it is none).
_OF_TEXT = frozenset(
    {
        "capitalize",
        "center",
        "indent",
        "lower",
        "replace",
        "striptags",
        "title",
        "trim",
        "truncate",
        "upper",
        "urlencode",
        "urlize",
        "wordcount",
        "wordwrap",
    }
)

#: The ``str`` methods that write their arguments' text.
_FORMATS = frozenset({"format", "format_map"})


class StrictUndefined(jinja2.StrictUndefined):
    """Jinja's strict undefined, strict in a container's text too: ``{{ [item.questoin] }}``
    and ``map(attribute=…)|list`` turn their items into text by ``repr``, which wrote a
    misspelt attribute as ``Undefined`` into prompts, item ids and gold answers."""

    def __repr__(self) -> str:
        return self.__str__()  # raises UndefinedError (SecurityError for an unsafe name)


#: Values whose text holds no address, whatever their value.
_PLAIN = (str, int, float, Decimal, type(None), Undefined)


def _address_error() -> TemplateRuntimeError:
    return TemplateRuntimeError(
        "a Python object's text holds its address in memory, which differs on every "
        "build: write what it holds instead"
    )


def refuse_addresses(values: Iterable[Any]) -> None:
    """Refuses to turn into text a value whose text holds a Python object's address
    (``markers|string``, ``"%s" % joiner()``, ``"{}".format(x)``): the ``{{ }}`` check sees
    only the text made of it.

    Raises:
        TemplateRuntimeError: One of ``values`` is such a value.
    """
    for value in values:
        if not isinstance(value, _PLAIN) and _ADDRESS.search(str(value)):
            raise _address_error()


def shown(value: Any) -> Any:
    """What ``{{ value }}`` writes (Jinja's ``finalize`` hook): refuses a function (a helper
    written without its call, ``{{ markers.question }}``) and a value whose text holds a
    Python object's address; text itself is written as it is.

    Raises:
        TemplateRuntimeError: The value is one of those.
    """
    if isinstance(value, str):
        return value
    if callable(value) and not isinstance(value, Undefined):
        raise TemplateRuntimeError(
            "{{ … }} writes a function, not its result: call it, e.g. "
            "{{ markers.question(i) }} rather than {{ markers.question }}"
        )
    if not isinstance(value, (int, float, Undefined)) and _ADDRESS.search(str(value)):
        raise TemplateRuntimeError(
            "{{ … }} writes a Python object's text, which holds its address in memory and "
            "differs on every build"
        )
    return value


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with the budget's checks in its public hooks.

    Attributes:
        budget: The counters of the message being rendered (the renderer starts and stops
            them around each message block).
    """

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    template_class = BoundedTemplate

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=shown, **options)
        self.budget = Budget()
        # lipsum() and |random draw at random: a prompt (or an item id) must not change from
        # one build to the next.
        self.globals.pop("lipsum", None)
        self.filters.pop("random", None)
        self.filters.update(
            {name: bounded_filter(name, fn, self.budget) for name, fn in self.filters.items()}
        )
        # Jinja's own range, which refuses more than its MAX_RANGE items.
        jinja_range = cast(Callable[..., range], self.globals["range"])
        budget = self.budget

        def counted_range(*args: int) -> CountedRange:
            return CountedRange(jinja_range(*args), budget)

        self.globals["range"] = counted_range

        def message_namespace(*args: Any, **kwargs: Any) -> MessageNamespace:
            return MessageNamespace(budget, *args, **kwargs)

        self.globals["namespace"] = message_namespace

    def preprocess(self, source: str, name: str | None = None, filename: str | None = None) -> str:
        """Refuses a source nested deeper than the budget allows, before it is parsed."""
        check_nesting(self, source, name, filename)
        return super().preprocess(source, name, filename)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        check_binop(operator, left, right)
        if operator == "%" and isinstance(left, str):  # "%s" % x writes x's text
            refuse_addresses(right if isinstance(right, tuple) else (right,))
        return checked(super().call_binop(context, operator, left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Jinja's call (its safety check included), nested within the budget; a ``str``
        method's width is checked before it runs, every result after."""
        check_call(obj, args, kwargs)
        method = getattr(obj, "__wrapped__", obj)  # the sandbox wraps str.format
        if isinstance(getattr(method, "__self__", None), str) and method.__name__ in _FORMATS:
            refuse_addresses((*args, *kwargs.values()))  # "{}".format(x) writes x's text
        budget = self.budget
        budget.enter()
        try:
            result = super().call(context, obj, *args, **kwargs)
        finally:
            budget.leave()
        if isinstance(result, str) and len(result) <= MAX_VALUE_SIZE:  # the common case, fast
            return result
        return checked(result)
