"""Does a spec conform to the spec schema? A yes-or-no answer that needs no jsonschema.

:func:`conforms` decides JSON Schema (draft 2020-12) validity for the keywords the shipped
schema uses (``type``, ``properties``, ``required``, ``additionalProperties``, ``enum``,
``const``, ``$ref`` to ``#/$defs/…``, ``if``/``then``/``else``, ``not``, ``anyOf``, ``allOf``,
``oneOf``, ``items``, ``minimum``, ``maximum`` and their exclusive forms, ``minItems``,
``maxItems``, ``minLength``, ``maxLength``, ``minProperties``, ``pattern``, ``propertyNames``;
annotations are ignored). :func:`promptc.spec.validate.validate` asks it first: a valid spec — the common
case — is then never handed to jsonschema, whose import and validator cost more than the
rest of ``promptc check`` on a small spec. An invalid spec, or a schema keyword this module
does not know, goes to jsonschema, which says what is wrong and where.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any

ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "default", "examples", "deprecated"}
)


class Unsupported(Exception):
    """The schema uses a keyword :func:`conforms` cannot decide."""


@lru_cache(maxsize=64)
def _pattern(source: str) -> re.Pattern[str]:
    return re.compile(source)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _has_type(value: object, name: str) -> bool:
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if name == "number":
        return _is_number(value)
    if name == "integer":
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return True
        if isinstance(value, float):
            return value.is_integer()
        if isinstance(value, Decimal):
            return value.is_finite() and value == value.to_integral_value()
        return False
    raise Unsupported(f"type {name!r}")


def equal(a: object, b: object) -> bool:
    """JSON equality as JSON Schema means it: ``true`` is not ``1``, ``1`` is ``1.0``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if _is_number(a) or _is_number(b):
        return _is_number(a) and _is_number(b) and a == b
    if isinstance(a, list) or isinstance(b, list):
        return (
            isinstance(a, list)
            and isinstance(b, list)
            and len(a) == len(b)
            and all(equal(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, dict) or isinstance(b, dict):
        return (
            isinstance(a, dict)
            and isinstance(b, dict)
            and a.keys() == b.keys()
            and all(equal(a[k], b[k]) for k in a)
        )
    return a is None and b is None


def conforms(value: Any, schema: Any, root: Mapping[str, Any] | None = None) -> bool:
    """Whether ``value`` is valid against ``schema`` (``root`` holds its ``$defs``).

    Raises:
        Unsupported: The schema uses a keyword this module does not decide.
    """
    if schema is True:
        return True
    if schema is False:
        return False
    if not isinstance(schema, dict):
        raise Unsupported("a schema that is not an object")
    root = schema if root is None else root
    for key, want in schema.items():
        if key in ANNOTATIONS or key == "$defs":
            continue
        if key == "$ref":
            if not isinstance(want, str) or not want.startswith("#/$defs/"):
                raise Unsupported(f"$ref {want!r}")
            target = root.get("$defs", {}).get(want[len("#/$defs/") :])
            if target is None:
                raise Unsupported(f"$ref {want!r}")
            if not conforms(value, target, root):
                return False
        elif key == "type":
            names = want if isinstance(want, list) else [want]
            if not any(_has_type(value, n) for n in names):
                return False
        elif key == "enum":
            if not any(equal(value, w) for w in want):
                return False
        elif key == "const":
            if not equal(value, want):
                return False
        elif key == "not":
            if conforms(value, want, root):
                return False
        elif key == "anyOf":
            if not any(conforms(value, sub, root) for sub in want):
                return False
        elif key == "allOf":
            if not all(conforms(value, sub, root) for sub in want):
                return False
        elif key == "oneOf":
            if sum(1 for sub in want if conforms(value, sub, root)) != 1:
                return False
        elif key == "if":
            branch = "then" if conforms(value, want, root) else "else"
            if branch in schema and not conforms(value, schema[branch], root):
                return False
        elif key in ("then", "else"):
            if "if" not in schema:
                continue  # without "if", they are ignored
        elif key in ("properties", "required", "additionalProperties", "propertyNames"):
            if not isinstance(value, dict):
                continue
            if not _object_ok(value, schema, key, want, root):
                return False
        elif key == "minProperties":
            if isinstance(value, dict) and len(value) < want:
                return False
        elif key == "items":
            if isinstance(value, list) and not all(conforms(v, want, root) for v in value):
                return False
        elif key == "minItems":
            if isinstance(value, list) and len(value) < want:
                return False
        elif key == "maxItems":
            if isinstance(value, list) and len(value) > want:
                return False
        elif key == "maxLength":
            if isinstance(value, str) and len(value) > want:
                return False
        elif key == "exclusiveMinimum":
            if _is_number(value) and value <= want:
                return False
        elif key == "exclusiveMaximum":
            if _is_number(value) and value >= want:
                return False
        elif key == "minLength":
            if isinstance(value, str) and len(value) < want:
                return False
        elif key == "pattern":
            if isinstance(value, str) and _pattern(want).search(value) is None:
                return False
        elif key == "minimum":
            if _is_number(value) and value < want:
                return False
        elif key == "maximum":
            if _is_number(value) and value > want:
                return False
        else:
            raise Unsupported(f"keyword {key!r}")
    return True


def _object_ok(
    value: dict[str, Any], schema: Mapping[str, Any], key: str, want: Any, root: Mapping[str, Any]
) -> bool:
    if key == "properties":
        return all(conforms(value[k], sub, root) for k, sub in want.items() if k in value)
    if key == "required":
        return all(k in value for k in want)
    if key == "propertyNames":
        return all(conforms(k, want, root) for k in value)
    if "patternProperties" in schema:
        raise Unsupported("patternProperties")
    known = schema.get("properties", {})
    return all(conforms(v, want, root) for k, v in value.items() if k not in known)
