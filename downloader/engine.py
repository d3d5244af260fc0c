"""The local backend: what every request shares (:func:`client_config`) and the lanes
that carry the downloads (:mod:`downloader.lanes`, ``--threads`` threads, each one libcurl
multi handle). A cluster worker process (:mod:`downloader.worker`) runs the same engine
for its chunks; a local run goes through :func:`downloader.drive.drive`.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import Future

from .cancel import CancelToken
from .client import ClientConfig, ProxyRoutes
from .digests import Manifest
from .drive import CANCEL_GRACE, IN_FLIGHT_PER_JOB, drive
from .lanes import Lanes
from .options import Options
from .planner import Planner, bad_line_result, base_path
from .progress import NULL_PROGRESS, Reporter
from .ratelimit import HostGate, TokenBucket
from .results import Result, Tally
from .transfer import Context, Job
from .urllist import Item

__all__ = [
    "CANCEL_GRACE",
    "IN_FLIGHT_PER_JOB",
    "Engine",
    "bad_line_result",
    "base_path",
    "client_config",
]


def client_config(options: Options) -> ClientConfig:
    """What every request of the run shares: headers, timeouts, TLS, proxies, HTTP version,
    cookies, netrc credentials, name resolution."""
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
        cookies=options.cookies,
        netrc=options.netrc,
        resolve=tuple(str(r) for r in options.resolve),
        ip_version=4 if options.ipv4 else 6 if options.ipv6 else None,
    )


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
        """Run every item (the one run loop, :func:`~downloader.drive.drive`); True if the
        run was interrupted."""
        return drive(
            items,
            options=self.options,
            planner=self.planner,
            backend=self,
            tally=self.tally,
            reporter=self.reporter,
            cancel=self.cancel,
        )
