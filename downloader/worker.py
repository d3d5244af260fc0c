"""The worker side of a cluster run: what a Dask worker process runs for pdl.

Each worker process keeps one :class:`~downloader.engine.Engine` per run (``-j``
threads, one HTTP client each) and feeds it the jobs of every chunk it is given
(:func:`run_chunk`). A :class:`Relay` sends the results, messages and progress
rows back to the reading process a few times a second as Dask events; the chunk's
return value repeats its results for certain. Everything that travels is plain
lists of numbers and strings (Dask events must be msgpack-able).

The functions here run on the workers, so pdl must be installed on every one.
Dask itself is imported only inside them.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .cancel import CancelToken
from .engine import Engine
from .naming import display
from .options import Checksum, EntryOptions, Options
from .progress import NullReporter, TransferProgress
from .results import Result, Status, Tally
from .transfer import Job
from .urllist import Entry

if TYPE_CHECKING:
    from concurrent.futures import Future as ThreadFuture

FLUSH_EVERY = 0.25
"""Seconds between a worker's event batches (results, messages, progress rows)."""
IDLE_CLOSE = 600.0
"""A worker drops a run whose reader vanished after this long without a chunk."""


# -- what travels: plain values (events must be msgpack-able; the scheduler unpickles tasks)


JobRow = tuple[
    int, str, tuple[str, ...], str | None, str | None, tuple[str, ...], tuple[tuple[str, str], ...]
]
"""A job as it travels: index, URL, relative path, checksum algorithm and digest, mirrors
and ``header=`` values."""


def job_to_wire(index: int, job: Job) -> JobRow:
    """Plain values: the scheduler unpickles every chunk, and dataclasses cost it dearly."""
    assert job.rel is not None  # names from the server never reach a cluster
    o = job.entry.options
    algorithm, hexdigest = (o.checksum.algorithm, o.checksum.hexdigest) if o.checksum else ("", "")
    return (
        index,
        job.entry.url,
        job.rel,
        algorithm or None,
        hexdigest or None,
        o.mirrors,
        o.headers,
    )


def job_from_wire(row: JobRow) -> Job:
    """The job a worker runs: what a download needs (the reader keeps the rest)."""
    _, url, rel, algorithm, hexdigest, mirrors, headers = row
    checksum = Checksum(algorithm, hexdigest) if algorithm and hexdigest else None
    # msgpack may turn the tuples into lists
    pairs = tuple((name, value) for name, value in headers)
    options = EntryOptions(checksum=checksum, mirrors=tuple(mirrors), headers=pairs)
    entry = Entry(url=url, options=options)
    return Job(entry=entry, rel=rel, fallback=rel)


def to_wire(index: int, result: Result) -> list[Any]:
    return [
        index,
        str(result.status),
        result.path is not None,
        result.bytes,
        result.elapsed,
        result.attempts,
        result.http_status,
        result.resumed_from,
        result.error,
        result.http_version,
        result.mirror,
    ]


def from_wire(row: Sequence[Any], job: Job, dest: str) -> Result:
    """The result of ``job`` from its row; the path is spelled as this process would."""
    _, status, has_path, nbytes, elapsed, attempts, http_status, resumed_from, error = row[:9]
    version, mirror = row[9], row[10]
    return Result(
        url=job.entry.url,
        source=job.entry.source,
        status=Status(status),
        path=display(job.rel, dest) if has_path and job.rel is not None else None,
        bytes=nbytes,
        elapsed=elapsed,
        attempts=attempts,
        http_status=http_status,
        resumed_from=resumed_from,
        error=error,
        http_version=version,
        mirror=mirror,
        options=job.entry.options,
    )


@dataclasses.dataclass(frozen=True, slots=True)
class RunSpec:
    """What every chunk of a run carries: the run's id and the workers' options."""

    run_id: str
    options: Options

    @property
    def topic(self) -> str:
        return f"pdl-{self.run_id}"


class _Row:
    """A transfer on a worker, as the reading process's bars show it."""

    __slots__ = ("initial", "name", "received", "serial", "total")

    def __init__(self, serial: int) -> None:
        self.serial = serial
        self.name: str | None = None
        self.total: int | None = None
        self.initial = 0
        self.received = 0

    def begin(self, name: str, total: int | None, initial: int) -> None:
        self.name, self.total = name, total
        self.initial = self.received = initial

    def update(self, n: int) -> None:
        self.received += n


def _wire_row(row: _Row) -> list[Any]:
    return [row.serial, row.name, row.total, row.initial, row.received]


class Relay(NullReporter):
    """A worker's reporter: collects results, messages and rows; a thread sends them on.

    ``send(payload)`` is called from the relay's own thread every ``FLUSH_EVERY``
    seconds when there is something to say (on a worker: ``Worker.log_event``).
    """

    def __init__(self, send: Callable[[dict[str, Any]], None]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._results: list[list[Any]] = []
        self._messages: list[str] = []
        self._busy: dict[int, _Row] = {}
        self._ended: list[_Row] = []
        self._serials = itertools.count()
        self._had_rows = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pdl-relay", daemon=True)
        self._thread.start()

    def transfer_started(self, slot: int) -> TransferProgress:
        with self._lock:
            row = self._busy[slot] = _Row(next(self._serials))
        return row

    def transfer_ended(self, slot: int) -> None:
        with self._lock:
            row = self._busy.pop(slot, None)
            if row is not None and row.name is not None:
                self._ended.append(row)  # its last bytes still count

    def message(self, text: str) -> None:
        with self._lock:
            self._messages.append(text)

    def finished(self, index: int, result: Result) -> None:
        with self._lock:
            self._results.append(to_wire(index, result))

    def flush(self) -> None:
        with self._lock:
            results, self._results = self._results, []
            messages, self._messages = self._messages, []
            rows = [_wire_row(r) for r in self._busy.values() if r.name is not None]
            ended = [_wire_row(r) for r in self._ended]
            self._ended = []
        changed = bool(rows or ended) or self._had_rows  # one empty list after the last row
        self._had_rows = bool(rows)
        if results or messages or changed:
            self._send({"r": results, "m": messages, "p": rows, "e": ended})

    def _loop(self) -> None:
        while not self._stop.wait(FLUSH_EVERY):
            self.flush()
        self.flush()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class _WorkerRun:
    """One run's engine in a worker process, shared by every chunk of the run it runs."""

    def __init__(self, spec: RunSpec, send: Callable[[dict[str, Any]], None]) -> None:
        self.relay = Relay(send)
        self.cancel = CancelToken()
        counts_only = Tally(keep_results=False, keep_failed=False)  # the reader keeps results
        self.engine = Engine(spec.options, self.relay, self.cancel, counts_only)
        self.running = 0
        self.last_used = time.monotonic()

    def finished(self, index: int, future: ThreadFuture[Result]) -> None:
        if not future.cancelled() and future.exception() is None:
            self.relay.finished(index, future.result())

    def close(self) -> None:
        self.engine.close()
        self.relay.close()


_RUNS: dict[str, _WorkerRun] = {}
_RUNS_LOCK = threading.Lock()


def _enter_run(spec: RunSpec) -> _WorkerRun:
    from distributed import get_worker

    with _RUNS_LOCK:
        run = _RUNS.get(spec.run_id)
        if run is None:
            worker = get_worker()
            topic = spec.topic
            run = _RUNS[spec.run_id] = _WorkerRun(
                spec, lambda payload: worker.log_event(topic, {"w": worker.address, **payload})
            )
        run.running += 1
        run.last_used = time.monotonic()
        abandoned = [
            (run_id, other)
            for run_id, other in _RUNS.items()
            if other.running == 0 and time.monotonic() - other.last_used > IDLE_CLOSE
        ]
        for run_id, _ in abandoned:
            del _RUNS[run_id]
    for _, other in abandoned:
        other.close()
    return run


def run_chunk(spec: RunSpec, chunk: list[JobRow]) -> list[list[Any]]:
    """The Dask task: download one chunk on this worker's engine; a row per entry."""
    run = _enter_run(spec)
    try:
        futures = []
        for row in chunk:
            index, job = row[0], job_from_wire(row)
            if run.cancel.is_set():
                break  # the run was stopped (Ctrl-C) before this chunk got here
            try:
                future = run.engine.submit(job)
            except RuntimeError:  # the engine was closed by that stop meanwhile
                break
            future.add_done_callback(partial(run.finished, index))
            futures.append((index, future))
        # An entry whose download never started before a cancel is not reported, as in one process.
        return [to_wire(i, f.result()) for i, f in futures if not f.cancelled()]
    finally:
        with _RUNS_LOCK:
            run.running -= 1
            run.last_used = time.monotonic()


def cancel_run(run_id: str) -> None:
    """On every worker (``Client.run``): stop the run's transfers, keeping their ``.part``."""
    with _RUNS_LOCK:
        run = _RUNS.get(run_id)
    if run is not None:
        run.cancel.cancel()
        run.engine.close()  # queued downloads are dropped; running ones stop at once


def close_run(run_id: str) -> None:
    """On every worker (``Client.run``): the run is over; close its engine and relay."""
    with _RUNS_LOCK:
        run = _RUNS.pop(run_id, None)
    if run is not None:
        run.close()


def dask_setup(worker: object) -> None:
    """Preload hook of the local cluster's workers: Ctrl-C is the reading process's.

    A Ctrl-C in a terminal reaches every process of the group. The reading
    process stops the run and keeps the ``.part`` files; a worker killed by the
    same key would only print tracebacks and leave the reader waiting for it.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def check_dest(dest: str, probe: str) -> str | None:
    """On every worker: None if ``dest`` is the reader's folder and writable, else why not."""
    folder = Path(dest)
    if not folder.is_dir():
        return "no such folder"
    if not (folder / probe).exists():
        return "it does not hold the files the reading process writes there"
    try:
        fd, name = tempfile.mkstemp(prefix=".pdl-check-", dir=dest)
        os.close(fd)
        Path(name).unlink()
    except OSError as exc:
        return f"cannot write there ({exc.strerror or exc})"
    return None
