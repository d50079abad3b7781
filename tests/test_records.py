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
