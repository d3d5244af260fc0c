"""pdl in a real terminal: a pty read through a VT100 screen model, against the test server.

What is asserted is what a person sees: the rows on the screen while the run
goes on, the rows that scrolled off above, and the screen at the end.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server import Fault, FaultServer, wait_until
from tests.terminal import Terminal, pdl_argv

pytestmark = pytest.mark.slow

TOTAL = re.compile(r"^total +\d+%\|.*\| (\d+)/(\d+) files")
WORKER = re.compile(r"^  \S.*( \d+(\.\d+)?[KMG]?i?B(/\S+)? .*/s| starting)$")
MORE = re.compile(r"^  \+(\d+) more$")
SUMMARY_HEAD = re.compile(r"^pdl: done")


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    started: list[Terminal] = []
    yield started
    for term in started:
        term.close()


def _serve(server: FaultServer, tmp_path: Path, count: int, *, rate: float = 0.0) -> list[str]:
    names = [
        f"file-{i:03d}{'-with-a-long-name-that-must-be-cut' * (i % 9 == 0)}.bin"
        for i in range(count)
    ]
    for i, name in enumerate(names):
        server.add(f"/{name}", bytes(20_000 + 97 * i), rate=rate, chunked=i % 4 == 0)
    (tmp_path / "urls.txt").write_text("".join(server.url(f"/{n}") + "\n" for n in names))
    return names


def _start(
    terminals: list[Terminal],
    tmp_path: Path,
    *args: str,
    lines: int = 24,
    columns: int = 80,
    stdout_to_file: bool = True,
) -> Terminal:
    out = (tmp_path / "stdout.txt").open("w") if stdout_to_file else None
    argv = pdl_argv("fetch", "urls.txt", "-d", "dest", *args)
    term = Terminal(
        argv, columns=columns, lines=lines, cwd=tmp_path, stdout=out.fileno() if out else None
    )
    if out is not None:
        out.close()
    terminals.append(term)
    return term


def _workers(term: Terminal) -> list[str]:
    return [row for row in term.lines() if WORKER.match(row)]


def _assert_no_bar_scrolled_off(term: Terminal) -> None:
    """Nothing of the bars is left in the scrollback: only whole lines printed above them."""
    for row in term.history():
        assert not TOTAL.match(row) and not WORKER.match(row) and not MORE.match(row), row


def test_bars_of_a_run_and_the_screen_it_leaves(
    server: FaultServer, tmp_path: Path, terminals: list[Terminal]
) -> None:
    names = _serve(server, tmp_path, 200, rate=200_000)
    server.add_faults(f"/{names[7]}", Fault.status(404))
    server.add_faults(f"/{names[30]}", Fault.status(503))  # retried, with -v a line about it
    term = _start(terminals, tmp_path, "-j", "16", "-v", "--retry-wait", "0", columns=100)

    # while it runs: the total bar on top of one row per busy worker
    term.wait_for(lambda t: len(_workers(t)) == 16, timeout=60)
    rows = term.lines()
    first = next(i for i, row in enumerate(rows) if row.startswith("total"))
    assert all(WORKER.match(row) for row in rows[first + 1 : first + 17])
    assert all(len(row) < 100 for row in rows[first : first + 17])
    # a long name is cut to fit (its row may still say "starting" in one snapshot: wait)
    term.wait_for(
        lambda t: any("…" in row and row.split()[0].endswith(".bin") for row in t.lines()),
        timeout=60,
    )
    term.wait_for(lambda t: any(TOTAL.match(row) for row in t.lines()), timeout=60)  # list read

    assert term.finish() == 1
    _assert_no_bar_scrolled_off(term)
    text = term.text().splitlines()
    assert f"pdl: failed: {server.url('/' + names[7])} (urls.txt:8): HTTP 404 Not Found" in text
    assert any(row.startswith("pdl: ") and "503" in row and "retry" in row for row in text)
    totals = [row for row in text if row.startswith("total")]
    assert len(totals) == 1 and TOTAL.match(totals[0])
    assert TOTAL.match(totals[0]).groups() == ("200", "200")  # type: ignore[union-attr]
    assert "1 failed" in totals[0] and "ETA" in totals[0]
    after = text[text.index(totals[0]) + 1 :]
    assert SUMMARY_HEAD.match(after[0]) and not any(WORKER.match(row) for row in after)
    assert len((tmp_path / "stdout.txt").read_text().splitlines()) == 199


def test_sixty_four_jobs_on_a_24_line_terminal_stay_tidy(
    server: FaultServer, tmp_path: Path, terminals: list[Terminal]
) -> None:
    names = _serve(server, tmp_path, 100)
    for name in names[:64]:  # the first 64 downloads stop half-way until released
        server.add_faults(f"/{name}", Fault.stall(after=10_000))
    term = _start(terminals, tmp_path, "-j", "64", "--retry-wait", "0", lines=24)

    def full(t: Terminal) -> bool:  # every worker busy (stalled), the screen caught up
        return "  +45 more" in t.lines() and len(_workers(t)) == 19

    wait_until(lambda: server.stalled_count() == 64, timeout=60)
    term.wait_for(full, timeout=60)
    rows = term.lines()
    top = next(i for i, row in enumerate(rows) if row.startswith("total"))
    assert all(WORKER.match(row) for row in rows[top + 1 : top + 20])
    assert MORE.match(rows[top + 20]) and not any(rows[top + 21 :])
    hidden = int(MORE.match(rows[top + 20]).group(1))  # type: ignore[union-attr]
    assert hidden == 64 - 19
    assert top + 21 <= 24 - 3  # room for the prompt

    server.release_stalls()  # the cut-off downloads are resumed and finish
    assert term.finish() == 0
    _assert_no_bar_scrolled_off(term)
    assert term.history() == []
    assert TOTAL.match(next(r for r in term.lines() if r.startswith("total"))).groups() == (  # type: ignore[union-attr]
        "100",
        "100",
    )


def test_results_on_the_same_terminal_are_printed_above_the_bars(
    server: FaultServer, tmp_path: Path, terminals: list[Terminal]
) -> None:
    names = _serve(server, tmp_path, 60, rate=400_000)
    term = _start(terminals, tmp_path, "-j", "8", stdout_to_file=False, columns=100)
    assert term.finish() == 0
    _assert_no_bar_scrolled_off(term)
    text = term.text().splitlines()
    paths = [row for row in text if row.startswith("dest/")]
    assert sorted(paths) == sorted(f"dest/{n}" for n in names)
    total = next(i for i, row in enumerate(text) if row.startswith("total"))
    assert all(row.startswith("dest/") for row in text[:total])
    assert SUMMARY_HEAD.match(text[total + 1])


def test_narrow_terminal_long_names(
    server: FaultServer, tmp_path: Path, terminals: list[Terminal]
) -> None:
    _serve(server, tmp_path, 30, rate=100_000)
    term = _start(terminals, tmp_path, "-j", "4", columns=40, lines=12)
    term.wait_for(lambda t: len(_workers(t)) == 4, timeout=60)
    assert all(len(row) < 40 for row in term.lines())
    assert term.finish() == 0
    _assert_no_bar_scrolled_off(term)


def test_without_a_terminal_no_bars_a_line_per_failure_and_the_summary(
    server: FaultServer, tmp_path: Path
) -> None:
    names = _serve(server, tmp_path, 20)
    server.add_faults(f"/{names[3]}", Fault.status(404))
    done = subprocess.run(
        pdl_argv("fetch", "urls.txt", "-d", "dest", "-j", "4"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "\r" not in done.stderr and "\x1b" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == f"pdl: failed: {server.url('/' + names[3])} (urls.txt:4): HTTP 404 Not Found"
    assert SUMMARY_HEAD.match(lines[1])
    assert "total" not in done.stderr


def test_ctrl_c_leaves_the_total_bar_and_the_summary(
    server: FaultServer, tmp_path: Path, terminals: list[Terminal]
) -> None:
    names = _serve(server, tmp_path, 8)
    for name in names:
        server.add_faults(f"/{name}", Fault.stall(after=5000))
    term = _start(terminals, tmp_path, "-j", "4")
    wait_until(lambda: server.stalled_count() == 4, timeout=60)
    term.wait_for(lambda t: len(_workers(t)) == 4, timeout=60)
    os.killpg(term.process.pid, signal.SIGINT)  # as Ctrl-C does: the whole foreground group
    assert term.finish() == 130
    _assert_no_bar_scrolled_off(term)
    text = term.text().splitlines()
    assert not any(WORKER.match(row) for row in text)
    assert sum(row.startswith("total ") for row in text) == 1
    assert any(row.startswith("pdl: interrupted: 0 ok") for row in text)
