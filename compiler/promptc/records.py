"""``@record``: a frozen dataclass that compiles no code at import.

``@dataclass(frozen=True)`` compiles six methods from source text for every class
(``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__``, ``__delattr__``), and
examines every annotation. For the IR's two dozen node types that was about 12 ms of every
``promptc check`` — a third of promptc's own start-up. A record instead:

- writes equality, hashing, repr and the frozen setters once, here, as plain functions that
  read the class's field names;
- starts each class with a generic ``__init__`` (a closure: nothing to compile). After
  :data:`COMPILE_AFTER` instances, the class gets an ``__init__`` compiled for its fields,
  as fast as a dataclass's: the classes made per data row or per request pay the compile
  once, and the many made once per spec (most of the IR) never do;
- leaves the standard library's bookkeeping (``__dataclass_fields__``) to the first use of
  :func:`dataclasses.fields`, :func:`dataclasses.replace`, :func:`dataclasses.asdict` or
  :func:`dataclasses.is_dataclass`, which all work on a record.

Plain defaults are class attributes, as with dataclasses; a default made per instance is
:func:`field` ``(default_factory=…)`` (:func:`dataclasses.field` works too), and
:func:`replace` is :func:`dataclasses.replace` for records. This module imports
:mod:`dataclasses` only when one of its functions is asked for: ``promptc check`` never is.
Type checkers see a frozen dataclass (:func:`typing.dataclass_transform`).
"""

from __future__ import annotations

import inspect
import reprlib
import sys
from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform

T = TypeVar("T")

#: Instances made with the generic ``__init__`` before a class's own is compiled.
COMPILE_AFTER = 32


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


_MISSING: Any = _Missing()


class _Factory:
    """What :func:`field` puts in the class body: the field's default factory."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], T]) -> T:
    """A field whose default is made anew for each instance by ``default_factory()``, as
    ``dataclasses.field(default_factory=…)``."""
    return _Factory(default_factory)  # type: ignore[return-value]


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of the record ``obj`` with ``changes`` to its fields, as
    :func:`dataclasses.replace` makes (without importing it).

    Raises:
        TypeError: ``changes`` names something that is not a field of ``obj``.
    """
    names: tuple[str, ...] = type(obj).__record_fields__  # type: ignore[attr-defined]
    for name in changes:
        if name not in names:
            raise TypeError(f"{type(obj).__qualname__} has no field {name!r}")
    values = {n: changes[n] if n in changes else getattr(obj, n) for n in names}
    return type(obj)(**values)


# The names a compiled __init__ sees: defaults, factories and the raw setter.
_SETTER = "__record_setattr__"
_UNSUPPORTED = ("ClassVar", "InitVar", "KW_ONLY")


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: type[T]) -> type[T]:
    """Make ``cls`` a frozen dataclass with generic equality, hashing and repr.

    Args:
        cls: a class with annotated fields, as for :func:`dataclasses.dataclass`. Fields of
            a base class that is a record come first, as with dataclasses.

    Returns:
        The same class, with ``__init__`` taking its fields; assigning or deleting a field
        afterwards raises :class:`dataclasses.FrozenInstanceError`.

    Raises:
        TypeError: A ``ClassVar``, ``InitVar`` or ``KW_ONLY`` annotation (not supported), or
            a field without a default after one with.
        ValueError: A mutable default (a list, dict or set), as dataclasses refuses.
    """
    # Each field: (name, default, factory), MISSING where there is none.
    spec: dict[str, tuple[str, Any, Any]] = {}
    for base in reversed(cls.__mro__[1:]):
        for entry in base.__dict__.get("__record_spec__", ()):
            spec[entry[0]] = entry
    for name, annotation in inspect.get_annotations(cls).items():
        text = annotation if isinstance(annotation, str) else repr(annotation)
        if any(word in text for word in _UNSUPPORTED):
            raise TypeError(f"@record does not support {text} ({cls.__qualname__}.{name})")
        raw: Any = cls.__dict__.get(name, _MISSING)
        default, factory = raw, _MISSING
        # A dataclasses.Field can only exist once dataclasses has been imported.
        stdlib = sys.modules.get("dataclasses")
        if isinstance(raw, _Factory):
            default, factory = _MISSING, raw.make
        elif stdlib is not None and isinstance(raw, stdlib.Field):
            default = _MISSING if raw.default is stdlib.MISSING else raw.default
            factory = _MISSING if raw.default_factory is stdlib.MISSING else raw.default_factory
        if raw is not default:  # a field specifier: as dataclasses does, the class attribute
            if default is _MISSING:  # becomes the plain default, or goes
                type.__delattr__(cls, name)
            else:
                type.__setattr__(cls, name, default)
        if type(default) in (list, dict, set):
            raise ValueError(
                f"mutable default {type(default)} for field {name} is not allowed: "
                "use default_factory"
            )
        spec[name] = (name, default, factory)
    entries = tuple(spec.values())
    seen_default = False
    for name, default, factory in entries:
        if default is _MISSING and factory is _MISSING:
            if seen_default:
                raise TypeError(f"non-default argument {name!r} follows default argument")
        else:
            seen_default = True
    names = tuple(name for name, _, _ in entries)
    if not cls.__doc__:  # what dataclasses would write, without its inspect.signature
        cls.__doc__ = f"{cls.__name__}({', '.join(names)})"
    methods: dict[str, object] = {
        "__init__": _generic_init(cls, entries),
        "__record_spec__": entries,
        "__record_fields__": names,
        "__match_args__": names,
        "__dataclass_fields__": _LazyFields(cls),
        "__setattr__": _frozen_setattr,
        "__delattr__": _frozen_delattr,
        "__eq__": _eq,
        "__hash__": _hash,
        "__repr__": _repr,
    }
    for name, value in methods.items():
        setattr(cls, name, value)
    return cls


def _generic_init(cls: type, entries: tuple[tuple[str, Any, Any], ...]) -> Callable[..., None]:
    """An ``__init__`` that binds arguments to fields as a compiled one would, counting the
    instances it makes; at :data:`COMPILE_AFTER`, it puts the compiled one on the class."""
    names = tuple(name for name, _, _ in entries)
    n = len(names)
    required = sum(1 for _, d, f in entries if d is _MISSING and f is _MISSING)
    qualname = f"{cls.__qualname__}.__init__"
    setter = object.__setattr__
    made = 0

    def __init__(self: object, *args: Any, **kwargs: Any) -> None:
        nonlocal made
        made += 1
        if made == COMPILE_AFTER and cls.__dict__.get("__init__") is __init__:
            type.__setattr__(cls, "__init__", _compiled_init(cls, entries))
        if len(args) > n:
            took = f"{required + 1}" if required == n else f"from {required + 1} to {n + 1}"
            raise TypeError(
                f"{qualname}() takes {took} positional arguments but {len(args) + 1} were given"
            )
        for name, value in zip(names, args):
            setter(self, name, value)
        if len(args) == n and not kwargs:
            return
        missing = []
        for name, default, factory in entries[len(args) :]:
            if name in kwargs:
                setter(self, name, kwargs.pop(name))
            elif default is not _MISSING:
                setter(self, name, default)
            elif factory is not _MISSING:
                setter(self, name, factory())
            else:
                missing.append(name)
        if kwargs:
            key = next(iter(kwargs))
            problem = (
                "got multiple values for argument"
                if key in names
                else ("got an unexpected keyword argument")
            )
            raise TypeError(f"{qualname}() {problem} {key!r}")
        if missing:
            listed = ", ".join(repr(m) for m in missing)
            raise TypeError(
                f"{qualname}() missing {len(missing)} required positional "
                f"argument{'s' if len(missing) > 1 else ''}: {listed}"
            )

    __init__.__qualname__ = qualname
    return __init__


def _compiled_init(cls: type, entries: tuple[tuple[str, Any, Any], ...]) -> Callable[..., None]:
    """``__init__`` compiled for the fields, as dataclasses writes it."""
    namespace: dict[str, Any] = {_SETTER: object.__setattr__, "MISSING": _MISSING}
    params: list[str] = []
    body: list[str] = []
    for name, default, factory in entries:
        if default is not _MISSING:
            namespace[f"_d_{name}"] = default
            params.append(f"{name}=_d_{name}")
            body.append(f"    {_SETTER}(self, {name!r}, {name})")
        elif factory is not _MISSING:
            namespace[f"_f_{name}"] = factory
            params.append(f"{name}=MISSING")
            body.append(
                f"    {_SETTER}(self, {name!r}, _f_{name}() if {name} is MISSING else {name})"
            )
        else:
            params.append(name)
            body.append(f"    {_SETTER}(self, {name!r}, {name})")
    source = f"def __init__(self, {', '.join(params)}):\n" + ("\n".join(body) or "    pass")
    exec(source, namespace)  # noqa: S102 - source built above from the class's field names
    init: Callable[..., None] = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


class _LazyFields:
    """``__dataclass_fields__`` of a record, made by :func:`dataclasses.dataclass` when first
    read (by ``fields``, ``replace``, ``asdict``, ``is_dataclass``)."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        import dataclasses

        cls = self.cls
        # dataclasses writes the real mapping in this one's place; init, repr and eq off and
        # not frozen, it generates no code and changes no method of the record. It reads
        # defaults from the class body: the factories go back there for it to find (and
        # remove again).
        type.__delattr__(cls, "__dataclass_fields__")
        own = inspect.get_annotations(cls)
        for name, _, factory in cls.__dict__["__record_spec__"]:
            if factory is not _MISSING and name in own:
                type.__setattr__(cls, name, dataclasses.field(default_factory=factory))
        dataclasses.dataclass(init=False, repr=False, eq=False)(cls)
        return cls.__dict__["__dataclass_fields__"]


def _values(obj: object) -> tuple[object, ...]:
    return tuple(getattr(obj, n) for n in type(obj).__record_fields__)  # type: ignore[attr-defined]


def _frozen_setattr(self: object, name: str, value: object) -> None:
    from dataclasses import FrozenInstanceError

    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: object, name: str) -> None:
    from dataclasses import FrozenInstanceError

    raise FrozenInstanceError(f"cannot delete field {name!r}")


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
