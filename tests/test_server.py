"""Tests of the fault-injecting test server itself (tests/server.py)."""

from __future__ import annotations

import hashlib
import http.client
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.server import (
    AUTO,
    Fault,
    FaultServer,
    auto_etag,
    self_signed_cert,
    tls_context,
    wait_until,
)

BODY = bytes(range(256)) * 40  # 10240 bytes, position-dependent content
LAST_MODIFIED = "Wed, 21 Oct 2015 07:28:00 GMT"


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        s.trust_env = False  # never route through an environment proxy
        yield s


@pytest.fixture(autouse=True)
def _no_server_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Any non-socket exception inside a handler is a bug in tests/server.py."""
    srv: FaultServer | None = None
    if "server" in request.fixturenames:
        srv = request.getfixturevalue("server")
    yield
    if srv is not None:
        assert srv.errors == []


def _connect(srv: FaultServer) -> socket.socket:
    sock = socket.create_connection((srv.host, srv.port), timeout=10)
    return sock


def _request_bytes(path: str, headers: dict[str, str] | None = None, method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _split_head(data: bytes) -> tuple[int, dict[str, str], bytes]:
    head, sep, rest = data.partition(b"\r\n\r\n")
    assert sep, f"no complete response head in {data[:200]!r}"
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, rest


def _read_until_closed(sock: socket.socket) -> tuple[bytes, BaseException | None]:
    """Read until EOF or an error; return the data and the error (None on clean EOF)."""
    data = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data, None
            data += chunk
    except OSError as exc:
        return data, exc


def _read_at_least(sock: socket.socket, n: int, buf: bytes = b"") -> bytes:
    while len(buf) < n:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {len(buf)} of {n} bytes"
        buf += chunk
    return buf


def _raw_get(
    srv: FaultServer, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes, BaseException | None]:
    """One request with 'Connection: close'; everything the server sent until it closed."""
    with _connect(srv) as sock:
        sock.sendall(_request_bytes(path, {"Connection": "close", **(headers or {})}))
        data, err = _read_until_closed(sock)
    status, hdrs, body = _split_head(data)
    return status, hdrs, body, err


# --------------------------------------------------------------------------------------------
# normal serving
# --------------------------------------------------------------------------------------------


def test_get_with_auto_etag(server: FaultServer, session: requests.Session) -> None:
    server.add("/a.bin", BODY)
    r = session.get(server.url("/a.bin"))
    assert r.status_code == 200
    assert r.content == BODY
    expected = '"' + hashlib.sha256(BODY).hexdigest()[:16] + '"'
    assert r.headers["ETag"] == expected == auto_etag(BODY)
    assert r.headers["Content-Length"] == str(len(BODY))
    assert r.headers["Accept-Ranges"] == "bytes"
    assert "Last-Modified" not in r.headers
    assert "Content-Range" not in r.headers


def test_url_and_base_url(server: FaultServer) -> None:
    assert server.url("/x/y.bin") == f"http://127.0.0.1:{server.port}/x/y.bin"
    assert server.base_url == f"http://127.0.0.1:{server.port}"
    with pytest.raises(ValueError):
        server.url("relative")


def test_explicit_etag_none_last_modified_and_extra_headers(
    server: FaultServer, session: requests.Session
) -> None:
    server.add(
        "/b",
        b"hello",
        etag=None,
        last_modified=LAST_MODIFIED,
        headers={"Content-Disposition": 'attachment; filename="x.txt"', "Content-Type": "a/b"},
    )
    r = session.get(server.url("/b"))
    assert r.content == b"hello"
    assert "ETag" not in r.headers
    assert r.headers["Last-Modified"] == LAST_MODIFIED
    assert r.headers["Content-Disposition"] == 'attachment; filename="x.txt"'
    assert r.headers["Content-Type"] == "a/b"

    server.add("/c", b"x", etag='W/"weak"')
    assert session.get(server.url("/c")).headers["ETag"] == 'W/"weak"'


def test_head(server: FaultServer) -> None:
    server.add("/a.bin", BODY, last_modified=LAST_MODIFIED)
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("HEAD", "/a.bin")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read() == b""
        assert resp.getheader("Content-Length") == str(len(BODY))
        assert resp.getheader("ETag") == auto_etag(BODY)
        assert resp.getheader("Last-Modified") == LAST_MODIFIED
        # the connection is still usable: HEAD sent no body
        conn.request("GET", "/a.bin")
        assert conn.getresponse().read() == BODY
    finally:
        conn.close()
    assert server.bytes_sent("/a.bin") == len(BODY)


def test_unknown_path_is_404(server: FaultServer, session: requests.Session) -> None:
    r = session.get(server.url("/nope"))
    assert r.status_code == 404
    assert server.requests_for("/nope")[0].method == "GET"


def test_other_methods_get_405(server: FaultServer, session: requests.Session) -> None:
    server.add("/a", b"x")
    r = session.post(server.url("/a"), data=b"payload")
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET, HEAD"
    assert server.requests[-1].method == "POST"


def test_query_string_is_ignored_for_routing(
    server: FaultServer, session: requests.Session
) -> None:
    server.add("/a.bin", b"abc")
    r = session.get(server.url("/a.bin?token=1"))
    assert r.content == b"abc"
    (req,) = server.requests_for("/a.bin")
    assert req.target == "/a.bin?token=1"
    assert req.path == "/a.bin"


def test_percent_encoded_path_matches_decoded_route(
    server: FaultServer, session: requests.Session
) -> None:
    server.add("/a b.bin", b"space")
    r = session.get(server.url("/a b.bin"))  # requests sends /a%20b.bin
    assert r.content == b"space"
    (req,) = server.requests_for("/a b.bin")
    assert req.target == "/a%20b.bin"


def test_keep_alive_reuses_one_connection(server: FaultServer) -> None:
    server.add("/a", b"first")
    server.add("/b", b"second")
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("GET", "/a")
        assert conn.getresponse().read() == b"first"
        sock_before = conn.sock
        conn.request("GET", "/b")
        assert conn.getresponse().read() == b"second"
        assert conn.sock is sock_before
    finally:
        conn.close()
    reqs = server.requests
    assert [r.path for r in reqs] == ["/a", "/b"]
    assert reqs[0].conn_id == reqs[1].conn_id
    assert server.connections_opened == 1


def test_keep_alive_with_requests_session(server: FaultServer, session: requests.Session) -> None:
    server.add("/a", BODY)
    for _ in range(3):
        assert session.get(server.url("/a")).content == BODY
    assert len({r.conn_id for r in server.requests}) == 1


def test_threaded_serving_of_concurrent_requests(server: FaultServer) -> None:
    server.add("/s", BODY, faults=[Fault.stall(10), Fault.stall(10)])
    socks = [_connect(server) for _ in range(2)]
    try:
        for s in socks:
            s.sendall(_request_bytes("/s"))
        wait_until(lambda: server.stalled_count() == 2)
    finally:
        server.release_stalls()
        for s in socks:
            s.close()


# --------------------------------------------------------------------------------------------
# ranges
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "start", "end"),
    [
        ("bytes=100-", 100, len(BODY) - 1),
        ("bytes=0-", 0, len(BODY) - 1),
        ("bytes=10-19", 10, 19),
        ("bytes=10-10", 10, 10),
        ("bytes=-5", len(BODY) - 5, len(BODY) - 1),
        ("bytes=-999999", 0, len(BODY) - 1),
        ("bytes=10000-999999", 10000, len(BODY) - 1),
        ("bytes = 3 - 4", 3, 4),
    ],
)
def test_range_forms(
    server: FaultServer, session: requests.Session, spec: str, start: int, end: int
) -> None:
    server.add("/a", BODY)
    r = session.get(server.url("/a"), headers={"Range": spec})
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes {start}-{end}/{len(BODY)}"
    assert r.headers["Content-Length"] == str(end - start + 1)
    assert r.content == BODY[start : end + 1]
    assert r.headers["ETag"] == auto_etag(BODY)
    assert server.bytes_sent("/a") == end - start + 1


@pytest.mark.parametrize("spec", [f"bytes={len(BODY)}-", "bytes=999999-1000000", "bytes=-0"])
def test_unsatisfiable_range_is_416(
    server: FaultServer, session: requests.Session, spec: str
) -> None:
    server.add("/a", BODY)
    r = session.get(server.url("/a"), headers={"Range": spec})
    assert r.status_code == 416
    assert r.headers["Content-Range"] == f"bytes */{len(BODY)}"
    assert r.content == b""


def test_range_on_empty_body_is_416(server: FaultServer, session: requests.Session) -> None:
    server.add("/empty", b"")
    r = session.get(server.url("/empty"), headers={"Range": "bytes=0-"})
    assert r.status_code == 416
    assert r.headers["Content-Range"] == "bytes */0"
    assert session.get(server.url("/empty")).status_code == 200


@pytest.mark.parametrize(
    "spec", ["bytes=0-1,5-6", "bytes=abc", "items=0-1", "bytes=5-2", "bytes=-", "bytes 0-1"]
)
def test_malformed_or_multi_range_is_ignored(
    server: FaultServer, session: requests.Session, spec: str
) -> None:
    server.add("/a", BODY)
    r = session.get(server.url("/a"), headers={"Range": spec})
    assert r.status_code == 200
    assert r.content == BODY
    assert "Content-Range" not in r.headers


def test_ranges_disabled(server: FaultServer, session: requests.Session) -> None:
    server.add("/a", BODY, ranges=False)
    r = session.get(server.url("/a"), headers={"Range": "bytes=10-"})
    assert r.status_code == 200
    assert r.content == BODY
    assert "Accept-Ranges" not in r.headers


def test_if_range_with_matching_etag(server: FaultServer, session: requests.Session) -> None:
    server.add("/a", BODY)
    r = session.get(server.url("/a"), headers={"Range": "bytes=10-", "If-Range": auto_etag(BODY)})
    assert r.status_code == 206
    assert r.content == BODY[10:]


def test_if_range_with_other_etag(server: FaultServer, session: requests.Session) -> None:
    server.add("/a", BODY)
    r = session.get(server.url("/a"), headers={"Range": "bytes=10-", "If-Range": '"other"'})
    assert r.status_code == 200
    assert r.content == BODY


def test_if_range_weak_etag_never_matches(server: FaultServer, session: requests.Session) -> None:
    server.add("/a", BODY, etag='W/"v1"')
    r = session.get(server.url("/a"), headers={"Range": "bytes=10-", "If-Range": 'W/"v1"'})
    assert r.status_code == 200
    assert r.content == BODY
    # without If-Range the weak-tagged resource is still range-able
    assert session.get(server.url("/a"), headers={"Range": "bytes=10-"}).status_code == 206


def test_if_range_with_last_modified(server: FaultServer, session: requests.Session) -> None:
    server.add("/a", BODY, last_modified=LAST_MODIFIED)
    ok = session.get(server.url("/a"), headers={"Range": "bytes=5-9", "If-Range": LAST_MODIFIED})
    assert ok.status_code == 206
    assert ok.content == BODY[5:10]
    stale = "Tue, 20 Oct 2015 07:28:00 GMT"
    r = session.get(server.url("/a"), headers={"Range": "bytes=5-9", "If-Range": stale})
    assert r.status_code == 200
    assert r.content == BODY


def test_if_range_mismatch_beats_unsatisfiable_range(
    server: FaultServer, session: requests.Session
) -> None:
    server.add("/a", BODY)
    r = session.get(server.url("/a"), headers={"Range": "bytes=999999-", "If-Range": '"old"'})
    assert r.status_code == 200
    assert r.content == BODY


def test_set_body_changes_etag_and_invalidates_if_range(
    server: FaultServer, session: requests.Session
) -> None:
    server.add("/a", BODY, headers={"X-Kept": "1"})
    old_etag = session.get(server.url("/a")).headers["ETag"]
    new_body = b"version two" * 100
    server.set_body("/a", new_body)
    r = session.get(server.url("/a"))
    assert r.content == new_body
    assert r.headers["ETag"] == auto_etag(new_body) != old_etag
    assert r.headers["X-Kept"] == "1"  # other settings are kept
    stale = session.get(server.url("/a"), headers={"Range": "bytes=10-", "If-Range": old_etag})
    assert stale.status_code == 200
    assert stale.content == new_body
    fresh = session.get(
        server.url("/a"), headers={"Range": "bytes=10-", "If-Range": r.headers["ETag"]}
    )
    assert fresh.status_code == 206
    assert fresh.content == new_body[10:]


def test_set_body_explicit_validators(server: FaultServer, session: requests.Session) -> None:
    server.add("/a", b"one", etag='"1"')
    server.set_body("/a", b"two", etag=None, last_modified=LAST_MODIFIED)
    r = session.get(server.url("/a"))
    assert "ETag" not in r.headers
    assert r.headers["Last-Modified"] == LAST_MODIFIED
    server.set_body("/a", b"three", etag=AUTO)
    assert session.get(server.url("/a")).headers["ETag"] == auto_etag(b"three")


# --------------------------------------------------------------------------------------------
# redirects
# --------------------------------------------------------------------------------------------


def test_relative_redirect(server: FaultServer, session: requests.Session) -> None:
    server.add("/target.bin", b"payload")
    server.redirect("/go", "/target.bin")
    r = session.get(server.url("/go"))
    assert r.content == b"payload"
    assert [h.status_code for h in r.history] == [302]
    assert r.history[0].headers["Location"] == "/target.bin"
    assert r.url == server.url("/target.bin")
    assert [q.path for q in server.requests] == ["/go", "/target.bin"]


def test_absolute_redirect_with_status(server: FaultServer, session: requests.Session) -> None:
    server.add("/target.bin", b"payload")
    server.redirect("/old", server.url("/target.bin"), status=301)
    r = session.get(server.url("/old"), allow_redirects=False)
    assert r.status_code == 301
    assert r.headers["Location"] == server.url("/target.bin")
    assert r.headers["Content-Length"] == "0"
    assert session.get(server.url("/old")).content == b"payload"


def test_remove_route(server: FaultServer, session: requests.Session) -> None:
    server.add("/a", b"x")
    server.remove("/a")
    assert session.get(server.url("/a")).status_code == 404


# --------------------------------------------------------------------------------------------
# faults
# --------------------------------------------------------------------------------------------


def test_status_fault_with_retry_after_keeps_connection(server: FaultServer) -> None:
    server.add("/a", b"data")
    server.add_faults("/a", Fault.status(503, retry_after="7", body=b"busy"))
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("GET", "/a")
        resp = conn.getresponse()
        assert resp.status == 503
        assert resp.getheader("Retry-After") == "7"
        assert resp.read() == b"busy"
        conn.request("GET", "/a")  # queue is now empty: served normally, same connection
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.read() == b"data"
    finally:
        conn.close()
    first, second = server.requests_for("/a")
    assert (first.fault, second.fault) == ("status", None)
    assert first.fault_detail == Fault.status(503, retry_after="7", body=b"busy")
    assert first.conn_id == second.conn_id


def test_faults_are_consumed_in_order(server: FaultServer, session: requests.Session) -> None:
    server.add("/a", b"data", faults=[Fault.status(500)])
    server.add_faults("/a", Fault.status(429, retry_after="0"), Fault.status(404))
    assert server.pending_faults("/a") == [
        Fault.status(500),
        Fault.status(429, retry_after="0"),
        Fault.status(404),
    ]
    codes = [session.get(server.url("/a")).status_code for _ in range(4)]
    assert codes == [500, 429, 404, 200]
    assert [q.fault for q in server.requests] == ["status", "status", "status", None]
    assert server.pending_faults("/a") == []


def test_status_fault_on_unrouted_path(server: FaultServer, session: requests.Session) -> None:
    server.add_faults("/ghost", Fault.status(503))
    assert session.get(server.url("/ghost")).status_code == 503
    assert session.get(server.url("/ghost")).status_code == 404


def test_truncate_raw(server: FaultServer) -> None:
    server.add("/a", BODY, faults=[Fault.truncate(1000)])
    status, headers, body, err = _raw_get(server, "/a")
    assert err is None  # clean FIN, not a reset
    assert status == 200
    assert headers["content-length"] == str(len(BODY))
    assert body == BODY[:1000]
    assert server.bytes_sent("/a") == 1000


def test_truncate_http_client_sees_incomplete_read(server: FaultServer) -> None:
    server.add("/a", BODY, faults=[Fault.truncate(123)])
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("GET", "/a", headers={"Range": "bytes=100-"})
        resp = conn.getresponse()
        assert resp.status == 206
        assert resp.getheader("Content-Length") == str(len(BODY) - 100)
        with pytest.raises(http.client.IncompleteRead) as info:
            resp.read()
        assert info.value.partial == BODY[100:223]
    finally:
        conn.close()


def test_truncate_with_requests(server: FaultServer, session: requests.Session) -> None:
    server.add("/a", BODY, faults=[Fault.truncate(10)])
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        session.get(server.url("/a"))
    assert session.get(server.url("/a")).content == BODY  # next request is fine


def test_reset_raw(server: FaultServer) -> None:
    server.add("/a", BODY, faults=[Fault.reset(2000)])
    with _connect(server) as sock:
        sock.sendall(_request_bytes("/a"))
        data, err = _read_until_closed(sock)
    assert isinstance(err, ConnectionResetError)
    status, headers, body = _split_head(data)
    assert status == 200
    assert headers["content-length"] == str(len(BODY))
    assert body == BODY[:2000]
    assert server.bytes_sent("/a") == 2000


def test_reset_with_requests(server: FaultServer, session: requests.Session) -> None:
    server.add("/a", BODY, faults=[Fault.reset(10)])
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        session.get(server.url("/a"))
    assert session.get(server.url("/a")).content == BODY


def test_stall_then_release(server: FaultServer) -> None:
    server.add("/a", BODY, faults=[Fault.stall(500)])
    with _connect(server) as sock:
        sock.sendall(_request_bytes("/a"))
        data = _read_at_least(sock, 1)
        head_len = data.index(b"\r\n\r\n") + 4
        data = _read_at_least(sock, head_len + 500, data)
        wait_until(lambda: server.stalled_count() == 1)
        assert data[head_len:] == BODY[:500]
        assert server.bytes_sent("/a") == 500
        server.release_stalls()
        rest, err = _read_until_closed(sock)
    assert (rest, err) == (b"", None)
    wait_until(lambda: server.stalled_count() == 0)


def test_stall_with_requests_streaming(server: FaultServer, session: requests.Session) -> None:
    server.add("/a", BODY, faults=[Fault.stall(100)])
    with session.get(server.url("/a"), stream=True) as r:
        assert r.raw.read(100) == BODY[:100]
        wait_until(lambda: server.stalled_count() == 1)
        server.release_stalls()
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            _ = r.content


def test_drop_raw(server: FaultServer) -> None:
    server.add("/a", BODY, faults=[Fault.drop()])
    with _connect(server) as sock:
        sock.sendall(_request_bytes("/a"))
        data, err = _read_until_closed(sock)
    assert (data, err) == (b"", None)
    assert server.requests_for("/a")[0].fault == "drop"
    assert server.bytes_sent() == 0


def test_drop_with_http_client(server: FaultServer) -> None:
    server.add("/a", BODY, faults=[Fault.drop()])
    conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        conn.request("GET", "/a")
        with pytest.raises(http.client.RemoteDisconnected):
            conn.getresponse()
    finally:
        conn.close()


def test_ignore_range(server: FaultServer, session: requests.Session) -> None:
    server.add("/a", BODY, faults=[Fault.ignore_range()])
    r = session.get(server.url("/a"), headers={"Range": "bytes=10-"})
    assert r.status_code == 200
    assert r.content == BODY
    assert "Content-Range" not in r.headers
    r = session.get(server.url("/a"), headers={"Range": "bytes=10-"})
    assert r.status_code == 206


@pytest.mark.parametrize(
    ("spec", "shift", "start", "end"),
    [
        ("bytes=10-19", 3, 13, 22),
        ("bytes=100-", -50, 50, len(BODY) - 51),
        (None, 7, 7, len(BODY) - 1),
    ],
)
def test_wrong_content_range(
    server: FaultServer,
    session: requests.Session,
    spec: str | None,
    shift: int,
    start: int,
    end: int,
) -> None:
    server.add("/a", BODY, faults=[Fault.wrong_content_range(shift)])
    r = session.get(server.url("/a"), headers={"Range": spec} if spec else {})
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes {start}-{end}/{len(BODY)}"
    assert r.content == BODY[start : end + 1]


def test_extra_bytes(server: FaultServer) -> None:
    server.add("/a", BODY, faults=[Fault.extra_bytes(17)])
    status, headers, body, err = _raw_get(server, "/a", {"Range": "bytes=0-99"})
    assert err is None
    assert status == 206
    assert headers["content-length"] == "100"
    assert len(body) == 117
    assert body[:100] == BODY[:100]
    assert server.bytes_sent("/a") == 117


def test_faults_on_head_requests_are_consumed(server: FaultServer) -> None:
    server.add("/a", BODY, faults=[Fault.truncate(5)])
    with _connect(server) as sock:
        sock.sendall(_request_bytes("/a", method="HEAD"))
        data, err = _read_until_closed(sock)  # server closes after the head
    status, headers, body = _split_head(data)
    assert (status, body, err) == (200, b"", None)
    assert headers["content-length"] == str(len(BODY))
    assert server.pending_faults("/a") == []


def test_fault_validation() -> None:
    with pytest.raises(ValueError):
        Fault.truncate(-1)
    with pytest.raises(ValueError):
        Fault.extra_bytes(-1)


# --------------------------------------------------------------------------------------------
# chunked, delay
# --------------------------------------------------------------------------------------------


def test_chunked(server: FaultServer, session: requests.Session) -> None:
    body = BODY * 3  # several chunks
    server.add("/c", body, chunked=True)
    r = session.get(server.url("/c"))
    assert r.content == body
    assert r.headers["Transfer-Encoding"] == "chunked"
    assert "Content-Length" not in r.headers
    assert server.bytes_sent("/c") == len(body)


def test_chunked_raw_framing_and_range(server: FaultServer) -> None:
    server.add("/c", b"0123456789", chunked=True)
    status, headers, body, err = _raw_get(server, "/c", {"Range": "bytes=2-5"})
    assert (status, err) == (206, None)
    assert headers["content-range"] == "bytes 2-5/10"
    assert "content-length" not in headers
    assert body == b"4\r\n2345\r\n0\r\n\r\n"


def test_chunked_truncate(server: FaultServer) -> None:
    body = BODY * 3
    server.add("/c", body, chunked=True, faults=[Fault.truncate(9000)])
    status, headers, raw, err = _raw_get(server, "/c")
    assert (status, err) == (200, None)
    assert headers["transfer-encoding"] == "chunked"
    # 8 KiB chunks: one whole chunk, then a chunk cut short with no terminator
    assert raw == b"2000\r\n" + body[:8192] + b"\r\n2000\r\n" + body[8192:9000]
    assert server.bytes_sent("/c") == 9000


def test_delay(server: FaultServer, session: requests.Session) -> None:
    server.add("/slow", b"x", delay=0.2)
    t0 = time.monotonic()
    assert session.get(server.url("/slow")).content == b"x"
    assert time.monotonic() - t0 >= 0.2


@pytest.mark.parametrize("chunked", [False, True])
def test_rate_paces_the_body(server: FaultServer, session: requests.Session, chunked: bool) -> None:
    body = bytes(range(256)) * 80  # 20 480 bytes at 100 000 B/s: at least 0.2 s
    server.add("/paced", body, rate=100_000, chunked=chunked)
    t0 = time.monotonic()
    assert session.get(server.url("/paced")).content == body
    assert time.monotonic() - t0 >= 0.2
    assert server.bytes_sent("/paced") == len(body)


def test_rate_is_kept_by_set_body(server: FaultServer, session: requests.Session) -> None:
    server.add("/paced", b"a" * 10, rate=50)
    server.set_body("/paced", b"b" * 10)
    t0 = time.monotonic()
    assert session.get(server.url("/paced")).content == b"b" * 10
    assert time.monotonic() - t0 >= 0.16  # 10 bytes at 50 B/s in 2-byte writes: the last at 0.16 s


# --------------------------------------------------------------------------------------------
# recording and accounting
# --------------------------------------------------------------------------------------------


def test_requests_are_recorded_with_headers(server: FaultServer, session: requests.Session) -> None:
    server.add("/a", BODY, faults=[Fault.status(500)])
    server.add("/b", b"b")
    session.get(server.url("/a"), headers={"X-Test": "one", "Range": "bytes=1-2"})
    session.get(server.url("/a"))
    session.head(server.url("/b"))
    reqs = server.requests
    assert [(q.method, q.path, q.fault) for q in reqs] == [
        ("GET", "/a", "status"),
        ("GET", "/a", None),
        ("HEAD", "/b", None),
    ]
    first = reqs[0]
    assert first.headers["x-test"] == "one"
    assert first.headers["range"] == "bytes=1-2"
    assert first.header("X-TEST") == "one"
    assert first.header("If-Range") is None
    assert ("X-Test", "one") in first.raw_headers
    assert all(k == k.lower() for k in first.headers)
    assert first.request_version == "HTTP/1.1"
    assert [q.method for q in server.requests_for("/b")] == ["HEAD"]
    assert server.requests_for("/zzz") == []


def test_requests_is_a_snapshot(server: FaultServer, session: requests.Session) -> None:
    server.add("/a", b"x")
    snap = server.requests
    session.get(server.url("/a"))
    assert snap == []
    assert len(server.requests) == 1
    server.clear_requests()
    assert server.requests == []
    assert server.bytes_sent() == 0


def test_bytes_sent_accounting(server: FaultServer, session: requests.Session) -> None:
    server.add("/a", BODY)
    server.add("/b", b"12345")
    session.get(server.url("/a"))
    session.get(server.url("/a"), headers={"Range": "bytes=-10"})
    session.head(server.url("/a"))
    session.get(server.url("/b"))
    session.get(server.url("/nope"))  # error bodies are not counted
    assert server.bytes_sent("/a") == len(BODY) + 10
    assert server.bytes_sent("/b") == 5
    assert server.bytes_sent("/nope") == 0
    assert server.bytes_sent() == len(BODY) + 15


def test_client_disconnect_mid_body_is_silent(server: FaultServer) -> None:
    big = b"z" * (32 * 1024 * 1024)
    server.add("/big", big)
    with _connect(server) as sock:
        sock.sendall(_request_bytes("/big"))
        _read_at_least(sock, 1000)
    wait_until(lambda: server.active_connections() == 0)
    assert 0 < server.bytes_sent("/big") < len(big)
    assert server.errors == []


def test_wait_until_times_out() -> None:
    with pytest.raises(AssertionError, match="never"):
        wait_until(lambda: False, timeout=0.05, message="never")


# --------------------------------------------------------------------------------------------
# stopping
# --------------------------------------------------------------------------------------------


def test_stop_is_prompt_with_stalled_and_idle_connections() -> None:
    srv = FaultServer()
    try:
        srv.add("/a", BODY, faults=[Fault.stall(10)])
        srv.add("/b", b"b")
        stalled = _connect(srv)
        idle = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
        try:
            stalled.sendall(_request_bytes("/a"))
            idle.request("GET", "/b")
            assert idle.getresponse().read() == b"b"  # keep-alive connection left open
            wait_until(lambda: srv.stalled_count() == 1)
            t0 = time.monotonic()
            srv.stop()
            elapsed = time.monotonic() - t0
            assert elapsed < 5.0, f"stop() took {elapsed:.2f}s"
            data, _ = _read_until_closed(stalled)  # the server closed it
            assert data.startswith(b"HTTP/1.1 200")
            assert srv.active_connections() == 0
            assert srv.stalled_count() == 0
            prefix = f"FaultServer-{srv.port}"
            alive = [t.name for t in threading.enumerate() if t.name.startswith(prefix)]
            assert alive == []
        finally:
            stalled.close()
            idle.close()
    finally:
        srv.stop()


def test_stop_closes_listening_socket_and_is_idempotent() -> None:
    srv = FaultServer()
    port = srv.port
    srv.stop()
    srv.stop()
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 5):
        pass


def test_stop_during_delay_is_prompt() -> None:
    srv = FaultServer()
    srv.add("/slow", b"x", delay=60)
    result: list[BaseException] = []

    def client() -> None:
        try:
            with requests.Session() as s:
                s.trust_env = False
                s.get(srv.url("/slow"), timeout=30)
        except requests.RequestException as exc:
            result.append(exc)

    t = threading.Thread(target=client)
    t.start()
    try:
        wait_until(lambda: len(srv.requests) == 1)
        t0 = time.monotonic()
        srv.stop()
        assert time.monotonic() - t0 < 5.0
    finally:
        srv.stop()
        t.join(10)
    assert not t.is_alive()
    assert len(result) == 1


def test_context_manager() -> None:
    with FaultServer() as srv:
        srv.add("/a", b"x")
        with requests.Session() as s:
            s.trust_env = False
            assert s.get(srv.url("/a")).content == b"x"
    assert "stopped" in repr(srv)


def test_ignore_if_range_serves_the_new_version_partially(server: FaultServer) -> None:
    server.add("/v", b"0123456789", faults=[Fault.ignore_if_range()])
    resp = requests.get(server.url("/v"), headers={"Range": "bytes=4-", "If-Range": '"old"'})
    assert resp.status_code == 206 and resp.content == b"456789"


def test_fault_policy_is_asked_per_request_after_the_queue(server: FaultServer) -> None:
    server.add("/p", b"version 1", faults=[Fault.status(500)])
    asked: list[str] = []

    def policy(path: str) -> Fault | None:
        asked.append(path)
        if len(asked) == 1:
            server.set_body(path, b"version 2")  # served by this very request
            return None
        return Fault.status(503, retry_after="0")

    server.set_fault_policy(policy)

    def get() -> tuple[int, bytes, str | None]:
        conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
        try:
            conn.request("GET", "/p")
            resp = conn.getresponse()
            return resp.status, resp.read(), resp.getheader("ETag")
        finally:
            conn.close()

    assert get()[0] == 500  # the queued fault comes first, without asking
    status, body, etag = get()
    assert (status, body, etag) == (200, b"version 2", auto_etag(b"version 2"))
    assert get()[0] == 503
    assert asked == ["/p", "/p"]
    assert server.body("/p") == b"version 2" and server.body("/nothing") is None
    server.set_fault_policy(None)
    assert get()[:2] == (200, b"version 2")


def test_pace_holds_each_block_back(server: FaultServer) -> None:
    body = bytes(range(256)) * 1024  # 256 KiB: four blocks
    server.add("/slow", body, pace=60.0)
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        conn.request("GET", "/slow")
        resp = conn.getresponse()
        assert resp.read(65536) == body[:65536]
        assert server.bytes_sent("/slow") == 65536  # the next block waits for the pace
        server.stop()  # a stopping server stops waiting
    finally:
        conn.close()


def test_tls_server_speaks_https(tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl CLI")
    crt, key = self_signed_cert(tmp_path)
    with FaultServer(tls=tls_context(crt, key)) as srv:
        srv.add("/a", b"over tls")
        assert srv.url("/a").startswith("https://127.0.0.1:")
        client = ssl.create_default_context(cafile=str(crt))
        conn = http.client.HTTPSConnection(srv.host, srv.port, context=client, timeout=5)
        try:
            conn.request("GET", "/a")
            assert conn.getresponse().read() == b"over tls"
        finally:
            conn.close()


def test_huge_headers(server: FaultServer) -> None:
    server.add("/h", b"body", faults=[Fault.huge_headers(1000, lines=4)])
    conn = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        conn.request("GET", "/h")
        resp = conn.getresponse()
        junk = [v for k, v in resp.getheaders() if k.startswith("X-Junk-")]
        assert junk == ["j" * 250] * 4 and resp.read() == b"body"
    finally:
        conn.close()
