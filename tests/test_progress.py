"""Reporters: stdout results, stderr lines, bars that are batched and never on stdout."""

from __future__ import annotations

import io
import json
from typing import Any, ClassVar

from downloader.progress import (
    BAR_REFRESH,
    NullReporter,
    ResultWriter,
    StderrReporter,
    _Bars,
    combine,
    failure_line,
)
from downloader.results import Counts, Result, Status
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
    assert failure_line(BAD) == "l.txt:4: unsupported"
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


class FakeBar:
    instances: ClassVar[list[FakeBar]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.updates: list[int] = []
        FakeBar.instances.append(self)

    def update(self, n: int) -> None:
        self.updates.append(n)

    def reset(self, total: int | None = None) -> None:
        pass

    def set_description_str(self, text: str, refresh: bool = True) -> None:
        pass

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def close(self) -> None:
        pass

    @staticmethod
    def write(line: str, file: Any = None) -> None:
        file.write(line + "\n")


def test_bar_updates_are_batched_per_refresh_interval() -> None:
    FakeBar.instances = []
    now = [100.0]
    bars = _Bars(io.StringIO(), clock=lambda: now[0], factory=FakeBar)
    bars.start(2)
    slot = bars.slot(0)
    slot.begin("a.iso", 10_000, 0)
    for _ in range(1000):
        slot.update(10)
    worker_bar = FakeBar.instances[1]
    assert len(worker_bar.updates) == 1  # the first chunk; the rest waits for the interval
    now[0] += BAR_REFRESH
    slot.update(10)
    assert sum(worker_bar.updates) == 1001 * 10
    slot.idle()
    total_bar = FakeBar.instances[0]
    assert sum(total_bar.updates) == 1001 * 10


def test_never_more_bars_than_the_terminal_has_rows(monkeypatch: Any) -> None:
    FakeBar.instances = []
    monkeypatch.setenv("LINES", "10")
    monkeypatch.setenv("COLUMNS", "80")
    bars = _Bars(io.StringIO(), factory=FakeBar)
    bars.start(64)
    for slot in range(64):
        bars.slot(slot).begin(f"f{slot}", 10, 0)
    assert len(FakeBar.instances) == 1 + (10 - 4)  # total + workers that fit
    hidden = bars.slot(63)
    hidden.update(5)
    hidden.idle()
    assert sum(FakeBar.instances[0].updates) == 5  # bytes still count in the total


def test_bars_print_messages_through_tqdm() -> None:
    err = io.StringIO()
    reporter = StderrReporter(err, verbose=True, bars=True, bar_factory=FakeBar)
    reporter.run_started(1)
    reporter.message("retry")
    reporter.result(FAIL, Counts(failed=1))
    assert "pdl: retry" in err.getvalue() and "HTTP 404" in err.getvalue()


def test_combine_forwards_to_every_reporter() -> None:
    a, b = RecordingReporter(), RecordingReporter()
    both = combine(a, b, NullReporter())
    both.result(OK, COUNTS)
    both.message("m")
    assert a.results == b.results == [OK] and a.messages == b.messages == ["m"]
