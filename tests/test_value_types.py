"""A value type is one class: every entry of the table keeps the whole contract, every export
of every example spec asks the table, and a type added in a test alone compiles, exports,
parses, scores and is counted with nothing else changed."""

from __future__ import annotations

import copy
import json
import pickle
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import pytest
from grammar_reading import lark_items, regex_items
from hypothesis import given, settings
from hypothesis import strategies as st
from promptc import ir
from promptc.grammar.answer import build_grammar
from promptc.resources import read_schema
from promptc.spec.answer_format import parse_answer_format
from promptc.spec.lower import compile_spec
from promptc.strategies import STRATEGIES, strategy
from promptc.values import (
    NAMES,
    TEXT,
    VALUE_TYPES,
    Value,
    ValueType,
    find_value_type,
    value_type,
)
from promptc.values.types import Reading

SPECS = Path(__file__).resolve().parents[1] / "specs"

#: Every method a value type answers, as the stages ask it.
CONTRACT = (
    "regex",
    "gbnf",
    "portable_regex",
    "json_schema",
    "read",
    "write",
    "json_value",
    "coerce",
    "expected",
    "meaning",
    "matches",
    "tokens",
)
#: The methods the exports of an answer grammar ask.
EXPORTS = ("regex", "gbnf", "portable_regex", "json_schema")


def field_of(vt: ValueType) -> ir.OutputField:
    choices = ("positive", "very negative") if vt.takes_choices else ()
    return ir.OutputField("x", vt, description="A value.", choices=choices)


def task_of(fields: tuple[ir.OutputField, ...], fmt: str, kind: str = "batch") -> ir.Task:
    return ir.Task(
        name="t",
        description="",
        instruction="",
        inputs=(ir.InputField("question"),),
        outputs=fields,
        answer_format=parse_answer_format(fmt),
        demos=(),
        data=None,
        items=(),
        strategy=ir.StrategySpec(strategy(kind), 4, ir.Selection()),
        model=ir.ModelConfig("m"),
        templates=(),
        spec=ir.SourceFile("spec.yaml", ""),
        spec_dir=".",
    )


def test_the_table_names_each_type_once_and_the_spec_schema_lists_them() -> None:
    assert tuple(VALUE_TYPES) == NAMES and len(set(NAMES)) == len(NAMES)
    for name, vt in VALUE_TYPES.items():
        assert str(vt) == vt.name == name
        assert value_type(name) is vt and value_type(vt) is vt and find_value_type(name) is vt
    schema = json.loads(read_schema())
    assert tuple(schema["$defs"]["output"]["properties"]["type"]["enum"]) == NAMES
    assert find_value_type("options") is None and find_value_type(3) is None
    with pytest.raises(KeyError, match="expected one of text, number, integer, boolean, enum"):
        value_type("date")


@pytest.mark.parametrize("vt", VALUE_TYPES.values(), ids=str)
def test_a_type_is_a_singleton_through_copies_and_pickles(vt: ValueType) -> None:
    assert copy.deepcopy(vt) is vt and pickle.loads(pickle.dumps(vt)) is vt
    f = field_of(vt)
    assert pickle.loads(pickle.dumps(f)) == f


@pytest.mark.parametrize("vt", VALUE_TYPES.values(), ids=str)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_type_keeps_the_whole_contract(vt: ValueType, data: st.DataObject) -> None:
    """Whatever its fragment admits reads to a value that is written canonically, read back,
    given in YAML or JSON, admitted by every export, equal to itself and counted."""
    for method in CONTRACT:
        assert callable(getattr(vt, method))
    f = field_of(vt)
    text = data.draw(st.from_regex(vt.regex(f, multiline=False), fullmatch=True))
    value = vt.read(f, text)
    assert vt.read(f, text) == value  # reading is the same every time
    written = vt.write(f, value)
    assert vt.read(f, written) == value and vt.coerce(f, written) == value
    assert re.fullmatch(vt.regex(f, False), written)
    assert re.fullmatch(vt.portable_regex(f, False), written)
    as_json = json.loads(json.dumps(vt.json_value(f, value)))
    jsonschema.validate(as_json, vt.json_schema(f))
    back = vt.coerce(f, as_json)
    # A JSON number past a float's precision comes back as the float it was sent as.
    assert back == value if not isinstance(as_json, float) else float(back) == as_json
    assert vt.matches(f, value, value, None)
    assert vt.gbnf(f, False, 400) and vt.expected(f) and vt.meaning(f)
    assert vt.tokens(f, len, task_of((f,), "{x}")) > 0


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[tuple[str, str, str]]]:
    """(type, method, field) for each export method a value type was asked."""
    seen: set[tuple[str, str, str]] = set()
    for vt in VALUE_TYPES.values():
        for method in EXPORTS:
            original = getattr(type(vt), method)

            def spy(
                self: ValueType,
                field: ir.OutputField,
                *args: Any,
                _original: Callable[..., Any] = original,
                _method: str = method,
            ) -> Any:
                seen.add((str(self), _method, field.name))
                return _original(self, field, *args)

            monkeypatch.setattr(type(vt), method, spy)
    yield seen


@pytest.mark.parametrize("spec", sorted(p.name for p in SPECS.glob("*.yaml")))
def test_every_export_of_every_example_spec_asks_the_table(
    spec: str, asked: set[tuple[str, str, str]]
) -> None:
    task = compile_spec(SPECS / spec)
    for kind in STRATEGIES.values():
        g = build_grammar(task, 1 if kind.one_item else 3, kind)
        assert g.lark and g.gbnf and g.json_schema and g.portable_regex
        for name in task.answer_format.fields:
            vt = task.output(name).type
            assert {(str(vt), m, name) for m in EXPORTS} <= asked, (kind, name)


class Percent(ValueType):
    """A type this test adds: ``18%`` or ``12.5%``, read to a Decimal."""

    name = "percent"
    json_type = "number"
    FORM: ClassVar[str] = r"\d{1,3}(?:\.\d+)?%"

    def regex(self, field: ir.OutputField, multiline: bool, reading: Reading = "") -> str:
        return self.FORM

    def read(self, field: ir.OutputField, text: str) -> Value:
        if not re.fullmatch(self.FORM, text.strip()):
            raise ValueError(f"expected {self.expected(field)}, found {text!r}")
        return Decimal(text.strip()[:-1])

    def write(self, field: ir.OutputField, value: Value) -> str:
        return f"{value}%"

    def json_value(self, field: ir.OutputField, value: Value) -> object:
        return float(value)

    def coerce_scalar(self, field: ir.OutputField, value: float) -> Value:
        return Decimal(str(value))

    def expected(self, field: ir.OutputField) -> str:
        return "a percentage such as 18%"

    def meaning(self, field: ir.OutputField) -> str:
        return "a percentage"


@pytest.mark.parametrize("kind", list(STRATEGIES))
def test_a_new_type_needs_only_its_class(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    percent = Percent()
    monkeypatch.setitem(VALUE_TYPES, "percent", percent)
    assert value_type("percent") is percent
    reasoning, share = ir.OutputField("reasoning", TEXT), ir.OutputField("share", percent)
    task = task_of((reasoning, share), "{reasoning} So {share}.", kind)
    one = strategy(kind).one_item
    g = build_grammar(task, 1 if one else 2, kind)
    assert "F_SHARE:" in g.lark and "// share: percent" in g.lark
    assert (
        "field-share ::= percent" in g.gbnf and 'percent ::= [0-9]{1,3} ("." [0-9]+)? "%"' in g.gbnf
    )
    assert "[0-9]{1,3}(?:\\.[0-9]+)?%" in g.portable_regex
    schema = json.dumps(g.json_schema)
    assert '"share": {"type": "number", "description"' not in schema  # no description given
    assert '"share": {"type": "number"}' in schema
    if one:
        output = "It rose by 18 points, then 0.5 more. So 18.5%."
        want = [{"reasoning": "It rose by 18 points, then 0.5 more.", "share": Decimal("18.5")}]
    else:
        q1, q2 = ("Q[1]: How much?\n", "Q[2]: And now?\n") if kind == "auto-demo" else ("", "")
        output = f"{q1}A[1]: Up. So 12%.\n{q2}A[2]: Flat, 3% of 100%. So 100%."
        want = [
            {"reasoning": "Up.", "share": Decimal(12)},
            {"reasoning": "Flat, 3% of 100%.", "share": Decimal(100)},
        ]
    for read in (regex_items, lark_items):
        assert [dict(item.values) for item in read(g, output)] == want
    assert percent.matches(share, Decimal("18.5"), Decimal("18.50"), None)
    assert percent.tokens(share, len, task) == 1.0  # no gold, no demos: one token
