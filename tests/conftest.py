from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from downloader.progress import NULL_PROGRESS, Event, NullReporter, TransferProgress, describe
from downloader.results import Counts, Report, Result
from tests.server import FaultServer

JSON_KEYS = frozenset(
    {"url", "source", "path", "status", "bytes", "elapsed", "attempts", "http_status"}
    | {"resumed_from", "error", "http_version", "mirror"}
)
"""docs/output.md: the keys of every ``--json`` object."""


@pytest.fixture
def server() -> Iterator[FaultServer]:
    srv = FaultServer()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests talk to 127.0.0.1 only: no proxy from the environment may get in the way."""
    for name in (
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "*")


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    path = tmp_path / "dest"
    path.mkdir()
    return path


class RecordingReporter(NullReporter):
    """Keeps what the engine reported, for assertions."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.results: list[Result] = []
        self.messages: list[str] = []
        self.planned_paths: list[tuple[str, str]] = []
        self.slots: set[int] = set()
        self.list_total: int | None = None
        self.finished: Report | None = None

    def list_read(self, total: int) -> None:
        self.list_total = total

    def transfer_started(self, slot: int) -> TransferProgress:
        with self.lock:
            self.slots.add(slot)
        return NULL_PROGRESS

    def result(self, result: Result, counts: Counts) -> None:
        with self.lock:
            self.results.append(result)

    def planned(self, url: str, source: str, path: str) -> None:
        self.planned_paths.append((url, path))

    def event(self, slot: int, event: Event) -> None:
        """Typed events are kept as their ``-v`` lines, beside the free-text messages."""
        text = describe(event)
        if text is not None:
            with self.lock:
                self.messages.append(text)

    def message(self, text: str) -> None:
        with self.lock:
            self.messages.append(text)

    def warning(self, text: str) -> None:
        self.message(text)

    def run_finished(self, report: Report) -> None:
        self.finished = report


@pytest.fixture
def recorder() -> RecordingReporter:
    return RecordingReporter()


# Real servers (tests/nginx.py). Imported here, below the rest, so that this part is an
# addition of its own.
import os  # noqa: E402

from tests.nginx import (  # noqa: E402
    Caddy,
    NginxTLS,
    TLSFiles,
    caddy_binary,
    issue_certificate,
    nginx_binary,
)


def _server_missing(what: str, install: str) -> None:
    """Skip a test whose server is not installed; in CI (where .ci/run installs it), fail."""
    reason = f"{what} is not installed ({install}); .ci/run installs it"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A CA (``.ca``, what clients verify with) and a certificate for 127.0.0.1 it signed."""
    return issue_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def nginx_tls(tmp_path_factory: pytest.TempPathFactory, tls_files: TLSFiles) -> Iterator[NginxTLS]:
    """A real nginx for the whole session: ``url(path)`` is TLS + HTTP/2, ``url(path,
    http2=False)`` TLS + HTTP/1.1, ``url(path, tls=False)`` cleartext; ``add(path, body)``
    serves a file, ``requests(under)`` / ``wait_requests(n, under)`` read its access log.
    Tests share it: give each its own folder (``/<test name>/...``) and read only that."""
    if nginx_binary() is None:
        _server_missing("nginx", "apt-get install nginx")
    srv = NginxTLS(tmp_path_factory.mktemp("www"), tmp_path_factory.mktemp("nginx"), tls_files)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def caddy_h3(tmp_path_factory: pytest.TempPathFactory, tls_files: TLSFiles) -> Iterator[Caddy]:
    """A real caddy for the whole session: ``url(path)`` on one port over TCP (HTTP/1.1,
    HTTP/2) and UDP (HTTP/3); the same ``add`` / ``requests`` / ``wait_requests`` as nginx."""
    if caddy_binary() is None:
        _server_missing("caddy", "apt-get install caddy")
    srv = Caddy(tmp_path_factory.mktemp("www3"), tmp_path_factory.mktemp("caddy"), tls_files)
    try:
        yield srv
    finally:
        srv.stop()
