"""URL lists: lazy parsing of the aria2 input-file form into entries and bad lines."""

from __future__ import annotations

import io
import os
import re
import select
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .errors import BadLine, UsageError
from .options import Checksum, EntryOptions, check_url, parse_checksum
from .results import HashSet64
from .safetext import redact

STREAM_PAUSE = 0.2
"""Seconds of silence on a piped list after which a pending entry starts."""
STDIN = "-"
STDIN_NAME = "<stdin>"
ARGS_NAME = "<args>"
OPTION_NAMES = ("out", "dir", "checksum", "mirror", "header")
REPEATABLE = ("mirror", "header")

_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
"""Control characters (Unicode category Cc) other than TAB, a separator in lists."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One download asked for: a URL, its options, and where it was listed (``FILE:LINE``).

    The URL is checked as a list line's is (:func:`check_url`), and ``options`` by
    :class:`EntryOptions` itself, so an entry made by the API is held to the same
    rules as one read from a list: a bad one raises ValueError (:class:`UsageError`).
    """

    url: str
    options: EntryOptions = field(default_factory=EntryOptions)
    source: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.options, EntryOptions):
            raise UsageError(f"options must be EntryOptions, not {self.options!r}")
        problem = check_url(self.url) if isinstance(self.url, str) else "URL is not a string"
        if problem is not None:
            raise UsageError(f"{problem}: {redact(self.url) if isinstance(self.url, str) else ''}")

    @property
    def key(self) -> str:
        """Identity for de-duplication: the same URL with the same options."""
        o = self.options
        headers = (f"{name}: {value}" for name, value in o.headers)
        parts = (self.url, o.out or "", o.dir or "", str(o.checksum or ""), *o.mirrors, "")
        return "\x00".join((*parts, *headers))

    @property
    def urls(self) -> tuple[str, ...]:
        """Every URL of the file, in the order they are tried: the entry's, then its mirrors."""
        return tuple(dict.fromkeys((self.url, *self.options.mirrors)))


Item = Entry | BadLine


def is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))


def _parse_value(key: str, value: str) -> object:
    """The checked value of one option; ValueError/UsageError says why it is bad."""
    if key == "checksum":
        return parse_checksum(value)
    if key == "mirror":
        problem = check_url(value)
        if problem is not None:
            raise UsageError(f"bad mirror: {problem}")
        return value
    if key == "header":
        return _parse_entry_header(value)
    checked = EntryOptions(out=value) if key == "out" else EntryOptions(dir=value)
    return checked.out if key == "out" else checked.dir


def _parse_option(token: str, into: dict[str, object], source: str) -> None:
    """Check one ``key=value`` token (reported at its own line) and store its value."""
    key, sep, value = token.partition("=")
    if not sep or key not in OPTION_NAMES:
        hint = " (a URL cannot contain spaces: write them as %20)" if not sep else ""
        raise BadLine(source, f"unknown option {token!r}{hint}")
    if not value:
        raise BadLine(source, f"option {key}= has no value")
    if key in into and key not in REPEATABLE:
        raise BadLine(source, f"option {key}= given twice")
    try:
        parsed = _parse_value(key, value)
    except (ValueError, UsageError) as exc:
        raise BadLine(source, str(exc)) from None
    if key in REPEATABLE:
        values = into.setdefault(key, [])
        assert isinstance(values, list)
        values.append(parsed)
    else:
        into[key] = parsed


def _parse_entry_header(text: str) -> tuple[str, str]:
    """``header=Name: value`` -> ``(name, value)``; the reasons never quote the value (a
    token may be what is wrong with it)."""
    name, sep, value = text.partition(":")
    name = name.strip()
    if not sep:
        raise UsageError("header= needs 'Name: value' (no colon)")
    if not name:
        raise UsageError("header= has no name before its colon")
    return EntryOptions(headers=((name, value.strip()),)).headers[0]


def _build(url: str, raw: dict[str, object], source: str) -> Entry:
    out, dir_, checksum = raw.get("out"), raw.get("dir"), raw.get("checksum")
    mirrors, headers = raw.get("mirror", []), raw.get("header", [])
    assert out is None or isinstance(out, str)
    assert dir_ is None or isinstance(dir_, str)
    assert checksum is None or isinstance(checksum, Checksum)
    assert isinstance(mirrors, list) and isinstance(headers, list)
    options = EntryOptions(
        out=out, dir=dir_, checksum=checksum, mirrors=tuple(mirrors), headers=tuple(headers)
    )
    return Entry(url=url, options=options, source=source)


_WORD = re.compile(r"\S+")


def _tokens(text: str) -> list[str]:
    """Whitespace-separated tokens; a token starting with ``#`` starts a comment.

    ``header=`` takes the rest of its line (up to a comment), as an aria2 option line
    does: a header's value has spaces (``header=Authorization: Bearer T``).
    """
    return [token for _, token in _words(text)]


def _words(text: str) -> list[tuple[str, str]]:
    """The tokens of :func:`_tokens`, each with the whitespace before it."""
    words: list[tuple[str, str]] = []
    end = 0
    for match in _WORD.finditer(text):
        if match.start() < end:
            continue  # inside a header= value
        token = match.group()
        if token.startswith("#"):
            break
        before = text[end : match.start()]
        if token.startswith("header="):
            comment = re.search(r"\s#", text[match.start() :])
            stop = match.start() + comment.start() if comment else len(text)
            token = text[match.start() : stop].rstrip()
            end = stop
        else:
            end = match.end()
        words.append((before, token))
    return words


class _Pending:
    """An entry line whose continuation lines may still follow."""

    def __init__(
        self, url: str, source: str, tokens: list[str], error: BadLine | None = None
    ) -> None:
        self.url = url
        self.source = source
        self.raw: dict[str, object] = {}
        self.error = error
        self.line = url
        """The entry's first line, which shows a bad entry (see :func:`_start`)."""
        self.add(tokens, source)

    def add(self, tokens: list[str], source: str) -> None:
        for token in tokens:
            if self.error is None:
                try:
                    _parse_option(token, self.raw, source)
                except BadLine as exc:
                    self.error = exc

    def finish(self) -> Item:
        if self.error is not None:
            self.error.text = self.error.text or self.line
            return self.error
        return _build(self.url, self.raw, self.source)


def parse_lines(
    lines: Iterable[bytes | str | None], name: str, first_line: int = 1
) -> Iterator[Item]:
    """Entries and bad lines of one list, lazily, in order. ``name`` is used in ``FILE:LINE``.

    An entry is given out once the next entry line (or the end) shows that no more
    option lines follow; a ``None`` among the lines (the source paused) gives it
    out at once.
    """
    pending: _Pending | None = None
    number = first_line - 1
    for raw in lines:
        if raw is None:
            if pending is not None:
                yield pending.finish()
                pending = None
            continue
        number += 1
        source = f"{name}:{number}"
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError:
            error = BadLine(source, "line is not valid UTF-8")
            if raw[:1] in (b" ", b"\t") and pending is not None:
                pending.error = pending.error or error  # a bad option line fails its entry
                continue
            if pending is not None:
                yield pending.finish()
            pending = _Pending("", source, [], error)  # absorbs its option lines
            continue
        if number == first_line:
            text = text.removeprefix("\ufeff")
        text = text.rstrip("\r\n")
        stripped = text.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if text[0].isspace():
            if pending is None:
                yield BadLine(source, "option line without a URL line before it", stripped)
            else:
                pending.add(_tokens(stripped), source)
            continue
        if pending is not None:
            yield pending.finish()
            pending = None
        pending = _start(stripped, source)
    if pending is not None:
        yield pending.finish()


def _start(text: str, source: str) -> _Pending:
    """A new entry; a bad URL still collects its continuation lines, then fails once.

    A bad entry is shown by its whole line, not its first token, so a URL cut short
    by a space is shown whole and its credentials are redacted whole.
    """
    if _CONTROL.search(text):
        return _Pending(text, source, [], BadLine(source, "URL contains control characters", text))
    words = _words(text)
    url, tokens = words[0][1], [token for _, token in words[1:]]
    mirrors = []
    for before, token in words[1:]:  # aria2: the URLs of one file are separated by TABs
        if "\t" not in before or token.partition("=")[0] in OPTION_NAMES:
            break
        mirrors.append(token)
        tokens.pop(0)
    problem = check_url(url)
    if problem is None and _split_credentials([url, *tokens]):
        problem = "URL contains whitespace (a space in a user name or password is written %20)"
    pending = _Pending(url, source, [] if problem else [f"mirror={m}" for m in mirrors] + tokens)
    pending.error = BadLine(source, problem, text) if problem else pending.error
    pending.line = text
    return pending


def _split_credentials(tokens: list[str]) -> bool:
    """Does an ``@`` past the URL token end credentials that a space cut (``u:p q@host``)?"""
    if "@" in tokens[0]:
        return False
    return any("@" in t and t.partition("=")[0] not in OPTION_NAMES for t in tokens[1:])


def _read_lines(stream: BinaryIO) -> Iterator[bytes]:
    while line := stream.readline():
        yield line


def _read_stream(stream: BinaryIO, pause: float = STREAM_PAUSE) -> Iterator[bytes | None]:
    """Lines of a pipe or terminal, with ``None`` whenever it has been silent for ``pause`` s.

    So ``producer | pdl fetch`` starts each URL as soon as it is written, not
    when the next one arrives. Streams without a descriptor are read plainly.
    """
    try:
        fd = stream.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        yield from _read_lines(stream)
        return
    if stat.S_ISREG(os.fstat(fd).st_mode):
        yield from _read_lines(stream)
        return
    tail = b""
    while True:
        if not select.select([fd], [], [], pause)[0]:
            yield None
            select.select([fd], [], [])
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            if tail:
                yield tail
            return
        *lines, tail = (tail + chunk).split(b"\n")
        for line in lines:
            yield line + b"\n"


def iter_sources(sources: Iterable[str], stdin: BinaryIO | None = None) -> Iterator[Item]:
    """Items of every source in order: a list file, ``-`` (standard input) or a direct URL."""
    for index, source in enumerate(sources, 1):
        if source == STDIN:
            if stdin is None:
                raise UsageError("'-' given but there is no standard input")
            yield from parse_lines(_read_stream(stdin), STDIN_NAME)
        elif "://" in source:
            yield from parse_lines([source], ARGS_NAME, first_line=index)
        else:
            with Path(source).open("rb") as handle:
                yield from parse_lines(_read_lines(handle), source)


def unique(items: Iterable[Item]) -> Iterator[Item]:
    """Drop exact repeats (the same URL with the same options); bad lines all pass."""
    seen = HashSet64()
    for item in items:
        if isinstance(item, BadLine) or seen.add(item.key):
            yield item
