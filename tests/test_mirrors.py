"""Mirrors (``mirror=URL``, aria2's TAB-separated URLs) and per-entry ``header=``
(docs/list-format.md, docs/reliability.md), against real fault servers: bytes on disk and
the requests each server saw."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from click.testing import Result as CliResult

from downloader import cli, fetch
from downloader.errors import UsageError
from downloader.options import EntryOptions
from downloader.results import Report, Result, Status
from downloader.transfer import mirror_share
from downloader.urllist import Entry, parse_lines
from tests.server import Fault, FaultServer, auto_etag

BODY = bytes(range(256)) * 40  # 10 KiB
OTHER = b"another version " * 640


@pytest.fixture
def mirror() -> Iterator[FaultServer]:
    srv = FaultServer()
    try:
        yield srv
    finally:
        srv.stop()


def dead_url(path: str = "/f.bin") -> str:
    """A URL whose port refuses connections."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def run(*lines: str, dest: Path, **kw: Any) -> Report:
    kw.setdefault("retry_wait", 0)
    kw.setdefault("retries", 3)
    return fetch(list(lines), dest=dest, quiet=True, **kw)


def only(report: Report) -> Result:
    assert len(report.results) == 1, report.results
    return report.results[0]


def pdl(*args: str) -> CliResult:
    return CliRunner().invoke(cli.main, list(args), catch_exceptions=False)


# -- the share of attempts --------------------------------------------------------------


@pytest.mark.parametrize(
    ("retries", "urls", "share"), [(5, 1, 6), (5, 2, 3), (4, 2, 3), (5, 3, 2), (0, 3, 1), (1, 4, 1)]
)
def test_each_url_gets_its_share_of_the_attempts(retries: int, urls: int, share: int) -> None:
    assert mirror_share(retries, urls) == share


# -- order and fallback -----------------------------------------------------------------------


def test_the_first_url_is_tried_first_and_the_mirror_not_at_all(
    server: FaultServer, mirror: FaultServer, dest: Path
) -> None:
    server.add("/f.bin", BODY)
    mirror.add("/f.bin", OTHER)
    result = only(run(f"{server.url('/f.bin')}\t{mirror.url('/f.bin')}", dest=dest))
    assert result.status is Status.OK and result.mirror is None
    assert (dest / "f.bin").read_bytes() == BODY
    assert mirror.requests == []
    assert result.to_json()["mirror"] is None


def test_a_refused_first_url_hands_over_to_the_mirror(mirror: FaultServer, dest: Path) -> None:
    mirror.add("/other-name.bin", BODY)
    first = dead_url("/f.bin")
    result = only(run(f"{first} mirror={mirror.url('/other-name.bin')}", dest=dest))
    assert result.status is Status.OK, result.error
    assert (dest / "f.bin").read_bytes() == BODY  # the name comes from the first URL
    assert result.mirror == mirror.url("/other-name.bin")
    assert result.to_json()["mirror"] == mirror.url("/other-name.bin")
    assert len(mirror.requests) == 1


def test_a_url_that_keeps_failing_hands_over_after_its_share(
    server: FaultServer, mirror: FaultServer, dest: Path
) -> None:
    server.add("/f.bin", BODY)
    server.add_faults("/f.bin", *[Fault.status(503)] * 10)
    mirror.add("/f.bin", BODY)
    result = only(run(f"{server.url('/f.bin')}\t{mirror.url('/f.bin')}", dest=dest, retries=3))
    assert result.status is Status.OK, result.error
    assert len(server.requests_for("/f.bin")) == mirror_share(3, 2) == 2
    assert len(mirror.requests_for("/f.bin")) == 1
    assert result.attempts == 3
    assert (dest / "f.bin").read_bytes() == BODY


def test_a_url_that_fails_for_good_hands_over_at_once(
    server: FaultServer, mirror: FaultServer, dest: Path
) -> None:
    mirror.add("/f.bin", BODY)  # the first server has no /f.bin: 404
    result = only(run(f"{server.url('/f.bin')}\t{mirror.url('/f.bin')}", dest=dest, retries=5))
    assert result.status is Status.OK
    assert len(server.requests_for("/f.bin")) == 1
    assert (dest / "f.bin").read_bytes() == BODY


def test_when_every_url_fails_the_error_names_each_and_why(
    server: FaultServer, tmp_path: Path
) -> None:
    first, second = server.url("/gone.bin"), dead_url("/x.bin")
    listing = tmp_path / "urls.txt"
    listing.write_text(f"{first}\t{second}\n")
    done = pdl(
        "fetch", "--retries", "1", "--retry-wait", "0", "-d", str(tmp_path / "d"), "--json",
        str(listing),
    )  # fmt: skip
    assert done.exit_code == 1
    row = json.loads(done.stdout.splitlines()[0])
    assert row["status"] == "failed" and row["mirror"] is None
    assert row["error"].startswith(f"all mirrors failed: {first}: HTTP 404")
    assert f"; {second}: " in row["error"]
    assert f"{first}: HTTP 404" in done.stderr and f"{second}: " in done.stderr  # the summary


def test_a_stalling_mirror_hands_over_after_the_timeout(
    server: FaultServer, mirror: FaultServer, dest: Path
) -> None:
    server.add("/f.bin", BODY)
    server.add_faults("/f.bin", Fault.stall(100))
    mirror.add("/f.bin", BODY)
    try:
        result = only(
            run(f"{server.url('/f.bin')}\t{mirror.url('/f.bin')}", dest=dest, retries=1, timeout=1)
        )
    finally:
        server.release_stalls()
    assert result.status is Status.OK, result.error
    assert result.mirror == mirror.url("/f.bin")
    assert (dest / "f.bin").read_bytes() == BODY
    assert len(server.requests_for("/f.bin")) == 1


# -- resume across mirrors: bytes of two versions never meet -----------------------------------


def test_a_partial_continues_from_a_mirror_with_the_same_validator(
    server: FaultServer, mirror: FaultServer, dest: Path
) -> None:
    server.add("/f.bin", BODY)  # the same bytes: the same (strong, content-derived) ETag
    server.add_faults("/f.bin", Fault.truncate(3000))
    mirror.add("/f.bin", BODY)
    result = only(run(f"{server.url('/f.bin')}\t{mirror.url('/f.bin')}", dest=dest, retries=1))
    assert result.status is Status.OK, result.error
    assert result.resumed_from == 3000 and result.mirror == mirror.url("/f.bin")
    asked = mirror.requests_for("/f.bin")[0]
    assert asked.header("range") == "bytes=3000-"
    assert asked.header("if-range") == auto_etag(BODY)
    assert mirror.bytes_sent("/f.bin") == len(BODY) - 3000
    assert (dest / "f.bin").read_bytes() == BODY


@pytest.mark.parametrize("broken_if_range", [False, True])
def test_a_mirror_serving_another_version_starts_over_and_never_mixes(
    server: FaultServer, mirror: FaultServer, dest: Path, broken_if_range: bool
) -> None:
    server.add("/f.bin", BODY, etag='"v1"')
    server.add_faults("/f.bin", Fault.truncate(3000), Fault.status(503))  # its share: 2
    mirror.add("/f.bin", OTHER, etag='"v2"')
    if broken_if_range:  # honours Range although If-Range does not match: pdl sees the ETag
        mirror.add_faults("/f.bin", Fault.ignore_if_range())
    result = only(run(f"{server.url('/f.bin')}\t{mirror.url('/f.bin')}", dest=dest, retries=3))
    assert result.status is Status.OK, result.error
    assert mirror.requests_for("/f.bin")[0].header("if-range") == '"v1"'
    assert (dest / "f.bin").read_bytes() == OTHER
    assert result.resumed_from == 0


def test_without_a_validator_or_checksum_a_partial_is_not_continued_from_a_mirror(
    server: FaultServer, mirror: FaultServer, dest: Path
) -> None:
    server.add("/f.bin", BODY, etag=None)
    server.add_faults("/f.bin", Fault.truncate(3000))
    mirror.add("/f.bin", BODY, etag=None)
    result = only(run(f"{server.url('/f.bin')}\t{mirror.url('/f.bin')}", dest=dest, retries=1))
    assert result.status is Status.OK, result.error
    assert mirror.requests_for("/f.bin")[0].header("range") is None
    assert result.resumed_from == 0
    assert (dest / "f.bin").read_bytes() == BODY


def test_without_a_validator_a_checksum_lets_a_mirror_continue(
    server: FaultServer, mirror: FaultServer, dest: Path
) -> None:
    server.add("/f.bin", BODY, etag=None)
    server.add_faults("/f.bin", Fault.truncate(3000))
    mirror.add("/f.bin", BODY, etag=None)
    digest = hashlib.sha256(BODY).hexdigest()
    line = f"{server.url('/f.bin')}\t{mirror.url('/f.bin')} checksum=sha-256={digest}"
    result = only(run(line, dest=dest, retries=1))
    assert result.status is Status.OK, result.error
    assert mirror.requests_for("/f.bin")[0].header("range") == "bytes=3000-"
    assert result.resumed_from == 3000
    assert (dest / "f.bin").read_bytes() == BODY


def test_a_partial_begun_on_the_first_url_in_one_run_is_continued_from_a_mirror_in_the_next(
    server: FaultServer, mirror: FaultServer, dest: Path
) -> None:
    server.add("/f.bin", BODY)
    server.add_faults("/f.bin", Fault.truncate(3000))
    first = only(run(server.url("/f.bin"), dest=dest, retries=0))
    assert first.status is Status.FAILED and (dest / "f.bin.part").exists()
    server.add_faults("/f.bin", *[Fault.status(503)] * 5)
    mirror.add("/f.bin", BODY)
    second = only(run(f"{server.url('/f.bin')}\t{mirror.url('/f.bin')}", dest=dest, retries=1))
    assert second.status is Status.OK, second.error
    assert second.resumed_from == 3000
    assert mirror.requests_for("/f.bin")[0].header("range") == "bytes=3000-"
    assert (dest / "f.bin").read_bytes() == BODY


# -- header= --------------------------------------------------------------------------------


def test_entry_headers_go_to_the_entry_and_its_mirrors_but_not_across_a_redirect(
    server: FaultServer, mirror: FaultServer, dest: Path
) -> None:
    server.add("/same.bin", BODY)
    server.redirect("/here.bin", "/same.bin")  # same origin: the header follows
    mirror.add("/away.bin", OTHER)
    server.redirect("/there.bin", mirror.url("/away.bin"))  # another origin: it does not
    there = EntryOptions(headers=(("X-Token", "s3cret"), ("Accept", "text/x-pdl")))
    report = fetch(
        [
            f"{server.url('/here.bin')} header=X-Token: s3cret value",
            Entry(url=server.url("/there.bin"), options=there),
        ],
        dest=dest,
        quiet=True,
        headers=["X-Run: on"],
    )
    assert all(r.status is Status.OK for r in report.results), report.results
    assert server.requests_for("/here.bin")[0].header("x-token") == "s3cret value"
    assert server.requests_for("/same.bin")[0].header("x-token") == "s3cret value"
    assert server.requests_for("/there.bin")[0].header("accept") == "text/x-pdl"
    away = mirror.requests_for("/away.bin")[0]
    assert away.header("x-token") is None and away.header("x-run") is None
    assert away.header("accept") != "text/x-pdl"
    assert (dest / "here.bin").read_bytes() == BODY and (dest / "there.bin").read_bytes() == OTHER


def test_entry_headers_go_with_every_mirror_and_split_segment(
    server: FaultServer, mirror: FaultServer, dest: Path
) -> None:
    big = BODY * 300  # 3 MB
    mirror.add("/f.bin", big)
    line = f"{server.url('/f.bin')}\t{mirror.url('/f.bin')} header=X-Token: t"
    result = only(run(line, dest=dest, split=4, split_min_size=1024))
    assert result.status is Status.OK, result.error
    assert {r.header("x-token") for r in server.requests + mirror.requests} == {"t"}
    assert len(mirror.requests_for("/f.bin")) > 1  # split over that mirror's connections
    assert (dest / "f.bin").read_bytes() == big


# -- lists, --failed, bad lines, the API -------------------------------------------------------


def test_tab_mirrors_and_options_parse_as_one_entry() -> None:
    items = list(
        parse_lines(
            ["http://a/f.iso\thttp://b/f.iso\thttp://c/f.iso out=g.iso header=X-A: 1 2 # note"],
            "L",
        )
    )
    assert items == [
        Entry(
            url="http://a/f.iso",
            options=EntryOptions(
                out="g.iso", mirrors=("http://b/f.iso", "http://c/f.iso"), headers=(("X-A", "1 2"),)
            ),
            source="L:1",
        )
    ]


@pytest.mark.parametrize(
    ("option", "reason"),
    [
        ("mirror=ftp://h/f", "bad mirror: unsupported scheme 'ftp'"),
        ("mirror=http:///f", "bad mirror: URL has no host"),
        ("mirror=http//h/f", "bad mirror: URL lacks http://"),
        ("header=NoColon", "header= needs 'Name: value'"),
        ("header=Bad Name: v", "bad header name 'Bad Name'"),
        ("header=Range: bytes=0-", "header Range is pdl's own"),
        ("header=X: a\x01b", "control character"),
    ],
)
def test_bad_mirror_and_header_options_are_bad_lines_and_the_rest_runs(
    server: FaultServer, tmp_path: Path, option: str, reason: str
) -> None:
    server.add("/ok.bin", BODY)
    listing = tmp_path / "urls.txt"
    listing.write_text(f"{server.url('/bad.bin')}\n  {option}\n{server.url('/ok.bin')}\n")
    done = pdl("fetch", "-d", str(tmp_path / "d"), str(listing))
    assert done.exit_code == 1
    assert f"{listing}:2: " in done.stderr and reason in done.stderr
    assert (tmp_path / "d" / "ok.bin").read_bytes() == BODY
    assert server.requests_for("/bad.bin") == []


def test_a_tab_mirror_that_is_not_a_url_is_a_bad_line(tmp_path: Path) -> None:
    items = list(parse_lines(["http://a/f\tftp://b/f"], "L"))
    assert [str(i) for i in items] == [
        "L:1: bad mirror: unsupported scheme 'ftp' (only http and https)"
    ]


def test_the_same_url_with_the_same_mirrors_is_downloaded_once(
    server: FaultServer, mirror: FaultServer, dest: Path
) -> None:
    server.add("/f.bin", BODY)
    line = f"{server.url('/f.bin')}\t{mirror.url('/f.bin')} header=X: 1"
    report = run(line, line, dest=dest)
    assert len(report.results) == 1 and len(server.requests_for("/f.bin")) == 1
    other = Entry(url=server.url("/f.bin"), options=EntryOptions(mirrors=(mirror.url("/g"),)))
    same = Entry(url=server.url("/f.bin"), options=EntryOptions(mirrors=(mirror.url("/f.bin"),)))
    assert other.key != same.key


def test_failed_writes_mirrors_and_headers_back_and_re_runs(
    server: FaultServer, mirror: FaultServer, tmp_path: Path
) -> None:
    listing, failed, dest = tmp_path / "urls.txt", tmp_path / "failed.txt", tmp_path / "d"
    first, second = server.url("/f.bin"), mirror.url("/f.bin")
    listing.write_text(f"{first}\t{second} out=g.bin\n  header=X-Token: a b\n")
    done = pdl("fetch", "--retries", "0", "-d", str(dest), "--failed", str(failed), str(listing))
    assert done.exit_code == 1
    text = failed.read_text()
    assert f"{first}\n" in text and f"  mirror={second}\n" in text
    assert "  header=X-Token: a b\n" in text and "  out=g.bin\n" in text
    mirror.add("/f.bin", BODY)
    again = pdl("fetch", "-d", str(dest), "--failed", str(failed), str(failed))
    assert again.exit_code == 0, again.stderr
    assert (dest / "g.bin").read_bytes() == BODY
    assert mirror.requests_for("/f.bin")[-1].header("x-token") == "a b"


def test_the_api_takes_mirrors_as_list_lines_and_as_entry_options(
    server: FaultServer, mirror: FaultServer, dest: Path
) -> None:
    mirror.add("/f.bin", BODY)
    mirror.add("/g.bin", OTHER)
    report = fetch(
        [
            f"{server.url('/f.bin')} mirror={mirror.url('/f.bin')}",
            Entry(
                url=server.url("/g.bin"),
                options=EntryOptions(mirrors=(mirror.url("/g.bin"),), headers=(("X-A", "1"),)),
            ),
        ],
        dest=dest,
        quiet=True,
        retry_wait=0,
    )
    assert sorted(r.mirror or "" for r in report.results) == [
        mirror.url("/f.bin"),
        mirror.url("/g.bin"),
    ]
    assert mirror.requests_for("/g.bin")[0].header("x-a") == "1"
    assert (dest / "g.bin").read_bytes() == OTHER


@pytest.mark.parametrize(
    "options",
    [
        {"mirrors": ("ftp://h/x",)},
        {"mirrors": "http://h/x"},
        {"headers": (("X", "a\r\nb"),)},
        {"headers": (("Bad Name", "v"),)},
        {"headers": (("If-Range", "v"),)},
    ],
)
def test_entry_options_refuse_bad_mirrors_and_headers(options: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        EntryOptions(**options)


def test_a_hand_over_is_told_with_v(
    server: FaultServer, mirror: FaultServer, tmp_path: Path
) -> None:
    mirror.add("/f.bin", BODY)
    first = server.url("/f.bin")
    done = pdl("fetch", "-v", "-d", str(tmp_path), f"{first}\t{mirror.url('/f.bin')}")
    assert done.exit_code == 0, done.stderr
    assert f"{first}: HTTP 404" in done.stderr
    assert f"trying mirror {mirror.url('/f.bin')}" in done.stderr


def test_mirrors_and_headers_travel_to_dask_workers() -> None:
    from downloader.transfer import Job
    from downloader.worker import job_from_wire, job_to_wire

    options = EntryOptions(mirrors=("http://m/f",), headers=(("X-A", "1"),))
    job = Job(entry=Entry(url="http://h/f", options=options), rel=("f",), fallback=("f",))
    row = json.loads(json.dumps(job_to_wire(3, job)))  # msgpack-able: lists come back
    back = job_from_wire(tuple(row))  # type: ignore[arg-type]
    assert back.entry.options.mirrors == ("http://m/f",)
    assert back.entry.options.headers == (("X-A", "1"),)


def test_a_mirror_s_credentials_are_used_and_never_shown(
    server: FaultServer, mirror: FaultServer, tmp_path: Path
) -> None:
    mirror.add("/f.bin", BODY)
    secret = mirror.url("/f.bin").replace("http://", "http://user:hunter2@")
    gone = dead_url("/g.bin")
    listing = tmp_path / "urls.txt"
    listing.write_text(f"{server.url('/f.bin')}\t{secret}\n{server.url('/g.bin')}\t{gone}\n")
    done = pdl("fetch", "--json", "--retries", "0", "-d", str(tmp_path / "d"), str(listing))
    assert done.exit_code == 1
    assert "hunter2" not in done.stdout + done.stderr
    rows = {r["url"]: r for r in map(json.loads, done.stdout.splitlines())}
    assert rows[server.url("/f.bin")]["mirror"] == secret.replace("user:hunter2@", "***@")
    assert mirror.requests_for("/f.bin")[0].header("authorization", "").startswith("Basic ")
