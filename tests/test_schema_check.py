"""Validation's schema check says what jsonschema decides, on the shipped schema: a spec it
rejects gets at least one located diagnostic, a spec it accepts none — for every example and
malformed spec, and for specs with random values put at random places."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from promptc.errors import ErrorCollector, PromptcError
from promptc.spec.load import SpecDocument, load_spec
from promptc.spec.schema_errors import MESSAGES, check_schema, schema

REPO = Path(__file__).resolve().parents[1]
SPECS = sorted((REPO / "specs").glob("*.yaml")) + sorted(
    (REPO / "tests" / "malformed").glob("*.yaml")
)


def _doc(path: Path) -> SpecDocument | None:
    try:
        return load_spec(path)
    except PromptcError:
        return None


LOADED = [(p.name, d) for p in SPECS if (d := _doc(p)) is not None]
VALIDATOR = Draft202012Validator(schema())


def schema_errors(doc: SpecDocument) -> list[PromptcError]:
    c = ErrorCollector(max_errors=None)
    check_schema(doc, c)
    return list(c.errors)


def assert_agrees(doc: SpecDocument) -> None:
    errors = schema_errors(doc)
    assert bool(errors) != VALIDATOR.is_valid(doc.data), [e.format() for e in errors]
    for e in errors:
        assert e.code in MESSAGES
        assert e.location is not None and e.location.file


@pytest.mark.parametrize(("name", "doc"), LOADED, ids=[n for n, _ in LOADED])
def test_agrees_with_jsonschema_on_every_spec(name: str, doc: SpecDocument) -> None:
    assert_agrees(doc)


def test_some_malformed_specs_fail_and_the_examples_pass() -> None:
    verdicts = {n: not schema_errors(d) for n, d in LOADED}
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


def _spec_file(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@settings(
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    deadline=None,
)
@given(
    st.sampled_from([d.data for n, d in LOADED if n.endswith(".yaml")]),
    st.data(),
    JSON,
    st.one_of(st.none(), st.sampled_from(["extra", "type", "choices", "seed", "kind", "id"])),
)
def test_agrees_with_jsonschema_on_changed_specs(
    tmp_path: Path, data: dict[str, Any], draw: st.DataObject, new: Any, key: str | None
) -> None:
    path = draw.draw(st.sampled_from(_paths(data)))
    changed = _put(data, path, new, key)
    if not isinstance(changed, dict) or not changed:
        return  # not a spec file at all: the loader's to refuse
    assert_agrees(load_spec(_spec_file(tmp_path, changed)))


def test_json_equality_keeps_booleans_apart(tmp_path: Path) -> None:
    """``promptc: 1.0`` is the version 1 (JSON numbers are equal across int and float);
    ``promptc: true`` is not (JSON booleans are not numbers), as jsonschema decides."""
    base = next(d for n, d in LOADED if n == "math.yaml").data
    accepted = load_spec(_spec_file(tmp_path, {**base, "promptc": 1.0}))
    assert schema_errors(accepted) == []
    refused = load_spec(_spec_file(tmp_path, {**base, "promptc": True}))
    assert [e.code for e in schema_errors(refused)] == ["bad-version"]


def test_a_violation_reported_twice_is_said_once(tmp_path: Path) -> None:
    """jsonschema reports each missing key of one ``required`` with the whole list: each
    missing key is one diagnostic, once."""
    base = next(d for n, d in LOADED if n == "math.yaml").data
    data = {k: v for k, v in base.items() if k not in ("name", "instruction")}
    errors = schema_errors(load_spec(_spec_file(tmp_path, data)))
    assert sorted(e.message for e in errors) == [
        "missing required key 'instruction'",
        "missing required key 'name'",
    ]
