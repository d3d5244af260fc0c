"""Reporters: stdout results, stderr lines, bars that are batched and never on stdout."""

from __future__ import annotations

import io
import json

import pyte
import pytest

from downloader.bars import BAR_REFRESH, Bars, Size, cut_name, estimate, layout
from downloader.progress import (
    NullReporter,
    Restarted,
    ResultWriter,
    Resumed,
    Retrying,
    Starting,
    StderrReporter,
    Waiting,
    combine,
    describe,
    failure_line,
)
from downloader.results import Counts, Report, Result, Status
from tests.conftest import RecordingReporter

OK = Result(url="https://h/a.iso", source="l.txt:1", status=Status.OK, path="d/a.iso", bytes=3)
SKIP = Result(url="https://h/b.iso", source="l.txt:2", status=Status.SKIPPED, path="d/b.iso")
FAIL = Result(
    url="https://u:pw@h/c.iso", source="l.txt:3", status=Status.FAILED, error="HTTP 404 Not Found"
)
BAD = Result(
    url="ftp://x", source="l.txt:4", status=Status.FAILED, error="unsupported", bad_line=True
)
COUNTS = Counts()


def test_result_writer_prints_paths_of_ok_and_skipped_only() -> None:
    out = io.StringIO()
    writer = ResultWriter(out)
    for result in (OK, SKIP, FAIL, BAD):
        writer.result(result, COUNTS)
    assert out.getvalue() == "d/a.iso\nd/b.iso\n"


def test_result_writer_json_has_one_object_per_entry() -> None:
    out = io.StringIO()
    writer = ResultWriter(out, as_json=True)
    for result in (OK, SKIP, FAIL, BAD):
        writer.result(result, COUNTS)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["status"] for r in rows] == ["ok", "skipped", "failed", "failed"]
    assert rows[2]["url"] == "https://***@h/c.iso"


def test_planned_lines() -> None:
    out = io.StringIO()
    writer = ResultWriter(out)
    writer.planned("https://u:pw@h/a", "l:1", "a")
    writer.run_finished(None)  # type: ignore[arg-type]
    assert out.getvalue() == "https://***@h/a -> a\n"


def test_failure_lines() -> None:
    assert failure_line(BAD) == "pdl: l.txt:4: unsupported"
    line = failure_line(FAIL)
    assert "pw" not in line and "https://***@h/c.iso" in line and "HTTP 404" in line


def test_stderr_reporter_without_bars_writes_plain_lines() -> None:
    err = io.StringIO()
    reporter = StderrReporter(err, verbose=False)
    reporter.run_started(4)
    progress = reporter.transfer_started(0)
    progress.begin("a.iso", 100, 0)
    progress.update(100)
    reporter.message("retry 1/5")
    for result in (OK, FAIL):
        reporter.result(result, COUNTS)
    text = err.getvalue()
    assert "\r" not in text and "\x1b" not in text
    assert text.splitlines() == [failure_line(FAIL)]


def test_verbose_messages() -> None:
    err = io.StringIO()
    StderrReporter(err, verbose=True).message("retry 1/5 in 1.0 s")
    assert err.getvalue() == "pdl: retry 1/5 in 1.0 s\n"


def _screen(text: str, columns: int = 80, lines: int = 24) -> list[str]:
    """What ``text`` looks like on a terminal (a VT100 model; ``\n`` as a tty sends it)."""
    screen = pyte.Screen(columns, lines)
    pyte.Stream(screen).feed(text.replace("\n", "\r\n"))
    return [row.rstrip() for row in screen.display]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _bars(columns: int = 80, lines: int = 24) -> tuple[io.StringIO, Bars, Clock]:
    out, clock = io.StringIO(), Clock()
    bars = Bars(out, clock=clock, size=lambda: Size(columns, lines), painter=False)
    return out, bars, clock


def test_workers_never_paint_and_paints_are_an_interval_apart() -> None:
    out, bars, clock = _bars()
    bars.start(2)
    assert bars.paints == 1  # the empty total bar at once
    slot = bars.busy(0)
    slot.begin("a.iso", 10_000, 0)
    for _ in range(1000):
        slot.update(10)
    assert bars.paints == 1
    bars.paint()  # the painter's call: too soon after the last
    assert bars.paints == 1
    clock.now += BAR_REFRESH
    bars.paint()
    assert bars.paints == 2
    assert "a.iso" in _screen(out.getvalue())[1] and "9.79KiB/9.77KiB" not in out.getvalue()


@pytest.mark.parametrize(
    ("jobs", "lines", "rows", "more"),
    [
        (8, 24, 8, False),
        (20, 24, 20, False),
        (21, 24, 19, True),
        (64, 24, 19, True),
        (1, 3, 0, False),
        (4, 5, 0, True),
    ],
)
def test_layout_leaves_room(jobs: int, lines: int, rows: int, more: bool) -> None:
    assert layout(jobs, lines) == (rows, more)
    assert 1 + rows + more <= max(1, lines - 3)


@pytest.mark.parametrize(
    ("name", "width", "shown"),
    [
        ("a.iso", 8, "a.iso   "),
        ("a-very-long-name-of-a-file.tar.gz", 20, "a-very-long-n…tar.gz"),
        ("ファイル名がとても長いです.bin", 12, "ファイ….bin "),
        ("bell\x07.txt", 12, "bell?.txt   "),
    ],
)
def test_cut_name_keeps_the_end_and_fits(name: str, width: int, shown: str) -> None:
    assert cut_name(name, width) == shown


def test_rows_are_reused_and_the_rest_is_summarised() -> None:
    out, bars, clock = _bars(lines=10)
    bars.start(64)  # 10 lines: the total, 5 rows and "+N more"
    for slot in range(64):
        bars.busy(slot).begin(f"f{slot}.bin", 100, 0)
    clock.now += BAR_REFRESH
    bars.paint()
    screen = _screen(out.getvalue(), lines=10)
    assert [row.split()[0] for row in screen[1:6]] == [f"f{n}.bin" for n in range(5)]
    assert screen[6] == "  +59 more" and not any(screen[7:])
    bars.idle(2)  # its row goes to a slot that had none
    clock.now += BAR_REFRESH
    bars.paint()
    screen = _screen(out.getvalue(), lines=10)
    assert screen[3].split()[0] == "f5.bin" and screen[6] == "  +58 more"


def test_lines_fit_a_narrow_terminal() -> None:
    out, bars, clock = _bars(columns=40)
    bars.start(3)
    bars.set_total(3)
    for slot in range(3):
        bars.busy(slot).begin("x" * 100 + f"{slot}.bin", 1 << 30, 0)
        bars.slot(slot).update(12345)
    clock.now += BAR_REFRESH
    bars.paint()
    screen = _screen(out.getvalue(), columns=40)
    assert all(len(row) < 40 for row in screen)
    assert screen[0].startswith("total") and all(r.endswith("/s") for r in screen[1:4])
    assert "KiB/1.00GiB" in screen[1]


def test_bytes_of_hidden_slots_count_in_the_total() -> None:
    out, bars, clock = _bars(lines=5)
    bars.start(4)  # no room for any row
    bars.busy(3).begin("hidden.bin", 2048, 0)
    bars.slot(3).update(2048)
    bars.idle(3)
    clock.now += BAR_REFRESH
    bars.paint()
    assert "2.00KiB" in _screen(out.getvalue(), lines=5)[0]


def test_messages_go_above_the_bars_whole() -> None:
    out, bars, _ = _bars()
    reporter = StderrReporter(out, verbose=True, bars=bars)
    reporter.run_started(2)
    reporter.transfer_started(0).begin("a.iso", 100, 0)
    reporter.message("retry 1/5 in 1.0 s: HTTP 503")
    reporter.result(FAIL, Counts(failed=1))
    reporter.run_finished(Report(results=(FAIL,), counts=Counts(failed=1), elapsed=1.0))
    screen = _screen(out.getvalue())
    assert screen[0] == "pdl: retry 1/5 in 1.0 s: HTTP 503"
    assert screen[1] == failure_line(FAIL)
    assert screen[2].startswith("total 1 files, 1 failed [")
    assert not any(screen[3:])  # the worker row is gone, the cursor below the total


def test_combine_forwards_to_every_reporter() -> None:
    a, b = RecordingReporter(), RecordingReporter()
    both = combine(a, b, NullReporter())
    both.result(OK, COUNTS)
    both.message("m")
    assert a.results == b.results == [OK] and a.messages == b.messages == ["m"]


def test_a_slot_waiting_for_its_answer_says_so() -> None:
    out, bars, clock = _bars()
    bars.start(2)
    bars.busy(0)
    clock.now += BAR_REFRESH
    bars.paint()
    assert _screen(out.getvalue())[1].split() == ["~", "starting"]  # StringIO: no encoding, ASCII


def test_done_counts_only_go_up_when_workers_report_out_of_order() -> None:
    """Workers hand in their Counts snapshots in any order; the bar never goes back."""
    out, bars, _clock = _bars()
    bars.start(4)
    bars.set_total(100)
    bars.set_done(100, 1)
    bars.set_done(53, 0)  # a worker that recorded earlier reports last
    bars.close()
    final = out.getvalue().rsplit("\r", 2)[-2]
    assert "100/100 files, 1 failed" in final


def test_an_interrupted_entry_prints_no_path_and_no_failure_line() -> None:
    stopped = Result(url="https://h/i.iso", source="l.txt:5", status=Status.INTERRUPTED, path="d/i")
    out, err = io.StringIO(), io.StringIO()
    ResultWriter(out).result(stopped, COUNTS)
    StderrReporter(err).result(stopped, COUNTS)
    assert out.getvalue() == "" and err.getvalue() == ""
    json_out = io.StringIO()
    ResultWriter(json_out, as_json=True).result(stopped, COUNTS)
    assert json.loads(json_out.getvalue())["status"] == "interrupted"


# -- the total bar: counted early, ETA from bytes -------------------------------------------


def _paint(out: io.StringIO, bars: Bars, clock: Clock, seconds: float = BAR_REFRESH) -> list[str]:
    clock.now += seconds
    bars.paint()
    return _screen(out.getvalue())


def test_a_counted_list_shows_n_of_total_and_percentage_from_the_start() -> None:
    out, bars, clock = _bars()
    reporter = StderrReporter(out, bars=bars)
    reporter.list_counted(300)
    reporter.run_started(2)
    top = _paint(out, bars, clock)[0]
    assert " 0/300 files" in top and top.startswith("total   0%|")
    assert "ETA" not in top  # nothing known about sizes yet: no ETA rather than a wrong one


def test_a_list_of_unknown_size_says_how_many_are_known_so_far() -> None:
    out, bars, clock = _bars()
    reporter = StderrReporter(out, bars=bars)
    reporter.run_started(2)
    reporter.list_progress(40)
    reporter.result(OK, Counts(ok=3))
    top = _paint(out, bars, clock)[0]
    assert top.startswith("total 3 files, 40 known so far [")
    reporter.list_read(41)  # the end of the list: the exact total from now on
    assert " 3/41 files" in _paint(out, bars, clock)[0]


def test_one_split_file_shows_its_bytes_percentage_and_an_eta() -> None:
    """-s 4 on one file: the total says 72%, not 0% of 1 file, and how long is left."""
    out, bars, clock = _bars(columns=100)
    bars.start(1)
    bars.set_counted(1)
    slot = bars.busy(0)
    slot.begin("big.iso", 100 * 1024 * 1024, 0)
    for _ in range(10):
        clock.now += 1
        slot.update(int(7.2 * 1024 * 1024))
        bars.paint()
    top = _screen(out.getvalue(), columns=100)[0]
    assert top.startswith("total  72%|") and " 0/1 files" in top
    eta = top.rsplit("ETA ", 1)[1]
    assert eta in ("00:03", "00:04"), top  # 28 MiB left at 7.2 MiB/s


def test_eta_counts_the_bytes_left_of_running_transfers() -> None:
    """53 of 60 done, 7 running with 70% of their bytes left at 1 MiB/s: not ETA 00:00."""
    mib = 1024 * 1024
    guess = estimate(
        entries=60,
        done=53,
        finished_bytes=53 * mib,
        running=[(int(0.3 * mib), mib)] * 7,
        rate=float(mib),
        elapsed=30.0,
    )
    assert guess is not None and guess.eta is not None
    assert guess.eta == pytest.approx(4.9, abs=0.01)
    assert guess.fraction == pytest.approx((53 + 2.1) / 60, abs=0.001)


def test_eta_is_never_shorter_than_the_slowest_running_transfer_needs() -> None:
    """The tail: the total rate of a moment ago is gone with the finished transfers."""
    guess = estimate(
        entries=60,
        done=59,
        finished_bytes=59_000,
        running=[(0, 7000)],
        rate=7000.0,
        elapsed=30.0,
        slowest=7.0,
    )
    assert guess is not None and guess.eta == 7.0


def test_eta_expects_unstarted_entries_to_be_like_the_ones_seen() -> None:
    guess = estimate(entries=10, done=2, finished_bytes=2000, running=[], rate=1000.0, elapsed=5.0)
    assert guess is not None and guess.eta == pytest.approx(8.0) and guess.fraction == 0.2


@pytest.mark.parametrize(
    ("finished_bytes", "running", "rate", "elapsed"),
    [
        (0, [], 0.0, 10.0),  # nothing known about sizes
        (0, [(10, None)], 100.0, 10.0),  # sizes unknown
        (1000, [], 100.0, 0.5),  # too early
        (1000, [], 0.0, 10.0),  # no rate (a stall)
    ],
)
def test_no_eta_rather_than_a_wrong_one(
    finished_bytes: int, running: list[tuple[int, int | None]], rate: float, elapsed: float
) -> None:
    guess = estimate(
        entries=10,
        done=1 if finished_bytes else 0,
        finished_bytes=finished_bytes,
        running=running,
        rate=rate,
        elapsed=elapsed,
    )
    assert guess is None or guess.eta is None


def test_the_final_total_line_says_how_long_the_run_took() -> None:
    out, bars, clock = _bars()
    bars.start(1)
    bars.set_total(1)
    bars.busy(0).begin("a.iso", 100, 0)
    bars.slot(0).update(100)
    bars.idle(0)
    bars.set_done(1, 0)
    clock.now += 65
    bars.close()
    final = out.getvalue().rsplit("\r", 2)[-2]
    assert "100%" in final and "1/1 files" in final and final.rstrip("\x1b[KJ").endswith("in 01:05")


# -- rows: the name from the start, and why a transfer waits ---------------------------------


def test_a_row_shows_its_file_name_before_the_first_byte() -> None:
    out, bars, clock = _bars()
    reporter = StderrReporter(out, bars=bars)
    reporter.run_started(2)
    reporter.transfer_started(0)
    reporter.event(0, Starting(url="https://h/a.iso", name="a.iso"))
    assert _paint(out, bars, clock)[1].split() == ["a.iso", "starting"]


def test_a_row_says_why_it_waits_and_counts_down() -> None:
    out, bars, clock = _bars()
    reporter = StderrReporter(out, bars=bars)
    reporter.run_started(2)
    reporter.transfer_started(0)
    reporter.event(0, Starting(url="https://h/a.iso", name="a.iso"))
    reporter.event(
        0, Retrying(url="https://h/a.iso", retry=2, of=5, delay=4.0, reason="connection refused")
    )
    row = _paint(out, bars, clock)[1]
    assert row.split(None, 1) == ["a.iso", "retry 2/5 in 4 s: connection refused"]
    row = _paint(out, bars, clock, 2.0)[1]
    assert "retry 2/5 in 2 s: connection refused" in row
    bars.slot(0).begin("a.iso", 100, 0)  # the next attempt's bytes flow: the row is a bar again
    assert "retry" not in _paint(out, bars, clock)[1]
    reporter.event(0, Waiting(url="https://h/a.iso", reason="another pdl process is writing it"))
    assert _paint(out, bars, clock)[1].endswith("waiting: another pdl process is writing it")


def test_a_retry_reason_on_a_row_is_redacted() -> None:
    out, bars, clock = _bars()
    reporter = StderrReporter(out, bars=bars)
    reporter.run_started(1)
    reporter.transfer_started(0)
    url = "https://u:pw@h/a.iso"
    reporter.event(0, Retrying(url=url, retry=1, of=5, delay=1.0, reason=f"reset at {url}"))
    row = _paint(out, bars, clock)[1]
    assert "pw" not in row and "***@h" in row


def test_events_as_verbose_lines() -> None:
    url = "https://u:pw@h/a b.iso"
    assert describe(Retrying(url=url, retry=1, of=5, delay=0.5, reason="HTTP 503")) == (
        "retry 1/5 in 0.5 s: 'https://***@h/a b.iso': HTTP 503"
    )
    assert describe(Resumed(url=url, name="a.iso", offset=10, total=20)) == (
        "resuming a.iso from byte 10 of 20"
    )
    assert describe(Restarted(url=url, name="a.iso", reason="the file changed")) == (
        "the file changed; restarting a.iso"
    )
    assert describe(Starting(url=url, name="a.iso")) is None
    err = io.StringIO()
    StderrReporter(err, verbose=True).event(
        0, Waiting(url="https://h/x", reason="a --per-host slot")
    )
    assert err.getvalue() == "pdl: waiting for a --per-host slot: https://h/x\n"
    quiet = io.StringIO()
    StderrReporter(quiet).event(0, Retrying(url=url, retry=1, of=5, delay=0.5, reason="x"))
    assert quiet.getvalue() == ""


def test_combine_forwards_the_new_calls() -> None:
    a = RecordingReporter()
    both = combine(a, StderrReporter(io.StringIO()))
    both.list_counted(3)
    both.list_progress(2)
    both.event(0, Starting(url="https://h/a", name="a"))
    assert a.results == []
