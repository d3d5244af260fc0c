"""``--http`` (docs/options.md) and ``"http_version"`` (docs/output.md), through the command
line, against real servers.

nginx (``nginx_tls``) offers HTTP/2 over TLS on one port, HTTP/1.1 over TLS on another
and cleartext HTTP/1.1 on a third; caddy (``caddy_h3``) adds HTTP/3 over QUIC. Every
test checks three things: what pdl said (the JSON lines), what the server logged (the
protocol and the connection of each request), and the bytes on disk.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.nginx import Caddy, LoggedRequest, NginxTLS, TLSFiles

Server = NginxTLS | Caddy


@dataclass(frozen=True)
class Run:
    code: int
    lines: list[dict[str, Any]]
    stderr: str


def pdl(*args: str, timeout: float = 90) -> Run:
    """``python -m downloader fetch ARGS --json`` in a process of its own."""
    done = subprocess.run(
        [sys.executable, "-m", "downloader", "fetch", "--json", "--retry-wait", "0", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"),
    )
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return Run(done.returncode, lines, done.stderr)


@dataclass(frozen=True)
class Site:
    """Files of one test, under a folder of its own on a shared server."""

    server: Server
    folder: str  # "/<test name>/"
    bodies: dict[str, bytes]

    def urls(self, *, tls: bool = True, http2: bool = True) -> list[str]:
        paths = [self.folder + name for name in self.bodies]
        if isinstance(self.server, NginxTLS):
            return [self.server.url(path, tls=tls, http2=http2) for path in paths]
        assert tls and http2, "caddy serves TLS with HTTP/1.1, 2 and 3 on one port"
        return [self.server.url(path) for path in paths]

    def logged(self) -> list[LoggedRequest]:
        return self.server.wait_requests(len(self.bodies), self.folder)

    def assert_on_disk(self, dest: Path) -> None:
        assert sorted(p.name for p in dest.iterdir()) == sorted(self.bodies)
        for name, body in self.bodies.items():
            assert (dest / name).read_bytes() == body, name


def site(server: Server, request: pytest.FixtureRequest, count: int, size: int = 4096) -> Site:
    folder = "/" + re.sub(r"[^A-Za-z0-9_.-]", "_", request.node.name) + "/"
    bodies = {}
    for i in range(count):
        body = (f"{request.node.name} {i}\n".encode() * (size // 16 + 1))[:size]
        name = f"f{i:03d}.bin"
        server.add(folder + name, body)
        bodies[name] = body
    return Site(server, folder, bodies)


def assert_ok(run: Run, count: int, version: str) -> None:
    assert run.code == 0, run.stderr
    assert len(run.lines) == count, run.lines
    assert [line["status"] for line in run.lines] == ["ok"] * count, run.lines
    assert {line.get("http_version") for line in run.lines} == {version}, run.lines


@pytest.mark.parametrize("option", [[], ["--http", "2"]], ids=["default", "http-2"])
def test_https_gets_http2_by_default(
    nginx_tls: NginxTLS,
    tls_files: TLSFiles,
    dest: Path,
    request: pytest.FixtureRequest,
    option: list[str],
) -> None:
    files = site(nginx_tls, request, 12)
    run = pdl(*option, "--ca-bundle", str(tls_files.ca), "-d", str(dest), *files.urls())
    assert_ok(run, 12, "2")
    logged = files.logged()
    assert len(logged) == 12
    assert {(r.protocol, r.alpn, r.status) for r in logged} == {("HTTP/2.0", "h2", 200)}
    files.assert_on_disk(dest)


def test_many_files_from_one_host_share_few_connections(
    nginx_tls: NginxTLS, tls_files: TLSFiles, dest: Path, request: pytest.FixtureRequest
) -> None:
    """HTTP/2 multiplexes: 2 lanes carrying 16 downloads of 80 files need a connection or
    two each, not one per download (HTTP/1.1 would open 16)."""
    files = site(nginx_tls, request, 80, size=16 * 1024)
    args = ["-j", "16", "--threads", "2", "--ca-bundle", str(tls_files.ca), "-d", str(dest)]
    run = pdl(*args, *files.urls())
    assert_ok(run, 80, "2")
    logged = files.logged()
    assert len(logged) == 80 and {r.protocol for r in logged} == {"HTTP/2.0"}
    connections = {r.connection for r in logged}
    assert len(connections) <= 4, f"{len(connections)} connections for 80 files over 2 lanes"
    files.assert_on_disk(dest)


def test_http_1_1_is_never_above_1_1(
    nginx_tls: NginxTLS, tls_files: TLSFiles, dest: Path, request: pytest.FixtureRequest
) -> None:
    files = site(nginx_tls, request, 6)
    run = pdl("--http", "1.1", "--ca-bundle", str(tls_files.ca), "-d", str(dest), *files.urls())
    assert_ok(run, 6, "1.1")
    logged = files.logged()
    assert {(r.protocol, r.alpn) for r in logged} == {("HTTP/1.1", "http/1.1")}
    files.assert_on_disk(dest)


def test_http_1_1_keeps_its_connections_alive(
    nginx_tls: NginxTLS, tls_files: TLSFiles, dest: Path, request: pytest.FixtureRequest
) -> None:
    """Without HTTP/2 (a TLS server that offers only HTTP/1.1), 4 downloads at a time
    reuse their connections: at most 4 for 24 files, each carrying several requests."""
    files = site(nginx_tls, request, 24)
    args = ["-j", "4", "--ca-bundle", str(tls_files.ca), "-d", str(dest)]
    run = pdl(*args, *files.urls(http2=False))
    assert run.code == 0, run.stderr
    assert [line["status"] for line in run.lines] == ["ok"] * 24, run.lines
    logged = files.logged()
    assert len(logged) == 24 and {r.protocol for r in logged} == {"HTTP/1.1"}
    assert len({r.connection for r in logged}) <= 4
    files.assert_on_disk(dest)


def test_a_tls_server_without_http2_gets_1_1(
    nginx_tls: NginxTLS, tls_files: TLSFiles, dest: Path, request: pytest.FixtureRequest
) -> None:
    files = site(nginx_tls, request, 4)
    run = pdl("--ca-bundle", str(tls_files.ca), "-d", str(dest), *files.urls(http2=False))
    assert_ok(run, 4, "1.1")
    assert {(r.protocol, r.alpn) for r in files.logged()} == {("HTTP/1.1", "http/1.1")}
    files.assert_on_disk(dest)


@pytest.mark.parametrize(
    "option", [[], ["--http", "2"], ["--http", "3"]], ids=["default", "http-2", "http-3"]
)
def test_cleartext_http_is_1_1(
    nginx_tls: NginxTLS, dest: Path, request: pytest.FixtureRequest, option: list[str]
) -> None:
    """No h2c upgrade and no QUIC for http:// URLs, whatever --http says."""
    files = site(nginx_tls, request, 4)
    run = pdl(*option, "-d", str(dest), *files.urls(tls=False))
    assert_ok(run, 4, "1.1")
    assert {(r.protocol, r.tls) for r in files.logged()} == {("HTTP/1.1", "")}
    files.assert_on_disk(dest)


def test_verification_fails_without_the_ca_bundle(
    nginx_tls: NginxTLS, dest: Path, request: pytest.FixtureRequest
) -> None:
    """certifi's bundle does not know the test CA: a clear TLS error, nothing on disk,
    no request reached the server, and no retry (a certificate does not get better)."""
    files = site(nginx_tls, request, 2)
    run = pdl("--retries", "3", "-d", str(dest), *files.urls())
    assert run.code == 1, run.stderr
    assert [line["status"] for line in run.lines] == ["failed", "failed"], run.lines
    for line in run.lines:
        error = str(line["error"]).lower()
        assert "tls" in error or "ssl" in error, line
        assert "certificate" in error, line
        assert line["attempts"] == 1, line
    assert "certificate" in run.stderr.lower()
    assert list(dest.iterdir()) == []  # no file, no .part
    assert nginx_tls.requests(files.folder) == []


def test_insecure_downloads_without_verifying(
    nginx_tls: NginxTLS, dest: Path, request: pytest.FixtureRequest
) -> None:
    files = site(nginx_tls, request, 3)
    run = pdl("--insecure", "-d", str(dest), *files.urls())
    assert_ok(run, 3, "2")
    assert run.stderr.lower().count("warning") == 1 and "--insecure" in run.stderr
    assert {r.protocol for r in files.logged()} == {"HTTP/2.0"}
    files.assert_on_disk(dest)


def test_an_unknown_http_version_is_a_usage_error(dest: Path) -> None:
    run = pdl("--http", "4", "-d", str(dest), "https://127.0.0.1:9/f")
    assert run.code == 2 and "--http" in run.stderr
    assert run.lines == [] and list(dest.iterdir()) == []


def test_http_3_over_quic(
    caddy_h3: Caddy, tls_files: TLSFiles, dest: Path, request: pytest.FixtureRequest
) -> None:
    files = site(caddy_h3, request, 8)
    run = pdl("--http", "3", "--ca-bundle", str(tls_files.ca), "-d", str(dest), *files.urls())
    assert_ok(run, 8, "3")
    logged = files.logged()
    assert len(logged) == 8 and {r.protocol for r in logged} == {"HTTP/3.0"}
    files.assert_on_disk(dest)


def test_the_same_server_without_http_3_asked_gets_http2(
    caddy_h3: Caddy, tls_files: TLSFiles, dest: Path, request: pytest.FixtureRequest
) -> None:
    """HTTP/3 is opt-in: the default stays on TCP even where the server offers QUIC."""
    files = site(caddy_h3, request, 4)
    run = pdl("--ca-bundle", str(tls_files.ca), "-d", str(dest), *files.urls())
    assert_ok(run, 4, "2")
    assert {r.protocol for r in files.logged()} == {"HTTP/2.0"}
    files.assert_on_disk(dest)


def test_http_3_falls_back_to_http2_on_a_tcp_only_server(
    nginx_tls: NginxTLS, tls_files: TLSFiles, dest: Path, request: pytest.FixtureRequest
) -> None:
    """nginx here has no QUIC listener (the UDP port is closed): --http 3 still downloads."""
    files = site(nginx_tls, request, 4)
    run = pdl("--http", "3", "--ca-bundle", str(tls_files.ca), "-d", str(dest), *files.urls())
    assert_ok(run, 4, "2")
    assert {r.protocol for r in files.logged()} == {"HTTP/2.0"}
    files.assert_on_disk(dest)
