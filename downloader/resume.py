"""Resume, as pure functions: what a partial lets us ask for, and what an answer means.

:func:`plan_from` decides how much of an existing ``.part`` may be kept (only what
its resume record vouches for). :func:`judge` reads the head of the answer to
that request: go on writing (:class:`Continue`, with the offset, the whole
length and where this body must end), start over (:class:`Restart`: another
version, a range that does not continue), or a response that makes no sense for
the request (:class:`Mismatch`). Once a length has been announced for a partial
it binds every later answer for it; a range's end binds its body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

from .storage import ResumeRecord
from .wire import parse_content_range, parse_length, version_changed


class Plan(NamedTuple):
    """Keep ``offset`` bytes of the partial, vouched for by ``record`` (None: start over)."""

    offset: int
    record: ResumeRecord | None

    def request_headers(self) -> tuple[tuple[str, str], ...]:
        """``Range`` + ``If-Range`` (with the partial's validator) to continue it."""
        if not (self.offset and self.record):
            return ()
        if self.record.validator:
            return (("Range", f"bytes={self.offset}-"), ("If-Range", self.record.validator))
        return (("Range", f"bytes={self.offset}-"),)


def plan_from(
    *, size: int, record: ResumeRecord | None, url: str, resume: bool, trusted: bool
) -> Plan:
    """The plan for a partial of ``size`` bytes and its ``record``.

    Without a validator a partial is only trusted (``trusted``) when this download
    began it moments ago, or when a checksum will prove the whole file anyway.
    """
    if (
        record is not None
        and resume
        and size > 0
        and record.url_sha256 == ResumeRecord.url_hash(url)
        and (record.length is None or size <= record.length)
        and (record.validator is not None or trusted)
    ):
        return Plan(size, record)
    return Plan(0, None)


@dataclass(frozen=True, slots=True)
class Continue:
    """Write this body from ``offset``; it ends at ``end`` (None: when the server ends it)."""

    offset: int
    total: int | None
    end: int | None
    restarted: bool = False
    """A 200 to a ranged request: the partial is dropped and the body written from 0."""


@dataclass(frozen=True, slots=True)
class Restart:
    reason: str


@dataclass(frozen=True, slots=True)
class Mismatch:
    reason: str


Verdict = Continue | Restart | Mismatch


def judge(status: int, headers: Mapping[str, str], plan: Plan, length: int | None) -> Verdict:
    """What the answer (``status``, ``headers``) to ``plan``'s request means.

    ``length`` is the whole length announced earlier for this partial, if any.
    """
    if plan.offset and status in (206, 416):
        return _judge_range(status, headers, plan, length)
    if status in (206, 416):
        return Mismatch(f"unexpected HTTP {status} to a plain request")
    announced = parse_length(headers.get("Content-Length"))
    if plan.offset == 0 and announced is None:
        announced = length
    return Continue(0, announced, announced, restarted=plan.offset > 0)


def _judge_range(
    status: int, headers: Mapping[str, str], plan: Plan, length: int | None
) -> Verdict:
    offset, record = plan.offset, plan.record
    value = headers.get("Content-Range")
    cr = parse_content_range(value)
    expected = length if length is not None else (record.length if record else None)
    if status == 416:
        if cr and cr.total == offset and expected in (None, offset):
            return Continue(offset, offset, offset)
        return Restart("server refused the range")
    if cr is None or cr.start != offset or cr.end is None:
        return Restart(f"Content-Range {value!r} does not continue")
    if expected is not None and cr.total not in (None, expected):
        return Restart(f"size changed from {expected} to {cr.total}")
    if version_changed(headers, record.validator if record else None):
        return Restart("the file changed on the server")
    total = cr.total if cr.total is not None else expected
    end = cr.end + 1
    body = parse_length(headers.get("Content-Length"))
    if body is not None and offset + body != end:
        return Restart(f"Content-Length {body} does not match Content-Range {value!r}")
    return Continue(offset, total, end)
