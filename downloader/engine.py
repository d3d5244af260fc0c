"""The engine: names in list order, a bounded thread pool, one HTTP client per worker thread.

This is the only module that knows about threads. Items are read lazily; at
most ``2 * jobs`` downloads are submitted and not yet finished, so a list of
millions of lines never becomes millions of futures.
"""

from __future__ import annotations

import os
import threading
import traceback
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

from .cancel import CancelToken
from .client import Client, ClientConfig, ProxyRoutes
from .errors import BadLine
from .naming import RelPath, display, name_from_url
from .options import MAX_SPLIT, OnExist, Options
from .progress import Reporter
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


def _reraise(done: Iterable[Future[None]]) -> None:
    """A worker's unexpected exception (a bug, not a failed download) stops the run loudly."""
    for future in done:
        future.result()


class Engine:
    """One run: reads items, decides names, runs downloads, records results."""

    def __init__(
        self, options: Options, reporter: Reporter, cancel: CancelToken, tally: Tally
    ) -> None:
        self.options = options
        self.reporter = reporter
        self.cancel = cancel
        self.tally = tally
        self._local = threading.local()
        self._clients: list[Client] = []
        self._slots = iter(range(1 << 30))
        self._client_config = client_config(options)
        self._gate = HostGate(options.per_host)
        # Segment runners of split downloads (-s); threads start only when used.
        self._segments = ThreadPoolExecutor(
            max_workers=options.jobs * MAX_SPLIT, thread_name_prefix="pdl-split"
        )
        self._limiter = TokenBucket(options.limit_rate) if options.limit_rate else None

    # -- naming (submitting thread, list order) -------------------------------

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

    # -- workers -----------------------------------------------------------------

    def _worker_state(self) -> tuple[int, Client]:
        local = self._local
        if not hasattr(local, "client"):
            local.slot = next(self._slots)
            local.client = Client(self._client_config)
            self._clients.append(local.client)
        return local.slot, local.client

    def _work(self, job: Job) -> None:
        slot, client = self._worker_state()
        progress = self.reporter.transfer_started(slot)
        ctx = Context(
            options=self.options,
            client=client,
            cancel=self.cancel,
            progress=progress,
            claim=self.claim,
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

    # -- the run -------------------------------------------------------------------

    def run(self, items: Iterable[Item]) -> bool:
        """Run every item; returns True if the run was interrupted."""
        pool = ThreadPoolExecutor(max_workers=self.options.jobs, thread_name_prefix="pdl")
        pending: set[Future[None]] = set()
        limit = self.options.jobs * IN_FLIGHT_PER_JOB
        try:
            count = 0
            for item in items:
                if self.cancel.is_set():
                    break
                count += 1
                if isinstance(item, BadLine):
                    result = bad_line_result(item)
                    self.reporter.result(result, self.tally.record(result))
                    continue
                job = self.plan(item)
                if self.options.dry_run:
                    rel = job.rel or self.claim(job.fallback)  # the URL's name stands in
                    path = display(rel, str(self.options.dest))
                    self.reporter.planned(item.url, item.source, path)
                    continue
                while len(pending) >= limit:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    _reraise(done)
                pending.add(pool.submit(self._work, job))
            else:
                self.reporter.list_read(count)
            _reraise(wait(pending).done)
            return self.cancel.is_set()
        except KeyboardInterrupt:
            self.cancel.cancel()
            pool.shutdown(wait=False, cancel_futures=True)
            wait(pending, timeout=CANCEL_GRACE)
            return True
        finally:
            pool.shutdown(wait=not self.cancel.is_set(), cancel_futures=True)
            self._segments.shutdown(wait=not self.cancel.is_set(), cancel_futures=True)
            for client in self._clients:
                client.close()
