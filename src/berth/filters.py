"""Docker's ``--filter key=value`` arguments: parsing, validation and matching.

``berth images --filter dangling=true --filter label=env=prod`` becomes the multimap
``{"dangling": ["true"], "label": ["env=prod"]}``. Keys are lower-cased and both sides are
trimmed, as docker does; a repeated value counts once. Each command validates the keys it
accepts and matches objects with the helpers here, which behave as the Docker engine's:

- ``exact_match`` / ``fuzzy_match`` (prefix) / ``match`` (regular expression): pass when the
  key is absent, else when any value matches;
- ``match_kv_list`` (``label=key`` or ``label=key=value``): every value must match;
- ``match_labels``: ``label`` and the negation ``label!`` as ``prune`` applies them;
- ``get_bool`` (``dangling=true|false|1|0``);
- ``match_reference``: ``reference=busy*`` or ``reference=*/*:latest``, Go's ``path.Match``
  against the familiar name and the familiar reference (``busybox``, ``busybox:latest``).

``before`` and ``since`` name other objects: the command resolves them (``get("before")``).

    filters = parse_filters(invocation.get_list("filter"))
    filters.validate(("dangling", "label", "before", "since", "reference", "until"))
    if filters.get_bool("dangling", False) and not image_is_dangling: ...

The module is a sibling of the CLI's flag parser but useful to the Engine API too:
:meth:`Filters.from_api` reads the ``filters`` query parameter in both of docker's forms.
"""

from __future__ import annotations

from berth import pathmatch
from berth.errors import InvalidArgument, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

__all__ = ["Filters", "parse_filters"]


class Filters:
    """A filter multimap: each key to its values, in the order they were given."""

    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping[str, Iterable[str]] | None = None) -> None:
        self._fields: dict[str, list[str]] = {}
        for key, values in (fields or {}).items():
            for value in values:
                self.add(key, value)

    def __repr__(self) -> str:
        return f"Filters({self._fields!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Filters):
            return NotImplemented
        return self._fields == other._fields

    def __hash__(self) -> int:
        raise TypeError("Filters is mutable")

    def __len__(self) -> int:
        return len(self._fields)

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __contains__(self, key: object) -> bool:
        return key in self._fields

    @classmethod
    def parse(cls, arguments: Iterable[str]) -> Filters:
        """From ``--filter`` values; UsageError for one without "=" (as docker's flag)."""
        filters = cls()
        for argument in arguments:
            if not argument:
                continue
            if "=" not in argument:
                raise UsageError("bad format of filter (expected name=value)")
            key, _, value = argument.partition("=")
            filters.add(key.strip().lower(), value.strip())
        return filters

    @classmethod
    def from_api(cls, document: Mapping[str, object]) -> Filters:
        """From the Engine API's JSON: ``{"k": ["v"]}`` or the older ``{"k": {"v": true}}``."""
        filters = cls()
        for key, values in document.items():
            if isinstance(values, dict):
                chosen = [str(value) for value, enabled in values.items() if enabled]
            elif isinstance(values, list | tuple):
                chosen = [str(value) for value in values]
            else:
                raise InvalidArgument(f"invalid filter '{key}'")
            for value in chosen:
                filters.add(key, value)
        return filters

    def to_dict(self) -> dict[str, list[str]]:
        return {key: list(values) for key, values in self._fields.items()}

    def add(self, key: str, value: str) -> None:
        values = self._fields.setdefault(key, [])
        if value not in values:
            values.append(value)

    def get(self, key: str) -> list[str]:
        """The values given for ``key`` (empty when the filter is absent)."""
        return list(self._fields.get(key, ()))

    def contains(self, key: str) -> bool:
        return key in self._fields

    def validate(self, accepted: Iterable[str]) -> None:
        """InvalidArgument("invalid filter 'foo'") for the first key not in ``accepted``."""
        allowed = set(accepted)
        for key in self._fields:
            if key not in allowed:
                raise InvalidArgument(f"invalid filter '{key}'")

    def get_bool(self, key: str, default: bool) -> bool:
        """``key=true|1`` or ``key=false|0``; ``default`` when absent; InvalidArgument else."""
        values = self._fields.get(key)
        if values is None:
            return default
        false = "0" in values or "false" in values
        true = "1" in values or "true" in values
        if false == true:
            raise InvalidArgument(f"invalid filter '{key}={','.join(values)}'")
        return true

    def exact_match(self, key: str, source: str) -> bool:
        """True when ``key`` is absent or one of its values equals ``source``."""
        values = self._fields.get(key)
        return values is None or source in values

    def unique_exact_match(self, key: str, source: str) -> bool:
        """True when ``key`` is absent, or has exactly one value, equal to ``source``."""
        values = self._fields.get(key)
        if values is None:
            return True
        return len(values) == 1 and values[0] == source

    def fuzzy_match(self, key: str, source: str) -> bool:
        """True when ``key`` is absent or a value is ``source`` or a prefix of it (IDs)."""
        values = self._fields.get(key)
        if values is None:
            return True
        return any(source.startswith(value) for value in values)

    def match(self, key: str, source: str) -> bool:
        """True when ``key`` is absent or a value equals or (as a regexp) matches ``source``.

        Values that are not valid regular expressions are ignored, as the engine does.
        """
        values = self._fields.get(key)
        if values is None or source in values:
            return True
        import re

        for value in values:
            try:
                if re.search(value, source):
                    return True
            except re.error:
                continue
        return False

    def match_kv_list(self, key: str, sources: Mapping[str, str] | None) -> bool:
        """``key=name`` needs ``name`` in ``sources``, ``key=name=value`` that value too.

        Every value given must match; an absent key matches everything.
        """
        values = self._fields.get(key)
        if not values:
            return True
        if not sources:
            return False
        for value in values:
            name, has_value, wanted = value.partition("=")
            if name not in sources:
                return False
            if has_value and sources[name] != wanted:
                return False
        return True

    def match_labels(self, labels: Mapping[str, str] | None) -> bool:
        """``label=`` filters must all match; ``label!=`` ones must not all match."""
        if not self.match_kv_list("label", labels):
            return False
        return not (self.contains("label!") and self.match_kv_list("label!", labels))

    def match_reference(self, familiar_reference: str, familiar_name: str) -> bool:
        """Any ``reference`` pattern matching ``busybox:latest`` or ``busybox``.

        An absent filter matches; a malformed pattern raises InvalidArgument.
        """
        patterns = self._fields.get("reference")
        if patterns is None:
            return True
        for pattern in patterns:
            if pathmatch.match(pattern, familiar_reference):
                return True
            if pathmatch.match(pattern, familiar_name):
                return True
        return False


def parse_filters(arguments: Iterable[str]) -> Filters:
    """The ``--filter`` values of a command as a :class:`Filters` (see Filters.parse)."""
    return Filters.parse(arguments)
