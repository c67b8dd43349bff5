"""berth.filters: docker's --filter multimap, validation and matching.

The path_match table is Go's own test table for path.Match.
"""

from __future__ import annotations

import pytest

from berth.errors import InvalidArgument, UsageError
from berth.filters import Filters, parse_filters
from berth.pathmatch import match as path_match


def test_parse_normalises_like_docker() -> None:
    filters = parse_filters(
        ["label=a=b", " Label = c ", "dangling=true", "", "label=a=b", "reference=busy*"]
    )
    assert filters.to_dict() == {
        "label": ["a=b", "c"],
        "dangling": ["true"],
        "reference": ["busy*"],
    }
    assert len(filters) == 3
    assert list(filters) == ["label", "dangling", "reference"]
    assert "label" in filters and filters.contains("dangling") and not filters.contains("x")
    assert filters.get("nope") == []


def test_parse_rejects_a_value_without_equals() -> None:
    with pytest.raises(UsageError) as caught:
        parse_filters(["dangling"])
    assert caught.value.message == "bad format of filter (expected name=value)"


def test_validate() -> None:
    filters = parse_filters(["dangling=true", "foo=bar"])
    filters.validate(["dangling", "foo"])
    with pytest.raises(InvalidArgument) as caught:
        filters.validate(["dangling", "label"])
    assert caught.value.message == "invalid filter 'foo'"


@pytest.mark.parametrize(
    ("values", "expected"),
    [(["true"], True), (["1"], True), (["false"], False), (["0"], False), (["true", "1"], True)],
)  # fmt: skip
def test_get_bool(values: list[str], expected: bool) -> None:
    assert Filters({"dangling": values}).get_bool("dangling", not expected) is expected


def test_get_bool_default_when_absent() -> None:
    assert Filters().get_bool("dangling", True) is True
    assert Filters().get_bool("dangling", False) is False


@pytest.mark.parametrize(
    ("values", "message"),
    [(["maybe"], "invalid filter 'dangling=maybe'"),
     (["true", "false"], "invalid filter 'dangling=true,false'")],
)  # fmt: skip
def test_get_bool_errors(values: list[str], message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        Filters({"dangling": values}).get_bool("dangling", False)
    assert caught.value.message == message


def test_exact_fuzzy_and_unique_matches() -> None:
    filters = Filters({"id": ["abc", "def"], "name": ["web"]})
    assert filters.exact_match("id", "def") and not filters.exact_match("id", "abcd")
    assert filters.exact_match("absent", "anything")
    assert filters.fuzzy_match("id", "abcdef0123") and not filters.fuzzy_match("id", "xabc")
    assert filters.fuzzy_match("absent", "x")
    assert filters.unique_exact_match("name", "web")
    assert not filters.unique_exact_match("id", "abc")
    assert filters.unique_exact_match("absent", "x")


def test_regexp_match_like_the_engine() -> None:
    filters = Filters({"name": ["^web-[0-9]+$", "db", "(broken"]})
    assert filters.match("name", "web-12")
    assert filters.match("name", "mydb1")
    assert filters.match("name", "(broken")  # an exact match even though it is no regexp
    assert not filters.match("name", "web-x")
    assert Filters().match("name", "anything")


def test_match_kv_list() -> None:
    labels = {"env": "prod", "team": "core"}
    assert Filters({"label": ["env"]}).match_kv_list("label", labels)
    assert Filters({"label": ["env=prod", "team"]}).match_kv_list("label", labels)
    assert not Filters({"label": ["env=dev"]}).match_kv_list("label", labels)
    assert not Filters({"label": ["env", "owner"]}).match_kv_list("label", labels)
    assert not Filters({"label": ["env"]}).match_kv_list("label", {})
    assert not Filters({"label": ["env"]}).match_kv_list("label", None)
    assert Filters().match_kv_list("label", None)
    assert Filters({"label": ["k=a=b"]}).match_kv_list("label", {"k": "a=b"})


def test_match_labels_with_negation_as_prune_does() -> None:
    labels = {"env": "prod", "keep": "yes"}
    assert Filters({"label": ["env=prod"]}).match_labels(labels)
    assert not Filters({"label!": ["keep"]}).match_labels(labels)
    assert Filters({"label!": ["keep=no"]}).match_labels(labels)
    # label! excludes only when all of its values match
    assert Filters({"label!": ["keep", "other"]}).match_labels(labels)
    assert not Filters({"label": ["env=prod"], "label!": ["keep"]}).match_labels(labels)
    assert Filters().match_labels(None)


@pytest.mark.parametrize(
    ("patterns", "reference", "name", "expected"),
    [([], "busybox:latest", "busybox", True),
     (["busy*"], "busybox:latest", "busybox", True),
     (["busybox"], "busybox:latest", "busybox", True),
     (["busybox:latest"], "busybox:latest", "busybox", True),
     (["busybox:1.36"], "busybox:latest", "busybox", False),
     (["*/*:latest"], "library/busybox:latest", "library/busybox", True),
     (["*:latest"], "team/app:latest", "team/app", False),
     (["*/*"], "team/app:v1", "team/app", True),
     (["nope", "busy*"], "busybox:latest", "busybox", True),
     (["localhost:5000/*"], "localhost:5000/app:v1", "localhost:5000/app", True)],
)  # fmt: skip
def test_match_reference(patterns: list[str], reference: str, name: str, expected: bool) -> None:
    filters = Filters({"reference": patterns} if patterns else {})
    assert filters.match_reference(reference, name) is expected


def test_match_reference_bad_pattern() -> None:
    with pytest.raises(InvalidArgument, match="syntax error in pattern"):
        Filters({"reference": ["[busy"]}).match_reference("busybox:latest", "busybox")


def test_from_api_accepts_both_json_forms() -> None:
    assert Filters.from_api({"label": ["a=b"], "dangling": {"true": True, "false": False}}) == (
        Filters({"label": ["a=b"], "dangling": ["true"]})
    )
    with pytest.raises(InvalidArgument):
        Filters.from_api({"label": "a=b"})


def test_equality_and_repr() -> None:
    assert Filters({"a": ["1"]}) == Filters({"a": ["1", "1"]})
    assert Filters({"a": ["1"]}) != Filters({"a": ["2"]})
    assert Filters({"a": ["1"]}) != {"a": ["1"]}
    assert repr(Filters({"a": ["1"]})) == "Filters({'a': ['1']})"


BAD = "bad"

# Go's path.Match test table: (pattern, name, matched or BAD for ErrBadPattern)
GO_MATCH_TESTS = [
    ("abc", "abc", True), ("*", "abc", True), ("*c", "abc", True), ("a*", "a", True),
    ("a*", "abc", True), ("a*", "ab/c", False), ("a*/b", "abc/b", True), ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True), ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False), ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True), ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True), ("ab[b-d]", "abc", True), ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False), ("ab[^b-d]", "abc", False), ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True), ("a\\*b", "ab", False), ("a?b", "a☺b", True), ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False), ("a[^a][^a][^a]b", "a☺b", False), ("[a-ζ]*", "α", True),
    ("*[a-ζ]", "A", False), ("a?b", "a/b", False), ("a*b", "a/b", False), ("[\\]a]", "]", True),
    ("[\\-]", "-", True), ("[x\\-]", "x", True), ("[x\\-]", "-", True), ("[x\\-]", "z", False),
    ("[\\-x]", "x", True), ("[\\-x]", "-", True), ("[\\-x]", "a", False), ("[]a]", "]", BAD),
    ("[-]", "-", BAD), ("[x-]", "x", BAD), ("[x-]", "-", BAD), ("[x-]", "z", BAD),
    ("[-x]", "x", BAD), ("[-x]", "-", BAD), ("[-x]", "a", BAD), ("\\", "a", BAD),
    ("[a-b-c]", "a", BAD), ("[", "a", BAD), ("[^", "a", BAD), ("[^bc", "a", BAD),
    ("a[", "a", BAD), ("a[", "ab", BAD), ("a[", "x", BAD), ("a/b[", "x", BAD), ("*x", "xxx", True),
]  # fmt: skip


@pytest.mark.parametrize(("pattern", "name", "expected"), GO_MATCH_TESTS)
def test_path_match_like_go(pattern: str, name: str, expected: object) -> None:
    if expected == BAD:
        with pytest.raises(InvalidArgument, match="syntax error in pattern"):
            path_match(pattern, name)
    else:
        assert path_match(pattern, name) is expected
