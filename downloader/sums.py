"""``--checksums FILE`` read in, ``--write-sums FILE`` written out.

``--write-sums`` lines are in list order although downloads end in any order:
each result carries the 0-based ordinal of its download among those the engine
submitted, and a line waits in memory until every earlier download has ended.
The engine keeps at most ``2 * jobs`` downloads submitted and unfinished, so at
most that many lines ever wait. The lines go to a new private file beside FILE
(as :mod:`downloader.failed` does), which replaces FILE when the run ends.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from .digests import Manifest, parse_manifest, sum_line
from .errors import UsageError
from .progress import NullReporter
from .results import Counts, Report, Result, Status
from .storage import create_beside


def load_manifest(path: str | Path) -> tuple[Manifest, list[str]]:
    """Read a manifest; an unreadable one is a :class:`UsageError`, bad lines are returned."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
            return parse_manifest(handle, str(path))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UsageError(f"cannot read the --checksums file {str(path)!r}: {reason}") from None


def _hash_file(path: str) -> str | None:
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


class SumsWriter(NullReporter):
    """A Reporter that writes ``HEX  PATH`` for each entry that ended ok or skipped."""

    def __init__(self, path: str | Path, dest: str) -> None:
        self.path = Path(path)
        self._prefix = "" if dest in ("", ".") else dest.rstrip("/") + "/"
        self._stream, self._tmp = create_beside(self.path, "--write-sums", 0o644)
        self._lock = threading.Lock()
        self._waiting: dict[int, str | None] = {}
        self._next = 0

    def result(self, result: Result, counts: Counts) -> None:
        if result.ordinal is None:
            return  # a bad line: never submitted
        line = None
        if result.status in (Status.OK, Status.SKIPPED) and result.path is not None:
            digest = result.sha256 or _hash_file(result.path)  # rare: another process's file
            if digest is not None:
                line = sum_line(digest, result.path.removeprefix(self._prefix))
        with self._lock:
            self._waiting[result.ordinal] = line
            while self._next in self._waiting:
                self._put(self._waiting.pop(self._next))
                self._next += 1

    def _put(self, line: str | None) -> None:
        if line is not None and not self._stream.closed:
            self._stream.write(line)

    def run_finished(self, report: Report) -> None:
        self.close()

    def close(self, *, keep: bool = True) -> None:
        """Write what still waits (an interrupted run), move the file to its name, or drop it."""
        with self._lock:
            if self._stream.closed:
                return
            for ordinal in sorted(self._waiting):
                self._put(self._waiting[ordinal])
            self._waiting.clear()
            self._stream.close()
            if keep:
                self._tmp.replace(self.path)
            else:
                self._tmp.unlink(missing_ok=True)
