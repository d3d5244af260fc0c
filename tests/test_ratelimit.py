"""Politeness: the token bucket and host gate as pure values, then against a real server."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from downloader import Status, fetch
from downloader.ratelimit import HostGate, TokenBucket, host_of
from tests.server import Fault, FaultServer, wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- TokenBucket ---------------------------------------------------------------------------


def test_bucket_delays_reads_to_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000, burst=0.0, clock=clock)
    assert bucket.consume(500) == pytest.approx(0.5)
    assert bucket.consume(500) == pytest.approx(1.0)  # queued behind the first
    clock.now += 1.0
    assert bucket.consume(1000) == pytest.approx(1.0)


def test_bucket_average_stays_at_the_rate_over_a_long_run() -> None:
    """Reads of odd sizes, each followed by the wait it was given: 10 s of bytes take 10 s."""
    clock = FakeClock()
    bucket = TokenBucket(100_000, burst=0.25, clock=clock)
    start, moved = clock.now, 0
    for i in range(2000):
        n = 300 + (i * 7919) % 1200
        moved += n
        clock.now += bucket.consume(n)
    elapsed = clock.now - start
    assert moved / elapsed == pytest.approx(100_000, rel=0.05)


def test_bucket_idle_credit_is_capped_by_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000, burst=0.5, clock=clock)
    clock.now += 3600  # an hour idle earns at most half a second of bytes
    assert bucket.consume(500) == 0
    assert bucket.consume(500) == pytest.approx(0.5)


def test_bucket_is_shared_by_threads() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000, burst=0.0, clock=clock)
    waits: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(100):
            w = bucket.consume(10)
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(waits) == pytest.approx(4.0)  # 4000 bytes at 1000/s, nothing lost


@pytest.mark.parametrize(("rate", "size"), [(100, 4096), (10_000_000, 262_144), (50_000, 5000)])
def test_bucket_chunk_size(rate: int, size: int) -> None:
    assert TokenBucket(rate).chunk_size(262_144) == size


def test_bucket_rejects_a_zero_rate() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)


# -- HostGate ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://Example.ORG/a", "example.org"),
        ("https://example.org:8443/a", "example.org:8443"),
        ("http://u:p@example.org/a", "example.org"),
    ],
)
def test_host_of(url: str, host: str) -> None:
    assert host_of(url) == host


def test_gate_hold_applies_to_its_host_only_and_ends() -> None:
    clock = FakeClock()
    gate = HostGate(None, clock=clock)
    gate.hold("a", 30)
    assert gate.delay("a") == pytest.approx(30)
    assert gate.delay("b") == 0
    gate.hold("a", 5)  # a shorter hold does not cut a longer one
    clock.now += 29
    assert gate.delay("a") == pytest.approx(1)
    clock.now += 1
    assert gate.delay("a") == 0


def test_gate_slots_limit_each_host() -> None:
    gate = HostGate(2)
    with gate.slot("a", lambda: False), gate.slot("a", lambda: False):
        assert gate.busy("a") == 2
        with gate.slot("b", lambda: False):
            assert gate.busy("b") == 1
        got: list[bool] = []
        cancelled = threading.Event()

        def third() -> None:
            with gate.slot("a", cancelled.is_set) as ok:
                got.append(ok)

        t = threading.Thread(target=third)
        t.start()
        cancelled.set()  # the third waits for a slot until the run is cancelled
        t.join(timeout=5)
        assert got == [False]
    assert gate.busy("a") == 0


def test_gate_waiter_gets_the_freed_slot() -> None:
    gate = HostGate(1)
    entered = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def first() -> None:
        with gate.slot("h", lambda: False):
            entered.set()
            release.wait(5)
            order.append("first done")

    def second() -> None:
        entered.wait(5)
        with gate.slot("h", lambda: False):
            order.append("second in")

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    entered.wait(5)
    release.set()
    for t in threads:
        t.join(timeout=5)
    assert order == ["first done", "second in"]


def test_gate_rejects_zero_per_host() -> None:
    with pytest.raises(ValueError):
        HostGate(0)


# -- against a real server ------------------------------------------------------------------


def test_per_host_caps_the_requests_in_flight(server: FaultServer, dest: Path) -> None:
    """Six stalled files, -j 6 --per-host 2: never more than two answers in progress."""
    for i in range(6):
        server.add(f"/f{i}", b"x" * 2000, faults=[Fault.stall(100)])
    urls = [server.url(f"/f{i}") for i in range(6)]
    outcome: dict[str, object] = {}

    def go() -> None:
        outcome["report"] = fetch(urls, dest=dest, jobs=6, per_host=2, retry_wait=0)

    runner = threading.Thread(target=go)
    runner.start()
    try:
        wait_until(lambda: server.stalled_count() == 2, timeout=10)  # two at once, held
    finally:
        deadline = time.monotonic() + 30
        while runner.is_alive() and time.monotonic() < deadline:
            server.release_stalls()  # the rest stall in turn; let each go
            runner.join(0.05)
    report = outcome["report"]
    assert report.counts.ok == 6  # type: ignore[attr-defined]
    assert server.max_in_flight == 2


def test_retry_after_holds_back_every_request_to_that_host(server: FaultServer, dest: Path) -> None:
    """A 503 with Retry-After: 1 to /a holds /b and /c back too, not only /a's retry."""
    server.add("/a", b"a", faults=[Fault.status(503, retry_after="1")])
    server.add("/b", b"b")
    server.add("/c", b"c")
    urls = [server.url(p) for p in ("/a", "/b", "/c")]
    report = fetch(urls, dest=dest, jobs=3, per_host=1)
    assert [r.status for r in report.results] == [Status.OK] * 3
    seen = server.requests
    (refused,) = [i for i, r in enumerate(seen) if r.fault == "status"]
    later = seen[refused + 1 :]
    assert {r.path for r in later} >= {"/a"}  # /a's retry, and whatever was queued behind it
    assert all(r.at - seen[refused].at >= 0.9 for r in later)


def test_limit_rate_keeps_the_total_rate(server: FaultServer, dest: Path) -> None:
    """Three 64 KiB files at 256 KiB/s over three jobs take at least 0.75 s less the burst."""
    for i in range(3):
        server.add(f"/f{i}", bytes([i]) * 65536)
    started = time.monotonic()
    report = fetch([server.url(f"/f{i}") for i in range(3)], dest=dest, jobs=3, limit_rate="256K")
    elapsed = time.monotonic() - started
    assert report.counts.ok == 3
    assert elapsed >= 0.75 - 0.25
    assert all((dest / f"f{i}").read_bytes() == bytes([i]) * 65536 for i in range(3))
