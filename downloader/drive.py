"""The one run loop of a local run: read, plan, bound the work in flight, record, interrupt.

Items are read lazily; at most ``2 * jobs`` downloads are submitted and not yet
finished, so a list of millions of lines never becomes millions of futures. The
downloads go to a :class:`Backend` (the local lanes, :class:`~downloader.engine.Engine`).

Shared between threads, each with its own lock: the run's ``Tally`` (counts, kept
results, claimed names), the ``Turns`` of names from the server, the ``HostGate``, the
``TokenBucket``, the reporter and, in :mod:`downloader.lanes`, the slot pool and the
queue of submitted downloads. Everything else belongs to one thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Protocol

from .cancel import CancelToken
from .errors import BadLine
from .options import Options
from .planner import Planner, bad_line_result
from .progress import Reporter
from .results import Result, Tally
from .transfer import Job
from .urllist import Item

IN_FLIGHT_PER_JOB = 2
CANCEL_GRACE = 1.5
"""Seconds the run waits for running transfers after an interrupt."""


class Backend(Protocol):
    """Where downloads run: ``submit`` one, ``close`` when the run ends."""

    def submit(self, job: Job) -> Future[Result]: ...
    def close(self) -> None: ...


def _reraise(done: Iterable[Future[Result]]) -> None:
    """A lane's unexpected exception (a bug, not a failed download) stops the run loudly."""
    for future in done:
        if not future.cancelled():
            future.result()


def drive(
    items: Iterable[Item],
    *,
    options: Options,
    planner: Planner,
    backend: Backend,
    tally: Tally,
    reporter: Reporter,
    cancel: CancelToken,
) -> bool:
    """Run every item on ``backend``; returns True if the run was interrupted."""
    pending: set[Future[Result]] = set()
    limit = options.jobs * IN_FLIGHT_PER_JOB
    try:
        count = submitted = 0
        for item in planner.mine(items):
            if cancel.is_set():
                break
            count += 1
            reporter.list_progress(count)  # "N known so far" on a pipe
            if isinstance(item, BadLine):
                result = bad_line_result(item)
                reporter.result(result, tally.record(result))
                continue
            if options.dry_run:
                planner.planned(item, reporter)
                continue
            job = planner.plan(item)
            if isinstance(job, BadLine):
                result = bad_line_result(job)
                reporter.result(result, tally.record(result))
                continue
            while len(pending) >= limit:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                _reraise(done)
            pending.add(backend.submit(dataclasses.replace(job, ordinal=submitted)))
            submitted += 1
        else:
            reporter.list_read(count)
        _reraise(wait(pending).done)
        return cancel.is_set()
    except KeyboardInterrupt:
        cancel.cancel()
        wait(pending, timeout=CANCEL_GRACE)
        return True
    finally:
        backend.close()
