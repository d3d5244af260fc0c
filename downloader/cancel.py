"""A run's stop signal (Ctrl-C, SIGTERM, or the API caller's ``cancel=``)."""

from __future__ import annotations

import threading


class CancelToken:
    """Set once with :meth:`cancel`; lanes look at it at least every quarter second and
    end their transfers at once, so no socket has to be shut from outside."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True (at once) if cancelled meanwhile."""
        return self._event.wait(timeout)

    def cancel(self) -> None:
        self._event.set()
