"""A spec checked against its JSON Schema: jsonschema's violations as promptc errors.

:func:`check_schema` hands the spec to jsonschema (Draft 2020-12) and turns each violation
into a :class:`~promptc.errors.ValidationError` at the file:line:col of the offending key or
value, with a plain message from :data:`MESSAGES` (tested word for word) and, where it can, the
key that was meant (``did you mean 'strategy.kind'?``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import lru_cache, partial
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator

from promptc.errors import (
    ErrorCollector,
    PromptcError,
    ValidationError,
    did_you_mean,
    format_path,
)
from promptc.resources import read_schema
from promptc.spec.load import KeyPath, SpecDocument, coded_error
from promptc.text import describe, or_list

MESSAGES: dict[str, str] = {
    "unknown-key": "unknown key {key!r}",
    "missing-key": "missing required key {key!r}",
    "wrong-type": "expected {expected}, found {found}",
    "not-one-of": "expected one of {choices}, found {found}",
    "bad-version": "unsupported spec format version {found}; expected promptc: 1",
    "too-small": "expected {expected} of {bound} {limit}, found {found}",
    "too-large": "expected {expected} of {bound} {limit}, found {found}",
    "empty": "expected {expected}, found an empty {kind}",
    "too-long": "expected a string of at most {limit} characters, found {found:,}",
    "too-many": "expected at most {limit:,} {what}, found {found:,}",
    "bad-name": "{name!r} is not a valid field name; expected letters, digits and '_', "
    "not starting with a digit",
    "schema": "{message}",
    "nul-in-spec": "the text holds a NUL character, which no prompt can carry; expected text",
    "unknown-model-param": "unknown model parameter {key!r}",
}

HINTS: dict[str, str] = {
    "unknown-model-param": "put a parameter only your server knows under model.extra",
}


#: A :class:`ValidationError` with the message of ``code`` from :data:`MESSAGES`.
error = partial(coded_error, ValidationError, MESSAGES, HINTS)


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The spec JSON Schema as shipped (``promptc schema`` prints it)."""
    loaded: dict[str, Any] = json.loads(read_schema("spec.schema.json"))
    return loaded


def known_model_params() -> tuple[str, ...]:
    """The ``model`` keys promptc knows: those the schema declares (``extra`` among them)."""
    return tuple(schema()["$defs"]["model"]["properties"])


@lru_cache(maxsize=1)
def _validator() -> Draft202012Validator:
    return Draft202012Validator(schema())


def check_schema(doc: SpecDocument, collector: ErrorCollector) -> None:
    """Adds one error per schema violation of the spec to ``collector``."""
    # One schema violation can map onto the same diagnostic as another (jsonschema reports
    # each missing required key separately, each carrying the whole list): report it once.
    seen: set[tuple[object, ...]] = set()
    for err in sorted(_validator().iter_errors(doc.data), key=lambda e: list(map(str, e.path))):
        for e in _from_schema(doc, err):
            key = (e.code, e.location, e.path, e.message, e.hint)
            if key not in seen:
                seen.add(key)
                collector.add(e)
    for e in _removed_nothing(doc):
        collector.add(e)
    for path in _nul_text(doc.data, ()):
        collector.add(error("nul-in-spec", doc.value_location(path), path))


def _nul_text(value: Any, path: KeyPath) -> Iterator[KeyPath]:
    """The paths of the spec's text values holding a NUL character (a ``"\\0"`` escape):
    refused in the spec's text as in a data row's, since no prompt can carry it (servers cut
    a C string there)."""
    if isinstance(value, str):
        if "\0" in value:
            yield path
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _nul_text(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _nul_text(v, (*path, i))


def _removed_nothing(doc: SpecDocument) -> list[PromptcError]:
    """A layer's ``key: null`` for a key no spec has, which its base therefore lacked: a
    misspelt key (``temprature: ~``) that removed nothing, said as an unknown key is. (A null
    for a key a spec may hold, that the base happens not to set, is no error.)"""
    homes = _key_homes()
    out: list[PromptcError] = []
    for path, where in doc.nulls.items():
        key, parent = path[-1], path[:-1]
        if not isinstance(key, str) or key in homes:
            continue
        known = [k for k, places in homes.items() if parent in places]
        code = "unknown-model-param" if parent == ("model",) else "unknown-key"
        out.append(error(code, where, path, hint=did_you_mean(key, known), key=key))
    return out


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}


def _from_schema(doc: SpecDocument, err: jsonschema.ValidationError) -> list[PromptcError]:
    """Turns one JSON Schema violation into promptc errors with positions and plain messages."""
    path: KeyPath = tuple(err.absolute_path)
    inst = err.instance
    if err.validator == "additionalProperties" and isinstance(inst, dict):
        return _unknown_keys(doc, path, inst, _schema_of(err))
    if "propertyNames" in tuple(err.absolute_schema_path):
        name = str(inst)
        return [error("bad-name", doc.key_location(path + (name,)), path + (name,), name=name)]
    if err.validator == "required" and isinstance(inst, dict):
        where = doc.key_location(path) if path else doc.value_location(path)
        known = list(_schema_of(err).get("properties", {}))
        # A misspelt key is reported as unknown, with the right name as a hint: enough.
        suggested = {did_you_mean(k, known) for k in inst if k not in known}
        return [
            error("missing-key", where, path, key=k)
            for k in _as_list(err.validator_value)
            if isinstance(k, str) and k not in inst and f"did you mean '{k}'?" not in suggested
        ]
    return [_value_error(doc, err, path)]


def _unknown_keys(
    doc: SpecDocument, path: KeyPath, inst: dict[str, Any], sub: Mapping[str, Any]
) -> list[PromptcError]:
    """Every key of a mapping that its schema does not declare (in ``model``: a parameter)."""
    known = list(sub.get("properties", {}))
    out: list[PromptcError] = []
    for k in inst:
        if k in known:
            continue
        where, key_path = doc.key_location(path + (k,)), path + (k,)
        if path == ("model",):
            hint = did_you_mean(k, known)
            out.append(error("unknown-model-param", where, key_path, hint=hint, key=k))
        else:
            hint = _elsewhere(k, path) or did_you_mean(k, known)
            out.append(error("unknown-key", where, key_path, hint=hint, key=k))
    return out


def _value_error(doc: SpecDocument, err: jsonschema.ValidationError, path: KeyPath) -> PromptcError:
    """The error of a value the schema refuses, at the value."""
    kind, inst, wanted = err.validator, err.instance, err.validator_value
    where = doc.value_location(path)
    expected = _expected(err)
    if kind == "const" and path == ("promptc",):
        return error("bad-version", where, path, found=_show(inst))
    if kind == "type":
        hint = None
        if len(path) == 2 and path[0] in ("inputs", "outputs") and isinstance(inst, str):
            hint = f"write {path[1]}: {{type: {inst}}}"
        if isinstance(inst, bool) and "string" in _as_list(wanted):
            hint = "quote it: YAML reads yes, no, true and false as booleans"
        return error("wrong-type", where, path, hint=hint, expected=expected, found=describe(inst))
    if kind == "enum":
        choices = [str(c) for c in _as_list(wanted)]
        hint = did_you_mean(inst, choices) if isinstance(inst, str) else None
        quoted = ", ".join(repr(c) for c in choices)
        return error("not-one-of", where, path, hint=hint, choices=quoted, found=describe(inst))
    if kind in ("minimum", "exclusiveMinimum"):
        bound = "at least" if kind == "minimum" else "more than"
        found = _show(inst)
        return error(
            "too-small", where, path, expected=expected, bound=bound, limit=wanted, found=found
        )
    if kind in ("maximum", "exclusiveMaximum"):
        bound = "at most" if kind == "maximum" else "less than"
        found = _show(inst)
        return error(
            "too-large", where, path, expected=expected, bound=bound, limit=wanted, found=found
        )
    if kind == "pattern" and isinstance(_schema_of(err).get("x-expected"), str):
        said = f"expected {_schema_of(err)['x-expected']}, found {_show(inst)}"
        return error("schema", where, path, message=said)
    if kind == "maxItems" and isinstance(inst, list):
        return error("too-many", where, path, limit=wanted, what="items", found=len(inst))
    if kind == "maxProperties" and isinstance(inst, dict):
        return error("too-many", where, path, limit=wanted, what="entries", found=len(inst))
    if kind == "maxLength" and isinstance(inst, str):
        return error("too-long", where, path, limit=wanted, found=len(inst))
    if kind in _EMPTY:
        noun, need = _EMPTY[kind]
        return error("empty", where, path, expected=need, kind=noun)
    return error("schema", where, path, message=err.message)


#: What an empty value is, and what was needed, by the keyword that refused it.
_EMPTY = {
    "minLength": ("string", "a non-empty string"),
    "minItems": ("list", "at least one item"),
    "minProperties": ("mapping", "at least one entry"),
}


@lru_cache(maxsize=1)
def _key_homes() -> dict[str, list[KeyPath]]:
    """Every key the schema declares, with the paths of the mappings that may hold it."""
    root = schema()
    homes: dict[str, list[KeyPath]] = {}
    start: Mapping[str, Any] = root["$defs"]["spec"]

    def walk(node: Mapping[str, Any], path: KeyPath, depth: int) -> None:
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and depth < 6:
            node = root["$defs"][ref[len("#/$defs/") :]]
        for key, sub in node.get("properties", {}).items():
            homes.setdefault(key, []).append(path)
            if isinstance(sub, Mapping):
                walk(sub, path + (key,), depth + 1)

    walk(start, (), 0)
    return homes


def _elsewhere(key: str, path: KeyPath) -> str | None:
    """A hint for a known key written in the wrong mapping: ``did you mean 'strategy.kind'?``."""
    homes = [h for h in _key_homes().get(key, []) if h != path]
    if len(homes) > 1:  # prefer the mapping nested in the one the key was written in
        homes = [h for h in homes if h[: len(path)] == path] or homes
    if len(homes) != 1:
        return None  # unknown, or too common (description, type) to guess where it belongs
    return f"did you mean {format_path(homes[0] + (key,))!r}?"


def _schema_of(err: jsonschema.ValidationError) -> Mapping[str, Any]:
    return err.schema if isinstance(err.schema, Mapping) else {}


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else [value]


def _expected(err: jsonschema.ValidationError) -> str:
    types = _as_list(_schema_of(err).get("type", []))
    return or_list([_TYPE_WORDS.get(str(t), str(t)) for t in types]) or "a value"


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (int, float)):
        return str(value)
    return describe(value)
