"""A real terminal for tests: a process on a pty, read through a VT100 screen model (pyte).

Tests assert on the screen a person would see (and the lines that scrolled off
it), not on raw bytes. Nothing here sleeps: reads wait on the pty with a
deadline.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pyte

ROOT = Path(__file__).resolve().parent.parent


class Terminal:
    """``argv`` run with stdin, stdout and stderr on a ``columns`` x ``lines`` pty."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        columns: int = 80,
        lines: int = 24,
        env: dict[str, str] | None = None,
        stdout: int | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.screen = pyte.HistoryScreen(columns, lines, history=100_000)
        self._stream = pyte.ByteStream(self.screen)
        self.raw = bytearray()
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        environ.update({"TERM": "xterm-256color", "PYTHONUNBUFFERED": "1"})
        environ.update(env or {})
        self.process = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave if stdout is None else stdout,
            stderr=slave,
            env=environ,
            cwd=cwd,
            start_new_session=True,
        )
        os.close(slave)
        self._master = master
        self._eof = False

    def _read(self, timeout: float) -> bool:
        """Feed what the pty has within ``timeout`` seconds; False at end of output."""
        if self._eof:
            return False
        ready, _, _ = select.select([self._master], [], [], timeout)
        if not ready:
            return True
        try:
            data = os.read(self._master, 65536)
        except OSError:  # EIO: every writer has closed the pty
            data = b""
        if not data:
            self._eof = True
            return False
        self.raw += data
        self._stream.feed(data)
        return True

    def wait_for(self, predicate: Callable[[Terminal], bool], timeout: float = 30.0) -> None:
        """Read until ``predicate(self)`` holds; AssertionError with the screen at the deadline."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            left = deadline - time.monotonic()
            more = self._read(min(max(left, 0.0), 0.1))
            if left <= 0 or (not more and not predicate(self)):
                raise AssertionError("the screen never got there:\n" + self.text())

    def finish(self, timeout: float = 60.0) -> int:
        """Read everything until the process exits and closes the pty; its exit status."""
        deadline = time.monotonic() + timeout
        while self._read(max(0.0, min(0.1, deadline - time.monotonic()))):
            if time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError("the process did not finish:\n" + self.text())
        return self.process.wait(timeout=max(1.0, deadline - time.monotonic()))

    def send(self, data: bytes) -> None:
        """Type ``data`` on the terminal (the process reads it from its stdin)."""
        os.write(self._master, data)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self._master >= 0:
            os.close(self._master)
            self._master = -1
        self._eof = True

    # -- what is on the screen ---------------------------------------------------------------

    def _row(self, line: object) -> str:
        chars = line  # a pyte history line: column -> Char
        text = "".join(chars[x].data for x in range(self.screen.columns))  # type: ignore[index]
        return text.rstrip()

    def lines(self) -> list[str]:
        """The visible rows, trailing blanks removed."""
        return [row.rstrip() for row in self.screen.display]

    def history(self) -> list[str]:
        """The rows that scrolled off the top, oldest first."""
        return [self._row(line) for line in self.screen.history.top]

    def text(self) -> str:
        return "\n".join(self.history() + self.lines()).rstrip()


def pdl_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "downloader", *args]


def _capture(columns: int = 100, lines: int = 24) -> None:  # pragma: no cover - a tool
    """Print the screens shown in the README: ``python -m tests.terminal``."""
    import tempfile

    from tests.server import Fault, FaultServer

    work = Path(tempfile.mkdtemp(prefix="pdl-screens-"))
    with FaultServer() as server:
        names = [f"part-{i:03d}.tar.gz" for i in range(200)]
        names[3] = "ubuntu-24.04.1-live-server-amd64.iso"
        for i, name in enumerate(names):
            server.add(f"/data/{name}", bytes(150_000 + 4099 * i), rate=250_000)
        server.add_faults(f"/data/{names[41]}", Fault.status(404))
        server.add_faults(f"/data/{names[77]}", Fault.status(503))
        urls = "".join(f"{server.url('/data/' + n)}\n" for n in names)
        (work / "urls.txt").write_text(urls.replace("127.0.0.1", "localhost"))
        out = (work / "paths.txt").open("w")
        argv = pdl_argv("fetch", "urls.txt", "-j", "16", "-d", "dl", "-v", "--retry-wait", "0.5")
        term = Terminal(argv, columns=columns, lines=lines, cwd=work, stdout=out.fileno())
        term.wait_for(lambda t: any(r.startswith("total") and "/200" in r for r in t.lines()))
        term.wait_for(lambda t: any("ETA 00:0" in r for r in t.lines()))
        print("$ pdl fetch urls.txt -j 16 -d dl -v > paths.txt   # while it runs")
        print("\n".join(term.lines()).rstrip())
        term.finish()
        print("\n$ pdl fetch urls.txt -j 16 -d dl -v > paths.txt   # at the end")
        print(term.text())
        for name in names:  # tune: files of 1 MB, 10 ms to answer, as fast as the CPU goes
            server.add(f"/data/{name}", bytes(1_000_000), delay=0.01)
        argv = pdl_argv("tune", "urls.txt", "-j", "1,2,4,8,16,32")
        term = Terminal(argv, columns=columns, lines=lines, cwd=work)
        term.finish(timeout=300)
        print("\n$ pdl tune urls.txt")
        print(term.text())


if __name__ == "__main__":
    _capture()
