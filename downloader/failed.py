"""``--failed FILE``: every failed entry, written as a URL list that ``pdl fetch FILE`` re-runs.

Each failed download is written as its URL (credentials kept, so the file is
created with mode 0600) followed by its ``out=``, ``dir=``, ``checksum=``, every
``mirror=`` and ``header=`` (tokens kept too) on indented continuation lines, as
the list format allows. A bad line of a list
cannot be re-run as it stands (it would only fail again), so it is written as a
comment that says where it came from and why it was refused: the user sees it
when they open the file, and a re-run skips it.

The lines go to a new private file beside FILE (``.FILE.PID.tmp``), flushed as
entries fail, which replaces FILE when the run ends. So ``pdl fetch failed.txt
--failed failed.txt`` reads the old list to its end while the new one is written,
a link at FILE is replaced rather than followed, and a run killed with SIGKILL
leaves the old FILE as it was and the failures so far in the temporary file.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from .progress import NullReporter
from .results import Counts, Report, Result, Status
from .storage import create_beside

_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_HEADER = "# pdl: failed entries; re-run them with: pdl fetch THIS-FILE\n"


def entry_lines(result: Result) -> str:
    """The list text that re-runs ``result``: URL, then its options on continuation lines."""
    if result.bad_line:
        shown = _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}", result.url)
        return f"# {result.source}: bad line, not re-run ({result.error}): {shown}\n"
    o = result.options
    lines = [result.url]
    if o.dir:
        lines.append(f"  dir={o.dir}")
    if o.out:
        lines.append(f"  out={o.out}")
    if o.checksum:
        lines.append(f"  checksum={o.checksum}")
    lines += [f"  mirror={mirror}" for mirror in o.mirrors]
    lines += [f"  header={name}: {value}" for name, value in o.headers]
    return "\n".join(lines) + "\n"


class FailedWriter(NullReporter):
    """A Reporter that writes each failed entry to a URL list, as it fails."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._stream, self._tmp = create_beside(self.path, "--failed", 0o600)
        self._lock = threading.Lock()
        self._write(_HEADER)

    def _write(self, text: str) -> None:
        with self._lock:
            if self._stream.closed:
                return
            self._stream.write(text)
            self._stream.flush()

    def result(self, result: Result, counts: Counts) -> None:
        if result.status is Status.FAILED:
            self._write(entry_lines(result))

    def run_finished(self, report: Report) -> None:
        self.close()

    def close(self, *, keep: bool = True) -> None:
        """Finish the file and move it to its name, or drop it (idempotent)."""
        with self._lock:
            if self._stream.closed:
                return
            self._stream.close()
            if keep:
                self._tmp.replace(self.path)
            else:
                self._tmp.unlink(missing_ok=True)
