"""A quick count of a list's entries, so the total bar knows its total from the start.

The count does not parse: it counts the lines that begin an entry, those that are
not blank, not a comment (``#``) and not a continuation line (one that begins with
whitespace; docs/list-format.md). Duplicates and bad lines are counted too, so the
number may be a little high; the reader's exact total, at the end of the list, has
the last word. Only regular files are counted: a pipe can be read once, and standard
input is left to the reader.
"""

from __future__ import annotations

import os
import re
import stat
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from .options import Shard

CHUNK = 1 << 20
_ENTRY_START = re.compile(rb"^[^\s#]", re.MULTILINE)


def count_lines(chunks: Iterable[bytes]) -> int:
    """The entry lines in ``chunks`` of a list's bytes (split anywhere)."""
    count = 0
    carry = b""
    for chunk in chunks:
        data = carry + chunk
        end = data.rfind(b"\n") + 1  # only whole lines; the rest waits for the next chunk
        count += len(_ENTRY_START.findall(data, 0, end))
        carry = data[end:]
    return count + len(_ENTRY_START.findall(carry))


def _chunks(fd: int) -> Iterable[bytes]:
    while chunk := os.read(fd, CHUNK):
        yield chunk


def count_file(path: str) -> int | None:
    """The entry lines of the list file at ``path``; None unless it is a regular file."""
    try:  # a FIFO would block an open(): look first, and never wait for a writer
        if not stat.S_ISREG(Path(path).stat().st_mode):
            return None
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return count_lines(_chunks(fd))
    except OSError:
        return None
    finally:
        os.close(fd)


def count_sources(sources: Sequence[str], *, shard: Shard | None = None) -> int | None:
    """The entries of ``sources`` (files, ``-``, URLs), or None when one cannot be counted
    (standard input, a pipe); with ``shard``, only the entries of that part."""
    total = 0
    for source in sources:
        if source == "-":
            return None
        if "://" in source:
            total += 1
            continue
        count = count_file(source)
        if count is None:
            return None
        total += count
    return total if shard is None else shard_share(total, shard)


def shard_share(total: int, shard: Shard) -> int:
    """How many of ``total`` items (0-based ordinals) belong to ``shard`` (round robin)."""
    return len(range(shard.index - 1, total, shard.count))


def count_in_background(
    sources: Sequence[str], tell: Callable[[int], None], *, shard: Shard | None = None
) -> threading.Thread:
    """Count ``sources`` on a thread of its own and ``tell(total)`` when done (if it can be
    counted), so a long list starts downloading while it is counted."""

    def run() -> None:
        total = count_sources(sources, shard=shard)
        if total is not None:
            tell(total)

    thread = threading.Thread(target=run, name="list-count", daemon=True)
    thread.start()
    return thread
