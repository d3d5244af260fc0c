"""One body into a ``.part``: written at its offset, bounded, hashed, counted, rate-held.

The one way bytes reach a partial, for a whole-file transfer and for each
segment of a split one (``-s``). A sink is owned by the lane thread carrying its
transfer; the :class:`~downloader.ratelimit.TokenBucket` it draws on is shared
(and locked) across lanes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Protocol

from .cancel import CancelToken
from .errors import Cancelled, TransferError
from .progress import TransferProgress
from .ratelimit import TokenBucket
from .storage import local_error


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


class BodyTooLong(TransferError):
    """A body ran past the length the server announced; its end cannot be trusted."""

    retryable = False


class Sink:
    """Writes a body at ``position`` onwards, never past ``end`` (when known)."""

    def __init__(
        self,
        fd: int,
        *,
        name: str,
        position: int,
        end: int | None,
        cancel: CancelToken,
        progress: TransferProgress,
        limiter: TokenBucket | None = None,
        hasher: Hasher | None = None,
        counted: Callable[[int], None] | None = None,
        cut_at_end: bool = False,
    ) -> None:
        self.fd = fd
        self.name = name
        self.position = position
        self.end = end
        self.cancel = cancel
        self.progress = progress
        self.limiter = limiter
        self.hasher = hasher
        self.counted = counted
        self.written = 0
        self.cut_at_end = cut_at_end
        """Bytes past ``end`` are not an error but the rest of a longer body (a segment's)."""
        self.error: TransferError | None = None
        self.pause = 0.0
        self.complete = False

    def write(self, data: bytes) -> bool:
        if self.cancel.is_set():
            self.error = Cancelled("interrupted")
            return False
        over = False
        if self.end is not None and self.position + len(data) > self.end:
            data, over = data[: max(0, self.end - self.position)], True
        try:
            self._put(data)
        except TransferError as exc:  # raised inside libcurl's callback: kept, not thrown
            self.error = exc
            return False
        if over and self.cut_at_end:
            self.complete = True
            return False
        if over:
            self.error = BodyTooLong(f"the server sent more than the {self.end} bytes it announced")
            return False
        if self.limiter is not None:
            self.pause = self.limiter.consume(len(data))
        return True

    def _put(self, data: bytes) -> None:
        view, at = memoryview(data), self.position
        try:
            while view:
                n = os.pwrite(self.fd, view, at)
                view, at = view[n:], at + n
        except OSError as exc:
            raise local_error(exc, f"writing {self.name}.part") from None
        n = len(data)
        self.position += n
        self.written += n
        if self.hasher is not None:
            self.hasher.update(data)
        if self.counted is not None:
            self.counted(n)
        self.progress.update(n)
