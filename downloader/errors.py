"""The typed errors of pdl.

Below :mod:`downloader.transfer` failures are these exceptions; from ``transfer``
up, a failed download is a :class:`~downloader.results.Result` whose ``error`` is
the message of one of them.
"""

from __future__ import annotations


class PdlError(Exception):
    """Base of every error pdl raises on purpose."""


class UsageError(PdlError, ValueError):
    """A bad option value or argument (exit status 2 on the command line)."""


class BadLine(PdlError):
    """A line of a URL list that cannot be used; ``source`` is ``FILE:LINE``."""

    def __init__(self, source: str, reason: str, text: str = "") -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason
        self.text = text


class TransferError(PdlError):
    """One attempt of a download failed; ``retryable`` says if another may succeed."""

    retryable: bool = False

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class ConnectionFailed(TransferError):
    """Connection refused, reset, or timed out; worth retrying."""

    retryable = True

    def __init__(self, message: str, *, unreachable: bool = False) -> None:
        super().__init__(message)
        self.unreachable = unreachable
        """No connection could be made at all (refused, no route, the name does not resolve)."""


class HTTPStatusError(TransferError):
    """The server answered with an error status."""

    RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})

    def __init__(self, status: int, reason: str = "", retry_after: float | None = None) -> None:
        text = f"HTTP {status}" + (f" {reason}" if reason else "")
        super().__init__(text, retryable=status in self.RETRYABLE)
        self.status = status
        self.retry_after = retry_after


class ShortBody(TransferError):
    """The body ended before the announced length; the partial is kept for resume."""

    retryable = True


class ChecksumMismatch(TransferError):
    """The finished bytes do not match the entry's checksum; the partial is discarded."""

    retryable = True


class RangeMismatch(TransferError):
    """The server did not confirm the version or offset of a resumed partial."""

    retryable = True


class LocalFileError(TransferError):
    """The destination cannot be written (permissions, disk full, a folder in the way)."""

    retryable = False


class PartBusy(LocalFileError):
    """Another process holds the lock on the ``.part``: it is downloading the same file."""


class Cancelled(TransferError):
    """The run was interrupted (Ctrl-C or SIGTERM); the partial is kept for resume."""

    retryable = False
