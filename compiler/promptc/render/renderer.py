"""Rendering: batches → requests (chat messages), through the strategies' Jinja templates.

A template is one file per strategy (``templates/single.j2``, ``few-shot.j2``, ``batch.j2``,
``auto-demo.j2``). It defines two blocks, each one chat message::

    {% block system %} … {% endblock %}   → the system message (omitted when empty)
    {% block user %} … {% endblock %}     → the user message (required)

The blocks are rendered separately (``Template.blocks``), so a template reads as the two
messages it produces. A spec's own template may ``{% extends "promptc/batch.j2" %}`` and
override only the blocks it changes; shipped templates and partials are named
``promptc/<file>``, a spec's own files by their path inside the spec's folder. Text outside
the blocks belongs to no message and is refused by :func:`check_templates`.

Templates run in Jinja's immutable sandbox with ``StrictUndefined``: they can read the
documented context (see ``docs/templates.md``) and nothing else, cannot mutate it, and cannot
read files outside the spec's folder. Every Jinja failure becomes a
:class:`~promptc.errors.TemplateError` at the template's file:line.
"""

from __future__ import annotations

import functools
import itertools
import sys
import traceback
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any

import jinja2
import jinja2.runtime
from jinja2 import nodes
from jinja2.exceptions import SecurityError

from promptc import ir, markers
from promptc.errors import Location, PromptcError
from promptc.render.context import task_context
from promptc.render.environment import (
    BUILTIN_PREFIX,
    Role,
    SpecLoader,
    make_environment,
    shipped_names,
    spec_roots,
    template_error,
    template_name,
)
from promptc.render.output_budget import request_budget
from promptc.sandbox.budget import MAX_MESSAGE_CHARS, budget_error
from promptc.sandbox.os_limits import OsLimits
from promptc.select.batches import batch_size
from promptc.strategies import Strategy, strategy
from promptc.text import gc_paused

if TYPE_CHECKING:
    from promptc.select.batches import SelectionResult


#: The message blocks of a template, in message order, with their chat roles.
MESSAGE_BLOCKS: tuple[tuple[str, Role], ...] = (("system", "system"), ("user", "user"))


# ---------------------------------------------------------------- rendering


#: Requests rendered in one go under the OS limits (:mod:`promptc.sandbox.os_limits`), and the
#: characters after which a group ends early. Taking and releasing the limits costs 20 to
#: 50 µs (measured), under a quarter of a µs a request over 256 (a few-shot prompt renders in
#: about 15 µs); a larger group would hold more requests in memory until it ends.
GROUP_REQUESTS = 256
GROUP_CHARS = 2 * MAX_MESSAGE_CHARS

#: The bound a message's length crosses, as its ``template-budget`` error names it.
MESSAGE_LIMIT = f"{MAX_MESSAGE_CHARS:,} characters per message"


class Renderer:
    """Compiles a task's template once and renders every batch with it.

    Attributes:
        loader: Records every template file loaded (``loader.used``), for the manifest.
    """

    def __init__(self, task: ir.Task, kind: Strategy | str | None = None) -> None:
        self.task = task
        self.kind: Strategy = strategy(kind) if kind is not None else task.strategy.kind
        self.loader = SpecLoader(task.spec_dir, spec_roots(task)[1:])
        self.env = make_environment(self.loader)
        self.name = template_name(task, self.kind)
        self.location = task.template_for(self.kind).location
        self._cache: dict[str, str] = {}
        self._chars = 0  # characters rendered so far, for the size of a group

    # -- compilation

    @functools.cached_property
    def chain(self) -> list[jinja2.Template]:
        """The template and the templates it extends, most derived first (compiled once)."""
        with self.errors():
            chain = [self.env.get_template(self.name)]
            while True:
                parent = _parent_name(self.env, chain[-1])
                if parent is None:
                    break
                if any(t.name == parent for t in chain):
                    raise template_error("template-extends-cycle", name=repr(parent))
                chain.append(self.env.get_template(parent))
            roots = {n for t in chain for n in t.blocks}
            if "user" not in roots:
                raise template_error(
                    "template-no-user-block",
                    Location(self.display(chain[0])),
                    name=repr(self.name),
                )
        return chain

    @functools.cached_property
    def constant_blocks(self) -> frozenset[str]:
        """The message blocks that read nothing that changes from request to request.

        Decided from the templates' source: a block is constant when neither it (in any
        template of the chain, for ``super()``), nor the blocks nested in it, nor the templates
        it includes read ``items``, ``item`` or ``self``. Those blocks are rendered once (the
        system message of the shipped templates, with all its demos, is one of them).
        """
        constant = []
        for block, _ in MESSAGE_BLOCKS:
            reads = _block_reads(self.env, self.loader, self.chain, block)
            if reads is not None and not reads & PER_REQUEST:
                constant.append(block)
        return frozenset(constant)

    def display(self, template: jinja2.Template) -> str:
        return template.filename or template.name or self.name

    # -- rendering

    @functools.cached_property
    def shared(self) -> dict[str, object]:
        return task_context(self.task, self.kind)

    def context(self, batch: ir.Batch, items: Sequence[ir.Item]) -> dict[str, object]:
        """The per-request variables of a batch (``items``, and ``item`` for one-item
        strategies); :meth:`messages` adds the shared ones.

        Args:
            batch: The batch.
            items: The task's items, by position (``batch.item_indices`` index them).
        """
        return self._request_vars((items[p].id, items[p].inputs) for p in batch.item_indices)

    def _request_vars(self, members: Iterable[tuple[str, Mapping[str, str]]]) -> dict[str, object]:
        """``items`` (and ``item``) for the ``(id, inputs)`` of a request's members or demos:
        each one's lines as the batch shows them (:func:`promptc.markers.question_block`),
        made here in Python: in a template, a call per item through the sandbox cost a tenth
        of the render."""
        task = self.task
        entries = [
            {
                "index": i,
                "id": item_id,
                "fields": inputs,
                "question": markers.question_text(task.inputs, inputs),
                "block": markers.question_block(task.inputs, inputs, i, task.markers),
            }
            for i, (item_id, inputs) in enumerate(members, 1)
        ]
        ctx: dict[str, object] = {"items": entries}
        if self.kind.one_item and entries:
            ctx["item"] = entries[0]
        return ctx

    @functools.cached_property
    def _prepared(self) -> tuple[jinja2.Template, jinja2.runtime.Context, dict[str, list[Any]]]:
        """The Jinja context every request renders in, made once: the template's globals and
        the shared variables as its parent, the block functions of the whole chain."""
        chain = self.chain
        top = chain[0]
        parent = dict(top.globals)
        parent.update(self.shared)
        # shared=True: ``parent`` already holds the globals; Jinja need not merge them.
        jctx = top.new_context(parent, shared=True)
        blocks: dict[str, list[Any]] = {}
        for t in chain:  # most derived first, as Jinja's {% extends %} orders them
            for name, fn in t.blocks.items():
                blocks.setdefault(name, []).append(fn)
        jctx.blocks = blocks  # only read while blocks render (no {% extends %} runs here)
        return top, jctx, blocks

    def messages(self, ctx: Mapping[str, object]) -> tuple[ir.Message, ...]:
        """Renders the message blocks of the template with a context."""
        with self.errors(), OsLimits(self.env.budget):
            return self._messages(dict(ctx))

    @functools.cached_property
    def demo_turns(self) -> tuple[ir.Message, ...]:
        """With ``demos_as: turns``: per batch of demos (one demo for ``few-shot``), a user
        message (the template's user block, the demos as its items) and an assistant message
        (their answers as the answer grammar writes them); the same for every request."""
        # Imported here: the grammar (lark, 46 ms) is needed only for demos sent as turns, and
        # `promptc check` of a spec with its own template renders a request without it.
        from promptc.grammar.answer import build_grammar

        task = self.task
        turns: list[ir.Message] = []
        if task.demos_as == "turns" and self.kind.shows_demos and task.demos:
            size = self.kind.items_per_request(batch_size(task))
            _, jctx, blocks = self._prepared
            fns = blocks.get("user") or []
            demos = list(task.demos)
            for start in range(0, len(demos), size):
                group = demos[start : start + size]
                jctx.vars = self._request_vars(
                    (f"demo-{start + k}", d.inputs) for k, d in enumerate(group, 1)
                )
                user = self._bounded_text("user", fns[0](jctx)).strip() if fns else ""
                g = build_grammar(task, len(group), self.kind)
                questions = [markers.question_text(task.inputs, d.inputs) for d in group]
                answer = g.write_output([d.outputs for d in group], questions)
                turns += [ir.Message("user", user), ir.Message("assistant", answer)]
        return tuple(turns)

    def _messages(self, ctx: dict[str, object]) -> tuple[ir.Message, ...]:
        """The messages of one request; ``ctx`` (the request's own variables, made for it)
        becomes the Jinja context's ``vars``."""
        turns = self.demo_turns
        top, jctx, blocks = self._prepared
        constant = self.constant_blocks
        # One Jinja context serves every request: the shared variables are its parent, the
        # request's own are its ``vars``. Blocks only read ``vars`` (their {% set %} are
        # local), so swapping the mapping is all a new request needs.
        jctx.vars = ctx
        out: list[ir.Message] = []
        has_user = False
        for block, role in MESSAGE_BLOCKS:
            text = self._cache.get(block)
            if text is None:
                fns = blocks.get(block)
                if not fns:
                    continue
                text = self._bounded_text(block, fns[0](jctx)).strip()
                if block in constant:
                    self._cache[block] = text
            if text:
                if role == "user":
                    out.extend(turns)
                    has_user = True
                out.append(ir.Message(role, text))
        if not has_user:
            raise template_error(
                "template-empty-user", Location(self.display(top)), name=repr(self.name)
            )
        return tuple(out)

    def _bounded_text(self, block: str, chunks: Iterator[str]) -> str:
        """A message block's text, rendered within a new budget, cut off past
        ``MAX_MESSAGE_CHARS``."""
        budget = self.env.budget
        budget.start()
        parts: list[str] = []
        size = 0
        try:
            for chunk in chunks:
                size += len(chunk)
                if size > MAX_MESSAGE_CHARS:
                    raise budget_error(
                        MESSAGE_LIMIT,
                        f"the {block} message grows longer",
                        self._block_location(block),
                    )
                parts.append(chunk)
        finally:
            budget.stop()
        self._chars += size
        return "".join(parts)

    def _block_location(self, block: str) -> Location:
        """Where a message block is defined: the most derived template that defines it."""
        for template in self.chain:
            for node in _template_ast(self.env, template).find_all(nodes.Block):
                if node.name == block:
                    return Location(self.display(template), node.lineno)
        return self.location

    def iter_render(self, selection: SelectionResult) -> Iterator[ir.Request]:
        """Renders the batches of a selection in order, handing each request out as soon as its
        group is rendered: a build streams them to disk, so memory does not grow with the
        number of requests."""
        batches = iter(selection.batches)
        width = id_width(self.task, selection)
        params = self.task.model.request_params()
        with self.errors(), gc_paused():
            while True:
                group, failure = self._render_group(batches, width, params)
                yield from group
                if failure is not None:
                    raise failure
                if not group:
                    return

    def _render_group(
        self,
        batches: Iterator[ir.Batch],
        width: int,
        params: Mapping[str, object],
    ) -> tuple[list[ir.Request], Exception | None]:
        """The next requests, up to :data:`GROUP_REQUESTS` (or :data:`GROUP_CHARS`), rendered
        under the OS limits, and the error that stopped the group early, if one did: the
        requests before it are handed out first, as one at a time would."""
        items = self.task.items
        group: list[ir.Request] = []
        end = self._chars + GROUP_CHARS
        with OsLimits(self.env.budget):
            for batch in itertools.islice(batches, GROUP_REQUESTS):
                rid = ir.request_id(batch.index, width, batch.round)
                try:
                    budget = request_budget(self.task, [items[i] for i in batch.item_indices])
                    messages = self._messages(self.context(batch, items))
                except PromptcError as e:  # iter_render raises it after the group
                    return group, self._of_request(e, rid, batch)
                except Exception as e:  # noqa: BLE001 - likewise, turned into one by errors()
                    return group, e
                params_ = params if budget is None else self.task.model.request_params(budget)
                group.append(ir.Request(rid, batch, self.kind, messages, params_))
                if self._chars > end:
                    break
        return group, None

    def _of_request(self, e: PromptcError, rid: str, batch: ir.Batch) -> PromptcError:
        """``e`` saying the request that was rendering and its items; past the message's
        length, the item with the longest inputs too, at its data line: a prompt grown too
        long by the data is the data's to fix."""
        chosen = [self.task.items[i] for i in batch.item_indices]
        ids = ", ".join(it.id for it in chosen[:5])
        more = f" and {len(chosen) - 5} more" if len(chosen) > 5 else ""
        note = f"while rendering request {rid}, of items {ids}{more}"
        if MESSAGE_LIMIT in e.message and chosen:  # the data may be what outgrew it
            longest = max(chosen, key=lambda it: sum(map(len, it.inputs.values())))
            size = sum(map(len, longest.inputs.values()))
            note += f"; its longest item is {longest.id}, {size:,} characters of inputs"
            note += f" at {longest.location}" if longest.location != ir.NOWHERE else ""
        e.hint = f"{e.hint}; {note}" if e.hint else note
        return e

    # -- errors

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Turns any Jinja failure inside the block into a TemplateError at file:line."""
        try:
            yield
        except PromptcError as e:
            if e.location is None:
                e.location = self._where(e.__traceback__) or self.location
            raise
        except jinja2.TemplateSyntaxError as e:
            raise template_error(
                "template-syntax", Location(e.filename or self.name, e.lineno or 0), error=e.message
            ) from None
        except (
            jinja2.TemplateError,
            RecursionError,
            MemoryError,
            ArithmeticError,
            LookupError,
            TypeError,
            ValueError,
            # What Jinja's filters raise for arguments they do not take ("abc"|truncate(-5),
            # "abc"|dictsort): the template's error, at its line.
            AssertionError,
            AttributeError,
        ) as e:
            raise self._failure(e) from None

    def _failure(self, e: Exception) -> PromptcError:
        """The error of a template that failed while it ran, at the innermost template line of
        the traceback."""
        where = self._where(e.__traceback__) or self.location
        if isinstance(e, jinja2.TemplateNotFound):
            shipped = ", ".join(BUILTIN_PREFIX + n for n in sorted(shipped_names()))
            return template_error("template-not-found", where, name=repr(e.name), shipped=shipped)
        if isinstance(e, SecurityError):
            return template_error("template-sandbox", where, error=e)
        if isinstance(e, jinja2.UndefinedError):
            return template_error("template-undefined", where, error=e.message)
        if isinstance(e, RecursionError):
            # The budget's nesting bound comes first; this is what Python's own stack bound
            # (deep filters, sorting) leaves.
            return budget_error(
                f"Python's stack of {sys.getrecursionlimit():,} frames",
                "the template nests deeper",
                where,
            )
        if isinstance(e, MemoryError):
            return budget_error(
                "the memory this process may use", "the template asked for more", where
            )
        return template_error("template-runtime", where, error=f"{type(e).__name__}: {e}")

    def _where(self, tb: TracebackType | None) -> Location | None:
        """The innermost template line in a traceback (Jinja rewrites frames to template lines)."""
        found = None
        for frame, lineno in traceback.walk_tb(tb):
            shown = frame.f_code.co_filename
            name = self.loader.paths.get(shown)
            if name is None:
                continue
            template = frame.f_globals.get("__jinja_template__")
            # Compiled template code: map its Python line to the template's (as jinja2.debug
            # does); other frames of that file are ones Jinja already rewrote.
            line = template.get_corresponding_lineno(lineno) if template is not None else lineno
            found = Location(shown, line)
        return found


def _parent_name(env: jinja2.Environment, template: jinja2.Template) -> str | None:
    """The name a template ``{% extends %}``, read from its source (static names only)."""
    ast = _template_ast(env, template)
    for node in ast.find_all(nodes.Extends):
        if isinstance(node.template, nodes.Const) and isinstance(node.template.value, str):
            return node.template.value
        raise template_error(
            "template-dynamic-extends", Location(template.filename or "", node.lineno)
        )
    return None


#: Variables whose value differs between requests (``self`` reaches any block).
PER_REQUEST = frozenset({"items", "item", "self"})


def _block_reads(
    env: jinja2.Environment, loader: SpecLoader, chain: list[jinja2.Template], block: str
) -> set[str] | None:
    """Every variable a block can read, through nested blocks, ``super()`` and includes;
    ``None`` when that cannot be known (an include with a computed name)."""
    asts = [_template_ast(env, t) for t in chain]
    names: set[str] = set()
    todo, done = [block], set()
    templates_done: set[str] = set()

    def template_reads(name: str) -> bool:
        if name in templates_done:
            return True
        templates_done.add(name)
        try:
            source, filename, _ = loader.get_source(env, name, record=False)
            ast = parse_cached(env, source, name, filename)
        except Exception:  # noqa: BLE001 - rendering will report it, at the include's line
            return False
        return subtree(ast)

    def subtree(node: nodes.Node) -> bool:
        names.update(n.name for n in node.find_all(nodes.Name) if n.ctx == "load")
        todo.extend(b.name for b in node.find_all(nodes.Block))
        for ref in node.find_all((nodes.Include, nodes.Import, nodes.FromImport)):
            target = getattr(ref, "template", None)
            if not (isinstance(target, nodes.Const) and isinstance(target.value, str)):
                return False
            if not template_reads(target.value):
                return False
        return True

    while todo:
        name = todo.pop()
        if name in done:
            continue
        done.add(name)
        for ast in asts:
            for b in ast.find_all(nodes.Block):
                if b.name == name and not subtree(b):
                    return None
    return names


def _template_ast(env: jinja2.Environment, template: jinja2.Template) -> nodes.Template:
    source, _, _ = env.loader.get_source(env, template.name or "")  # type: ignore[union-attr]
    return parse_cached(env, source, template.name, template.filename)


_ASTS: dict[tuple[str, str | None, str | None], nodes.Template] = {}


def parse_cached(
    env: jinja2.Environment, source: str, name: str | None, filename: str | None
) -> nodes.Template:
    """``env.parse``, remembered: the static checks read the same few templates many times.
    Every promptc environment parses alike (same syntax settings), and nothing mutates ASTs."""
    key = (source, name, filename)
    ast = _ASTS.get(key)
    if ast is None:
        if len(_ASTS) > 256:
            _ASTS.clear()
        ast = _ASTS[key] = env.parse(source, name, filename)
    return ast


def id_width(task: ir.Task, selection: SelectionResult) -> int:
    """The digits of the number in a request id (``r0007``): at least 4, and as many as a
    round's number of batches has (each voting round numbers its batches alike: r0007,
    r0007.v2)."""
    return max(4, len(str(len(selection.batches) // task.strategy.rounds)))


def request_ids(task: ir.Task, selection: SelectionResult) -> Iterator[str]:
    """The id of each batch's request, in order, as :meth:`Renderer.iter_render` names them,
    without rendering any."""
    width = id_width(task, selection)
    return (ir.request_id(b.index, width, b.round) for b in selection.batches)


def render(task: ir.Task, selection: SelectionResult) -> tuple[ir.Request, ...]:
    """Renders every batch of a selection into a request (chat messages + model parameters).

    Raises:
        TemplateError: At the template's file:line, for any template failure.
    """
    return tuple(Renderer(task).iter_render(selection))
