"""Item id and gold expressions (``data.id``, ``data.gold``): Jinja, in the sandbox every
template renders in (:class:`~promptc.sandbox.environment.BoundedSandbox`), its budgets
counted afresh for each row.

Only a spec that writes an expression needs this module (and Jinja, a few tens of
milliseconds to import): :mod:`promptc.spec.items` imports it when it meets one.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from jinja2 import Template, TemplateError, TemplateRuntimeError

from promptc.errors import TemplateError as BudgetError
from promptc.sandbox.environment import BoundedSandbox, StrictUndefined, shown

__all__ = ["BudgetError", "TemplateError", "compile_expression", "render_expression"]


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


def render_expression(template: Template, **values: Any) -> str:
    """One row's value of an expression, within the budgets of one rendered message (each
    value's size, loops, nesting, time).

    Raises:
        Exception: Whatever the expression raises (a sandbox refusal, a budget crossed, an
            undefined name): the caller reports it as the expression's failure.
    """
    budget = _ENVIRONMENT.budget
    budget.start()
    try:
        return str(template.render(**values))
    finally:
        budget.stop()
