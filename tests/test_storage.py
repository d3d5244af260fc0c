"""Where bytes land: --on-exist, links, folders in the way, nothing outside --dir."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from downloader import Report, Status, fetch
from downloader.errors import LocalFileError
from downloader.storage import ResumeRecord, open_folder, record_name
from tests.server import FaultServer, auto_etag, wait_until


def run(urls: list[str], dest: Path, **kwargs: object) -> Report:
    return fetch(urls, dest=dest, retry_wait=0.0, timeout=5.0, **kwargs)  # type: ignore[arg-type]


def test_skip_existing_makes_no_request(server: FaultServer, dest: Path) -> None:
    server.add("/a.txt", b"new")
    (dest / "a.txt").write_bytes(b"old")
    report = run([server.url("/a.txt")], dest)
    assert [r.status for r in report.results] == [Status.SKIPPED]
    assert report.results[0].attempts == 0 and report.results[0].path == str(dest / "a.txt")
    assert server.requests == []
    assert (dest / "a.txt").read_bytes() == b"old"


def test_skip_removes_a_record_left_without_its_partial(server: FaultServer, dest: Path) -> None:
    """A kill between the final rename and the record's unlink leaves only the record."""
    server.add("/a.txt", b"new")
    server.add("/b.txt", b"bbb")
    (dest / "a.txt").write_bytes(b"new")
    (dest / record_name("a.txt")).write_text("{}")
    (dest / "b.txt").write_bytes(b"bbb")
    (dest / "b.txt.part").write_bytes(b"b")  # a partial beside it: its record is kept
    (dest / record_name("b.txt")).write_text("{}")
    report = run([server.url("/a.txt"), server.url("/b.txt")], dest)
    assert [r.status for r in report.results] == [Status.SKIPPED, Status.SKIPPED]
    assert sorted(p.name for p in dest.iterdir()) == [
        "a.txt",
        "b.txt",
        "b.txt.part",
        record_name("b.txt"),
    ]


def test_skip_existing_with_wrong_checksum_downloads_again(server: FaultServer, dest: Path) -> None:
    server.add("/a.txt", b"new")
    (dest / "a.txt").write_bytes(b"old")
    good = f"{server.url('/a.txt')} checksum=sha-256={hashlib.sha256(b'new').hexdigest()}"
    assert [r.status for r in run([good], dest).results] == [Status.OK]
    assert (dest / "a.txt").read_bytes() == b"new"
    # now it matches: skipped without a request
    requests_before = len(server.requests)
    assert [r.status for r in run([good], dest).results] == [Status.SKIPPED]
    assert len(server.requests) == requests_before


def test_overwrite_replaces(server: FaultServer, dest: Path) -> None:
    server.add("/a.txt", b"new")
    (dest / "a.txt").write_bytes(b"old")
    assert run([server.url("/a.txt")], dest, on_exist="overwrite").counts.ok == 1
    assert (dest / "a.txt").read_bytes() == b"new"


def test_rename_takes_the_next_free_name(server: FaultServer, dest: Path) -> None:
    server.add("/a.tar.gz", b"new")
    (dest / "a.tar.gz").write_bytes(b"old")
    (dest / "a.tar.1.gz").write_bytes(b"older")
    report = run([server.url("/a.tar.gz")], dest, on_exist="rename")
    assert report.results[0].path == str(dest / "a.tar.2.gz")
    assert (dest / "a.tar.2.gz").read_bytes() == b"new"
    assert (dest / "a.tar.gz").read_bytes() == b"old"


def test_same_name_in_one_run_is_numbered_in_list_order(server: FaultServer, dest: Path) -> None:
    for folder in ("x", "y", "z"):
        server.add(f"/{folder}/f.txt", folder.encode())
    urls = [server.url(f"/{folder}/f.txt") for folder in ("x", "y", "z")]
    report = run(urls, dest, jobs=3)
    assert {r.url: r.path for r in report.results} == {
        urls[0]: str(dest / "f.txt"),
        urls[1]: str(dest / "f.1.txt"),
        urls[2]: str(dest / "f.2.txt"),
    }
    assert (dest / "f.2.txt").read_bytes() == b"z"
    # a re-run gives the same names, and skips them all
    again = run(urls, dest, jobs=3)
    assert {r.url: r.path for r in again.results} == {r.url: r.path for r in report.results}
    assert again.counts.skipped == 3


def test_out_and_dir_create_sub_folders(server: FaultServer, dest: Path) -> None:
    server.add("/a.bin", b"a")
    line = f"{server.url('/a.bin')} dir=mirror out=images/c.iso"
    assert run([line], dest).counts.ok == 1
    assert (dest / "mirror" / "images" / "c.iso").read_bytes() == b"a"


def test_link_in_the_path_is_never_followed(
    server: FaultServer, dest: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "sub").symlink_to(outside)
    server.add("/a.bin", b"a")
    result = run([f"{server.url('/a.bin')} out=sub/a.bin"], dest).results[0]
    assert result.status is Status.FAILED and "symbolic link" in (result.error or "")
    assert os.listdir(outside) == []


def test_link_at_the_part_is_replaced_not_followed(
    server: FaultServer, dest: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    (dest / "a.bin.part").symlink_to(victim)
    server.add("/a.bin", b"downloaded")
    assert run([server.url("/a.bin")], dest).counts.ok == 1
    assert victim.read_bytes() == b"precious"
    assert (dest / "a.bin").read_bytes() == b"downloaded"


def test_link_at_the_target_is_replaced_with_overwrite(
    server: FaultServer, dest: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    (dest / "a.bin").symlink_to(victim)
    server.add("/a.bin", b"downloaded")
    assert run([server.url("/a.bin")], dest, on_exist="overwrite").counts.ok == 1
    assert victim.read_bytes() == b"precious"
    assert not (dest / "a.bin").is_symlink()
    assert (dest / "a.bin").read_bytes() == b"downloaded"


def test_folder_at_the_target_fails_that_entry_only(server: FaultServer, dest: Path) -> None:
    (dest / "a.bin").mkdir()
    server.add("/a.bin", b"a")
    server.add("/b.bin", b"b")
    report = run([server.url("/a.bin"), server.url("/b.bin")], dest, on_exist="overwrite")
    failed = report.failed
    assert len(failed) == 1 and "folder" in (failed[0].error or "")
    assert (dest / "b.bin").read_bytes() == b"b"
    assert (dest / "a.bin").is_dir()


def test_names_from_urls_stay_inside(server: FaultServer, dest: Path, tmp_path: Path) -> None:
    server.add("/x/..%2F..%2Fescape.txt", b"x")
    report = run([server.url("/x/..%2F..%2Fescape.txt")], dest)
    assert report.counts.ok == 1
    assert os.listdir(dest) == ["escape.txt"]
    assert sorted(os.listdir(tmp_path)) == ["dest"]


def test_record_name_fits_long_names() -> None:
    name = "n" * 250
    assert len(record_name(name).encode()) <= 255
    assert record_name("a.bin") == "a.bin.part.pdl"


def test_open_folder_refuses_a_file_in_the_way(dest: Path) -> None:
    (dest / "file").write_bytes(b"")
    with pytest.raises(LocalFileError, match="in the way"), open_folder(dest, ("file",), "d"):
        pass


def test_fifo_at_the_part_is_replaced_without_blocking(server: FaultServer, dest: Path) -> None:
    os.mkfifo(dest / "a.bin.part")
    server.add("/a.bin", b"downloaded")
    assert run([server.url("/a.bin")], dest).counts.ok == 1
    assert (dest / "a.bin").read_bytes() == b"downloaded"
    assert sorted(os.listdir(dest)) == ["a.bin"]


def test_a_part_locked_by_another_process_is_waited_for(server: FaultServer, dest: Path) -> None:
    import fcntl
    import threading

    server.add("/a.bin", b"new bytes")
    server.add("/b.bin", b"b")
    part = dest / "a.bin.part"
    part.write_bytes(b"theirs")
    outcome: dict[str, Report] = {}
    with part.open("rb") as held:  # a lock is per open file: this stands in for another pdl
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        thread = threading.Thread(
            target=lambda: outcome.update(r=run([server.url("/a.bin"), server.url("/b.bin")], dest))
        )
        thread.start()
        wait_until(lambda: (dest / "b.bin").exists(), timeout=10)
        assert thread.is_alive()  # waiting for the other process
        assert part.read_bytes() == b"theirs" and not (dest / "a.bin").exists()
        assert server.requests_for("/a.bin") == []  # the waiting one does not even ask
    # the other process is gone without finishing: this one takes over (no record: starts over)
    thread.join(10)
    assert not thread.is_alive() and outcome["r"].counts.ok == 2
    assert (dest / "a.bin").read_bytes() == b"new bytes"
    assert sorted(os.listdir(dest)) == ["a.bin", "b.bin"]


def test_an_entry_that_fails_before_any_byte_leaves_no_empty_part(
    server: FaultServer, dest: Path
) -> None:
    report = run([server.url("/missing.bin")], dest)  # 404
    assert report.counts.failed == 1
    assert os.listdir(dest) == []


BIG = bytes(range(256)) * 4096 * 2  # 2 MiB


def _plant(dest: Path, url: str, part: bytes, *, record: str | None = None, **fields: Any) -> None:
    """A partial and its resume record, as an earlier run (or another tool) left them."""
    (dest / "a.bin.part").write_bytes(part)
    if record is not None:
        (dest / record_name("a.bin")).write_text(record)
        return
    values = {"record_url": url, "validator": None, "length": len(BIG), **fields}
    rec = ResumeRecord(
        ResumeRecord.url_hash(values["record_url"]), values["validator"], values["length"]
    )
    with open_folder(dest, (), str(dest)) as folder:
        folder.write_record("a.bin", rec)


@pytest.mark.parametrize(
    ("case", "fields"),
    [
        ("another URL", {"record_url": "http://127.0.0.1:9/other.bin"}),
        ("another version", {"validator": '"not-the-etag"'}),
        ("a partial longer than the file", {"length": 1000}),
        ("a record that is not JSON", {"record": "{not json"}),
        ("a record of the wrong shape", {"record": '{"url_sha256": 1}'}),
    ],
)
def test_a_partial_is_trusted_only_with_its_own_record(
    server: FaultServer, dest: Path, case: str, fields: dict[str, Any]
) -> None:
    server.add("/a.bin", BIG)
    url = server.url("/a.bin")
    fields.setdefault("validator", auto_etag(BIG))
    junk = b"J" * 300_000  # bytes of some other file: must never end up in a.bin
    _plant(dest, url, junk, **fields)
    result = run([url], dest).results[0]
    assert result.status is Status.OK and result.resumed_from == 0, case
    assert "range" not in server.requests_for("/a.bin")[0].headers or case == "another version"
    assert (dest / "a.bin").read_bytes() == BIG
    assert sorted(os.listdir(dest)) == ["a.bin"]


def test_a_partial_with_its_own_record_is_continued(server: FaultServer, dest: Path) -> None:
    server.add("/a.bin", BIG)
    url = server.url("/a.bin")
    _plant(dest, url, BIG[:300_000], validator=auto_etag(BIG))
    result = run([url], dest).results[0]
    assert result.status is Status.OK and result.resumed_from == 300_000
    assert server.bytes_sent("/a.bin") == len(BIG) - 300_000
    assert (dest / "a.bin").read_bytes() == BIG
