"""The quick count of a list's entries (docs/list-format.md, "Duplicates and streaming")."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from downloader.counting import count_in_background, count_lines, count_sources, shard_share
from downloader.options import Shard
from downloader.urllist import iter_sources

LIST = b"""# a comment
https://example.org/a.iso

https://example.org/b.iso out=b-2024.iso
https://example.org/c.iso
  out=images/c.iso
\tchecksum=md5=d41d8cd98f00b204e9800998ecf8427e
   # an indented comment
https://example.org/d.iso\thttps://mirror.example.net/d.iso
ftp://bad.example.org/x
https://example.org/e.iso"""


def test_counts_entry_lines_only() -> None:
    assert count_lines([LIST]) == 6  # a, b, c, d (with its mirror), the bad line, e


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64])
def test_the_count_does_not_depend_on_where_chunks_are_cut(size: int) -> None:
    chunks = [LIST[i : i + size] for i in range(0, len(LIST), size)]
    assert count_lines(chunks) == 6


def test_crlf_and_empty() -> None:
    assert count_lines([b"https://a/x\r\n\r\n  out=y\r\nhttps://a/z\r\n"]) == 2
    assert count_lines([]) == 0 and count_lines([b""]) == 0 and count_lines([b"\n\n"]) == 0


_entry = st.tuples(
    st.integers(0, 10**6),  # the URL
    st.booleans(),  # an option on a continuation line
    st.sampled_from(["", "# comment", "   "]),  # what follows it
)


@given(st.lists(_entry, max_size=40, unique_by=lambda e: e[0]))
def test_the_count_is_what_the_reader_reads_for_a_list_without_repeats(
    entries: list[tuple[int, bool, str]],
) -> None:
    text = "".join(
        f"https://example.org/{n}.iso\n" + ("  out=x.bin\n" if option else "") + after + "\n"
        for n, option, after in entries
    )
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"pdl-count-{os.getpid()}.txt"
    path.write_text(text)
    try:
        assert count_sources([str(path)]) == sum(1 for _ in iter_sources([str(path)]))
    finally:
        path.unlink()


def test_sources_files_urls_and_what_cannot_be_counted(tmp_path: Path) -> None:
    one, two = tmp_path / "one.txt", tmp_path / "two.txt"
    one.write_bytes(LIST)
    two.write_text("https://example.org/z\n")
    assert count_sources([str(one), "https://example.org/y", str(two)]) == 8
    assert count_sources([str(one), "-"]) is None
    assert count_sources([str(tmp_path)]) is None  # a folder
    assert count_sources([str(tmp_path / "missing.txt")]) is None
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert count_sources([str(fifo)]) is None  # never opened for reading to its end


@pytest.mark.parametrize(
    ("total", "index", "count", "share"),
    [(10, 1, 3, 4), (10, 2, 3, 3), (10, 3, 3, 3), (2, 3, 3, 0), (0, 1, 1, 0), (7, 1, 1, 7)],
)
def test_shard_share(total: int, index: int, count: int, share: int) -> None:
    assert shard_share(total, Shard(index, count)) == share
    assert share == sum(Shard(index, count).owns(n) for n in range(total))


def test_count_in_background_tells_the_total(tmp_path: Path) -> None:
    listing = tmp_path / "urls.txt"
    listing.write_bytes(LIST * 1000)
    told: list[int] = []
    done = threading.Event()

    def tell(n: int) -> None:
        told.append(n)
        done.set()

    count_in_background([str(listing)], tell, shard=Shard(1, 2)).join(timeout=10)
    assert done.is_set() and told == [3000]
    nothing: list[int] = []
    count_in_background(["-"], nothing.append).join(timeout=10)
    assert nothing == []
