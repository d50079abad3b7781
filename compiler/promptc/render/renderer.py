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

import hashlib
import os
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from promptc import ir, markers
from promptc.errors import Location, PromptcError, PromptcErrors, TemplateError, did_you_mean
from promptc.resources import read_template, template_names

if TYPE_CHECKING:
    import jinja2
    import jinja2.runtime
    from jinja2 import nodes

    from promptc.select.methods import SelectionResult

Role = Literal["system", "user", "assistant"]

#: Shipped templates and partials are named with this prefix in ``include`` and ``extends``.
BUILTIN_PREFIX = "promptc/"
#: How shipped templates are shown in error locations.
BUILTIN_DISPLAY = "<promptc>/"
#: The message blocks of a template, in message order, with their chat roles.
MESSAGE_BLOCKS: tuple[tuple[str, Role], ...] = (("system", "system"), ("user", "user"))

#: Variables every template receives (see docs/templates.md).
CONTEXT_VARIABLES: frozenset[str] = frozenset(
    {
        "task",
        "kind",
        "batch_size",
        "inputs",
        "outputs",
        "answer_format",
        "demos",
        "items",
        "markers",
    }
)
#: Only ``single`` and ``few-shot`` requests hold exactly one item, also given as ``item``.
ONE_ITEM_VARIABLES: frozenset[str] = frozenset({"item"})

TYPE_MEANINGS: Mapping[str, str] = {
    "text": "free text",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "yes or no",
}


def context_variables(kind: ir.StrategyKind) -> frozenset[str]:
    """The names a template of this strategy may use."""
    if kind in ("single", "few-shot"):
        return CONTEXT_VARIABLES | ONE_ITEM_VARIABLES
    return CONTEXT_VARIABLES


def template_name(task: ir.Task, kind: ir.StrategyKind) -> str:
    """The loader name of the template a task uses for a strategy."""
    ref = task.template_for(kind)
    if ref.path is None:
        return f"{BUILTIN_PREFIX}{kind}.j2"
    for root in spec_roots(task):
        rel = os.path.relpath(ref.path, root)
        if not rel.startswith(".."):
            return rel.replace(os.sep, "/")
    return os.path.relpath(ref.path, task.spec_dir).replace(os.sep, "/")


def spec_roots(task: ir.Task) -> list[str]:
    """The folders a task's own templates may come from: the spec's, then those of the specs
    it extends (a template named in a base spec is relative to, and inside, the base's folder)."""
    roots = [task.spec_dir]
    for inherited in task.extends:
        folder = os.path.dirname(inherited.path)
        if folder not in roots:
            roots.append(folder)
    return roots


def display_path(path: str) -> str:
    """A file path as error messages show it: relative to the working folder when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if rel.startswith("..") else rel


@dataclass(frozen=True)
class TemplateSource:
    """A template file the renderer loaded: its loader name, where it came from, its hash."""

    name: str
    origin: str  # "shipped" or "spec"
    path: str  # shown in errors: <promptc>/batch.j2, or the spec's file
    sha256: str
    file: str | None = None  # the absolute path of a spec's own file


#: Every message of the render stage, by code, word for word as tested (``$name`` fields).
MESSAGES: Mapping[str, str] = {
    "template-outside-spec": (
        "template $name $why; a spec's templates and includes must be files inside the "
        "spec's folder"
    ),
    "template-extends-cycle": "template $name extends itself",
    "template-dynamic-extends": "{% extends %} needs a quoted template name",
    "template-no-user-block": (
        "template $name has no {% block user %}; a template must define the user message "
        "(and may define {% block system %})"
    ),
    "template-empty-user": "template $name rendered an empty user message",
    "template-syntax": "template syntax error: $error",
    "template-not-found": (
        "template $name not found; shipped templates are named 'promptc/<file>' ($shipped), "
        "a spec's own by their path inside the spec's folder"
    ),
    "template-sandbox": (
        "template tried to leave its sandbox ($error); templates may only read the "
        "documented variables, not Python internals"
    ),
    "template-sandbox-attribute": (
        "template reads $attr, which the sandbox refuses; templates may only read the "
        "documented variables, not Python internals"
    ),
    "template-undefined": "template uses an undefined value: $error",
    "template-runtime": "template failed: $error",
    "template-undeclared-variable": (
        "template uses undeclared variable $name; templates can use $allowed"
    ),
    "template-unknown-block": "unknown message block $name; expected $expected",
    "template-outside-block": (
        "text or statements outside {% block system %} and {% block user %} belong to no "
        "message; move them inside a block"
    ),
}


def template_error(
    code: str, location: Location | None = None, hint: str | None = None, **fields: object
) -> TemplateError:
    """The :class:`TemplateError` of a code in :data:`MESSAGES`, its fields filled in."""
    from string import Template

    message = Template(MESSAGES[code]).substitute({k: str(v) for k, v in fields.items()})
    return TemplateError(message, location=location, hint=hint, code=code)


def _escape_error(name: str, why: str) -> TemplateError:
    return template_error("template-outside-spec", name=repr(name), why=why)


class SpecLoader:
    """Serves shipped templates as ``promptc/<name>`` and a spec's own files from its folder.

    Implements Jinja's loader protocol (``load`` via :class:`jinja2.BaseLoader`). Every file
    served is recorded in :attr:`used`, for the build manifest.
    """

    def __init__(self, spec_dir: str | None, extra_roots: Sequence[str] = ()) -> None:
        self.spec_dir = os.path.realpath(spec_dir) if spec_dir else None
        self.roots = [self.spec_dir] if self.spec_dir else []
        for root in extra_roots:
            real = os.path.realpath(root)
            if real not in self.roots:
                self.roots.append(real)
        self.used: dict[str, TemplateSource] = {}
        self.paths: dict[str, str] = {}  # display path -> loader name

    def resolve(self, name: str) -> str:
        """The absolute path of a spec's own template ``name``.

        Raises:
            TemplateError: ``name`` is absolute or leaves the spec's folder (``..`` or a
                symbolic link pointing outside).
        """
        import jinja2

        posix = name.replace("\\", "/")
        if os.path.isabs(name) or posix.startswith("/") or os.path.splitdrive(name)[0]:
            raise _escape_error(name, "is an absolute path")
        if ".." in posix.split("/"):
            raise _escape_error(name, "leaves the spec's folder with '..'")
        for root in self.roots:  # the spec's folder first, then those of the specs it extends
            candidate = os.path.join(root, *posix.split("/"))
            if not os.path.isfile(candidate):
                continue
            path = os.path.realpath(candidate)
            if os.path.commonpath([path, root]) != root:
                raise _escape_error(name, "resolves (through a link) outside the spec's folder")
            return path
        raise jinja2.TemplateNotFound(name)

    def get_source(
        self, environment: jinja2.Environment | None, name: str, *, record: bool = True
    ) -> tuple[str, str, Callable[[], bool]]:
        """The text of a template, the path shown for it, and Jinja's up-to-date check.

        ``record=False`` reads without recording the file as used (for static analysis).
        """
        import jinja2

        if name.startswith(BUILTIN_PREFIX):
            rel = name[len(BUILTIN_PREFIX) :]
            if rel not in _shipped_names():
                raise jinja2.TemplateNotFound(name)
            text = read_template(rel)
            shown = BUILTIN_DISPLAY + rel
            origin = "shipped"
            file = None
        else:
            file = self.resolve(name)
            with open(file, encoding="utf-8") as f:
                text = f.read()
            shown = display_path(file)
            origin = "spec"
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if record:
            self.used[name] = TemplateSource(name, origin, shown, digest, file)
        self.paths[shown] = name
        return text, shown, lambda: True


def _shipped_names() -> frozenset[str]:
    global _SHIPPED
    if _SHIPPED is None:
        _SHIPPED = frozenset(template_names())
    return _SHIPPED


_SHIPPED: frozenset[str] | None = None


def make_environment(loader: SpecLoader) -> jinja2.Environment:
    """The sandboxed, strict, deterministic Jinja environment promptc renders with."""
    import jinja2
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class _Loader(jinja2.BaseLoader):
        def get_source(
            self, environment: jinja2.Environment, template: str
        ) -> tuple[str, str, Callable[[], bool]]:
            return loader.get_source(environment, template)

    env = ImmutableSandboxedEnvironment(
        loader=_Loader(),
        bytecode_cache=_bytecode_cache(),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        cache_size=-1,
    )
    # lipsum() draws random words: a prompt must not change from one build to the next.
    env.globals.pop("lipsum", None)
    return env


_BYTECODE: jinja2.BytecodeCache | None = None


def _bytecode_cache() -> jinja2.BytecodeCache:
    """Compiled templates shared by every environment of this process (checks and build
    compile the same templates; all promptc environments compile alike). Jinja keys entries
    by template name and file and checks the source's hash, so an edited file recompiles."""
    global _BYTECODE
    if _BYTECODE is None:
        import jinja2
        from jinja2.bccache import Bucket

        class MemoryBytecodeCache(jinja2.BytecodeCache):
            def __init__(self) -> None:
                self.store: dict[str, bytes] = {}

            def load_bytecode(self, bucket: Bucket) -> None:
                data = self.store.get(bucket.key)
                if data is not None:
                    bucket.bytecode_from_string(data)

            def dump_bytecode(self, bucket: Bucket) -> None:
                self.store[bucket.key] = bucket.bytecode_to_string()

        _BYTECODE = MemoryBytecodeCache()
    return _BYTECODE


# ---------------------------------------------------------------- the context templates see


def _output_meaning(field: ir.OutputField) -> str:
    if field.type == "enum":
        return "one of: " + ", ".join(field.choices)
    return TYPE_MEANINGS[field.type]


def _answer_format_context(task: ir.Task) -> dict[str, object]:
    by_name = {o.name: o for o in task.outputs}
    form = []
    fields: list[dict[str, object]] = []
    for seg in task.answer_format.segments:
        if isinstance(seg, ir.Placeholder):
            form.append(f"<{seg.field}>")
            o = by_name[seg.field]
            meaning = _output_meaning(o)
            fields.append(
                {
                    "name": o.name,
                    "type": o.type,
                    "meaning": meaning,
                    "text": f"<{o.name}> is {meaning}",
                }
            )
        else:
            form.append(seg.text)
    return {
        "text": task.answer_format.source,
        "form": "".join(form),
        "fields": fields,
        "types": [f"{f['name']}: {f['meaning']}" for f in fields],
        "description": " and ".join(str(f["text"]) for f in fields),
    }


def _demo_context(task: ir.Task) -> list[dict[str, object]]:
    from promptc.spec.answer_format import write_answer
    from promptc.values import write_value

    out = []
    by_name = {o.name: o for o in task.outputs}
    for i, d in enumerate(task.demos, 1):
        out.append(
            {
                "index": i,
                "fields": dict(d.inputs),
                "outputs": {
                    k: write_value(by_name[k], v) for k, v in d.outputs.items() if k in by_name
                },
                "question": markers.question_text(task.inputs, d.inputs),
                "answer": write_answer(task.answer_format, task.outputs, d.outputs),
            }
        )
    return out


def _ref(prefix: str) -> Callable[[object], str]:
    def ref(index: object) -> str:
        return f"{prefix}{markers.INDEX_OPEN}{index}{markers.INDEX_CLOSE}"

    return ref


def _markers() -> dict[str, object]:
    return {
        "question_ref": _ref(markers.QUESTION_PREFIX),
        "answer_ref": _ref(markers.ANSWER_PREFIX),
        "question_prefix": markers.QUESTION_PREFIX,
        "answer_prefix": markers.ANSWER_PREFIX,
        "separator": markers.MARKER_SEPARATOR,
        "question": markers.question_marker,
        "answer": markers.answer_marker,
        "question_marker": markers.question_marker,
        "answer_marker": markers.answer_marker,
    }


def task_context(task: ir.Task, kind: ir.StrategyKind | None = None) -> dict[str, object]:
    """The part of the template context shared by every request of a task."""
    from promptc.select.methods import batch_size

    kind = kind or task.strategy.kind
    return {
        "task": {
            "name": task.name,
            "description": task.description,
            "instruction": task.instruction,
        },
        "kind": kind,
        "batch_size": batch_size(task),
        "inputs": [
            {
                "name": f.name,
                "type": f.type,
                "label": markers.field_label(f),
                "description": f.description,
            }
            for f in task.inputs
        ],
        "outputs": [
            {
                "name": o.name,
                "type": o.type,
                "description": o.description,
                "choices": list(o.choices),
                "meaning": _output_meaning(o),
            }
            for o in task.outputs
        ],
        "answer_format": _answer_format_context(task),
        "demos": _demo_context(task),
        "markers": _markers(),
    }


def item_context(task: ir.Task, item: ir.Item, index: int) -> dict[str, object]:
    """An item as templates see it, ``index`` 1-based within its request."""
    return {
        "index": index,
        "id": item.id,
        "fields": dict(item.inputs),
        "question": markers.question_text(task.inputs, item.inputs),
    }


# ---------------------------------------------------------------- rendering

#: Most question texts a renderer remembers (retrieval batches repeat their target's demos).
QUESTION_CACHE = 4096


class Renderer:
    """Compiles a task's template once and renders every batch with it.

    Attributes:
        loader: Records every template file loaded (``loader.used``), for the manifest.
    """

    def __init__(self, task: ir.Task, kind: ir.StrategyKind | None = None) -> None:
        self.task = task
        self.kind: ir.StrategyKind = kind or task.strategy.kind
        self.loader = SpecLoader(task.spec_dir, spec_roots(task)[1:])
        self.env = make_environment(self.loader)
        self.name = template_name(task, self.kind)
        self.location = task.template_for(self.kind).location
        self._chain: list[jinja2.Template] | None = None
        self._shared: dict[str, object] | None = None
        self._questions: dict[str, str] = {}
        self._constant: frozenset[str] | None = None
        self._cache: dict[str, str] = {}
        self._base: tuple[jinja2.Template, jinja2.runtime.Context, dict[str, list[Any]]] | None = (
            None
        )

    # -- compilation

    def chain(self) -> list[jinja2.Template]:
        """The template and the templates it extends, most derived first (compiled once)."""
        if self._chain is None:
            with self._errors():
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
            self._chain = chain
        return self._chain

    def constant_blocks(self) -> frozenset[str]:
        """The message blocks that read nothing that changes from request to request.

        Decided from the templates' source: a block is constant when neither it (in any
        template of the chain, for ``super()``), nor the blocks nested in it, nor the templates
        it includes read ``items``, ``item`` or ``self``. Those blocks are rendered once (the
        system message of the shipped templates, with all its demos, is one of them).
        """
        if self._constant is None:
            constant = []
            for block, _ in MESSAGE_BLOCKS:
                reads = _block_reads(self.env, self.loader, self.chain(), block)
                if reads is not None and not reads & PER_REQUEST:
                    constant.append(block)
            self._constant = frozenset(constant)
        return self._constant

    def display(self, template: jinja2.Template) -> str:
        return template.filename or template.name or self.name

    # -- rendering

    def shared(self) -> dict[str, object]:
        if self._shared is None:
            self._shared = task_context(self.task, self.kind)
        return self._shared

    def context(self, batch: ir.Batch, items: Sequence[ir.Item]) -> dict[str, object]:
        """The per-request variables of a batch (``items``, and ``item`` for one-item
        strategies); :meth:`messages` adds the shared ones.

        Args:
            batch: The batch.
            items: The task's items, by position (``batch.item_indices`` index them).
        """
        ctx: dict[str, object] = {}
        entries = []
        questions = self._questions
        for i, position in enumerate(batch.item_indices, 1):
            item = items[position]
            item_id = item.id
            q = questions.get(item_id)
            if q is None:
                if len(questions) >= QUESTION_CACHE:
                    questions.clear()  # bounded: a million items must not all stay here
                q = questions[item_id] = markers.question_text(self.task.inputs, item.inputs)
            entries.append({"index": i, "id": item.id, "fields": item.inputs, "question": q})
        ctx["items"] = entries
        if self.kind in ("single", "few-shot") and entries:
            ctx["item"] = entries[0]
        return ctx

    def _prepared(self) -> tuple[jinja2.Template, jinja2.runtime.Context, dict[str, list[Any]]]:
        """The Jinja context every request renders in, made once: the template's globals and
        the shared variables as its parent, the block functions of the whole chain."""
        if self._base is None:
            chain = self.chain()
            top = chain[0]
            parent = dict(top.globals)
            parent.update(self.shared())
            # shared=True: ``parent`` already holds the globals; Jinja need not merge them.
            jctx = top.new_context(parent, shared=True)
            blocks: dict[str, list[Any]] = {}
            for t in chain:  # most derived first, as Jinja's {% extends %} orders them
                for name, fn in t.blocks.items():
                    blocks.setdefault(name, []).append(fn)
            jctx.blocks = blocks  # only read while blocks render (no {% extends %} runs here)
            self._base = (top, jctx, blocks)
        return self._base

    def messages(self, ctx: Mapping[str, object]) -> tuple[ir.Message, ...]:
        """Renders the message blocks of the template with a context."""
        with self._errors():
            return self._messages(ctx)

    def _messages(self, ctx: Mapping[str, object]) -> tuple[ir.Message, ...]:
        top, jctx, blocks = self._prepared()
        constant = self.constant_blocks()
        # One Jinja context serves every request: the shared variables are its parent, the
        # request's own are its ``vars``. Blocks only read ``vars`` (their {% set %} are
        # local), so swapping the mapping is all a new request needs.
        jctx.vars = dict(ctx)
        out = []
        for block, role in MESSAGE_BLOCKS:
            text = self._cache.get(block)
            if text is None:
                fns = blocks.get(block)
                if not fns:
                    continue
                text = "".join(fns[0](jctx)).strip()
                if block in constant:
                    self._cache[block] = text
            if text:
                out.append(ir.Message(role, text))
        if not any(m.role == "user" for m in out):
            raise template_error(
                "template-empty-user", Location(self.display(top)), name=repr(self.name)
            )
        return tuple(out)

    def render(self, selection: SelectionResult) -> tuple[ir.Request, ...]:
        """Renders every batch of a selection, in order."""
        return tuple(self.iter_render(selection))

    def iter_render(self, selection: SelectionResult) -> Iterator[ir.Request]:
        """Renders the batches of a selection one at a time, in order: a build streams them
        to disk, so memory does not grow with the number of requests."""
        items = self.task.items
        params = self.task.model.request_params()
        width = max(4, len(str(len(selection.batches))))
        kind = self.kind
        with self._errors(), gc_paused():
            for batch in selection.batches:
                yield ir.Request(
                    id=f"r{batch.index + 1:0{width}d}",
                    batch=batch,
                    kind=kind,
                    messages=self._messages(self.context(batch, items)),
                    params=params,
                )

    # -- errors

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Turns any Jinja failure inside the block into a TemplateError at file:line."""
        import jinja2
        from jinja2.exceptions import SecurityError

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
        except jinja2.TemplateNotFound as e:
            shipped = ", ".join(BUILTIN_PREFIX + n for n in sorted(_shipped_names()))
            raise template_error(
                "template-not-found",
                self._where(e.__traceback__) or self.location,
                name=repr(e.name),
                shipped=shipped,
            ) from None
        except SecurityError as e:
            raise template_error(
                "template-sandbox", self._where(e.__traceback__) or self.location, error=e
            ) from None
        except jinja2.UndefinedError as e:
            raise template_error(
                "template-undefined", self._where(e.__traceback__) or self.location, error=e.message
            ) from None
        except (jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as e:
            raise template_error(
                "template-runtime",
                self._where(e.__traceback__) or self.location,
                error=f"{type(e).__name__}: {e}",
            ) from None

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


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pauses the cyclic garbage collector: rendering allocates many small objects and no
    cycles, and with 10,000 items alive, every collection the allocations trigger would scan
    them all again (a third of the render time, measured)."""
    import gc

    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _parent_name(env: jinja2.Environment, template: jinja2.Template) -> str | None:
    """The name a template ``{% extends %}``, read from its source (static names only)."""
    from jinja2 import nodes

    ast = _parse(env, template)
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
    from jinja2 import nodes

    asts = [_parse(env, t) for t in chain]
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


def _parse(env: jinja2.Environment, template: jinja2.Template) -> nodes.Template:
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


def render(task: ir.Task, selection: SelectionResult) -> tuple[ir.Request, ...]:
    """Renders every batch of a selection into a request (chat messages + model parameters).

    Raises:
        TemplateError: At the template's file:line, for any template failure.
    """
    return Renderer(task).render(selection)


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
    from promptc.select.methods import batch_size, chunk

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


__all__ = [
    "BUILTIN_PREFIX",
    "CONTEXT_VARIABLES",
    "Renderer",
    "SpecLoader",
    "TemplateSource",
    "check_templates",
    "raise_template_errors",
    "render",
    "task_context",
]
