"""The engine against a real server: concurrency, bounded submission, streaming, cancel."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from downloader import Status, fetch
from downloader.cancel import CancelToken
from downloader.client import ClientConfig, ProxyRoutes
from downloader.engine import IN_FLIGHT_PER_JOB, client_config
from downloader.options import Options
from tests.conftest import RecordingReporter
from tests.server import Fault, FaultServer, wait_until


def test_runs_jobs_downloads_at_once_and_no_more(
    server: FaultServer, dest: Path, recorder: RecordingReporter
) -> None:
    for i in range(8):
        server.add(f"/f{i}", b"x" * 1000, faults=[Fault.stall(10)] if i < 4 else [])
    urls = [server.url(f"/f{i}") for i in range(8)]
    outcome: dict[str, object] = {}

    def go() -> None:
        outcome["report"] = fetch(urls, dest=dest, jobs=4, retry_wait=0, reporter=recorder)

    thread = threading.Thread(target=go)
    thread.start()
    try:
        wait_until(lambda: server.stalled_count() == 4, message="4 transfers busy")
        assert len(server.requests) == 4  # the 5th waits for a free worker
    finally:
        server.release_stalls()
        thread.join(10)
    report = outcome["report"]
    assert report.counts.ok == 8  # type: ignore[attr-defined]
    assert recorder.slots == {0, 1, 2, 3}


def test_reuses_connections_per_worker(server: FaultServer, dest: Path) -> None:
    for i in range(30):
        server.add(f"/f{i}", b"y" * 5000)
    report = fetch([server.url(f"/f{i}") for i in range(30)], dest=dest, jobs=3)
    assert report.counts.ok == 30
    assert all((dest / f"f{i}").read_bytes() == b"y" * 5000 for i in range(30))
    assert len(server.requests_for("/f0")) == 1  # a request per file, on few connections
    assert 1 <= server.connections_opened <= 3


def test_list_is_consumed_lazily_with_bounded_submission(server: FaultServer, dest: Path) -> None:
    jobs = 2
    for i in range(50):
        server.add(f"/f{i}", b"z", faults=[Fault.stall(0)] if i < jobs else [])
    pulled = 0

    def items() -> Iterator[str]:
        nonlocal pulled
        for i in range(50):
            pulled += 1
            yield server.url(f"/f{i}")

    thread = threading.Thread(target=lambda: fetch(items(), dest=dest, jobs=jobs, retry_wait=0))
    thread.start()
    try:
        wait_until(lambda: server.stalled_count() == jobs)
        # downloads started before the list was read, and only a few entries wait in line
        assert pulled <= jobs * IN_FLIGHT_PER_JOB + 1
    finally:
        server.release_stalls()
        thread.join(20)
    assert pulled == 50


def test_downloads_start_before_the_list_ends(server: FaultServer, dest: Path) -> None:
    server.add("/first", b"1")
    server.add("/second", b"2")
    first_seen = threading.Event()

    def items() -> Iterator[str]:
        yield server.url("/first")
        yield server.url("/second")  # parsing needs one line of look-ahead at most
        assert first_seen.wait(10), "the first download did not start while the list was open"
        yield server.url("/second") + " out=again"

    def watch() -> None:
        wait_until(lambda: len(server.requests_for("/first")) == 1, timeout=10)
        first_seen.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    report = fetch(items(), dest=dest, jobs=2)
    watcher.join()
    assert report.counts.ok == 3


def test_bad_lines_and_duplicates(server: FaultServer, dest: Path) -> None:
    server.add("/a", b"a")
    urls = [server.url("/a"), "ftp://nope/x", server.url("/a"), server.url("/a") + " out=b"]
    report = fetch(urls, dest=dest)
    assert report.counts.ok == 2 and report.counts.failed == 1
    assert len(server.requests_for("/a")) == 2  # the exact duplicate ran once
    (bad,) = report.failed
    assert bad.source == "<args>:2" and "unsupported scheme" in (bad.error or "")


def test_dry_run_plans_names_and_downloads_nothing(
    server: FaultServer, tmp_path: Path, recorder: RecordingReporter
) -> None:
    dest = tmp_path / "never-created"
    urls = [server.url("/x/f.txt"), server.url("/y/f.txt"), server.url("/z") + " out=s/o.bin"]
    report = fetch(urls, dest=dest, dry_run=True, reporter=recorder)
    assert recorder.planned_paths == [
        (urls[0], str(dest / "f.txt")),
        (urls[1], str(dest / "f.1.txt")),
        (server.url("/z"), str(dest / "s" / "o.bin")),
    ]
    assert server.requests == [] and not dest.exists()
    assert report.exit_code == 0


def test_cancel_stops_stalled_transfers_and_keeps_parts(server: FaultServer, dest: Path) -> None:
    big = b"q" * (2 << 20)
    for i in range(3):
        server.add(f"/f{i}.bin", big, faults=[Fault.stall(512 * 1024)])
    cancel = CancelToken()
    outcome: dict[str, object] = {}

    def go() -> None:
        urls = [server.url(f"/f{i}.bin") for i in range(3)] + [server.url("/never")]
        outcome["report"] = fetch(urls, dest=dest, jobs=3, timeout=60, cancel=cancel)

    thread = threading.Thread(target=go)
    thread.start()
    parts = [dest / f"f{i}.bin.part" for i in range(3)]
    wait_until(lambda: all(p.exists() and p.stat().st_size == 512 * 1024 for p in parts))
    cancel.cancel()
    thread.join(5)  # stalled sockets are shut down: no waiting for the 60 s timeout
    assert not thread.is_alive()
    report = outcome["report"]
    assert report.interrupted and report.exit_code == 130  # type: ignore[attr-defined]
    assert all(r.status is Status.INTERRUPTED for r in report.results)  # type: ignore[attr-defined]
    assert server.requests_for("/never") == []
    for i in range(3):
        assert not (dest / f"f{i}.bin").exists()
        assert (dest / f"f{i}.bin.part").stat().st_size == 512 * 1024
        assert (dest / f"f{i}.bin.part.pdl").exists()  # what resume needs stays beside it


def test_proxy_routes_honour_no_proxy() -> None:
    routes = ProxyRoutes((("http", "http://proxy:3128"), ("no", "localhost,.internal")))
    assert routes.proxy_for("http://example.org/a") == "http://proxy:3128"
    assert routes.proxy_for("https://example.org/a") is None  # no https_proxy set
    assert routes.proxy_for("http://files.internal/a") is None  # no_proxy: direct
    assert ProxyRoutes().proxy_for("http://example.org/") is None
    everything = ProxyRoutes((("all", "http://p:1"),))
    assert everything.proxy_for("https://example.org/") == "http://p:1"


def test_proxy_from_the_environment_is_used(
    server: FaultServer, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = FaultServer()
    try:
        monkeypatch.delenv("NO_PROXY")
        monkeypatch.setenv("http_proxy", proxy.base_url)
        fetch(["http://files.example/a.bin"], dest=dest, retries=0)
        (request,) = proxy.requests
        assert request.target == "http://files.example/a.bin"  # asked of the proxy
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        server.add("/b.bin", b"b")
        assert fetch([server.url("/b.bin")], dest=dest).counts.ok == 1
        assert len(proxy.requests) == 1  # no_proxy went direct
    finally:
        proxy.stop()


def test_ca_bundle_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/env/ca.pem")
    assert client_config(Options()).verify == "/env/ca.pem"
    assert client_config(Options(ca_bundle=tmp_path / "x.pem")).verify == str(tmp_path / "x.pem")
    assert client_config(Options(insecure=True)).verify is False
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/env/curl.pem")
    assert ClientConfig.ca_setting(insecure=False, ca_bundle=None) == "/env/curl.pem"
    monkeypatch.delenv("CURL_CA_BUNDLE")
    assert ClientConfig.ca_setting(insecure=False, ca_bundle=None) is True


def test_a_bug_in_a_lane_fails_the_run_loudly_instead_of_hanging(
    server: FaultServer, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import downloader.lanes as lanes

    def broken(self: object, now: float) -> None:
        raise RuntimeError("a bug in the lane")

    monkeypatch.setattr(lanes._Lane, "_fire_timers", broken)
    for i in range(20):
        server.add(f"/f{i}", b"x")
    outcome: dict[str, BaseException] = {}

    def go() -> None:
        try:
            fetch([server.url(f"/f{i}") for i in range(20)], dest=dest, jobs=2)
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=go)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "the run hung"
    assert isinstance(outcome.get("error"), RuntimeError)
