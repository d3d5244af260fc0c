from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from downloader.progress import NULL_PROGRESS, NullReporter, TransferProgress
from downloader.results import Counts, Report, Result
from tests.server import FaultServer

JSON_KEYS = frozenset(
    {"url", "source", "path", "status", "bytes", "elapsed", "attempts", "http_status"}
    | {"resumed_from", "error", "http_version"}
)
"""SPEC 5: the keys of every ``--json`` object."""


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

    def message(self, text: str) -> None:
        with self.lock:
            self.messages.append(text)

    def run_finished(self, report: Report) -> None:
        self.finished = report


@pytest.fixture
def recorder() -> RecordingReporter:
    return RecordingReporter()
