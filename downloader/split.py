"""``-s N``: one large file over several ranged connections, written into one ``.part``.

The file is cut into segments (:func:`plan_segments`, pure). Each segment is
fetched with ``Range`` + ``If-Range`` by its own connection and written at its
offset with ``pwrite``. How far each segment got is kept in the resume record,
so an interrupted split download continues every segment where it stopped.
The worker thread that owns the download coordinates: it reports progress and
saves the record; the segment runners only move bytes.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, wait
from dataclasses import dataclass, replace
from typing import NamedTuple

from .cancel import CancelToken
from .client import Client, ClientConfig, Response, finish
from .errors import Cancelled, HTTPStatusError, RangeMismatch, ShortBody, TransferError
from .progress import TransferProgress
from .ratelimit import HostGate, TokenBucket, host_of
from .retry import RETRY_AFTER_CAP, parse_retry_after
from .storage import Folder, ResumeRecord, local_error
from .wire import parse_content_range, translated, validator_of

MIN_SEGMENT = 1024 * 1024
"""No segment is smaller than this: below it another connection costs more than it brings."""

SAVE_EVERY = 1.0
"""Seconds between saves of the segments' progress to the resume record."""

Spawn = Callable[[Callable[[], None]], "Future[None]"]


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
    """One split download: what the segment runners share."""

    url: str
    name: str
    connections: int
    """``-s``: the most connections, this one included, within ``--per-host``."""
    config: ClientConfig
    gate: HostGate
    cancel: CancelToken
    limiter: TokenBucket | None
    spawn: Spawn
    chunk: int


class SplitOutcome(NamedTuple):
    received: int
    record: ResumeRecord
    error: TransferError | None


def fetch_segments(
    job: SplitJob,
    folder: Folder,
    progress: TransferProgress,
    record: ResumeRecord | None,
    first: Response | None,
    keep: int,
) -> SplitOutcome:
    """Fetch what is missing of ``job.name``'s segments into its ``.part``.

    A new split download (``record`` None; ``first`` the unread answer to a plain
    GET, which serves segment 0) gets as many segments as connections are free
    within ``--per-host``; its record is written before any byte. A new version on
    the server (a RangeMismatch) discards the partial.
    """
    host = host_of(job.url)
    extra = job.gate.try_more(host, max(job.connections, 1) - 1)
    try:
        if record is None:
            assert first is not None
            total = int(first.headers["Content-Length"])
            segments = tuple((a, b, 0) for a, b in plan_segments(total, 1 + extra))
            validator = validator_of(first.headers)
            record = ResumeRecord(ResumeRecord.url_hash(job.url), validator, total, segments)
            folder.write_record(job.name, record)
        assert record.segments is not None
        progress.begin(job.name, record.length, sum(done for *_, done in record.segments))
        fd = folder.open_part(job.name, keep)
        run = SplitRun(job, fd, record, folder, progress)
        try:
            run.run(first, 1 + extra)
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
    """Progress of every segment; each index is written by one runner at a time."""

    def __init__(self, segments: tuple[tuple[int, int, int], ...]) -> None:
        self.bounds = [(start, end) for start, end, _ in segments]
        self.done = [done for _, _, done in segments]
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> int | None:
        """The next unfinished segment for a runner, or None."""
        with self._lock:
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
    """One attempt of a split download; :meth:`run` returns when every segment is done."""

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
        self.stop = threading.Event()
        self.received = 0
        """Bytes received by this attempt so far (read after :meth:`run`, even if it failed)."""

    def run(self, first: Response | None, connections: int) -> int:
        """Fetch what is missing over ``connections``; returns the bytes received.

        ``first``, the still unread answer to a plain GET, serves segment 0.
        Raises the first error of a segment after saving how far all got.
        """
        before = self.segments.total_done()
        shown = before
        runners: list[Future[None]] = []
        if first is not None:
            head = self.segments.take()  # taken here, before any runner can take it
            assert head == 0
            runners.append(self.job.spawn(lambda: self._first(first, head)))
        for _ in range(max(1, connections - len(runners))):
            runners.append(self.job.spawn(self._runner))
        saved = time.monotonic()
        pending: set[Future[None]] = set(runners)
        try:
            while pending:
                _, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
                now_done = self.segments.total_done()
                self.progress.update(now_done - shown)
                shown = now_done
                if any(_fatal(f) for f in runners):
                    self.stop.set()  # other segments go on after a cut; not after these
                if time.monotonic() - saved >= SAVE_EVERY:
                    self._save()
                    saved = time.monotonic()
        finally:
            self.stop.set()
            wait(runners)
            self.progress.update(self.segments.total_done() - shown)
            self.received = self.segments.total_done() - before
            self._save()
        errors = [f.exception() for f in runners if f.exception() is not None]
        if errors:
            raise _worst(errors)
        if not self.segments.complete():
            raise ShortBody("a segment ended early; will resume")
        return self.received

    def _save(self) -> None:
        record = replace(self.record, segments=self.segments.snapshot())
        self.folder.write_record(self.job.name, record)

    # -- runners (segment threads) -------------------------------------------------

    def _first(self, resp: Response, i: int) -> None:
        """Segment ``i`` (0) from the plain GET's body; the connection is closed after."""
        self._copy(i, resp)
        self._runner()

    def _runner(self) -> None:
        client = Client(self.job.config)
        try:
            while not self.stop.is_set() and (i := self.segments.take()) is not None:
                self._fetch(client, i)
        finally:
            client.close()

    def _fetch(self, client: Client, i: int) -> None:
        start, end = self.segments.bounds[i]
        at = start + self.segments.done[i]
        record = self.record
        headers = {"Range": f"bytes={at}-{end - 1}"}
        if record.validator:
            headers["If-Range"] = record.validator
        host, gate, cancel = host_of(self.job.url), self.job.gate, self.job.cancel
        while (held := gate.delay(host)) > 0:  # a Retry-After holds every request to the host
            if cancel.wait(held):
                raise Cancelled("interrupted")
        resp = client.get(self.job.url, headers)
        try:
            self._check(resp, at)
            self._copy(i, resp)
        finally:
            finish(resp, drain=resp.status != 206)

    def _check(self, resp: Response, at: int) -> None:
        """A 206 that continues the segment; a 200 or a wrong range means another version."""
        if resp.status in (200, 206, 416):
            cr = parse_content_range(resp.headers.get("Content-Range"))
            if resp.status == 206 and cr and cr.start == at and cr.total == self.record.length:
                return
            raise RangeMismatch(
                f"cannot continue a segment of {self.job.name}: HTTP {resp.status}, "
                f"Content-Range {resp.headers.get('Content-Range')!r}"
            )
        # Any other status says nothing about the file: the finished segments stay.
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
        if retry_after is not None:
            self.job.gate.hold(host_of(self.job.url), min(retry_after, RETRY_AFTER_CAP))
        raise HTTPStatusError(resp.status, resp.reason or "", retry_after)

    def _copy(self, i: int, resp: Response) -> None:
        """Write segment ``i``'s bytes from ``resp`` at their offset, up to the segment's end."""
        start, end = self.segments.bounds[i]
        job, fd = self.job, self.fd
        limiter = job.limiter
        with job.cancel.watching(resp), translated(lambda: f"in a segment of {job.name}"):
            while (left := end - start - self.segments.done[i]) > 0:
                if self.stop.is_set() or job.cancel.is_set():
                    raise Cancelled("interrupted")
                chunk = resp.read1(min(job.chunk, left), decode_content=False)
                if not chunk:
                    raise ShortBody(f"a segment of {job.name} ended early; will resume")
                pos = start + self.segments.done[i]
                try:
                    written = 0
                    view = memoryview(chunk)
                    while written < len(chunk):
                        written += os.pwrite(fd, view[written:], pos + written)
                except OSError as exc:
                    raise local_error(exc, f"writing {job.name}.part") from None
                self.segments.done[i] += len(chunk)
                if limiter and job.cancel.wait(limiter.consume(len(chunk))):
                    raise Cancelled("interrupted")


def _fatal(future: Future[None]) -> bool:
    """A segment error that makes the others pointless: a new version, or a bug."""
    if not future.done():
        return False
    exc = future.exception()
    return exc is not None and (
        isinstance(exc, RangeMismatch) or not isinstance(exc, TransferError)
    )


def _worst(errors: list[BaseException | None]) -> BaseException:
    """The error that decides what happens next: a bug, then a new version, then the rest."""
    real = [e for e in errors if e is not None]
    bugs = [e for e in real if not isinstance(e, TransferError)]
    changed = [e for e in real if isinstance(e, RangeMismatch)]
    other = [e for e in real if not isinstance(e, Cancelled)]
    return (bugs or changed or other or real)[0]
