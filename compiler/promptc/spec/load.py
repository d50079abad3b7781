"""Load a task spec: safe YAML with a position for every key and value, and ``extends`` merged.

``load_spec(path)`` reads the spec file, composes it with PyYAML's *safe* loader into nodes (so
every key and value keeps its file:line:col), refuses anything that is not plain data (python
tags, custom tags, merge keys), duplicate keys, runaway aliases and absurd nesting, then follows
``extends`` and deep-merges the inherited specs under it. The result, a :class:`SpecDocument`,
holds plain data (dicts, lists, scalars) and, for every key path, where its key and value were
written. Nothing is validated here beyond well-formedness: that is :mod:`promptc.spec.validate`.

``extends`` confinement rule: an extended file must resolve (symlinks followed) inside the
*project folder* of the top-level spec, i.e. the nearest folder at or above the spec's folder that
holds a ``.git`` or a ``pyproject.toml``; when there is none, the top-level spec's own folder.
Absolute paths are refused outright.
"""

from __future__ import annotations

import itertools
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import yaml
import yaml.composer
import yaml.constructor
import yaml.nodes
import yaml.reader
import yaml.resolver

from promptc import limits
from promptc.errors import LoadError, Location, PromptcError, PromptcErrors
from promptc.text import describe, has_yaml_only_breaks, lines_of, printable, sha256_hasher

KeyPath = tuple[str | int, ...]

MAX_SPEC_BYTES = 1_000_000
"""Largest spec file read; specs are small, and this keeps a stray data file from being parsed."""
MAX_DEPTH = limits.MAX_SPEC_DEPTH
MAX_VALUES = limits.MAX_SPEC_VALUES
MAX_VALUE_CHARS = limits.MAX_SPEC_CHARS
MAX_EXTENDS = 32
"""Longest chain of ``extends``."""

COMMAND_LINE = "<command line>"

_NON_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE

_SAFE_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:timestamp",  # implicit dates are kept as the text written
}

_NUMBER_TAGS = ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")

#: Numbers only YAML 1.1 reads, as other numbers than they say (``0100`` octal 64, ``1:30``
#: base-60 90, ``0b11``, ``1_000``): kept as written (docs/spec.md, the YAML loader).
_YAML11_NUMBER = re.compile(
    r"[-+]?(?:0[0-9_]+|0b[0-1_]+|[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?|[0-9.]*_[0-9._]*)"
)

#: What each standard tag of a scalar holds, as a message says it.
_TAGGED = {
    "tag:yaml.org,2002:int": "an integer",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "true or false",
    "tag:yaml.org,2002:null": "null",
    "tag:yaml.org,2002:map": "a mapping, not a scalar",
    "tag:yaml.org,2002:seq": "a list, not a scalar",
}

MESSAGES: dict[str, str] = {
    "file-not-found": "cannot read spec file {path!r}: no such file",
    "not-a-file": "cannot read spec file {path!r}: not a regular file",
    "unreadable": "cannot read spec file {path!r}: {reason}",
    "file-too-large": "spec file is larger than {limit} bytes",
    "not-utf8": "spec file is not UTF-8 text: {reason}",
    "yaml-syntax": "invalid YAML: {problem}",
    "yaml-unclosed": "invalid YAML: {what} opened here is never closed (the file ends at {end})",
    "yaml-tag": "YAML tag {tag!r} is not allowed; specs hold only mappings, lists, strings, "
    "numbers, booleans and null",
    "merge-key": "YAML merge keys ('<<') are not supported",
    "duplicate-key": "duplicate key {key!r}; first defined at line {line}",
    "complex-key": "mapping keys must be plain scalars, found a {kind}",
    "too-deep": "nesting is deeper than {limit} levels",
    "too-many-values": "the spec expands to more than {limit} values",
    "too-much-text": "the spec's values expand to more than {limit:,} characters",
    "recursive-alias": "an alias refers to a node that contains it",
    "number-too-large": "number {text!r} has too many digits",
    "bad-tagged-value": "{tag} cannot hold {text!r}: expected {expected}",
    "not-finite": "{text!r} is not a finite number",
    "empty-spec": "spec is empty; expected a mapping of spec keys (promptc, name, inputs, …)",
    "not-a-mapping": "expected a mapping of spec keys at the top level, found {found}",
    "extends-type": "expected the path of a spec file to extend (a string), found {found}",
    "extends-absolute": "extends path {path!r} is absolute; expected a path relative to this "
    "spec's folder",
    "extends-escape": "extends path {path!r} leaves the project folder",
    "extends-missing": "extended spec {path!r} not found",
    "extends-not-file": "extends path {path!r} is {what}; expected a spec file",
    "extends-not-spec": "extended file {path!r} is no promptc spec (no promptc: or extends: at "
    "its top level); expected a spec file",
    "extends-nul": "extends path {path!r} contains a NUL character, which no file name can hold",
    "extends-cycle": "extends cycle: {cycle}",
    "extends-too-deep": "extends chain is longer than {limit} files",
}

HINTS: dict[str, str] = {
    "merge-key": "use extends to share keys between specs",
    "extends-escape": "a spec may extend files inside the folder that holds the nearest .git or "
    "pyproject.toml",
    "too-many-values": "are aliases repeated too often?",
    "too-much-text": "are aliases of long text repeated too often?",
    "duplicate-key": "remove one of them",
}


_E = TypeVar("_E", bound=PromptcError)


def coded_error(
    error_type: type[_E],
    messages: Mapping[str, str],
    hints: Mapping[str, str],
    code: str,
    location: Location | None,
    /,
    key_path: KeyPath = (),
    hint: str | None = None,
    **kw: object,
) -> _E:
    """An error of ``error_type`` with the message of ``code`` from a stage's table, filled
    with ``kw`` (which may name any placeholder: the parameters before it are positional), and
    its hint (``hint``, else the table's)."""
    if hint is None:
        hint = hints.get(code)
    message = messages[code].format(**kw)
    return error_type(message, location=location, path=key_path, hint=hint, code=code)


#: A :class:`LoadError` with the message of ``code`` from :data:`MESSAGES`.
load_error = partial(coded_error, LoadError, MESSAGES, HINTS)


@dataclass(frozen=True, slots=True)
class ScalarSpan:
    """Where a scalar's source text is: its file, character offsets and YAML style."""

    file: str
    start: int
    end: int
    style: str | None


@dataclass(frozen=True, slots=True)
class SpecFile:
    """A spec file that was read: as displayed in messages, resolved, and its sha256."""

    display: str
    resolved: Path
    sha256: str


@dataclass(frozen=True, slots=True)
class _Layer:
    """One file's (or a merge's) data and positions."""

    data: dict[str, Any]
    key_locations: dict[KeyPath, Location] = field(default_factory=dict)
    value_locations: dict[KeyPath, Location] = field(default_factory=dict)
    spans: dict[KeyPath, ScalarSpan] = field(default_factory=dict)
    #: Keys set to null that removed nothing (the base had no such key), where written.
    nulls: dict[KeyPath, Location] = field(default_factory=dict)


_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class SpecDocument:
    """A loaded spec: merged plain data, and where every key and value was written.

    Attributes:
        path: The top-level spec file as given.
        data: The merged spec (``extends`` removed), dicts, lists and scalars only.
        key_locations: For each key path, where the key was written.
        value_locations: For each key path (and list index), where the value starts.
        spans: For each scalar value, its source text span (for positions inside a string).
        files: Every spec file read: the top-level spec first, then those it extends,
            nearest first.
        root: The project folder that ``extends`` may not leave.
        sources: The text of every file read, by display name.
        digests: Whether the sha256 of each file is taken: of the spec files here, of the
            data file when it is read (:func:`promptc.spec.data.read_data`). Without,
            every ``sha256`` is ``""``.
    """

    path: Path
    data: dict[str, Any]
    key_locations: dict[KeyPath, Location]
    value_locations: dict[KeyPath, Location]
    spans: dict[KeyPath, ScalarSpan]
    files: list[SpecFile]
    root: Path
    sources: dict[str, str]
    _folders: dict[str, Path] = field(default_factory=dict)
    digests: bool = True
    #: Keys a layer set to null that its base did not have, where written: a misspelt one
    #: removed nothing (:func:`promptc.spec.schema_errors.check_schema` says so).
    nulls: dict[KeyPath, Location] = field(default_factory=dict)

    def get(self, path: KeyPath, default: Any = None) -> Any:
        """The value at ``path``, or ``default`` if any step is missing or of the wrong type."""
        node: Any = self.data
        for part in path:
            if isinstance(part, int):
                if not isinstance(node, list) or not -len(node) <= part < len(node):
                    return default
            elif not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def has(self, path: KeyPath) -> bool:
        return self.get(path, _MISSING) is not _MISSING

    def value_location(self, path: KeyPath) -> Location:
        """Where the value at ``path`` starts, or its nearest written ancestor."""
        for i in range(len(path), -1, -1):
            loc = self.value_locations.get(path[:i])
            if loc is not None:
                return loc
        return Location(self.files[0].display if self.files else str(self.path), 1, 1)

    def key_location(self, path: KeyPath) -> Location:
        """Where the key of ``path`` is written (its value's position for list items)."""
        return self.key_locations.get(path) or self.value_location(path)

    def folder_of(self, path: KeyPath) -> Path:
        """The folder of the spec file that wrote the value at ``path`` (for relative paths)."""
        loc = self.value_location(path)
        return self._folders.get(loc.file, self.files[0].resolved.parent)

    def text_locator(self, path: KeyPath) -> Callable[[int], Location]:
        """Maps an offset into the string at ``path`` to its file position.

        Quotes, escapes, block-scalar indentation and folded lines make the string differ from
        its source text; the characters are aligned greedily so that every non-space character
        that appears literally in the source (such as ``{field}`` placeholders) is found.
        """
        value = self.get(path)
        span = self.spans.get(path)
        base = self.value_location(path)
        source = self.sources.get(span.file) if span else None
        if not isinstance(value, str) or span is None or source is None:
            return lambda offset: base
        offsets = _align(value, source, span)
        lines = lines_of(source)

        def locate(offset: int) -> Location:
            if not offsets:
                return base
            at = lines.position(offsets[min(max(offset, 0), len(offsets) - 1)])
            return Location(span.file, at.line, at.col)

        return locate

    def set(self, path: KeyPath, value: Any, location: Location) -> None:
        """Sets (overrides) a value, creating mappings on the way; used for command-line overrides."""
        if not path:
            raise ValueError("empty key path")
        node: Any = self.data
        for i, part in enumerate(path[:-1]):
            child = node.get(part) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                child = {}
                node[part] = child
                self.value_locations[path[: i + 1]] = location
                self.key_locations[path[: i + 1]] = location
            node = child
        _drop_prefix(self, path)
        node[path[-1]] = value
        self.value_locations[path] = location
        self.key_locations[path] = location


def _drop_prefix(layer: _Layer | SpecDocument, prefix: KeyPath) -> None:
    n = len(prefix)
    for table in (layer.key_locations, layer.value_locations, layer.spans):
        for k in [k for k in table if k[:n] == prefix]:
            del table[k]


_ALIGN_WINDOW = 256


def _align(value: str, source: str, span: ScalarSpan) -> list[int]:
    """For each character of ``value``, the index of the source character it came from."""
    pos, end = span.start, span.end
    if span.style in ('"', "'"):
        pos += 1
    elif span.style in ("|", ">"):
        newline = source.find("\n", pos, end)
        pos = newline + 1 if newline >= 0 else pos
    out: list[int] = []
    for ch in value:
        if ch.isspace():
            out.append(min(pos, end))
            if pos < end and source[pos].isspace():
                pos += 1
            continue
        # A bounded window: an escape or a folded line break spans a few dozen characters at
        # most, and an unbounded search would make long escaped strings quadratic.
        j = source.find(ch, pos, min(end, pos + _ALIGN_WINDOW))
        if j < 0:
            out.append(min(pos, end))  # an escape sequence: stay put
        else:
            out.append(j)
            pos = j + 1
    return out


class _Composing:
    """Composer guards: a cap on nesting (PyYAML's composer recurses) and on document size."""

    _depth = 0
    _nodes = 0
    _display = ""

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        self._nodes += 1
        try:
            if self._depth > MAX_DEPTH or self._nodes > MAX_VALUES:
                mark = self.peek_event().start_mark  # type: ignore[attr-defined]
                if self._depth > MAX_DEPTH:
                    raise load_error("too-deep", _mark(self._display, mark), limit=MAX_DEPTH)
                raise LoadError(  # written out, not expanded: the aliases hint would mislead
                    MESSAGES["too-many-values"].format(limit=MAX_VALUES),
                    location=_mark(self._display, mark),
                    code="too-many-values",
                )
            return super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            self._depth -= 1


class _PyLoader(_Composing, yaml.SafeLoader):
    """PyYAML's safe loader, pure Python."""

    def __init__(self, stream: str, display: str) -> None:
        yaml.SafeLoader.__init__(self, stream)
        self._display = display


_Loader: Any = _PyLoader
try:
    from yaml._yaml import CParser
except ImportError:  # pragma: no cover - PyYAML's wheels ship libyaml
    pass
else:

    class _CLoader(
        _Composing,
        yaml.composer.Composer,
        yaml.constructor.SafeConstructor,
        yaml.resolver.Resolver,
        CParser,
    ):
        """libyaml's parser (events with character positions; about four times faster than
        PyYAML's) under PyYAML's own composer, so that the guards above apply, and the same
        safe constructor and resolver."""

        def __init__(self, stream: str, display: str) -> None:
            CParser.__init__(self, stream)
            yaml.composer.Composer.__init__(self)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)
            self._display = display

    _Loader = _CLoader


def _mark(display: str, mark: Any, text: str = "") -> Location:
    """Where a YAML mark is, lines counted as an editor counts them (``text`` holding a line
    end of YAML 1.1 alone: :func:`~promptc.text.has_yaml_only_breaks`)."""
    if text and has_yaml_only_breaks(text) and 0 <= mark.index <= len(text):
        return _location_at(display, text, mark.index)
    return Location(display, mark.line + 1, mark.column + 1)


def _location_at(display: str, text: str, index: int) -> Location:
    at = lines_of(text).position(index)
    return Location(display, at.line, at.col)


class _Builder:
    """Turns a composed node graph into plain data, recording positions and refusing tags."""

    def __init__(self, display: str, text: str, loader: Any) -> None:
        self.display = display
        self.text = text
        self.loader = loader
        self.layer = _Layer({})
        self.count = 0
        self.chars = 0  # of the scalar values built, aliases expanded
        self.errors: list[PromptcError] = []
        self.stack: set[int] = set()

    def loc(self, node: yaml.nodes.Node) -> Location:
        return _mark(self.display, node.start_mark, self.text)

    def check_tag(self, node: yaml.nodes.Node, path: KeyPath) -> bool:
        if node.tag in _SAFE_TAGS:
            return True
        # The node starts at its first property (anchor or tag); point at the tag itself.
        start = node.start_mark.index
        bang = self.text.find("!", start, node.end_mark.index + 1)
        where = _location_at(self.display, self.text, bang) if bang >= 0 else self.loc(node)
        tag = node.tag
        if tag.startswith("tag:yaml.org,2002:"):
            tag = "!!" + tag[len("tag:yaml.org,2002:") :]
        self.errors.append(load_error("yaml-tag", where, path, tag=tag))
        return False

    def build(self, node: yaml.nodes.Node, path: KeyPath) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            # The node itself may be deep inside a shared anchor; name the top-level key.
            where = self.layer.key_locations.get(path[:1]) or self.loc(node)
            raise load_error("too-many-values", where, path[:1], limit=MAX_VALUES)
        if len(path) > MAX_DEPTH:  # aliases can nest anchors deeper than the text does
            raise load_error("too-deep", self.loc(node), path[:1], limit=MAX_DEPTH)
        if not self.check_tag(node, path):
            return None
        self.layer.value_locations[path] = self.loc(node)
        if isinstance(node, yaml.nodes.ScalarNode):
            self.chars += len(node.value)
            if self.chars > MAX_VALUE_CHARS:
                where = self.layer.key_locations.get(path[:1]) or self.loc(node)
                raise load_error("too-much-text", where, path[:1], limit=MAX_VALUE_CHARS)
            self.layer.spans[path] = ScalarSpan(  # libyaml writes plain style as ''
                self.display, node.start_mark.index, node.end_mark.index, node.style or None
            )
            return self.scalar(node, path)
        if id(node) in self.stack:
            raise load_error("recursive-alias", self.loc(node), path)
        self.stack.add(id(node))
        try:
            if isinstance(node, yaml.nodes.SequenceNode):
                return [self.build(child, path + (i,)) for i, child in enumerate(node.value)]
            assert isinstance(node, yaml.nodes.MappingNode)
            return self.mapping(node, path)
        finally:
            self.stack.discard(id(node))

    def mapping(self, node: yaml.nodes.MappingNode, path: KeyPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.errors.append(load_error("merge-key", self.loc(key_node), path))
                continue
            if not self.check_tag(key_node, path):
                continue
            if not isinstance(key_node, yaml.nodes.ScalarNode):
                kind = "list" if isinstance(key_node, yaml.nodes.SequenceNode) else "mapping"
                self.errors.append(load_error("complex-key", self.loc(key_node), path, kind=kind))
                continue
            key = str(key_node.value)
            key_path = path + (key,)
            if key in first_line:
                self.errors.append(
                    load_error(
                        "duplicate-key",
                        self.loc(key_node),
                        key_path,
                        key=key,
                        line=first_line[key],
                    )
                )
                continue
            first_line[key] = self.loc(key_node).line
            self.layer.key_locations[key_path] = self.loc(key_node)
            out[key] = self.build(value_node, key_path)
        return out

    def scalar(self, node: yaml.nodes.ScalarNode, path: KeyPath) -> Any:
        if node.tag in ("tag:yaml.org,2002:str", "tag:yaml.org,2002:timestamp"):
            return str(node.value)
        if node.tag in _NUMBER_TAGS and not node.style and _YAML11_NUMBER.fullmatch(node.value):
            return str(node.value)  # resolved implicitly, as YAML 1.1 alone reads it
        try:
            # The safe constructor's own function for this (standard, checked) tag; skipping
            # construct_object's bookkeeping, which only matters for collections.
            value = self.loader.yaml_constructors[node.tag](self.loader, node)
            if isinstance(value, int):
                # Python refuses to convert integers of more than ~4300 digits: a decimal one
                # fails above, a hexadecimal, binary or base-60 one (read without that limit)
                # here, not in a message or a JSON file later.
                str(value)
        except (ValueError, LookupError, TypeError, yaml.YAMLError) as e:
            # A number the tag holds, refused for its digits; or text the tag cannot hold at
            # all (`!!bool abc`, `!!int ""`, `!!map x`), which PyYAML's constructors raise
            # in several ways.
            implicit = self.loader.resolve(yaml.ScalarNode, node.value, (True, False))
            if isinstance(e, ValueError) and implicit in _NUMBER_TAGS:
                raise load_error(
                    "number-too-large", self.loc(node), path, text=node.value[:20] + "…"
                ) from None
            raise load_error(
                "bad-tagged-value",
                self.loc(node),
                path,
                tag="!!" + node.tag.rsplit(":", 1)[-1],
                text=printable(node.value[:40]),
                expected=_TAGGED[node.tag],
            ) from None
        if isinstance(value, float) and not math.isfinite(value):
            self.errors.append(load_error("not-finite", self.loc(node), path, text=node.value))
            return None
        return value


def _read_text(
    display: str, resolved: Path, where: Location | None, digest: bool
) -> tuple[str, str]:
    """The file's text (BOM dropped, newlines normalised) and its sha256 (``""`` without
    ``digest``)."""
    try:
        if not resolved.is_file():
            code = "file-not-found" if not resolved.exists() else "not-a-file"
            raise load_error(code, where or Location(display), path=display)
        with open(resolved, "rb") as f:
            raw = f.read(MAX_SPEC_BYTES + 1)
    except OSError as e:
        raise load_error(
            "unreadable", where or Location(display), path=display, reason=e.strerror or str(e)
        ) from None
    if len(raw) > MAX_SPEC_BYTES:
        raise load_error("file-too-large", Location(display), limit=MAX_SPEC_BYTES)
    # A BOM is dropped by hand: the utf-8-sig codec is a module of its own to import, and
    # the offsets of its errors do not count the BOM.
    body = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        good = body[: e.start].decode("utf-8", errors="replace")
        raise load_error(
            "not-utf8",
            _location_at(display, good, len(good)),
            reason=f"invalid byte 0x{body[e.start]:02x}",
        ) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    sha = sha256_hasher(digest)
    sha.update(raw)
    return text, sha.hexdigest()


def _parse(display: str, text: str) -> _Layer:
    """One file's YAML → a layer, raising every problem found."""
    loader: Any = None
    # Refuse control characters first, the same way whichever parser runs.
    bad = _NON_PRINTABLE.search(text)
    if bad is not None:
        problem = f"special character {bad.group()!r} is not allowed"
        raise load_error("yaml-syntax", _location_at(display, text, bad.start()), problem=problem)
    try:
        try:
            loader = _Loader(text, display)
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as e:
            raise _yaml_error(display, text, e) from None
        except yaml.YAMLError as e:  # pragma: no cover - other PyYAML errors are marked
            raise load_error("yaml-syntax", Location(display), problem=str(e)) from None
        if node is None:
            raise load_error("empty-spec", Location(display, 1, 1))
        builder = _Builder(display, text, loader)
        data = builder.build(node, ())
        if builder.errors:
            raise builder.errors[0] if len(builder.errors) == 1 else PromptcErrors(builder.errors)
        if not isinstance(data, dict):
            raise load_error(
                "not-a-mapping",
                _mark(display, node.start_mark, text),
                found=describe(data, show=False),
            )
        layer = builder.layer
        return _Layer(data, layer.key_locations, layer.value_locations, layer.spans)
    finally:
        if loader is not None:
            loader.dispose()


def _yaml_error(display: str, text: str, e: yaml.MarkedYAMLError) -> LoadError:
    """PyYAML's syntax error as promptc says it: where to fix it, in plain words."""
    mark = e.problem_mark or e.context_mark
    where = _mark(display, mark, text) if mark is not None else Location(display)
    hint = None
    problem = e.problem or e.context or "malformed YAML"
    if "maximum nesting depth" in problem:
        # Newer libyaml stops runaway nesting itself, scanning ahead of the composer
        # that enforces promptc's own, lower limit: the same error to the user.
        return load_error("too-deep", where, limit=MAX_DEPTH)
    context = e.context
    if context and problem.startswith("but "):
        # "expected a single document in the stream" + "but found another document"
        problem, context = f"{context}, {problem}", None
    cm = e.context_mark
    if cm is not None and context and mark is not None and mark.index >= len(text):
        # The file ended inside a construct (an unclosed quote, bracket or brace): the
        # place to fix is where it opened, not the end of the file.
        what = context.removeprefix("while scanning ").removeprefix("while parsing ")
        end = f"line {mark.line + 1}" if mark.column else f"line {mark.line}"
        return load_error(
            "yaml-unclosed",
            _mark(display, cm, text),
            hint="add the closing quote (inside '…' write '' for a quote, inside \"…\" \\\")"
            if "quoted" in what
            else "close it",
            what=what,
            end=end,
        )
    if mark is not None and text[mark.index : mark.index + 1] == "\t":
        problem, context = "found a tab character where a token was expected", None
        hint = "YAML indents with spaces, not tabs"
    if context:
        hint = context
        if cm is not None and mark is not None and (cm.line, cm.column) != (mark.line, mark.column):
            hint += f" at line {cm.line + 1}, column {cm.column + 1}"
    return load_error("yaml-syntax", where, hint=hint, problem=problem)


def _merge(base: _Layer, child: _Layer, where: Location) -> _Layer:
    """``child`` over ``base``: mappings merge key by key, anything else replaces; null removes.

    Positions follow the values: a key path keeps the position from the file whose value won.

    Raises:
        LoadError: ``too-many-values``: the merged spec holds more than :data:`MAX_VALUES`
            values (each file may hold that many; the chain as a whole may not), at the
            ``extends`` value ``where``.
    """
    taken: set[KeyPath] = set()  # subtrees taken whole from the child
    merged: set[KeyPath] = {()}  # mappings present in both: their own position is the child's
    nulls = dict(base.nulls)

    def merge(into: dict[str, Any], over: dict[str, Any], path: KeyPath) -> dict[str, Any]:
        result = dict(into)
        for key, value in over.items():
            p = path + (key,)
            old = result.get(key)
            if value is None:
                if result.pop(key, _MISSING) is _MISSING:
                    nulls[p] = child.key_locations.get(p, where)
            elif isinstance(old, dict) and isinstance(value, dict):
                merged.add(p)
                result[key] = merge(old, value, p)
            else:
                taken.add(p)
                result[key] = value
        return result

    out = _Layer(merge(base.data, child.data, ()), nulls=nulls)
    paths = list(itertools.islice(iter_paths(out.data), MAX_VALUES + 1))
    if len(paths) > MAX_VALUES:
        raise load_error("too-many-values", where, ("extends",), limit=MAX_VALUES)
    for p in paths:
        from_child = p in merged or any(p[:i] in taken for i in range(1, len(p) + 1))
        src = child if from_child else base
        if p in src.key_locations:
            out.key_locations[p] = src.key_locations[p]
        if p in src.value_locations:
            out.value_locations[p] = src.value_locations[p]
        if p in src.spans:
            out.spans[p] = src.spans[p]
    return out


def project_root(spec_folder: Path) -> Path:
    """The nearest folder at or above ``spec_folder`` holding ``.git`` or ``pyproject.toml``."""
    for folder in (spec_folder, *spec_folder.parents):
        if (folder / ".git").exists() or (folder / "pyproject.toml").exists():
            return folder
    return spec_folder


def confined(folder: Path, rel: str, root: Path | None = None) -> Path | str:
    """``rel`` resolved from ``folder`` (symlinks followed), or why a spec may not name it:
    ``"nul"`` (no file name holds a NUL), ``"absolute"`` (``/…`` or ``~…``) or ``"escape"``
    (it leaves ``root``, by default ``folder``)."""
    if "\0" in rel:
        return "nul"
    if os.path.isabs(rel) or rel.startswith("~"):
        return "absolute"
    folder = folder.resolve()
    target = (folder / rel).resolve()
    return target if target.is_relative_to(root or folder) else "escape"


def _load_chain(display: str, resolved: Path, where: Location | None, doc: SpecDocument) -> _Layer:
    """One spec file merged over those it extends, its file, text and folder recorded in
    ``doc`` (the document being loaded); ``doc.files`` is the chain that extends it (an
    ``extends`` chain has no branches)."""
    text, sha = _read_text(display, resolved, where, doc.digests)
    doc.files.append(SpecFile(display, resolved, sha))
    doc.sources[display] = text
    doc._folders[display] = resolved.parent
    layer = _parse(display, text)
    if where is not None and not ("promptc" in layer.data or "extends" in layer.data):
        # Any YAML mapping would merge, and its folder would become one templates include
        # from: a spec from elsewhere could extend ~/.config/gh/hosts.yml (nulling its keys)
        # and include the credentials beside it.
        raise load_error("extends-not-spec", where, ("extends",), path=display)
    if "extends" not in layer.data:
        return layer
    ext = layer.data.pop("extends")
    ext_loc = layer.value_locations.get(("extends",), Location(display))
    _drop_prefix(layer, ("extends",))
    p = ("extends",)
    if not isinstance(ext, str) or not ext.strip():
        raise load_error(
            "extends-type",
            ext_loc,
            p,
            found=describe(ext, show=False) if ext != "" else "an empty string",
        )
    target = confined(resolved.parent, ext, doc.root)
    if isinstance(target, str):  # extends-nul, extends-absolute, extends-escape
        raise load_error("extends-" + target, ext_loc, p, path=ext)
    target_display = os.path.normpath(os.path.join(os.path.dirname(display), ext))
    chain = [f.resolved for f in doc.files]
    if target in chain:
        names = [f.display for f in doc.files[chain.index(target) :]]
        raise load_error("extends-cycle", ext_loc, p, cycle=" → ".join([*names, target_display]))
    if len(chain) >= MAX_EXTENDS:
        raise load_error("extends-too-deep", ext_loc, p, limit=MAX_EXTENDS)
    if target.is_dir():
        raise load_error("extends-not-file", ext_loc, p, path=ext, what="a folder")
    if target.exists() and not target.is_file():  # a named pipe, a device: never read
        raise load_error("extends-not-file", ext_loc, p, path=ext, what="not a regular file")
    if not target.is_file():
        raise load_error("extends-missing", ext_loc, p, path=ext)
    base = _load_chain(target_display, target, ext_loc, doc)
    return _merge(base, layer, ext_loc)


def load_spec(path: str | Path, *, digests: bool = True) -> SpecDocument:
    """Loads a spec file and everything it extends.

    Args:
        path: The spec file; messages name it (and files it extends) as given here.
        digests: Take the sha256 of each file read (see :attr:`SpecDocument.digests`).

    Returns:
        The merged document with positions.

    Raises:
        LoadError: The first problem, when there is one.
        PromptcErrors: Several problems in one file (duplicate keys, refused tags …).
    """
    display = os.fspath(path)
    resolved = Path(display).resolve()
    root = project_root(resolved.parent).resolve()
    doc = SpecDocument(Path(display), {}, {}, {}, {}, [], root, {}, digests=digests)
    layer = _load_chain(display, resolved, None, doc)
    # doc.files lists files as they were opened: top first, then each base, nearest first.
    return replace(
        doc,
        data=layer.data,
        key_locations=layer.key_locations,
        value_locations=layer.value_locations,
        spans=layer.spans,
        nulls=layer.nulls,
    )


def iter_paths(value: Any, prefix: KeyPath = ()) -> Iterator[KeyPath]:
    """Every key path in plain data, parents before children."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from iter_paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from iter_paths(v, prefix + (i,))
