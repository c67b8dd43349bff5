"""Small value classes without :mod:`dataclasses`.

``import dataclasses`` pulls in :mod:`inspect` (with :mod:`ast`, :mod:`dis`, :mod:`tokenize`)
and each ``@dataclass`` compiles its generated methods when its module is imported: together
about 20 ms of ``berth run``'s start, more than ``runc run`` takes in all. The classes on that
path derive from these two bases instead: a subclass lists its fields in ``__slots__`` (in any
order) and writes its ``__init__``; the bases give what ``@dataclass(slots=True)`` would,
computed from ``__slots__`` (so a value class derives from one of them directly):

- :class:`Value`: ``==`` (same class, equal fields), ``repr``; mutable, so not hashable.
- :class:`FrozenValue`: the same, plus ``hash``, and assignment raises ``AttributeError``
  (its ``__init__`` sets fields with :func:`init_fields`); copies and pickles hold the same
  field values.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TypeVar

    V = TypeVar("V", bound="Value")

_set = object.__setattr__


def init_fields(obj: FrozenValue, **fields: object) -> None:
    """Set the fields of a frozen value (from its ``__init__``)."""
    for name, value in fields.items():
        _set(obj, name, value)


def replace(value: V, **changes: Any) -> V:
    """A copy of ``value`` with some fields changed, as ``dataclasses.replace`` makes it."""
    unknown = set(changes) - set(value.__slots__)
    if unknown:
        raise TypeError(f"{type(value).__name__} has no field {sorted(unknown)[0]!r}")
    copy = object.__new__(type(value))
    for name in value.__slots__:
        _set(copy, name, changes[name] if name in changes else getattr(value, name))
    return copy


def as_dict(value: Value) -> dict[str, Any]:
    """The fields as plain data, values within values too, as ``dataclasses.asdict`` gives."""
    return {name: _plain(getattr(value, name)) for name in value.__slots__}


def _plain(item: Any) -> Any:
    if isinstance(item, Value):
        return as_dict(item)
    if isinstance(item, list | tuple):
        return type(item)(_plain(x) for x in item)
    if isinstance(item, dict):
        return {_plain(k): _plain(v) for k, v in item.items()}
    return item


class Value:  # noqa: PLW1641 (no __hash__: mutable values are unhashable, as dataclasses')
    """Equality and ``repr`` from ``__slots__``."""

    __slots__: tuple[str, ...] = ()
    # defining __eq__ and no __hash__ makes instances unhashable, as @dataclass(eq=True) does

    def _field_values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Value)
        return self._field_values() == other._field_values()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__qualname__}({fields})"


class FrozenValue(Value):
    """An immutable :class:`Value`, hashable by its fields."""

    __slots__: tuple[str, ...] = ()

    def __hash__(self) -> int:
        return hash(self._field_values())

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot assign to {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: cannot delete {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (type(self), self._field_values())


def _rebuild(cls: type[FrozenValue], values: tuple[Any, ...]) -> FrozenValue:
    obj = cls.__new__(cls)
    for name, value in zip(cls.__slots__, values, strict=True):
        _set(obj, name, value)
    return obj
