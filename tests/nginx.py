"""Real servers that tests start: nginx with TLS and HTTP/2, and caddy with HTTP/3.

``NginxTLS`` runs one nginx in the foreground (``daemon off``) with its own prefix,
pid file, temp folders and logs under a folder of the test's, on three ephemeral
ports of 127.0.0.1 that serve one docroot:

- ``url(path)``: TLS with HTTP/2 offered by ALPN (``h2``, then ``http/1.1``);
- ``url(path, http2=False)``: TLS, HTTP/1.1 only;
- ``url(path, tls=False)``: cleartext HTTP/1.1.

The certificate is issued at start by a CA made with ``trustme``; clients verify with
the PEM file ``ca``. Every request is logged as one JSON object with nginx's own view
of it (``$server_protocol``, ``$connection``, ``$ssl_alpn_protocol``, ...), read back
with ``requests()``, so a test can assert the HTTP version and connection reuse at
the server, not from what the client says.

``Caddy`` (``apt-get install caddy``, 2.6 in Debian 12) serves a docroot over TLS on
one port for TCP (HTTP/1.1 and HTTP/2) and UDP (HTTP/3 over QUIC), with the same kind
of log. Debian's nginx 1.22 has no ``http_v3_module`` (nginx has it from 1.25).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

_START_TIMEOUT: Final = 15.0
_STOP_TIMEOUT: Final = 10.0

_LOG_FORMAT: Final = (
    '{"port":"$server_port","protocol":"$server_protocol","connection":"$connection",'
    '"connection_requests":"$connection_requests","method":"$request_method",'
    '"uri":"$request_uri","status":"$status","bytes":"$body_bytes_sent",'
    '"range":"$http_range","user_agent":"$http_user_agent","tls":"$ssl_protocol",'
    '"alpn":"$ssl_alpn_protocol"}'
)


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found is None and Path("/usr/sbin/nginx").exists():
        found = "/usr/sbin/nginx"
    return found


def caddy_binary() -> str | None:
    return shutil.which("caddy")


def nginx_version(binary: str) -> tuple[int, ...]:
    shown = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", shown.stderr + shown.stdout)
    return tuple(int(part) for part in match.groups()) if match else (0, 0, 0)


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    """One request as the server logged it."""

    port: int
    protocol: str  # "HTTP/2.0", "HTTP/1.1", "HTTP/3.0"
    connection: str  # the server's serial number of the connection
    method: str
    uri: str
    status: int
    bytes: int  # body bytes sent
    range: str  # the Range request header, "" if none
    user_agent: str
    tls: str  # "TLSv1.3", "" for cleartext
    alpn: str  # "h2", "http/1.1", "" for cleartext


@dataclass(frozen=True, slots=True)
class TLSFiles:
    ca: Path  # the CA certificate (PEM): what a client verifies with
    cert: Path  # the server's certificate chain (PEM)
    key: Path  # the server's private key (PEM)


def issue_certificate(where: Path) -> TLSFiles:
    """A new CA and a certificate for 127.0.0.1 and localhost signed by it, as PEM files."""
    import trustme

    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    files = TLSFiles(ca=where / "ca.pem", cert=where / "server.pem", key=where / "server.key")
    ca.cert_pem.write_to_path(str(files.ca))
    with open(files.cert, "wb") as chain:
        for blob in issued.cert_chain_pems:
            chain.write(blob.bytes())
    issued.private_key_pem.write_to_path(str(files.key))
    return files


class _Process:
    """A server in the foreground; its log of JSON lines; stopped for sure."""

    name = "server"

    def __init__(self, docroot: Path, work: Path, tls: TLSFiles) -> None:
        self.docroot = docroot
        self.work = work
        self.tls = tls
        self.ca = tls.ca
        self.access_log = work / "access.log"
        self.error_log = work / "error.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def _launch(
        self, argv: list[str], ready: Callable[[], bool], env: dict[str, str] | None = None
    ) -> bool:
        """Start *argv*; True once *ready*, False (stopped) if it exits or the deadline passes."""
        with open(self.work / "stdout.txt", "ab") as out:
            self._proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline and self._proc.poll() is None:
            if ready():
                return True
            time.sleep(0.02)
        self.stop()
        return False

    def _startup_failure(self) -> str:
        said = [
            path.read_text(errors="replace")[-3000:]
            for path in (self.error_log, self.work / "stdout.txt")
            if path.exists()
        ]
        return f"{self.name} did not start:\n" + "\n".join(said)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()  # nginx: fast shutdown; caddy: graceful stop
        try:
            proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def add(self, path: str, body: bytes) -> None:
        """Serve *body* at *path* (``/dir/name``), on every port."""
        target = self.docroot / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
        target.chmod(0o644)

    def requests(self, under: str = "/") -> list[LoggedRequest]:
        """The requests logged so far whose path starts with *under*, in log order."""
        if not self.access_log.exists():
            return []
        found = []
        for line in self.access_log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                entry = self._parse(line)
                if entry is not None and entry.uri.startswith(under):
                    found.append(entry)
        return found

    def wait_requests(
        self, count: int, under: str = "/", timeout: float = 5.0
    ) -> list[LoggedRequest]:
        """``requests(under)`` once at least *count* are logged (a server logs after the
        response is sent, so a client can be done before its last request is logged)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.requests(under)
            if len(found) >= count or time.monotonic() >= deadline:
                return found
            time.sleep(0.02)

    def _parse(self, line: str) -> LoggedRequest | None:
        raise NotImplementedError


class NginxTLS(_Process):
    """nginx on 127.0.0.1: TLS with HTTP/2, TLS with HTTP/1.1 only, and cleartext."""

    name = "nginx"

    def __init__(self, docroot: Path, work: Path, tls: TLSFiles) -> None:
        super().__init__(docroot, work, tls)
        binary = nginx_binary()
        if binary is None:
            raise RuntimeError("nginx is not installed (apt-get install nginx)")
        self.version = nginx_version(binary)
        conf = work / "nginx.conf"
        for _attempt in range(3):  # a free port may be taken before nginx binds it
            self.port, self.h1_port, self.plain_port = (free_port() for _ in range(3))
            conf.write_text(self._config())
            argv = [binary, "-p", str(work), "-e", str(self.error_log), "-c", str(conf)]
            if self._launch(argv, self._listening):
                return
        raise RuntimeError(self._startup_failure())

    def _listening(self) -> bool:
        return all(_port_open(p) for p in (self.port, self.h1_port, self.plain_port))

    def _config(self) -> str:
        work = self.work
        temps = "".join(
            f"    {kind}_temp_path {work / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        if self.version >= (1, 25, 1):  # "listen ... http2" is deprecated there
            h2_listen, h2_on = f"listen 127.0.0.1:{self.port} ssl;", "http2 on;"
        else:
            h2_listen, h2_on = f"listen 127.0.0.1:{self.port} ssl http2;", ""
        # as root the workers would run as nobody, who cannot read a test's 0700 folders
        user = "user root;\n" if os.geteuid() == 0 else ""
        tls = (
            "        ssl_protocols TLSv1.2 TLSv1.3;\n"
            f"        ssl_certificate {self.tls.cert};\n"
            f"        ssl_certificate_key {self.tls.key};\n"
        )
        body = f"        root {self.docroot};\n        default_type application/octet-stream;\n"
        return f"""\
{user}daemon off;
worker_processes 1;
pid {work / "nginx.pid"};
error_log {self.error_log} warn;
events {{ worker_connections 1024; }}
http {{
    log_format pdl escape=json '{_LOG_FORMAT}';
    access_log {self.access_log} pdl;
    keepalive_requests 100000;
    keepalive_timeout 60s;
{temps}    server {{
        {h2_listen}
        {h2_on}
{tls}{body}    }}
    server {{
        listen 127.0.0.1:{self.h1_port} ssl;
{tls}{body}    }}
    server {{
        listen 127.0.0.1:{self.plain_port};
{body}    }}
}}
"""

    def url(self, path: str = "/", *, tls: bool = True, http2: bool = True) -> str:
        if not tls:
            return f"http://127.0.0.1:{self.plain_port}{path}"
        return f"https://127.0.0.1:{self.port if http2 else self.h1_port}{path}"

    def _parse(self, line: str) -> LoggedRequest:
        raw = json.loads(line)
        return LoggedRequest(
            port=int(raw["port"]),
            protocol=raw["protocol"],
            connection=raw["connection"],
            method=raw["method"],
            uri=raw["uri"],
            status=int(raw["status"]),
            bytes=int(raw["bytes"]),
            range=raw["range"],
            user_agent=raw["user_agent"],
            tls=raw["tls"],
            alpn=raw["alpn"],
        )


class Caddy(_Process):
    """caddy on 127.0.0.1: one port, TLS over TCP (HTTP/1.1, HTTP/2) and QUIC (HTTP/3)."""

    name = "caddy"

    def __init__(self, docroot: Path, work: Path, tls: TLSFiles) -> None:
        super().__init__(docroot, work, tls)
        binary = caddy_binary()
        if binary is None:
            raise RuntimeError("caddy is not installed (apt-get install caddy)")
        conf = work / "caddy.json"
        # caddy keeps its state (autosave.json, locks) under HOME and the XDG folders
        env = dict(os.environ, HOME=str(work), XDG_DATA_HOME=str(work / "data"))
        env["XDG_CONFIG_HOME"] = str(work / "config")
        for _attempt in range(3):
            self.port = free_port()
            conf.write_text(json.dumps(self._config()))
            argv = [binary, "run", "--config", str(conf)]
            if self._launch(argv, self._serving, env):
                return
        raise RuntimeError(self._startup_failure())

    def _serving(self) -> bool:
        """TCP accepts, and the QUIC listener is up (caddy logs this line after starting it)."""
        if not (self.error_log.exists() and _port_open(self.port)):
            return False
        return "serving initial configuration" in self.error_log.read_text(errors="replace")

    def _config(self) -> dict[str, object]:
        return {
            "admin": {"disabled": True},
            "logging": {
                "logs": {
                    "default": {"writer": {"output": "file", "filename": str(self.error_log)}},
                    "access": {
                        "writer": {"output": "file", "filename": str(self.access_log)},
                        "encoder": {"format": "json"},
                        "include": ["http.log.access.pdl"],
                    },
                }
            },
            "apps": {
                "http": {
                    "http_port": free_port(),
                    "https_port": self.port,
                    "servers": {
                        "pdl": {
                            "listen": [f"127.0.0.1:{self.port}"],
                            "protocols": ["h1", "h2", "h3"],
                            "automatic_https": {"disable": True},
                            "tls_connection_policies": [
                                {"certificate_selection": {"any_tag": ["pdl"]}}
                            ],
                            "logs": {"default_logger_name": "pdl"},
                            "routes": [
                                {"handle": [{"handler": "file_server", "root": str(self.docroot)}]}
                            ],
                        }
                    },
                },
                "tls": {
                    "certificates": {
                        "load_files": [
                            {
                                "certificate": str(self.tls.cert),
                                "key": str(self.tls.key),
                                "tags": ["pdl"],
                            }
                        ]
                    }
                },
            },
        }

    def url(self, path: str = "/") -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def _parse(self, line: str) -> LoggedRequest | None:
        raw = json.loads(line)
        request = raw.get("request")
        if not isinstance(request, dict):
            return None
        headers = request.get("headers", {})
        tls = request.get("tls", {})
        _host, _, port = str(request.get("host", "")).rpartition(":")
        return LoggedRequest(
            port=int(port) if port.isdigit() else self.port,
            protocol=str(request.get("proto", "")),
            connection=str(request.get("remote_port", "")),
            method=str(request.get("method", "")),
            uri=str(request.get("uri", "")),
            status=int(raw.get("status", 0)),
            bytes=int(raw.get("size", 0)),
            range=", ".join(headers.get("Range", [])),
            user_agent=", ".join(headers.get("User-Agent", [])),
            tls="TLS" if tls else "",
            alpn=str(tls.get("proto", "")),
        )
