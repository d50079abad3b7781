"""The cheap schema check decides exactly what jsonschema decides, on the shipped schema: for
every example and malformed spec, and for specs with random values put at random places."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from promptc.errors import PromptcError
from promptc.spec.load import load_spec
from promptc.spec.schema_check import Unsupported, conforms, equal
from promptc.spec.validate import schema

REPO = Path(__file__).resolve().parents[1]
SPECS = sorted((REPO / "specs").glob("*.yaml")) + sorted(
    (REPO / "tests" / "malformed").glob("*.yaml")
)


def _data(path: Path) -> dict[str, Any] | None:
    try:
        return load_spec(path).data
    except PromptcError:
        return None


LOADED = [(p.name, d) for p in SPECS if (d := _data(p)) is not None]
VALIDATOR = Draft202012Validator(schema())


def test_the_shipped_schema_is_all_decided_here() -> None:
    for _, data in LOADED:
        conforms(data, schema())  # raises Unsupported otherwise


@pytest.mark.parametrize(("name", "data"), LOADED, ids=[n for n, _ in LOADED])
def test_agrees_with_jsonschema_on_every_spec(name: str, data: dict[str, Any]) -> None:
    assert conforms(data, schema()) == VALIDATOR.is_valid(data)


def test_some_malformed_specs_fail_and_the_examples_pass() -> None:
    verdicts = {n: conforms(d, schema()) for n, d in LOADED}
    assert all(verdicts[p.name] for p in (REPO / "specs").glob("*.yaml"))
    assert sum(not v for v in verdicts.values()) >= 10


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(-3, 3, allow_nan=False)
    | st.sampled_from(["", "x", "batch", "auto-demo", "text", "number", "enum", "a b", "9x"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["type", "choices", "path", "kind", "name", "x", "batch_size", "seed"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _put(value: Any, path: tuple[Any, ...], new: Any, key: str | None) -> Any:
    if not path:
        if key is not None and isinstance(value, dict):
            return {**value, key: new}
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _put(value[head], rest, new, key)}
    copy = list(value)
    copy[head] = _put(copy[head], rest, new, key)
    return copy


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.sampled_from([d for n, d in LOADED if n.endswith(".yaml")]),
    st.data(),
    JSON,
    st.one_of(st.none(), st.sampled_from(["extra", "type", "choices", "seed", "kind", "id"])),
)
def test_agrees_with_jsonschema_on_changed_specs(
    data: dict[str, Any], draw: st.DataObject, new: Any, key: str | None
) -> None:
    path = draw.draw(st.sampled_from(_paths(data)))
    changed = _put(data, path, new, key)
    assert conforms(changed, schema()) == VALIDATOR.is_valid(changed)


def test_json_equality_keeps_booleans_apart() -> None:
    assert not equal(True, 1)
    assert equal(1, 1.0)
    assert not equal([1], [True])
    assert equal({"a": [1, "x"]}, {"a": [1.0, "x"]})


def test_unknown_keywords_are_not_guessed() -> None:
    with pytest.raises(Unsupported):
        conforms({}, {"patternProperties": {}, "additionalProperties": False})
    with pytest.raises(Unsupported):
        conforms(1, {"multipleOf": 2})
