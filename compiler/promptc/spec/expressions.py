"""Item id and gold expressions (``data.id``, ``data.gold``): Jinja, in the sandbox every
template renders in (:class:`~promptc.sandbox.environment.BoundedSandbox`), its budgets
counted afresh for each row.

Only a spec that writes an expression needs this module (and Jinja, a few tens of
milliseconds to import): :mod:`promptc.spec.items` imports it when it meets one.
"""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError

from promptc.errors import TemplateError as BudgetError
from promptc.sandbox.environment import BoundedSandbox

__all__ = ["BudgetError", "TemplateError", "compile_expression", "render_expression"]

_ENVIRONMENT = BoundedSandbox(undefined=StrictUndefined, autoescape=False)


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
