"""berth.values: what @dataclass gave the classes on the start path."""

from __future__ import annotations

import copy
import pickle

import pytest

from berth.values import FrozenValue, Value, as_dict, init_fields, replace


class Point(FrozenValue):
    __slots__ = ("x", "y")
    x: int
    y: int

    def __init__(self, x: int, y: int = 0) -> None:
        init_fields(self, x=x, y=y)


class Box(Value):
    __slots__ = ("items", "where")

    def __init__(self, where: Point, items: list[int] | None = None) -> None:
        self.where = where
        self.items = [] if items is None else items


def test_frozen_values_compare_hash_and_refuse_changes() -> None:
    assert Point(1, 2) == Point(1, 2) != Point(2, 1)
    assert Point(1) != (1, 0)
    assert len({Point(1, 2), Point(1, 2), Point(3)}) == 2
    assert repr(Point(1, 2)) == "Point(x=1, y=2)"
    point = Point(1, 2)
    with pytest.raises(AttributeError):
        point.x = 5  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del point.y


def test_copies_pickles_and_replace() -> None:
    point = Point(1, 2)
    assert copy.copy(point) == copy.deepcopy(point) == pickle.loads(pickle.dumps(point)) == point
    assert replace(point, y=7) == Point(1, 7)
    with pytest.raises(TypeError):
        replace(point, z=1)
    box = Box(point, [1, 2])
    clone = copy.deepcopy(box)
    assert clone == box and clone.items is not box.items
    assert as_dict(box) == {"items": [1, 2], "where": {"x": 1, "y": 2}}


def test_mutable_values_are_unhashable() -> None:
    box = Box(Point(0))
    box.items.append(3)
    assert box == Box(Point(0), [3])
    with pytest.raises(TypeError):
        hash(box)
