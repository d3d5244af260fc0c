"""One transfer against a real HTTP server: resume, faults, redirects, verification."""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from downloader import Report, Status, fetch
from downloader.storage import ResumeRecord, open_folder, record_name
from downloader.wire import parse_content_range
from tests.conftest import RecordingReporter
from tests.server import Fault, FaultServer

UNIT = 256 * 1024
"""Fault offsets are multiples of this; BIG is 8 of them."""
BIG = bytes(range(256)) * 4096 * 2  # 2 MiB: large enough to keep a resume record


def run(urls: list[str], dest: Path, **kwargs: Any) -> Report:
    kwargs.setdefault("retry_wait", 0.0)
    kwargs.setdefault("timeout", 5.0)
    return fetch(urls, dest=dest, **kwargs)


def only(report: Report) -> Any:
    assert len(report.results) == 1, report.results
    return report.results[0]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_downloads_bytes_exactly_and_asks_for_identity(server: FaultServer, dest: Path) -> None:
    server.add("/a.bin", BIG)
    result = only(run([server.url("/a.bin")], dest))
    assert result.status is Status.OK
    assert (dest / "a.bin").read_bytes() == BIG
    assert result.bytes == len(BIG) and result.attempts == 1 and result.http_status == 200
    request = server.requests_for("/a.bin")[0]
    assert request.headers["accept-encoding"] == "identity"
    assert request.headers["user-agent"].startswith("pdl/")
    assert sorted(os.listdir(dest)) == ["a.bin"]


def test_saves_encoded_bytes_as_served(server: FaultServer, dest: Path) -> None:
    body = gzip.compress(b"hello " * 1000)
    server.add("/page.gz", body, headers={"Content-Encoding": "gzip"})
    assert only(run([server.url("/page.gz")], dest)).status is Status.OK
    assert (dest / "page.gz").read_bytes() == body


def test_truncated_body_resumes_with_range_and_if_range(server: FaultServer, dest: Path) -> None:
    server.add("/a.bin", BIG, faults=[Fault.truncate(UNIT * 3)])
    result = only(run([server.url("/a.bin")], dest))
    assert result.status is Status.OK
    assert (dest / "a.bin").read_bytes() == BIG
    first, second = server.requests_for("/a.bin")
    assert "range" not in first.headers
    kept = int(second.headers["range"].removeprefix("bytes=").rstrip("-"))
    assert 0 < kept <= UNIT * 3
    assert second.headers["if-range"] == server_etag(first, server)
    assert result.resumed_from == kept and result.attempts == 2
    assert sorted(os.listdir(dest)) == ["a.bin"]


def server_etag(_request: Any, server: FaultServer) -> str:
    from tests.server import auto_etag

    return auto_etag(BIG)


def test_reset_mid_body_is_retried_and_resumed(server: FaultServer, dest: Path) -> None:
    server.add("/a.bin", BIG, faults=[Fault.reset(UNIT * 2)])
    result = only(run([server.url("/a.bin")], dest))
    assert result.status is Status.OK, result.error
    assert (dest / "a.bin").read_bytes() == BIG
    assert len(server.requests_for("/a.bin")) == 2


def test_stalled_body_times_out_and_resumes(server: FaultServer, dest: Path) -> None:
    server.add("/a.bin", BIG, faults=[Fault.stall(UNIT * 2)])
    result = only(run([server.url("/a.bin")], dest, timeout=0.5))
    assert result.status is Status.OK, result.error
    assert (dest / "a.bin").read_bytes() == BIG
    assert "range" in server.requests_for("/a.bin")[1].headers


def test_ignored_range_restarts_from_zero(server: FaultServer, dest: Path) -> None:
    server.add("/a.bin", BIG, faults=[Fault.truncate(UNIT * 2), Fault.ignore_range()])
    result = only(run([server.url("/a.bin")], dest))
    assert result.status is Status.OK
    assert (dest / "a.bin").read_bytes() == BIG
    assert result.resumed_from == 0


def test_wrong_content_range_discards_partial(server: FaultServer, dest: Path) -> None:
    server.add("/a.bin", BIG, faults=[Fault.truncate(UNIT * 2), Fault.wrong_content_range(100)])
    result = only(run([server.url("/a.bin")], dest))
    assert result.status is Status.OK
    assert (dest / "a.bin").read_bytes() == BIG
    third = server.requests_for("/a.bin")[2]
    assert "range" not in third.headers  # started over


def test_failed_run_keeps_part_and_next_run_resumes(server: FaultServer, dest: Path) -> None:
    server.add("/a.bin", BIG, faults=[Fault.truncate(UNIT * 3)])
    first = only(run([server.url("/a.bin")], dest, retries=0))
    assert first.status is Status.FAILED
    assert not (dest / "a.bin").exists()
    kept = (dest / "a.bin.part").stat().st_size
    assert kept > 0 and (dest / record_name("a.bin")).exists()
    sent_before = server.bytes_sent("/a.bin")

    second = only(run([server.url("/a.bin")], dest))
    assert second.status is Status.OK and second.resumed_from == kept
    assert (dest / "a.bin").read_bytes() == BIG
    assert server.bytes_sent("/a.bin") - sent_before == len(BIG) - kept
    assert sorted(os.listdir(dest)) == ["a.bin"]


def test_changed_version_between_runs_starts_over(server: FaultServer, dest: Path) -> None:
    server.add("/a.bin", BIG, faults=[Fault.truncate(UNIT * 3)])
    assert only(run([server.url("/a.bin")], dest, retries=0)).status is Status.FAILED
    new = BIG[::-1]
    server.set_body("/a.bin", new)

    result = only(run([server.url("/a.bin")], dest))
    assert result.status is Status.OK and result.resumed_from == 0
    assert (dest / "a.bin").read_bytes() == new  # never a mix of two versions


def test_partial_without_record_is_not_trusted(server: FaultServer, dest: Path) -> None:
    server.add("/a.bin", BIG)
    (dest / "a.bin.part").write_bytes(b"junk from another tool" * 1000)
    result = only(run([server.url("/a.bin")], dest))
    assert result.status is Status.OK and result.resumed_from == 0
    assert "range" not in server.requests_for("/a.bin")[0].headers
    assert (dest / "a.bin").read_bytes() == BIG


def test_no_resume_starts_over(server: FaultServer, dest: Path) -> None:
    server.add("/a.bin", BIG, faults=[Fault.truncate(UNIT * 3)])
    assert only(run([server.url("/a.bin")], dest, retries=0)).status is Status.FAILED
    result = only(run([server.url("/a.bin")], dest, resume=False))
    assert result.status is Status.OK and result.resumed_from == 0
    assert "range" not in server.requests_for("/a.bin")[-1].headers
    assert (dest / "a.bin").read_bytes() == BIG


def test_complete_partial_is_published_after_416(server: FaultServer, dest: Path) -> None:
    server.add("/a.bin", BIG)
    (dest / "a.bin.part").write_bytes(BIG)
    with open_folder(dest, (), str(dest)) as folder:
        etag = server_etag(None, server)
        folder.write_record(
            "a.bin", ResumeRecord(ResumeRecord.url_hash(server.url("/a.bin")), etag, len(BIG))
        )
    result = only(run([server.url("/a.bin")], dest))
    assert result.status is Status.OK and result.http_status == 416
    assert (dest / "a.bin").read_bytes() == BIG
    assert sorted(os.listdir(dest)) == ["a.bin"]


def test_chunked_body_without_length(server: FaultServer, dest: Path) -> None:
    server.add("/c.txt", BIG, chunked=True)
    assert only(run([server.url("/c.txt")], dest)).status is Status.OK
    assert (dest / "c.txt").read_bytes() == BIG


def test_body_longer_than_content_length_is_cut(server: FaultServer, dest: Path) -> None:
    server.add("/x.bin", b"0123456789", faults=[Fault.extra_bytes(5000)])
    assert only(run([server.url("/x.bin")], dest)).status is Status.OK
    assert (dest / "x.bin").read_bytes() == b"0123456789"


@pytest.mark.parametrize("code", [408, 425, 429, 500, 502, 503, 504])
def test_retryable_statuses_are_retried(server: FaultServer, dest: Path, code: int) -> None:
    server.add("/a.txt", b"data", faults=[Fault.status(code)])
    result = only(run([server.url("/a.txt")], dest))
    assert result.status is Status.OK and result.attempts == 2
    assert (dest / "a.txt").read_bytes() == b"data"


@pytest.mark.parametrize("code", [400, 401, 403, 404, 410, 501])
def test_other_statuses_fail_at_once(server: FaultServer, dest: Path, code: int) -> None:
    server.add("/a.txt", b"data", faults=[Fault.status(code)])
    result = only(run([server.url("/a.txt")], dest))
    assert result.status is Status.FAILED and result.attempts == 1
    assert f"HTTP {code}" in result.error and result.http_status == code
    assert os.listdir(dest) == []


def test_retries_are_bounded(server: FaultServer, dest: Path) -> None:
    server.add("/a.txt", b"data", faults=[Fault.status(503)] * 3)
    result = only(run([server.url("/a.txt")], dest, retries=2))
    assert result.status is Status.FAILED and result.attempts == 3
    assert len(server.requests_for("/a.txt")) == 3


def test_retry_after_sets_the_delay(
    server: FaultServer, dest: Path, recorder: RecordingReporter
) -> None:
    server.add("/a.txt", b"data", faults=[Fault.status(429, retry_after="1")])
    result = only(run([server.url("/a.txt")], dest, retry_wait=30.0, reporter=recorder))
    assert result.status is Status.OK
    assert any("retry 1/5 in 1.0 s" in m for m in recorder.messages), recorder.messages


def test_checksum_match_and_mismatch(server: FaultServer, dest: Path) -> None:
    server.add("/good.bin", BIG)
    server.add("/bad.bin", BIG)
    good = f"{server.url('/good.bin')} checksum=sha-256={sha256(BIG)}"
    bad = f"{server.url('/bad.bin')} checksum=sha-256={sha256(b'other')}"
    report = run([good, bad], dest, retries=1)
    by_url = {r.url.rsplit("/", 1)[1]: r for r in report.results}
    assert by_url["good.bin"].status is Status.OK
    assert by_url["bad.bin"].status is Status.FAILED
    assert "checksum mismatch (sha-256)" in by_url["bad.bin"].error
    assert by_url["bad.bin"].attempts == 2  # a mismatch is retried
    assert sorted(os.listdir(dest)) == ["good.bin"]  # no final name, no untrusted partial


def test_checksum_verified_over_resumed_bytes(server: FaultServer, dest: Path) -> None:
    server.add("/a.bin", BIG, faults=[Fault.truncate(UNIT * 3)])
    line = f"{server.url('/a.bin')} checksum=sha-512={hashlib.sha512(BIG).hexdigest()}"
    result = only(run([line], dest))
    assert result.status is Status.OK and result.resumed_from > 0


def test_redirect_is_followed_and_named_from_the_list_url(server: FaultServer, dest: Path) -> None:
    server.add("/real/file.bin", b"payload")
    server.redirect("/go/alias.bin", "/real/file.bin", status=301)
    result = only(run([server.url("/go/alias.bin")], dest))
    assert result.status is Status.OK
    assert (dest / "alias.bin").read_bytes() == b"payload"


def test_user_headers_not_sent_to_another_host(server: FaultServer, dest: Path) -> None:
    other = FaultServer()
    try:
        other.add("/file.bin", b"payload")
        server.redirect("/a.bin", other.url("/file.bin"))
        report = run(
            [server.url("/a.bin")], dest, headers=["Authorization: Bearer secret", "X-Keep: 1"]
        )
        assert only(report).status is Status.OK
        assert server.requests_for("/a.bin")[0].headers["authorization"] == "Bearer secret"
        moved = other.requests_for("/file.bin")[0]
        assert "authorization" not in moved.headers
        assert "x-keep" not in moved.headers  # no user header at all to another origin
    finally:
        other.stop()


def test_url_credentials_are_not_sent_to_another_host_nor_shown(
    server: FaultServer, dest: Path
) -> None:
    other = FaultServer()
    try:
        server.redirect("/a.bin", other.url("/file.bin"))
        url = server.url("/a.bin").replace("http://", "http://user:pa55@")
        result = only(run([url], dest))
        assert result.status is Status.FAILED  # 404 at the other host
        assert "authorization" in server.requests_for("/a.bin")[0].headers
        assert "authorization" not in other.requests_for("/file.bin")[0].headers
        shown = result.to_json()
        assert "pa55" not in str(shown) and "***@" in shown["url"]
    finally:
        other.stop()


def test_redirect_to_other_scheme_fails_clearly(server: FaultServer, dest: Path) -> None:
    server.redirect("/a.bin", "ftp://127.0.0.1/a.bin")
    result = only(run([server.url("/a.bin")], dest))
    assert result.status is Status.FAILED and result.attempts == 1
    assert "redirect" in result.error
    assert os.listdir(dest) == []


def test_redirect_loop_fails_clearly(server: FaultServer, dest: Path) -> None:
    server.redirect("/a", "/b")
    server.redirect("/b", "/a")
    result = only(run([server.url("/a")], dest))
    assert result.status is Status.FAILED and "too many redirects" in result.error
    assert len(server.requests) == 11  # the first request and 10 redirects


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('attachment; filename="report.pdf"', "report.pdf"),
        ("attachment; filename=\"x.bin\"; filename*=UTF-8''%E2%82%AC%20rates.txt", "€ rates.txt"),
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ('attachment; filename=".hidden"', "hidden"),
        ('attachment; filename="..\\\\..\\\\evil.bat"', "evil.bat"),
        ("inline", "dl"),
    ],
)
def test_content_disposition_names(
    server: FaultServer, dest: Path, header: str, expected: str
) -> None:
    server.add("/dl", b"body", headers={"Content-Disposition": header})
    result = only(run([server.url("/dl")], dest, content_disposition=True))
    assert result.status is Status.OK
    assert os.listdir(dest) == [expected]
    assert result.path == str(dest / expected)


def test_content_disposition_names_collide_in_one_run(server: FaultServer, dest: Path) -> None:
    for path in ("/x", "/y"):
        server.add(
            path, path.encode(), headers={"Content-Disposition": "attachment; filename=f.txt"}
        )
    report = run([server.url("/x"), server.url("/y")], dest, content_disposition=True, jobs=1)
    assert sorted(os.listdir(dest)) == ["f.1.txt", "f.txt"]
    assert len(report.ok) == 2


def test_content_disposition_resumes_its_partial(server: FaultServer, dest: Path) -> None:
    cd = {"Content-Disposition": "attachment; filename=named.bin"}
    server.add("/dl", BIG, headers=cd, faults=[Fault.truncate(UNIT * 3)])
    assert only(run([server.url("/dl")], dest, content_disposition=True, retries=0)).status is (
        Status.FAILED
    )
    result = only(run([server.url("/dl")], dest, content_disposition=True))
    assert result.status is Status.OK and result.resumed_from > 0
    assert (dest / "named.bin").read_bytes() == BIG


def test_parse_content_range() -> None:
    assert parse_content_range("bytes 100-199/1000") == (100, 199, 1000)
    assert parse_content_range("bytes */1000") == (None, None, 1000)
    assert parse_content_range("bytes 0-9/*") == (0, 9, None)
    assert parse_content_range("bytes 9-0/10") is None
    assert parse_content_range("items 0-9/10") is None
    assert parse_content_range(None) is None


@pytest.mark.parametrize("code", [300, 304])
def test_non_success_statuses_without_redirect_fail(
    server: FaultServer, dest: Path, code: int
) -> None:
    server.add("/a.txt", b"data", faults=[Fault.status(code, body=b"not the file")])
    result = only(run([server.url("/a.txt")], dest))
    assert result.status is Status.FAILED and f"HTTP {code}" in result.error
    assert os.listdir(dest) == []


def test_small_file_that_fails_part_way_resumes_next_run(server: FaultServer, dest: Path) -> None:
    body = bytes(range(256)) * 400  # 100 KiB: read in one go when nothing goes wrong
    server.add("/s.bin", body, faults=[Fault.truncate(40_000)])
    assert only(run([server.url("/s.bin")], dest, retries=0)).status is Status.FAILED
    assert (dest / "s.bin.part").stat().st_size == 40_000
    result = only(run([server.url("/s.bin")], dest))
    assert result.status is Status.OK and result.resumed_from == 40_000
    assert server.requests_for("/s.bin")[-1].headers["range"] == "bytes=40000-"
    assert (dest / "s.bin").read_bytes() == body
    assert sorted(os.listdir(dest)) == ["s.bin"]


def test_small_file_leaves_no_record_when_it_completes(server: FaultServer, dest: Path) -> None:
    server.add("/s.bin", b"s" * 1000)
    assert only(run([server.url("/s.bin")], dest)).status is Status.OK
    assert os.listdir(dest) == ["s.bin"]


def test_changed_version_behind_a_206_is_not_mixed_in(server: FaultServer, dest: Path) -> None:
    server.add("/a.bin", BIG, faults=[Fault.truncate(UNIT * 3)])
    assert only(run([server.url("/a.bin")], dest, retries=0)).status is Status.FAILED
    new = BIG[::-1]
    server.set_body("/a.bin", new)
    server.add_faults("/a.bin", Fault.ignore_if_range())  # 206 of the new version
    result = only(run([server.url("/a.bin")], dest))
    assert result.status is Status.OK and result.resumed_from == 0
    assert (dest / "a.bin").read_bytes() == new
    assert "range" not in server.requests_for("/a.bin")[-1].headers  # started over


def test_last_modified_validates_resume_without_etag(server: FaultServer, dest: Path) -> None:
    old_date, new_date = "Mon, 02 Nov 2026 10:00:00 GMT", "Tue, 03 Nov 2026 10:00:00 GMT"
    server.add("/a.bin", BIG, etag=None, last_modified=old_date, faults=[Fault.truncate(300_000)])
    assert only(run([server.url("/a.bin")], dest, retries=0)).status is Status.FAILED
    assert server.requests_for("/a.bin")[-1].headers.get("if-range") is None
    # same version: resumed with If-Range carrying the date
    server.add_faults("/a.bin", Fault.truncate(100_000))
    assert only(run([server.url("/a.bin")], dest, retries=0)).status is Status.FAILED
    assert server.requests_for("/a.bin")[-1].headers["if-range"] == old_date
    # a new version behind a 206 is caught by its Last-Modified
    new = BIG[::-1]
    server.set_body("/a.bin", new, etag=None, last_modified=new_date)
    server.add_faults("/a.bin", Fault.ignore_if_range())
    result = only(run([server.url("/a.bin")], dest))
    assert result.status is Status.OK and (dest / "a.bin").read_bytes() == new


def test_longest_names_resume_too(server: FaultServer, dest: Path) -> None:
    name = "n" * 246 + ".bin"  # 250 bytes: NAME.part fits 255, NAME.part.pdl does not
    server.add(f"/{name}", BIG, faults=[Fault.truncate(UNIT * 3)])
    assert only(run([server.url(f"/{name}")], dest, retries=0)).status is Status.FAILED
    assert len(os.listdir(dest)) == 2  # the partial and its (hashed) record
    result = only(run([server.url(f"/{name}")], dest))
    assert result.status is Status.OK and result.resumed_from > 0
    assert os.listdir(dest) == [name] and (dest / name).read_bytes() == BIG


@pytest.mark.parametrize(("hops", "ok"), [(10, True), (11, False)])
def test_at_most_ten_redirects(server: FaultServer, dest: Path, hops: int, ok: bool) -> None:
    for i in range(hops):
        server.redirect(f"/r/{i}", f"/r/{i + 1}")
    server.add(f"/r/{hops}", b"end")
    result = only(run([server.url("/r/0")], dest))
    assert (result.status is Status.OK) is ok
    assert ((dest / "0").exists()) is ok


def test_no_validator_resumes_within_the_run_but_not_across_runs(
    server: FaultServer, dest: Path
) -> None:
    server.add("/n.bin", BIG, etag=None, faults=[Fault.truncate(UNIT * 3)])
    result = only(run([server.url("/n.bin")], dest))
    assert result.status is Status.OK and result.resumed_from > 0
    retry = server.requests_for("/n.bin")[1]
    assert retry.headers["range"].startswith("bytes=") and "if-range" not in retry.headers
    assert (dest / "n.bin").read_bytes() == BIG

    server.add_faults("/n.bin", Fault.truncate(UNIT * 3))
    assert only(run([server.url("/n.bin")], dest / "again", retries=0)).status is Status.FAILED
    later = only(run([server.url("/n.bin")], dest / "again"))
    assert later.status is Status.OK and later.resumed_from == 0  # cannot prove the version
    assert "range" not in server.requests_for("/n.bin")[-1].headers


def test_no_validator_but_a_checksum_resumes_across_runs(server: FaultServer, dest: Path) -> None:
    server.add("/n.bin", BIG, etag=None, faults=[Fault.truncate(UNIT * 3)])
    line = f"{server.url('/n.bin')} checksum=sha-256={sha256(BIG)}"
    assert only(run([line], dest, retries=0)).status is Status.FAILED
    result = only(run([line], dest))
    assert result.status is Status.OK and result.resumed_from > 0  # the checksum proves it
    assert (dest / "n.bin").read_bytes() == BIG
