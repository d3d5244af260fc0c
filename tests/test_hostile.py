"""Hostile input end to end: lists, servers and the disk putting bytes where they don't belong.

The pure naming rules have their tables and properties in test_naming.py, redirects and
credential forwarding in test_transfer.py, planted links at the target and the ``.part``
in test_storage.py; this file adds the rest: traversal through a real run, portable
names, links at the resume record, oversized headers, endless bodies, and hypothesis
searches of list parsing.
"""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from downloader import Report, Status, fetch
from downloader.engine import base_path
from downloader.errors import BadLine
from downloader.naming import name_from_content_disposition, sanitize
from downloader.results import redact
from downloader.urllist import Entry, parse_lines
from tests.server import Fault, FaultServer

prop = settings(database=None, deadline=None, max_examples=300)
RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{n}" for p in ("COM", "LPT") for n in range(1, 10)}


def run(urls: list[str], dest: Path, **kwargs: Any) -> Report:
    kwargs.setdefault("retry_wait", 0.0)
    kwargs.setdefault("timeout", 5.0)
    return fetch(urls, dest=dest, **kwargs)


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir()}


def assert_portable(name: str) -> None:
    assert name not in ("", ".", "..") and not name.endswith((".", " ")), repr(name)
    assert name.split(".")[0].rstrip(" ").upper() not in RESERVED, repr(name)
    assert not any(unicodedata.category(c) == "Cc" or c in "/\\" for c in name), repr(name)
    assert len(name.encode("utf-8")) <= 250


# --------------------------------------------------------------------------------------------
# traversal through a whole run
# --------------------------------------------------------------------------------------------

HOSTILE_OUT = [
    "../escape.bin",
    "a/../../escape.bin",
    "/tmp/escape.bin",
    "//host/share/escape.bin",
    "..\\escape.bin",
    "a\\..\\..\\escape.bin",
    "C:\\escape.bin",
    "C:escape.bin",
    "%2e%2e%2fescape.bin",  # not decoded: a literal, harmless name
    "..%2fescape.bin",
    "x" * 400 + ".bin",
    "CON",
    "nul.txt",
    "COM1.tar.gz",
    "trailing...",
]


@pytest.mark.parametrize("key", ["out", "dir"])
def test_out_and_dir_never_leave_dest(server: FaultServer, tmp_path: Path, key: str) -> None:
    dest = tmp_path / "dest"
    server.add("/a.bin", b"a")
    lines = [f"{server.url('/a.bin')} {key}={value}" for value in HOSTILE_OUT]
    report = run(lines, dest, jobs=4)
    assert report.counts.done == len(HOSTILE_OUT)
    assert files_under(tmp_path) == {f"dest/{f}" for f in files_under(dest)}  # nothing outside
    for result in report.results:
        if result.status is Status.OK:
            assert result.path and Path(result.path).resolve().is_relative_to(dest.resolve())
            assert Path(result.path).read_bytes() == b"a"  # really downloaded, inside
        else:  # refused as a bad line, with the reason
            assert result.error and ("relative" in result.error or "'..'" in result.error)
    for path in dest.rglob("*"):
        assert_portable(path.name)


@pytest.mark.parametrize(
    "header",
    [
        'attachment; filename="../../escape.bin"',
        'attachment; filename="/etc/escape.bin"',
        'attachment; filename="..\\\\..\\\\escape.bin"',
        "attachment; filename*=UTF-8''..%2F..%2Fescape.bin",
        "attachment; filename*=UTF-8''%2e%2e",
        "attachment; filename*=UTF-8''a%00b.bin",
        "attachment; filename*=UTF-8''a%0d%0ab.bin",
        "attachment; filename*=UTF-8''" + "y" * 600 + ".bin",
        'attachment; filename="CON"',
        'attachment; filename="aux.tar.gz"',
        'attachment; filename="dots..."',
        'attachment; filename="..."',
    ],
)
def test_content_disposition_never_leaves_dest(
    server: FaultServer, tmp_path: Path, header: str
) -> None:
    dest = tmp_path / "dest"
    server.add("/a.bin", b"payload", headers={"Content-Disposition": header})
    result = run([server.url("/a.bin")], dest, content_disposition=True).results[0]
    assert result.status is Status.OK, result.error
    (name,) = files_under(dest)
    assert files_under(tmp_path) == {f"dest/{name}"}
    assert_portable(name)
    assert (dest / name).read_bytes() == b"payload"


# --------------------------------------------------------------------------------------------
# portable names (the choice made in naming.sanitize)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("CON", "CON_"),
        ("con", "con_"),
        ("NUL.txt", "NUL_.txt"),
        ("COM1.tar.gz", "COM1_.tar.gz"),
        ("lpt9", "lpt9_"),
        ("CON .txt", "CON _.txt"),
        ("CONSOLE.txt", "CONSOLE.txt"),  # only the exact device names
        ("COM10", "COM10"),
        ("report.pdf.", "report.pdf"),
        ("report.pdf . .", "report.pdf"),
        ("trailing ", "trailing"),
        ("...", "_"),
        (". .", "_"),
    ],
)
def test_sanitize_makes_names_portable(name: str, expected: str) -> None:
    assert sanitize(name) == expected


@prop
@given(st.text(max_size=300))
def test_sanitize_is_portable_and_stable(name: str) -> None:
    safe = sanitize(name)
    assert_portable(safe)
    assert sanitize(safe) == safe


@prop
@given(st.text(max_size=60))
def test_any_content_disposition_value_gives_a_portable_name(text: str) -> None:
    for header in (f'attachment; filename="{text}"', f"attachment; filename*=UTF-8''{quote(text)}"):
        name = name_from_content_disposition(header)
        if name is not None:
            assert_portable(name)


# --------------------------------------------------------------------------------------------
# list parsing: hypothesis searches for escapes and crashes
# --------------------------------------------------------------------------------------------

list_token = st.one_of(
    st.sampled_from(
        [
            *("http://h/", "https://h/a.iso", "ftp://h/x", "out=", "dir=", "checksum="),
            *("..", "/", "\\", "%2e%2e%2f", "C:", "#", " ", "\t", "\n", "\r\n", "\0", "\x1b"),
            *("CON", ".", "=", "\ufeff", "sha-256=" + "a" * 64, "md5=" + "0" * 32),
        ]
    ),
    st.text(max_size=10),
)
list_text = st.lists(list_token, max_size=30).map("".join)


@settings(
    database=None, deadline=None, max_examples=500, suppress_health_check=[HealthCheck.too_slow]
)
@given(list_text)
def test_any_list_parses_to_entries_and_bad_lines_that_stay_inside(text: str) -> None:
    root = Path("/nonexistent/dest")
    for item in parse_lines(text.splitlines(keepends=True), "l.txt"):
        if isinstance(item, BadLine):
            assert item.source.startswith("l.txt:") and item.reason
            continue
        assert isinstance(item, Entry)
        assert item.url.lower().startswith(("http://", "https://"))
        assert not any(c.isspace() or unicodedata.category(c) == "Cc" for c in item.url)
        rel = base_path(item)
        assert rel and all(part not in ("", ".", "..") for part in rel)
        assert all("/" not in part and "\\" not in part and "\0" not in part for part in rel)
        joined = os.path.normpath(root.joinpath(*rel))
        assert joined.startswith(str(root) + os.sep)


@prop
@given(st.binary(max_size=200))
def test_any_bytes_as_a_list_never_crash(data: bytes) -> None:
    items = list(parse_lines(data.splitlines(keepends=True), "b.txt"))
    assert all(isinstance(i, (Entry, BadLine)) for i in items)


# --------------------------------------------------------------------------------------------
# links at the resume record, credentials
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("planted", ["a.bin.part.pdl", "a.bin.part.pdl.tmp"])
def test_link_at_the_resume_record_is_never_followed(
    server: FaultServer, dest: Path, tmp_path: Path, planted: str
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    (dest / planted).symlink_to(victim)
    big = bytes(range(256)) * 4096 * 2
    server.add("/a.bin", big, faults=[Fault.truncate(600_000)])  # a record gets written
    assert run([server.url("/a.bin")], dest).counts.ok == 1
    assert victim.read_bytes() == b"precious"
    assert (dest / "a.bin").read_bytes() == big


def test_credentials_are_redacted_in_the_dry_run_plan(
    server: FaultServer, dest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = server.url("/a.bin").replace("http://", "http://user:hunter2@")
    run([url], dest, dry_run=True, json=True)
    run([url], dest, dry_run=True)
    out, err = capsys.readouterr()
    assert "hunter2" not in out + err and redact(url) in out


# --------------------------------------------------------------------------------------------
# a hostile server: oversized headers, endless bodies
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [Fault.huge_headers(200_000), Fault.huge_headers(300_000, lines=2000)],
    ids=["one-line", "many-lines"],
)
def test_an_oversized_header_block_fails_clearly(
    server: FaultServer, dest: Path, fault: Fault
) -> None:
    server.add("/a.bin", b"a", faults=[fault] * 10)
    server.add("/b.bin", b"b")
    report = run([server.url("/a.bin"), server.url("/b.bin")], dest, retries=1)
    a = {r.url: r for r in report.results}[server.url("/a.bin")]
    assert a.status is Status.FAILED and a.error
    assert "response header is too large" in a.error and "Connection aborted" not in a.error
    assert a.attempts == 1  # a broken server answers the same way again: not retried
    assert not (dest / "a.bin").exists() and (dest / "b.bin").read_bytes() == b"b"


@pytest.mark.parametrize("resumed", [False, True])
def test_a_body_far_longer_than_its_length_is_never_published(
    server: FaultServer, dest: Path, resumed: bool
) -> None:
    big = bytes(range(256)) * 4096 * 2
    faults = [Fault.truncate(700_000)] if resumed else []
    server.add("/a.bin", big, faults=[*faults, Fault.extra_bytes(16 << 20)])
    result = run([server.url("/a.bin")], dest).results[0]
    assert result.status is Status.OK
    assert result.resumed_from == (700_000 if resumed else 0) or not resumed
    assert (dest / "a.bin").read_bytes() == big  # the extra bytes never reach the file
    assert sorted(os.listdir(dest)) == ["a.bin"]
