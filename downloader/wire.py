"""HTTP details that need no connection: a response's head, ``Content-Range``,
``Content-Length`` and validators. Every parser here is total: a value a server
sends never raises, it is parsed or it is ``None``."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_LENGTH_DIGITS = 18
"""A length of more digits than this (an exabyte) is not a length."""


class Headers(Mapping[str, str]):
    """A response's header fields, looked up without regard to case.

    A field sent more than once keeps every value, joined with ``", "`` as HTTP
    allows, so two different ``Content-Length`` values are seen as one bad value.
    """

    __slots__ = ("_fields",)

    def __init__(self, fields: Iterable[tuple[str, str]] = ()) -> None:
        self._fields: dict[str, tuple[str, str]] = {}
        for name, value in fields:
            self.add(name, value)

    def add(self, name: str, value: str) -> None:
        key = name.lower()
        had = self._fields.get(key)
        self._fields[key] = (name, value if had is None else f"{had[1]}, {value}")

    def __getitem__(self, name: str) -> str:
        return self._fields[name.lower()][1]

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._fields.values())

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        return f"Headers({list(self.items())!r})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """The head of a final response (never a 1xx or a followed redirect)."""

    status: int
    reason: str = ""
    headers: Headers = field(default_factory=Headers)
    http_version: str = "1.1"
    url: str = ""
    """The URL that answered, after redirects."""


class ContentRange(NamedTuple):
    start: int | None
    end: int | None
    total: int | None


_CONTENT_RANGE = re.compile(
    r"^[ \t]*bytes[ \t]+(?:([0-9]{1,18})-([0-9]{1,18})|\*)[ \t]*/[ \t]*([0-9]{1,18}|\*)[ \t]*$",
    re.IGNORECASE | re.ASCII,
)


def parse_content_range(value: str | None) -> ContentRange | None:
    """``"bytes 100-199/1000"`` -> (100, 199, 1000); ``"bytes */1000"`` -> (None, None, 1000)."""
    if not value:
        return None
    match = _CONTENT_RANGE.match(value)
    if not match:
        return None
    start, end, total = match.groups()
    parsed = ContentRange(
        int(start) if start else None,
        int(end) if end else None,
        int(total) if total != "*" else None,
    )
    if parsed.start is not None and parsed.end is not None and parsed.end < parsed.start:
        return None
    if parsed.end is not None and parsed.total is not None and parsed.end >= parsed.total:
        return None
    return parsed


def parse_length(value: str | None) -> int | None:
    """A ``Content-Length`` of ASCII digits, else None (``"²"``, ``"-1"``, ``"1, 2"``)."""
    if value is None:
        return None
    values = {v.strip(" \t") for v in value.split(",")}
    if len(values) != 1:
        return None
    text = values.pop()
    if not text or len(text) > MAX_LENGTH_DIGITS or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def validator_of(headers: Mapping[str, str]) -> str | None:
    """The strong validator for ``If-Range``: a strong ETag, else Last-Modified."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified")


def version_changed(headers: Mapping[str, str], validator: str | None) -> bool:
    """A response whose ETag (or Last-Modified) differs from ``validator``: another version."""
    if not validator:
        return False
    is_etag = validator.startswith('"')
    now = headers.get("ETag" if is_etag else "Last-Modified")
    return now is not None and now != validator
