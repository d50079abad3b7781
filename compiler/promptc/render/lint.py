"""The template checks behind :func:`promptc.render.checks.check_templates`: syntax, files
outside the spec's folder, undeclared variables, attributes the sandbox refuses, text outside
the message blocks, and a trial render of the first request.
"""

from __future__ import annotations

from dataclasses import replace

import jinja2
from jinja2 import meta, nodes

from promptc import ir
from promptc.errors import Location, PromptcError, did_you_mean
from promptc.render.context import context_variables
from promptc.render.environment import template_error
from promptc.render.renderer import MESSAGE_BLOCKS, Renderer, parse_cached
from promptc.select.batches import Chunks, batch_size
from promptc.strategies import Strategy
from promptc.text import or_list


def check_kind(task: ir.Task, kind: Strategy) -> list[PromptcError]:
    r = Renderer(task, kind)
    allowed = context_variables(kind)
    errors: list[PromptcError] = []
    seen: set[str] = set()

    def visit(
        name: str, extra: frozenset[str], parent: Location, main: bool, optional: bool = False
    ) -> None:
        if name in seen:
            return
        seen.add(name)
        try:
            with r.errors():
                source, filename, _ = r.loader.get_source(r.env, name)
        except PromptcError as e:
            if optional and e.code == "template-not-found":
                return  # {% include … ignore missing %}: a missing file is none of its errors
            if e.code != "template-not-utf8":  # else at the byte, in the template itself
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
        errors.extend(_check_ast(r.env, ast, filename, allowed | extra))
        if main:
            errors.extend(_check_top_level(ast, filename, _parent_blocks(r, ast)))
        stored = frozenset(n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param"))
        for node in ast.find_all(
            (
                nodes.Extends,
                nodes.Include,
                nodes.Import,
                nodes.FromImport,
            )
        ):
            target = getattr(node, "template", None)
            if isinstance(target, nodes.Const) and isinstance(target.value, str):
                child_main = main and isinstance(node, nodes.Extends)
                optional = isinstance(node, nodes.Include) and node.ignore_missing
                where = Location(filename, node.lineno)
                visit(target.value, extra | stored, where, child_main, optional)

    visit(r.name, frozenset(), r.location, True)
    if errors:
        return errors
    # The static checks passed: a trial render finds what only running can (a missing key).
    # The first items in file order stand in for the first batch, whatever the selection
    # method (a similarity method would have to compute embeddings to say more).
    first = task.items[: batch_size(task)]
    if not first:  # a spec without data: try the template on a stand-in item
        first = (ir.Item("example", 0, {f.name: f"<{f.name}>" for f in task.inputs}),)
        task = replace(task, items=first)
    sample = Chunks(task, range(len(first)))[0]
    try:
        r.messages(r.context(sample, first))
    except PromptcError as e:
        errors.append(e)
    return errors


def _check_ast(
    env: jinja2.Environment,
    ast: nodes.Template,
    filename: str,
    allowed: frozenset[str],
) -> list[PromptcError]:
    errors: list[PromptcError] = []
    try:
        undeclared = meta.find_undeclared_variables(ast)
    except jinja2.TemplateSyntaxError as e:  # from the code generator: an unknown filter, test
        return [
            template_error("template-syntax", Location(filename, e.lineno or 0), error=e.message)
        ]
    except Exception as e:  # noqa: BLE001 - anything else the code generator refuses
        return [template_error("template-syntax", Location(filename), error=e)]
    # A name the template sets itself is its own, even where Jinja's code generator reports it
    # (set in one branch of an {% if %}, read after it: possibly unset there, which the trial
    # render catches, but no variable the template expects to be given).
    assigned = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for var in sorted(undeclared - allowed - assigned):
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
    return errors


def _extends(ast: nodes.Template) -> str | None:
    """The name a template's top-level ``{% extends %}`` gives, if it gives a constant one."""
    for node in ast.body:
        if isinstance(node, nodes.Extends):
            target = node.template
            if isinstance(target, nodes.Const) and isinstance(target.value, str):
                return target.value
    return None


def _parent_blocks(r: Renderer, ast: nodes.Template) -> tuple[str, list[str]] | None:
    """The template a main template extends, and the blocks it and the templates it extends in
    turn define, in order: the only blocks of the child that render (Jinja drops any other
    without a word). ``None`` when the template extends nothing, or a parent is named by an
    expression or cannot be read (that error is reported where the parent is visited)."""
    parent = _extends(ast)
    if parent is None:
        return None
    names: dict[str, None] = {}
    name: str | None = parent
    seen: set[str] = set()
    while name is not None:
        if name in seen:
            return None
        seen.add(name)
        try:
            with r.errors():
                source, filename, _ = r.loader.get_source(r.env, name)
                ast = parse_cached(r.env, source, name, filename)
        except PromptcError:
            return None
        names.update(dict.fromkeys(b.name for b in ast.find_all(nodes.Block)))
        name = _extends(ast)
    return parent, list(names)


def _check_top_level(
    ast: nodes.Template, filename: str, parent: tuple[str, list[str]] | None
) -> list[PromptcError]:
    """Only blocks (and ``extends``) may stand at a main template's top level, and only the
    message blocks — or, in a template that extends another (``parent``: its name and
    blocks), the blocks that one defines."""
    errors: list[PromptcError] = []
    extends = any(isinstance(n, nodes.Extends) for n in ast.body)
    names = [b for b, _ in MESSAGE_BLOCKS] if parent is None else parent[1]
    expected = or_list([repr(n) for n in names])
    if parent is not None:
        expected = f"a block {parent[0]!r} defines ({expected or 'it defines none'})"
    for node in ast.body:
        if isinstance(node, nodes.Extends):
            continue
        if isinstance(node, nodes.Block):
            if (not extends or parent is not None) and node.name not in names:
                errors.append(
                    template_error(
                        "template-unknown-block",
                        Location(filename, node.lineno),
                        did_you_mean(node.name, names),
                        name=repr(node.name),
                        expected=expected,
                    )
                )
            continue
        if isinstance(node, nodes.Output) and all(
            isinstance(c, nodes.TemplateData) and not c.data.strip() for c in node.nodes
        ):
            continue
        errors.append(template_error("template-outside-block", Location(filename, node.lineno)))
    return errors


__all__ = ["check_kind"]
