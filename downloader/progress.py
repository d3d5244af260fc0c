"""Reporting as an interface: what the engine tells, and the reporters that show it.

The engine and transfers talk only to :class:`Reporter` and
:class:`TransferProgress`. ``ResultWriter`` owns stdout, ``StderrReporter`` owns
stderr (bars when asked, failure lines, verbose notes); ``combine`` joins them.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TextIO

from .results import Counts, Report, Result, Status, redact, redact_text

BAR_REFRESH = 0.25
"""Seconds between bar refreshes: a few times a second at most."""


class TransferProgress(Protocol):
    """Progress of the transfer running in one worker slot."""

    def begin(self, name: str, total: int | None, initial: int) -> None: ...
    def update(self, n: int) -> None: ...


class Reporter(Protocol):
    """What a run tells the outside world, in order: started, (transfers, results)*, finished."""

    def run_started(self, jobs: int) -> None: ...
    def list_read(self, total: int) -> None: ...
    def transfer_started(self, slot: int) -> TransferProgress: ...
    def transfer_ended(self, slot: int) -> None: ...
    def result(self, result: Result, counts: Counts) -> None: ...
    def planned(self, url: str, source: str, path: str) -> None: ...
    def message(self, text: str) -> None: ...
    def run_finished(self, report: Report) -> None: ...


class NullProgress:
    def begin(self, name: str, total: int | None, initial: int) -> None:
        pass

    def update(self, n: int) -> None:
        pass


NULL_PROGRESS = NullProgress()


class NullReporter:
    """Reports nothing (the API default, and a base for partial reporters)."""

    def run_started(self, jobs: int) -> None:
        pass

    def list_read(self, total: int) -> None:
        pass

    def transfer_started(self, slot: int) -> TransferProgress:
        return NULL_PROGRESS

    def transfer_ended(self, slot: int) -> None:
        pass

    def result(self, result: Result, counts: Counts) -> None:
        pass

    def planned(self, url: str, source: str, path: str) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def run_finished(self, report: Report) -> None:
        pass


class _Combined:
    def __init__(self, reporters: Sequence[Reporter]) -> None:
        self._reporters = tuple(reporters)

    def run_started(self, jobs: int) -> None:
        for r in self._reporters:
            r.run_started(jobs)

    def list_read(self, total: int) -> None:
        for r in self._reporters:
            r.list_read(total)

    def transfer_started(self, slot: int) -> TransferProgress:
        handles = [r.transfer_started(slot) for r in self._reporters]
        handles = [h for h in handles if h is not NULL_PROGRESS]
        return handles[0] if len(handles) == 1 else _FanOut(handles) if handles else NULL_PROGRESS

    def transfer_ended(self, slot: int) -> None:
        for r in self._reporters:
            r.transfer_ended(slot)

    def result(self, result: Result, counts: Counts) -> None:
        for r in self._reporters:
            r.result(result, counts)

    def planned(self, url: str, source: str, path: str) -> None:
        for r in self._reporters:
            r.planned(url, source, path)

    def message(self, text: str) -> None:
        for r in self._reporters:
            r.message(text)

    def run_finished(self, report: Report) -> None:
        for r in self._reporters:
            r.run_finished(report)


class _FanOut:
    def __init__(self, handles: Sequence[TransferProgress]) -> None:
        self._handles = handles

    def begin(self, name: str, total: int | None, initial: int) -> None:
        for h in self._handles:
            h.begin(name, total, initial)

    def update(self, n: int) -> None:
        for h in self._handles:
            h.update(n)


def combine(*reporters: Reporter) -> Reporter:
    """One reporter that forwards every call to each of ``reporters`` in order."""
    return reporters[0] if len(reporters) == 1 else _Combined(reporters)


class ResultWriter(NullReporter):
    """Results on stdout: the path of each ok/skipped entry, or one JSON object per entry."""

    def __init__(self, stream: TextIO, *, as_json: bool = False) -> None:
        self._stream = stream
        self._json = as_json
        self._lock = threading.Lock()
        self._closed = False

    def _emit(self, line: str | None, flush: bool = True) -> None:
        """Write ``line`` (None: nothing, just flush); after a broken pipe, nothing at all."""
        with self._lock:
            if self._closed:
                return
            try:
                if line is not None:
                    self._stream.write(line + "\n")
                if flush:
                    self._stream.flush()
            except BrokenPipeError:
                # the reader went away (``| head``): downloads go on, output stops
                self._closed = True
                _silence(self._stream)

    def result(self, result: Result, counts: Counts) -> None:
        if self._json:
            self._emit(json.dumps(result.to_json(), ensure_ascii=False))
        elif result.status is not Status.FAILED and result.path is not None:
            self._emit(result.path)

    def planned(self, url: str, source: str, path: str) -> None:
        # a plan is printed in one go: no flush per line (run_finished flushes)
        if self._json:
            line = json.dumps({"url": redact(url), "source": source, "path": path})
        else:
            line = f"{redact(url)} -> {path}"
        self._emit(line, flush=False)

    def run_finished(self, report: Report) -> None:
        self._emit(None)


def _silence(stream: TextIO) -> None:
    """Point a broken stream's descriptor at /dev/null, so the exit-time flush stays quiet."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def failure_line(result: Result) -> str:
    """The stderr line for a failed entry: ``FILE:LINE: reason`` for a bad line."""
    error = redact_text(result.error or "failed", result.url)
    if result.bad_line:
        return f"{result.source}: {error}"
    return f"pdl: failed: {redact(result.url)} ({result.source}): {error}"


class StderrReporter(NullReporter):
    """Everything for a person, on stderr: failure lines, verbose notes, and optionally bars."""

    def __init__(
        self, stream: TextIO, *, verbose: bool = False, bars: bool = False, bar_factory: Any = None
    ) -> None:
        self._stream = stream
        self._verbose = verbose
        self._bars: _Bars | None = _Bars(stream, factory=bar_factory) if bars else None
        self._lock = threading.Lock()

    def _write(self, line: str) -> None:
        with self._lock:
            if self._bars is not None:
                self._bars.write(line)
            else:
                self._stream.write(line + "\n")
                self._stream.flush()

    def run_started(self, jobs: int) -> None:
        if self._bars is not None:
            self._bars.start(jobs)

    def list_read(self, total: int) -> None:
        if self._bars is not None:
            self._bars.set_total(total)

    def transfer_started(self, slot: int) -> TransferProgress:
        return self._bars.slot(slot) if self._bars is not None else NULL_PROGRESS

    def transfer_ended(self, slot: int) -> None:
        if self._bars is not None:
            self._bars.slot(slot).idle()

    def result(self, result: Result, counts: Counts) -> None:
        if result.status is Status.FAILED:
            self._write(failure_line(result))
        if self._bars is not None:
            self._bars.done(counts)

    def message(self, text: str) -> None:
        if self._verbose:
            self._write(f"pdl: {text}")

    def run_finished(self, report: Report) -> None:
        if self._bars is not None:
            self._bars.close()


def standard_reporter(
    *,
    stdout: TextIO,
    stderr: TextIO,
    json: bool = False,
    paths: bool = False,
    quiet: bool = False,
    progress: bool = False,
    verbose: bool = False,
    errors: bool = True,
) -> Reporter:
    """The reporters of the command line: results on ``stdout`` (paths or JSON lines),
    failures, notes and bars on ``stderr``; ``quiet`` leaves only failure lines."""
    reporters: list[Reporter] = []
    if json or paths:
        reporters.append(ResultWriter(stdout, as_json=json))
    if errors or progress or verbose:
        loud = not quiet
        reporters.append(StderrReporter(stderr, verbose=verbose and loud, bars=progress and loud))
    return combine(*reporters) if reporters else NullReporter()


class _Bars:
    """tqdm bars: a total bar over one bar per busy worker slot, refreshed a few times a second."""

    def __init__(
        self, stream: TextIO, *, clock: Callable[[], float] = time.monotonic, factory: Any = None
    ) -> None:
        if factory is None:
            import tqdm

            factory = tqdm.tqdm

        self._tqdm: Any = factory
        self.clock = clock
        self._stream = stream
        self._lock = threading.Lock()
        self._total: Any = None
        self._workers: dict[int, _SlotBar] = {}
        self._max_slots = 0
        self._entries_total: int | None = None

    def start(self, jobs: int) -> None:
        rows = shutil.get_terminal_size((80, 24)).lines
        # the total bar, the worker bars, and room for the prompt and a message
        self._max_slots = max(0, min(jobs, rows - 4))
        self._total = self._tqdm(
            desc="total",
            unit="iB",
            unit_scale=True,
            unit_divisor=1024,
            file=self._stream,
            position=0,
            leave=True,
            mininterval=BAR_REFRESH,
            dynamic_ncols=True,
            postfix="0 files",
        )

    def set_total(self, total: int) -> None:
        self._entries_total = total

    def slot(self, slot: int) -> _SlotBar:
        with self._lock:
            bar = self._workers.get(slot)
            if bar is None:
                handle = None
                if slot < self._max_slots:
                    handle = self._tqdm(
                        unit="iB",
                        unit_scale=True,
                        unit_divisor=1024,
                        file=self._stream,
                        position=slot + 1,
                        leave=False,
                        mininterval=BAR_REFRESH,
                        dynamic_ncols=True,
                    )
                bar = self._workers[slot] = _SlotBar(handle, self)
        return bar

    def add_bytes(self, n: int) -> None:
        with self._lock:
            if self._total is not None:
                self._total.update(n)

    def done(self, counts: Counts) -> None:
        total = f"/{self._entries_total}" if self._entries_total is not None else ""
        with self._lock:
            if self._total is not None:
                self._total.set_postfix_str(f"{counts.done}{total} files", refresh=False)

    def write(self, line: str) -> None:
        self._tqdm.write(line, file=self._stream)

    def close(self) -> None:
        with self._lock:
            for bar in self._workers.values():
                bar.close()
            if self._total is not None:
                self._total.close()


class _SlotBar:
    """One worker slot's bar; bytes are batched and flushed at most every BAR_REFRESH seconds."""

    def __init__(self, handle: Any, bars: _Bars) -> None:
        self._handle = handle
        self._bars = bars
        self._clock = bars.clock
        self._pending = 0
        self._next_flush = 0.0

    def begin(self, name: str, total: int | None, initial: int) -> None:
        self._flush()
        if self._handle is not None:
            label = name if len(name) <= 24 else name[:21] + "..."
            self._handle.reset(total=total)
            if initial:
                self._handle.update(initial)
            self._handle.set_description_str(label, refresh=False)

    def update(self, n: int) -> None:
        self._pending += n
        now = self._clock()
        if now >= self._next_flush:
            self._next_flush = now + BAR_REFRESH
            self._flush()

    def _flush(self) -> None:
        n, self._pending = self._pending, 0
        if n:
            if self._handle is not None:
                self._handle.update(n)
            self._bars.add_bytes(n)

    def idle(self) -> None:
        """The slot's transfer ended: count its last bytes and blank the bar."""
        self._flush()
        if self._handle is not None:
            self._handle.set_description_str("", refresh=False)
            self._handle.reset(total=None)

    def close(self) -> None:
        self._flush()
        if self._handle is not None:
            self._handle.close()
