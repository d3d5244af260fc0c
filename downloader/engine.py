"""The engine: names in list order, bounded in-flight work, downloads carried by lanes.

Items are read lazily; at most ``2 * jobs`` downloads are submitted and not yet
finished, so a list of millions of lines never becomes millions of futures. The
downloads run on :mod:`downloader.lanes` (``--threads`` threads, each one libcurl
multi handle); a cluster worker process (:mod:`downloader.worker`) runs the same
engine for its chunks.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, wait

from .cancel import CancelToken
from .client import ClientConfig, ProxyRoutes
from .digests import Manifest
from .errors import BadLine
from .lanes import Lanes
from .naming import RelPath, display, name_from_url
from .options import OnExist, Options
from .progress import NULL_PROGRESS, Reporter
from .ratelimit import HostGate, TokenBucket
from .results import Result, Status, Tally
from .transfer import Context, Job
from .urllist import Entry, Item

IN_FLIGHT_PER_JOB = 2
CANCEL_GRACE = 1.5
"""Seconds the engine waits for running transfers after an interrupt."""


def client_config(options: Options) -> ClientConfig:
    """What every request of the run shares: headers, timeouts, TLS, proxies, HTTP version."""
    headers = (
        ("User-Agent", options.user_agent),
        ("Accept-Encoding", "identity"),
        ("Accept", "*/*"),
    )
    ca_bundle = str(options.ca_bundle) if options.ca_bundle is not None else None
    return ClientConfig(
        headers=headers,
        user_headers=options.headers,
        timeout=options.timeout,
        verify=ClientConfig.ca_setting(insecure=options.insecure, ca_bundle=ca_bundle),
        routes=ProxyRoutes.from_environment(),
        http=options.http,
        speed_limit=options.speed_limit,
        speed_time=options.speed_time,
        buffer_size=max(16 * 1024, min(512 * 1024, (32 << 20) // options.jobs)),
    )


def base_path(entry: Entry) -> RelPath:
    """Where an entry goes before collisions: ``dir=`` then ``out=`` or the URL's name."""
    o = entry.options
    folder = tuple(o.dir.split("/")) if o.dir else ()
    if o.out:
        return (*folder, *o.out.split("/"))
    return (*folder, name_from_url(entry.url))


def bad_line_result(item: BadLine) -> Result:
    return Result(
        url=item.text, source=item.source, status=Status.FAILED, error=item.reason, bad_line=True
    )


def _reraise(done: Iterable[Future[Result]]) -> None:
    """A lane's unexpected exception (a bug, not a failed download) stops the run loudly."""
    for future in done:
        if not future.cancelled():
            future.result()


class Turns:
    """Downloads named by the server claim their names in list order (locked).

    Each gets a turn when planned; a turn is done when its name is claimed or its
    download ends without one, and a name may be claimed only on its turn.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0
        self._head = 0
        self._done: set[int] = set()

    def take(self) -> int:
        with self._lock:
            self._next += 1
            return self._next - 1

    def is_mine(self, turn: int) -> bool:
        return turn == self._head

    def done(self, turn: int) -> None:
        with self._lock:
            self._done.add(turn)
            while self._head in self._done:
                self._done.remove(self._head)
                self._head += 1


class Planner:
    """Decides names, in list order, in the thread that reads the list."""

    def __init__(self, options: Options, tally: Tally, manifest: Manifest | None = None) -> None:
        self.options = options
        self.tally = tally
        self.turns = Turns()
        self.manifest = manifest

    def _taken_on_disk(self, rel: RelPath) -> bool:
        return os.path.lexists(self.options.dest.joinpath(*rel))

    def claim(self, rel: RelPath) -> RelPath:
        taken = self._taken_on_disk if self.options.on_exist is OnExist.RENAME else None
        return self.tally.claim(rel, taken)

    def plan(self, entry: Entry) -> Job | BadLine:
        """The entry's job, named in list order; a bad line if the manifest contradicts it."""
        rel = base_path(entry)
        if self.options.content_disposition and not entry.options.out:
            return Job(entry=entry, rel=None, fallback=rel, turn=self.turns.take())
        claimed = self.claim(rel)
        if self.manifest is not None and (found := self.manifest.lookup("/".join(claimed))):
            checksum, where = found
            listed = entry.options.checksum
            if listed is not None and listed != checksum:
                reason = f"its checksum {listed} disagrees with {where} ({checksum})"
                return BadLine(entry.source, reason, entry.url)
            if listed is None:
                options = dataclasses.replace(entry.options, checksum=checksum)
                entry = dataclasses.replace(entry, options=options)
        return Job(entry=entry, rel=claimed, fallback=rel)

    def mine(self, items: Iterable[Item]) -> Iterator[Item]:
        """The items of this run's part of the list (``--shard``), in list order.

        The names of the other parts' entries are claimed all the same, so every
        part gives each entry the name the whole list would.
        """
        shard = self.options.shard
        if shard is None:
            yield from items
            return
        for ordinal, item in enumerate(items):
            if shard.owns(ordinal):
                yield item
            elif isinstance(item, Entry):
                self.plan(item)

    def planned(self, entry: Entry, reporter: Reporter) -> None:
        """``--dry-run``: say where ``entry`` would go (the URL's name stands in)."""
        job = self.plan(entry)
        if isinstance(job, BadLine):
            result = bad_line_result(job)
            reporter.result(result, self.tally.record(result))
            return
        rel = job.rel or self.claim(job.fallback)
        if job.turn is not None:
            self.turns.done(job.turn)
        reporter.planned(entry.url, entry.source, display(rel, str(self.options.dest)))


class Engine:
    """Runs downloads on lanes: :meth:`run` is a whole run (read items, decide names,
    download, record). A worker process of a cluster (:mod:`downloader.worker`) keeps
    one engine for the run and feeds it the jobs of each chunk with :meth:`submit`.
    """

    def __init__(
        self,
        options: Options,
        reporter: Reporter,
        cancel: CancelToken,
        tally: Tally,
        manifest: Manifest | None = None,
    ) -> None:
        self.options = options
        self.reporter = reporter
        self.cancel = cancel
        self.tally = tally
        self.planner = Planner(options, tally, manifest)
        context = Context(
            options=options,
            cancel=cancel,
            progress=NULL_PROGRESS,
            claim=self.planner.claim,
            notify=reporter.message,
            event=lambda event: None,  # each lane binds its transfers' events to their slots
            turns=self.planner.turns,
            gate=HostGate(options.per_host),
            limiter=TokenBucket(options.limit_rate) if options.limit_rate else None,
        )
        self._lanes = Lanes(
            config=client_config(options),
            context=context,
            reporter=reporter,
            tally=tally,
            cancel=cancel,
            lanes=options.lanes,
        )

    def submit(self, job: Job) -> Future[Result]:
        """Start one download; the future's result is its :class:`Result`."""
        return self._lanes.submit(job)

    def close(self) -> None:
        """Stop the lanes (their running downloads finish first, unless cancelled)."""
        self._lanes.close()

    # -- the run -------------------------------------------------------------------

    def run(self, items: Iterable[Item]) -> bool:
        """Run every item; returns True if the run was interrupted."""
        pending: set[Future[Result]] = set()
        limit = self.options.jobs * IN_FLIGHT_PER_JOB
        try:
            count = submitted = 0
            for item in self.planner.mine(items):
                if self.cancel.is_set():
                    break
                count += 1
                self.reporter.list_progress(count)  # ux13 hook: "N known so far" on a pipe
                if isinstance(item, BadLine):
                    result = bad_line_result(item)
                    self.reporter.result(result, self.tally.record(result))
                    continue
                if self.options.dry_run:
                    self.planner.planned(item, self.reporter)
                    continue
                job = self.planner.plan(item)
                if isinstance(job, BadLine):
                    result = bad_line_result(job)
                    self.reporter.result(result, self.tally.record(result))
                    continue
                while len(pending) >= limit:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    _reraise(done)
                pending.add(self.submit(dataclasses.replace(job, ordinal=submitted)))
                submitted += 1
            else:
                self.reporter.list_read(count)
            _reraise(wait(pending).done)
            return self.cancel.is_set()
        except KeyboardInterrupt:
            self.cancel.cancel()
            wait(pending, timeout=CANCEL_GRACE)
            return True
        finally:
            self.close()
