"""parse_normalized's fast path for plain Docker Hub names gives what the grammar gives."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from berth.errors import InvalidReference
from berth.oci import reference
from berth.oci.digest import Digest, _well_formed


def by_grammar(text: str) -> object:
    try:
        domain, remainder = reference._split_docker_domain(text)
        name = remainder.split(":", 1)[0]
        if name.lower() != name:
            return "error"
        return reference.parse(f"{domain}/{remainder}")
    except InvalidReference:
        return "error"


@given(st.text(alphabet="ab0-_./:@A\nü", max_size=12))
def test_fast_path_agrees_with_the_grammar(text: str) -> None:
    fast = reference._simple_docker_hub_name(text)
    if fast is not None and not reference.looks_like_image_id(text):
        assert fast == by_grammar(text)


def test_usual_names_take_the_fast_path() -> None:
    for text in ("busybox", "busybox:1.36", "user/app", "my-org/my_app.v2:latest"):
        assert reference._simple_docker_hub_name(text) == by_grammar(text)
    for text in ("localhost/app", "ghcr.io/a/b", "Busybox", "a@sha256:" + "0" * 64, "a..b"):
        assert reference._simple_docker_hub_name(text) is None


@given(st.text(alphabet="az09.+_-:Z=\n ", max_size=10))
def test_digest_grammar_without_re(text: str) -> None:
    pattern = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
    assert _well_formed(text) == bool(pattern.match(text))
    assert Digest.parse("sha256:" + "a" * 64).hex == "a" * 64
