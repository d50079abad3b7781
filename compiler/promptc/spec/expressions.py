"""Item id and gold expressions (``data.id``, ``data.gold``): Jinja, in an immutable sandbox
whose ``*`` and ``**`` cannot build huge values.

Only a spec that writes an expression needs this module (and Jinja, a few tens of
milliseconds to import): :mod:`promptc.spec.items` imports it when it meets one.
"""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = ["MAX_ID_LENGTH", "TemplateError", "compile_expression"]

MAX_ID_LENGTH = 1000
"""Longest value an expression's operators may build (``'x' * 10**9`` would take a gigabyte)."""


class _ExpressionEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, with ``*`` and ``**`` bounded through its public operator hooks."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise SecurityError("exponent too large in an item id expression")
        if operator == "*":
            count = right if isinstance(right, int) else left if isinstance(left, int) else 1
            other = left if isinstance(right, int) else right
            if isinstance(other, (str, list, tuple)) and count * len(other) > MAX_ID_LENGTH:
                raise SecurityError("repetition too long in an item id expression")
        return super().call_binop(context, operator, left, right)


_ENVIRONMENT = _ExpressionEnvironment(undefined=StrictUndefined, autoescape=False)


def compile_expression(source: str) -> Template:
    """The template of an expression, rendered with ``row``, ``index`` and ``loop_index``.

    Raises:
        TemplateError: The expression is not valid Jinja.
    """
    return _ENVIRONMENT.from_string(source)
