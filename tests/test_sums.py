"""Manifests in (``--checksums``) and out (``--write-sums``), and digest headers (RFC 9530/3230)."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from downloader import Report, Status, cli, fetch
from downloader.digests import Expected, from_headers, parse_manifest, parse_manifest_line, sum_line
from downloader.options import Checksum
from downloader.wire import Headers
from tests.conftest import RecordingReporter
from tests.server import Fault, FaultServer

UNIT = 64 * 1024
BIG = bytes(range(256)) * 4096 * 2  # 2 MiB: large enough to keep a resume record
A, B, C = b"alpha\n" * 100, b"bravo\n" * 200, b"charlie\n" * 300


def hexd(data: bytes, algorithm: str = "sha256") -> str:
    return hashlib.new(algorithm, data).hexdigest()


def b64(data: bytes, algorithm: str = "sha256") -> str:
    return base64.b64encode(hashlib.new(algorithm, data).digest()).decode()


def run(urls: list[str], dest: Path, **kwargs: Any) -> Report:
    kwargs.setdefault("retry_wait", 0.0)
    kwargs.setdefault("timeout", 5.0)
    return fetch(urls, dest=dest, **kwargs)


def by_url(report: Report) -> dict[str, Any]:
    return {r.url.rsplit("/", 1)[-1]: r for r in report.results}


# -- pure parsers -------------------------------------------------------------------

SHA = hashlib.sha256(b"x").digest()
SHA512 = hashlib.sha512(b"x").digest()
S64, S512 = base64.b64encode(SHA).decode(), base64.b64encode(SHA512).decode()


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (200, {}, None),
        (200, {"Repr-Digest": f"sha-256=:{S64}:"}, ("sha-256", SHA.hex(), "Repr-Digest")),
        (206, {"Repr-Digest": f"sha-256=:{S64}:"}, ("sha-256", SHA.hex(), "Repr-Digest")),
        (200, {"Repr-Digest": f"SHA-256=:{S64}:"}, ("sha-256", SHA.hex(), "Repr-Digest")),
        (200, {"Repr-Digest": f"sha-512=:{S512}:"}, ("sha-512", SHA512.hex(), "Repr-Digest")),
        (
            200,
            {"Repr-Digest": f"sha-512=:{S512}:, sha-256=:{S64}:"},
            ("sha-256", SHA.hex(), "Repr-Digest"),
        ),
        (200, {"Repr-Digest": f"sha-256=:{S64}:;p=1"}, ("sha-256", SHA.hex(), "Repr-Digest")),
        (200, {"Repr-Digest": f"md5=:{S64}:, unixsum=:AA==:"}, None),  # unsupported: ignored
        (200, {"Repr-Digest": f"sha-256={S64}"}, None),  # not a byte sequence
        (200, {"Repr-Digest": "sha-256=:not base64!:"}, None),
        (200, {"Repr-Digest": "sha-256=:AAAA:"}, None),  # wrong length
        (200, {"Repr-Digest": "sha-256=::"}, None),
        (200, {"Repr-Digest": "sha-256"}, None),
        (200, {"Repr-Digest": ",,=,:"}, None),
        (200, {"Repr-Digest": "\x00\xff"}, None),
        (200, {"Content-Digest": f"sha-256=:{S64}:"}, ("sha-256", SHA.hex(), "Content-Digest")),
        (206, {"Content-Digest": f"sha-256=:{S64}:"}, None),  # of the part, not the file
        (200, {"Content-Digest": f"sha-256=:{S64}:", "Content-Encoding": "gzip"}, None),
        (200, {"Digest": f"SHA-256={S64}"}, ("sha-256", SHA.hex(), "Digest")),
        (200, {"Digest": f"md5=AAAA, sha-512={S512}"}, ("sha-512", SHA512.hex(), "Digest")),
        (200, {"Digest": "SHA-256="}, None),
        (200, {"Digest": "SHA=abc"}, None),
        (206, {"Digest": f"SHA-256={S64}"}, None),  # RFC 3230 on a 206: ambiguous, ignored
        (404, {"Repr-Digest": f"sha-256=:{S64}:"}, None),
        (
            200,
            {"Repr-Digest": f"sha-512=:{S512}:", "Digest": f"SHA-256={S64}"},
            ("sha-512", SHA512.hex(), "Repr-Digest"),
        ),
    ],
)
def test_digest_headers(status: int, headers: dict[str, str], expected: tuple[str, ...]) -> None:
    got = from_headers(status, Headers(headers.items()))
    if expected is None:
        assert got is None
    else:
        assert got == Expected(Checksum(expected[0], expected[1]), expected[2])


H32, H40, H64, H128 = "a" * 32, "b" * 40, "c" * 64, "D" * 128


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (f"{H64}  a.iso\n", ("a.iso", "sha-256", H64)),
        (f"{H64} *a.iso", ("a.iso", "sha-256", H64)),
        (f"{H32}  ./sub/a b.iso\r\n", ("sub/a b.iso", "md5", H32)),
        (f"{H40}  a", ("a", "sha-1", H40)),
        (f"{H128}  a", ("a", "sha-512", H128.lower())),
        (f"SHA256 (a.iso) = {H64}", ("a.iso", "sha-256", H64)),
        (f"SHA512 (x (1).iso) = {H128}", ("x (1).iso", "sha-512", H128.lower())),
        (f"MD5 (a) = {H32}", ("a", "md5", H32)),
        (f"SHA1 (a) = {H40}", ("a", "sha-1", H40)),
        (f"\\{H64}  back\\\\slash\\nline", ("back\\slash\nline", "sha-256", H64)),
        ("", None),
        ("   ", None),
        ("# comment", None),
        (f"{'e' * 56}  a", "a digest of 56 hex digits"),
        (f"SHA384 (a) = {'e' * 96}", "unsupported algorithm"),
        (f"SHA256 (a) = {H32}", "SHA256 needs 64 hex digits"),
        (f"{H64} a", "not a checksum line"),
        (f"{H64}  ", "not a checksum line"),
        ("hello world", "not a checksum line"),
        (f"{H64}  /etc/passwd", "not a path under --dir"),
        (f"{H64}  a/../b", "not a path under --dir"),
        (f"\\{H64}  bad\\x", "a bad escape"),
    ],
)
def test_manifest_lines(line: str, expected: Any) -> None:
    got = parse_manifest_line(line)
    if expected is None:
        assert got is None
    elif isinstance(expected, tuple):
        name, algorithm, hexdigest = expected
        assert got == (name, Checksum(algorithm, hexdigest))
    else:
        assert isinstance(got, str) and got.startswith(expected), got


def test_manifest_reports_bad_and_conflicting_lines_by_number() -> None:
    manifest, errors = parse_manifest(
        [f"{H64}  a\n", "junk\n", f"{H64}  a\n", f"{'f' * 64}  a\n"], "SUMS"
    )
    assert len(manifest) == 1
    assert errors[0].startswith("SUMS:2: not a checksum line")
    assert errors[1].startswith("SUMS:4: 'a' has another checksum on line 1")
    assert manifest.lookup("a") == (Checksum("sha-256", H64), "SUMS:1")
    assert manifest.lookup("b") is None and manifest.matched == 1


@pytest.mark.parametrize(
    ("path", "line"),
    [("a/b.iso", f"{H64}  a/b.iso\n"), ("a\\b\nc", f"\\{H64}  a\\\\b\\nc\n")],
)
def test_sum_line_round_trips(path: str, line: str) -> None:
    assert sum_line(H64, path) == line
    assert parse_manifest_line(line) == (path, Checksum("sha-256", H64))


# -- --checksums against the server ---------------------------------------------------


def serve_abc(server: FaultServer) -> list[str]:
    server.add("/a.txt", A)
    server.add("/b.txt", B)
    server.add("/c.txt", C)
    return [server.url("/a.txt"), server.url("/b.txt"), server.url("/c.txt")]


def test_gnu_manifest_verifies_matching_fails_mismatching_and_leaves_others(
    server: FaultServer, dest: Path, tmp_path: Path
) -> None:
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{hexd(A)}  a.txt\n{hexd(b'not bravo')} *b.txt\n{hexd(b'x')}  other.txt\n")
    report = run(serve_abc(server), dest, checksums=sums, retries=1)
    got = by_url(report)
    assert got["a.txt"].status is Status.OK and (dest / "a.txt").read_bytes() == A
    assert got["b.txt"].status is Status.FAILED
    assert "checksum mismatch" in (got["b.txt"].error or "")
    assert not (dest / "b.txt").exists() and not (dest / "b.txt.part").exists()
    assert len(server.requests_for("/b.txt")) == 2  # retried like any checksum mismatch
    assert got["c.txt"].status is Status.OK and (dest / "c.txt").read_bytes() == C


def test_bsd_manifest_with_sha512_and_md5_in_a_sub_folder(
    server: FaultServer, dest: Path, tmp_path: Path
) -> None:
    sums = tmp_path / "SUMS"
    sums.write_text(
        f"SHA512 (sub/a.txt) = {hexd(A, 'sha512')}\nMD5 (sub/b.txt) = {hexd(b'nope', 'md5')}\n"
    )
    urls = [f"{u} dir=sub" for u in serve_abc(server)[:2]]
    got = by_url(run(urls, dest, checksums=sums, retries=0))
    assert got["a.txt"].status is Status.OK and (dest / "sub/a.txt").read_bytes() == A
    assert got["b.txt"].status is Status.FAILED and "checksum mismatch (md5)" in got["b.txt"].error
    assert not (dest / "sub/b.txt").exists()


def test_a_list_checksum_that_disagrees_with_the_manifest_is_a_bad_line(
    server: FaultServer, dest: Path, tmp_path: Path, recorder: RecordingReporter
) -> None:
    sums = tmp_path / "SUMS"
    sums.write_text(f"{hexd(A)}  a.txt\n{hexd(B)}  b.txt\n")
    a, b, c = serve_abc(server)
    urls = [f"{a} checksum=sha-256={hexd(A)}", f"{b} checksum=sha-256={hexd(C)}", c]
    report = run(urls, dest, checksums=sums, reporter=recorder)
    got = by_url(report)
    assert got["a.txt"].status is Status.OK
    bad = next(r for r in report.results if r.status is Status.FAILED)
    assert bad.source == "<args>:2" and "disagrees with" in (bad.error or "")
    assert f"{sums}:2" in (bad.error or "")
    assert server.requests_for("/b.txt") == [] and not (dest / "b.txt").exists()
    assert (dest / "c.txt").read_bytes() == C and report.exit_code == 1


def test_bad_manifest_lines_are_named_and_the_rest_applies(
    server: FaultServer, dest: Path, tmp_path: Path, recorder: RecordingReporter
) -> None:
    sums = tmp_path / "SUMS"
    sums.write_text(f"garbage\n{hexd(b'wrong')}  a.txt\n")
    report = run(serve_abc(server)[:1], dest, checksums=sums, reporter=recorder, retries=0)
    assert any(m.startswith(f"{sums}:1: not a checksum line") for m in recorder.messages)
    assert report.results[0].status is Status.FAILED


def test_a_manifest_that_names_nothing_is_a_warning(
    server: FaultServer, dest: Path, tmp_path: Path, recorder: RecordingReporter
) -> None:
    sums = tmp_path / "SUMS"
    sums.write_text(f"{hexd(A)}  elsewhere.txt\n")
    report = run(serve_abc(server)[:1], dest, checksums=sums, reporter=recorder)
    assert report.exit_code == 0
    assert any("names no entry" in m for m in recorder.messages)


def test_an_unreadable_manifest_is_a_usage_error(server: FaultServer, dest: Path) -> None:
    result = CliRunner().invoke(
        cli.main, ["fetch", "-d", str(dest), "--checksums", str(dest / "none"), server.url("/a")]
    )
    assert result.exit_code == 2 and "--checksums" in result.output
    assert server.requests == []


def test_on_exist_skip_rechecks_an_existing_file_against_the_manifest(
    server: FaultServer, dest: Path, tmp_path: Path
) -> None:
    sums = tmp_path / "SUMS"
    sums.write_text(f"{hexd(A)}  a.txt\n{hexd(B)}  b.txt\n")
    (dest / "a.txt").write_bytes(A)
    (dest / "b.txt").write_bytes(b"stale")
    got = by_url(run(serve_abc(server)[:2], dest, checksums=sums))
    assert got["a.txt"].status is Status.SKIPPED and server.requests_for("/a.txt") == []
    assert got["b.txt"].status is Status.OK and (dest / "b.txt").read_bytes() == B


# -- --write-sums ------------------------------------------------------------------------


def test_write_sums_is_sha256sum_checkable_in_list_order(
    server: FaultServer, dest: Path, tmp_path: Path
) -> None:
    a, b, c = serve_abc(server)
    server.add("/slow.bin", BIG, delay=0.3)
    server.add("/big.bin", BIG)
    (dest / "c.txt").write_bytes(C)  # skipped: hashed from disk
    urls = [
        server.url("/slow.bin"),
        f"{a} dir=sub",
        server.url("/missing"),
        c,
        f"{server.url('/big.bin')} out=split.bin",
        b,
    ]
    out = tmp_path / "got.sha256"
    report = run(urls, dest, write_sums=out, jobs=4, split=2, split_min_size=UNIT, retries=0)
    assert report.counts.ok == 4 and report.counts.skipped == 1 and report.counts.failed == 1
    assert out.read_text() == (
        f"{hexd(BIG)}  slow.bin\n{hexd(A)}  sub/a.txt\n{hexd(C)}  c.txt\n"
        f"{hexd(BIG)}  split.bin\n{hexd(B)}  b.txt\n"
    )
    assert not list(tmp_path.glob(".got.sha256.*"))  # the temporary file was renamed
    sha256sum = shutil.which("sha256sum")
    if sha256sum is not None:
        check = subprocess.run([sha256sum, "-c", str(out)], cwd=dest, capture_output=True)
        assert check.returncode == 0, check.stdout + check.stderr


def test_write_sums_after_a_resume_hashes_the_whole_file(
    server: FaultServer, dest: Path, tmp_path: Path
) -> None:
    server.add("/a.bin", BIG, faults=[Fault.truncate(UNIT * 3)])
    out = tmp_path / "sums"
    report = run([server.url("/a.bin")], dest, write_sums=out)
    assert report.results[0].resumed_from == UNIT * 3
    assert out.read_text() == f"{hexd(BIG)}  a.bin\n"


def test_write_sums_with_a_dest_and_the_cli(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.add("/a.txt", A)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli.main, ["fetch", "-q", "-d", "out", "--write-sums", "s.txt", server.url("/a.txt")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s.txt").read_text() == f"{hexd(A)}  a.txt\n"


# -- digest headers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {"Repr-Digest": f"sha-256=:{b64(A)}:"},
        {"Repr-Digest": f"sha-512=:{b64(A, 'sha512')}:"},
        {"Digest": f"SHA-256={b64(A)}"},
        {"Repr-Digest": f"md5=:{b64(b'other', 'md5')}:"},  # unsupported: ignored
        {"Digest": f"MD5={b64(b'other', 'md5')}"},
    ],
)
def test_a_right_or_unsupported_digest_header_downloads(
    server: FaultServer, dest: Path, headers: dict[str, str]
) -> None:
    server.add("/a.txt", A, headers=headers)
    report = run([server.url("/a.txt")], dest)
    assert report.results[0].status is Status.OK and (dest / "a.txt").read_bytes() == A


@pytest.mark.parametrize(
    "headers",
    [
        {"Repr-Digest": f"sha-256=:{b64(B)}:"},
        {"Digest": f"SHA-256={b64(B)}"},
        {"Content-Digest": f"sha-512=:{b64(B, 'sha512')}:"},
    ],
)
def test_a_wrong_digest_header_is_a_checksum_mismatch(
    server: FaultServer, dest: Path, headers: dict[str, str]
) -> None:
    server.add("/a.txt", A, headers=headers)
    report = run([server.url("/a.txt")], dest, retries=1)
    result = report.results[0]
    assert result.status is Status.FAILED and "checksum mismatch" in (result.error or "")
    assert not (dest / "a.txt").exists() and not (dest / "a.txt.part").exists()
    assert len(server.requests_for("/a.txt")) == 2


def test_repr_digest_on_a_resumed_download_is_of_the_whole_file(
    server: FaultServer, dest: Path
) -> None:
    part = BIG[UNIT * 3 :]
    server.add(
        "/a.bin",
        BIG,
        faults=[Fault.truncate(UNIT * 3)],
        # Content-Digest is of the bytes sent: right for no response here, ignored on the 206
        headers={
            "Repr-Digest": f"sha-256=:{b64(BIG)}:",
            "Content-Digest": f"sha-256=:{b64(part)}:",
        },
    )
    report = run([server.url("/a.bin")], dest)
    result = report.results[0]
    assert result.status is Status.OK, result.error
    assert result.resumed_from == UNIT * 3 and (dest / "a.bin").read_bytes() == BIG


def test_a_wrong_repr_digest_on_a_resume_discards_the_partial(
    server: FaultServer, dest: Path
) -> None:
    server.add(
        "/a.bin",
        BIG,
        faults=[Fault.truncate(UNIT * 3)],
        headers={"Repr-Digest": f"sha-256=:{b64(b'another version')}:"},
    )
    report = run([server.url("/a.bin")], dest, retries=2)
    result = report.results[0]
    assert result.status is Status.FAILED and "checksum mismatch" in (result.error or "")
    assert "Repr-Digest" in (result.error or "")
    assert not (dest / "a.bin").exists() and not (dest / "a.bin.part").exists()


def test_the_cli_names_a_bad_manifest_line_without_verbose(
    server: FaultServer, dest: Path, tmp_path: Path
) -> None:
    server.add("/a.txt", A)
    sums = tmp_path / "SUMS"
    sums.write_text(f"junk\n{hexd(A)}  a.txt\n")
    result = CliRunner().invoke(
        cli.main, ["fetch", "-q", "-d", str(dest), "--checksums", str(sums), server.url("/a.txt")]
    )
    assert result.exit_code == 0
    assert f"pdl: {sums}:1: not a checksum line" in result.output
    assert (dest / "a.txt").read_bytes() == A
