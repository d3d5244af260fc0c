"""Reporting as an interface: what the engine tells, and the reporters that show it.

The engine and transfers talk only to :class:`Reporter` and
:class:`TransferProgress`. ``ResultWriter`` owns stdout, ``StderrReporter`` owns
stderr (bars when asked, failure lines, verbose notes); ``combine`` joins them.

What a transfer goes through between its start and its result is told as typed
events (:data:`Event`): ``Starting`` (its file name, before the first byte),
``Retrying`` and ``Waiting`` (why its row is idle, and for how long), ``Resumed`` and
``Restarted``. Reporters word them: a bar row shows the wait, ``-v`` prints a line.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Protocol, TextIO

from .bars import Bars
from .results import Counts, Report, Result, Status, failure_text, redact, redact_text, shown_url


@dataclass(frozen=True, slots=True, kw_only=True)
class Starting:
    """A transfer begins in its slot: the file it is for, known before any answer."""

    url: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Retrying:
    """Retry number ``retry`` of ``of`` will start in ``delay`` seconds, because of ``reason``."""

    url: str
    retry: int
    of: int
    delay: float
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Waiting:
    """The transfer waits without a request: for ``reason`` (``"Retry-After from host"``,
    ``"a --per-host slot"``, ``"another pdl process is writing it"``), ``delay`` seconds
    when known."""

    url: str
    reason: str
    delay: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Resumed:
    """A partial is continued from byte ``offset`` (of ``total``, when known)."""

    url: str
    name: str
    offset: int
    total: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Restarted:
    """A partial was discarded and the download starts over, because of ``reason``."""

    url: str
    name: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HandedOver:
    """``url`` failed for good or past its share of the attempts (``reason``); ``to``, the
    entry's next mirror, is tried now."""

    url: str
    to: str
    reason: str


Event = Starting | Retrying | Waiting | Resumed | Restarted | HandedOver
"""What a transfer tells between its start and its result (``Reporter.event``)."""


def describe(event: Event) -> str | None:
    """The ``-v`` line of an event (without ``pdl:``); None for what only a row shows."""
    match event:
        case Retrying():
            url = shown_url(event.url)
            reason = redact_text(event.reason, event.url)
            return f"retry {event.retry}/{event.of} in {event.delay:.1f} s: {url}: {reason}"
        case Waiting():
            return f"waiting for {event.reason}: {shown_url(event.url)}"
        case Resumed():
            of = f" of {event.total}" if event.total is not None else ""
            return f"resuming {event.name} from byte {event.offset}{of}"
        case Restarted():
            return f"{event.reason}; restarting {event.name}"
        case HandedOver():
            reason = redact_text(event.reason, event.url)
            return f"{shown_url(event.url)}: {reason}; trying mirror {shown_url(event.to)}"
        case _:
            return None


class TransferProgress(Protocol):
    """Progress of the transfer running in one worker slot."""

    def begin(self, name: str, total: int | None, initial: int) -> None: ...
    def update(self, n: int) -> None: ...


class Reporter(Protocol):
    """What a run tells the outside world, in order: started, (transfers, results)*, finished."""

    def run_started(self, jobs: int) -> None: ...
    def list_counted(self, total: int) -> None:
        """The entries of the list, counted quickly at the start (``counting.py``); may be
        a little off (duplicates): ``list_read`` has the last word."""

    def list_progress(self, read: int) -> None:
        """``read`` entries of the list are known so far (for a list whose size is not)."""

    def list_read(self, total: int) -> None: ...
    def transfer_started(self, slot: int) -> TransferProgress: ...
    def event(self, slot: int, event: Event) -> None:
        """What the transfer in ``slot`` goes through (see :data:`Event`)."""

    def transfer_ended(self, slot: int) -> None: ...
    def result(self, result: Result, counts: Counts) -> None: ...
    def planned(self, url: str, source: str, path: str) -> None: ...
    def message(self, text: str) -> None: ...
    def warning(self, text: str) -> None:
        """A problem of the input that is not an entry's (a bad manifest line): always shown."""

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

    def list_counted(self, total: int) -> None:
        pass

    def list_progress(self, read: int) -> None:
        pass

    def list_read(self, total: int) -> None:
        pass

    def transfer_started(self, slot: int) -> TransferProgress:
        return NULL_PROGRESS

    def event(self, slot: int, event: Event) -> None:
        pass

    def transfer_ended(self, slot: int) -> None:
        pass

    def result(self, result: Result, counts: Counts) -> None:
        pass

    def planned(self, url: str, source: str, path: str) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def warning(self, text: str) -> None:
        pass

    def run_finished(self, report: Report) -> None:
        pass


class _Combined:
    def __init__(self, reporters: Sequence[Reporter]) -> None:
        self._reporters = tuple(reporters)

    def run_started(self, jobs: int) -> None:
        for r in self._reporters:
            r.run_started(jobs)

    def list_counted(self, total: int) -> None:
        for r in self._reporters:
            r.list_counted(total)

    def list_progress(self, read: int) -> None:
        for r in self._reporters:
            r.list_progress(read)

    def list_read(self, total: int) -> None:
        for r in self._reporters:
            r.list_read(total)

    def transfer_started(self, slot: int) -> TransferProgress:
        handles = [r.transfer_started(slot) for r in self._reporters]
        handles = [h for h in handles if h is not NULL_PROGRESS]
        return handles[0] if len(handles) == 1 else _FanOut(handles) if handles else NULL_PROGRESS

    def event(self, slot: int, event: Event) -> None:
        for r in self._reporters:
            r.event(slot, event)

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

    def warning(self, text: str) -> None:
        for r in self._reporters:
            r.warning(text)

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

    def __init__(
        self,
        stream: TextIO,
        *,
        as_json: bool = False,
        around: Callable[[], AbstractContextManager[None]] = nullcontext,
    ) -> None:
        self._stream = stream
        self._json = as_json
        self._around = around  # bars on the same terminal step aside for each line
        self._lock = threading.Lock()
        self._closed = False

    def _emit(self, line: str | None, flush: bool = True) -> None:
        """Write ``line`` (None: nothing, just flush); after a broken pipe, nothing at all."""
        with self._lock, self._around():
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
        elif result.status in (Status.OK, Status.SKIPPED) and result.path is not None:
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
    """The stderr line for a failed entry; ``pdl: FILE:LINE: reason`` for a bad line."""
    if result.bad_line:
        return f"pdl: {failure_text(result)}"
    return f"pdl: failed: {failure_text(result)}"


class StderrReporter(NullReporter):
    """Everything for a person, on stderr: failure lines, verbose notes, and optionally bars."""

    def __init__(self, stream: TextIO, *, verbose: bool = False, bars: bool | Bars = False) -> None:
        self._stream = stream
        self._verbose = verbose
        self.bars: Bars | None = Bars(stream) if bars is True else bars or None
        self._lock = threading.Lock()

    def _write(self, line: str) -> None:
        with self._lock:
            if self.bars is not None:
                self.bars.write(line)
            else:
                self._stream.write(line + "\n")
                self._stream.flush()

    def run_started(self, jobs: int) -> None:
        if self.bars is not None:
            self.bars.start(jobs)

    def list_counted(self, total: int) -> None:
        if self.bars is not None:
            self.bars.set_counted(total)

    def list_progress(self, read: int) -> None:
        if self.bars is not None:
            self.bars.set_read(read)

    def list_read(self, total: int) -> None:
        if self.bars is not None:
            self.bars.set_total(total)

    def transfer_started(self, slot: int) -> TransferProgress:
        return self.bars.busy(slot) if self.bars is not None else NULL_PROGRESS

    def event(self, slot: int, event: Event) -> None:
        if self.bars is not None:
            _show_on_row(self.bars, slot, event)
        line = describe(event) if self._verbose else None
        if line is not None:
            self._write(f"pdl: {line}")

    def transfer_ended(self, slot: int) -> None:
        if self.bars is not None:
            self.bars.idle(slot)

    def result(self, result: Result, counts: Counts) -> None:
        if result.status is Status.FAILED:
            self._write(failure_line(result))
        if self.bars is not None:
            self.bars.set_done(counts.done, counts.failed)

    def message(self, text: str) -> None:
        if self._verbose:
            self._write(f"pdl: {text}")

    def warning(self, text: str) -> None:
        self._write(f"pdl: {text}")

    def run_finished(self, report: Report) -> None:
        if self.bars is not None:
            self.bars.set_done(report.counts.done, report.counts.failed)  # the final word
            self.bars.close()


def _show_on_row(bars: Bars, slot: int, event: Event) -> None:
    """A bar row tells what its transfer waits for: the file's name from the start, then
    ``retry 2/5 in 4 s: connection refused`` (counting down) until bytes flow again."""
    match event:
        case Starting():
            bars.name(slot, event.name)
        case Retrying():
            why = redact_text(event.reason, event.url)
            bars.wait(slot, f"retry {event.retry}/{event.of} in", event.delay, f": {why}")
        case Waiting():
            bars.wait(slot, "waiting", event.delay, f": {event.reason}")
        case Restarted():
            bars.wait(slot, "restarting", None, f": {event.reason}")
        case HandedOver():
            bars.wait(slot, "trying a mirror", None, f": {redact_text(event.reason, event.url)}")
        case _:
            pass


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
    loud = not quiet
    bars = Bars(stderr) if progress and loud else None
    if json or paths:
        # results on the terminal that shows the bars are printed above them
        around = bars.above if bars is not None and _isatty(stdout) else nullcontext
        reporters.append(ResultWriter(stdout, as_json=json, around=around))
    if errors or progress or verbose:
        reporters.append(StderrReporter(stderr, verbose=verbose and loud, bars=bars or False))
    return combine(*reporters) if reporters else NullReporter()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
