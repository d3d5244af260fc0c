"""Progress bars on a terminal: one total bar over one row per busy worker.

Workers only add to counters (``SlotBar.update`` is two additions); the screen
is painted every ``BAR_REFRESH`` seconds by one painter thread (as tqdm's
monitor does), so a stalled download still shows its rate falling, and no
worker ever waits for the terminal.
A paint rewrites the whole region in one ``write``: the cursor rests on the
first row of the region, so a line printed above the bars (``above``) clears
the region, prints, and paints it again below; nothing is left to scroll away.
The lines are formatted by tqdm's ``format_meter``.
"""

from __future__ import annotations

import math
import os
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple, TextIO

BAR_REFRESH = 0.25
"""Seconds between paints: four a second at most."""
ROOM = 4
"""Terminal rows left free below the bars' limit: the prompt and a message line."""
RATE_WINDOW = 5.0
"""Seconds of history behind the total rate (and so the ETA)."""
ETA_AFTER = 1.0
"""Seconds into a run before an ETA is shown: before that the rate says little."""
CLEAR_LINE = "\x1b[K"
CLEAR_BELOW = "\x1b[J"


class Size(NamedTuple):
    columns: int
    lines: int


def terminal_size(stream: TextIO) -> Size:
    """The size of the terminal behind ``stream``; ``COLUMNS``/``LINES`` win; else 80x24."""
    try:
        columns, lines = os.get_terminal_size(stream.fileno())
    except (AttributeError, ValueError, OSError):
        columns, lines = 80, 24
    env_columns, env_lines = os.environ.get("COLUMNS", ""), os.environ.get("LINES", "")
    columns = int(env_columns) if env_columns.isdigit() else columns
    lines = int(env_lines) if env_lines.isdigit() else lines
    return Size(columns or 80, lines or 24)


def layout(jobs: int, lines: int) -> tuple[int, bool]:
    """Worker rows shown for ``jobs`` workers on a ``lines``-row terminal, and whether a
    "+N more" row is needed: the total bar, the rows and that line stay ``ROOM`` short."""
    room = max(0, lines - ROOM)
    if jobs <= room:
        return jobs, False
    return max(0, room - 1), room >= 1


def _interval(seconds: float) -> str:
    from tqdm import tqdm

    return str(tqdm.format_interval(seconds))


def _cells(text: str) -> int:
    from tqdm.utils import disp_len  # tqdm is imported only when bars are drawn

    return int(disp_len(text))


def _trim(text: str, width: int) -> str:
    from tqdm.utils import disp_trim

    return str(disp_trim(text, width))


def cut_name(name: str, width: int, ellipsis: str = "…") -> str:
    """``name`` in at most ``width`` terminal cells, keeping its end (the extension)."""
    name = "".join(c if unicodedata.category(c)[0] != "C" else "?" for c in name)
    if _cells(name) <= width:
        return name + " " * (width - _cells(name))
    tail = max(0, min(8, width // 3))
    head_width = width - tail - len(ellipsis)
    head = _trim(name, max(0, head_width))
    tail_text = name[-tail:] if tail else ""
    text = head + ellipsis + tail_text
    return text + " " * max(0, width - _cells(text))


def format_size(n: float) -> str:
    """``n`` bytes in three significant digits: ``512B``, ``1.18MiB``, ``20.5GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 999.5 or unit == "TiB":
            break
        n /= 1024
    if unit == "B":
        return f"{n:.0f}B"
    return (
        f"{n:.2f}{unit}"
        if abs(n) < 9.995
        else f"{n:.1f}{unit}"
        if abs(n) < 99.95
        else f"{n:.0f}{unit}"
    )


class Note(NamedTuple):
    """What a waiting row says: ``before``, the seconds left until ``until``, ``after``."""

    before: str
    until: float | None
    after: str

    def text(self, now: float) -> str:
        if self.until is None:
            return self.before + self.after
        return f"{self.before} {max(0, math.ceil(self.until - now - 1e-9))} s{self.after}"


class Estimate(NamedTuple):
    fraction: float
    """Of the run's bytes (as far as they can be told), how much has been received."""
    eta: float | None
    """Seconds left, or None when that cannot be told well enough."""


def estimate(
    *,
    entries: int,
    done: int,
    finished_bytes: int,
    running: list[tuple[int, int | None]],
    rate: float,
    elapsed: float,
    slowest: float = 0.0,
) -> Estimate | None:
    """How far a run of ``entries`` is, by bytes: ``done`` entries have ended (their
    transfers had ``finished_bytes``), ``running`` transfers have (received, size or
    None). An entry not started yet is expected to be as large as the entries seen so
    far on average (skipped and failed ones count as 0 bytes, as they will again). The
    run cannot end before its ``slowest`` running transfer does (seconds, at its own
    rate), however fast the total was a moment ago. None when no byte size is known at
    all; no ETA before ``ETA_AFTER`` s or without a rate."""
    sized = [(got, size) for got, size in running if size is not None]
    seen = done + len(sized)
    seen_bytes = finished_bytes + sum(size for _, size in sized)
    if seen == 0 or seen_bytes <= 0:
        return None
    per_entry = seen_bytes / seen
    unstarted = max(0, entries - done - len(running))
    remaining = float(sum(max(0, size - got) for got, size in sized))
    remaining += sum(max(0.0, per_entry - got) for got, size in running if size is None)
    remaining += unstarted * per_entry
    have = finished_bytes + sum(got for got, _ in running)
    fraction = have / (have + remaining) if have + remaining > 0 else 1.0
    eta = None
    if remaining <= 0 and done >= entries:
        eta = 0.0
    elif rate > 0 and elapsed >= ETA_AFTER:
        eta = max(remaining / rate, slowest)
    return Estimate(fraction, eta)


class SlotBar:
    """One worker slot: the file it is on and its bytes. Written by its worker only."""

    __slots__ = (
        "_bars",
        "base",
        "began",
        "busy",
        "done",
        "moved",
        "name",
        "note",
        "size",
        "started",
    )

    def __init__(self, bars: Bars) -> None:
        self._bars = bars
        self.busy = False
        self.began = False  # bytes of this transfer's answer are flowing (or have)
        self.name = ""
        self.size: int | None = None
        self.done = 0
        self.base = 0
        self.started = 0.0
        self.moved = 0  # every byte this slot ever received: the total bar adds these up
        self.note: Note | None = None  # why the row waits, instead of its bytes

    def begin(self, name: str, total: int | None, initial: int) -> None:
        self.name = name
        self.size = total
        self.done = self.base = initial
        self.started = self._bars.clock()
        self.began = True
        self.note = None

    def update(self, n: int) -> None:
        self.done += n
        self.moved += n


class Bars:
    """The bar region of one run on ``stream`` (a terminal)."""

    def __init__(
        self,
        stream: TextIO,
        *,
        clock: Callable[[], float] = time.monotonic,
        size: Callable[[], Size] | None = None,
        painter: bool = True,
    ) -> None:
        from tqdm import tqdm

        self._meter = tqdm.format_meter
        self._stream = stream
        self.clock = clock
        self._size = size or (lambda: terminal_size(stream))
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
        self._ascii = encoding not in ("utf8", "utf16", "utf32")
        self._lock = threading.Lock()
        self._slots: dict[int, SlotBar] = {}
        self._rows: list[SlotBar | None] = []
        self._more_row = False
        self._busy = 0
        self._started = clock()
        self._samples: deque[tuple[float, int]] = deque()
        self._entries: int | None = None  # the exact total, once the list is read
        self._counted: int | None = None  # the quick count at the start
        self._read = 0  # entries known so far, on a list of unknown size
        self._finished_bytes = 0  # bytes of the transfers that have ended
        self._done = 0
        self._failed = 0
        self._last: list[str] = []  # the lines of the last paint
        self._closed = False
        self._final = False  # the last paint shows the whole run's average rate
        self.next_paint = 0.0
        self.paints = 0
        self._stop = threading.Event()
        self._painter = threading.Thread(target=self._paint_loop, name="bars", daemon=True)
        self._use_painter = painter

    def _paint_loop(self) -> None:
        while not self._stop.wait(BAR_REFRESH):
            self.paint()

    # -- what the reporter tells ---------------------------------------------------------

    def start(self, jobs: int) -> None:
        rows, more = layout(jobs, self._size().lines)
        with self._lock:
            self._started = self.clock()
            self._rows = [None] * rows
            self._more_row = more
        self.paint(force=True)
        if self._use_painter:
            self._painter.start()

    def set_total(self, entries: int) -> None:
        self._entries = entries

    def set_counted(self, entries: int) -> None:
        """The quick count of the list, known early; ``set_total`` has the last word."""
        self._counted = entries

    def set_read(self, entries: int) -> None:
        self._read = max(self._read, entries)

    def name(self, slot: int, name: str) -> None:
        """``slot``'s transfer is for ``name``: its row shows it before the first byte."""
        bar = self.slot(slot)
        if not bar.began:
            bar.name = name

    def wait(self, slot: int, before: str, delay: float | None, after: str) -> None:
        """``slot``'s row says why it waits (``before`` N s ``after``) until bytes flow again."""
        until = self.clock() + delay if delay is not None else None
        self.slot(slot).note = Note(before, until, after)

    def set_done(self, done: int, failed: int) -> None:
        """Counts as of one result; workers report out of order, so they only go up."""
        with self._lock:
            self._done, self._failed = max(self._done, done), max(self._failed, failed)

    def slot(self, slot: int) -> SlotBar:
        bar = self._slots.get(slot)
        if bar is None:
            with self._lock:
                bar = self._slots.setdefault(slot, SlotBar(self))
        return bar

    def busy(self, slot: int) -> SlotBar:
        """``slot`` starts a transfer: it takes a free row, or counts among "+N more"."""
        bar = self.slot(slot)
        with self._lock:
            bar.busy = True
            bar.name, bar.size, bar.done, bar.base = "", None, 0, 0
            bar.began, bar.note = False, None
            bar.started = self.clock()
            self._busy += 1
            if None in self._rows:
                self._rows[self._rows.index(None)] = bar
        return bar

    def idle(self, slot: int) -> None:
        """``slot``'s transfer ended: its row goes to a waiting busy slot, or is blanked."""
        bar = self.slot(slot)
        with self._lock:
            bar.busy = False
            self._busy -= 1
            if bar.began:
                self._finished_bytes += max(bar.done, bar.size or 0)
            if bar in self._rows:
                row = self._rows.index(bar)
                shown = set(map(id, self._rows))
                waiting = (b for b in self._slots.values() if b.busy and id(b) not in shown)
                self._rows[row] = next(waiting, None)

    # -- the screen -------------------------------------------------------------------------

    def paint(self, *, force: bool = False) -> None:
        """Paint the region now (``force``), or when the interval since the last is over."""
        with self._lock:
            now = self.clock()
            if self._closed or (not force and now < self.next_paint - 0.01):
                return
            self.next_paint = now + BAR_REFRESH
            self._last = self._lines(now)
            self._draw(self._last)

    @contextmanager
    def above(self) -> Iterator[None]:
        """Print something above the bars: the region is cleared, then painted again below."""
        with self._lock:
            if not self._closed:
                self._stream.write("\r" + CLEAR_BELOW)
                self._stream.flush()
            yield
            if self._closed:
                return
            now = self.clock()
            if now >= self.next_paint:
                self.next_paint = now + BAR_REFRESH
                self._last = self._lines(now)
            self._draw(self._last)  # between paints, the same lines again: no formatting

    def write(self, line: str) -> None:
        with self.above():
            self._stream.write(line + "\n")

    def close(self) -> None:
        """Leave the total bar, final, with the cursor below it."""
        self._stop.set()
        if self._painter.is_alive():
            self._painter.join()
        with self._lock:
            if self._closed:
                return
            self._final = True
            self._draw(self._lines(self.clock())[:1])
            self._stream.write("\n")
            self._stream.flush()
            self._closed = True

    def _draw(self, lines: list[str]) -> None:
        up = f"\x1b[{len(lines) - 1}A" if len(lines) > 1 else ""
        text = "\r" + "\n".join(line + CLEAR_LINE for line in lines) + CLEAR_BELOW + up + "\r"
        self._stream.write(text)
        self._stream.flush()
        self.paints += 1

    def _lines(self, now: float) -> list[str]:
        width = max(20, self._size().columns - 1)  # the last column would wrap on some terminals
        lines = [self._total_line(now, width)]
        lines += [self._slot_line(bar, now, width) if bar else "" for bar in self._rows]
        while len(lines) > 1 and not lines[-1]:
            lines.pop()
        hidden = self._busy - sum(1 for bar in self._rows if bar is not None)
        if self._more_row and hidden > 0:
            lines += [""] * (len(self._rows) + 1 - len(lines))
            lines.append(f"  +{hidden} more")
        return lines

    def _total_bytes_rate(self, now: float) -> tuple[int, float]:
        moved = sum(bar.moved for bar in list(self._slots.values()))
        samples = self._samples
        samples.append((now, moved))
        while len(samples) > 2 and now - samples[0][0] > RATE_WINDOW:
            samples.popleft()
        then, before = samples[0]
        if now - then < BAR_REFRESH or self._final:  # the run's average
            then, before = self._started, 0
        return moved, (moved - before) / (now - then) if now > then else 0.0

    def _known_total(self) -> int | None:
        total = self._entries if self._entries is not None else self._counted
        return None if total is None else max(total, self._done)

    def _estimate(self, total: int, now: float, rate: float) -> Estimate | None:
        bars = [bar for bar in list(self._slots.values()) if bar.busy and bar.began]
        running = [
            (bar.done, bar.size if bar.size is not None and bar.size >= bar.done else None)
            for bar in bars
        ]
        slowest = 0.0
        for bar in bars:
            own = (bar.done - bar.base) / max(1e-9, now - bar.started)
            if bar.size is not None and bar.size > bar.done and own > 0 and now - bar.started > 1:
                slowest = max(slowest, (bar.size - bar.done) / own)
        return estimate(
            entries=total,
            done=self._done,
            finished_bytes=self._finished_bytes,
            running=running,
            rate=rate,
            elapsed=now - self._started,
            slowest=slowest,
        )

    def _total_line(self, now: float, width: int) -> str:
        moved, rate = self._total_bytes_rate(now)
        elapsed = max(0.0, now - self._started)
        data = f"{format_size(moved)} {format_size(rate)}/s"
        failed = f", {self._failed} failed" if self._failed else ""
        total = self._known_total()
        fields: dict[str, str] = {"data": data, "failed": failed, "files": ""}
        if total is None:
            known = max(self._read, self._done)
            so_far = f", {known} known so far" if known > self._done else ""
            fmt = "{desc} {n_fmt} files{failed}" + so_far + " [{elapsed}] {data}"
            n, of = self._done, None
        else:
            fields["files"] = f"{self._done}/{total}"
            fmt = "{desc} {percentage:3.0f}%|{bar}| {files} files{failed} {data}"
            guess = self._estimate(total, now, rate)
            fraction = guess.fraction if guess is not None else self._done / max(1, total)
            if self._done >= total:
                fraction = 1.0
            n, of = round(fraction * 10_000), 10_000
            if self._final:
                fmt += " in {elapsed}"
            elif guess is not None and guess.eta is not None:
                fields["eta"] = _interval(guess.eta)
                fmt += " ETA {eta}"
        line = self._meter(
            n,
            of,
            elapsed,
            ncols=width,
            prefix="total",
            ascii=self._ascii,
            bar_format=fmt,
            **fields,
        )
        return _trim(line, width)

    def _slot_line(self, bar: SlotBar, now: float, width: int) -> str:
        name_width = max(8, min(40, width - 46))
        ellipsis = "~" if self._ascii else "…"
        name = cut_name(bar.name or ellipsis, name_width, ellipsis)
        note = bar.note
        if note is not None or not bar.began:  # waiting, or connecting
            return _trim(f"  {name} {note.text(now) if note else 'starting'}", width)
        elapsed = max(1e-9, now - bar.started)
        size = bar.size if bar.size is not None and bar.size >= bar.done else None
        rate = (bar.done - bar.base) / elapsed
        data = f"{format_size(bar.done)}/{format_size(size)}" if size is not None else ""
        data = f"{data or format_size(bar.done)} {format_size(rate)}/s"
        fmt = "  {desc} {data}"
        if size is not None and width - name_width >= 46:
            fmt = "  {desc} {percentage:3.0f}%|{bar}| {data}"
        line = self._meter(
            bar.done,
            size,
            elapsed,
            ncols=width,
            prefix=name,
            ascii=self._ascii,
            bar_format=fmt,
            data=data,
        )
        return _trim(line, width)
