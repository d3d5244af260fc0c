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
    """Print the screens shown in the docs and the issue notes: ``python -m tests.terminal``.

    A 300-file run at 10%, 50% and 90% (files of 1 KiB to 6 MiB, each served at
    2 MiB/s), a dead host, a Ctrl-C, and ``pdl tune`` next to full runs at its levels.
    """
    import random
    import signal
    import socket
    import tempfile

    from tests.server import FaultServer

    work = Path(tempfile.mkdtemp(prefix="pdl-screens-"))
    rng = random.Random(13)
    with FaultServer() as server:
        names = [f"part-{i:03d}.bin" for i in range(300)]
        names[3] = "ubuntu-24.04.1-live-server-amd64.iso"
        for name in names:
            size = int(1024 * 6144 ** rng.random())  # 1 KiB .. 6 MiB, log-uniform
            server.add(f"/data/{name}", bytes(size), rate=2 * 1024 * 1024)
        urls = "".join(f"{server.url('/data/' + n)}\n" for n in names)
        (work / "urls.txt").write_text(urls.replace("127.0.0.1", "localhost"))

        def run(*args: str) -> Terminal:
            out = (work / "paths.txt").open("w")
            term = Terminal(
                pdl_argv(*args), columns=columns, lines=lines, cwd=work, stdout=out.fileno()
            )
            out.close()
            return term

        def screen(term: Terminal) -> str:
            return "\n".join(term.lines()).rstrip()

        def at(term: Terminal, percent: int) -> None:
            def there(t: Terminal) -> bool:
                top = next((r for r in t.lines() if r.startswith("total")), "")
                return (
                    top[5:10].strip().rstrip("%").isdigit()
                    and int(top[5:10].strip().rstrip("%")) >= percent
                )

            term.wait_for(there, timeout=600)
            print(f"\n--- at {percent}% ---\n{screen(term)}")

        print("$ pdl fetch urls.txt -j 4 -d dl > paths.txt")
        term = run("fetch", "urls.txt", "-j", "4", "-d", "dl")
        for percent in (10, 50, 90):
            at(term, percent)
        term.finish(timeout=600)
        print(f"\n--- at the end ---\n{term.text()}")

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        dead = "".join(f"http://127.0.0.1:{port}/file-{i:02d}.iso\n" for i in range(20))
        (work / "dead.txt").write_text(dead)
        print("\n$ pdl fetch dead.txt -d dead   # a closed port")
        term = run("fetch", "dead.txt", "-d", "dead")
        term.wait_for(lambda t: any(r.startswith("  file-") for r in t.lines()))
        print(f"--- after the start ---\n{screen(term)}")
        started = time.monotonic()
        term.finish(timeout=600)
        print(f"--- at the end ({time.monotonic() - started:.0f} s later) ---\n{term.text()}")

        print("\n$ pdl fetch urls.txt -j 16 -d ctrl-c   # Ctrl-C at about 30%")
        term = run("fetch", "urls.txt", "-j", "16", "-d", "ctrl-c")
        at(term, 30)
        os.killpg(term.process.pid, signal.SIGINT)
        term.finish()
        print(f"--- after Ctrl-C ---\n{term.text()}")

        print("\n$ pdl tune urls.txt")
        term = Terminal(pdl_argv("tune", "urls.txt"), columns=columns, lines=lines, cwd=work)
        started = time.monotonic()
        term.finish(timeout=900)
        print(term.text())
        print(f"(tune took {time.monotonic() - started:.1f} s)")
        for jobs in (1, 2, 4, 8, 16, 32):
            started = time.monotonic()
            subprocess.run(
                pdl_argv("fetch", "urls.txt", "-q", "-j", str(jobs), "-d", f"full-{jobs}"),
                cwd=work,
                stdout=subprocess.DEVNULL,
                check=False,
            )
            print(f"full run -j {jobs}: {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    _capture()
