"""The local backend: a ThreadPoolExecutor of lanes; one lane = one thread = one CurlMulti.

Each lane carries its share of the ``-j`` downloads. A download is a generator
of effects (:mod:`downloader.transfer`); the lane steps it: a ``Fetch`` becomes
an easy handle on the lane's multi handle, a ``Wait`` a timer of the lane (never
a sleeping thread), a ``Gather`` sub-transfers on the same lane (the segments
of ``-s``). A transfer lives its whole life on one lane: handing transfers
between threads was measured to cost more than it saves.

Why lanes (2,000 files of 16 KiB, 2 cores, see ``docs/architecture.md``): a
thread per download pays a GIL hand-off and a poll loop per transfer (0.38 s at
best with pycurl), while two threads each multiplexing four transfers on a multi
handle took 0.15 s, beside curl ``--parallel``'s 0.13 s.

Shared between threads, each with its own lock: the run's ``Tally``, the
``HostGate``, the ``TokenBucket``, the reporter, the slot pool and each lane's
inbox (a deque, plus a pipe that wakes the lane).
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import itertools
import os
import select
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from .cancel import CancelToken
from .client import ClientConfig
from .curl import Call, Multi
from .effects import Body, Discard, Effect, Fetch, Gather, Wait
from .errors import Cancelled, ConnectionFailed, TransferError
from .progress import Reporter, Starting
from .results import Result, Status, Tally
from .transfer import Context, Job, download

TICK = 0.25
"""The longest a lane waits without looking at cancellation and header deadlines."""


class _Task:
    """One generator being stepped: a download, or a runner of a split one."""

    __slots__ = (
        "body",
        "call",
        "deadline",
        "done",
        "future",
        "gen",
        "index",
        "job",
        "parent",
        "pending",
        "results",
        "slot",
        "waiting",
    )

    def __init__(self, gen: Generator[Effect, Any, Any], parent: _Task | None = None) -> None:
        self.gen = gen
        self.parent = parent
        self.call: Call | None = None
        self.body = False
        self.pending: Effect | None = None
        self.done: tuple[bool, Any] | None = None  # (crashed, value) reached inside a callback
        self.deadline = 0.0
        self.results: list[Any] = []
        self.waiting = 0
        self.index = 0
        self.slot = -1
        self.future: Future[Result] | None = None
        self.job: Job | None = None


class _Slots:
    """Bar rows: the lowest free number for each running download (locked)."""

    def __init__(self) -> None:
        self._free: list[int] = []
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> int:
        with self._lock:
            if self._free:
                return heapq.heappop(self._free)
            self._next += 1
            return self._next - 1

    def give(self, slot: int) -> None:
        with self._lock:
            heapq.heappush(self._free, slot)


class Lanes:
    """``options.lanes`` lanes on a ThreadPoolExecutor; :meth:`submit` hands one a job."""

    def __init__(
        self,
        *,
        config: ClientConfig,
        context: Context,
        reporter: Reporter,
        tally: Tally,
        cancel: CancelToken,
        lanes: int,
    ) -> None:
        self.config = config
        self.context = context
        self.reporter = reporter
        self.tally = tally
        self.cancel = cancel
        self.slots = _Slots()
        self.broken: BaseException | None = None
        """The bug a lane died of, if one did."""
        self.queue: deque[tuple[Job, Future[Result]]] = deque()
        """Submitted downloads no lane has taken yet (deque: safe across threads)."""
        jobs = context.options.jobs
        self._lanes = [
            _Lane(self, i, jobs // lanes + (1 if i < jobs % lanes else 0)) for i in range(lanes)
        ]
        self._pool = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="pdl-lane")
        self._runs = [self._pool.submit(lane.run) for lane in self._lanes]

    def submit(self, job: Job) -> Future[Result]:
        """Queue one download for the first lane with room; the future's result is its Result.

        Each lane carries at most its share of ``jobs`` at a time, so the run never has
        more than ``jobs`` downloads going.
        """
        future: Future[Result] = Future()
        if self.broken is not None:  # a lane died of a bug: the run is going down, loudly
            future.set_running_or_notify_cancel()
            future.set_exception(self.broken)
            return future
        self.queue.append((job, future))
        if self.broken is not None:  # it died between the look above and the append
            fail_all([f for _, f in _drain(self.queue)], self.broken)
            return future
        for lane in self._lanes:
            if lane.running < lane.capacity:
                lane.wake()
                break
        return future

    def close(self) -> None:
        """Let the lanes finish their downloads (at once if cancelled) and stop."""
        for lane in self._lanes:
            lane.close()
        self._pool.shutdown(wait=True)
        for run in self._runs:
            run.result()  # a lane's own bug is loud


class _Lane:
    """One thread stepping many transfers over one multi handle."""

    def __init__(self, lanes: Lanes, index: int, capacity: int) -> None:
        self.lanes = lanes
        self.index = index
        self.capacity = capacity
        self.running = 0  # downloads this lane carries (read by submit without a lock: a hint)
        self._inbox = lanes.queue
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._closing = False
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._calls: list[Call] = []
        self._active: dict[Call, _Task] = {}
        self._paused: set[Call] = set()
        self._cancelled = False
        self._tasks = 0
        self._multi: Multi | None = None
        self._in_perform = False
        self._deferred: list[Call] = []  # calls to add once perform returns (not from callbacks)
        self._orphans: set[Call] = set()  # calls whose body nobody wants any more
        self._futures: set[Future[Result]] = set()  # of the downloads this lane carries

    # -- from other threads ------------------------------------------------------------

    def close(self) -> None:
        self._closing = True
        self.wake()

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        self._multi = Multi()
        try:
            self._loop(self._multi)
        except BaseException as exc:  # a bug of the lane itself: loud, never a silent hang
            self._broken(exc)
            raise
        finally:
            for call in self._calls:
                call.close()
            self._multi.close()
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _loop(self, multi: Multi) -> None:
        cancel = self.lanes.cancel
        checked = time.monotonic()
        while True:
            self._take_inbox()
            if cancel.is_set() and not self._cancelled:
                self._cancel_all(multi)
            if self._closing and not self._tasks and (not self._inbox or self._cancelled):
                return
            self._in_perform = True
            try:
                ended = multi.step()
            finally:
                self._in_perform = False
            for call in self._deferred:
                multi.add(call)
            self._deferred.clear()
            for call, code, message in ended:
                self._ended(multi, call, code, message)
            if self._paused or self.lanes.context.limiter is not None:
                self._hold_rate(multi)
            now = time.monotonic()
            self._fire_timers(now)
            if now - checked >= TICK:
                checked = now
                self._check_deadlines(multi, now)
            self._wait(multi)

    def _wait(self, multi: Multi) -> None:
        timeout = TICK
        curl = multi.timeout()
        if curl >= 0:
            timeout = min(timeout, curl)
        if self._timers:
            timeout = min(timeout, max(0.0, self._timers[0][0] - time.monotonic()))
        if (self._inbox and self.running < self.capacity) or (
            self.lanes.cancel.is_set() and not self._cancelled
        ):
            timeout = 0
        if timeout <= 0:
            return
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        read, write, exc = multi.fds()
        for fd in set(read) | set(write) | set(exc):
            mask = 0
            if fd in read:
                mask |= select.POLLIN
            if fd in write:
                mask |= select.POLLOUT
            poller.register(fd, mask | select.POLLPRI)
        if poller.poll(timeout * 1000):
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_r, 4096)

    def _broken(self, exc: BaseException) -> None:
        """Fail this lane's downloads, and those no lane has taken, with ``exc``: whoever
        waits on them raises it instead of waiting for ever."""
        self.lanes.broken = exc
        fail_all([*self._futures, *(f for _, f in _drain(self._inbox))], exc)

    def _take_inbox(self) -> None:
        while self.running < self.capacity or self.lanes.cancel.is_set():
            try:
                job, future = self._inbox.popleft()
            except IndexError:
                return
            if self._cancelled or self.lanes.cancel.is_set():
                future.cancel()  # not started: no line for it
                future.set_running_or_notify_cancel()  # wakes whoever waits on it
            elif future.set_running_or_notify_cancel():
                self._start(job, future)

    def _start(self, job: Job, future: Future[Result]) -> None:
        lanes = self.lanes
        slot = lanes.slots.take()
        progress = lanes.reporter.transfer_started(slot)
        lanes.reporter.event(slot, Starting(url=job.entry.url, name=(job.rel or job.fallback)[-1]))
        ctx = Context(
            options=lanes.context.options,
            cancel=lanes.cancel,
            progress=progress,
            claim=lanes.context.claim,
            notify=lanes.context.notify,
            event=functools.partial(lanes.reporter.event, slot),
            turns=lanes.context.turns,
            gate=lanes.context.gate,
            limiter=lanes.context.limiter,
        )
        task = _Task(download(job, ctx))
        task.slot, task.future, task.job = slot, future, job
        self._futures.add(future)
        self._tasks += 1
        self.running += 1
        self._advance(task, None)

    # -- stepping a task ---------------------------------------------------------------

    def _advance(self, task: _Task, value: Any) -> None:
        try:
            effect = task.gen.send(value)
        except StopIteration as stop:
            self._finish(task, stop.value)
            return
        except Exception as exc:  # a bug must fail one entry, not the run
            self._crash(task, exc)
            return
        self._dispatch(task, effect)

    def _dispatch(self, task: _Task, effect: Effect) -> None:
        multi = self._multi
        assert multi is not None
        if isinstance(effect, Fetch):
            if self.lanes.cancel.is_set():
                self._advance(task, Cancelled("interrupted"))
                return
            call = self._calls.pop() if self._calls else Call(self.lanes.config, self._on_head)
            call.start(effect.url, effect.headers)
            self._add(multi, task, call)
        elif isinstance(effect, Wait):
            when = time.monotonic() + (0.0 if self.lanes.cancel.is_set() else effect.seconds)
            self._later(when, lambda: self._advance(task, None))
        elif isinstance(effect, Gather):
            self._gather(task, effect, None)
        else:  # Body or Discard with no response to read
            self._crash(task, RuntimeError(f"{effect!r} without a response"))

    def _gather(self, task: _Task, effect: Gather, call: Call | None) -> None:
        """Start the sub-transfers; the first may take over ``call``, whose head is in."""
        task.waiting = len(effect.tasks)
        task.results = [None] * len(effect.tasks)
        if not effect.tasks:
            self._advance(task, [])
            return
        for index, gen in enumerate(effect.tasks):
            child = _Task(gen, parent=task)
            child.index = index
            if call is None:
                self._advance(child, None)
                continue
            heir, call = call, None
            try:
                first = child.gen.send(None)
            except StopIteration as stop:
                self._orphan(heir)
                self._finish(child, stop.value)
                continue
            except Exception as exc:
                self._orphan(heir)
                self._crash(child, exc)
                continue
            if isinstance(first, Body):  # the body of the head that came in is the child's
                self._active[heir] = child
                child.call, child.body, heir.sink = heir, True, first.sink
                task.call = None
            else:
                self._orphan(heir)
                self._dispatch(child, first)

    def _orphan(self, call: Call) -> None:
        """Nobody wants this call's body: it is cut, and the call given back when it ends."""
        call.sink = None
        self._orphans.add(call)

    def _add(self, multi: Multi, task: _Task, call: Call) -> None:
        task.call, task.body, task.pending, task.done = call, False, None, None
        task.deadline = time.monotonic() + 2 * self.lanes.config.timeout
        self._active[call] = task
        if self._in_perform:
            self._deferred.append(call)
        else:
            multi.add(call)

    def _on_head(self, call: Call) -> None:
        """The final response's head is in (inside libcurl's callback): where does the body go?"""
        task = self._active[call]
        task.deadline = 0.0
        try:
            effect = task.gen.send(call.response())
        except StopIteration as stop:
            task.done = (False, stop.value)
            return
        except Exception as exc:
            task.done = (True, exc)
            return
        if isinstance(effect, Body):
            call.sink, task.body = effect.sink, True
        elif isinstance(effect, Gather):
            self._gather(task, effect, call)
        elif not isinstance(effect, Discard):
            task.pending = effect  # moved on without the body: carried out once the call ends

    def _ended(self, multi: Multi, call: Call, code: int, message: str) -> None:
        if call in self._orphans:
            self._orphans.discard(call)
            self._active.pop(call, None)
            self._release(call)
            return
        task = self._active.pop(call)
        self._paused.discard(call)
        task.call = None
        if code == 0 and call.redirect is not None and task.done is None:
            try:
                call.follow()
            except TransferError as exc:
                self._release(call)
                self._advance(task, exc)
                return
            self._add(multi, task, call)
            return
        error = call.failure(code, message) if code else None
        head = call.head_done and call.redirect is None
        body = task.body
        sink_pause = call.sink.pause if call.sink is not None else 0.0
        self._release(call)
        if task.done is not None:
            crashed, value = task.done
            if crashed:
                self._crash(task, value)
            else:
                self._finish(task, value)
        elif not head:
            self._advance(task, error or ConnectionFailed("the server sent no response"))
        elif task.pending is not None:
            effect, task.pending = task.pending, None
            self._dispatch(task, effect)
        elif body and sink_pause > 0 and not self.lanes.cancel.is_set():
            # --limit-rate: the body is in, but its bytes are paid for only after this
            when = time.monotonic() + sink_pause
            self._later(when, lambda: self._advance(task, error))
        else:
            self._advance(task, error if body else None)

    def _release(self, call: Call) -> None:
        call.sink = None
        self._calls.append(call)

    def _finish(self, task: _Task, value: Any) -> None:
        parent = task.parent
        if parent is not None:
            parent.results[task.index] = value
            parent.waiting -= 1
            if parent.waiting == 0:
                self._advance(parent, parent.results)
            return
        lanes = self.lanes
        lanes.reporter.transfer_ended(task.slot)
        lanes.slots.give(task.slot)
        lanes.reporter.result(value, lanes.tally.record(value))
        self._tasks -= 1
        self.running -= 1
        assert task.future is not None
        self._futures.discard(task.future)
        task.future.set_result(value)

    def _crash(self, task: _Task, exc: BaseException) -> None:
        self.lanes.reporter.message("".join(traceback.format_exception(exc)).rstrip())
        if task.parent is not None:
            self._finish(task, TransferError(f"internal error: {exc!r}"))
            return
        job = task.job
        assert job is not None
        self._finish(
            task,
            Result(
                url=job.entry.url,
                source=job.entry.source,
                status=Status.FAILED,
                error=f"internal error: {exc!r}",
                options=job.entry.options,
            ),
        )

    # -- time, rate and cancellation ---------------------------------------------------

    def _later(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (when, next(self._seq), action))

    def _fire_timers(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            _, _, action = heapq.heappop(self._timers)
            action()

    def _hold_rate(self, multi: Multi) -> None:
        """``--limit-rate``: a transfer over the shared budget is paused until paid for."""
        now = time.monotonic()
        for call in list(self._active):
            sink = call.sink
            if sink is None or sink.pause <= 0 or call in self._paused:
                continue
            multi.pause(call, True)
            self._paused.add(call)
            self._later(now + sink.pause, functools.partial(self._unpause, multi, call))
            sink.pause = 0.0

    def _unpause(self, multi: Multi, call: Call) -> None:
        if call in self._paused:
            self._paused.discard(call)
            if call in self._active:
                multi.pause(call, False)

    def _check_deadlines(self, multi: Multi, now: float) -> None:
        """A response head that has not come in twice ``--timeout`` fails the attempt."""
        late = [c for c, t in self._active.items() if t.deadline and t.deadline < now]
        for call in late:
            multi.remove(call)
            call.error = ConnectionFailed("timed out waiting for the response header")
            self._ended(multi, call, -1, "")

    def _cancel_all(self, multi: Multi) -> None:
        """Ctrl-C: every transfer of the lane ends now; its generator keeps its partial."""
        self._cancelled = True
        for call in list(self._active):
            multi.remove(call)
            call.error = Cancelled("interrupted")
            if call.sink is not None:
                call.sink.error = Cancelled("interrupted")
            self._ended(multi, call, -1, "")
        self._timers = [(0.0, seq, action) for _, seq, action in self._timers]
        heapq.heapify(self._timers)


def _drain(queue: deque[tuple[Job, Future[Result]]]) -> list[tuple[Job, Future[Result]]]:
    taken = []
    while True:
        try:
            taken.append(queue.popleft())
        except IndexError:
            return taken


def fail_all(futures: list[Future[Result]], exc: BaseException) -> None:
    """End every future not yet done with ``exc``."""
    for future in futures:
        if not future.done() and (future.running() or future.set_running_or_notify_cancel()):
            future.set_exception(exc)
