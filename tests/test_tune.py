"""``pdl tune``: choosing levels and the recommendation (pure), and sweeps against the server."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from downloader import cli
from downloader.errors import BadLine
from downloader.results import Counts, Result, Status
from downloader.tune import (
    Level,
    Meter,
    Sample,
    Skipped,
    allowed_levels,
    chart_lines,
    plan_line,
    recommend,
    sweep,
    table_lines,
    take_sample,
)
from downloader.urllist import Entry
from tests.conftest import RecordingReporter
from tests.server import Fault, FaultServer

MIB = 1024 * 1024


def level(jobs: int, mib_s: float, errors: int = 0, files: int = 10) -> Level:
    return Level(jobs=jobs, files=files, bytes=int(mib_s * MIB), errors=errors, elapsed=1.0)


def entry(url: str) -> Entry:
    return Entry(url=url, source="l:1")


@pytest.mark.parametrize(
    ("levels", "sample", "hosts", "per_host", "kept", "skipped"),
    [
        ((1, 2, 4, 8), 64, 1, None, [1, 2, 4, 8], []),
        ((8, 1, 4, 4), 64, 1, None, [1, 4, 8], []),
        ((1, 2, 4, 8, 16), 64, 3, 2, [1, 2, 4], [(8, "above --per-host 2 x 3 hosts"), (16, None)]),
        ((1, 4, 16), 10, 5, None, [1, 4], [(16, "above the sample of 10 files")]),
        ((8, 16), 64, 1, 2, [2], [(8, "above --per-host 2 x 1 host"), (16, None)]),
        ((8,), 3, 1, None, [3], [(8, None)]),
    ],
)
def test_allowed_levels_never_exceed_per_host_or_the_sample(
    levels: tuple[int, ...],
    sample: int,
    hosts: int,
    per_host: int | None,
    kept: list[int],
    skipped: list[tuple[int, str | None]],
) -> None:
    got_kept, got_skipped = allowed_levels(levels, sample=sample, hosts=hosts, per_host=per_host)
    assert got_kept == kept
    assert [s.jobs for s in got_skipped] == [jobs for jobs, _ in skipped]
    for got, (_, reason) in zip(got_skipped, skipped, strict=True):
        assert isinstance(got, Skipped) and (reason is None or got.reason == reason)
    if per_host is not None:
        assert max(got_kept) <= per_host * hosts


@pytest.mark.parametrize(
    ("levels", "jobs"),
    [
        ([level(1, 10), level(2, 19), level(4, 37.5), level(8, 40), level(16, 41)], 4),
        ([level(1, 10), level(2, 20), level(4, 30)], 4),
        ([level(1, 50), level(2, 50), level(4, 50)], 1),
        ([level(1, 10), level(2, 40), level(4, 80, errors=3)], 2),  # errors: not considered
        ([level(1, 10, errors=1), level(2, 20, errors=2)], 2),  # all had errors: all count
    ],
)
def test_recommend_the_smallest_level_within_ten_percent_of_the_best(
    levels: list[Level], jobs: int
) -> None:
    rec = recommend(levels)
    assert rec is not None and rec.jobs == jobs


def test_recommend_says_why() -> None:
    rec = recommend([level(1, 10), level(4, 37), level(8, 40)])
    assert rec is not None
    assert rec.reason == "92% of the best (40.0 MiB/s at -j 8) with 4 fewer connections"
    best = recommend([level(1, 10), level(4, 40), level(8, 30)])
    assert (
        best is not None
        and best.reason == "the fastest level, at 40.0 MiB/s; more jobs did not help"
    )
    flawed = recommend([level(1, 10), level(2, 40, errors=1)])
    assert flawed is not None and flawed.reason.endswith("levels with errors were not considered")


def test_no_recommendation_when_nothing_was_downloaded() -> None:
    assert recommend([level(1, 0, errors=5, files=0)]) is None
    assert recommend([]) is None


def test_empty_files_are_compared_by_files_a_second() -> None:
    levels = [Level(jobs=j, files=100, bytes=0, errors=0, elapsed=10 / j) for j in (1, 2, 4)]
    rec = recommend(levels)
    assert rec is not None and rec.jobs == 4 and "files/s" in rec.reason


def test_sample_is_the_whole_list_when_it_is_short_and_leaves_bad_lines_out() -> None:
    items = [
        entry("http://a/1"),
        BadLine(source="l:2", text="ftp://x", reason="no"),
        entry("http://b/2"),
    ]
    picked = take_sample(items, 5)
    assert [e.url for e in picked.entries] == ["http://a/1", "http://b/2"]
    assert (picked.bad_lines, picked.listed, picked.hosts) == (1, 2, 2)


def test_sample_spans_the_list_and_is_the_same_on_a_rerun() -> None:
    items = [entry(f"http://h/{i}") for i in range(1000)]
    first = take_sample(items, 20)
    assert first == take_sample(items, 20)
    numbers = sorted(int(e.url.rsplit("/", 1)[1]) for e in first.entries)
    assert len(set(numbers)) == 20 and numbers[-1] >= 500  # not just the head of the list


def test_table_and_chart() -> None:
    levels = [level(1, 10), level(2, 20)]
    assert table_lines(levels) == [
        " jobs   files/s     MiB/s  errors",
        "    1      10.0     10.00       0",
        "    2      10.0     20.00       0",
    ]
    chart = chart_lines(levels, width=40)
    assert chart[0] == "throughput (MiB/s) by -j"
    assert chart[2] == "    2 " + "█" * 20 + "    20.00"
    assert chart[1] == "    1 " + "█" * 10 + " " * 10 + "    10.00"
    assert all("█" not in line for line in chart_lines(levels, width=40, ascii=True))


def test_sweep_downloads_the_sample_per_level_and_removes_everything(
    server: FaultServer, tmp_path: Path
) -> None:
    for i in range(6):
        server.add(f"/f{i}", bytes(1000 + i))
    server.add_faults("/f5", Fault.status(404), Fault.status(404))
    sample = Sample(
        entries=tuple(entry(server.url(f"/f{i}")) for i in range(6)), bad_lines=0, listed=6
    )
    seen: list[int] = []

    def reporter_for(jobs: int) -> RecordingReporter:
        seen.append(jobs)
        return RecordingReporter()

    temp = tmp_path / "tmp"
    temp.mkdir()
    levels = list(
        sweep(
            sample,
            [1, 3],
            fetch_options={"retries": 0},
            reporter_for=reporter_for,
            tmp_dir=str(temp),
        )
    )
    assert seen == [1, 3]
    assert (levels[0].jobs, levels[0].files, levels[0].bytes, levels[0].errors) == (1, 5, 5010, 1)
    # -j 3 is measured while its pool is full: until fewer than 3 of the 6 are left
    assert levels[1].jobs == 3 and levels[1].files + levels[1].errors == 4
    assert len(server.requests_for("/f0")) == 2  # once per level
    assert list(temp.iterdir()) == []


def test_sweep_removes_its_folder_when_the_caller_stops_early(
    server: FaultServer, tmp_path: Path
) -> None:
    server.add("/a", b"a")
    sample = Sample(entries=(entry(server.url("/a")),), bad_lines=0, listed=1)
    levels = sweep(
        sample,
        [1, 2],
        fetch_options={},
        reporter_for=lambda _: RecordingReporter(),
        tmp_dir=str(tmp_path),
    )
    assert next(levels).files == 1
    assert len(list(tmp_path.iterdir())) == 1  # the sweep's folder, between levels
    levels.close()  # as on Ctrl-C, or an error in the caller
    assert list(tmp_path.iterdir()) == []


def _tune(*args: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    temp = tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    result = CliRunner().invoke(cli.main, ["tune", *args], catch_exceptions=False)
    assert list(temp.iterdir()) == []  # the temporary folder is gone
    return result.exit_code, result.stdout, result.stderr


def _table_jobs(out: str) -> list[str]:
    table = out.split("\n\n", 1)[0].splitlines()
    return [row.split()[0] for row in table[1:]]


def test_tune_prints_table_chart_and_recommendation_on_stdout(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listing = tmp_path / "urls.txt"
    listing.write_text("".join(server.url(f"/f{i}") + "\n" for i in range(8)))
    for i in range(8):
        server.add(f"/f{i}", bytes(4096))
    code, out, err = _tune(
        str(listing), "-j", "1,2,4", "--sample", "8", tmp_path=tmp_path, monkeypatch=monkeypatch
    )
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["jobs", "files/s", "MiB/s", "errors"]
    assert _table_jobs(out) == ["1", "2", "4"]
    assert "throughput (MiB/s) by -j" in lines
    assert lines[-1].startswith("recommended: -j ")
    assert "8 of 8 entries, once per level (-j 1,2,4): 24 downloads" in err
    assert "temporary folder that is removed" in err
    assert len(server.requests_for("/f0")) == 3


def test_tune_with_per_host_never_runs_above_it(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.add("/a", b"a")
    server.add("/b", b"b")
    urls = [server.url("/a"), server.url("/b")]
    code, out, err = _tune(
        *urls, "-j", "1,2,4", "--per-host", "1", tmp_path=tmp_path, monkeypatch=monkeypatch
    )
    assert code == 0
    assert _table_jobs(out) == ["1"]
    assert "-j 2 left out: above --per-host 1 x 1 host" in err
    assert "-j 4 left out" in err
    assert len(server.requests_for("/a")) == 1


def test_tune_leaves_bad_lines_out_and_says_so(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.add("/a", b"a")
    listing = tmp_path / "urls.txt"
    listing.write_text(f"{server.url('/a')}\nftp://host/x\n")
    code, _, err = _tune(str(listing), "-j", "1", tmp_path=tmp_path, monkeypatch=monkeypatch)
    assert code == 0 and "1 bad line(s) of the list left out" in err


def test_tune_exits_1_when_nothing_downloads(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = _tune(
        server.url("/gone"), "-j", "1", "--retries", "0", tmp_path=tmp_path, monkeypatch=monkeypatch
    )
    assert code == 1 and "no recommendation" in out


@pytest.mark.parametrize("bad", ["0", "1,x", "", "1,2000"])
def test_tune_rejects_bad_levels(bad: str) -> None:
    result = CliRunner().invoke(cli.main, ["tune", "-j", bad, "http://127.0.0.1:9/x"])
    assert result.exit_code == 2 and "Invalid value" in result.stderr


def test_meter_measures_while_the_pool_is_full_and_stops_the_tail() -> None:
    now = [0.0]
    stops: list[bool] = []
    meter = Meter(entries=10, jobs=4, stop=lambda: stops.append(True), clock=lambda: now[0])
    progress = [meter.transfer_started(slot) for slot in range(4)]
    ok = Result(url="https://h/a", source="l:1", status=Status.OK)
    bad = Result(url="https://h/b", source="l:2", status=Status.FAILED, error="HTTP 503")
    for n in range(6):  # 6 of 10 done: 4 left, the pool is still full
        now[0] += 1.0
        progress[n % 4].update(1000)
        meter.result(bad if n == 2 else ok, Counts())
    assert meter.measured is None and stops == []
    now[0] += 1.0
    progress[0].update(500)  # bytes of a transfer still running count too
    meter.result(ok, Counts())  # 3 left < 4 jobs: the tail begins
    assert stops == [True]
    assert meter.level() == Level(jobs=4, files=6, bytes=6500, errors=1, elapsed=7.0)
    meter.result(bad, Counts())  # the tail (or an entry cut by the stop): not counted
    assert meter.level().errors == 1


def test_meter_leaves_the_ramp_up_out() -> None:
    now = [0.0]
    meter = Meter(entries=10, jobs=2, stop=lambda: None, clock=lambda: now[0])
    a, b = meter.transfer_started(0), meter.transfer_started(1)
    now[0] = 3.0  # slow connections: nothing moves for 3 s
    a.begin("a", 1000, 0)
    a.update(100)
    now[0] = 4.0
    b.begin("b", 1000, 0)  # the pool is full from here
    for _ in range(4):
        now[0] += 1.0
        a.update(1000)
        b.update(1000)
    assert meter.level() == Level(jobs=2, files=0, bytes=8000, errors=0, elapsed=4.0)


def test_a_level_is_not_held_up_by_its_largest_file_finishing_alone(
    server: FaultServer, tmp_path: Path
) -> None:
    server.add("/big", bytes(3_000_000), rate=300_000)  # 10 s alone
    for i in range(7):
        server.add(f"/s{i}", bytes(50_000))
    sample = Sample(
        entries=(entry(server.url("/big")), *(entry(server.url(f"/s{i}")) for i in range(7))),
        bad_lines=0,
        listed=8,
    )
    started = time.monotonic()
    [level4] = sweep(
        sample,
        [4],
        fetch_options={},
        reporter_for=lambda _: RecordingReporter(),
        tmp_dir=str(tmp_path),
    )
    assert time.monotonic() - started < 6.0  # not the 10 s of the big file
    assert level4.files == 5 and level4.errors == 0 and level4.bytes >= 5 * 50_000
    assert list(tmp_path.iterdir()) == []


def test_a_level_stops_at_its_window_and_a_cut_entry_is_no_error(
    server: FaultServer, tmp_path: Path
) -> None:
    server.add("/slow", bytes(2_000_000), rate=200_000)
    sample = Sample(entries=(entry(server.url("/slow")),), bad_lines=0, listed=1)
    shown = RecordingReporter()
    started = time.monotonic()
    [level1] = sweep(
        sample,
        [1],
        fetch_options={},
        reporter_for=lambda _: shown,
        tmp_dir=str(tmp_path),
        window=1.0,
    )
    assert [r.status for r in shown.results] == [Status.INTERRUPTED]  # cut, not failed
    assert shown.finished is not None and shown.finished.counts.failed == 0
    assert time.monotonic() - started < 5.0
    assert level1.errors == 0 and level1.files == 0 and 0 < level1.bytes < 2_000_000
    assert level1.elapsed == pytest.approx(1.0, abs=0.5)


def test_plan_line_says_how_long_at_most_before_it_starts() -> None:
    assert plan_line(64, 300, [1, 2, 4, 8, 16, 32]) == (
        "pdl tune: 64 of 300 entries, once per level (-j 1,2,4,8,16,32): 384 downloads,"
        " at most 10 s a level (72 s in all)"
    )
    assert plan_line(64, 64, list(range(1, 21))).endswith("(4 min in all)")
