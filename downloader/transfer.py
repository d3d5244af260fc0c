"""One entry -> one file: request, validated resume, stream to ``.part``, verify, rename.

This is the only module that makes requests (through the worker's
:class:`~downloader.client.Client`). Failures of ``urllib3`` and the socket become
:mod:`downloader.errors` in one place (:func:`downloader.wire.translated`); every
outcome is returned as a :class:`Result`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from .cancel import CancelToken
from .client import Client, Response, finish
from .errors import (
    Cancelled,
    ChecksumMismatch,
    HTTPStatusError,
    LocalFileError,
    RangeMismatch,
    ShortBody,
    TransferError,
)
from .naming import PART_SUFFIX, RelPath, display, name_from_content_disposition, with_name
from .options import OnExist, Options
from .progress import TransferProgress
from .ratelimit import HostGate, TokenBucket, host_of
from .results import Result, Status, redact, redact_text
from .retry import RETRY_AFTER_CAP, RetryPolicy, RetryState, parse_retry_after
from .split import Spawn, SplitJob, fetch_segments, splittable
from .storage import Folder, ResumeRecord, local_error, open_folder
from .urllist import Entry
from .wire import parse_content_range, translated, validator_of

CHUNK_SIZE = 1024 * 1024
"""The most one read asks for: large reads mean fewer trips through Python per MiB."""


RECORD_FIRST = 256 * 1024
"""A new partial of a body larger than this gets its resume record before its first byte;
a smaller one usually arrives in one read, and gets a record only if it stops part-way."""


def read_size(total: int | None, offset: int) -> int:
    """How much to ask of each read: never more than the body holds (a read allocates it)."""
    if total is None:
        return CHUNK_SIZE // 4
    return max(1, min(CHUNK_SIZE, total - offset))


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One download to do: the entry and its relative path (None: from Content-Disposition)."""

    entry: Entry
    rel: RelPath | None
    fallback: RelPath


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """The collaborators of a transfer, owned by the worker thread that runs it."""

    options: Options
    client: Client
    cancel: CancelToken
    progress: TransferProgress
    claim: Callable[[RelPath], RelPath]
    notify: Callable[[str], None]
    gate: HostGate
    limiter: TokenBucket | None
    spawn: Spawn
    """Runs a segment of a split download on another thread (``-s``)."""


class _Plan(NamedTuple):
    offset: int
    record: ResumeRecord | None


class _Download:
    """The state of one download across its attempts; owned by one worker thread."""

    def __init__(self, job: Job, ctx: Context) -> None:
        self.job = job
        self.ctx = ctx
        self.url = job.entry.url
        self.rel = job.rel
        self.checked_existing = False
        self.began_partial = False  # this download wrote a partial from byte 0
        self.http_status: int | None = None
        self.resumed_from = 0
        self.received = 0

    # -- the attempt loop -------------------------------------------------

    def run(self) -> Result:
        started = time.monotonic()
        o = self.ctx.options
        state = RetryState(policy=RetryPolicy(retries=o.retries, wait=o.retry_wait))
        while True:
            if self.ctx.cancel.is_set():
                return self._result(Status.FAILED, state, started, Cancelled("interrupted"))
            try:
                status = self._polite_attempt()
            except TransferError as exc:
                err = Cancelled("interrupted") if self.ctx.cancel.is_set() else exc
                state = state.increment(err)
                if state.exhausted:
                    return self._result(Status.FAILED, state, started, err)
                delay = state.delay()
                shown = f"{redact(self.url)}: {redact_text(str(err), self.url)}"
                self.ctx.notify(f"retry {state.attempts}/{o.retries} in {delay:.1f} s: {shown}")
                if self.ctx.cancel.wait(delay):
                    return self._result(Status.FAILED, state, started, Cancelled("interrupted"))
                continue
            made = state.attempts + (1 if self.http_status is not None else 0)
            return self._result(status, state, started, None, attempts=made)

    def _result(
        self,
        status: Status,
        state: RetryState,
        started: float,
        error: TransferError | None,
        attempts: int | None = None,
    ) -> Result:
        path = display(self.rel, str(self.ctx.options.dest)) if self.rel else None
        return Result(
            url=self.url,
            source=self.job.entry.source,
            status=status,
            path=path,
            bytes=self.received if status is not Status.SKIPPED else 0,
            elapsed=time.monotonic() - started,
            attempts=state.attempts if attempts is None else attempts,
            http_status=self.http_status,
            resumed_from=self.resumed_from,
            error=str(error) if error else None,
            options=self.job.entry.options,
        )

    def _polite_attempt(self) -> Status:
        """One attempt within the host's limits: its ``Retry-After`` hold and ``--per-host``."""
        cancel, gate, host = self.ctx.cancel, self.ctx.gate, host_of(self.url)
        with gate.slot(host, cancel.is_set) as got:
            if not got:
                raise Cancelled("interrupted")
            while (held := gate.delay(host)) > 0:  # checked with the slot, so none slips by
                if cancel.wait(held):
                    raise Cancelled("interrupted")
            try:
                return self._attempt()
            except HTTPStatusError as exc:
                if exc.retry_after is not None:
                    gate.hold(host, min(exc.retry_after, RETRY_AFTER_CAP))
                raise

    def _attempt(self) -> Status:
        if self.rel is None:
            with self._request({}) as resp:
                self.rel = self._name_from(resp)
                with self._folder() as folder:
                    if self._skip_existing(folder):
                        return Status.SKIPPED
                    plan = self._plan(folder)
                    if plan.offset == 0:
                        self._receive(folder, resp, plan)
                        return Status.OK
            # a resumable partial of that name exists: continue it with a ranged request
        with self._folder() as folder:
            if self._skip_existing(folder):
                return Status.SKIPPED
            plan = self._plan(folder)
            if plan.record is not None and plan.record.segments is not None:
                self._split(folder, plan.record, None, keep=plan.offset)
                return Status.OK
            headers = {}
            if plan.offset and plan.record:
                headers = {"Range": f"bytes={plan.offset}-"}
                if plan.record.validator:
                    headers["If-Range"] = plan.record.validator
            with self._request(headers, ranged=bool(headers)) as resp:
                self._receive(folder, resp, plan)
        return Status.OK

    # -- naming and the existing file --------------------------------------

    def _folder(self) -> contextlib.AbstractContextManager[Folder]:
        assert self.rel is not None
        dest = self.ctx.options.dest
        return open_folder(dest, self.rel[:-1], str(dest))

    def _name_from(self, resp: Response) -> RelPath:
        header = resp.headers.get("Content-Disposition")
        name = name_from_content_disposition(header) if header else None
        rel = with_name(self.job.fallback, name) if name else self.job.fallback
        return self.ctx.claim(rel)

    def _skip_existing(self, folder: Folder) -> bool:
        """True when ``--on-exist skip`` finds a usable file at the final name (checked once)."""
        if self.checked_existing:
            return False
        self.checked_existing = True
        assert self.rel is not None
        name = self.rel[-1]
        kind = folder.kind(name)
        if self.ctx.options.on_exist is not OnExist.SKIP or not folder.existing_regular(name):
            return False
        if kind == "dir":
            raise LocalFileError(f"{display(self.rel, str(self.ctx.options.dest))}: is a folder")
        checksum = self.job.entry.options.checksum
        if checksum is None or kind != "file":
            folder.drop_stale_record(name)
            return True
        hasher = checksum.new_hasher()
        folder.hash_into(name, hasher)
        if hasher.hexdigest() == checksum.hexdigest:
            folder.drop_stale_record(name)
            return True
        self.ctx.notify(f"existing file does not match its checksum, downloading again: {name}")
        return False

    # -- resume -------------------------------------------------------------

    def _plan(self, folder: Folder) -> _Plan:
        """How much of an existing ``.part`` may be kept: only what a record vouches for."""
        assert self.rel is not None
        name = self.rel[-1]
        size = folder.lock_part(name)  # before the partial is read: one process per .part
        if size == 0:
            folder.drop_record(name)  # with no bytes, a record vouches for nothing
            return _Plan(0, None)
        record = folder.read_record(name)
        if (
            record is not None
            and self.ctx.options.resume
            and size > 0
            and record.url_sha256 == ResumeRecord.url_hash(self.url)
            and (record.length is None or size <= record.length)
            # Without a validator a partial is only trusted when this download began
            # it moments ago, or when a checksum will prove the whole file anyway.
            and (
                record.validator is not None
                or self.began_partial
                or self.job.entry.options.checksum is not None
            )
        ):
            return _Plan(size, record)
        if size and self.ctx.options.resume:
            self.ctx.notify(f"not resuming {name}.part: no matching resume record; starting over")
        folder.discard_partial(name)
        return _Plan(0, None)

    # -- HTTP ---------------------------------------------------------------

    @contextlib.contextmanager
    def _request(self, headers: dict[str, str], *, ranged: bool = False) -> Iterator[Response]:
        """The response to a GET of the entry's URL; its connection is given back after."""
        resp = self.ctx.client.get(self.url, headers)
        try:
            self.http_status = resp.status
            if not (200 <= resp.status < 300 or (ranged and resp.status == 416)):
                retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                raise HTTPStatusError(resp.status, resp.reason or "", retry_after)
            yield resp
        finally:
            with self.ctx.cancel.watching(resp):
                finish(resp, drain=not 200 <= resp.status < 300)

    def _receive(self, folder: Folder, resp: Response, plan: _Plan) -> None:
        assert self.rel is not None
        name = self.rel[-1]
        offset, total = self._check_response(folder, resp, plan)
        if offset == 0 and self._splittable(resp, total):
            self._split(folder, None, resp, keep=0)
            return
        # A new partial needs a resume record. Small bodies usually arrive in one
        # read, so theirs is written only if the transfer stops part-way.
        record = None
        recorded = offset > 0  # a resumed partial came with its record
        if offset == 0 and resp.status != 416:
            record = ResumeRecord(
                ResumeRecord.url_hash(self.url), validator_of(resp.headers), total
            )
            if total is None or total > RECORD_FIRST:
                folder.write_record(name, record)
                record, recorded = None, True
        fd = folder.open_part(name, offset)
        self.began_partial = self.began_partial or offset == 0
        try:
            hasher = self._seeded_hasher(folder, name, offset)
            size = offset
            if resp.status != 416:
                size += self._stream(resp, fd, name, hasher, offset, total)
            if total is not None and size != total:
                raise ShortBody(f"got {size} of {total} bytes; will resume")
        except TransferError:
            if record is not None and self.received:
                with contextlib.suppress(TransferError):
                    folder.write_record(name, record)
            raise
        finally:
            os.close(fd)
        self._verify(folder, name, hasher)
        folder.publish(name, has_record=recorded)

    # -- split downloads (-s) ----------------------------------------------------

    def _splittable(self, resp: Response, total: int | None) -> bool:
        """Whether this answer can be fetched over several ranged connections."""
        o = self.ctx.options
        if o.split < 2 or resp.status != 200 or validator_of(resp.headers) is None:
            return False
        return splittable(resp.headers, total, o.split_min_size)

    def _split(
        self, folder: Folder, record: ResumeRecord | None, first: Response | None, *, keep: int
    ) -> None:
        """Fetch the missing segments over up to ``-s`` connections, then verify and publish."""
        assert self.rel is not None
        name, ctx = self.rel[-1], self.ctx
        limiter = ctx.limiter
        job = SplitJob(
            url=self.url,
            name=name,
            connections=ctx.options.split,
            config=ctx.client.config,
            gate=ctx.gate,
            cancel=ctx.cancel,
            limiter=limiter,
            spawn=ctx.spawn,
            chunk=limiter.chunk_size(CHUNK_SIZE) if limiter else CHUNK_SIZE,
        )
        if record is not None and record.segments is not None:  # a split partial goes on
            self.resumed_from = sum(done for *_, done in record.segments)
            ctx.notify(f"resuming {name} from {self.resumed_from} of {record.length} bytes (split)")
        self.began_partial = self.began_partial or first is not None
        outcome = fetch_segments(job, folder, ctx.progress, record, first, keep)
        self.received += outcome.received
        if outcome.error is not None:
            raise outcome.error
        assert outcome.record.length is not None
        self._verify(folder, name, self._seeded_hasher(folder, name, outcome.record.length))
        folder.publish(name)

    def _verify(self, folder: Folder, name: str, hasher: hashlib._Hash | None) -> None:
        """A checksum mismatch drops the partial: its bytes cannot be trusted."""
        checksum = self.job.entry.options.checksum
        if checksum is None or hasher is None:
            return
        actual = hasher.hexdigest()
        if actual != checksum.hexdigest:
            folder.discard_partial(name)
            raise ChecksumMismatch(
                f"{checksum.algorithm} mismatch: expected {checksum.hexdigest}, got {actual}"
            )

    def _check_response(
        self, folder: Folder, resp: Response, plan: _Plan
    ) -> tuple[int, int | None]:
        """The offset the body starts at and the full size, or RangeMismatch (partial dropped)."""
        assert self.rel is not None
        name = self.rel[-1]
        record = plan.record
        if plan.offset and resp.status in (206, 416):
            cr = parse_content_range(resp.headers.get("Content-Range"))
            expected = record.length if record else None
            if resp.status == 416:
                if cr and cr.total == plan.offset and expected in (None, plan.offset):
                    return plan.offset, plan.offset
                problem = "server refused the range"
            elif cr is None or cr.start != plan.offset:
                problem = f"Content-Range {resp.headers.get('Content-Range')!r} does not continue"
            elif expected is not None and cr.total not in (None, expected):
                problem = f"size changed from {expected} to {cr.total}"
            elif self._version_changed(resp, record):
                problem = "the file changed on the server"
            else:
                self.resumed_from = plan.offset
                self.ctx.notify(f"resuming {name} from byte {plan.offset}")
                return plan.offset, cr.total
            folder.discard_partial(name)
            raise RangeMismatch(f"cannot resume {name}: {problem}; starting over")
        if resp.status == 206 or resp.status == 416:
            folder.discard_partial(name)
            raise RangeMismatch(f"unexpected HTTP {resp.status} to a plain request")
        if plan.offset:
            self.ctx.notify(f"server sent the whole file again; restarting {name}")
            folder.discard_partial(name)
        length = resp.headers.get("Content-Length")
        total = int(length) if length and length.strip().isdigit() else None
        return 0, total

    @staticmethod
    def _version_changed(resp: Response, record: ResumeRecord | None) -> bool:
        """A 206 whose ETag (or Last-Modified) differs from the partial's: another version."""
        if not (record and record.validator):
            return False
        is_etag = record.validator.startswith('"')
        now = resp.headers.get("ETag" if is_etag else "Last-Modified")
        return now is not None and now != record.validator

    def _seeded_hasher(self, folder: Folder, name: str, offset: int) -> hashlib._Hash | None:
        checksum = self.job.entry.options.checksum
        if checksum is None:
            return None
        hasher = checksum.new_hasher()
        if offset:
            folder.hash_into(name + PART_SUFFIX, hasher, offset)
        return hasher

    def _stream(
        self,
        resp: Response,
        fd: int,
        name: str,
        hasher: hashlib._Hash | None,
        offset: int,
        total: int | None,
    ) -> int:
        """Copy the body to ``fd``; returns the bytes written."""
        progress = self.ctx.progress
        progress.begin(name, total, offset)
        cancel = self.ctx.cancel
        update = hasher.update if hasher is not None else None
        limiter = self.ctx.limiter
        size = read_size(total, offset)
        size = limiter.chunk_size(size) if limiter else size
        written = 0
        with cancel.watching(resp), translated(lambda: f"after {offset + written} bytes"):
            while chunk := resp.read1(size, decode_content=False):
                if cancel.is_set() or (limiter and cancel.wait(limiter.consume(len(chunk)))):
                    raise Cancelled("interrupted")
                view = memoryview(chunk)
                while view:
                    try:
                        n = os.write(fd, view)
                    except OSError as exc:
                        raise local_error(exc, f"writing {name}{PART_SUFFIX}") from None
                    view = view[n:]
                if update is not None:
                    update(chunk)
                written += len(chunk)
                self.received += len(chunk)
                progress.update(len(chunk))
        if cancel.is_set():
            raise Cancelled("interrupted")
        return written


def download(job: Job, ctx: Context) -> Result:
    """Run every attempt of one download and return how it ended (never raises TransferError)."""
    return _Download(job, ctx).run()
