"""Disk-side faults: a destination that cannot be written, a full disk, a folder in the way.

Each fails its own entry with a clear error, leaves no final file, keeps a partial
where resuming it later makes sense, and the rest of the run goes on. Faults of the
system are simulated in-process by failing ``os.open``/``os.write`` for one file only
(tests run as root in CI, where permission bits do not stop anyone).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from downloader import Report, Status, fetch
from tests.server import FaultServer

BIG = bytes(range(256)) * 4096 * 2  # 2 MiB


def run(urls: list[str], dest: Path, **kwargs: Any) -> Report:
    return fetch(urls, dest=dest, retry_wait=0.0, timeout=5.0, **kwargs)


def by_url(report: Report) -> dict[str, Any]:
    return {r.url: r for r in report.results}


def fd_path(fd: int) -> str:
    try:
        return str(Path(f"/proc/self/fd/{fd}").readlink())
    except OSError:
        return ""


def failing_write(after: int, suffix: str) -> Callable[..., int]:
    """An ``os.pwrite`` (how bodies reach a partial) failing with ENOSPC once ``after`` bytes
    went to a file ending ``suffix``."""
    real = os.pwrite
    written = 0

    def pwrite(fd: int, data: Any, offset: int) -> int:
        nonlocal written
        if fd_path(fd).endswith(suffix):
            if written + len(data) > after:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written += len(data)
        return real(fd, data, offset)

    return pwrite


def test_disk_full_fails_that_entry_keeps_its_partial_and_resumes_later(
    server: FaultServer, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.add("/full.bin", BIG)
    server.add("/fine.bin", b"fine")
    monkeypatch.setattr(os, "pwrite", failing_write(512 * 1024, "/full.bin.part"))
    report = run([server.url("/full.bin"), server.url("/fine.bin")], dest, jobs=1)
    full = by_url(report)[server.url("/full.bin")]
    assert full.status is Status.FAILED and "no space left on device" in full.error
    assert full.attempts == 1  # not retried: a full disk does not empty itself in seconds
    assert by_url(report)[server.url("/fine.bin")].status is Status.OK
    assert not (dest / "full.bin").exists()
    kept = (dest / "full.bin.part").stat().st_size
    assert 0 < kept <= 512 * 1024 and (dest / "full.bin.part").read_bytes() == BIG[:kept]

    monkeypatch.undo()  # space was freed: the next run continues the partial
    again = run([server.url("/full.bin")], dest)
    assert again.results[0].status is Status.OK and again.results[0].resumed_from == kept
    assert server.requests_for("/full.bin")[-1].header("range") == f"bytes={kept}-"
    assert (dest / "full.bin").read_bytes() == BIG
    assert sorted(os.listdir(dest)) == ["fine.bin", "full.bin"]


def test_disk_full_on_a_small_file_leaves_nothing_half_written(
    server: FaultServer, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.add("/small.txt", b"s" * 1000)
    monkeypatch.setattr(os, "pwrite", failing_write(0, "/small.txt.part"))
    result = run([server.url("/small.txt")], dest).results[0]
    assert result.status is Status.FAILED and "no space left on device" in result.error
    assert not (dest / "small.txt").exists()
    assert [n for n in os.listdir(dest) if not n.endswith((".part", ".part.pdl"))] == []


def test_a_destination_that_cannot_be_written_fails_its_entries_only(
    server: FaultServer, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.add("/a.bin", b"a")
    server.add("/b.bin", b"b")
    real = os.open

    def open_(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        in_ro = fd_path(kwargs.get("dir_fd", -1)).endswith("/ro")
        if str(path).endswith(".part") and flags & os.O_CREAT and in_ro:
            raise OSError(errno.EACCES, os.strerror(errno.EACCES))
        return real(path, flags, *args, **kwargs)

    (dest / "ro").mkdir()
    monkeypatch.setattr(os, "open", open_)
    report = run([f"{server.url('/a.bin')} dir=ro", server.url("/b.bin")], dest)
    a = by_url(report)[server.url("/a.bin")]
    assert a.status is Status.FAILED and "permission denied" in a.error
    assert "ro/a.bin.part" in a.error  # says which file
    assert server.requests_for("/a.bin") == []  # nothing asked that could not be saved
    assert by_url(report)[server.url("/b.bin")].status is Status.OK
    assert os.listdir(dest / "ro") == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through permission bits")
def test_a_read_only_folder_fails_its_entries_only(server: FaultServer, dest: Path) -> None:
    server.add("/a.bin", b"a")
    server.add("/b.bin", b"b")
    (dest / "ro").mkdir()
    (dest / "ro").chmod(0o555)
    try:
        report = run([f"{server.url('/a.bin')} dir=ro", server.url("/b.bin")], dest)
    finally:
        (dest / "ro").chmod(0o755)
    assert "permission denied" in (by_url(report)[server.url("/a.bin")].error or "")
    assert by_url(report)[server.url("/b.bin")].status is Status.OK


@pytest.mark.parametrize("on_exist", ["skip", "overwrite", "rename"])
def test_a_folder_at_the_target(server: FaultServer, dest: Path, on_exist: str) -> None:
    (dest / "a.bin").mkdir()
    (dest / "a.bin" / "inside.txt").write_bytes(b"keep")
    server.add("/a.bin", b"a")
    server.add("/b.bin", b"b")
    report = run([server.url("/a.bin"), server.url("/b.bin")], dest, on_exist=on_exist)
    a = by_url(report)[server.url("/a.bin")]
    if on_exist == "rename":  # the folder is simply an existing name
        assert a.status is Status.OK and (dest / "a.1.bin").read_bytes() == b"a"
    else:
        assert (a.status is Status.FAILED and "is a folder" in a.error) or "folder" in a.error
    assert (dest / "a.bin" / "inside.txt").read_bytes() == b"keep"
    assert (dest / "b.bin").read_bytes() == b"b"


def test_an_existing_destination_that_cannot_be_written_is_one_usage_error(
    server: FaultServer, dest: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a folder that cannot be created: exit 2 with one line, no entry tried."""
    from downloader import cli

    server.add("/a.bin", b"a")
    real = os.access
    monkeypatch.setattr(  # root passes permission bits: this stands in for a read-only folder
        os,
        "access",
        lambda p, mode, **kw: not (Path(p) == dest and mode & os.W_OK) and real(p, mode, **kw),
    )
    result = CliRunner().invoke(cli.main, ["fetch", "-d", str(dest), server.url("/a.bin")])
    assert result.exit_code == 2
    assert "cannot write the destination folder" in result.stderr
    assert result.stderr.count("\n") <= 4 and server.requests == []  # the usage error alone
