"""Issue 12's transport holes, black-box: only the command line and the API are used,
so the tests hold for any engine (they were written against the urllib3 one and
closed by the libcurl one)."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from downloader import Status, fetch
from downloader import cli as cli_module
from tests.server import Fault, FaultServer
from tests.test_holes import raw_server  # noqa: F401  (the fixture)

RawServer = tuple[str, dict[str, bytes]]


def pdl(*args: str) -> Result:
    return CliRunner().invoke(cli_module.main, list(args), catch_exceptions=False)


def test_21_a_checksum_mismatch_says_checksum_mismatch(server: FaultServer, dest: Path) -> None:
    server.add("/a.bin", b"not what was promised")
    line = f"{server.url('/a.bin')} checksum=sha-256={hashlib.sha256(b'x').hexdigest()}"
    report = fetch([line], dest=dest, retries=0)
    assert report.results[0].status is Status.FAILED
    assert "checksum mismatch" in (report.results[0].error or "")


@pytest.mark.parametrize("header", ["Cookie: secret=1", "Proxy-Authorization: Basic c2VjcmV0"])
def test_9_no_user_header_goes_to_another_origin(
    server: FaultServer, dest: Path, header: str
) -> None:
    with FaultServer() as other:
        other.add("/x.bin", b"x")
        server.redirect("/x.bin", other.url("/x.bin"))
        report = fetch([server.url("/x.bin")], dest=dest, headers=[header], retries=0)
        assert report.results[0].status is Status.OK
        name = header.split(":")[0].lower()
        assert name in server.requests_for("/x.bin")[0].headers
        assert name not in other.requests_for("/x.bin")[0].headers


def test_15_retry_after_on_a_404_holds_no_host(server: FaultServer, dest: Path) -> None:
    for n in range(4):
        server.add(f"/{n}", b"x", faults=[Fault.status(404, retry_after="4")])
    started = time.monotonic()
    report = fetch([server.url(f"/{n}") for n in range(4)], dest=dest, jobs=1, retry_wait=0)
    assert report.counts.failed == 4
    assert time.monotonic() - started < 3


def test_17_early_hints_are_skipped(raw_server: RawServer, dest: Path) -> None:  # noqa: F811
    base, answers = raw_server
    answers["/a.bin"] = (
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\na"
    )
    report = fetch([f"{base}/a.bin"], dest=dest, retries=0)
    assert report.results[0].status is Status.OK, report.results[0].error
    assert (dest / "a.bin").read_bytes() == b"a"


def test_11_a_unicode_digit_content_length_is_no_internal_error(
    raw_server: RawServer,  # noqa: F811
    dest: Path,
) -> None:
    base, answers = raw_server
    answers["/a.bin"] = (
        "HTTP/1.1 200 OK\r\nContent-Length: ²\r\nConnection: close\r\n\r\na".encode()
    )
    report = fetch([f"{base}/a.bin"], dest=dest, retries=0)
    assert "internal error" not in (report.results[0].error or "")


def test_6_a_body_past_its_length_is_not_written_past_it(
    raw_server: RawServer,  # noqa: F811
    dest: Path,
) -> None:
    base, answers = raw_server
    chunk = b"x" * 1000
    answers["/a.bin"] = (
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + (b"3e8\r\n" + chunk + b"\r\n") * 50 + b"0\r\n\r\n"
    )
    report = fetch([f"{base}/a.bin"], dest=dest, retries=0)
    assert report.results[0].status is Status.FAILED
    for path in dest.iterdir():
        assert path.stat().st_size <= 100


def test_18_content_disposition_names_are_claimed_in_list_order(
    server: FaultServer, dest: Path
) -> None:
    header = {"Content-Disposition": 'attachment; filename="a.bin"'}
    server.add("/slow", b"first", headers=header, delay=1.0)
    server.add("/fast", b"second", headers=header)
    args = ["-d", str(dest), "-j", "2", "--json", "--content-disposition"]
    result = pdl("fetch", *args, server.url("/slow"), server.url("/fast"))
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    paths = {line["url"].rsplit("/", 1)[1]: line["path"] for line in lines}
    assert paths == {"slow": str(dest / "a.bin"), "fast": str(dest / "a.1.bin")}
    assert (dest / "a.bin").read_bytes() == b"first"


def test_19_an_interrupt_during_a_stalled_header_read_leaves_no_empty_part(
    server: FaultServer, dest: Path
) -> None:
    import threading

    from downloader.cancel import CancelToken
    from tests.server import wait_until

    server.add("/slow.bin", b"late", delay=30.0)  # the head never comes in time
    cancel = CancelToken()
    outcome: dict[str, object] = {}
    thread = threading.Thread(
        target=lambda: outcome.update(r=fetch([server.url("/slow.bin")], dest=dest, cancel=cancel))
    )
    thread.start()
    wait_until(lambda: len(server.requests_for("/slow.bin")) == 1, timeout=10)
    cancel.cancel()
    thread.join(5)
    assert not thread.is_alive()
    assert outcome["r"].results[0].status is Status.INTERRUPTED  # type: ignore[attr-defined]
    assert list(dest.iterdir()) == []  # no 0-byte .part, no record


def test_a_closed_port_is_refused_by_name_and_given_up_fast(dest: Path) -> None:
    """Issue 13: a host that refuses every connection fails its entries at once, saying so."""
    import socket

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    urls = [f"http://127.0.0.1:{port}/f{i}.bin" for i in range(8)]
    report = fetch(urls, dest=dest, jobs=2, retries=5, retry_wait=0)
    assert [r.status for r in report.results] == [Status.FAILED] * 8
    assert all("connection refused" in (r.error or "") for r in report.results)
    assert sum(r.attempts for r in report.results) < 8 * 3  # not 6 attempts each
    assert "gave up on" in (report.results[-1].error or "")
    assert list(dest.iterdir()) == []
