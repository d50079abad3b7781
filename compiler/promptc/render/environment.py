"""The sandboxed Jinja environment and the loader that finds templates.

Shipped templates and partials are named ``promptc/<file>``; a spec's own files by their path
inside the spec's folder, which no include or extends may leave. Templates run in Jinja's
immutable sandbox with ``StrictUndefined``.
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from string import Template
from typing import Literal

import jinja2
from jinja2.bccache import Bucket

from promptc import ir
from promptc.errors import Location, TemplateError
from promptc.resources import read_template, template_names
from promptc.sandbox.budget import BUDGET_MESSAGE
from promptc.sandbox.environment import BoundedSandbox, StrictUndefined
from promptc.strategies import Strategy

Role = Literal["system", "user", "assistant"]


#: Shipped templates and partials are named with this prefix in ``include`` and ``extends``.
BUILTIN_PREFIX = "promptc/"


#: How shipped templates are shown in error locations.
BUILTIN_DISPLAY = "<promptc>/"


#: The shipped templates' texts by name when they are not the installed ones: ``promptc diff
#: --against REV`` renders an old revision with that revision's templates. ``None``: installed.
SHIPPED_TEXTS: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "SHIPPED_TEXTS", default=None
)


def template_name(task: ir.Task, kind: Strategy) -> str:
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


@dataclass(frozen=True, slots=True)
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
    "template-not-utf8": "template is not UTF-8 text: invalid byte $byte",
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
    "template-budget": BUDGET_MESSAGE,
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
    message = Template(MESSAGES[code]).substitute({k: str(v) for k, v in fields.items()})
    return TemplateError(message, location=location, hint=hint, code=code)


def _escape_error(name: str, why: str) -> TemplateError:
    return template_error("template-outside-spec", name=repr(name), why=why)


class SpecLoader(jinja2.BaseLoader):
    """Serves shipped templates as ``promptc/<name>`` and a spec's own files from its folder.

    Every file served is recorded in :attr:`used`, for the build manifest.
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
        if name.startswith(BUILTIN_PREFIX):
            rel = name[len(BUILTIN_PREFIX) :]
            texts = SHIPPED_TEXTS.get()
            if rel not in (shipped_names() if texts is None else texts):
                raise jinja2.TemplateNotFound(name)
            text = read_template(rel) if texts is None else texts[rel]
            shown = BUILTIN_DISPLAY + rel
            origin = "shipped"
            file = None
        else:
            file = self.resolve(name)
            # utf-8-sig: a byte order mark an editor saved is no text of the template (it
            # would be text outside the blocks, invisible where the error points).
            with open(file, "rb") as f:
                raw = f.read()
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError as e:
                line = raw.count(b"\n", 0, e.start) + 1
                col = e.start - (raw.rfind(b"\n", 0, e.start) + 1) + 1
                where = Location(display_path(file), line, col)
                byte = f"0x{raw[e.start]:02x}"
                raise template_error("template-not-utf8", where, byte=byte) from None
            shown = display_path(file)
            origin = "spec"
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if record:
            self.used[name] = TemplateSource(name, origin, shown, digest, file)
        self.paths[shown] = name
        return text, shown, lambda: True


@functools.cache
def shipped_names() -> frozenset[str]:
    return frozenset(template_names())


def make_environment(loader: SpecLoader) -> BoundedSandbox:
    """The sandboxed, strict, deterministic Jinja environment promptc renders with: Jinja's
    immutable sandbox, bounded in time and memory (:mod:`promptc.sandbox.environment`)."""
    env = BoundedSandbox(
        loader=loader,
        bytecode_cache=_BYTECODE,
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        cache_size=-1,
    )
    return env


class MemoryBytecodeCache(jinja2.BytecodeCache):
    """Compiled templates shared by every environment of this process (checks and build
    compile the same templates; all promptc environments compile alike). Jinja keys entries
    by template name and file and checks the source's hash, so an edited file recompiles."""

    def __init__(self) -> None:
        self.store: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        data = self.store.get(bucket.key)
        if data is not None:
            bucket.bytecode_from_string(data)

    def dump_bytecode(self, bucket: Bucket) -> None:
        self.store[bucket.key] = bucket.bytecode_to_string()


_BYTECODE = MemoryBytecodeCache()
