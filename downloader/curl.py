"""The only module that imports pycurl: a request on an easy handle, libcurl's errors typed.

A :class:`Call` is one easy handle reused for request after request of one lane.
It turns a :class:`~downloader.effects.Fetch` into libcurl options (pdl's
headers, ``Range``/``If-Range``, TLS, the proxy for the URL, the HTTP version,
the speed watchdog), collects the head of the *final* response (the header
callback also sees the blocks of ``1xx`` interim responses, so what is collected
restarts at each status line), follows redirects itself (see
:mod:`downloader.client`), and hands the body to a sink. :func:`error_for` is the
one table from libcurl's codes to :mod:`downloader.errors`.

Measured on 2,000 files of 16 KiB (``docs/architecture.md``): an easy handle per
transfer carried by a few multi handles reaches curl's own speed, where urllib3
with a thread per download cost about 1.5 ms of CPU per file.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import certifi
import pycurl

from .client import ClientConfig, keeps_credentials, redirect_target, split_credentials
from .effects import BodySink
from .errors import ConnectionFailed, LocalFileError, TransferError
from .options import TRANSFER_HEADERS, HttpVersion
from .wire import REDIRECT_STATUSES, Headers, Response

MAX_REDIRECTS = 10
MAX_HEADER_BYTES = 64 * 1024
MAX_HEADER_FIELDS = 100
SMALL_BODY = 64 * 1024
"""An unwanted body (a redirect's, an error page) up to this size is read off, so the
connection is kept; a longer one is cut."""

_STATUS_LINE = re.compile(r"^HTTP/(\S+)[ \t]+([0-9]{3})(?:[ \t]+(.*))?$", re.ASCII)
_HTTP_VERSION = {
    HttpVersion.HTTP1_1: pycurl.CURL_HTTP_VERSION_1_1,
    HttpVersion.HTTP2: pycurl.CURL_HTTP_VERSION_2TLS,
    HttpVersion.HTTP3: pycurl.CURL_HTTP_VERSION_3,
}
_VERSION_SERVED = {
    pycurl.CURL_HTTP_VERSION_1_0: "1.0",
    pycurl.CURL_HTTP_VERSION_1_1: "1.1",
    pycurl.CURL_HTTP_VERSION_2_0: "2",
    pycurl.CURL_HTTP_VERSION_3: "3",
}
_IP_RESOLVE = {4: pycurl.IPRESOLVE_V4, 6: pycurl.IPRESOLVE_V6}
PROTOCOLS = pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS

_TLS_ERRORS = frozenset({35, 53, 54, 58, 59, 64, 66, 77, 80, 82, 83, 90, 91, 98})
_CONNECT_ERRORS = frozenset({5, 6, 7})


def error_for(code: int, message: str, *, os_errno: int = 0, where: str = "") -> TransferError:
    """libcurl's result ``code`` (with its message, and the OS error behind it) as pdl's
    typed error."""
    text = message.strip() or f"libcurl error {code}"
    if code == pycurl.E_COULDNT_CONNECT and os_errno:  # libcurl's text hides why: the OS's
        return ConnectionFailed(f"{os.strerror(os_errno).lower()} ({where})", unreachable=True)
    if code == pycurl.E_PEER_FAILED_VERIFICATION:
        return TransferError(f"TLS error: certificate verify failed ({text})", retryable=False)
    if code in _TLS_ERRORS:
        return TransferError(f"TLS error: {text}", retryable=False)
    if code in (pycurl.E_UNSUPPORTED_PROTOCOL, pycurl.E_URL_MALFORMAT):
        return TransferError(f"invalid URL: {text}", retryable=False)
    if code == pycurl.E_OPERATION_TIMEDOUT:
        return ConnectionFailed(f"timed out: {text}")
    if code in _CONNECT_ERRORS:
        return ConnectionFailed(text, unreachable=True)
    if code == pycurl.E_WRITE_ERROR:
        return LocalFileError(f"cannot write the download: {text}")
    if code == 100 or ("header" in text.lower() and "large" in text.lower()):
        return TransferError("the server's response header is too large", retryable=False)
    return ConnectionFailed(text)


def http_version_option(version: HttpVersion) -> int:
    return int(_HTTP_VERSION[version])


class Call:
    """One easy handle and the request on it now; owned by one lane thread.

    ``on_head`` is called from inside libcurl's callbacks when the head of the
    final response is complete (before any body byte); it sets :attr:`sink` (or
    leaves it None to discard the body).
    """

    def __init__(self, config: ClientConfig, on_head: Callable[[Call], None]) -> None:
        self.config = config
        self.on_head = on_head
        self.handle = h = pycurl.Curl()
        h.setopt(pycurl.NOSIGNAL, 1)
        h.setopt(pycurl.HEADERFUNCTION, self._header)
        h.setopt(pycurl.WRITEFUNCTION, self._write)
        h.setopt(pycurl.PROTOCOLS, PROTOCOLS)
        h.setopt(pycurl.FOLLOWLOCATION, 0)
        h.setopt(pycurl.HTTP_CONTENT_DECODING, 0)  # bytes as served
        h.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(config.timeout * 1000)))
        if config.speed_limit is not None:
            h.setopt(pycurl.LOW_SPEED_LIMIT, config.speed_limit)
            h.setopt(pycurl.LOW_SPEED_TIME, max(1, round(config.speed_time)))
        else:  # the idle timeout: not one byte a second for --timeout seconds
            h.setopt(pycurl.LOW_SPEED_LIMIT, 1)
            h.setopt(pycurl.LOW_SPEED_TIME, max(1, round(config.timeout)))
        h.setopt(pycurl.BUFFERSIZE, config.buffer_size)
        h.setopt(pycurl.HTTP_VERSION, _HTTP_VERSION[config.http])
        h.setopt(pycurl.TCP_KEEPALIVE, 1)
        if config.resolve:
            h.setopt(pycurl.RESOLVE, list(config.resolve))
        if config.ip_version is not None:
            h.setopt(pycurl.IPRESOLVE, _IP_RESOLVE[config.ip_version])
        if config.verify is False:
            h.setopt(pycurl.SSL_VERIFYPEER, 0)
            h.setopt(pycurl.SSL_VERIFYHOST, 0)
        else:
            h.setopt(pycurl.CAINFO, certifi.where() if config.verify is True else config.verify)
        self.sink: BodySink | None = None
        self.error: TransferError | None = None
        self.url = ""
        self.target = ""
        self.hops = 0
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.reason = ""
        self.version = ""
        self.headers = Headers()
        self.head_done = False
        self.redirect: str | None = None
        self.discarded = 0
        self._header_bytes = 0
        self._last: str | None = None
        self.sink = None
        self.error = None

    # -- requests ----------------------------------------------------------------

    def start(self, url: str, extra: tuple[tuple[str, str], ...]) -> None:
        """Set the handle up for a GET of ``url`` (its credentials as Basic auth).

        ``extra`` holds pdl's resume headers (:data:`TRANSFER_HEADERS`), which follow
        every redirect, and the entry's ``header=`` values, which, like ``-H``, are
        sent to the entry's origin only.
        """
        self.url = url
        self.extra = extra
        self.hops = 0
        self.own_origin = True
        target, credentials = split_credentials(url)
        self._request(target, credentials)

    def _request(self, target: str, credentials: str | None) -> None:
        self._reset()
        self.target = target
        h = self.handle
        h.setopt(pycurl.URL, target)
        extra = self.extra
        if not self.own_origin:  # header= is a user header: only Range/If-Range go on
            extra = tuple(h for h in extra if h[0].lower() in TRANSFER_HEADERS)
        sent = self.config.request_headers(extra, own_origin=self.own_origin)
        given = {name.lower() for name, _ in sent}
        if self.own_origin:  # --cookies and --netrc: never after a hop to another origin
            jar, netrc = self.config.cookies, self.config.netrc
            cookie = jar.header_for(target, now=time.time()) if jar is not None else None
            if cookie is not None and "cookie" not in given:  # -H 'Cookie: ...' wins
                sent.append(("Cookie", cookie))
            if credentials is None and netrc is not None:  # URL credentials win
                credentials = netrc.for_url(target)
        h.setopt(pycurl.HTTPHEADER, [f"{name}: {value}" for name, value in sent])
        if credentials is not None and "authorization" not in given:
            h.setopt(pycurl.HTTPAUTH, pycurl.HTTPAUTH_BASIC)
            h.setopt(pycurl.USERPWD, credentials)
        else:
            h.unsetopt(pycurl.USERPWD)
        h.setopt(pycurl.PROXY, self.config.routes.proxy_for(target) or "")
        # Over TLS, wait for a connection that may multiplex rather than open another;
        # over cleartext (HTTP/1.1 only) waiting would hold a transfer behind a busy one.
        multiplex = target[:6].lower() == "https:" and self.config.http is not HttpVersion.HTTP1_1
        h.setopt(pycurl.PIPEWAIT, 1 if multiplex else 0)

    def follow(self) -> None:
        """Point the handle at the pending redirect's target (TransferError if not allowed)."""
        assert self.redirect is not None
        if self.hops >= MAX_REDIRECTS:
            raise TransferError(f"too many redirects (more than {MAX_REDIRECTS})", retryable=False)
        new, credentials = redirect_target(self.target, self.redirect)
        self.hops += 1
        if not keeps_credentials(self.target, new):
            self.own_origin = False  # from here on: no user header, no URL credential
        if credentials is None and self.own_origin:
            _, credentials = split_credentials(self.url)
        self._request(new, credentials)

    # -- what came back ------------------------------------------------------------

    def response(self) -> Response:
        return Response(
            status=self.status,
            reason=self.reason,
            headers=self.headers,
            http_version=self.served_version(),
            url=self.target,
        )

    def served_version(self) -> str:
        try:
            code = self.handle.getinfo(pycurl.INFO_HTTP_VERSION)
        except pycurl.error:
            code = 0
        return _VERSION_SERVED.get(code, self.version or "1.1")

    def failure(self, code: int, message: str) -> TransferError | None:
        """Why the transfer ended with libcurl's ``code``: the sink's or callback's reason first
        (None: the sink had all it wanted and cut the rest)."""
        if self.sink is not None and self.sink.error is not None:
            return self.sink.error
        if self.sink is not None and self.sink.complete:
            return None
        if self.error is not None:
            return self.error
        try:
            os_errno = int(self.handle.getinfo(pycurl.OS_ERRNO))
        except pycurl.error:
            os_errno = 0
        where = urlsplit(self.target).netloc.rpartition("@")[2]
        return error_for(code, message, os_errno=os_errno, where=where)

    # -- libcurl's callbacks (inside perform) --------------------------------------

    def _header(self, line: bytes) -> int | None:
        self._header_bytes += len(line)
        if self._header_bytes > MAX_HEADER_BYTES or len(self.headers) > MAX_HEADER_FIELDS:
            self.error = TransferError("the server's response header is too large", retryable=False)
            return 0
        text = line.decode("latin-1").rstrip("\r\n")
        if text.startswith("HTTP/"):
            match = _STATUS_LINE.match(text)
            if match is None:
                self.error = TransferError("the server's status line is malformed", retryable=False)
                return 0
            self.version, status, reason = match.groups()
            self.status, self.reason = int(status), (reason or "").strip()
            self.headers, self._last, self.head_done = Headers(), None, False
            return None
        if not text:
            self._end_of_head()
            return None
        if text[0] in " \t" and self._last is not None:  # an obsolete folded line
            self.headers.add(self._last, text.strip())
            return None
        name, colon, value = text.partition(":")
        if colon:
            self._last = name.strip()
            self.headers.add(self._last, value.strip(" \t"))
        return None

    def _end_of_head(self) -> None:
        if self.status < 200 or self.head_done:  # 100 Continue, 103 Early Hints: not a response
            return
        self.head_done = True
        location = self.headers.get("Location")
        if self.status in REDIRECT_STATUSES and location:
            self.redirect = location
            return
        self.on_head(self)

    def _write(self, data: bytes) -> int | None:
        if not self.head_done:  # a body with no blank line after its head (HTTP/0.9-like)
            self._end_of_head()
        sink = self.sink
        if sink is None:
            self.discarded += len(data)
            return 0 if self.discarded > SMALL_BODY else None
        if sink.write(data):
            return None
        return 0

    def close(self) -> None:
        self.handle.close()


class Multi:
    """A lane's ``CurlMulti``: adds and removes calls, steps them, reports finished ones."""

    def __init__(self) -> None:
        self.multi = pycurl.CurlMulti()
        self.multi.setopt(pycurl.M_PIPELINING, pycurl.PIPE_MULTIPLEX)
        self._calls: dict[Any, Call] = {}

    def add(self, call: Call) -> None:
        self._calls[call.handle] = call
        self.multi.add_handle(call.handle)

    def remove(self, call: Call) -> None:
        if self._calls.pop(call.handle, None) is not None:
            self.multi.remove_handle(call.handle)

    def pause(self, call: Call, paused: bool) -> None:
        call.handle.pause(pycurl.PAUSE_RECV if paused else pycurl.PAUSE_CONT)

    def step(self) -> list[tuple[Call, int, str]]:
        """Let libcurl move bytes; returns the calls that ended, with code and message."""
        while True:
            ret, _ = self.multi.perform()
            if ret != pycurl.E_CALL_MULTI_PERFORM:
                break
        ended: list[tuple[Call, int, str]] = []
        while True:
            queued, ok, failed = self.multi.info_read()
            for handle in ok:
                ended.append((self._calls[handle], 0, ""))
            for handle, code, message in failed:
                ended.append((self._calls[handle], code, message))
            if not queued:
                break
        for call, _, _ in ended:
            self.remove(call)
        return ended

    def timeout(self) -> float:
        """Seconds libcurl wants to be called again at the latest (-1: no timer)."""
        ms: int = self.multi.timeout()
        return ms / 1000 if ms >= 0 else -1.0

    def fds(self) -> tuple[list[int], list[int], list[int]]:
        read, write, exc = self.multi.fdset()
        return list(read), list(write), list(exc)

    def close(self) -> None:
        for call in list(self._calls.values()):
            self.remove(call)
        self.multi.close()
