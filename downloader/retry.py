"""Retry policy as frozen values: what is worth retrying, and how long to wait first."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from .errors import HTTPStatusError, RangeMismatch, TransferError

BACKOFF_CAP = 60.0
"""No computed back-off is longer than this (seconds)."""

RETRY_AFTER_CAP = 300.0
"""A server's ``Retry-After`` is honoured up to this many seconds."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """``retries`` after the first attempt; exponential back-off from ``wait`` with jitter."""

    retries: int = 5
    wait: float = 1.0
    cap: float = BACKOFF_CAP
    retry_after_cap: float = RETRY_AFTER_CAP

    def backoff(self, retry_number: int, rand: Callable[[], float] = random.random) -> float:
        """Delay before retry ``retry_number`` (1-based): ``wait * 2**(n-1)``, capped, jittered.

        The jitter keeps the delay in ``[d/2, d]`` ("equal jitter"), so retries of
        many workers spread out but never come sooner than half the nominal delay.
        """
        nominal = min(self.cap, self.wait * 2 ** max(0, retry_number - 1))
        return float(nominal / 2 + rand() * nominal / 2)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryState:
    """Attempts made and the last error of one download; ``increment`` returns a new state."""

    policy: RetryPolicy
    attempts: int = 0
    error: TransferError | None = None

    def increment(self, error: TransferError) -> RetryState:
        return replace(self, attempts=self.attempts + 1, error=error)

    @property
    def exhausted(self) -> bool:
        """No retry is left, or the last error is not worth one."""
        if self.error is None:
            return False
        return not self.error.retryable or self.attempts > self.policy.retries

    def delay(self, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before the next attempt; the server's ``Retry-After`` wins."""
        error = self.error
        if isinstance(error, HTTPStatusError) and error.retry_after is not None:
            return min(error.retry_after, self.policy.retry_after_cap)
        if isinstance(error, RangeMismatch):
            return 0.0  # the partial is gone; start over at once, nothing to wait for
        return self.policy.backoff(self.attempts, rand)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` (delta-seconds or an HTTP date) as seconds from ``now``, or None.

    Total: a value that is neither (a date in the year 10^20, a huge or odd number)
    is no hint at all, None, never an exception; the caller's back-off applies.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)  # a huge number is inf: the caller's cap applies
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    try:
        return max(0.0, (when - now).total_seconds())
    except OverflowError:
        return None
