"""HTTP details that need no connection: ``Content-Range``, validators, and the one
translation of ``urllib3``/socket failures into :mod:`downloader.errors`."""

from __future__ import annotations

import contextlib
import http.client
import re
from collections.abc import Callable, Iterator, Mapping
from typing import NamedTuple

import urllib3.exceptions as u3

from .errors import ConnectionFailed, TransferError


class ContentRange(NamedTuple):
    start: int | None
    end: int | None
    total: int | None


_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)\s*/\s*(\d+|\*)\s*$", re.IGNORECASE)


def parse_content_range(value: str | None) -> ContentRange | None:
    """``"bytes 100-199/1000"`` -> (100, 199, 1000); ``"bytes */1000"`` -> (None, None, 1000)."""
    if not value:
        return None
    match = _CONTENT_RANGE.match(value)
    if not match:
        return None
    start, end, total = match.groups()
    parsed = ContentRange(
        int(start) if start else None,
        int(end) if end else None,
        int(total) if total != "*" else None,
    )
    if parsed.start is not None and parsed.end is not None and parsed.end < parsed.start:
        return None
    return parsed


def validator_of(headers: Mapping[str, str]) -> str | None:
    """The strong validator for ``If-Range``: a strong ETag, else Last-Modified."""
    etag = headers.get("ETag")
    if etag and not etag.startswith("W/"):
        return etag
    return headers.get("Last-Modified")


@contextlib.contextmanager
def translated(where: Callable[[], str]) -> Iterator[None]:
    """Turn library and OS exceptions into :class:`TransferError` (the one place it happens).

    ``where`` tells, when called at failure time, how far the transfer had got.
    """
    try:
        yield
    except TransferError:
        raise
    except u3.SSLError as exc:
        raise TransferError(f"TLS error: {short_reason(exc)}", retryable=False) from None
    except u3.LocationParseError as exc:
        raise TransferError(f"invalid URL: {short_reason(exc)}") from None
    except u3.NewConnectionError as exc:  # a subclass of ConnectTimeoutError, but not a timeout
        raise ConnectionFailed(f"{short_reason(exc)} ({where()})") from None
    except (u3.TimeoutError, TimeoutError):
        raise ConnectionFailed(f"timed out {where()}") from None
    except (u3.HTTPError, http.client.HTTPException, OSError) as exc:
        raise ConnectionFailed(f"{short_reason(exc)} ({where()})") from None


def short_reason(exc: BaseException) -> str:
    """The innermost reason of a urllib3 error, without pool and errno noise."""
    reason: BaseException = exc
    for _ in range(8):
        inner = getattr(reason, "reason", None)
        if not isinstance(inner, BaseException) and reason.args:
            inner = reason.args[0]
        if not isinstance(inner, BaseException) or inner is reason:
            break
        reason = inner
    text = str(reason)
    text = re.sub(r"^<?[\w.]*Connection(?:Pool)?\b[^:]*?: ", "", text)
    text = re.sub(r"\[Errno -?\d+\] ", "", text)
    return text if len(text) < 200 else text[:197] + "..."
