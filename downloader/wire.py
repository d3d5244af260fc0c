"""HTTP details that need no connection: ``Content-Range``, validators, and the one
translation of ``requests``/``urllib3``/socket failures into :mod:`downloader.errors`."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from typing import NamedTuple

import requests
import urllib3.exceptions

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


def validator_of(headers: requests.structures.CaseInsensitiveDict[str]) -> str | None:
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
    except requests.exceptions.SSLError as exc:
        raise TransferError(f"TLS error: {short_reason(exc)}", retryable=False) from None
    except requests.exceptions.TooManyRedirects:
        raise TransferError("too many redirects (more than 10)", retryable=False) from None
    except (requests.exceptions.InvalidSchema, requests.exceptions.MissingSchema) as exc:
        raise TransferError(f"redirect to a URL pdl cannot fetch: {short_reason(exc)}") from None
    except requests.exceptions.InvalidURL as exc:
        raise TransferError(f"invalid URL: {short_reason(exc)}") from None
    except (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError):
        raise ConnectionFailed(f"timed out {where()}") from None
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        raise ConnectionFailed(f"{short_reason(exc)} ({where()})") from None


def short_reason(exc: BaseException) -> str:
    """The innermost reason of a requests/urllib3 error, without pool and errno noise."""
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
