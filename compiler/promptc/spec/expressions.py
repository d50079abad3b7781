"""Item id and gold expressions (``data.id``, ``data.gold``): Jinja, in the sandbox every
template renders in (:class:`~promptc.sandbox.environment.BoundedSandbox`), its budgets
counted afresh for each row, under the OS time and memory limits a message renders under
(:mod:`promptc.sandbox.os_limits`: ``~`` and loops over lists meet no hook of the sandbox).

Only a spec that writes an expression needs this module (and Jinja, a few tens of
milliseconds to import): :mod:`promptc.spec.items` imports it when it meets one.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from jinja2 import Template, TemplateError, TemplateRuntimeError, nodes

from promptc.errors import TemplateError as BudgetError
from promptc.sandbox.budget import budget_error, checked
from promptc.sandbox.environment import BoundedSandbox, StrictUndefined, shown
from promptc.sandbox.os_limits import OsLimits

__all__ = [
    "BudgetError",
    "TemplateError",
    "bounded_by_its_values",
    "compile_expression",
    "render_expression",
    "render_lookup",
]


def _not_null(value: Any) -> Any:
    """What ``{{ value }}`` writes in an expression: as in a template (:func:`shown`), but a
    null (a JSON ``null`` the expression reached) is refused, never the text ``None`` (an item
    whose gold answer would be the word None, or whose id is ``None``), and a number is
    written in positional notation.

    Raises:
        TemplateRuntimeError: The value is null, or one a template may not write either.
    """
    if value is None:
        raise TemplateRuntimeError("its value is null; expected a value")
    if isinstance(value, Decimal) and value.is_finite() and abs(value.adjusted()) <= 1000:
        # A JSON number with a fraction or an exponent, in positional notation, as a gold
        # column gives it: 1e-7 is 0.0000001, not Decimal's 1E-7.
        return format(value, "f")
    return shown(value)


_ENVIRONMENT = BoundedSandbox(undefined=StrictUndefined, autoescape=False)
_ENVIRONMENT.finalize = _not_null  # before any expression is compiled: Jinja compiles it in


def compile_expression(source: str) -> Template:
    """The template of an expression, rendered with ``row``, ``index`` and ``loop_index``
    (:func:`render_expression`).

    Raises:
        TemplateError: The expression is not valid Jinja.
        BudgetError: It nests deeper than the sandbox's budget allows.
    """
    return _ENVIRONMENT.from_string(source)


#: The nodes of an expression that only looks values up (``{{ row.pid }}``,
#: ``q{{ loop_index }}``): its text is at most its values', so it renders without the OS
#: limits, which cost more than such an expression (20 µs a row: 200,000 rows took 3 times
#: as long to check).
_LOOKUPS: tuple[type[nodes.Node], ...] = (
    *(nodes.Template, nodes.Output, nodes.TemplateData, nodes.Name),
    *(nodes.Getattr, nodes.Getitem, nodes.Const),
)


def bounded_by_its_values(source: str) -> bool:
    """Whether the expression ``source`` (valid Jinja) only writes text and looked-up values:
    no operator, filter, call, test, loop or assignment that could build a larger value."""
    return all(isinstance(n, _LOOKUPS) for n in _ENVIRONMENT.parse(source).find_all(nodes.Node))


def render_lookup(template: Template, **values: Any) -> str:
    """One row's value of an expression that only looks values up
    (:func:`bounded_by_its_values`), within the sandbox's budgets."""
    budget = _ENVIRONMENT.budget
    budget.start()
    try:
        return str(checked(template.render(**values)))
    finally:
        budget.stop()


def render_expression(template: Template, **values: Any) -> str:
    """One row's value of an expression, within the budgets of one rendered message (each
    value's size, the value written among them, loops, nesting, time, memory).

    Its OS limits cost about 20 µs a row, more than a short expression takes; inside a
    block that holds them already (a row read back while requests render) they cost nothing.

    Rendered as :meth:`Template.render` does, without its rewriting of a failure's traceback
    into template lines (no caller shows them): that traceback holds the failure in its own
    frames, a cycle that would keep the row's values (up to the memory limit) until Python's
    next garbage collection, and the next row's memory limit above them.

    Raises:
        BudgetError: A budget crossed; the memory limit too (not a ``MemoryError``).
        Exception: Whatever else the expression raises (a sandbox refusal, an undefined
            name): the caller reports it as the expression's failure.
    """
    budget = _ENVIRONMENT.budget
    budget.start()
    try:
        with OsLimits(budget):
            text = _ENVIRONMENT.concat(template.root_render_func(template.new_context(values)))
        return str(checked(text))
    except MemoryError:
        pass  # said below, outside the handler: the error holds none of the expression's frames
    finally:
        budget.stop()
    raise budget_error("the memory this process may use", "the expression asked for more")
