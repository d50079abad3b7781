"""``@record``: a frozen dataclass that costs one generated function instead of six.

``@dataclass(frozen=True)`` compiles six methods from source text for every class
(``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__``, ``__delattr__``).
For the IR's two dozen node types that was about 12 ms of every ``promptc check`` — a third
of promptc's own start-up. Only ``__init__`` needs to be specialised to run fast (items are
made per data row); the other five behave the same for every class, so they are written
once here, as plain functions that read the class's field names.

A record is still a dataclass to the standard library: :func:`dataclasses.fields`,
:func:`dataclasses.replace`, :func:`dataclasses.asdict` and :func:`dataclasses.is_dataclass`
work on it, and ``default`` / ``default_factory`` in :func:`dataclasses.field` are honoured.
Type checkers see a frozen dataclass (:func:`typing.dataclass_transform`).
"""

from __future__ import annotations

import dataclasses
import reprlib
from typing import Any, TypeVar, dataclass_transform

T = TypeVar("T")

# The names the generated __init__ sees: defaults, factories and the raw setter.
_SETTER = "__record_setattr__"


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def record(cls: type[T]) -> type[T]:
    """Make ``cls`` a frozen dataclass with generic equality, hashing and repr.

    Args:
        cls: a class with annotated fields, as for :func:`dataclasses.dataclass`.

    Returns:
        The same class, with ``__init__`` generated for its fields; assigning or deleting
        a field afterwards raises :class:`dataclasses.FrozenInstanceError`.
    """
    # init/repr/eq off and not frozen: dataclass only collects the fields (no code is
    # generated), and records them in __dataclass_fields__ for fields()/replace().
    # A class without a docstring would get one from inspect.signature, which costs more
    # than the rest of this function; it gets its field list instead.
    undocumented = not cls.__doc__
    if undocumented:
        cls.__doc__ = cls.__name__
    cls = dataclasses.dataclass(init=False, repr=False, eq=False)(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    names = tuple(f.name for f in fields)
    if undocumented:
        cls.__doc__ = f"{cls.__name__}({', '.join(names)})"
    namespace: dict[str, Any] = {_SETTER: object.__setattr__, "MISSING": dataclasses.MISSING}
    params: list[str] = []
    body: list[str] = []
    for f in fields:
        if f.default is not dataclasses.MISSING:
            namespace[f"_d_{f.name}"] = f.default
            params.append(f"{f.name}=_d_{f.name}")
            body.append(f"    {_SETTER}(self, {f.name!r}, {f.name})")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_f_{f.name}"] = f.default_factory
            params.append(f"{f.name}=MISSING")
            body.append(
                f"    {_SETTER}(self, {f.name!r}, "
                f"_f_{f.name}() if {f.name} is MISSING else {f.name})"
            )
        else:
            params.append(f.name)
            body.append(f"    {_SETTER}(self, {f.name!r}, {f.name})")
    source = f"def __init__(self, {', '.join(params)}):\n" + ("\n".join(body) or "    pass")
    exec(source, namespace)  # noqa: S102 - source built above from the class's field names
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    methods: dict[str, object] = {
        "__init__": init,
        "__record_fields__": names,
        "__match_args__": names,
        "__setattr__": _frozen_setattr,
        "__delattr__": _frozen_delattr,
        "__eq__": _eq,
        "__hash__": _hash,
        "__repr__": _repr,
    }
    for name, value in methods.items():
        setattr(cls, name, value)
    return cls


def _values(obj: object) -> tuple[object, ...]:
    return tuple(getattr(obj, n) for n in type(obj).__record_fields__)  # type: ignore[attr-defined]


def _frozen_setattr(self: object, name: str, value: object) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: object, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")


def _eq(self: object, other: object) -> object:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _values(self) == _values(other)


def _hash(self: object) -> int:
    return hash(_values(self))


@reprlib.recursive_repr()
def _repr(self: object) -> str:
    fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in type(self).__record_fields__)  # type: ignore[attr-defined]
    return f"{type(self).__qualname__}({fields})"
