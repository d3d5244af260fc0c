"""Tests of downloader.urllist: the aria2 input-file form, FILE:LINE for bad lines, laziness."""

from __future__ import annotations

import hashlib
import io
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from downloader.errors import BadLine, UsageError
from downloader.options import Checksum, EntryOptions
from downloader.urllist import Entry, Item, iter_sources, parse_lines, unique

SHA256 = hashlib.sha256(b"a").hexdigest()
MD5 = hashlib.md5(b"a").hexdigest()


def lines(text: str) -> list[bytes]:
    """A list file's text as the bytes lines a file object would give."""
    return text.encode("utf-8").splitlines(keepends=True)


def parse(text: str | list[bytes], name: str = "urls.txt") -> list[Item]:
    raw = lines(text) if isinstance(text, str) else text
    return list(parse_lines(raw, name))


def entries(items: list[Item]) -> list[Entry]:
    return [i for i in items if isinstance(i, Entry)]


def bad_lines(items: list[Item]) -> list[BadLine]:
    return [i for i in items if isinstance(i, BadLine)]


# --------------------------------------------------------------------------------------------
# Entries, comments, options
# --------------------------------------------------------------------------------------------


def test_comments_and_blank_lines_are_ignored() -> None:
    items = parse(
        "# a comment\n"
        "\n"
        "https://example.org/a.iso\n"
        "   \n"
        "\t\n"
        "  # an indented comment\n"
        "https://example.org/b.iso\n"
    )
    assert items == [
        Entry(url="https://example.org/a.iso", source="urls.txt:3"),
        Entry(url="https://example.org/b.iso", source="urls.txt:7"),
    ]


def test_surrounding_whitespace_of_a_url_line_is_ignored() -> None:
    [entry] = entries(parse("https://example.org/a.iso   \t\n"))
    assert entry.url == "https://example.org/a.iso"


def test_inline_options() -> None:
    [entry] = parse(f"https://example.org/b.iso out=b-2024.iso checksum=sha-256={SHA256}\n")
    assert entry == Entry(
        url="https://example.org/b.iso",
        options=EntryOptions(out="b-2024.iso", checksum=Checksum("sha-256", SHA256)),
        source="urls.txt:1",
    )


@pytest.mark.parametrize("indent", ["  ", " ", "\t", "\t  ", "    "])
def test_continuation_lines(indent: str) -> None:
    items = parse(
        "https://example.org/c.iso\n"
        f"{indent}out=images/c.iso\n"
        f"{indent}checksum=md5={MD5}\n"
        "https://example.org/d.iso\n"
    )
    assert items == [
        Entry(
            url="https://example.org/c.iso",
            options=EntryOptions(out="images/c.iso", checksum=Checksum("md5", MD5)),
            source="urls.txt:1",
        ),
        Entry(url="https://example.org/d.iso", source="urls.txt:4"),
    ]


def test_options_on_the_url_line_and_continuation_lines_combine() -> None:
    [entry] = entries(parse("https://example.org/c.iso out=c.iso\n  dir=images\n"))
    assert entry.options == EntryOptions(out="c.iso", dir="images")


def test_several_options_on_one_continuation_line() -> None:
    [entry] = entries(parse("https://example.org/c.iso\n  dir=images out=c.iso\n"))
    assert entry.options == EntryOptions(out="c.iso", dir="images")


def test_continuation_lines_after_a_blank_or_comment_line_still_belong_to_the_entry() -> None:
    [entry] = entries(parse("https://example.org/c.iso\n\n  # comment\n  out=c.iso\n"))
    assert entry.options.out == "c.iso"


def test_the_spec_example_list() -> None:
    items = parse(
        "# comments and blank lines are ignored\n"
        "https://example.org/a.iso\n"
        f"https://example.org/b.iso out=b-2024.iso checksum=sha-256={SHA256}\n"
        "https://example.org/c.iso\n"
        "  out=images/c.iso\n"
        f"  checksum=sha-256={SHA256}\n"
    )
    assert [(e.url, e.options.out, e.source) for e in entries(items)] == [
        ("https://example.org/a.iso", None, "urls.txt:2"),
        ("https://example.org/b.iso", "b-2024.iso", "urls.txt:3"),
        ("https://example.org/c.iso", "images/c.iso", "urls.txt:4"),
    ]
    assert bad_lines(items) == []


def test_crlf_line_endings() -> None:
    items = parse(
        b"# windows\r\n"
        b"https://example.org/a.iso\r\n"
        b"\r\n"
        b"https://example.org/b.iso out=b.iso\r\n"
        b"  dir=sub\r\n".splitlines(keepends=True)
    )
    assert items == [
        Entry(url="https://example.org/a.iso", source="urls.txt:2"),
        Entry(
            url="https://example.org/b.iso",
            options=EntryOptions(out="b.iso", dir="sub"),
            source="urls.txt:4",
        ),
    ]


def test_utf8_bom_is_ignored() -> None:
    items = parse([b"\xef\xbb\xbfhttps://example.org/a.iso\n", b"https://example.org/b.iso\n"])
    assert items == [
        Entry(url="https://example.org/a.iso", source="urls.txt:1"),
        Entry(url="https://example.org/b.iso", source="urls.txt:2"),
    ]


def test_bom_before_a_comment_line() -> None:
    items = parse([b"\xef\xbb\xbf# list\n", b"https://example.org/a.iso\n"])
    assert items == [Entry(url="https://example.org/a.iso", source="urls.txt:2")]


def test_trailing_comment_after_url_and_options() -> None:
    items = parse(
        "https://example.org/a.iso # the first one\n"
        "https://example.org/b.iso out=b.iso # renamed\n"
        "  dir=sub   # continuation comment\n"
    )
    assert items == [
        Entry(url="https://example.org/a.iso", source="urls.txt:1"),
        Entry(
            url="https://example.org/b.iso",
            options=EntryOptions(out="b.iso", dir="sub"),
            source="urls.txt:2",
        ),
    ]


def test_a_fragment_is_part_of_the_url_not_a_comment() -> None:
    [entry] = parse("https://example.org/a.html#section\n")
    assert entry == Entry(url="https://example.org/a.html#section", source="urls.txt:1")


def test_no_final_newline() -> None:
    assert parse([b"https://example.org/a.iso"]) == [
        Entry(url="https://example.org/a.iso", source="urls.txt:1")
    ]


def test_uppercase_scheme_is_accepted() -> None:
    [entry] = parse("HTTPS://example.org/a.iso\n")
    assert isinstance(entry, Entry)


def test_out_and_dir_are_normalised_relative_paths() -> None:
    [entry] = entries(parse("https://example.org/a.iso out=./x//a.iso dir=sub/./inner/\n"))
    assert entry.options == EntryOptions(out="x/a.iso", dir="sub/inner")


# --------------------------------------------------------------------------------------------
# Bad lines: FILE:LINE, and every other entry still runs
# --------------------------------------------------------------------------------------------

BAD_URL_LINES = [
    pytest.param("ftp://example.org/a.iso", id="unsupported-scheme"),
    pytest.param("file:///etc/passwd", id="file-scheme"),
    pytest.param("example.org/a.iso", id="no-scheme"),
    pytest.param("https:///a.iso", id="no-host"),
    pytest.param("https://user:pw@/a.iso", id="no-host-with-credentials"),
    pytest.param("https://example.org:99999/a.iso", id="bad-port"),
    pytest.param("https://example.org/a.iso size=10", id="unknown-option"),
    pytest.param("https://example.org/a.iso OUT=a", id="option-names-are-case-sensitive"),
    pytest.param("https://example.org/a b.iso", id="space-in-url"),
    pytest.param("https://example.org/a\u00a0b.iso", id="nbsp-in-url"),
    pytest.param("https://example.org/a.iso out=", id="empty-option"),
    pytest.param("https://example.org/a.iso out=a out=b", id="option-twice"),
    pytest.param("https://example.org/a.iso checksum=sha-256=abc", id="short-checksum"),
    pytest.param(f"https://example.org/a.iso checksum=sha256={SHA256}", id="bad-checksum-algo"),
    pytest.param("https://example.org/a.iso checksum=" + "z" * 64, id="checksum-no-algo"),
    pytest.param("https://example.org/a.iso out=/etc/passwd", id="absolute-out"),
    pytest.param("https://example.org/a.iso out=../a.iso", id="parent-out"),
    pytest.param("https://example.org/a.iso out=x/../../a.iso", id="inner-parent-out"),
    pytest.param("https://example.org/a.iso out=..\\a.iso", id="backslash-parent-out"),
    pytest.param("https://example.org/a.iso out=C:\\a.iso", id="drive-out"),
    pytest.param("https://example.org/a.iso dir=/tmp", id="absolute-dir"),
    pytest.param("https://example.org/a.iso dir=..", id="parent-dir"),
    pytest.param("https://example.org/a.iso dir=a/../..", id="inner-parent-dir"),
    pytest.param("https://example.org/a.iso out=./", id="out-without-a-name"),
    pytest.param("https://example.org/a\x01b.iso", id="control-char"),
    pytest.param("https://example.org/a\x7fb.iso", id="del-char"),
    pytest.param("https://example.org/a\x1b[31m.iso", id="escape-sequence"),
    pytest.param("https://example.org/a\x85b.iso", id="c1-control"),
    pytest.param("https://example.org/a\rb.iso", id="bare-cr"),
    pytest.param("  out=orphan.iso", id="option-line-without-url"),
]


@pytest.mark.parametrize("bad", BAD_URL_LINES)
def test_bad_line_reports_file_line_and_later_entries_still_run(bad: str) -> None:
    items = parse(
        [b"# header\n", f"{bad}\n".encode(), b"https://example.org/after.iso\n"],
        name="lists/urls.txt",
    )
    [bad_line] = bad_lines(items)
    assert bad_line.source == "lists/urls.txt:2"
    assert str(bad_line).startswith("lists/urls.txt:2: ")
    assert bad_line.reason
    assert entries(items) == [Entry(url="https://example.org/after.iso", source="lists/urls.txt:3")]


def test_invalid_utf8_is_a_bad_line() -> None:
    items = parse(
        [
            b"https://example.org/a.iso\n",
            b"https://example.org/\xff\xfe\n",
            b"https://example.org/c.iso\n",
        ]
    )
    assert [i.source for i in items] == ["urls.txt:1", "urls.txt:2", "urls.txt:3"]
    assert isinstance(items[1], BadLine)
    assert [e.url for e in entries(items)] == [
        "https://example.org/a.iso",
        "https://example.org/c.iso",
    ]


@pytest.mark.parametrize(
    "option",
    [
        pytest.param("size=10", id="unknown-option"),
        pytest.param("checksum=md5=123", id="bad-checksum"),
        pytest.param("out=/etc/passwd", id="absolute-out"),
        pytest.param("dir=../..", id="parent-dir"),
    ],
)
def test_bad_option_on_a_continuation_line_fails_the_entry(option: str) -> None:
    items = parse(
        f"https://example.org/a.iso\n  out=a.iso\n  {option}\nhttps://example.org/b.iso\n"
    )
    [bad] = bad_lines(items)
    assert bad.source.startswith("urls.txt:")
    assert [e.url for e in entries(items)] == ["https://example.org/b.iso"]


def test_unknown_option_on_a_continuation_line_reports_that_line() -> None:
    [bad, _] = parse(
        "https://example.org/a.iso\n  out=a.iso\n  size=10\nhttps://example.org/b.iso\n"
    )
    assert isinstance(bad, BadLine)
    assert bad.source == "urls.txt:3"


def test_bad_checksum_on_a_continuation_line_reports_that_line() -> None:
    [bad, _] = parse(
        "https://example.org/a.iso\n  out=a.iso\n  checksum=md5=123\nhttps://example.org/b.iso\n"
    )
    assert isinstance(bad, BadLine)
    assert bad.source == "urls.txt:3"


def test_a_bad_urls_continuation_lines_do_not_add_bad_lines() -> None:
    items = parse(
        "ftp://example.org/a.iso\n"
        "  out=a.iso\n"
        "  checksum=md5=nothex\n"
        "  size=10\n"
        "https://example.org/b.iso\n"
    )
    [bad] = bad_lines(items)
    assert bad.source == "urls.txt:1"
    assert entries(items) == [Entry(url="https://example.org/b.iso", source="urls.txt:5")]


def test_a_control_char_urls_continuation_lines_do_not_add_bad_lines() -> None:
    items = parse("https://example.org/a\x01.iso\n  out=a.iso\nhttps://example.org/b.iso\n")
    [bad] = bad_lines(items)
    assert bad.source == "urls.txt:1"
    assert [e.url for e in entries(items)] == ["https://example.org/b.iso"]


def test_an_invalid_utf8_urls_continuation_lines_do_not_add_bad_lines() -> None:
    items = parse(
        [b"https://example.org/\xff.iso\n", b"  out=a.iso\n", b"https://example.org/b.iso\n"]
    )
    [bad] = bad_lines(items)
    assert bad.source == "urls.txt:1"
    assert [e.url for e in entries(items)] == ["https://example.org/b.iso"]


def test_an_invalid_utf8_continuation_line_fails_its_entry() -> None:
    items = parse(
        [
            b"https://example.org/a.iso\n",
            b"  out=\xff.iso\n",
            f"  checksum=sha-256={SHA256}\n".encode(),
            b"https://example.org/b.iso\n",
        ]
    )
    assert [e.url for e in entries(items)] == ["https://example.org/b.iso"]
    assert len(bad_lines(items)) == 1


def test_many_bad_lines_do_not_stop_the_list() -> None:
    items = parse(
        "https://example.org/1.iso\n"
        "gopher://example.org/x\n"
        "https://example.org/2.iso out=../x\n"
        "  dir=/abs\n"
        "https://example.org/3.iso\n"
        "not a url at all\n"
        "https://example.org/4.iso\n"
    )
    assert [e.url for e in entries(items)] == [f"https://example.org/{n}.iso" for n in (1, 3, 4)]
    assert [b.source for b in bad_lines(items)] == ["urls.txt:2", "urls.txt:3", "urls.txt:6"]


# --------------------------------------------------------------------------------------------
# unique: the same URL with the same options is downloaded once
# --------------------------------------------------------------------------------------------


def test_unique_drops_exact_repeats_and_keeps_the_first() -> None:
    items = parse(
        "https://example.org/a.iso\n"
        "https://example.org/a.iso\n"
        "https://example.org/a.iso out=x.iso\n"
        "https://example.org/a.iso\n"
        "  out=x.iso\n"
        "https://example.org/a.iso out=y.iso\n"
        "https://example.org/a.iso dir=sub\n"
        f"https://example.org/a.iso checksum=md5={MD5}\n"
        f"https://example.org/a.iso checksum=md5={MD5.upper()}\n"
        "https://example.org/b.iso\n"
    )
    kept = list(unique(items))
    assert [(e.url, e.source) for e in entries(kept)] == [
        ("https://example.org/a.iso", "urls.txt:1"),
        ("https://example.org/a.iso", "urls.txt:3"),
        ("https://example.org/a.iso", "urls.txt:6"),
        ("https://example.org/a.iso", "urls.txt:7"),
        ("https://example.org/a.iso", "urls.txt:8"),
        ("https://example.org/b.iso", "urls.txt:10"),
    ]


def test_unique_keeps_every_bad_line() -> None:
    items = parse("ftp://example.org/a\nftp://example.org/a\n")
    assert list(unique(items)) == items
    assert len(items) == 2


def test_unique_is_lazy() -> None:
    def endless() -> Iterator[Item]:
        n = 0
        while True:
            yield Entry(url=f"https://example.org/{n % 3}", source=f"x:{n}")
            n += 1

    kept = unique(endless())
    assert list(itertools.islice(kept, 3)) == [
        Entry(url=f"https://example.org/{n}", source=f"x:{n}") for n in range(3)
    ]


# --------------------------------------------------------------------------------------------
# iter_sources: files, '-' and direct URLs, in order
# --------------------------------------------------------------------------------------------


def test_iter_sources_reads_every_source_in_order(tmp_path: Path) -> None:
    list_file = tmp_path / "urls.txt"
    list_file.write_bytes(b"# mine\nhttps://example.org/f1.iso\n  out=one.iso\nftp://bad\n")
    stdin = io.BytesIO(b"https://example.org/s1.iso\r\nhttps://example.org/s2.iso\r\n")
    items = list(
        iter_sources(
            [str(list_file), "-", "https://example.org/direct.iso"],
            stdin=stdin,
        )
    )
    assert [i.url if isinstance(i, Entry) else "BAD" for i in items] == [
        "https://example.org/f1.iso",
        "BAD",
        "https://example.org/s1.iso",
        "https://example.org/s2.iso",
        "https://example.org/direct.iso",
    ]
    assert items[0] == Entry(
        url="https://example.org/f1.iso",
        options=EntryOptions(out="one.iso"),
        source=f"{list_file}:2",
    )
    assert items[1].source == f"{list_file}:4"
    assert items[3].source.endswith(":2")


def test_iter_sources_a_bad_direct_url_is_a_bad_line() -> None:
    items = list(iter_sources(["https://example.org/ok", "ftp://example.org/x"]))
    assert isinstance(items[0], Entry)
    assert isinstance(items[1], BadLine)


def test_iter_sources_dash_without_stdin_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        list(iter_sources(["-"], stdin=None))


def test_iter_sources_streams_standard_input() -> None:
    class Pipe(io.BytesIO):
        """Standard input that must not be read far ahead of the consumer."""

        def read(self, size: int | None = -1) -> bytes:
            raise AssertionError("the whole input was read at once")

    stdin = Pipe(b"".join(f"https://example.org/{n}.iso\n".encode() for n in range(10_000)))
    items = iter_sources(["-"], stdin=stdin)
    first = next(items)
    assert isinstance(first, Entry)
    assert first.url == "https://example.org/0.iso"
    assert stdin.tell() < 1000


# --------------------------------------------------------------------------------------------
# Laziness: entries come out before the list is read to its end
# --------------------------------------------------------------------------------------------


class CountingLines:
    """A list source that records how many lines were pulled and refuses to go too far."""

    def __init__(self, first: list[bytes], limit: int) -> None:
        self.first = first
        self.limit = limit
        self.pulled = 0

    def __iter__(self) -> Iterator[bytes]:
        for line in self.first:
            self.pulled += 1
            yield line
        n = 0
        while True:
            self.pulled += 1
            if self.pulled > self.limit:
                raise AssertionError(f"read {self.pulled} lines before yielding an entry")
            yield f"https://example.org/more/{n}.iso\n".encode()
            n += 1


def test_parse_lines_yields_the_first_entry_before_reading_the_rest() -> None:
    # The first entry may still get continuation lines, so one more line may be read.
    source = CountingLines([b"https://example.org/first.iso\n"], limit=2)
    items = parse_lines(source, "big.txt")
    assert next(items) == Entry(url="https://example.org/first.iso", source="big.txt:1")
    assert source.pulled <= 2


def test_parse_lines_stays_lazy_after_continuation_lines() -> None:
    first = [b"# comment\n", b"https://example.org/first.iso\n", b"  out=f.iso\n"]
    source = CountingLines(first, limit=len(first) + 1)
    items = parse_lines(source, "big.txt")
    entry = next(items)
    assert isinstance(entry, Entry)
    assert entry.options.out == "f.iso"
    assert source.pulled <= len(first) + 1
    source.limit += 1
    second = next(items)
    assert isinstance(second, Entry)
    assert second.url == "https://example.org/more/0.iso"


def test_parse_lines_a_bad_line_is_also_yielded_early() -> None:
    source = CountingLines([b"ftp://example.org/x\n"], limit=2)
    items = parse_lines(source, "big.txt")
    bad = next(items)
    assert isinstance(bad, BadLine)
    assert bad.source == "big.txt:1"


def test_a_pause_in_the_source_gives_out_the_pending_entry() -> None:
    lines: list[bytes | None] = [b"https://example.org/a\n", None, b"https://example.org/b\n"]
    items = parse_lines(lines, "<stdin>")
    first = next(items)  # out at the pause, before the next line is read
    assert isinstance(first, Entry) and first.source == "<stdin>:1"
    second = next(items)
    assert isinstance(second, Entry) and second.source == "<stdin>:2"  # pauses are not lines
