"""Cancellation that also wakes transfers blocked on a silent socket."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any


def _socket_of(raw: Any) -> socket.socket | None:
    """The socket under a urllib3 response, if it can be found."""
    conn = getattr(raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    if isinstance(sock, socket.socket):
        return sock
    fp = getattr(getattr(raw, "_fp", None), "fp", None)
    sock = getattr(getattr(fp, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


class CancelToken:
    """A run's stop signal: ``cancel()`` sets it and shuts the sockets being read.

    A worker blocked in ``recv`` on a stalled server would otherwise notice the
    cancel only after the idle timeout; shutting its socket wakes it at once.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds; True (at once) if cancelled meanwhile."""
        return self._event.wait(timeout)

    def cancel(self) -> None:
        self._event.set()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    @contextlib.contextmanager
    def watching(self, raw: Any) -> Iterator[None]:
        """While inside, a ``cancel()`` shuts down the socket of the response ``raw``."""
        sock = _socket_of(raw)
        if sock is None:
            yield
            return
        with self._lock:
            self._sockets.add(sock)
        try:
            if self._event.is_set():
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            yield
        finally:
            with self._lock:
                self._sockets.discard(sock)
