"""jsonio gives what json gives (no root needed)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from berth import jsonio

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(json_values)
def test_round_trip_matches_json(value: Any) -> None:
    text = jsonio.dumps(value)
    assert text == json.dumps(value, separators=(",", ":"))
    assert jsonio.loads(text) == json.loads(text)
    assert jsonio.dumps_sorted(value) == json.dumps(value, sort_keys=True)


def test_whitespace_bytes_and_errors() -> None:
    assert jsonio.loads(b' \n{"a": [1, 2.5, "x"]}\t') == {"a": [1, 2.5, "x"]}
    assert jsonio.loads("\ufeff[]".encode()) == []
    for bad in ("", "{", "[1,]", "1 2", "nul"):
        with pytest.raises(ValueError):
            jsonio.loads(bad)
    with pytest.raises(TypeError):
        jsonio.dumps({"a": object()})
