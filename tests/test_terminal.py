"""pdl in a real terminal: a pty read through a VT100 screen model, against the test server.

What is asserted is what a person sees: the rows on the screen while the run
goes on, the rows that scrolled off above, and the screen at the end.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server import Fault, FaultServer, wait_until
from tests.terminal import ROOT, Terminal, pdl_argv

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

    # from the start, the total is known (the list file is counted, not read to its end)
    term.wait_for(lambda t: any(TOTAL.match(row) for row in t.lines()), timeout=60)
    top = next(row for row in term.lines() if TOTAL.match(row))
    assert TOTAL.match(top).groups()[1] == "200"  # type: ignore[union-attr]
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

    assert term.finish() == 1
    _assert_no_bar_scrolled_off(term)
    text = term.text().splitlines()
    assert f"pdl: failed: {server.url('/' + names[7])} (urls.txt:8): HTTP 404 Not Found" in text
    assert any(row.startswith("pdl: ") and "503" in row and "retry" in row for row in text)
    totals = [row for row in text if row.startswith("total")]
    assert len(totals) == 1 and TOTAL.match(totals[0])
    assert TOTAL.match(totals[0]).groups() == ("200", "200")  # type: ignore[union-attr]
    assert "1 failed" in totals[0] and re.search(r" in \d\d:\d\d$", totals[0])
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


def _done_of_total(term: Terminal) -> tuple[int, int] | None:
    for row in term.lines():
        match = TOTAL.match(row)
        if match:
            return int(match[1]), int(match[2])
    return None


def test_the_total_bar_knows_the_total_and_an_eta_early(
    server: FaultServer, tmp_path: Path, terminals: list[Terminal]
) -> None:
    """A list file of 300 entries: n/300, a percentage and an ETA from bytes long before its
    end (issue: they appeared only at 296/300, when the streamed list had been read)."""
    _serve(server, tmp_path, 300, rate=100_000)
    term = _start(terminals, tmp_path, "-j", "8", columns=100)

    def early_eta(t: Terminal) -> bool:
        top = next((row for row in t.lines() if TOTAL.match(row)), "")
        return "ETA" in top

    term.wait_for(early_eta, timeout=60)
    done, total = _done_of_total(term) or (0, 0)
    assert total == 300 and done < 150, term.lines()
    top = next(row for row in term.lines() if TOTAL.match(row))
    eta = re.search(r"ETA (\d\d):(\d\d)", top)
    assert eta and 0 < int(eta[1]) * 60 + int(eta[2]) < 600, top
    assert term.finish() == 0


def test_on_a_pipe_the_total_bar_says_how_many_are_known_so_far(
    server: FaultServer, tmp_path: Path, terminals: list[Terminal]
) -> None:
    _serve(server, tmp_path, 60, rate=100_000)
    out = (tmp_path / "stdout.txt").open("w")
    argv = ["bash", "-c", f"cat urls.txt | {' '.join(pdl_argv('fetch', '-d', 'dest', '-j', '4'))}"]
    term = Terminal(argv, cwd=tmp_path, stdout=out.fileno())
    out.close()
    terminals.append(term)
    term.wait_for(lambda t: any(re.search(r"known so far", row) for row in t.lines()), timeout=60)
    row = next(row for row in term.lines() if "known so far" in row)
    assert re.match(r"^total \d+ files, \d+ known so far \[", row), row
    assert term.finish() == 0
    final = [row for row in term.text().splitlines() if row.startswith("total")]
    assert TOTAL.match(final[-1]).groups() == ("60", "60")  # type: ignore[union-attr]


def test_rows_name_their_file_while_a_dead_host_is_retried(
    tmp_path: Path, terminals: list[Terminal]
) -> None:
    """A closed port: every row shows its file's name from the start, not a bare ``starting``."""
    import socket

    with socket.socket() as probe:  # a port that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    names = [f"dead-{i}.bin" for i in range(4)]
    (tmp_path / "urls.txt").write_text("".join(f"http://127.0.0.1:{port}/{n}\n" for n in names))
    term = _start(terminals, tmp_path, "-j", "4", "--retries", "3", "--retry-wait", "2")
    term.wait_for(lambda t: all(any(row.startswith(f"  {n}") for row in t.lines()) for n in names))
    assert term.finish() == 1
    assert "pdl: done: 0 ok, 0 skipped, 4 failed" in term.text()
    assert "  failed   4, each shown above as it happened" in term.text()


_SCRIPTED = """
import sys
from downloader.progress import Retrying, Starting, Waiting, standard_reporter
from downloader.results import Report, Counts
r = standard_reporter(stdout=sys.stdout, stderr=sys.stderr, progress=True)
r.list_counted(3)
r.run_started(3)
for slot, name in enumerate(["linux-6.9.tar.xz", "part-157.bin", "part-158.bin"]):
    r.transfer_started(slot)
    r.event(slot, Starting(url="http://h/" + name, name=name))
r.event(1, Retrying(url="http://h/x", retry=2, of=5, delay=30.0, reason="connection refused"))
r.event(2, Waiting(url="http://h/y", reason="another pdl process is writing it"))
sys.stdin.readline()
r.run_finished(Report(results=(), counts=Counts(), elapsed=1.0))
"""


def test_a_waiting_row_says_why_on_the_screen(tmp_path: Path, terminals: list[Terminal]) -> None:
    """The display side of typed events, on a real terminal (the engine emits them)."""
    term = Terminal([sys.executable, "-c", _SCRIPTED], cwd=ROOT)
    terminals.append(term)
    term.wait_for(lambda t: any("connection refused" in row for row in t.lines()))
    rows = term.lines()
    assert rows[0].startswith("total   0%|") and "0/3 files" in rows[0]
    assert rows[1].split() == ["linux-6.9.tar.xz", "starting"]
    assert re.match(r"^  part-157\.bin +retry 2/5 in (30|29) s: connection refused$", rows[2])
    assert re.match(r"^  part-158\.bin +waiting: another pdl process is writing it$", rows[3])
    term.send(b"\n")
    assert term.finish() == 0


def test_each_failure_is_on_the_screen_once(
    server: FaultServer, tmp_path: Path, terminals: list[Terminal]
) -> None:
    """Printed as it happens, above the bars; the summary only counts them (issue: twice)."""
    names = _serve(server, tmp_path, 12)
    for name in names[:5]:
        server.add_faults(f"/{name}", Fault.status(404))
    with (tmp_path / "urls.txt").open("a") as listing:
        listing.write("http//no-scheme.example/x\n")
    term = _start(terminals, tmp_path, "-j", "4", columns=160)
    assert term.finish() == 1
    text = term.text()
    for name in names[:5]:
        assert text.count(server.url(f"/{name}")) == 1, text
    assert "pdl: urls.txt:13: " in text  # a bad line, with the pdl: prefix
    assert "  failed   6, each shown above as it happened" in text.splitlines()
