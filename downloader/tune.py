"""``pdl tune``: download a sample of the list once per ``-j`` level and recommend one.

The measuring runs the ordinary :func:`downloader.api.fetch` into a temporary
folder that is removed after each level (and at the end, whatever happens).
Choosing levels, the recommendation, the table and the chart are pure.

Each level is measured at its steady rate (docs/tune.md): the bytes and files
received while the pool is full, from the start until fewer entries are left than
the level has jobs. The level is stopped there, since its tail (the largest file
finishing alone) would only make a high level look slow, or after ``LEVEL_WINDOW``
seconds, so the whole sweep takes a time that is known before it starts.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .api import fetch
from .cancel import CancelToken
from .errors import BadLine
from .progress import Event, NullReporter, Reporter, TransferProgress, combine
from .results import Counts, Report, Result, Status
from .urllist import Entry, Item

DEFAULT_LEVELS = (1, 2, 4, 8, 16, 32)
DEFAULT_SAMPLE = 64
"""Twice the largest default level: every level runs full for at least two rounds,
so -j 32 is measured busy rather than as the tail of a short list."""
WITHIN = 0.10
"""The recommendation is the smallest level within this fraction of the best."""
LEVEL_WINDOW = 10.0
"""Seconds a level may run at most; its rate is what it had reached by then."""
MIN_WINDOW = 0.5
"""Seconds: a shorter window with the pool full is not trusted; the whole level counts."""
STOP_GRACE = 2.0
"""Seconds a stopped level may take to end its running transfers."""
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    entries: tuple[Entry, ...]
    bad_lines: int
    listed: int

    @property
    def hosts(self) -> int:
        return len({(urlsplit(e.url).hostname or "", urlsplit(e.url).port) for e in self.entries})


def take_sample(items: Iterable[Item], size: int, *, seed: int = 0) -> Sample:
    """``size`` entries picked evenly from the whole list (reservoir sampling, seeded so a
    re-run measures the same files); a list sorted by host or size is not misjudged by
    its first lines. Bad lines are left out and counted."""
    rng = random.Random(seed)
    chosen: list[Entry] = []
    bad = seen = 0
    for item in items:
        if isinstance(item, BadLine):
            bad += 1
            continue
        seen += 1
        if len(chosen) < size:
            chosen.append(item)
        else:
            j = rng.randrange(seen)
            if j < size:
                chosen[j] = item
    return Sample(entries=tuple(chosen), bad_lines=bad, listed=seen)


@dataclass(frozen=True, slots=True)
class Skipped:
    jobs: int
    reason: str


def allowed_levels(
    levels: Sequence[int], *, sample: int, hosts: int, per_host: int | None = None
) -> tuple[list[int], list[Skipped]]:
    """The levels worth running, in ascending order, and the ones left out with why.

    With ``per_host``, no level runs above ``per_host x hosts`` (more workers would only
    wait for a connection); no level runs above the sample size (it could not be busier
    than that). If that leaves nothing, the highest allowed level runs instead.
    """
    cap = sample if per_host is None else min(sample, per_host * max(1, hosts))
    cap = max(1, cap)
    kept: list[int] = []
    skipped: list[Skipped] = []
    for jobs in sorted(set(levels)):
        if per_host is not None and jobs > per_host * max(1, hosts):
            why = f"above --per-host {per_host} x {hosts} host{'s' * (hosts != 1)}"
            skipped.append(Skipped(jobs, why))
        elif jobs > sample:
            skipped.append(Skipped(jobs, f"above the sample of {sample} files"))
        else:
            kept.append(jobs)
    if not kept:
        kept.append(cap)
    return kept, skipped


@dataclass(frozen=True, slots=True, kw_only=True)
class Level:
    """One measured level."""

    jobs: int
    files: int
    bytes: int
    errors: int
    elapsed: float

    @property
    def files_per_s(self) -> float:
        return self.files / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def mib_per_s(self) -> float:
        return self.bytes / MIB / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def speed(self) -> float:
        """What is compared: bytes a second, or files a second when no bytes moved."""
        return self.mib_per_s if self.bytes else self.files_per_s


@dataclass(frozen=True, slots=True)
class Recommendation:
    jobs: int
    reason: str


def recommend(levels: Sequence[Level]) -> Recommendation | None:
    """The smallest level within ``WITHIN`` of the best; levels without errors first."""
    clean = [lv for lv in levels if lv.errors == 0 and lv.files]
    pool = clean or [lv for lv in levels if lv.files]
    if not pool:
        return None
    best = max(pool, key=lambda lv: (lv.speed, -lv.jobs))
    if best.speed <= 0:
        return None
    pick = min((lv for lv in pool if lv.speed >= (1 - WITHIN) * best.speed), key=lambda lv: lv.jobs)
    unit = "MiB/s" if best.bytes else "files/s"
    if pick is best:
        reason = f"the fastest level, at {best.speed:.1f} {unit}"
        if any(lv.jobs > best.jobs for lv in pool):
            reason += "; more jobs did not help"
    else:
        share = pick.speed / best.speed
        reason = (
            f"{share:.0%} of the best ({best.speed:.1f} {unit} at -j {best.jobs}) "
            f"with {best.jobs - pick.jobs} fewer connections"
        )
    if clean and len(clean) < len([lv for lv in levels if lv.files]):
        reason += "; levels with errors were not considered"
    return Recommendation(pick.jobs, reason)


class _Bytes:
    """One transfer's received bytes (written by its own worker thread only)."""

    __slots__ = ("_meter", "received")

    def __init__(self, meter: Meter) -> None:
        self._meter = meter
        self.received = 0

    def begin(self, name: str, total: int | None, initial: int) -> None:
        self._meter.began()

    def update(self, n: int) -> None:
        self.received += n


class Meter(NullReporter):
    """Measures one level while its pool is full, and stops it when the tail begins.

    The window opens when ``jobs`` transfers have had an answer (the ramp-up, every
    connection being opened at once, is left out) and closes when fewer entries are
    left than ``jobs``.

    Shared by the level's worker threads: ``result`` and ``transfer_started`` take the
    lock; each transfer adds to its own counter, summed under the lock.
    """

    def __init__(
        self,
        *,
        entries: int,
        jobs: int,
        stop: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries, self._jobs, self._stop, self._clock = entries, jobs, stop, clock
        self._lock = threading.Lock()
        self._counters: list[_Bytes] = []
        self._ok = self._done = self._errors = self._begun = 0
        self._started = clock()
        self._opened: tuple[float, int, int] | None = None  # (time, bytes, ok) when full
        self.measured: Level | None = None  # the steady window, once it has closed
        self.stopped = False  # the level was told to stop: what ends from now on was cut

    def transfer_started(self, slot: int) -> TransferProgress:
        counter = _Bytes(self)
        with self._lock:
            self._counters.append(counter)
        return counter

    def result(self, result: Result, counts: Counts) -> None:
        with self._lock:
            if self.measured is not None:
                return  # the tail, or stopped by the window: not measured
            self._done += 1
            self._ok += result.status is Status.OK
            self._errors += result.status is Status.FAILED
            if self._entries - self._done < self._jobs and self._done < self._entries:
                self._close()  # fewer entries left than jobs: the pool cannot stay full
                self.stopped = True
                self._stop()

    def began(self) -> None:
        """One more transfer has its answer; with ``jobs`` of them the pool is full."""
        with self._lock:
            self._begun += 1
            if self._begun == self._jobs and self._opened is None and self.measured is None:
                received = sum(c.received for c in self._counters)
                self._opened = (self._clock(), received, self._ok)

    def _close(self) -> None:
        now, received = self._clock(), sum(c.received for c in self._counters)
        since, before, ok = self._opened or (self._started, 0, 0)
        if now - since < max(MIN_WINDOW, 0.1 * (now - self._started)):  # too short to trust
            since, before, ok = self._started, 0, 0
        self.measured = Level(
            jobs=self._jobs,
            files=self._ok - ok,
            bytes=received - before,
            errors=self._errors,
            elapsed=now - since,
        )

    def time_is_up(self) -> None:
        """The level's window is over: measure what it reached, and stop it."""
        with self._lock:
            if self.measured is None:
                self._close()
            self.stopped = True
        self._stop()

    def level(self) -> Level:
        """The steady window if it closed; else everything up to now (the window ran out,
        or the sample ended with the pool full)."""
        with self._lock:
            if self.measured is None:
                self._close()
            assert self.measured is not None
            return self.measured


class _Shown(NullReporter):
    """A level's reporter as the user sees it: the meter first, then ``shown``, except
    that an entry cut short by the level's stop is shown as interrupted, not failed
    (the engine may report it as failed: it only knows it was cancelled)."""

    def __init__(self, meter: Meter, shown: Reporter) -> None:
        self._meter, self._shown, self._cut = meter, shown, 0
        self._lock = threading.Lock()

    def run_started(self, jobs: int) -> None:
        self._shown.run_started(jobs)

    def list_counted(self, total: int) -> None:
        self._shown.list_counted(total)

    def list_progress(self, read: int) -> None:
        self._shown.list_progress(read)

    def list_read(self, total: int) -> None:
        self._shown.list_read(total)

    def transfer_started(self, slot: int) -> TransferProgress:
        return combine(self._meter, self._shown).transfer_started(slot)

    def event(self, slot: int, event: Event) -> None:
        self._shown.event(slot, event)

    def transfer_ended(self, slot: int) -> None:
        self._shown.transfer_ended(slot)

    def result(self, result: Result, counts: Counts) -> None:
        self._meter.result(result, counts)
        with self._lock:
            if self._meter.stopped and result.status is Status.FAILED:
                self._cut += 1
                result = dataclasses.replace(result, status=Status.INTERRUPTED, error=None)
            cut = self._cut
        counts = dataclasses.replace(
            counts, failed=counts.failed - cut, interrupted=counts.interrupted + cut
        )
        self._shown.result(result, counts)

    def message(self, text: str) -> None:
        self._shown.message(text)

    def run_finished(self, report: Report) -> None:
        with self._lock:
            cut = self._cut
        c = report.counts
        counts = dataclasses.replace(c, failed=c.failed - cut, interrupted=c.interrupted + cut)
        self._shown.run_finished(dataclasses.replace(report, counts=counts))


def plan_line(sample: int, listed: int, levels: Sequence[int]) -> str:
    """What ``tune`` will do, and how long it takes at most, said before it starts."""
    most = len(levels) * (LEVEL_WINDOW + STOP_GRACE)
    took = f"{most:.0f} s" if most < 120 else f"{most / 60:.0f} min"
    return (
        f"pdl tune: {sample} of {listed} entries, once per level "
        f"(-j {','.join(map(str, levels))}): {sample * len(levels)} downloads, "
        f"at most {LEVEL_WINDOW:.0f} s a level ({took} in all)"
    )


def sweep(
    sample: Sample,
    levels: Sequence[int],
    *,
    fetch_options: Mapping[str, Any],
    reporter_for: Callable[[int], Reporter],
    tmp_dir: str | None = None,
    window: float = LEVEL_WINDOW,
) -> Iterator[Level]:
    """Download ``sample`` once per level into a temporary folder; yields each level's
    steady measurement (see the module docstring). A level runs ``window`` s at most.

    The folder is removed after each level, and at the end whatever happens (an error,
    Ctrl-C, or the caller not reading on).
    """
    root = Path(tempfile.mkdtemp(prefix="pdl-tune-", dir=tmp_dir))
    try:
        for jobs in levels:
            dest = root / f"j{jobs}"
            cancel = CancelToken()
            stopped = threading.Event()  # by the meter or the window, not by the user

            def stop(cancel: CancelToken = cancel, stopped: threading.Event = stopped) -> None:
                stopped.set()
                cancel.cancel()

            meter = Meter(entries=len(sample.entries), jobs=jobs, stop=stop)
            timer = threading.Timer(window, meter.time_is_up)
            timer.daemon = True
            shown = reporter_for(jobs)
            shown.list_counted(len(sample.entries))
            timer.start()
            try:
                report = fetch(
                    sample.entries,
                    dest=dest,
                    jobs=jobs,
                    on_exist="overwrite",
                    resume=False,
                    reporter=_Shown(meter, shown),
                    cancel=cancel,
                    keep_results=False,
                    **fetch_options,
                )
            finally:
                timer.cancel()
            shutil.rmtree(dest, ignore_errors=True)
            if report.interrupted and not stopped.is_set():
                raise KeyboardInterrupt
            yield meter.level()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def table_lines(levels: Sequence[Level]) -> list[str]:
    lines = [f"{'jobs':>5} {'files/s':>9} {'MiB/s':>9} {'errors':>7}"]
    for lv in levels:
        lines.append(f"{lv.jobs:>5} {lv.files_per_s:>9.1f} {lv.mib_per_s:>9.2f} {lv.errors:>7}")
    return lines


def chart_lines(levels: Sequence[Level], width: int = 80, *, ascii: bool = False) -> list[str]:
    """A horizontal bar per level, the fastest filling the width."""
    if not levels:
        return []
    unit = "MiB/s" if any(lv.bytes for lv in levels) else "files/s"
    best = max(lv.speed for lv in levels) or 1.0
    room = max(10, width - 20)
    full, parts = ("#", " ") if ascii else ("█", " ▏▎▍▌▋▊▉")
    lines = [f"throughput ({unit}) by -j"]
    for lv in levels:
        eighths = round(lv.speed / best * room * 8)
        bar = full * (eighths // 8)
        if eighths % 8 and not ascii:
            bar += parts[eighths % 8]
        lines.append(f"{lv.jobs:>5} {bar:<{room}} {lv.speed:>8.2f}".rstrip())
    return lines
