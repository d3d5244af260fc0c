"""The server side: a real nginx on 127.0.0.1, or (smoke mode without nginx) the test server."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from benchmarks.corpus import Scenario

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


class Server(Protocol):
    name: str
    port: int
    tls_port: int | None  # TLS with HTTP/2 offered, when the server has it
    ca: Path | None  # what clients verify tls_port with

    def stop(self) -> None: ...


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@dataclass(frozen=True, slots=True)
class TLS:
    """A self-signed certificate for 127.0.0.1: clients verify with ``cert`` as their CA."""

    cert: Path
    key: Path
    port: int


def self_signed(where: Path) -> tuple[Path, Path]:
    """A P-256 certificate for 127.0.0.1 and localhost (CA:TRUE, so it is its own CA)."""
    key, crt = where / "tls.key", where / "tls.pem"
    args = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    args += [
        "-nodes",
        "-days",
        "2",
        "-keyout",
        str(key),
        "-out",
        str(crt),
        "-subj",
        "/CN=127.0.0.1",
    ]
    args += ["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]
    subprocess.run(["openssl", *args], check=True, capture_output=True)
    crt.chmod(0o644)
    return crt, key


def nginx_version(binary: str) -> tuple[int, ...]:
    shown = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    found = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", shown.stderr + shown.stdout)
    return tuple(int(part) for part in found.groups()) if found else (0, 0, 0)


def _tls_listen(tls: TLS, version: tuple[int, ...]) -> str:
    """A TLS listener offering HTTP/2 by ALPN (``http2 on`` from nginx 1.25.1, before
    that a parameter of ``listen``)."""
    if version >= (1, 25, 1):
        listen = f"        listen 127.0.0.1:{tls.port} ssl backlog=4096;\n        http2 on;\n"
    else:
        listen = f"        listen 127.0.0.1:{tls.port} ssl http2 backlog=4096;\n"
    return (
        listen + "        ssl_protocols TLSv1.2 TLSv1.3;\n"
        f"        ssl_certificate {tls.cert};\n        ssl_certificate_key {tls.key};\n"
        "        ssl_session_cache shared:pdl:1m;\n"
    )


def nginx_conf(
    root: Path,
    work: Path,
    port: int,
    scenarios: list[Scenario],
    tiny: bool = False,
    tls: TLS | None = None,
    version: tuple[int, ...] = (0, 0, 0),
) -> str:
    """The config; with *tiny*, ``/tiny/ANYTHING`` answers a 1-byte body ``x`` (no files);
    with *tls*, the same files also over TLS + HTTP/2 on ``tls.port``."""
    caps = "".join(
        f"        location /{s.name}/ {{ limit_rate {s.rate}; }}\n" for s in scenarios if s.rate
    )
    if tiny:
        caps += '        location /tiny/ { return 200 "x"; }\n'
    temps = "".join(
        f"    {kind}_temp_path {work / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # as root, workers would run as nobody, who may not reach a corpus under a 0700 folder
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""\
{user}daemon off;
worker_processes 2;
pid {work / "nginx.pid"};
error_log {work / "error.log"} warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    default_type application/octet-stream;
{temps}    server {{
        listen 127.0.0.1:{port} backlog=4096;
{_tls_listen(tls, version) if tls else ""}        root {root};
{caps}    }}
}}
"""


class Nginx:
    """nginx serving *root* (scenario folders below it), config and logs in *work*."""

    name = "nginx"

    def __init__(
        self,
        root: Path,
        work: Path,
        scenarios: list[Scenario],
        *,
        tiny: bool = False,
        tls: bool = False,
    ) -> None:
        """With *tls*, also a TLS + HTTP/2 port (``tls_port``) whose certificate is ``ca``."""
        work.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        version = nginx_version(binary)
        conf, pid = work / "nginx.conf", work / "nginx.pid"
        pair = self_signed(work) if tls else None
        self.ca: Path | None = pair[0] if pair else None
        self.tls_port: int | None = None
        for _attempt in range(3):  # the free port may be taken before nginx binds it
            self.port = free_port()
            cert = TLS(pair[0], pair[1], free_port()) if pair else None
            self.tls_port = cert.port if cert else None
            conf.write_text(nginx_conf(root, work, self.port, scenarios, tiny, cert, version))
            pid.unlink(missing_ok=True)
            self._proc = subprocess.Popen(
                [binary, "-p", str(work), "-c", str(conf)], stdin=subprocess.DEVNULL
            )
            if self._started(pid):
                return
            self.stop()
        log = (work / "error.log").read_text() if (work / "error.log").exists() else ""
        raise SystemExit(f"nginx did not start:\n{log}")

    @property
    def pid(self) -> int:
        """The master process (its workers are its children)."""
        return self._proc.pid

    def _started(self, pid: Path, timeout: float = 10.0) -> bool:
        """nginx writes its pid file once it listens; until then, or if it exits, wait or fail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._proc.poll() is None:
            if pid.exists():
                wait_listening(self.port)
                if self.tls_port:
                    wait_listening(self.tls_port)
                return True
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.terminate()  # SIGTERM: fast shutdown
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


class Fallback:
    """The project's test server (no rate cap); only for smoke runs on a machine without nginx."""

    name = "test server (no nginx)"
    tls_port: int | None = None
    ca: Path | None = None

    def __init__(self, root: Path, scenarios: list[Scenario], tiny: Iterable[str] = ()) -> None:
        """*tiny*: names served as ``/tiny/NAME`` with the body ``x``, as nginx's ``tiny``."""
        from tests.server import FaultServer

        self._server = FaultServer()
        for scenario in scenarios:
            for name in scenario.names():
                path = f"/{scenario.name}/{name}"
                self._server.add(path, (root / scenario.name / name).read_bytes())
        for name in tiny:
            self._server.add(f"/tiny/{name}", b"x")
        self.port = self._server.port

    def stop(self) -> None:
        self._server.stop()


def nginx_available() -> bool:
    return shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists()
