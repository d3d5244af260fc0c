"""The engine: names in list order, a bounded thread pool, one HTTP client per worker thread.

This is the only module that runs downloads on threads (the bar painter, a
cluster worker's relay and the cluster's bounded calls have one thread each).
Items are read lazily; at most ``2 * jobs`` downloads are submitted and not yet
finished, so a list of millions of lines never becomes millions of futures.
"""

from __future__ import annotations

import os
import threading
import traceback
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from .cancel import CancelToken
from .client import Client, ClientConfig, ProxyRoutes
from .errors import BadLine
from .naming import RelPath, display, name_from_url
from .options import MAX_SPLIT, OnExist, Options
from .progress import Reporter, Starting
from .ratelimit import HostGate, TokenBucket
from .results import Result, Status, Tally
from .transfer import Context, Job, download
from .urllist import Entry, Item

IN_FLIGHT_PER_JOB = 2
CANCEL_GRACE = 1.5
"""Seconds the engine waits for running transfers after an interrupt."""


def client_config(options: Options) -> ClientConfig:
    """What every worker's client shares: our headers, the timeout, TLS and proxies."""
    headers = (
        ("User-Agent", options.user_agent),
        ("Accept-Encoding", "identity"),
        ("Accept", "*/*"),
        *options.headers,
    )
    ca_bundle = str(options.ca_bundle) if options.ca_bundle is not None else None
    return ClientConfig(
        headers=tuple(headers),
        timeout=options.timeout,
        verify=ClientConfig.ca_setting(insecure=options.insecure, ca_bundle=ca_bundle),
        routes=ProxyRoutes.from_environment(),
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
    """A worker's unexpected exception (a bug, not a failed download) stops the run loudly."""
    for future in done:
        future.result()


class Planner:
    """Decides names, in list order, in the thread that reads the list."""

    def __init__(self, options: Options, tally: Tally) -> None:
        self.options = options
        self.tally = tally

    def _taken_on_disk(self, rel: RelPath) -> bool:
        return os.path.lexists(self.options.dest.joinpath(*rel))

    def claim(self, rel: RelPath) -> RelPath:
        taken = self._taken_on_disk if self.options.on_exist is OnExist.RENAME else None
        return self.tally.claim(rel, taken)

    def plan(self, entry: Entry) -> Job:
        rel = base_path(entry)
        if self.options.content_disposition and not entry.options.out:
            return Job(entry=entry, rel=None, fallback=rel)
        return Job(entry=entry, rel=self.claim(rel), fallback=rel)

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
        rel = job.rel or self.claim(job.fallback)
        reporter.planned(entry.url, entry.source, display(rel, str(self.options.dest)))


class Engine:
    """Runs downloads on a bounded thread pool, one HTTP client per worker thread.

    :meth:`run` is a whole run: read items, decide names, download, record. A
    worker process of a cluster (:mod:`downloader.worker`) keeps one engine for
    the run and feeds it the jobs of each chunk with :meth:`submit`.
    """

    def __init__(
        self, options: Options, reporter: Reporter, cancel: CancelToken, tally: Tally
    ) -> None:
        self.options = options
        self.reporter = reporter
        self.cancel = cancel
        self.tally = tally
        self.planner = Planner(options, tally)
        self._local = threading.local()
        self._clients: list[Client] = []
        self._slots = iter(range(1 << 30))
        self._client_config = client_config(options)
        self._gate = HostGate(options.per_host)
        # Threads start only when used; segment runners only for split downloads (-s).
        self._pool = ThreadPoolExecutor(max_workers=options.jobs, thread_name_prefix="pdl")
        self._segments = ThreadPoolExecutor(
            max_workers=options.jobs * MAX_SPLIT, thread_name_prefix="pdl-split"
        )
        self._limiter = TokenBucket(options.limit_rate) if options.limit_rate else None

    # -- workers -----------------------------------------------------------------

    def _worker_state(self) -> tuple[int, Client]:
        local = self._local
        if not hasattr(local, "client"):
            local.slot = next(self._slots)
            local.client = Client(self._client_config)
            self._clients.append(local.client)
        return local.slot, local.client

    def _work(self, job: Job) -> Result:
        slot, client = self._worker_state()
        progress = self.reporter.transfer_started(slot)
        self.reporter.event(slot, Starting(url=job.entry.url, name=(job.rel or job.fallback)[-1]))
        ctx = Context(
            options=self.options,
            client=client,
            cancel=self.cancel,
            progress=progress,
            claim=self.planner.claim,
            notify=self.reporter.message,
            gate=self._gate,
            limiter=self._limiter,
            spawn=self._segments.submit,
        )
        try:
            result = download(job, ctx)
        except Exception as exc:  # a bug must fail one entry, not the run
            self.reporter.message("".join(traceback.format_exception(exc)).rstrip())
            result = Result(
                url=job.entry.url,
                source=job.entry.source,
                status=Status.FAILED,
                error=f"internal error: {exc!r}",
                options=job.entry.options,
            )
        finally:
            self.reporter.transfer_ended(slot)
        self.reporter.result(result, self.tally.record(result))
        return result

    def submit(self, job: Job) -> Future[Result]:
        """Start one download on the pool; the future's result is its :class:`Result`."""
        return self._pool.submit(self._work, job)

    def close(self) -> None:
        """Stop the pools (waiting for running work unless cancelled) and close the clients."""
        waiting = not self.cancel.is_set()
        self._pool.shutdown(wait=waiting, cancel_futures=True)
        self._segments.shutdown(wait=waiting, cancel_futures=True)
        for client in self._clients:
            client.close()

    # -- the run -------------------------------------------------------------------

    def run(self, items: Iterable[Item]) -> bool:
        """Run every item; returns True if the run was interrupted."""
        pending: set[Future[Result]] = set()
        limit = self.options.jobs * IN_FLIGHT_PER_JOB
        try:
            count = 0
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
                while len(pending) >= limit:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    _reraise(done)
                pending.add(self.submit(job))
            else:
                self.reporter.list_read(count)
            _reraise(wait(pending).done)
            return self.cancel.is_set()
        except KeyboardInterrupt:
            self.cancel.cancel()
            self._pool.shutdown(wait=False, cancel_futures=True)
            wait(pending, timeout=CANCEL_GRACE)
            return True
        finally:
            self.close()
