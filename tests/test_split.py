"""``-s N``: segment planning (pure), then split downloads against a real server."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from downloader import Status, fetch
from downloader.split import MIN_SEGMENT, plan_segments, splittable
from tests.server import Fault, FaultServer

MIB = 1024 * 1024
BODY = os.urandom(6 * MIB)


# -- planning ---------------------------------------------------------------------------------


@given(size=st.integers(0, 1 << 40), n=st.integers(1, 16))
def test_segments_cover_the_file_in_order(size: int, n: int) -> None:
    pieces = plan_segments(size, n)
    assert pieces[0][0] == 0 and pieces[-1][1] == size
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
    assert 1 <= len(pieces) <= n
    if len(pieces) > 1:
        sizes = [end - start for start, end in pieces]
        assert min(sizes) >= MIN_SEGMENT and max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize(
    ("headers", "length", "ok"),
    [
        ({"Accept-Ranges": "bytes"}, 64 * MIB, True),
        ({"Accept-Ranges": "none"}, 64 * MIB, False),
        ({}, 64 * MIB, False),
        ({"Accept-Ranges": "bytes"}, 16 * MIB, False),  # below --split-min-size
        ({"Accept-Ranges": "bytes"}, None, False),  # size unknown
    ],
)
def test_splittable(headers: dict[str, str], length: int | None, ok: bool) -> None:
    assert splittable(headers, length, 32 * MIB) is ok


# -- against a real server ----------------------------------------------------------------------


def _record(dest: Path, name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((dest / f"{name}.part.pdl").read_text())
    return data


def test_split_fetches_ranges_over_several_connections(server: FaultServer, dest: Path) -> None:
    server.add("/big.bin", BODY)
    report = fetch([server.url("/big.bin")], dest=dest, split=3, split_min_size="1M")
    assert report.counts.ok == 1 and report.results[0].bytes == len(BODY)
    assert (dest / "big.bin").read_bytes() == BODY
    reqs = server.requests_for("/big.bin")
    assert len(reqs) == 3
    ranged = sorted(r.headers["range"] for r in reqs[1:])
    assert ranged == ["bytes=2097152-4194303", "bytes=4194304-6291455"]
    assert all(
        r.headers["if-range"] == reqs[0].headers.get("if-range", r.headers["if-range"])
        for r in reqs[1:]
    )
    assert not (dest / "big.bin.part").exists() and not (dest / "big.bin.part.pdl").exists()


def test_small_files_and_servers_without_ranges_use_one_connection(
    server: FaultServer, dest: Path
) -> None:
    server.add("/small.bin", BODY[:MIB])  # under --split-min-size
    server.add("/noranges.bin", BODY, ranges=False)
    report = fetch(
        [server.url("/small.bin"), server.url("/noranges.bin")],
        dest=dest,
        split=4,
        split_min_size="2M",
    )
    assert report.counts.ok == 2
    assert (dest / "noranges.bin").read_bytes() == BODY
    assert len(server.requests_for("/small.bin")) == 1
    assert len(server.requests_for("/noranges.bin")) == 1


def test_per_host_caps_the_split_connections(server: FaultServer, dest: Path) -> None:
    server.add("/big.bin", BODY)
    report = fetch([server.url("/big.bin")], dest=dest, split=4, split_min_size="1M", per_host=2)
    assert report.counts.ok == 1 and (dest / "big.bin").read_bytes() == BODY
    assert len(server.requests_for("/big.bin")) == 2  # as many segments as connections
    assert server.max_in_flight <= 2


def test_interrupted_split_resumes_only_the_missing_bytes(server: FaultServer, dest: Path) -> None:
    """Segment 0 is cut after 100 KiB; the re-run fetches just the rest of segment 0."""
    server.add("/big.bin", BODY, faults=[Fault.truncate(100 * 1024)])
    first = fetch([server.url("/big.bin")], dest=dest, split=3, split_min_size="1M", retries=0)
    assert first.counts.failed == 1 and not (dest / "big.bin").exists()
    segments = _record(dest, "big.bin")["segments"]
    assert segments == [
        [0, 2 * MIB, 100 * 1024],
        [2 * MIB, 4 * MIB, 2 * MIB],
        [4 * MIB, 6 * MIB, 2 * MIB],
    ]
    server.clear_requests()
    again = fetch([server.url("/big.bin")], dest=dest, split=3, split_min_size="1M")
    assert again.counts.ok == 1 and (dest / "big.bin").read_bytes() == BODY
    (req,) = server.requests_for("/big.bin")
    assert req.headers["range"] == f"bytes={100 * 1024}-{2 * MIB - 1}"
    assert server.bytes_sent("/big.bin") == 2 * MIB - 100 * 1024
    assert again.results[0].resumed_from == 100 * 1024 + 4 * MIB


def test_split_partial_of_an_old_version_starts_over(server: FaultServer, dest: Path) -> None:
    server.add("/big.bin", BODY, faults=[Fault.truncate(1000)])
    fetch([server.url("/big.bin")], dest=dest, split=3, split_min_size="1M", retries=0)
    assert (dest / "big.bin.part.pdl").exists()
    new = bytes(reversed(BODY))
    server.set_body("/big.bin", new)  # a new ETag: If-Range gets the whole new file
    report = fetch([server.url("/big.bin")], dest=dest, split=3, split_min_size="1M")
    assert report.counts.ok == 1
    assert (dest / "big.bin").read_bytes() == new


def test_split_checks_the_checksum_of_the_whole_file(server: FaultServer, dest: Path) -> None:
    server.add("/big.bin", BODY)
    good = hashlib.sha256(BODY).hexdigest()
    bad = "0" * 64
    ok = fetch(
        [f"{server.url('/big.bin')} checksum=sha-256={good}"],
        dest=dest,
        split=3,
        split_min_size="1M",
    )
    assert ok.counts.ok == 1
    wrong = fetch(
        [f"{server.url('/big.bin')} out=other.bin checksum=sha-256={bad}"],
        dest=dest,
        split=3,
        split_min_size="1M",
        retries=0,
    )
    assert wrong.results[0].status is Status.FAILED and "mismatch" in (wrong.results[0].error or "")
    assert not (dest / "other.bin").exists() and not (dest / "other.bin.part").exists()


def test_a_damaged_segment_record_is_not_trusted(server: FaultServer, dest: Path) -> None:
    server.add("/big.bin", BODY, faults=[Fault.truncate(1000)])
    fetch([server.url("/big.bin")], dest=dest, split=3, split_min_size="1M", retries=0)
    record = _record(dest, "big.bin")
    record["segments"] = [[0, MIB, 10], [MIB * 3, 6 * MIB, 0]]  # a gap: not contiguous
    (dest / "big.bin.part.pdl").write_text(json.dumps(record))
    server.clear_requests()
    report = fetch([server.url("/big.bin")], dest=dest, split=3, split_min_size="1M")
    assert report.counts.ok == 1 and (dest / "big.bin").read_bytes() == BODY
    assert "range" not in server.requests_for("/big.bin")[0].headers  # started over


def test_an_error_status_on_a_segment_keeps_the_other_segments(
    server: FaultServer, dest: Path
) -> None:
    """A 503 with Retry-After on one segment: the host is held, finished segments stay."""
    server.add("/big.bin", BODY)
    served = itertools.count()

    def second_request_refused(path: str) -> Fault | None:
        return Fault.status(503, retry_after="1") if next(served) == 1 else None

    server.set_fault_policy(second_request_refused)
    report = fetch([server.url("/big.bin")], dest=dest, split=3, split_min_size="1M")
    (result,) = report.results
    assert result.status is Status.OK and result.attempts == 2
    assert (dest / "big.bin").read_bytes() == BODY
    seen = server.requests_for("/big.bin")
    assert len(seen) == 4  # the first GET, two segments, and the refused segment again
    refused = next(r for r in seen if r.fault == "status")
    (again,) = [
        r for r in seen if r.at > refused.at and r.headers.get("range") == refused.headers["range"]
    ]
    assert again.at - refused.at >= 0.9  # only after the Retry-After: nothing else fetched


def test_a_missing_file_on_a_segment_fails_without_losing_the_partial(
    server: FaultServer, dest: Path
) -> None:
    server.add("/big.bin", BODY)
    served = itertools.count()
    server.set_fault_policy(lambda path: Fault.status(404) if next(served) == 1 else None)
    report = fetch([server.url("/big.bin")], dest=dest, split=3, split_min_size="1M")
    (result,) = report.results
    assert result.status is Status.FAILED and "404" in (result.error or "")
    assert result.attempts == 1  # a 404 is not worth a retry
    assert not (dest / "big.bin").exists()
    done = sum(d for *_, d in _record(dest, "big.bin")["segments"])  # type: ignore[union-attr]
    assert done == 4 * MIB  # the two other segments are kept for a later run


class _Begins:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int | None, int]] = []

    def begin(self, name: str, total: int | None, initial: int) -> None:
        self.calls.append((name, total, initial))

    def update(self, n: int) -> None:
        pass


def test_a_split_download_names_its_bar(server: FaultServer, dest: Path) -> None:
    from tests.conftest import RecordingReporter

    progress = _Begins()

    class Reporter(RecordingReporter):
        def transfer_started(self, slot: int) -> _Begins:  # type: ignore[override]
            return progress

    server.add("/big.bin", BODY)
    fetch([server.url("/big.bin")], dest=dest, split=3, split_min_size="1M", reporter=Reporter())
    assert progress.calls == [("big.bin", len(BODY), 0)]
