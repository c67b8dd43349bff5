"""Image references normalise exactly as the docker CLI normalises them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from berth.errors import InvalidReference
from berth.oci.reference import parse_normalized

HEX = "a" * 64


@pytest.mark.parametrize(
    ("text", "full", "familiar"),
    [
        ("busybox", "docker.io/library/busybox", "busybox"),
        ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
        ("library/busybox", "docker.io/library/busybox", "busybox"),
        ("docker.io/busybox", "docker.io/library/busybox", "busybox"),
        ("index.docker.io/busybox", "docker.io/library/busybox", "busybox"),
        ("index.docker.io/library/busybox:x", "docker.io/library/busybox:x", "busybox:x"),
        ("user/app", "docker.io/user/app", "user/app"),
        ("user/app/sub:v1", "docker.io/user/app/sub:v1", "user/app/sub:v1"),
        ("localhost/app", "localhost/app", "localhost/app"),
        ("localhost:5000/app:1", "localhost:5000/app:1", "localhost:5000/app:1"),
        ("127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b", "127.0.0.1:5000/a/b"),
        ("ghcr.io/owner/x:tag", "ghcr.io/owner/x:tag", "ghcr.io/owner/x:tag"),
        ("[::1]:5000/app", "[::1]:5000/app", "[::1]:5000/app"),
        ("Registry/app", "Registry/app", "Registry/app"),  # uppercase first part is a host
        ("example.com/a__b/c-d.e", "example.com/a__b/c-d.e", "example.com/a__b/c-d.e"),
        (f"busybox@sha256:{HEX}", f"docker.io/library/busybox@sha256:{HEX}",
         f"busybox@sha256:{HEX}"),
        (f"busybox:1@sha256:{HEX}", f"docker.io/library/busybox:1@sha256:{HEX}",
         f"busybox:1@sha256:{HEX}"),
    ],
)
def test_normalisation(text: str, full: str, familiar: str) -> None:
    ref = parse_normalized(text)
    assert str(ref) == full
    assert ref.familiar() == familiar


def test_default_tag_is_added_only_without_tag_or_digest() -> None:
    assert str(parse_normalized("busybox").with_default_tag()) == "docker.io/library/busybox:latest"
    assert parse_normalized("busybox:1").with_default_tag().tag == "1"
    assert parse_normalized(f"busybox@sha256:{HEX}").with_default_tag().tag is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "at least one component"),
        ("Busybox", "must be lowercase"),
        ("docker.io/Library/busybox", "must be lowercase"),
        (HEX, "cannot specify 64-byte hexadecimal strings"),
        ("busybox:", "invalid reference format"),
        ("busybox:-tag", "invalid reference format"),
        ("bad__name__", "invalid reference format"),
        ("a/-b", "invalid reference format"),
        ("busybox@sha256:abc", "invalid reference format"),
        ("busybox@md5:" + "a" * 32, "invalid reference format"),
        ("-busybox", "invalid reference format"),
        ("a" * 256, "not be more than 255"),
        ("busybox:" + "t" * 129, "invalid reference format"),
        ("localhost:notaport/app", "invalid reference format"),
    ],
)
def test_invalid_references_are_rejected_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(InvalidReference, match=message):
        parse_normalized(text)


def test_host_part_is_kept_verbatim_and_path_is_split_right() -> None:
    ref = parse_normalized("localhost:5000/team/app:2")
    assert (ref.domain, ref.path, ref.tag) == ("localhost:5000", "team/app", "2")
    ref = parse_normalized("team/app")
    assert (ref.domain, ref.path) == ("docker.io", "team/app")


_component = st.from_regex(r"[a-z0-9]+(?:[._-][a-z0-9]+)?", fullmatch=True)


@given(parts=st.lists(_component, min_size=1, max_size=3),
       tag=st.one_of(st.none(), st.from_regex(r"[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,20}", fullmatch=True)))
def test_round_trip_of_valid_names(parts: list[str], tag: str | None) -> None:
    text = "/".join(parts) + (f":{tag}" if tag else "")
    ref = parse_normalized(text)
    assert parse_normalized(str(ref)) == ref
    assert parse_normalized(ref.familiar()) == ref
