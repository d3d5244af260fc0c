"""The Python API: fetch() mirrors the command line and returns failures as values."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

import downloader
from downloader import Entry, EntryOptions, Status, UsageError, cli, fetch
from tests.server import Fault, FaultServer

CLI_ONLY = {"sources"}
"""The one CLI parameter that is not a keyword: the API takes the URLs themselves."""


def test_every_cli_option_is_a_fetch_keyword() -> None:
    keywords = set(inspect.signature(fetch).parameters)
    options = {p.name for p in cli.fetch.params if p.name} - CLI_ONLY
    assert options <= keywords, options - keywords
    assert all(
        p.kind is inspect.Parameter.KEYWORD_ONLY
        for name, p in inspect.signature(fetch).parameters.items()
        if name != "urls"
    )


def test_public_surface() -> None:
    assert set(downloader.__all__) >= {"fetch", "Report", "Result", "Status", "Entry"}
    for name in downloader.__all__:
        assert hasattr(downloader, name)


def test_report_lists_results(server: FaultServer, tmp_path: Path) -> None:
    server.add("/a.iso", b"iso")
    report = fetch([server.url("/a.iso"), server.url("/missing")], dest=tmp_path / "out", jobs=2)
    assert [r.url for r in report.ok] == [server.url("/a.iso")]
    (failed,) = report.failed
    assert failed.status is Status.FAILED and "HTTP 404" in (failed.error or "")
    ok = report.ok[0]
    assert ok.path == str(tmp_path / "out" / "a.iso") and ok.bytes == 3 and ok.attempts == 1
    assert report.exit_code == 1


def test_entries_and_option_strings(server: FaultServer, tmp_path: Path) -> None:
    server.add("/a", b"a")
    entry = Entry(url=server.url("/a"), options=EntryOptions(out="x/named.bin"), source="mine:1")
    report = fetch([entry, server.url("/a") + " out=other.bin"], dest=tmp_path)
    assert {r.source for r in report.ok} == {"mine:1", "<args>:2"}
    assert (tmp_path / "x" / "named.bin").read_bytes() == b"a"
    assert (tmp_path / "other.bin").read_bytes() == b"a"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"jobs": 0},
        {"jobs": 2000},
        {"on_exist": "nope"},
        {"timeout": 0},
        {"headers": ["bad"]},
        {"insecure": True, "ca_bundle": "x.pem"},
    ],
)
def test_bad_arguments_raise_usage_error(kwargs: dict[str, object], tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        fetch([], dest=tmp_path, **kwargs)  # type: ignore[arg-type]


def test_keep_results_false_keeps_only_failures(server: FaultServer, tmp_path: Path) -> None:
    server.add("/a", b"a")
    report = fetch([server.url("/a"), server.url("/b")], dest=tmp_path, keep_results=False)
    assert report.counts.ok == 1 and report.counts.failed == 1
    assert [r.status for r in report.results] == [Status.FAILED]


def test_prints_nothing_unless_asked(
    server: FaultServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.add("/a", b"a", faults=[Fault.status(503)])
    report = fetch([server.url("/a"), server.url("/missing")], dest=tmp_path, retry_wait=0)
    # a retry, a success and a failure happened, and none of it was printed
    assert (report.counts.ok, report.counts.failed, report.counts.retries) == (1, 1, 1)
    assert capsys.readouterr() == ("", "")


def test_json_and_verbose_like_the_command_line(
    server: FaultServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server.add("/a", b"a", faults=[Fault.status(503)])
    fetch([server.url("/a")], dest=tmp_path, retry_wait=0, json=True, verbose=True)
    out, err = capsys.readouterr()
    (row,) = [json.loads(line) for line in out.splitlines()]
    assert row["status"] == "ok" and row["attempts"] == 2
    assert "retry 1/5" in err


def test_no_resume_keyword(server: FaultServer, tmp_path: Path) -> None:
    big = b"r" * (3 << 20)
    server.add("/a", big, faults=[Fault.truncate(1 << 20)])
    assert fetch([server.url("/a")], dest=tmp_path, retries=0).counts.failed == 1
    report = fetch([server.url("/a")], dest=tmp_path, no_resume=True)
    assert report.ok[0].resumed_from == 0 and (tmp_path / "a").read_bytes() == big


def test_a_single_url_string_and_a_header_dict(server: FaultServer, tmp_path: Path) -> None:
    server.add("/one", b"1")
    report = fetch(server.url("/one"), dest=tmp_path, headers={"X-Token": "t"})
    assert report.counts.ok == 1 and (tmp_path / "one").read_bytes() == b"1"
    assert server.requests_for("/one")[0].headers["x-token"] == "t"
