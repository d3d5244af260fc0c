"""``-s N``: one large file over several ranged connections, written into one ``.part``.

The file is cut into segments (:func:`plan_segments`, pure). Each runner is a
sub-transfer (a generator of :mod:`downloader.effects`) that fetches segments
with ``Range`` + ``If-Range`` and writes them at their offsets through a
:class:`~downloader.sink.Sink`; the download gathers the runners, so they move
bytes concurrently on the same lane. How far each segment got is kept in the
resume record, so an interrupted split download continues every segment where
it stopped. Every segment's answer is checked against the validator exactly as a
single-connection resume is.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

from .cancel import CancelToken
from .effects import Body, Discard, Effect, Fetch, Gather, Wait
from .errors import Cancelled, HTTPStatusError, RangeMismatch, ShortBody, TransferError
from .progress import TransferProgress
from .ratelimit import HostGate, TokenBucket, host_of
from .retry import RETRY_AFTER_CAP, parse_retry_after
from .sink import Sink
from .storage import Folder, ResumeRecord
from .wire import Response, parse_content_range, parse_length, version_changed

MIN_SEGMENT = 1024 * 1024
"""No segment is smaller than this: below it another connection costs more than it brings."""

SAVE_EVERY = 1.0
"""Seconds between saves of the segments' progress to the resume record."""


def plan_segments(size: int, n: int) -> tuple[tuple[int, int], ...]:
    """``size`` bytes in at most ``n`` near-equal ``(start, end)`` pieces of >= 1 MiB each."""
    if size <= 0:
        return ((0, 0),)
    count = max(1, min(n, size // MIN_SEGMENT))
    base, extra = divmod(size, count)
    pieces, start = [], 0
    for i in range(count):
        end = start + base + (1 if i < extra else 0)
        pieces.append((start, end))
        start = end
    return tuple(pieces)


def splittable(headers: Mapping[str, str], length: int | None, min_size: int) -> bool:
    """A 200 that can be split: ranges offered, a known size of at least ``min_size``."""
    if length is None or length < max(min_size, 2 * MIN_SEGMENT):
        return False
    return "bytes" in headers.get("Accept-Ranges", "").lower()


@dataclass(frozen=True, slots=True, kw_only=True)
class SplitJob:
    """One split download: what its runners share."""

    url: str
    name: str
    headers: tuple[tuple[str, str], ...]
    """The entry's ``header=`` values, sent with every segment's request."""
    connections: int
    """``-s``: the most connections, this one included, within ``--per-host``."""
    gate: HostGate
    cancel: CancelToken
    limiter: TokenBucket | None


class SplitOutcome(NamedTuple):
    received: int
    record: ResumeRecord
    error: TransferError | None


def fetch_segments(
    job: SplitJob,
    folder: Folder,
    progress: TransferProgress,
    record: ResumeRecord,
    keep: int,
    *,
    first: bool = False,
) -> Generator[Effect, Any, SplitOutcome]:
    """Fetch what is missing of ``job.name``'s segments into its ``.part``.

    A new split download (``record`` without segments) gets as many segments as
    connections are free within ``--per-host``; its record is written before any
    byte. With ``first``, the body of the plain GET whose head just came in serves
    segment 0. A new version on the server (a RangeMismatch) discards the partial.
    """
    host = host_of(job.url)
    extra = job.gate.try_more(host, max(job.connections, 1) - 1)
    try:
        if record.segments is None:
            assert record.length is not None
            pieces = plan_segments(record.length, 1 + extra)
            record = replace(record, segments=tuple((a, b, 0) for a, b in pieces))
            folder.write_record(job.name, record)
        assert record.segments is not None
        progress.begin(job.name, record.length, sum(done for *_, done in record.segments))
        fd = folder.open_part(job.name, keep)
        run = SplitRun(job, fd, record, folder, progress)
        try:
            yield from run.run(1 + extra, first=first)
        except RangeMismatch as exc:
            folder.discard_partial(job.name)  # another version: none of its bytes can be kept
            return SplitOutcome(run.received, record, exc)
        except TransferError as exc:
            return SplitOutcome(run.received, record, exc)
        finally:
            os.close(fd)
        return SplitOutcome(run.received, record, None)
    finally:
        job.gate.give_back(host, extra)


class _Segments:
    """Progress of every segment; the runners of one download share it on one lane."""

    def __init__(self, segments: tuple[tuple[int, int, int], ...]) -> None:
        self.bounds = [(start, end) for start, end, _ in segments]
        self.done = [done for _, _, done in segments]
        self._next = 0

    def take(self) -> int | None:
        """The next unfinished segment for a runner, or None."""
        while self._next < len(self.bounds):
            i = self._next
            self._next += 1
            start, end = self.bounds[i]
            if self.done[i] < end - start:
                return i
        return None

    def snapshot(self) -> tuple[tuple[int, int, int], ...]:
        return tuple((s, e, d) for (s, e), d in zip(self.bounds, self.done, strict=True))

    def total_done(self) -> int:
        return sum(self.done)

    def complete(self) -> bool:
        return all(d >= e - s for (s, e), d in zip(self.bounds, self.done, strict=True))


class SplitRun:
    """One attempt of a split download: runners gathered until every segment is done."""

    def __init__(
        self,
        job: SplitJob,
        fd: int,
        record: ResumeRecord,
        folder: Folder,
        progress: TransferProgress,
    ) -> None:
        assert record.segments is not None
        self.job = job
        self.fd = fd
        self.record = record
        self.folder = folder
        self.progress = progress
        self.segments = _Segments(record.segments)
        self.stopped = False
        self.received = 0
        """Bytes received by this attempt so far (read after :meth:`run`, even if it failed)."""
        self._saved = time.monotonic()

    def run(self, connections: int, *, first: bool = False) -> Generator[Effect, Any, int]:
        """Fetch what is missing over ``connections``; returns the bytes received.

        With ``first``, the first runner begins with the body of the answer just in.
        Raises the worst error of a segment after saving how far all got.
        """
        before = self.segments.total_done()
        count = max(1, connections)
        runners = tuple(self._runner(first=first and n == 0) for n in range(count))
        try:
            errors: list[TransferError | None] = yield Gather(runners)
        finally:
            self.received = self.segments.total_done() - before
            self._save()
        real = [e for e in errors if e is not None]
        if real:
            raise _worst(real)
        if not self.segments.complete():
            raise ShortBody("a segment ended early; will resume")
        return self.received

    def _save(self) -> None:
        record = replace(self.record, segments=self.segments.snapshot())
        self.folder.write_record(self.job.name, record)
        self._saved = time.monotonic()

    def _counted(self, i: int) -> Any:
        def count(n: int) -> None:
            self.segments.done[i] += n
            if time.monotonic() - self._saved >= SAVE_EVERY:
                self._save()

        return count

    # -- runners ---------------------------------------------------------------------

    def _sink(self, i: int, at: int, end: int, *, cut: bool = False) -> Sink:
        return Sink(
            self.fd,
            name=self.job.name,
            position=at,
            end=end,
            cancel=self.job.cancel,
            progress=self.progress,
            limiter=self.job.limiter,
            counted=self._counted(i),
            cut_at_end=cut,
        )

    def _runner(self, *, first: bool = False) -> Generator[Effect, Any, TransferError | None]:
        job = self.job
        host, gate, cancel = host_of(job.url), job.gate, job.cancel
        if first:  # segment 0 from the plain GET's body; its connection is cut after
            i = self.segments.take()
            assert i == 0
            start, end = self.segments.bounds[0]
            error: TransferError | None = yield Body(self._sink(0, start, end, cut=True))
            if error is not None:
                return error
            if self.segments.done[0] < end - start:
                return ShortBody(f"a segment of {job.name} ended early; will resume")
        while not self.stopped and (i := self.segments.take()) is not None:
            while (held := gate.delay(host)) > 0:  # a Retry-After holds every request to the host
                yield Wait(held)
                if cancel.is_set():
                    return Cancelled("interrupted")
            start, end = self.segments.bounds[i]
            at = start + self.segments.done[i]
            headers = [("Range", f"bytes={at}-{end - 1}")]
            if self.record.validator:
                headers.append(("If-Range", self.record.validator))
            got = yield Fetch(job.url, (*headers, *job.headers))
            if isinstance(got, TransferError):
                return got
            problem = self._check(got, at, end)
            if problem is not None:
                yield Discard()
                if isinstance(problem, RangeMismatch):
                    self.stopped = True  # another version: the other segments are pointless
                return problem
            error = yield Body(self._sink(i, at, end))
            if error is not None:
                return error
            if self.segments.done[i] < end - start:
                return ShortBody(f"a segment of {job.name} ended early; will resume")
        return None

    def _check(self, resp: Response, at: int, end: int) -> TransferError | None:
        """A 206 of this version that continues the segment; else why not."""
        if resp.status in (200, 206, 416):
            cr = parse_content_range(resp.headers.get("Content-Range"))
            body = parse_length(resp.headers.get("Content-Length"))
            if (
                resp.status == 206
                and cr is not None
                and cr.start == at
                and cr.end is not None
                and cr.end < end
                and cr.total in (None, self.record.length)
                and (body is None or body == cr.end + 1 - at)
                and not version_changed(resp.headers, self.record.validator)
            ):
                return None
            return RangeMismatch(
                f"cannot continue a segment of {self.job.name}: HTTP {resp.status}, "
                f"Content-Range {resp.headers.get('Content-Range')!r}"
                + (
                    ", another version"
                    if version_changed(resp.headers, self.record.validator)
                    else ""
                )
            )
        # Any other status says nothing about the file: the finished segments stay.
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        status = HTTPStatusError(resp.status, resp.reason, retry_after)
        if retry_after is not None and status.retryable:
            self.job.gate.hold(host_of(self.job.url), min(retry_after, RETRY_AFTER_CAP))
        return status


def _worst(errors: list[TransferError]) -> TransferError:
    """The error that decides what happens next: a new version, then the rest."""
    changed = [e for e in errors if isinstance(e, RangeMismatch)]
    other = [e for e in errors if not isinstance(e, Cancelled)]
    return (changed or other or errors)[0]
