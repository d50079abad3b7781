"""Static template checks, before anything is rendered: undeclared variables and text outside
the message blocks, each located at the template's file:line.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from promptc import ir
from promptc.errors import Location, PromptcError, PromptcErrors, did_you_mean
from promptc.render.context import context_variables
from promptc.render.environment import template_error

if TYPE_CHECKING:
    import jinja2
    import jinja2.runtime
    from jinja2 import nodes


# ---------------------------------------------------------------- static checks


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
    kinds: list[ir.StrategyKind] = []
    if shipped or task.template_for(task.strategy.kind).path is not None:
        kinds.append(task.strategy.kind)
    kinds += [t.kind for t in task.templates if t.path is not None and t.kind not in kinds]
    for kind in kinds:
        errors.extend(_check_kind(task, kind))
    return errors


def _check_kind(task: ir.Task, kind: ir.StrategyKind) -> list[PromptcError]:
    import jinja2

    # The renderer (and Jinja) only when a template is checked: see check_templates.
    from promptc.render.renderer import Renderer, parse_cached

    r = Renderer(task, kind)
    allowed = context_variables(kind)
    errors: list[PromptcError] = []
    seen: set[str] = set()

    def visit(name: str, extra: frozenset[str], parent: Location, main: bool) -> None:
        if name in seen:
            return
        seen.add(name)
        try:
            with r._errors():
                source, filename, _ = r.loader.get_source(r.env, name)
        except PromptcError as e:
            e.location = parent if parent.line else (e.location or parent)
            errors.append(e)
            return
        try:
            ast = parse_cached(r.env, source, name, filename)
        except jinja2.TemplateSyntaxError as e:
            errors.append(
                template_error(
                    "template-syntax", Location(filename, e.lineno or 0), error=e.message
                )
            )
            return
        errors.extend(_check_ast(r.env, ast, filename, allowed | extra, main))
        stored = frozenset(
            n.name for n in ast.find_all(jinja2.nodes.Name) if n.ctx in ("store", "param")
        )
        for node in ast.find_all(
            (
                jinja2.nodes.Extends,
                jinja2.nodes.Include,
                jinja2.nodes.Import,
                jinja2.nodes.FromImport,
            )
        ):
            target = getattr(node, "template", None)
            if isinstance(target, jinja2.nodes.Const) and isinstance(target.value, str):
                child_main = main and isinstance(node, jinja2.nodes.Extends)
                visit(target.value, extra | stored, Location(filename, node.lineno), child_main)

    visit(r.name, frozenset(), r.location, True)
    if errors:
        return errors
    # The static checks passed: a trial render finds what only running can (a missing key).
    # The first items in file order stand in for the first batch, whatever the selection
    # method (a similarity method would have to compute embeddings to say more).
    from promptc.select.batches import batch_size, chunk

    first = task.items[: batch_size(task)]
    if not first:  # a spec without data: try the template on a stand-in item
        first = (ir.Item("example", 0, {f.name: f"<{f.name}>" for f in task.inputs}),)
        task = replace(task, items=first)
    sample = chunk(task, range(len(first)))[0]
    try:
        r.chain()
        r.messages(r.context(sample, first))
    except PromptcError as e:
        errors.append(e)
    return errors


def _check_ast(
    env: jinja2.Environment,
    ast: nodes.Template,
    filename: str,
    allowed: frozenset[str],
    main: bool,
) -> list[PromptcError]:
    from jinja2 import meta, nodes

    errors: list[PromptcError] = []
    try:
        undeclared = meta.find_undeclared_variables(ast)
    except Exception as e:  # noqa: BLE001 - TemplateAssertionError from the code generator
        return [template_error("template-syntax", Location(filename), error=e)]
    for var in sorted(undeclared - allowed):
        line = min(
            (n.lineno for n in ast.find_all(nodes.Name) if n.name == var and n.ctx == "load"),
            default=0,
        )
        hint = did_you_mean(var, allowed)
        errors.append(
            template_error(
                "template-undeclared-variable",
                Location(filename, line),
                hint,
                name=repr(var),
                allowed=", ".join(sorted(allowed)),
            )
        )
    # find_all walks a chain a.b.c outside-in; reversed and stably sorted by line, the
    # attributes of a line come in the order they are written.
    reads = list(ast.find_all((nodes.Getattr, nodes.Getitem)))
    reads.reverse()
    reads.sort(key=lambda n: n.lineno)
    for node in reads:
        if isinstance(node, nodes.Getattr):
            attr: object = node.attr
        else:
            arg = getattr(node, "arg", None)
            attr = arg.value if isinstance(arg, nodes.Const) else None
        if isinstance(attr, str) and attr.startswith("_"):
            errors.append(
                template_error(
                    "template-sandbox-attribute", Location(filename, node.lineno), attr=repr(attr)
                )
            )
    if main:
        errors.extend(_check_top_level(ast, filename))
    return errors


def _check_top_level(ast: nodes.Template, filename: str) -> list[PromptcError]:
    """Only blocks (and ``extends``) may stand at a main template's top level."""
    from jinja2 import nodes

    errors: list[PromptcError] = []
    extends = any(isinstance(n, nodes.Extends) for n in ast.body)
    from promptc.render.renderer import MESSAGE_BLOCKS

    names = [b for b, _ in MESSAGE_BLOCKS]
    for node in ast.body:
        if isinstance(node, nodes.Extends):
            continue
        if isinstance(node, nodes.Block):
            if not extends and node.name not in names:
                errors.append(
                    template_error(
                        "template-unknown-block",
                        Location(filename, node.lineno),
                        did_you_mean(node.name, names),
                        name=repr(node.name),
                        expected=" or ".join(repr(n) for n in names),
                    )
                )
            continue
        if isinstance(node, nodes.Output) and all(
            isinstance(c, nodes.TemplateData) and not c.data.strip() for c in node.nodes
        ):
            continue
        errors.append(template_error("template-outside-block", Location(filename, node.lineno)))
    return errors


def raise_template_errors(task: ir.Task) -> None:
    """Raises :func:`check_templates`' findings together, if there are any."""
    errors = check_templates(task, shipped=True)
    if errors:
        raise PromptcErrors(errors)


__all__ = ["check_templates", "raise_template_errors"]
