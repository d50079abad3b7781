"""``@record`` behaves as ``@dataclass(frozen=True)`` does, for everything promptc relies on."""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import field

import pytest
from promptc import ir
from promptc.records import record


@record
class Point:
    x: int
    y: int = 0
    tags: tuple[str, ...] = ()
    extra: dict[str, int] = field(default_factory=dict)


@record
class Node:
    name: str
    children: list[Node] = field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class Twin:
    x: int
    y: int = 0
    tags: tuple[str, ...] = ()
    extra: dict[str, int] = field(default_factory=dict)


def test_init_defaults_and_factories() -> None:
    p = Point(1)
    assert (p.x, p.y, p.tags, p.extra) == (1, 0, (), {})
    assert Point(1).extra is not Point(1).extra  # a fresh dict per instance
    assert Point(x=2, y=3, tags=("a",), extra={"k": 1}).extra == {"k": 1}
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, z=2)  # type: ignore[call-arg]


def test_frozen() -> None:
    p = Point(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del p.x  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.new = 1  # type: ignore[attr-defined]


def test_equality_hash_and_repr_match_a_frozen_dataclass() -> None:
    assert Point(1, 2) == Point(1, 2)
    assert Point(1, 2) != Point(1, 3)
    assert Point(1, 2) != (1, 2)
    assert hash(ir.Markers("Q", "A")) == hash(ir.Markers("Q", "A"))
    assert len({ir.Markers("Q", "A"), ir.Markers("Q", "A"), ir.Markers("P", "A")}) == 2
    assert repr(Point(1, 2)).replace("Point", "Twin") == repr(Twin(1, 2))
    with pytest.raises(TypeError):
        hash(Point(1, extra={"k": 1}))  # unhashable field, as with a dataclass


def test_recursive_repr_terminates() -> None:
    n = Node("a")
    n.children.append(n)
    assert repr(n) == "Node(name='a', children=[...])"


def test_standard_library_sees_a_dataclass() -> None:
    p = Point(1, 2)
    assert dataclasses.is_dataclass(p)
    assert [f.name for f in dataclasses.fields(p)] == ["x", "y", "tags", "extra"]
    assert dataclasses.replace(p, y=5) == Point(1, 5)
    assert dataclasses.asdict(p) == {"x": 1, "y": 2, "tags": (), "extra": {}}
    assert pickle.loads(pickle.dumps(p)) == p
    match p:
        case Point(x, y):
            assert (x, y) == (1, 2)


def test_ir_nodes_are_records() -> None:
    m = ir.Markers()
    assert m == ir.Markers("Q", "A")
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.question = "X"  # type: ignore[misc]
    assert dataclasses.replace(m, question="Premise").question == "Premise"


def fresh_point() -> type:
    @record
    class P:
        x: int
        y: int = 0
        extra: dict[str, int] = field(default_factory=dict)

    return P


CALLS: list[tuple[tuple[object, ...], dict[str, object]]] = [
    ((1,), {}),
    ((1, 2), {}),
    ((), {"x": 3}),
    ((1,), {"extra": {"k": 1}}),
    ((), {"y": 2, "x": 1}),
    ((), {}),  # missing x
    ((1, 2, {}, 4), {}),  # too many
    ((1,), {"x": 2}),  # twice
    ((1,), {"z": 2}),  # unknown
]


def outcome(cls: type, args: tuple[object, ...], kwargs: dict[str, object]) -> object:
    try:
        p = cls(*args, **kwargs)
    except TypeError as e:
        return ("TypeError", str(e).split("() ", 1)[1])
    return (p.x, p.y, p.extra)


def test_generic_and_compiled_init_bind_arguments_alike() -> None:
    """Before and after its ``__init__`` is compiled, a class takes the same arguments, with
    the same defaults, fresh factories, and the same TypeError messages as Python's."""
    from promptc.records import COMPILE_AFTER

    cls = fresh_point()
    generic = cls.__dict__["__init__"]
    before = [outcome(cls, a, k) for a, k in CALLS]
    for _ in range(COMPILE_AFTER):
        cls(0)
    assert cls.__dict__["__init__"] is not generic  # compiled now
    after = [outcome(cls, a, k) for a, k in CALLS]
    assert before == after
    assert before[5] == ("TypeError", "missing 1 required positional argument: 'x'")
    assert cls(1).extra is not cls(1).extra


def test_fields_of_a_base_record_come_first() -> None:
    @record
    class Base:
        a: int
        b: int = 1

    @record
    class Child(Base):
        c: int = 2

    assert Child(0) == Child(0, 1, 2)
    assert [f.name for f in dataclasses.fields(Child)] == ["a", "b", "c"]
    assert dataclasses.replace(Child(0), c=5) == Child(0, 1, 5)


def test_class_attributes_that_dataclasses_refuses_are_refused() -> None:
    with pytest.raises(ValueError):

        @record
        class Mutable:
            xs: list[int] = []  # noqa: RUF012

    with pytest.raises(TypeError):

        @record
        class Order:
            a: int = 0
            b: int  # type: ignore[misc]


def test_own_field_and_replace_match_the_standard_library() -> None:
    from promptc.records import field as record_field
    from promptc.records import replace

    @record
    class Bag:
        name: str
        items: list[int] = record_field(default_factory=list)
        size: int = 3

    a, b = Bag("a"), Bag("b")
    assert a.items == [] and a.items is not b.items
    assert "items" not in Bag.__dict__  # no class attribute, as a dataclass has none
    assert replace(a, size=4) == Bag("a", [], 4) == dataclasses.replace(a, size=4)
    with pytest.raises(TypeError):
        replace(a, colour="red")
    (_, items, size) = dataclasses.fields(Bag)
    assert items.default_factory is list and size.default == 3
    assert dataclasses.asdict(Bag("c", [1])) == {"name": "c", "items": [1], "size": 3}
