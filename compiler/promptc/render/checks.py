"""Static template checks, before anything is rendered: undeclared variables and text outside
the message blocks, each located at the template's file:line.
"""

from __future__ import annotations

from promptc import ir
from promptc.errors import PromptcError, PromptcErrors
from promptc.strategies import Strategy


def check_templates(task: ir.Task, *, shipped: bool = False) -> list[PromptcError]:
    """Finds every problem in the templates a task would use, without raising.

    Checks the strategy's template, the templates it extends, includes and imports, and the
    spec's own templates for the other strategies: syntax, files outside the spec's folder,
    variables that are not part of the documented context (at the line of their first use),
    attributes the sandbox refuses (``__class__``), text outside the message blocks, and
    finally a trial render of the first request.

    Args:
        task: The compiled task.
        shipped: Check the strategy's template even when it is the one shipped with promptc.
            By default it is not: the shipped templates read only values the spec's
            validation has already checked, and promptc's tests hold every one of them to
            these checks for every example spec and strategy, so a spec that uses them costs
            no Jinja at all to check (Jinja's import and compilation were most of the time of
            ``promptc check`` on a small spec).
    """
    errors: list[PromptcError] = []
    kinds: list[Strategy] = []
    if shipped or task.template_for(task.strategy.kind).path is not None:
        kinds.append(task.strategy.kind)
    kinds += [t.kind for t in task.templates if t.path is not None and t.kind not in kinds]
    if kinds:
        # Jinja, the renderer and the checks themselves load only when there is a
        # template to check: importing them costs 40-60 ms (measured), as much again as the
        # rest of `promptc check` of a small spec.
        from promptc.render.lint import check_kind

        for kind in kinds:
            errors.extend(check_kind(task, kind))
    return errors


def raise_template_errors(task: ir.Task) -> None:
    """Raises :func:`check_templates`' findings together, if there are any."""
    errors = check_templates(task, shipped=True)
    if errors:
        raise PromptcErrors(errors)


__all__ = ["check_templates", "raise_template_errors"]
