"""A threaded, fault-injecting HTTP/1.1 test server built on the standard library only.

Usage::

    with FaultServer() as srv:
        srv.add("/a.bin", b"data")
        srv.add_faults("/a.bin", Fault.truncate(2), Fault.status(503, retry_after="1"))
        url = srv.url("/a.bin")
        ...

Routing ignores the query string (``/a.bin?x=1`` is served by the ``/a.bin`` route); a request
path is matched as received first and, failing that, percent-decoded.

Request headers are recorded as a plain ``dict`` with **lower-cased** keys (repeated headers are
joined with ``", "``); the original order and spelling are kept in ``raw_headers``.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import re
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import TCPServer
from types import TracebackType
from typing import Any, Final, Literal, TypeAlias

try:  # Linux: bytes in the send queue not yet acknowledged by the peer.
    import termios

    _TIOCOUTQ: int | None = getattr(termios, "TIOCOUTQ", None)
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX
    _TIOCOUTQ = None

__all__ = [
    "AUTO",
    "Fault",
    "FaultKind",
    "FaultServer",
    "RecordedRequest",
    "auto_etag",
    "self_signed_cert",
    "tls_context",
    "wait_until",
]

_WRITE_BLOCK: Final = 64 * 1024
_CHUNK_SIZE: Final = 8 * 1024
_JUNK_BYTE: Final = b"J"


class _Auto(enum.Enum):
    AUTO = "AUTO"

    def __repr__(self) -> str:
        return "AUTO"


AUTO: Final = _Auto.AUTO
"""Sentinel: derive a strong ETag from the body (see :func:`auto_etag`)."""


def auto_etag(body: bytes) -> str:
    """The ETag ``FaultServer`` uses for ``etag=AUTO``: a strong tag from sha256 of *body*."""
    return '"' + hashlib.sha256(body).hexdigest()[:16] + '"'


def self_signed_cert(where: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key (PEM files in *where*), made by ``openssl``."""
    key, crt = where / "key.pem", where / "cert.pem"
    args = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", str(key)]
    args += ["-out", str(crt), "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(["openssl", *args], check=True, capture_output=True)
    return crt, key


def tls_context(crt: Path, key: Path) -> ssl.SSLContext:
    """A server-side context for ``FaultServer(tls=...)``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(crt, key)
    return context


def wait_until(
    predicate: Callable[[], object],
    timeout: float = 5.0,
    interval: float = 0.01,
    message: str = "",
) -> None:
    """Poll *predicate* until it is truthy; raise ``AssertionError`` after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", repr(predicate))
            raise AssertionError(f"condition not met within {timeout:g}s: {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------

FaultKind: TypeAlias = Literal[
    "status",
    "truncate",
    "reset",
    "stall",
    "ignore_range",
    "ignore_if_range",
    "wrong_content_range",
    "extra_bytes",
    "drop",
    "huge_headers",
]


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour; build with the class-method constructors."""

    kind: FaultKind
    after: int = 0
    code: int = 0
    retry_after: str | None = None
    body: bytes = b""
    shift: int = 0
    extra: int = 0

    @classmethod
    def status(cls, code: int, retry_after: str | None = None, body: bytes = b"") -> Fault:
        """Answer *code* (plus ``Retry-After`` if given) with *body*; keep-alive is kept."""
        return cls("status", code=code, retry_after=retry_after, body=body)

    @classmethod
    def truncate(cls, after: int) -> Fault:
        """Full headers, only *after* body bytes, then a clean close (FIN)."""
        return cls("truncate", after=_non_negative("after", after))

    @classmethod
    def reset(cls, after: int) -> Fault:
        """Full headers, *after* body bytes, then an abortive close (RST)."""
        return cls("reset", after=_non_negative("after", after))

    @classmethod
    def stall(cls, after: int) -> Fault:
        """Full headers, *after* body bytes, then silence until released/stopped, then close."""
        return cls("stall", after=_non_negative("after", after))

    @classmethod
    def ignore_range(cls) -> Fault:
        """Answer 200 with the full body even if the request has a Range."""
        return cls("ignore_range")

    @classmethod
    def ignore_if_range(cls) -> Fault:
        """Honour Range even when If-Range no longer matches (a broken cache or server)."""
        return cls("ignore_if_range")

    @classmethod
    def wrong_content_range(cls, shift: int) -> Fault:
        """Answer 206 whose Content-Range (and body) start *shift* bytes off the asked start."""
        return cls("wrong_content_range", shift=shift)

    @classmethod
    def extra_bytes(cls, n: int) -> Fault:
        """Declare the real Content-Length but write *n* junk bytes after the body, then close."""
        return cls("extra_bytes", extra=_non_negative("n", n))

    @classmethod
    def huge_headers(cls, size: int, lines: int = 1) -> Fault:
        """Send about *size* bytes of extra response headers, over *lines* header lines."""
        return cls("huge_headers", extra=_non_negative("size", size), shift=max(1, lines))

    @classmethod
    def drop(cls) -> Fault:
        """Close the connection right after reading the request, without any response."""
        return cls("drop")


def _non_negative(name: str, value: int) -> int:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


# --------------------------------------------------------------------------------------------
# Routes and records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _File:
    body: bytes
    etag: str | None
    last_modified: str | None
    headers: tuple[tuple[str, str], ...]
    ranges: bool
    delay: float
    chunked: bool
    rate: float = 0.0
    pace: float = 0.0


@dataclass(frozen=True)
class _Redirect:
    location: str
    status: int


_Route: TypeAlias = "_File | _Redirect"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it (recorded before it was answered).

    ``headers`` has lower-cased keys, e.g. ``req.headers.get("range")``; use :meth:`header` for a
    case-insensitive lookup with any spelling.  ``path`` is the route key the request matched
    (query string removed); ``target`` is the request-target exactly as sent.
    """

    method: str
    path: str
    headers: dict[str, str]
    fault: str | None
    target: str = ""
    raw_headers: tuple[tuple[str, str], ...] = ()
    fault_detail: Fault | None = None
    conn_id: int = 0
    request_version: str = ""
    at: float = field(default_factory=time.monotonic)
    """When the request arrived (``time.monotonic()``)."""

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


_RangeResult: TypeAlias = "tuple[int, int] | Literal['unsatisfiable'] | None"

_RANGE_RE: Final = re.compile(r"bytes[ \t]*=[ \t]*(\d*)[ \t]*-[ \t]*(\d*)[ \t]*")


def _parse_range(value: str, size: int) -> _RangeResult:
    """Single byte range -> inclusive (start, end); 'unsatisfiable'; or None (ignore Range)."""
    m = _RANGE_RE.fullmatch(value.strip())
    if m is None:  # malformed, other unit, or a multi-range (contains ',')
        return None
    first, last = m.group(1), m.group(2)
    if not first and not last:
        return None
    if not first:  # suffix range: bytes=-K
        suffix = int(last)
        if suffix == 0 or size == 0:
            return "unsatisfiable"
        return (max(0, size - suffix), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid -> ignored
    if start >= size:
        return "unsatisfiable"
    return (start, min(end, size - 1))


def _if_range_matches(if_range: str, route: _File) -> bool:
    value = if_range.strip()
    if route.etag is not None and value == route.etag and not value.startswith("W/"):
        return True
    return route.last_modified is not None and value == route.last_modified


# --------------------------------------------------------------------------------------------
# The socketserver layer
# --------------------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # we join handler threads ourselves, with a deadline

    def __init__(self, owner: FaultServer, tls: ssl.SSLContext | None = None) -> None:
        self.owner = owner
        self.tls = tls
        self.conn_lock = threading.Lock()
        self.conns: dict[socket.socket, int] = {}
        self.threads: set[threading.Thread] = set()
        self.next_conn_id = 0
        self.connections_opened = 0
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        if self.tls is not None:  # the handshake happens in the handler thread, at first read
            conn = self.tls.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, addr

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), i.e. a reverse DNS lookup; skip it.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.conn_lock:
            if self.owner.stopping:
                self.shutdown_request(request)
                return
            self.next_conn_id += 1
            self.connections_opened += 1
            self.conns[request] = self.next_conn_id
            t = threading.Thread(
                target=self.process_request_thread,
                args=(request, client_address),
                name=f"FaultServer-{self.server_port}-conn-{self.next_conn_id}",
                daemon=True,
            )
            self.threads.add(t)
        t.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.conn_lock:
                self.threads.discard(threading.current_thread())

    def conn_id(self, request: socket.socket) -> int:
        with self.conn_lock:
            return self.conns.get(request, 0)

    def forget(self, request: socket.socket) -> None:
        with self.conn_lock:
            self.conns.pop(request, None)

    def shutdown_request(self, request: Any) -> None:
        # Untrack under the lock before closing, so stop() never shuts down a recycled fd.
        self.forget(request)
        super().shutdown_request(request)

    def shutdown_all_connections(self) -> None:
        with self.conn_lock:
            for conn in self.conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # BrokenPipe, ConnectionReset, sockets shut down by stop()
            return
        if self.owner.stopping and isinstance(exc, ValueError):  # I/O on a file closed by stop()
            return
        if exc is not None:
            self.owner.record_error(exc)
        traceback.print_exc(file=sys.stderr)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms stalls
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- dispatch ------------------------------------------------------------------------------

    def do_GET(self) -> None:
        with self.server.owner.serving():
            self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def _other_method(self) -> None:
        length = self.headers.get("Content-Length", "0").strip()
        if length.isdigit() and int(length) > 0:
            self.rfile.read(int(length))
        self._serve(head=False, allowed=False)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _other_method

    # -- main logic ----------------------------------------------------------------------------

    def _serve(self, *, head: bool, allowed: bool = True) -> None:
        owner = self.server.owner
        key, route, fault = owner.take(self.path)
        raw_headers = tuple((k, v) for k, v in self.headers.items())
        lowered: dict[str, str] = {}
        for k, v in raw_headers:
            lk = k.lower()
            lowered[lk] = f"{lowered[lk]}, {v}" if lk in lowered else v
        owner.record(
            RecordedRequest(
                method=self.command,
                path=key,
                headers=lowered,
                fault=fault.kind if fault else None,
                target=self.path,
                raw_headers=raw_headers,
                fault_detail=fault,
                conn_id=self.server.conn_id(self.connection),
                request_version=self.request_version,
            )
        )

        if isinstance(route, _File) and route.delay > 0 and owner.sleep(route.delay):
            self.close_connection = True  # stopped while delaying
            return

        if fault is not None and fault.kind == "drop":
            self.close_connection = True
            return
        if fault is not None and fault.kind == "status":
            self._send_simple(fault.code, fault.body, head, {"Retry-After": fault.retry_after})
            return
        if not allowed:
            self._send_simple(405, b"method not allowed\n", head, {"Allow": "GET, HEAD"})
            return
        if route is None:
            self._send_simple(404, b"not found\n", head, {})
        elif isinstance(route, _Redirect):
            self._send_simple(route.status, b"", head, {"Location": route.location})
        else:
            self._send_file(key, route, head, fault)
        if fault is not None and fault.kind in ("truncate", "reset", "stall"):
            self._after_partial(fault)  # header-only answers (HEAD, 404, ...) still get cut

    def _send_simple(
        self, code: int, body: bytes, head: bool, extra: Mapping[str, str | None]
    ) -> None:
        self.send_response(code)
        no_body = code < 200 or code in (204, 304)
        for name, value in extra.items():
            if value is not None:
                self.send_header(name, value)
        if not no_body:
            if body:
                self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and not no_body and body:
            self.wfile.write(body)

    def _send_file(self, key: str, route: _File, head: bool, fault: Fault | None) -> None:
        kind = fault.kind if fault else None
        body = route.body
        size = len(body)
        rng: _RangeResult = None
        range_header = self.headers.get("Range")
        if route.ranges and range_header is not None and kind != "ignore_range":
            if_range = self.headers.get("If-Range")
            if if_range is None or kind == "ignore_if_range" or _if_range_matches(if_range, route):
                rng = _parse_range(range_header, size)

        status = 200
        content_range: str | None = None
        payload = body
        if kind == "wrong_content_range" and fault is not None and size > 0:
            start, end = rng if isinstance(rng, tuple) else (0, size - 1)
            wrong = min(max(start + fault.shift, 0), size - 1)
            wrong_end = min(wrong + (end - start), size - 1)
            status, payload = 206, body[wrong : wrong_end + 1]
            content_range = f"bytes {wrong}-{wrong_end}/{size}"
        elif rng == "unsatisfiable":
            status, payload = 416, b""
            content_range = f"bytes */{size}"
        elif isinstance(rng, tuple):
            start, end = rng
            status, payload = 206, body[start : end + 1]
            content_range = f"bytes {start}-{end}/{size}"

        chunked = route.chunked and status != 416
        headers: dict[str, tuple[str, str]] = {}

        def put(name: str, value: str) -> None:
            headers[name.lower()] = (name, value)

        put("Content-Type", "application/octet-stream")
        if chunked:
            put("Transfer-Encoding", "chunked")
        else:
            put("Content-Length", str(len(payload)))
        if content_range is not None:
            put("Content-Range", content_range)
        if route.ranges:
            put("Accept-Ranges", "bytes")
        if route.etag is not None:
            put("ETag", route.etag)
        if route.last_modified is not None:
            put("Last-Modified", route.last_modified)
        for name, value in route.headers:
            put(name, value)
        if kind == "huge_headers" and fault is not None:
            for i in range(fault.shift):
                put(f"X-Junk-{i}", "j" * (fault.extra // fault.shift))

        self.send_response(status)
        for name, value in headers.values():
            self.send_header(name, value)
        self.end_headers()
        if head:
            return

        limit = fault.after if kind in ("truncate", "reset", "stall") and fault else None
        complete = self._write_payload(key, payload, chunked, limit, route.pace, route.rate)
        if kind == "extra_bytes" and fault is not None and complete:
            self._write_counted(key, _JUNK_BYTE * fault.extra)
            self.close_connection = True

    def _write_counted(self, key: str, data: bytes) -> None:
        # Count first so that a client that has received the bytes always sees them counted;
        # undo if the write fails (then the count is a lower bound for that response).
        owner = self.server.owner
        owner.count_bytes(key, len(data))
        try:
            self.wfile.write(data)
        except BaseException:
            owner.count_bytes(key, -len(data))
            raise

    def _write_payload(
        self,
        key: str,
        payload: bytes,
        chunked: bool,
        limit: int | None,
        pace: float = 0.0,
        rate: float = 0.0,
    ) -> bool:
        """Write the body (framed if *chunked*), at most *limit* payload bytes.

        With *pace*, wait that many seconds after each block (a slow server). With
        *rate*, the body is paced to that many bytes a second, in small writes.

        Returns True if the whole payload (and chunked terminator) was written.
        """
        allowance = len(payload) if limit is None else min(limit, len(payload))
        block = _CHUNK_SIZE if chunked else _WRITE_BLOCK
        if rate > 0:
            block = max(1, min(block, int(rate / 20)))  # about 20 writes a second
        started = time.monotonic()
        pos = 0
        while pos < allowance:
            ahead = pos / rate - (time.monotonic() - started) if rate > 0 else 0.0
            if ahead > 0:
                self.wfile.flush()
                if self.server.owner.sleep(ahead):
                    return False  # stopping
            piece = payload[pos : pos + block]
            part = piece[: allowance - pos]
            if chunked:
                self.wfile.write(f"{len(piece):x}\r\n".encode("ascii"))
            self._write_counted(key, part)
            pos += len(part)
            if chunked and len(part) == len(piece):
                self.wfile.write(b"\r\n")
            if pace and pos < allowance:
                self.wfile.flush()
                if self.server.owner.sleep(pace):
                    return False
        if allowance < len(payload):
            return False
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        return True

    def _after_partial(self, fault: Fault) -> None:
        self.close_connection = True
        if fault.kind == "stall":
            self.server.owner.stall()
        elif fault.kind == "reset":
            self._abort_connection()
        # truncate: the normal close path sends FIN.

    def _abort_connection(self) -> None:
        conn: socket.socket = self.connection
        self._wait_send_queue_drained(conn)
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.server.forget(conn)
        self.rfile.close()  # drop the makefile() reference so close() really closes the fd
        conn.close()  # SO_LINGER(1, 0) -> RST instead of FIN

    def _wait_send_queue_drained(self, conn: socket.socket, timeout: float = 2.0) -> None:
        """Wait until the peer has acknowledged what we sent: an RST discards unsent data."""
        if _TIOCOUTQ is None:
            return
        deadline = time.monotonic() + timeout
        buf = bytearray(4)
        while time.monotonic() < deadline:
            try:
                fcntl.ioctl(conn.fileno(), _TIOCOUTQ, buf)
            except (OSError, ValueError):
                return
            if int.from_bytes(buf, sys.byteorder, signed=True) <= 0:
                return
            if self.server.owner.sleep(0.001):
                return


# --------------------------------------------------------------------------------------------
# Public server
# --------------------------------------------------------------------------------------------


@dataclass
class _State:
    routes: dict[str, _Route] = field(default_factory=dict)
    faults: dict[str, deque[Fault]] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    bytes_sent: dict[str, int] = field(default_factory=dict)
    stalls: set[threading.Event] = field(default_factory=set)
    errors: list[BaseException] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0


class FaultServer:
    """Threaded HTTP/1.1 server on 127.0.0.1:<ephemeral>, started on construction.

    With ``tls`` (a server-side :class:`ssl.SSLContext`) it speaks HTTPS instead.
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._lock = threading.Lock()
        self._state = _State()
        self._policy: Callable[[str], Fault | None] | None = None
        self._stop_event = threading.Event()
        self._stopped = False
        self.scheme = "https" if tls is not None else "http"
        self._httpd = _HTTPServer(self, tls)
        self.host: str = self._httpd.server_name
        self.port: int = self._httpd.server_port
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.01},
            name=f"FaultServer-{self.port}",
            daemon=True,
        )
        self._thread.start()

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> FaultServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<FaultServer {self.base_url}{' stopped' if self._stopped else ''}>"

    @property
    def stopping(self) -> bool:
        return self._stop_event.is_set()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop serving, release stalls, cut open connections, close the listening socket.

        Idempotent.  Waits at most about *timeout* seconds for handler threads to finish.
        """
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self._stop_event.set()
        self._httpd.shutdown()  # ends serve_forever (polls every 10 ms); no new connections
        self._httpd.server_close()  # close the listening socket
        self.release_stalls()
        self._httpd.shutdown_all_connections()  # wakes idle keep-alive readers and blocked writers
        deadline = time.monotonic() + timeout
        self._thread.join(max(0.0, deadline - time.monotonic()))
        with self._httpd.conn_lock:
            threads = list(self._httpd.threads)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))

    # -- configuration -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def url(self, path: str = "/") -> str:
        """Absolute URL for *path* (which must start with '/'; it is not quoted)."""
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/': {path!r}")
        return self.base_url + path

    def add(
        self,
        path: str,
        body: bytes,
        *,
        etag: str | Literal[_Auto.AUTO] | None = AUTO,
        last_modified: str | None = None,
        headers: dict[str, str] | None = None,
        ranges: bool = True,
        delay: float = 0.0,
        faults: list[Fault] | None = None,
        chunked: bool = False,
        pace: float = 0.0,
        rate: float = 0.0,
    ) -> None:
        """Serve *body* at *path* (replacing any route there).  *faults* replaces the queue.

        *pace* makes a slow server: it waits that many seconds after each 64 KiB block.
        *rate* paces the body to that many bytes a second (0: as fast as possible).
        """
        route = _File(
            body=bytes(body),
            etag=auto_etag(body) if etag is AUTO else etag,
            last_modified=last_modified,
            headers=tuple((headers or {}).items()),
            ranges=ranges,
            delay=delay,
            chunked=chunked,
            pace=pace,
            rate=rate,
        )
        with self._lock:
            self._state.routes[self._check_path(path)] = route
            if faults is not None:
                self._state.faults[path] = deque(faults)

    def set_body(
        self,
        path: str,
        body: bytes,
        *,
        etag: str | Literal[_Auto.AUTO] | None = AUTO,
        last_modified: str | None = None,
    ) -> None:
        """Publish a new version of *path*, keeping its other settings (adds it if missing)."""
        with self._lock:
            old = self._state.routes.get(self._check_path(path))
            base = old if isinstance(old, _File) else _File(b"", None, None, (), True, 0.0, False)
            self._state.routes[path] = _File(
                body=bytes(body),
                etag=auto_etag(body) if etag is AUTO else etag,
                last_modified=last_modified,
                headers=base.headers,
                ranges=base.ranges,
                delay=base.delay,
                chunked=base.chunked,
                pace=base.pace,
                rate=base.rate,
            )

    def body(self, path: str) -> bytes | None:
        """The body *path* serves now (None when it is not a file route)."""
        with self._lock:
            route = self._state.routes.get(path)
        return route.body if isinstance(route, _File) else None

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        """Answer *path* with *status* and ``Location: location`` (sent verbatim)."""
        with self._lock:
            self._state.routes[self._check_path(path)] = _Redirect(location, status)

    def remove(self, path: str) -> None:
        """Forget the route at *path* (it then answers 404); queued faults are kept."""
        with self._lock:
            self._state.routes.pop(path, None)

    def add_faults(self, path: str, *faults: Fault) -> None:
        """Queue *faults* for *path*; each request to it (GET, HEAD, ...) consumes one."""
        with self._lock:
            self._state.faults.setdefault(self._check_path(path), deque()).extend(faults)

    def pending_faults(self, path: str) -> list[Fault]:
        with self._lock:
            return list(self._state.faults.get(path, ()))

    @staticmethod
    def _check_path(path: str) -> str:
        if not path.startswith("/") or "?" in path:
            raise ValueError(f"route paths start with '/' and have no query: {path!r}")
        return path

    # -- stalls --------------------------------------------------------------------------------

    def release_stalls(self) -> None:
        """Let every currently stalled handler go on (it then closes its connection)."""
        with self._lock:
            for ev in self._state.stalls:
                ev.set()

    def stalled_count(self) -> int:
        """How many handlers are stalled right now."""
        with self._lock:
            return len(self._state.stalls)

    # -- observations --------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Snapshot of every recorded request, in arrival order."""
        with self._lock:
            return list(self._state.requests)

    def requests_for(self, path: str) -> list[RecordedRequest]:
        """Recorded requests whose route key (path without query) is *path*."""
        with self._lock:
            return [r for r in self._state.requests if r.path == path]

    def bytes_sent(self, path: str | None = None) -> int:
        """Body bytes written to sockets (payload only: no headers or chunk framing).

        A write is counted just before it is made (and uncounted if it fails), so once a
        client has received bytes they are already included here.
        """
        with self._lock:
            if path is None:
                return sum(self._state.bytes_sent.values())
            return self._state.bytes_sent.get(path, 0)

    def clear_requests(self) -> None:
        """Forget recorded requests and byte counts (routes and faults are kept)."""
        with self._lock:
            self._state.requests.clear()
            self._state.bytes_sent.clear()

    @property
    def max_in_flight(self) -> int:
        """The most GET requests being answered at the same time since start."""
        with self._lock:
            return self._state.max_in_flight

    def active_connections(self) -> int:
        """Client connections currently open on the server side."""
        with self._httpd.conn_lock:
            return len(self._httpd.conns)

    @property
    def connections_opened(self) -> int:
        """Connections accepted since start."""
        with self._httpd.conn_lock:
            return self._httpd.connections_opened

    @property
    def errors(self) -> list[BaseException]:
        """Unexpected (non-socket) exceptions raised in handlers: a server bug if non-empty."""
        with self._lock:
            return list(self._state.errors)

    # -- used by the handler -------------------------------------------------------------------

    def set_fault_policy(self, policy: Callable[[str], Fault | None] | None) -> None:
        """Decide a fault per request: ``policy(route_key)`` is asked when no fault is queued.

        It runs outside the server's lock, so it may call :meth:`set_body` (a new version
        served by this very request); ``None`` removes the policy.
        """
        with self._lock:
            self._policy = policy

    def take(self, target: str) -> tuple[str, _Route | None, Fault | None]:
        """Resolve *target* to (route key, route, next queued fault, popped)."""
        raw = target.split("?", 1)[0].split("#", 1)[0]
        with self._lock:
            st = self._state
            key = raw
            if raw not in st.routes and raw not in st.faults:
                unquoted = urllib.parse.unquote(raw)
                if unquoted in st.routes or unquoted in st.faults:
                    key = unquoted
            queue = st.faults.get(key)
            fault = queue.popleft() if queue else None
            policy = self._policy
            if fault is not None or policy is None:
                return key, st.routes.get(key), fault
        fault = policy(key)
        with self._lock:
            return key, self._state.routes.get(key), fault

    @contextlib.contextmanager
    def serving(self) -> Iterator[None]:
        """Counts a GET as in flight from its parsing to the end of its answer."""
        with self._lock:
            st = self._state
            st.in_flight += 1
            st.max_in_flight = max(st.max_in_flight, st.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self._state.in_flight -= 1

    def record(self, req: RecordedRequest) -> None:
        with self._lock:
            self._state.requests.append(req)

    def record_error(self, exc: BaseException) -> None:
        with self._lock:
            self._state.errors.append(exc)

    def count_bytes(self, path: str, n: int) -> None:
        with self._lock:
            self._state.bytes_sent[path] = self._state.bytes_sent.get(path, 0) + n

    def sleep(self, seconds: float) -> bool:
        """Wait *seconds* unless stopped first; True if the server is stopping."""
        return self._stop_event.wait(seconds)

    def stall(self) -> None:
        ev = threading.Event()
        with self._lock:
            if self._stopped:
                return
            self._state.stalls.add(ev)
        try:
            ev.wait()
        finally:
            with self._lock:
                self._state.stalls.discard(ev)
