"""Politeness across workers: the total byte rate, and per-host slots and back-off.

Both are shared by every worker thread, so each keeps its small state behind its
own lock, and both only compute how long to wait: the caller waits with
``cancel.wait`` so that Ctrl-C is never held up by a limit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

Clock = Callable[[], float]


class TokenBucket:
    """The total download rate of a run, ``rate`` bytes a second across all workers.

    A virtual-time bucket (GCRA): each ``consume(n)`` moves the moment the bucket
    is next empty ``n / rate`` seconds on and returns how long the caller must wait
    for its bytes to be "paid". Up to ``burst`` seconds of credit carry over an idle
    spell, so the average over any long window stays within a burst of ``rate``.
    """

    def __init__(self, rate: float, *, burst: float = 0.25, clock: Clock = time.monotonic):
        if rate <= 0:
            raise ValueError("rate must be > 0")
        self.rate = float(rate)
        self.burst = burst
        self._clock = clock
        self._lock = threading.Lock()
        self._paid_until = clock() - burst

    def consume(self, n: int) -> float:
        """Account for ``n`` bytes just read; returns the seconds to wait before reading on."""
        with self._lock:
            now = self._clock()
            self._paid_until = max(self._paid_until, now - self.burst) + n / self.rate
            return max(0.0, self._paid_until - now)

    def chunk_size(self, default: int) -> int:
        """A read size that keeps the flow smooth: about a tenth of a second of the rate."""
        return max(4096, min(default, int(self.rate / 10)))


def host_of(url: str) -> str:
    """The ``host:port`` key a URL counts against (lower-cased)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return f"{host}:{parts.port}" if parts.port else host


GIVE_UP_AFTER = 3
"""Connections to a host that fail in a row (refused, unresolvable) before it is given up,
as wget2 does: its other entries then fail at once with that reason."""


class HostGate:
    """Per host: at most ``per_host`` transfers at a time, and a hold after ``Retry-After``.

    ``hold(host, seconds)`` is called when a server answers 429/503 with
    ``Retry-After``; until then ``delay(host)`` tells every worker that is about to
    send a request to that host how long to wait, so one answer holds back all of
    them, not only the request that got it.
    """

    def __init__(self, per_host: int | None, *, clock: Clock = time.monotonic) -> None:
        if per_host is not None and per_host < 1:
            raise ValueError("per_host must be >= 1")
        self.per_host = per_host
        self._clock = clock
        self._lock = threading.Condition()
        self._busy: dict[str, int] = {}
        self._held_until: dict[str, float] = {}
        self._refused: dict[str, int] = {}  # connections that failed in a row, per host
        self._given_up: dict[str, str] = {}

    def unreachable(self, host: str, reason: str) -> None:
        """No connection to ``host`` could be made; after a few in a row it is given up."""
        with self._lock:
            count = self._refused.get(host, 0) + 1
            self._refused[host] = count
            if count >= GIVE_UP_AFTER and host not in self._given_up:
                self._given_up[host] = (
                    f"{reason} (gave up on {host} after {count} failed connections)"
                )

    def reachable(self, host: str) -> None:
        """``host`` answered: its count of failed connections starts again."""
        if host in self._refused:
            with self._lock:
                self._refused.pop(host, None)

    def given_up(self, host: str) -> str | None:
        """Why ``host`` is given up for the rest of the run, or None."""
        return self._given_up.get(host)

    def hold(self, host: str, seconds: float) -> None:
        with self._lock:
            until = self._clock() + seconds
            if until > self._held_until.get(host, 0.0):
                self._held_until[host] = until

    def delay(self, host: str) -> float:
        """Seconds until requests to ``host`` may go out again (0: now)."""
        with self._lock:
            until = self._held_until.get(host)
            if until is None:
                return 0.0
            left = until - self._clock()
            if left <= 0:
                del self._held_until[host]
                return 0.0
            return left

    def busy(self, host: str) -> int:
        with self._lock:
            return self._busy.get(host, 0)

    @contextmanager
    def slot(self, host: str, cancelled: Callable[[], bool]) -> Iterator[bool]:
        """Hold one of ``host``'s slots while inside; yields False if the run was cancelled.

        A waiting worker is woken whenever a slot is freed, and checks
        ``cancelled()`` at least every 0.1 s.
        """
        if self.per_host is None:
            yield True
            return
        if not self._acquire(host, self.per_host, cancelled):
            yield False
            return
        try:
            yield True
        finally:
            self.give_back(host, 1)

    def try_more(self, host: str, wanted: int) -> int:
        """Take up to ``wanted`` more slots of ``host`` that are free now; returns how many."""
        with self._lock:
            busy = self._busy.get(host, 0)
            got = wanted if self.per_host is None else max(0, min(wanted, self.per_host - busy))
            if got and self.per_host is not None:
                self._busy[host] = busy + got
            return got

    def give_back(self, host: str, count: int) -> None:
        """Return ``count`` slots taken with :meth:`try_more`."""
        if self.per_host is None or count == 0:
            return
        with self._lock:
            left = self._busy[host] - count
            if left:
                self._busy[host] = left
            else:
                del self._busy[host]
            self._lock.notify_all()

    def _acquire(self, host: str, limit: int, cancelled: Callable[[], bool]) -> bool:
        with self._lock:
            while self._busy.get(host, 0) >= limit:
                if cancelled():
                    return False
                self._lock.wait(0.1)
            self._busy[host] = self._busy.get(host, 0) + 1
            return True
