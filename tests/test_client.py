"""Requests: credential rules (pure), then redirects and connections against a real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from downloader import Status, fetch
from downloader.client import keeps_credentials, split_credentials
from tests.server import FaultServer, wait_until


@pytest.mark.parametrize(
    ("old", "new", "keep"),
    [
        ("http://a.example/x", "http://a.example/y", True),
        ("http://a.example/x", "http://A.EXAMPLE:80/y", True),
        ("http://a.example/x", "https://a.example/y", True),  # the upgrade, default ports
        ("https://a.example/x", "http://a.example/y", False),  # a downgrade
        ("http://a.example:8080/x", "https://a.example/y", False),
        ("http://a.example/x", "http://a.example:8080/y", False),
        ("http://a.example/x", "http://b.example/y", False),
        ("https://a.example/x", "https://a.example.evil/y", False),
    ],
)
def test_authorization_follows_only_the_same_origin(old: str, new: str, keep: bool) -> None:
    assert keeps_credentials(old, new) is keep


@pytest.mark.parametrize(
    ("url", "clean", "credentials"),
    [
        ("https://u:p@h.example/a", "https://h.example/a", "u:p"),
        ("https://u%40x:p%3Aq@h.example:8443/a?b", "https://h.example:8443/a?b", "u@x:p:q"),
        ("https://u@h.example/a", "https://h.example/a", "u:"),
        ("https://h.example/a@b", "https://h.example/a@b", None),
    ],
)
def test_credentials_leave_the_url(url: str, clean: str, credentials: str | None) -> None:
    assert split_credentials(url) == (clean, credentials)


def test_url_credentials_become_basic_auth_on_the_same_host(
    server: FaultServer, dest: Path
) -> None:
    server.add("/a", b"a")
    url = server.url("/a").replace("http://", "http://alice:s3cret@")
    assert fetch([url], dest=dest).counts.ok == 1
    (req,) = server.requests
    assert req.headers["authorization"] == "Basic YWxpY2U6czNjcmV0"
    assert "alice" not in req.target


@pytest.mark.parametrize(
    "location",
    ["http://127.0.0.1:99999/x", "http://[::1/x", "http://127.0.0.1:0/x", "file:///etc/passwd"],
)
def test_redirect_to_a_malformed_or_foreign_url_fails_the_entry(
    server: FaultServer, dest: Path, location: str
) -> None:
    server.redirect("/a", location)
    report = fetch([server.url("/a")], dest=dest, retries=3, retry_wait=0)
    (result,) = report.results
    assert result.status is Status.FAILED and "redirect" in (result.error or "")
    assert len(server.requests) == 1  # not worth a retry
    assert list(dest.iterdir()) == []


def test_a_run_leaves_no_connection_open(server: FaultServer, dest: Path) -> None:
    """Reused connections, and an entry that fails locally: all closed when fetch() returns."""
    server.add("/big.bin", b"x" * 2_000_000)
    for i in range(6):
        server.add(f"/small{i}.bin", b"small")
    (dest / "big.bin.part").mkdir(parents=True)  # the partial cannot be written
    report = fetch(
        [server.url("/big.bin"), *(server.url(f"/small{i}.bin") for i in range(6))],
        dest=dest,
        jobs=2,
        retries=0,
    )
    assert report.counts.ok == 6 and (dest / "small5.bin").read_bytes() == b"small"
    wait_until(lambda: server.active_connections() == 0, timeout=5)


def test_a_header_given_in_any_case_replaces_the_default(server: FaultServer, dest: Path) -> None:
    server.add("/a", b"a")
    fetch([server.url("/a")], dest=dest, headers=["user-agent: mine", "ACCEPT: text/plain"])
    (req,) = server.requests
    names = [name.lower() for name, _ in req.raw_headers]
    assert names.count("user-agent") == 1 and names.count("accept") == 1
    assert req.headers["user-agent"] == "mine" and req.headers["accept"] == "text/plain"
    assert req.headers["accept-encoding"] == "identity"
