"""Tests of downloader.naming: file names from URLs and servers, and never a path outside --dir."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from downloader.naming import (
    check_relative,
    display,
    last_component,
    name_from_content_disposition,
    name_from_url,
    numbered,
    sanitize,
    split_ext,
)

LIMIT = 250  # docs/files.md: "the name is cut to 250 bytes keeping its extension"

# Pure properties: no example database on disk (tests write only under tmp_path), no deadline.
prop = settings(database=None, deadline=None, max_examples=300)


def nbytes(text: str) -> int:
    return len(text.encode("utf-8"))


def assert_safe_component(name: str) -> None:
    """One path component that can only name something directly inside its folder."""
    assert name not in ("", ".", "..")
    assert "/" not in name
    assert "\\" not in name
    assert "\0" not in name
    assert not any(unicodedata.category(ch) == "Cc" for ch in name), repr(name)
    assert nbytes(name) <= LIMIT


def assert_inside(root: Path, *parts: str) -> None:
    """Joining ``parts`` under ``root`` stays under ``root``, lexically and once resolved."""
    joined = os.path.normpath(root.joinpath(*parts))
    assert joined == str(root) or joined.startswith(str(root) + os.sep)
    resolved = root.joinpath(*parts).resolve()
    assert resolved == root.resolve() or resolved.is_relative_to(root.resolve())


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dest")


# Text that likes to hit the dangerous cases: separators, dots, encoded forms, controls.
tricky_text = st.lists(
    st.one_of(
        st.sampled_from(
            [".", "..", "/", "\\", "%2e", "%2E", "%2f", "%2F", "%5c", "%00", "%0a", "%", " ", "a"]
        ),
        st.sampled_from(["C:", "~", "\0", "\n", "\x1b", "\x7f", "\x85", "\u2028", "é", "名"]),
        st.text(max_size=8),
    ),
    max_size=12,
).map("".join)
long_text = st.text(min_size=200, max_size=600)  # past the 250-byte limit, often multibyte
any_text = st.one_of(st.text(max_size=40), long_text, tricky_text)
short_ext = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=10)


# --------------------------------------------------------------------------------------------
# sanitize
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("ünïcödé 名前.txt", "ünïcödé 名前.txt"),
        ("a/b", "a_b"),
        ("a\\b", "a_b"),
        ("a\0b", "a_b"),
        ("a\nb\rc\td", "a_b_c_d"),
        ("a\x1bb", "a_b"),
        ("a\x7fb", "a_b"),
        ("a\x85b", "a_b"),  # C1 control
        ("../etc/passwd", ".._etc_passwd"),
    ],
)
def test_sanitize_replaces_unsafe_characters(name: str, expected: str) -> None:
    assert sanitize(name) == expected


@pytest.mark.parametrize("name", ["", ".", "..", " ", "  ..  ", " . "])
def test_sanitize_never_returns_a_dot_name(name: str) -> None:
    result = sanitize(name)
    assert result.strip() not in ("", ".", "..")


def test_sanitize_cuts_long_names_keeping_the_extension() -> None:
    result = sanitize("a" * 400 + ".iso")
    assert nbytes(result) <= LIMIT
    assert result.endswith(".iso")
    assert result.startswith("a" * 200)


def test_sanitize_cuts_multibyte_names_on_a_character_boundary() -> None:
    result = sanitize("é" * 200 + ".tar.gz")  # 400 bytes of stem
    assert nbytes(result) <= LIMIT
    assert result.endswith(".gz")
    assert set(result.removesuffix(".gz")) <= {"é", ".", "t", "a", "r"}


def test_sanitize_keeps_a_name_of_exactly_the_limit() -> None:
    name = "x" * (LIMIT - 4) + ".bin"
    assert sanitize(name) == name


@prop
@given(any_text)
def test_sanitize_result_is_always_a_safe_component(name: str) -> None:
    assert_safe_component(sanitize(name))


@prop
@given(st.one_of(st.text(max_size=40), long_text), short_ext)
def test_sanitize_keeps_a_short_extension(stem: str, ext: str) -> None:
    result = sanitize(f"{stem}.{ext}")
    assert nbytes(result) <= LIMIT
    assert result.endswith(f".{ext}")


# --------------------------------------------------------------------------------------------
# split_ext / last_component
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.iso", ("a", ".iso")),
        ("a.tar.gz", ("a.tar", ".gz")),
        ("noext", ("noext", "")),
        (".bashrc", (".bashrc", "")),
        ("a.", ("a.", "")),
        ("", ("", "")),
    ],
)
def test_split_ext(name: str, expected: tuple[str, str]) -> None:
    assert split_ext(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("file.txt", "file.txt"),
        ("a/b/file.txt", "file.txt"),
        ("a\\b\\file.txt", "file.txt"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\evil.exe", "evil.exe"),
        ("mixed/dir\\file", "file"),
        ("dir/", ""),
    ],
)
def test_last_component_drops_directory_parts(name: str, expected: str) -> None:
    assert last_component(name) == expected


# --------------------------------------------------------------------------------------------
# name_from_url
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.org/a.iso", "a.iso"),
        ("https://example.org/pub/releases/b.tar.gz", "b.tar.gz"),
        ("https://example.org/file%20name.txt", "file name.txt"),
        ("https://example.org/caf%C3%A9.txt", "café.txt"),
        ("https://example.org/a.iso?token=x/y.zip&b=1", "a.iso"),
        ("https://example.org/a.iso#part/2.bin", "a.iso"),
        ("https://example.org/dl?file=a.iso", "dl"),
        ("https://user:pw@example.org:8080/x/y.bin", "y.bin"),
        ("https://example.org/dir%2Finner.txt", "inner.txt"),
        ("https://example.org/dir%5Cinner.txt", "inner.txt"),
        ("https://example.org/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "passwd"),
        ("https://example.org/..%5C..%5Cwin.ini", "win.ini"),
    ],
)
def test_name_from_url(url: str, expected: str) -> None:
    assert name_from_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org",
        "https://example.org/",
        "https://example.org/pub/",
        "https://example.org/?file=a.iso",
        "https://example.org/#a.iso",
    ],
)
def test_name_from_url_empty_segment_is_index_html(url: str) -> None:
    assert name_from_url(url) == "index.html"


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/%2e%2e",
        "https://example.org/a/%2E%2E",
        "https://example.org/%2e",
        "https://example.org/..%2f",
        "https://example.org/%2e%2e%5c",
        "https://example.org/a%00b",
        "https://example.org/%0d%0a",
    ],
)
def test_name_from_url_traversal_and_controls_give_a_safe_name(url: str) -> None:
    assert_safe_component(name_from_url(url))


@prop
@given(any_text)
def test_name_from_url_never_escapes(root: Path, path: str) -> None:
    name = name_from_url("http://example.org/" + path)
    assert_safe_component(name)
    assert_inside(root, name)


@prop
@given(any_text)
def test_name_from_url_of_an_encoded_path_never_escapes(root: Path, text: str) -> None:
    name = name_from_url("https://example.org/d/" + quote(text, safe=""))
    assert_safe_component(name)
    assert_inside(root, name)


# --------------------------------------------------------------------------------------------
# name_from_content_disposition
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('attachment; filename="a.txt"', "a.txt"),
        ("attachment; filename=a.txt", "a.txt"),
        ('inline; filename="report 2024.pdf"', "report 2024.pdf"),
        ('attachment; FILENAME="Upper.TXT"', "Upper.TXT"),
        ('attachment;filename="tight.txt"', "tight.txt"),
        ('attachment; filename="a;b.txt"', "a;b.txt"),
        (r'attachment; filename="say \"hi\".txt"', 'say "hi".txt'),
        (r'attachment; filename="back\\slash.txt"', "slash.txt"),
        ("attachment; filename*=UTF-8''%e2%82%ac%20rates.txt", "€ rates.txt"),
        ("attachment; filename*=utf-8'en'caf%C3%A9.txt", "café.txt"),
        ("attachment; filename*=iso-8859-1'en'%A3%20rates.txt", "£ rates.txt"),
        # a raw UTF-8 name arrives Latin-1 decoded from the HTTP layer
        ('attachment; filename="caf\xc3\xa9.txt"', "café.txt"),
    ],
)
def test_name_from_content_disposition(header: str, expected: str) -> None:
    assert name_from_content_disposition(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        "attachment; filename=\"plain.txt\"; filename*=UTF-8''fancy%20%E2%82%AC.txt",
        "attachment; filename*=UTF-8''fancy%20%E2%82%AC.txt; filename=\"plain.txt\"",
    ],
)
def test_content_disposition_prefers_filename_star_in_either_order(header: str) -> None:
    assert name_from_content_disposition(header) == "fancy €.txt"


def test_content_disposition_falls_back_when_filename_star_is_unusable() -> None:
    header = "attachment; filename*=no-such-charset''x%E9.txt; filename=\"fallback.txt\""
    assert name_from_content_disposition(header) == "fallback.txt"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('attachment; filename=".bashrc"', "bashrc"),
        ('attachment; filename="..hidden.txt"', "hidden.txt"),
        ("attachment; filename*=UTF-8''.profile", "profile"),
    ],
)
def test_content_disposition_removes_leading_dots(header: str, expected: str) -> None:
    assert name_from_content_disposition(header) == expected


def test_content_disposition_no_leading_dot_after_spaces() -> None:
    name = name_from_content_disposition('attachment; filename=". .bashrc"')
    assert name is not None
    assert not name.startswith(".")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ('attachment; filename="/etc/cron.d/job"', "job"),
        (r'attachment; filename="..\\..\\evil.exe"', "evil.exe"),
        (r"attachment; filename=..\..\evil.exe", "evil.exe"),
        ("attachment; filename*=UTF-8''..%2F..%2Fevil.sh", "evil.sh"),
        ("attachment; filename*=UTF-8''..%5C..%5Cevil.bat", "evil.bat"),
        ("attachment; filename*=UTF-8''C%3A%5CWindows%5Cwin.ini", "win.ini"),
    ],
)
def test_content_disposition_drops_directory_parts(header: str, expected: str) -> None:
    assert name_from_content_disposition(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        "",
        "attachment",
        "inline",
        "attachment; size=100",
        'attachment; filename=""',
        'attachment; filename="..."',
        'attachment; filename="/"',
        'attachment; filename="dir/"',
        "attachment; filename*=UTF-8''..",
    ],
)
def test_content_disposition_without_a_usable_name_is_none(header: str) -> None:
    assert name_from_content_disposition(header) is None


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@prop
@given(
    any_text,
    st.sampled_from(["quoted", "token", "ext"]),
)
def test_content_disposition_name_never_escapes(root: Path, text: str, form: str) -> None:
    if form == "quoted":
        header = f"attachment; filename={_quoted(text)}"
    elif form == "token":
        header = f"attachment; filename={text}"
    else:
        header = f"attachment; filename*=UTF-8''{quote(text, safe='')}"
    name = name_from_content_disposition(header)
    if name is not None:
        assert_safe_component(name)
        assert_inside(root, name)


# --------------------------------------------------------------------------------------------
# check_relative: out= and dir= from a list
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a.iso", ("a.iso",)),
        ("images/c.iso", ("images", "c.iso")),
        ("a/b/c/d.bin", ("a", "b", "c", "d.bin")),
        ("./a.iso", ("a.iso",)),
        ("a//b", ("a", "b")),
        ("a/./b", ("a", "b")),
        ("sub/", ("sub",)),
        ("...", ("_",)),  # no trailing dots (portable names)
        ("a..b/c..", ("a..b", "c")),
    ],
)
def test_check_relative_accepts_sub_folders(text: str, expected: tuple[str, ...]) -> None:
    assert check_relative(text, "out") == expected


@pytest.mark.parametrize(
    "text",
    [
        "/etc/passwd",
        "/",
        "//server/share/x",
        "\\evil",
        "\\\\server\\share\\x",
        "C:\\Windows\\x",
        "C:x",
        "c:/x",
        "..",
        "../x",
        "a/../../b",
        "a/..",
        "..\\x",
        "a\\..\\..\\b",
    ],
)
def test_check_relative_rejects_absolute_and_parent(text: str) -> None:
    with pytest.raises(ValueError, match="dir"):
        check_relative(text, "dir")


@prop
@given(any_text)
def test_check_relative_accepted_paths_stay_inside(root: Path, text: str) -> None:
    try:
        parts = check_relative(text, "out")
    except ValueError:
        return
    for part in parts:
        assert_safe_component(part)
    assert_inside(root, *parts)


# --------------------------------------------------------------------------------------------
# numbered: name.N.ext, as aria2 does
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "n", "expected"),
    [
        ("a.iso", 1, "a.1.iso"),
        ("a.iso", 2, "a.2.iso"),
        ("a.tar.gz", 1, "a.tar.1.gz"),
        ("noext", 3, "noext.3"),
        (".bashrc", 1, ".bashrc.1"),
        ("a.iso", 0, "a.iso"),
    ],
)
def test_numbered(name: str, n: int, expected: str) -> None:
    assert numbered(name, n) == expected


def test_numbered_long_name_stays_within_the_limit() -> None:
    name = "a" * (LIMIT - 4) + ".iso"
    result = numbered(name, 12)
    assert nbytes(result) <= LIMIT
    assert result.endswith(".12.iso")


def test_numbered_name_with_a_long_extension_stays_within_the_limit() -> None:
    name = sanitize("a." + "b" * (LIMIT - 2))  # a legal 250-byte name (e.g. from a URL)
    assert nbytes(name) == LIMIT
    result = numbered(name, 1)
    assert nbytes(result) <= LIMIT
    assert result != name


@prop
@given(
    st.one_of(st.text(min_size=1, max_size=40), long_text).filter(lambda s: "." not in s),
    short_ext,
    st.integers(min_value=1, max_value=10**6),
)
def test_numbered_puts_the_number_before_the_last_extension(stem: str, ext: str, n: int) -> None:
    name = sanitize(f"{stem}.{ext}")
    result = numbered(name, n)
    assert nbytes(result) <= LIMIT
    assert result.endswith(f".{n}.{ext}")
    assert name.startswith(result.removesuffix(f".{n}.{ext}"))
    assert result != numbered(name, n + 1)


# --------------------------------------------------------------------------------------------
# display
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "dest", "expected"),
    [
        (("a.iso",), ".", "a.iso"),
        (("a.iso",), "", "a.iso"),
        (("sub", "a.iso"), ".", "sub/a.iso"),
        (("a.iso",), "out", "out/a.iso"),
        (("sub", "a.iso"), "out/", "out/sub/a.iso"),
        (("a.iso",), "/srv/data", "/srv/data/a.iso"),
    ],
)
def test_display(rel: tuple[str, ...], dest: str, expected: str) -> None:
    assert display(rel, dest) == expected
