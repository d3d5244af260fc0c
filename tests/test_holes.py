"""Issue 12: the holes a hostile server or a careless caller could open, each closed.

Every test crosses the real boundary where the hole was: the API with hostile
``Entry`` values, the disk with planted links and records, the fault server (or a
raw socket, for bytes ``http.server`` will not send) for server-made text, and a real
``pdl`` process for closed or full standard streams and signals.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from downloader import Status, fetch
from downloader import cli as cli_module
from downloader.naming import is_companion, name_from_content_disposition, sanitize
from downloader.options import EntryOptions
from downloader.results import FAILED_KEPT
from downloader.retry import parse_retry_after
from downloader.safetext import escape, redact, redact_text
from downloader.storage import ResumeRecord, open_folder, record_name
from downloader.urllist import Entry, check_url, parse_lines
from tests.server import Fault, FaultServer, auto_etag

BODY = bytes(range(256)) * 1200  # 300 KiB: large enough to get a record before its bytes


def pdl(*args: str) -> Result:
    return CliRunner().invoke(cli_module.main, list(args), catch_exceptions=False)


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir()}


def run(urls: list[Any], dest: Path, **kwargs: Any) -> Any:
    kwargs.setdefault("retry_wait", 0.0)
    kwargs.setdefault("timeout", 5.0)
    return fetch(urls, dest=dest, **kwargs)


# --------------------------------------------------------------------------------------------
# 1. the API's Entry and EntryOptions are checked as list lines are
# --------------------------------------------------------------------------------------------

ESCAPING = [
    {"out": "../x.bin"},
    {"dir": "../d"},
    {"out": "sub/../../x.bin"},
    {"out": "/tmp/abs.bin"},
    {"dir": "/tmp"},
    {"out": "..\\x.bin"},
    {"out": "C:x.bin"},
    {"out": ""},
    {"out": "./"},
]


@pytest.mark.parametrize("kwargs", ESCAPING)
def test_api_entry_options_cannot_leave_dest(
    server: FaultServer, tmp_path: Path, kwargs: dict[str, str]
) -> None:
    server.add("/a.bin", b"a")
    dest = tmp_path / "deep" / "dest"
    with pytest.raises(ValueError, match=r"out|dir"):
        entry = Entry(url=server.url("/a.bin"), options=EntryOptions(**kwargs))
        run([entry], dest)
    assert files_under(tmp_path) == set()
    assert server.requests == []


def test_api_entry_options_are_kept_in_their_safe_form(server: FaultServer, dest: Path) -> None:
    server.add("/a.bin", b"a")
    options = EntryOptions(out="./x/./CON", dir="s\u202eub//")
    assert (options.out, options.dir) == ("x/CON_", "s_ub")
    report = run([Entry(url=server.url("/a.bin"), options=options)], dest)
    assert report.results[0].status is Status.OK
    assert (dest / "s_ub" / "x" / "CON_").read_bytes() == b"a"


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://h/x", "http:///x", "http://h/a b"])
def test_api_entry_urls_are_checked_as_list_lines_are(url: str) -> None:
    with pytest.raises(ValueError):
        Entry(url=url)


# --------------------------------------------------------------------------------------------
# 2. a hard link at NAME.part is replaced, never written through
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_record", [False, True])
def test_a_hard_link_at_the_part_is_never_written_through(
    server: FaultServer, tmp_path: Path, with_record: bool
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    outside = tmp_path / "precious.txt"
    outside.write_bytes(b"precious data that pdl must not touch\n" * 100)
    before = outside.read_bytes()
    server.add("/a.bin", BODY)
    os.link(outside, dest / "a.bin.part")
    if with_record:  # even a record that matches in every other way changes nothing
        record = {"url_sha256": ResumeRecord.url_hash(server.url("/a.bin"))}
        record |= {"validator": auto_etag(BODY), "length": len(BODY)}
        (dest / record_name("a.bin")).write_text(json.dumps(record))
    report = run([server.url("/a.bin")], dest)
    assert report.results[0].status is Status.OK
    assert outside.read_bytes() == before
    assert (dest / "a.bin").read_bytes() == BODY
    assert (dest / "a.bin").stat().st_nlink == 1


def test_open_part_replaces_a_hard_link_without_truncating_it(tmp_path: Path) -> None:
    outside = tmp_path / "precious.txt"
    outside.write_bytes(b"keep me")
    dest = tmp_path / "dest"
    dest.mkdir()
    os.link(outside, dest / "a.bin.part")
    with open_folder(dest, (), str(dest)) as folder:
        fd = folder.open_part("a.bin", 0)
        os.write(fd, b"new")
        os.close(fd)
    assert outside.read_bytes() == b"keep me"
    assert (dest / "a.bin.part").read_bytes() == b"new"


@pytest.mark.parametrize("companion", [".part.pdl", ".part.pdl.tmp"])
def test_a_hard_link_at_the_record_is_never_written_through(
    server: FaultServer, tmp_path: Path, companion: str
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    outside = tmp_path / "precious.txt"
    outside.write_bytes(b"precious")
    os.link(outside, dest / f"a.bin{companion}")
    server.add("/a.bin", BODY, faults=[Fault.truncate(100_000)])
    assert run([server.url("/a.bin")], dest, retries=0).results[0].status is Status.FAILED
    assert run([server.url("/a.bin")], dest).results[0].resumed_from == 100_000
    assert outside.read_bytes() == b"precious"
    assert (dest / "a.bin").read_bytes() == BODY


# --------------------------------------------------------------------------------------------
# 3. a link, FIFO or other non-regular file at the target is never "existing and verified"
# --------------------------------------------------------------------------------------------


def _checksum_line(url: str, body: bytes) -> str:
    import hashlib

    return f"{url} checksum=sha-256={hashlib.sha256(body).hexdigest()}"


@pytest.mark.parametrize("checksum", [True, False])
@pytest.mark.parametrize("kind", ["symlink", "fifo", "dangling"])
def test_a_non_regular_target_is_downloaded_not_skipped(
    server: FaultServer, tmp_path: Path, kind: str, checksum: bool
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    outside = tmp_path / "outside.bin"
    outside.write_bytes(BODY)  # what the checksum expects: a link to it would "verify"
    target = dest / "a.bin"
    if kind == "symlink":
        target.symlink_to(outside)
    elif kind == "dangling":
        target.symlink_to(tmp_path / "nowhere")
    else:
        os.mkfifo(target)
    server.add("/a.bin", BODY)
    url = server.url("/a.bin")
    line = _checksum_line(url, BODY) if checksum else url
    listing = tmp_path / "urls.txt"
    listing.write_text(line + "\n")
    result = pdl("fetch", str(listing), "-d", str(dest), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "ok"
    assert len(server.requests_for("/a.bin")) == 1
    assert not target.is_symlink() and target.is_file()
    assert target.read_bytes() == BODY
    assert outside.read_bytes() == BODY
    assert not (tmp_path / "nowhere").exists()


# --------------------------------------------------------------------------------------------
# 7. no download looks like a companion; a record cannot be forged
# --------------------------------------------------------------------------------------------

LONG = "L" * 246 + ".iso"  # its record name is hashed: .<32 hex>.part.pdl


@pytest.mark.parametrize(
    ("planted", "honest"),
    [
        ("report.part", "report"),
        ("notes.part.pdl", "notes"),
        ("notes.PART.pdl", "notes"),
        ("notes.part.pdl.tmp", "notes"),
        (record_name(LONG), LONG),
    ],
)
def test_a_download_named_like_a_companion_survives_the_honest_one(
    server: FaultServer, dest: Path, planted: str, honest: str
) -> None:
    server.add(f"/{planted}", b"mine, downloaded earlier\n")
    server.add(f"/{honest}", BODY, faults=[Fault.truncate(200_000)])
    first = run([server.url(f"/{planted}")], dest).results[0]
    assert first.status is Status.OK and first.path is not None
    kept = Path(first.path)
    assert not is_companion(kept.name) and kept.name == planted + "_"
    # the honest download stops part-way (so it has a .part and a record), then finishes
    second = run([server.url(f"/{honest}")], dest, retries=0).results[0]
    assert second.status is Status.FAILED
    third = run([server.url(f"/{honest}")], dest).results[0]
    assert third.status is Status.OK and third.resumed_from == 200_000
    assert (dest / honest).read_bytes() == BODY
    assert kept.read_bytes() == b"mine, downloaded earlier\n"


def test_a_server_name_like_a_companion_is_changed(server: FaultServer, dest: Path) -> None:
    header = {"Content-Disposition": 'attachment; filename="victim.part"'}
    server.add("/x", b"planted", headers=header)
    report = run([server.url("/x")], dest, content_disposition=True)
    assert report.results[0].status is Status.OK
    assert files_under(dest) == {"victim.part_"}


def test_a_forged_record_beside_a_planted_partial_is_not_believed(
    server: FaultServer, dest: Path
) -> None:
    """A partial and a record made by someone else (any tool, or an old download)."""
    server.add("/victim.bin", BODY)
    url = server.url("/victim.bin")
    (dest / "victim.bin.part").write_bytes(b"EVIL" * 25_000)
    forged = {"url_sha256": ResumeRecord.url_hash(url), "validator": auto_etag(BODY)}
    forged |= {"length": len(BODY), "segments": None}
    (dest / record_name("victim.bin")).write_text(json.dumps(forged))
    result = run([url], dest).results[0]
    assert result.status is Status.OK and result.resumed_from == 0
    assert (dest / "victim.bin").read_bytes() == BODY
    assert files_under(dest) == {"victim.bin"}


def test_a_record_moved_beside_another_partial_is_not_believed(
    server: FaultServer, dest: Path
) -> None:
    server.add("/a.bin", BODY)
    url = server.url("/a.bin")
    (dest / "a.bin.part").write_bytes(BODY[:100_000])
    with open_folder(dest, (), str(dest)) as folder:
        folder.write_record(
            "a.bin", ResumeRecord(ResumeRecord.url_hash(url), auto_etag(BODY), None)
        )
    (dest / "a.bin.part").replace(dest / "old.part")
    (dest / "a.bin.part").write_bytes(b"X" * 100_000)  # same size, another file
    result = run([url], dest).results[0]
    assert result.status is Status.OK and result.resumed_from == 0
    assert (dest / "a.bin").read_bytes() == BODY


@pytest.mark.parametrize(
    "name", ["a.part", "A.PART", "a.part.pdl", "x.part.pdl.tmp", "y" * 300 + ".part", "z.part."]
)
def test_sanitize_never_gives_a_companion_name(name: str) -> None:
    safe = sanitize(name)
    assert not is_companion(safe) and len(safe.encode()) <= 250
    assert sanitize(safe) == safe


# --------------------------------------------------------------------------------------------
# 8. credentials are redacted whatever the URL parser thinks of the URL
# --------------------------------------------------------------------------------------------

SECRET = "hunter2"
UNPARSABLE = [
    "http://bob:hunter2#frag@{host}/f",
    "http://bob:hunter2/x@{host}/f",
    "http://bob:hunter2?x@{host}/f",
    "http://bob:hunter2 x@{host}/f",
    "http://bob:x hunter2@{host}/f",
    "http://bob:hunter2@[::1/f",
    "http://bob:hunter2@{host}:99999/f",
]


@pytest.mark.parametrize("template", UNPARSABLE)
@pytest.mark.parametrize("mode", [[], ["--json"], ["--dry-run"], ["--dry-run", "--json"]])
def test_credentials_never_printed(
    server: FaultServer, tmp_path: Path, template: str, mode: list[str]
) -> None:
    host = f"{server.host}:{server.port}"
    listing = tmp_path / "urls.txt"
    listing.write_text(template.format(host=host) + "\n")
    result = pdl("fetch", str(listing), "-d", str(tmp_path / "d"), "--retries", "0", *mode)
    assert result.exit_code == 1, result.output
    assert SECRET not in result.stdout and SECRET not in result.stderr
    # a bad line is shown by its FILE:LINE only; a URL that is shown is redacted
    shown = result.stdout + result.stderr
    assert "***@" in shown or mode == ["--dry-run"] or "bob" not in shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://bob:hunter2#frag@host/f", "http://***@host/f"),
        ("https://u:p@h/x", "https://***@h/x"),
        ("http://bob:pw@[::1/f", "http://***@[::1/f"),
        ("bob:pw@host/x", "***@host/x"),
        ("https://host/mail/to@someone", "https://host/mail/to@someone"),
        ("https://[::1]:8443/x@y", "https://[::1]:8443/x@y"),
    ],
)
def test_redact_without_parsing(url: str, shown: str) -> None:
    assert redact(url) == shown
    assert redact_text(f"failed: {url}: refused", url) == f"failed: {shown}: refused"


def test_redact_text_hides_credentials_of_any_url_in_it() -> None:
    text = "redirect from http://a:s3cret@h/x to https://b:t0ken#x@i/y"
    assert redact_text(text, "http://other/") == "redirect from http://***@h/x to https://***@i/y"


def test_a_bad_url_reason_does_not_quote_its_parts() -> None:
    reason = check_url("http://bob:hunter2#x@host/f")
    assert reason is not None and SECRET not in reason


# --------------------------------------------------------------------------------------------
# 10. server and list text reaches the terminal with its control characters escaped
# --------------------------------------------------------------------------------------------


@pytest.fixture
def raw_server() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A server that answers each path with the exact bytes given for it, then closes."""
    answers: dict[str, bytes] = {}
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(5)
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    request += chunk
                path = request.split(b" ", 2)[1].decode() if b" " in request else "/"
                conn.sendall(answers.get(path, b"HTTP/1.1 404 Not Found\r\n\r\n"))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", answers
    finally:
        stop.set()
        thread.join(5)
        listener.close()


HOSTILE = b"\x1b]0;pwned\x07\x1b[2K\rpdl: done: 9 ok\x9b2J"


def test_server_text_is_escaped_on_stderr_and_in_json(
    raw_server: tuple[str, dict[str, bytes]], tmp_path: Path
) -> None:
    base, answers = raw_server
    close = b"Content-Length: 0\r\nConnection: close\r\n\r\n"
    bare = HOSTILE.replace(b"\r", b"")  # libcurl itself refuses a header line holding a CR
    answers["/reason"] = b"HTTP/1.1 404 Not" + HOSTILE + b"\r\n" + close
    answers["/location"] = b"HTTP/1.1 302 Found\r\nLocation: ftp://x/" + HOSTILE + b"\r\n" + close
    answers["/reason2"] = b"HTTP/1.1 404 Not" + bare + b"\r\n" + close
    answers["/location2"] = b"HTTP/1.1 302 Found\r\nLocation: ftp://x/" + bare + b"\r\n" + close
    listing = tmp_path / "urls.txt"
    listing.write_text(
        "".join(f"{base}/{p}\n" for p in ("reason", "location", "reason2", "location2"))
    )
    for mode in ([], ["-v"], ["--json"]):
        result = pdl("fetch", str(listing), "-d", str(tmp_path / "d"), "--retries", "0", *mode)
        assert result.exit_code == 1
        shown = result.stdout + result.stderr
        assert "pwned" in shown or mode == ["--json"]
        for raw in ("\x1b", "\x07", "\r", "\x9b"):
            assert raw not in shown, (mode, shown)
        errors = [json.loads(line)["error"] for line in result.stdout.splitlines()]
        assert len(errors) == (4 if mode == ["--json"] else 0)
        refused = ("found in header", "cannot fetch: ftp://...")  # refused, or shown without it
        assert all("\\x1b" in e or any(r in e for r in refused) for e in errors), errors


@pytest.mark.parametrize(
    "text", ["a\x1b[2Kb", "invoice\u202efdp.exe", "zero\u200bwidth", "l\u2028ine", "\ud800x"]
)
def test_escape_shows_invisible_characters(text: str) -> None:
    shown = escape(text)
    assert shown.isprintable() and "\\" in shown
    assert escape("plain text, déjà vu 日本") == "plain text, déjà vu 日本"


# --------------------------------------------------------------------------------------------
# 11. odd header values are total; 20. an empty filename* does not beat filename
# --------------------------------------------------------------------------------------------

HUGE_YEAR = "Wed, 21 Oct 99999999999999999999 07:28:00 GMT"


@pytest.mark.parametrize(
    "value", [HUGE_YEAR, "Wed, 21 Oct 10000 07:28:00 GMT", "Mon, 99 Foo 2020 99:99:99 GMT"]
)
def test_retry_after_is_total(value: str) -> None:
    assert parse_retry_after(value) is None


def test_a_503_with_a_huge_retry_after_year_is_retried(server: FaultServer, dest: Path) -> None:
    server.add("/a.bin", b"a", faults=[Fault.status(503, retry_after=HUGE_YEAR)])
    result = run([server.url("/a.bin")], dest).results[0]
    assert result.status is Status.OK and result.error is None
    assert len(server.requests_for("/a.bin")) == 2
    assert (dest / "a.bin").read_bytes() == b"a"


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("attachment; filename*=punycode''%00", None),
        ("attachment; filename*=punycode''%00; filename=ok.txt", "ok.txt"),
        ("attachment; filename*=rot13''abc", None),
        ("attachment; filename*=utf-7''+AGE-", None),
        ("attachment; filename*=UTF-8''; filename=\"good.txt\"", "good.txt"),
        ("attachment; filename*=UTF-8''%2F%2E; filename=\"good.txt\"", "good.txt"),
        ('attachment; filename="invoice\u202efdp.exe"', "invoice_fdp.exe"),
        ("attachment; filename*=UTF-8''a%E2%80%8Bb.txt", "a_b.txt"),
    ],
)
def test_odd_content_dispositions(header: str, name: str | None) -> None:
    assert name_from_content_disposition(header) == name


@pytest.mark.parametrize(
    "header", ["attachment; filename*=punycode''%00", "attachment; filename*=UTF-8''"]
)
def test_an_odd_content_disposition_falls_back_to_the_url_name(
    server: FaultServer, dest: Path, header: str
) -> None:
    server.add("/a.bin", b"a", headers={"Content-Disposition": header})
    result = run([server.url("/a.bin")], dest, content_disposition=True).results[0]
    assert result.status is Status.OK, result.error
    assert (dest / "a.bin").read_bytes() == b"a"


def test_bidi_and_zero_width_names_from_a_url_are_made_visible(
    server: FaultServer, dest: Path
) -> None:
    server.add("/invoice%E2%80%AEfdp.exe", b"x")
    result = run([server.url("/invoice%E2%80%AEfdp.exe")], dest).results[0]
    assert result.status is Status.OK
    assert files_under(dest) == {"invoice_fdp.exe"}


# --------------------------------------------------------------------------------------------
# 12, 13, 19: standard streams and signals, in a real process
# --------------------------------------------------------------------------------------------


def _pdl_process(
    args: list[str | bytes], redirect: str, **kwargs: Any
) -> subprocess.CompletedProcess[bytes]:
    """Run ``pdl`` with the shell redirection ``redirect`` (``2>&-``, ``>/dev/full``, ...)."""
    argv = [sys.executable, "-m", "downloader", *args]
    shell = f'exec "$@" {redirect}'
    return subprocess.run(
        ["sh", "-c", shell, "sh", *argv], capture_output=True, timeout=60, check=False, **kwargs
    )


@pytest.mark.parametrize("redirect", ["2>&-", ">&-", "2>/dev/full", ">/dev/full", ">&- 2>&-"])
def test_closed_or_full_streams_do_not_stop_downloads(
    server: FaultServer, dest: Path, redirect: str
) -> None:
    server.add("/a.bin", b"a")
    server.add("/b.bin", b"b")
    args = ["fetch", "-d", str(dest), server.url("/a.bin"), server.url("/b.bin")]
    done = _pdl_process([*args], redirect)
    assert done.returncode == 0, done.stderr
    assert (dest / "a.bin").read_bytes() == b"a" and (dest / "b.bin").read_bytes() == b"b"
    assert b"Traceback" not in done.stderr and b"cannot read a URL list" not in done.stderr
    if redirect in (">&-", ">/dev/full"):
        assert done.stderr.count(b"standard output") == 1, done.stderr


def test_closed_streams_still_give_the_exit_status_of_the_downloads(
    server: FaultServer, dest: Path
) -> None:
    server.add("/a.bin", b"a")
    args = ["fetch", "-d", str(dest), "--retries", "0", server.url("/a.bin"), server.url("/no")]
    for redirect in (">&- 2>&-", ">/dev/full 2>/dev/full"):
        assert _pdl_process(args, redirect).returncode == 1
    assert (dest / "a.bin").read_bytes() == b"a"


def test_a_closed_stdout_is_not_given_to_a_download(server: FaultServer, dest: Path) -> None:
    """With fd 1 closed, the first file opened would get it: prints must not land there."""
    server.add("/a.bin", BODY)
    done = _pdl_process(["fetch", "-d", str(dest), "-v", server.url("/a.bin")], ">&-")
    assert done.returncode == 0
    assert (dest / "a.bin").read_bytes() == BODY


def test_a_dest_not_valid_in_the_locale_encoding(server: FaultServer, tmp_path: Path) -> None:
    server.add("/a.bin", b"a")
    server.add("/b.bin", b"b")
    dest = os.fsencode(tmp_path) + b"/dest-\xfe"
    args: list[str | bytes] = ["fetch", "-d", dest, server.url("/a.bin"), server.url("/b.bin")]
    done = _pdl_process(args, "")
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == [dest + b"/a.bin", dest + b"/b.bin"]
    assert b"UnicodeEncodeError" not in done.stderr
    as_json = _pdl_process([*args, "--json", "--on-exist", "overwrite"], "")
    assert as_json.returncode == 0, as_json.stderr
    assert all(json.loads(line)["status"] == "ok" for line in as_json.stdout.splitlines())


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_the_summary_prints(
    server: FaultServer, dest: Path, monkeypatch: pytest.MonkeyPatch, signum: int, code: int
) -> None:
    server.add("/a.bin", b"a")

    def summary(*args: Any) -> Iterator[str]:
        yield "pdl: done: ..."
        os.kill(os.getpid(), signum)
        yield "never printed"

    monkeypatch.setattr(cli_module, "summary_lines", summary)
    result = CliRunner().invoke(cli_module.main, ["fetch", "-d", str(dest), server.url("/a.bin")])
    assert result.exit_code == code, result.output
    assert "Aborted" not in result.output
    assert (dest / "a.bin").read_bytes() == b"a"


# --------------------------------------------------------------------------------------------
# 16. a million bad lines: failures are streamed, not kept
# --------------------------------------------------------------------------------------------


def test_failures_are_counted_not_kept(tmp_path: Path) -> None:
    n = 50_000
    lines = (f"ftp://example.org/{i}" for i in range(n))
    tracemalloc.start()
    try:
        report = fetch(parse_lines(lines, "big.txt"), dest=tmp_path, keep_results=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.counts.failed == n
    assert len(report.results) == FAILED_KEPT
    assert [r.source for r in report.results[:2]] == ["big.txt:1", "big.txt:2"]
    assert peak < 8 * 1024**2, peak


def test_many_failures_each_printed_once_and_the_rest_counted(tmp_path: Path) -> None:
    n = FAILED_KEPT + 50
    listing = tmp_path / "urls.txt"
    listing.write_text("".join(f"ftp://example.org/{i}\n" for i in range(n)))
    failed = tmp_path / "again.txt"
    result = pdl("fetch", str(listing), "-d", str(tmp_path / "d"), "--failed", str(failed))
    assert result.exit_code == 1
    last = f"{listing}:{n}:"
    assert result.stderr.count(last) == 1
    assert f"{n} failed" in result.stderr and "50 more" in result.stderr
    assert failed.read_text().count("ftp://example.org/") == n


# --------------------------------------------------------------------------------------------
# issue 13, item 9: wording
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["http//host/x", "host:8080/x", "example.org/a.iso"])
def test_a_url_without_its_scheme_says_so(url: str) -> None:
    assert check_url(url) == "URL lacks http:// or https:// at the start"
