"""What a transfer asks of its lane, and what it gets back.

A transfer (:mod:`downloader.transfer`) is a generator: it yields one of these
effects and is sent the outcome, so its whole attempt logic runs without a
socket, a thread or a clock. A lane (:mod:`downloader.lanes`) carries out the
effects with libcurl.

=================  ==============================================================
effect             what the generator is sent back
=================  ==============================================================
``Fetch``          a :class:`~downloader.wire.Response` (the final head), or the
                   :class:`~downloader.errors.TransferError` that prevented one
``Body(sink)``     after a ``Response``: the body went into ``sink``; ``None`` when
                   complete, else the error that ended it
``Discard()``      after a ``Response``: the body is not wanted; ``None``
``Wait(seconds)``  ``None``, once that long has passed (or the run was cancelled)
``Gather(tasks)``  the return values of the sub-transfers, in order, once all ended
=================  ==============================================================
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, TypeVar

from .errors import TransferError


class BodySink(Protocol):
    """Where a lane writes a body; owned by the lane thread carrying the transfer."""

    error: TransferError | None
    """Set when the sink stopped the body (too long, a local write error, cancelled)."""
    pause: float
    """Seconds the transfer should be held before more bytes (``--limit-rate``); 0: none."""
    complete: bool
    """The sink has every byte it wants and stopped the rest on purpose (not an error)."""

    def write(self, data: bytes) -> bool:
        """Take ``data``; False stops the transfer (``error`` says why)."""
        ...


@dataclass(frozen=True, slots=True)
class Fetch:
    """GET ``url`` with these extra request headers (``Range``, ``If-Range``)."""

    url: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Body:
    sink: BodySink


@dataclass(frozen=True, slots=True)
class Discard:
    pass


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: float


@dataclass(frozen=True, slots=True)
class Gather:
    tasks: tuple[Generator[Any, Any, Any], ...]


Effect: TypeAlias = Fetch | Body | Discard | Wait | Gather
T = TypeVar("T")
Task: TypeAlias = Generator[Effect, Any, T]
"""A transfer or a part of one: yields effects, returns its outcome."""
