"""Scale-out on Dask: the list is read and named here, downloaded by worker processes.

This module is the reading process's side; :mod:`downloader.worker` is what the
workers run.

The process that reads the list decides every name, in list order (docs/files.md), and
sends the jobs to the cluster in chunks, with a bounded number of chunks in
flight, so the list still streams. Each worker process keeps one
:class:`~downloader.engine.Engine` for the run (``-j`` threads, one HTTP client
each) and feeds it the jobs of every chunk it is given.

Results come back two ways: early, a few times a second, as Dask events (so
stdout, bars and ``--failed`` stream while a chunk runs), and for certain, as
the chunk's return value. Each entry is reported once, the first time it
arrives.

When a worker process dies, the scheduler runs its chunks again elsewhere: the
files it finished are skipped (``--on-exist skip``) and its partial ones resume
from their ``.part`` files, so nothing is corrupt, lost or fetched twice in full.

Dask is an optional extra (``pip install 'pdl[dask]'``), imported only here and
only when a cluster is asked for.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import queue
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import worker
from .cancel import CancelToken
from .digests import Manifest
from .drive import CANCEL_GRACE
from .errors import BadLine, PdlError, UsageError
from .options import Options
from .planner import Planner, bad_line_result
from .progress import Reporter, TransferProgress
from .results import Report, Result, Status, Tally
from .transfer import Job
from .urllist import Item
from .worker import (
    RunSpec,
    cancel_run,
    check_dest,
    close_run,
    from_wire,
    job_to_wire,
    run_chunk,
)

if TYPE_CHECKING:
    import distributed

T = TypeVar("T")

CHUNK_PER_JOB = 16
"""Entries per chunk for each of a worker's ``-j`` threads, up to ``MAX_CHUNK``.

Each chunk costs a Dask task (milliseconds of scheduler and worker time), so
chunks are large; results still stream back as they finish (as events)."""
MAX_CHUNK = 256
THREADS_PER_PROCESS = 2
"""Chunks one local worker process runs at once, so its pool stays full between chunks."""
IN_FLIGHT_PER_THREAD = 2
"""Chunks sent and not finished, per Dask worker thread: one running, one waiting."""
CONNECT_TIMEOUT = 10.0
"""Seconds to keep trying to reach ``--scheduler`` at the start."""
WORKER_WAIT = 60.0
"""Seconds to wait for the first worker to join the scheduler."""
LOST_AFTER = 10.0
"""Seconds without the scheduler before the run gives up on it."""
CLOSE_WAIT = 5.0
"""Seconds to wait for the workers to close the run at its end."""
MAX_PROCESSES = 256
LOCAL_CONFIG = {
    # No sampling profiler walking every thread's stack a hundred times a second.
    "distributed.worker.profile.enabled": False,
    # The scheduler (in this process) keeps up to this many of each log, events
    # included: at Dask's 1,000, the result batches alone held some 50 MiB.
    "distributed.admin.low-level-log-length": 20,
}
"""Dask settings of the local cluster of ``--processes`` (an existing one keeps its own)."""


class ClusterLost(PdlError):
    """The scheduler went away during the run; ``report`` is what was done until then."""

    def __init__(self, message: str, report: Report | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterSpec:
    """Where a run goes: an existing scheduler, or ``processes`` local worker processes."""

    scheduler: str | None = None
    processes: int | None = None

    def __post_init__(self) -> None:
        if (self.scheduler is None) == (self.processes is None):
            raise UsageError("give either scheduler or processes, not both")
        if self.processes is not None and not 1 <= self.processes <= MAX_PROCESSES:
            raise UsageError(
                f"processes must be between 1 and {MAX_PROCESSES}, not {self.processes}"
            )
        if self.scheduler is not None and not self.scheduler.strip():
            raise UsageError("scheduler must be an address such as tcp://10.0.0.5:8786")

    def describe(self) -> str:
        if self.processes is not None:
            return f"the local cluster of {self.processes} processes"
        return f"the Dask scheduler at {self.scheduler}"


def chunk_size(jobs: int) -> int:
    """Entries per chunk: enough to keep ``jobs`` threads busy, few enough to stream."""
    return min(MAX_CHUNK, CHUNK_PER_JOB * jobs)


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter), read lazily."""
    chunk: list[T] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def worker_options(options: Options, workers: int) -> Options:
    """The options one of ``workers`` processes runs with.

    ``--dir`` becomes absolute (a worker's own directory means nothing here), and
    the whole-run limits are shared out: each process gets ``1/workers`` of
    ``--limit-rate`` and of ``--per-host`` (at least one connection).
    """
    rate = options.limit_rate
    per_host = options.per_host
    return dataclasses.replace(
        options,
        dest=options.dest.resolve(),
        limit_rate=math.ceil(rate / workers) if rate else None,
        per_host=max(1, per_host // workers) if per_host else None,
    )


def mute_dask_logs() -> dict[str, int]:
    """Silence Dask's own log lines; returns the levels they had.

    pdl says what went wrong in its own words; Dask's tracebacks (a lost
    scheduler logs several, some after the run) would bury them. The command
    line mutes them for good; the API only while a run lasts.
    """
    try:
        import distributed  # noqa: F401  (its import sets its loggers' levels: after that)
    except ImportError:
        return {}
    names = ["distributed"] + [
        name for name in logging.root.manager.loggerDict if name.startswith("distributed.")
    ]
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return levels


@contextlib.contextmanager
def _dask_logs_muted() -> Iterator[None]:
    levels = mute_dask_logs()
    try:
        yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# -- the reading side -----------------------------------------------------------------


class _Rows:
    """Mirrors the workers' transfers onto the local bars, one local slot each.

    A row is ``[serial, name, total, initial, received]``; ``busy`` rows are
    running, ``ended`` ones have finished since the last batch (their last bytes
    still count in the total, even when they began and ended between two batches).
    """

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter
        self._shown: dict[tuple[str, int], tuple[int, TransferProgress, int]] = {}
        self._free: list[int] = []
        self._next = 0

    def update(
        self, worker: str, busy: Sequence[Sequence[Any]], ended: Sequence[Sequence[Any]] = ()
    ) -> None:
        for row in ended:
            self._end(self._show(worker, row))
        running = {self._show(worker, row) for row in busy}
        for key in [k for k in self._shown if k[0] == worker and k not in running]:
            self._end(key)

    def _show(self, worker: str, row: Sequence[Any]) -> tuple[str, int]:
        serial, name, total, initial, received = row
        key = (worker, int(serial))
        shown = self._shown.get(key)
        if shown is None:
            slot = self._free.pop() if self._free else self._take()
            handle = self._reporter.transfer_started(slot)
            handle.begin(name, total, initial)
            shown = (slot, handle, initial)
        slot, handle, seen = shown
        if received > seen:
            handle.update(received - seen)
        self._shown[key] = (slot, handle, max(seen, received))
        return key

    def _take(self) -> int:
        self._next += 1
        return self._next - 1

    def _end(self, key: tuple[str, int]) -> None:
        slot = self._shown.pop(key)[0]
        self._reporter.transfer_ended(slot)
        self._free.append(slot)

    def close(self) -> None:
        for key in list(self._shown):
            self._end(key)


class ClusterRun:
    """One run on a Dask cluster, driven from the process that reads the list."""

    def __init__(
        self,
        spec: ClusterSpec,
        options: Options,
        reporter: Reporter,
        cancel: CancelToken,
        tally: Tally,
        manifest: Manifest | None = None,
    ) -> None:
        self.spec = spec
        self.options = options
        self.reporter = reporter
        self.cancel = cancel
        self.tally = tally
        self.planner = Planner(options, tally, manifest)
        self.run_id = uuid.uuid4().hex
        self._rows = _Rows(reporter)
        self._dest = str(options.dest)
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._waiting: dict[int, Job] = {}
        self._inflight: dict[int, tuple[distributed.Future[list[list[Any]]], list[int]]] = {}
        self._chunks = 0
        self._read = 0
        self._last_source = ""
        self._list_done = False
        self._client: distributed.Client | None = None
        self._cluster: Any = None
        self._spec: RunSpec | None = None
        self._limit = 2

    # -- connecting and checking ------------------------------------------------

    def _connect(self) -> distributed.Client:
        try:
            import distributed
        except ImportError:
            raise UsageError(
                "--scheduler and --processes need Dask: pip install 'pdl[dask]'"
            ) from None
        if self.spec.processes is not None:
            import dask

            # inherited by the worker processes as they start (config and SIGINT)
            with dask.config.set(LOCAL_CONFIG), _sigint_ignored():
                self._cluster = distributed.LocalCluster(
                    n_workers=self.spec.processes,
                    threads_per_worker=THREADS_PER_PROCESS,
                    processes=True,
                    host="127.0.0.1",
                    dashboard_address=None,
                    # The scheduler serves its HTTP routes anyway, by default on :8787;
                    # a random local port lets two runs start side by side.
                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                    memory_limit=0,  # no memory monitor polling /proc ten times a second
                    silence_logs=logging.ERROR,
                    preload=[worker.__name__],  # dask_setup: so do the ones restarted later
                )
            return distributed.Client(self._cluster)
        try:
            return distributed.Client(self.spec.scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError, ValueError) as exc:
            raise UsageError(
                f"cannot reach the Dask scheduler at {self.spec.scheduler}: {exc}"
            ) from None

    def _prepare(self, client: distributed.Client) -> RunSpec:
        """Wait for a worker, check that every worker shares ``--dir``; the run's spec."""
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT)
        except TimeoutError:
            raise UsageError(
                f"no Dask worker joined {self.spec.describe()} within {WORKER_WAIT:.0f} s"
            ) from None
        dest = str(self.options.dest.resolve())
        probe = f".pdl-probe-{self.run_id}"
        probe_path = Path(dest, probe)
        try:
            probe_path.touch()
        except OSError as exc:
            raise UsageError(f"cannot write in --dir {dest}: {exc.strerror or exc}") from None
        try:
            answers = client.run(check_dest, dest, probe)
        except Exception as exc:  # e.g. a worker without pdl installed
            raise UsageError(
                f"a Dask worker could not run pdl's check of --dir ({exc!r});"
                " is pdl installed on every worker?"
            ) from None
        finally:
            probe_path.unlink(missing_ok=True)
        for address, problem in sorted(answers.items()):
            if problem is not None:
                raise UsageError(
                    f"--dir {self.options.dest}: Dask worker {address} cannot use {dest}:"
                    f" {problem}. --dir must be a folder that every worker can write,"
                    " on a file system they all share"
                )
        threads = sum(client.nthreads().values())
        self._limit = max(2, IN_FLIGHT_PER_THREAD * threads)
        options = worker_options(self.options, len(answers))
        return RunSpec(self.run_id, options)

    # -- the run -----------------------------------------------------------------

    def run(self, items: Iterable[Item]) -> bool:
        """Run every item on the cluster; True if the run was interrupted."""
        with _dask_logs_muted():
            return self._run(items)

    def _run(self, items: Iterable[Item]) -> bool:
        client = self._client = self._connect()
        try:
            self._spec = self._prepare(client)
            client.subscribe_topic(self._spec.topic, self._on_event)
            for chunk in chunked(self._jobs(items), chunk_size(self.options.jobs)):
                while len(self._inflight) >= self._limit and not self.cancel.is_set():
                    self._pump()
                if self.cancel.is_set():
                    break
                self._submit(chunk)
            else:
                if not self.cancel.is_set():
                    self._list_done = True
                    self.reporter.list_read(self._read)
            while self._inflight and not self.cancel.is_set():
                self._pump()
        except KeyboardInterrupt:
            self.cancel.cancel()
        finally:
            self._finish(client)
        return self.cancel.is_set()

    def _jobs(self, items: Iterable[Item]) -> Iterator[tuple[int, Job]]:
        """This part's jobs with their index, named in list order; bad lines reported here."""
        index = 0
        for item in self.planner.mine(items):
            if self.cancel.is_set():
                return
            self._read += 1
            self._last_source = item.source
            if isinstance(item, BadLine):
                self._record(bad_line_result(item))
                continue
            job = self.planner.plan(item)
            if isinstance(job, BadLine):  # a checksum the manifest contradicts
                self._record(bad_line_result(job))
                continue
            yield index, job
            index += 1

    def _submit(self, chunk: list[tuple[int, Job]]) -> None:
        assert self._client is not None and self._spec is not None
        chunk_id = self._chunks
        self._chunks += 1
        for index, job in chunk:
            self._waiting[index] = job
        rows = [job_to_wire(index, job) for index, job in chunk]
        future = self._client.submit(
            run_chunk, self._spec, rows, key=f"pdl-{self.run_id}-{chunk_id}", pure=False
        )
        self._inflight[chunk_id] = (future, [index for index, _ in chunk])
        future.add_done_callback(lambda f: self._inbox.put(("done", chunk_id)))

    def _on_event(self, event: tuple[float, Any]) -> None:
        """Dask's event handler (its own thread): hand the batch to the reading thread."""
        self._inbox.put(("event", event[1]))

    def _pump(self, timeout: float = 1.0) -> None:
        """Handle what arrived: event batches and finished chunks; notice a lost scheduler."""
        try:
            kind, payload = self._inbox.get(timeout=timeout)
        except queue.Empty:
            self._check_scheduler()
            return
        while True:
            if kind == "event":
                self._on_batch(payload)
            else:
                self._on_chunk(payload)
            try:
                kind, payload = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _on_batch(self, batch: dict[str, Any]) -> None:
        for row in batch.get("r", ()):
            self._deliver(row)
        for text in batch.get("m", ()):
            self.reporter.message(text)
        if "w" in batch:
            self._rows.update(batch["w"], batch.get("p", ()), batch.get("e", ()))

    def _deliver(self, row: Sequence[Any]) -> None:
        job = self._waiting.pop(row[0], None)
        if job is not None:  # else: reported already (an event, then the chunk's rows)
            self._record(from_wire(row, job, self._dest))

    def _record(self, result: Result) -> None:
        self.reporter.result(result, self.tally.record(result))

    def _on_chunk(self, chunk_id: int) -> None:
        future, indices = self._inflight.pop(chunk_id)
        if future.status == "finished":
            for row in future.result():
                self._deliver(row)
            return
        if future.status == "cancelled" and self.cancel.is_set():
            return
        if future.status == "cancelled":
            self._lost()  # the client cancels our work when it loses the scheduler
        error = _task_error(future)
        for index in indices:
            self._fail(index, error)

    def _fail(self, index: int, error: str) -> None:
        job = self._waiting.pop(index, None)
        if job is not None:
            self._record(
                Result(
                    url=job.entry.url,
                    source=job.entry.source,
                    status=Status.FAILED,
                    error=error,
                    options=job.entry.options,
                )
            )

    def _check_scheduler(self) -> None:
        """Give up when the scheduler has been unreachable for ``LOST_AFTER`` seconds."""
        client = self._client
        assert client is not None
        deadline = time.monotonic() + LOST_AFTER
        while client.status != "running":
            if client.status in ("closed", "closing") or time.monotonic() > deadline:
                self._lost()
            time.sleep(0.1)

    def _lost(self) -> None:
        why = f"lost {self.spec.describe()}"
        unfinished = len(self._waiting)
        for index in list(self._waiting):
            self._fail(index, f"{why} before this entry finished")
        self._inflight.clear()
        unread = "" if self._list_done else f"; the list was read only up to {self._last_source}"
        raise ClusterLost(
            f"{why}: {unfinished} entries did not finish{unread}. Partial files are kept:"
            " run the same command again to finish (finished files are skipped)"
        )

    def _finish(self, client: distributed.Client) -> None:
        """Stop the workers' part of the run and disconnect; on cancel, collect what stopped."""
        reachable = client.status == "running"
        if self.cancel.is_set() and reachable:
            _on_workers(client, cancel_run, self.run_id, timeout=CANCEL_GRACE)
            deadline = time.monotonic() + CANCEL_GRACE
            with contextlib.suppress(ClusterLost):
                while self._inflight and time.monotonic() < deadline:
                    self._pump(timeout=max(0.01, deadline - time.monotonic()))
            with contextlib.suppress(Exception):
                client.cancel([future for future, _ in self._inflight.values()])
        self._rows.close()
        if reachable and self._spec is not None:
            with contextlib.suppress(Exception):
                client.unsubscribe_topic(self._spec.topic)
            _on_workers(client, close_run, self.run_id, timeout=CLOSE_WAIT)
            _forget_events(client, self._spec.topic)
        with contextlib.suppress(Exception):
            client.close(timeout=5)
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close(timeout=10)


def _on_workers(
    client: distributed.Client, function: Callable[[str], None], run_id: str, *, timeout: float
) -> None:
    """``function(run_id)`` on every worker, waiting at most ``timeout`` seconds.

    ``Client.run`` has no time limit of its own, and a worker that is dying (a
    SIGTERM to the whole process group) can keep it waiting for good.
    """

    def call() -> None:
        with contextlib.suppress(Exception):
            client.run(function, run_id, on_error="ignore")

    caller = threading.Thread(target=call, name="pdl-workers", daemon=True)
    caller.start()
    caller.join(timeout)


def _forget_events(client: distributed.Client, topic: str) -> None:
    """Drop the run's events that the scheduler keeps (up to 1,000 batches a topic).

    On a long-lived scheduler they would stay until it stops. Best effort: it
    uses the scheduler's event broker, which has no public way to do this.
    """

    def forget(dask_scheduler: Any) -> None:  # defined here: sent by value, not by name
        dask_scheduler._broker.truncate(topic)

    with contextlib.suppress(Exception):
        client.run_on_scheduler(forget)


def _task_error(future: distributed.Future[list[list[Any]]]) -> str:
    """Why a chunk failed on the cluster, in words for the entry's error."""
    exc = future.exception()
    if type(exc).__name__ == "KilledWorker":
        return "every Dask worker that ran this entry died (KilledWorker)"
    return f"internal error on a Dask worker: {exc!r}"
