"""One entry -> one file, as a sans-I/O generator: it yields effects, a lane carries them out.

:func:`download` runs every attempt of one download: the existing file, the
resume plan, the response verdict (:mod:`downloader.resume`, pure), streaming
through one :class:`~downloader.sink.Sink`, split downloads, verification and
publishing. It asks for requests and waits by yielding
:mod:`downloader.effects` and never sleeps, blocks or touches a socket, so any
backend can carry it and its edge cases are unit tests fed made-up outcomes.
Every outcome is returned as a :class:`Result`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol

from .cancel import CancelToken
from .digests import Expected, Hashes, from_headers
from .effects import Body, Discard, Effect, Fetch, Wait
from .errors import (
    Cancelled,
    ChecksumMismatch,
    ConnectionFailed,
    HTTPStatusError,
    PartBusy,
    RangeMismatch,
    ShortBody,
    TransferError,
)
from .naming import PART_SUFFIX, RelPath, display, name_from_content_disposition, with_name
from .options import OnExist, Options
from .progress import Event, HandedOver, Restarted, Resumed, Retrying, TransferProgress, Waiting
from .ratelimit import HostGate, TokenBucket, host_of
from .results import Result, Status
from .resume import Continue, Plan, Restart, judge, plan_from
from .retry import RETRY_AFTER_CAP, RetryPolicy, RetryState, parse_retry_after
from .safetext import redact
from .sink import BodyTooLong, Sink
from .split import SplitJob, fetch_segments, splittable
from .storage import Folder, ResumeRecord, open_folder
from .urllist import Entry
from .wire import Response, validator_of

RECORD_FIRST = 256 * 1024
"""A new partial of a body larger than this gets its resume record before its first byte;
a smaller one usually arrives at once, and gets a record only if it stops part-way."""

TURN_POLL = 0.02
"""Seconds between looks at whose turn it is to claim a server-given name."""

BUSY_POLL = 0.5
"""Seconds between looks at a ``.part`` that another process is writing."""

Steps = Generator[Effect, Any, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One download to do: the entry and its relative path (None: from Content-Disposition)."""

    entry: Entry
    rel: RelPath | None
    fallback: RelPath
    turn: int | None = None
    """With ``rel`` None: this download's place among those named by the server, which
    claim their names in list order (:class:`Turns`)."""
    ordinal: int | None = None
    """Its place among the downloads the engine submitted (``--write-sums`` keeps that order)."""


class Turns(Protocol):
    """Whose turn it is to claim a name from the server (shared, locked by its owner)."""

    def is_mine(self, turn: int) -> bool: ...
    def done(self, turn: int) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Context:
    """The collaborators of a transfer; the lane that carries it owns them, but for the
    shared, locked ``gate`` and ``limiter``."""

    options: Options
    cancel: CancelToken
    progress: TransferProgress
    claim: Callable[[RelPath], RelPath]
    notify: Callable[[str], None]
    event: Callable[[Event], None]
    """What this transfer goes through, for its row and ``-v`` (bound to its slot)."""
    turns: Turns | None = None
    gate: HostGate
    limiter: TokenBucket | None


class _Download:
    """The state of one download across its attempts."""

    def __init__(self, job: Job, ctx: Context) -> None:
        self.job = job
        self.ctx = ctx
        self.url = job.entry.url
        """The URL tried now: the entry's, or one of its mirrors after a hand-over."""
        self.rel = job.rel
        self.checked_existing = False
        self.began_partial = False  # this download wrote a partial from byte 0
        self.http_status: int | None = None
        self.http_version: str | None = None
        self.resumed_from = 0
        self.received = 0
        self.length: int | None = None  # the length announced, once known: binds every attempt
        self.turn_given = False
        self._host_of = ("", "")
        self.header_digest: Expected | None = None  # the last response's Repr-Digest or Digest
        self.sha256: str | None = None  # the finished file's, for --write-sums

    # -- the attempt loop -------------------------------------------------

    def run(self) -> Generator[Effect, Any, Result]:
        """The attempts, URL by URL: each URL has its share of them (:func:`mirror_share`);
        one that fails for good, or past its share, hands over to the next at once."""
        started = time.monotonic()
        o = self.ctx.options
        policy = RetryPolicy(retries=o.retries, wait=o.retry_wait)
        state = here = RetryState(policy=policy)  # the whole entry's, and this URL's
        urls, gate = self.job.entry.urls, self.ctx.gate
        share = mirror_share(o.retries, len(urls))
        failures: list[str] = []
        while True:
            host = self._host()
            if self.ctx.cancel.is_set():
                return self._result(Status.INTERRUPTED, state, started, None)
            try:
                if (reason := gate.given_up(host)) is not None:
                    raise TransferError(reason, retryable=False)
                status = yield from self._polite_attempt()
            except _NotMyTurn as wait:
                yield from self._await_turn()
                self.rel = self._claim(wait.wanted)
                continue
            except TransferError as exc:
                if self.ctx.cancel.is_set() or isinstance(exc, Cancelled):
                    return self._result(Status.INTERRUPTED, state.increment(exc), started, None)
                if isinstance(exc, ConnectionFailed) and exc.unreachable:
                    gate.unreachable(host, str(exc))
                state, here = state.increment(exc), here.increment(exc)
                if not exc.retryable or here.attempts >= share:
                    failures.append(f"{redact(self.url)}: {exc}")
                    if len(failures) == len(urls):
                        error = exc if len(urls) == 1 else _all_failed(failures)
                        return self._result(Status.FAILED, state, started, error)
                    self._hand_over(urls[len(failures)], exc)
                    here = RetryState(policy=policy)
                    continue
                delay = here.delay()
                self.ctx.event(
                    Retrying(
                        url=self.url,
                        retry=state.attempts,
                        of=o.retries,
                        delay=delay,
                        reason=str(exc),
                    )
                )
                yield Wait(delay)
                continue
            made = state.attempts + (1 if self.http_status is not None else 0)
            return self._result(status, state, started, None, attempts=made)

    def _hand_over(self, url: str, why: TransferError) -> None:
        """Go on with the next mirror. A partial begun here without a validator is not
        trusted from another URL (only a validator or a checksum joins two sources)."""
        self.ctx.event(HandedOver(url=self.url, to=url, reason=str(why)))
        self.url = url
        self.began_partial = False
        self.length = None
        self.http_status = self.http_version = None

    def _host(self) -> str:
        """The ``host:port`` the URL being tried counts against (parsed once per URL)."""
        if self._host_of[0] != self.url:
            self._host_of = (self.url, host_of(self.url))
        return self._host_of[1]

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
            url=self.job.entry.url,
            source=self.job.entry.source,
            status=status,
            path=path,
            bytes=self.received if status is not Status.SKIPPED else 0,
            elapsed=time.monotonic() - started,
            attempts=state.attempts if attempts is None else attempts,
            http_status=self.http_status,
            resumed_from=self.resumed_from,
            error=str(error) if error else None,
            http_version=self.http_version,
            options=self.job.entry.options,
            ordinal=self.job.ordinal,
            sha256=self.sha256 if status in (Status.OK, Status.SKIPPED) else None,
            mirror=self.url if status is Status.OK and self.url != self.job.entry.url else None,
        )

    def _polite_attempt(self) -> Generator[Effect, Any, Status]:
        """One attempt within the host's limits: its ``Retry-After`` hold and ``--per-host``."""
        cancel, gate, host = self.ctx.cancel, self.ctx.gate, self._host()
        told = False
        while not gate.try_more(host, 1):
            if cancel.is_set():
                raise Cancelled("interrupted")
            if not told:
                self.ctx.event(Waiting(url=self.url, reason="a --per-host slot"))
                told = True
            yield Wait(0.05)
        try:
            while (held := gate.delay(host)) > 0:  # checked with the slot, so none slips by
                self.ctx.event(Waiting(url=self.url, reason=f"Retry-After from {host}", delay=held))
                yield Wait(held)
                if cancel.is_set():
                    raise Cancelled("interrupted")
            try:
                return (yield from self._attempt())
            except HTTPStatusError as exc:
                if exc.retry_after is not None and exc.retryable:  # only a retried status holds
                    gate.hold(host, min(exc.retry_after, RETRY_AFTER_CAP))
                raise
        finally:
            gate.give_back(host, 1)

    def _attempt(self) -> Generator[Effect, Any, Status]:
        if self.rel is None:
            resp = yield from self._get(())
            wanted = self._name_from(resp)
            turn, turns = self.job.turn, self.ctx.turns
            if turn is not None and turns is not None and not turns.is_mine(turn):
                yield Discard()  # an earlier entry names its file first; then ask again
                raise _NotMyTurn(wanted)  # out of the host's slot while it waits
            self.rel = self._claim(wanted)
            with self._folder() as folder:
                if self._skip_existing(folder):
                    yield Discard()
                    return Status.SKIPPED
                plan = yield from self._plan(folder)
                if plan.offset == 0:
                    yield from self._receive(folder, resp, plan)
                    return Status.OK
            yield Discard()
            # a resumable partial of that name exists: continue it with a ranged request
        with self._folder() as folder:
            if self._skip_existing(folder):
                return Status.SKIPPED
            plan = yield from self._plan(folder)
            if plan.record is not None and plan.record.segments is not None:
                yield from self._split(folder, plan.record, keep=plan.offset)
                return Status.OK
            resp = yield from self._get(plan.request_headers(), ranged=plan.offset > 0)
            yield from self._receive(folder, resp, plan)
        return Status.OK

    # -- naming and the existing file --------------------------------------

    def _folder(self) -> contextlib.AbstractContextManager[Folder]:
        assert self.rel is not None
        dest = self.ctx.options.dest
        return open_folder(dest, self.rel[:-1], str(dest))

    def _name_from(self, resp: Response) -> RelPath:
        header = resp.headers.get("Content-Disposition")
        name = name_from_content_disposition(header) if header else None
        return with_name(self.job.fallback, name) if name else self.job.fallback

    def _await_turn(self) -> Steps:
        turn, turns = self.job.turn, self.ctx.turns
        assert turn is not None and turns is not None
        while not turns.is_mine(turn) and not self.ctx.cancel.is_set():
            yield Wait(TURN_POLL)

    def _claim(self, rel: RelPath) -> RelPath:
        claimed = self.ctx.claim(rel)
        self.turn_over()
        return claimed

    def turn_over(self) -> None:
        """This download's name is decided (or never will be): the next one may claim."""
        if self.job.turn is not None and self.ctx.turns is not None and not self.turn_given:
            self.turn_given = True
            self.ctx.turns.done(self.job.turn)

    def _skip_existing(self, folder: Folder) -> bool:
        """True when ``--on-exist skip`` finds a usable file at the final name (checked once)."""
        if self.checked_existing:
            return False
        self.checked_existing = True
        assert self.rel is not None
        name = self.rel[-1]
        # a link or a FIFO is never "existing and verified": it is replaced on publish
        if self.ctx.options.on_exist is not OnExist.SKIP or not folder.existing_regular(name):
            return False
        checksum = self.job.entry.options.checksum
        hasher = self._hashes(with_header=False)
        if hasher is not None:
            folder.hash_into(name, hasher)
        if checksum is None or (hasher and hasher.of(checksum.algorithm) == checksum.hexdigest):
            if hasher is not None and self.ctx.options.write_sums is not None:
                self.sha256 = hasher.of("sha-256")
            folder.drop_stale_record(name)
            return True
        self.ctx.notify(f"existing file does not match its checksum, downloading again: {name}")
        return False

    # -- resume -------------------------------------------------------------

    def _plan(self, folder: Folder) -> Generator[Effect, Any, Plan]:
        """How much of an existing ``.part`` may be kept: only what a record vouches for.

        A ``.part`` another process holds is waited for: when that process publishes
        the file this entry is skipped; when it stops, the partial is taken over.
        """
        assert self.rel is not None
        name = self.rel[-1]
        waited = False
        while True:
            try:
                size = folder.lock_part(name)  # before the partial is read: one process per .part
                break
            except PartBusy:
                if not waited:
                    reason = "another pdl process is writing it"
                    self.ctx.event(Waiting(url=self.url, reason=reason))
                    waited = True
                yield Wait(BUSY_POLL)
                if self.ctx.cancel.is_set():
                    raise Cancelled("interrupted") from None
        if waited and self.ctx.options.on_exist is OnExist.SKIP:
            self.checked_existing = False
            if self._skip_existing(folder):
                raise _Finished()
        if size == 0:
            folder.drop_record(name)  # with no bytes, a record vouches for nothing
            return Plan(0, None)
        record = folder.read_record(name)
        plan = plan_from(
            size=size,
            record=record,
            url=self.job.entry.url,  # a mirrored partial belongs to its entry, not one URL
            resume=self.ctx.options.resume,
            trusted=self.began_partial or self.job.entry.options.checksum is not None,
        )
        if plan.offset == 0:
            if self.ctx.options.resume:
                reason = "no matching resume record"
                self.ctx.event(Restarted(url=self.url, name=name, reason=reason))
            folder.discard_partial(name)
        elif plan.record is not None and plan.record.length is not None:
            self.length = plan.record.length
        return plan

    # -- HTTP ---------------------------------------------------------------

    def _get(
        self, headers: tuple[tuple[str, str], ...], *, ranged: bool = False
    ) -> Generator[Effect, Any, Response]:
        """The head of the final answer to a GET of the entry's URL (a download, or raises)."""
        got = yield Fetch(self.url, (*headers, *self.job.entry.options.headers))
        if isinstance(got, TransferError):
            raise got
        resp: Response = got
        self.ctx.gate.reachable(self._host())
        self.http_status = resp.status
        self.http_version = resp.http_version
        if resp.status not in (200, 206) and not (ranged and resp.status == 416):
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            yield Discard()
            raise HTTPStatusError(resp.status, resp.reason, retry_after)
        return resp

    def _receive(self, folder: Folder, resp: Response, plan: Plan) -> Steps:
        assert self.rel is not None
        name = self.rel[-1]
        verdict = judge(resp.status, resp.headers, plan, self.length)
        if not isinstance(verdict, Continue):
            yield Discard()
            folder.discard_partial(name)
            if isinstance(verdict, Restart):
                raise RangeMismatch(f"cannot resume {name}: {verdict.reason}; starting over")
            raise RangeMismatch(verdict.reason)
        if verdict.restarted:
            reason = "the server sent the whole file again"
            self.ctx.event(Restarted(url=self.url, name=name, reason=reason))
            folder.discard_partial(name)
        offset, total, end = verdict.offset, verdict.total, verdict.end
        self.header_digest = from_headers(resp.status, resp.headers)
        if offset:
            self.resumed_from = offset
            self.ctx.event(Resumed(url=self.url, name=name, offset=offset, total=total))
        if total is not None:
            self.length = total
        if offset == 0 and self._splittable(resp, total):
            assert total is not None
            fresh = ResumeRecord(self._url_hash(), validator_of(resp.headers), total)
            yield from self._split(folder, None, keep=0, fresh=fresh)
            return
        # A new partial needs a resume record. Small bodies usually arrive at once,
        # so theirs is written only if the transfer stops part-way.
        record: ResumeRecord | None = None
        recorded = offset > 0  # a resumed partial came with its record
        if offset == 0 and resp.status != 416:
            record = ResumeRecord(self._url_hash(), validator_of(resp.headers), total)
            if total is None or total > RECORD_FIRST:
                folder.write_record(name, record)
                record, recorded = None, True
        fd = folder.open_part(name, offset)
        self.began_partial = self.began_partial or offset == 0
        try:
            hasher = self._seeded_hasher(folder, name, offset)
            size = offset
            if resp.status != 416:
                sink = Sink(
                    fd,
                    name=name,
                    position=offset,
                    end=end,
                    cancel=self.ctx.cancel,
                    progress=self.ctx.progress,
                    limiter=self.ctx.limiter,
                    hasher=hasher,
                )
                self.ctx.progress.begin(name, total, offset)
                error = yield Body(sink)
                self.received += sink.written
                size += sink.written
                if isinstance(error, BodyTooLong):
                    folder.discard_partial(name)  # the server contradicts itself
                if error is not None:
                    raise error
            whole = total if total is not None else end
            if whole is not None and size != whole:
                raise ShortBody(f"got {size} of {whole} bytes; will resume")
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
        self,
        folder: Folder,
        record: ResumeRecord | None,
        *,
        keep: int,
        fresh: ResumeRecord | None = None,
    ) -> Steps:
        """Fetch the missing segments over up to ``-s`` connections, then verify and publish."""
        assert self.rel is not None
        name, ctx = self.rel[-1], self.ctx
        job = SplitJob(
            url=self.url,
            headers=self.job.entry.options.headers,
            name=name,
            connections=ctx.options.split,
            gate=ctx.gate,
            cancel=ctx.cancel,
            limiter=ctx.limiter,
        )
        if record is not None and record.segments is not None:  # a split partial goes on
            self.resumed_from = sum(done for *_, done in record.segments)
            ctx.event(
                Resumed(url=self.url, name=name, offset=self.resumed_from, total=record.length)
            )
        self.began_partial = self.began_partial or fresh is not None
        start = record or fresh
        assert start is not None
        outcome = yield from fetch_segments(
            job, folder, ctx.progress, start, keep, first=fresh is not None
        )
        self.received += outcome.received
        if outcome.error is not None:
            raise outcome.error
        assert outcome.record.length is not None
        self._verify(folder, name, self._seeded_hasher(folder, name, outcome.record.length))
        folder.publish(name)

    def _verify(self, folder: Folder, name: str, hasher: Hashes | None) -> None:
        """A checksum mismatch drops the partial: its bytes cannot be trusted."""
        if hasher is None:
            return
        wanted = [(self.job.entry.options.checksum, "")]
        if self.header_digest is not None:
            wanted.append((self.header_digest.checksum, f" from {self.header_digest.origin}"))
        for checksum, origin in wanted:
            if checksum is None:
                continue
            actual = hasher.of(checksum.algorithm)
            if actual != checksum.hexdigest:
                folder.discard_partial(name)
                raise ChecksumMismatch(
                    f"checksum mismatch ({checksum.algorithm}{origin}): expected"
                    f" {checksum.hexdigest}, got {actual}"
                )
        if self.ctx.options.write_sums is not None:
            self.sha256 = hasher.of("sha-256")

    def _url_hash(self) -> str:
        return ResumeRecord.url_hash(self.job.entry.url)

    def _hashes(self, *, with_header: bool = True) -> Hashes | None:
        """A hasher for what asks for one (a checksum, a digest header, ``--write-sums``),
        else None: hashing costs as much CPU as the rest of a transfer."""
        wanted = set()
        if (checksum := self.job.entry.options.checksum) is not None:
            wanted.add(checksum.algorithm)
        if with_header and self.header_digest is not None:
            wanted.add(self.header_digest.checksum.algorithm)
        if self.ctx.options.write_sums is not None:
            wanted.add("sha-256")
        return Hashes(wanted) if wanted else None

    def _seeded_hasher(self, folder: Folder, name: str, offset: int) -> Hashes | None:
        hasher = self._hashes()
        if hasher is not None and offset:
            folder.hash_into(name + PART_SUFFIX, hasher, offset)
        return hasher


def mirror_share(retries: int, urls: int) -> int:
    """Attempts each of ``urls`` URLs gets: the ``retries + 1`` of one URL shared, rounded
    up, at least one each (so ``--retries 0`` still tries every mirror once)."""
    return max(1, -(-(retries + 1) // urls))


def _all_failed(failures: list[str]) -> TransferError:
    return TransferError("all mirrors failed: " + "; ".join(failures), retryable=False)


class _NotMyTurn(Exception):
    def __init__(self, wanted: RelPath) -> None:
        self.wanted = wanted


class _Finished(Exception):
    """Another process finished the file this entry waited for: it is skipped."""


def download(job: Job, ctx: Context) -> Generator[Effect, Any, Result]:
    """Every attempt of one download, as effects; returns how it ended (never raises
    TransferError)."""
    d = _Download(job, ctx)
    run = d.run()
    try:
        return (yield from run)
    except _Finished:
        return d._result(
            Status.SKIPPED, RetryState(policy=RetryPolicy()), time.monotonic(), None, attempts=0
        )
    finally:
        d.turn_over()
