"""Scale-out on Dask: chunking and sharding as pure values, then runs on real Dask processes.

The cluster tests start a scheduler and two workers as separate processes on
127.0.0.1 (:mod:`tests.dask_cluster`) and always stop them. A run on the cluster
must give what a run in one process gives: the same names, files, lines, summary
and exit code. A worker killed mid-run loses nothing and costs no second full
download; a lost scheduler is a clear error that keeps the partial files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from downloader import UsageError, cli, fetch
from downloader.cluster import (
    MAX_CHUNK,
    ClusterRun,
    ClusterSpec,
    _Rows,
    chunk_size,
    chunked,
    worker_options,
)
from downloader.options import Options, Shard, parse_shard
from downloader.progress import NullReporter, TransferProgress
from downloader.results import Result, Status, Tally
from downloader.transfer import Job
from downloader.urllist import Entry
from downloader.worker import Relay, check_dest, from_wire, to_wire
from tests.dask_cluster import DaskCluster
from tests.server import FaultServer, wait_until

# -- chunks ----------------------------------------------------------------------------


def test_chunked_keeps_order_and_sizes() -> None:
    chunks = list(chunked(range(10), 4))
    assert chunks == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert list(chunked([], 4)) == []


def test_chunked_reads_lazily() -> None:
    """The list streams: a chunk is handed on before the next item is read."""
    read: list[int] = []

    def items() -> Iterator[int]:
        for n in range(100):
            read.append(n)
            yield n

    first = next(chunked(items(), 3))
    assert first == [0, 1, 2]
    assert read == [0, 1, 2]


@pytest.mark.parametrize(("jobs", "size"), [(1, 16), (8, 128), (256, MAX_CHUNK)])
def test_chunk_size_follows_jobs_within_bounds(jobs: int, size: int) -> None:
    assert chunk_size(jobs) == size


# -- shards ----------------------------------------------------------------------------


def test_parse_shard() -> None:
    assert parse_shard("2/8") == Shard(2, 8)
    assert parse_shard(" 1 / 1 ") == Shard(1, 1)
    for bad in ["0/4", "5/4", "1/0", "a/b", "3", "-1/4", "1/4/2"]:
        with pytest.raises(UsageError):
            parse_shard(bad)


def test_shards_partition_the_list() -> None:
    shards = [Shard(k, 5) for k in range(1, 6)]
    for ordinal in range(1000):
        assert sum(s.owns(ordinal) for s in shards) == 1


LIST = [
    "http://h/a/file.bin",
    "http://h/b/file.bin",  # collides with the first
    "http://h/c/file.bin out=other.bin",
    "http://h/d/file.bin",
    "http://h/e/x.bin dir=sub",
    "ftp://h/bad.bin",  # a bad line: counted in the list's order
    "http://h/f/file.bin",
    "http://h/g/x.bin dir=sub",
]


def plan(tmp_path: Path, shard: str | None) -> dict[str, str]:
    recorder = Recorder()
    fetch(LIST, dest=tmp_path, dry_run=True, shard=shard, reporter=recorder)
    return dict(recorder.planned_paths)


def test_every_shard_names_its_entries_as_the_whole_list_does(tmp_path: Path) -> None:
    whole = plan(tmp_path, None)
    parts = [plan(tmp_path, f"{k}/3") for k in (1, 2, 3)]
    merged: dict[str, str] = {}
    for part in parts:
        assert not set(part) & set(merged), "an entry in two shards"
        merged.update(part)
    assert merged == whole
    assert whole["http://h/d/file.bin"] == f"{tmp_path}/file.2.bin"


def test_shard_downloads_only_its_part(server: FaultServer, tmp_path: Path) -> None:
    names = [f"f{i}.bin" for i in range(7)]
    for name in names:
        server.add(f"/x/{name}", name.encode() * 100)
        server.add(f"/y/{name}", name.encode() * 200)
    urls = [server.url(f"/{d}/{n}") for n in names for d in ("x", "y")]  # pairs collide
    whole = fetch(urls, dest=tmp_path / "whole", jobs=4)
    together: dict[str, bytes] = {}
    for k in (1, 2):
        part = fetch(urls, dest=tmp_path / "parts", jobs=4, shard=f"{k}/2")
        assert len(part.results) == len(urls[k - 1 :: 2])
    for path in sorted((tmp_path / "parts").iterdir()):
        together[path.name] = path.read_bytes()
    assert together == {p.name: p.read_bytes() for p in (tmp_path / "whole").iterdir()}
    assert len(whole.ok) == len(urls)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"shard": "1/2", "on_exist": "rename"},
        {"shard": "1/2", "content_disposition": True},
        {"processes": 2, "content_disposition": True},
        {"processes": 2, "scheduler": "tcp://127.0.0.1:1"},
        {"processes": 0},
        {"scheduler": " "},
    ],
)
def test_combinations_that_cannot_work_are_usage_errors(
    kwargs: dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(UsageError):
        fetch(["http://h/a"], dest=tmp_path, **kwargs)


# -- what travels between the processes --------------------------------------------------


def job(url: str, rel: tuple[str, ...] = ("a.bin",)) -> Job:
    return Job(entry=Entry(url=url, source="list.txt:3"), rel=rel, fallback=rel)


def test_a_result_survives_the_wire(tmp_path: Path) -> None:
    result = Result(
        url="http://h/a.bin",
        source="list.txt:3",
        status=Status.OK,
        path="/elsewhere/sub/a.bin",
        bytes=10,
        elapsed=0.5,
        attempts=2,
        http_status=206,
        resumed_from=4,
        error=None,
    )
    row = json.loads(json.dumps(to_wire(7, result)))  # msgpack-able means plain values
    back = from_wire(row, job("http://h/a.bin", ("sub", "a.bin")), "dl")
    assert row[0] == 7
    assert back == Result(
        url="http://h/a.bin",
        source="list.txt:3",
        status=Status.OK,
        path="dl/sub/a.bin",  # spelled as the reading process spells its --dir
        bytes=10,
        elapsed=0.5,
        attempts=2,
        http_status=206,
        resumed_from=4,
    )


def test_worker_options_share_out_the_limits(tmp_path: Path) -> None:
    os.chdir(tmp_path)
    options = Options(dest=Path("dl"), limit_rate=1000, per_host=3)
    shared = worker_options(options, 2)
    assert shared.dest == tmp_path.resolve() / "dl"
    assert shared.limit_rate == 500
    assert shared.per_host == 1
    assert worker_options(Options(), 4).limit_rate is None


def test_relay_batches_results_messages_and_rows() -> None:
    sent: list[dict[str, Any]] = []
    relay = Relay(sent.append)
    row = relay.transfer_started(0)
    row.begin("a.bin", 100, 10)
    row.update(30)
    relay.finished(4, Result(url="u", source="s", status=Status.FAILED, error="HTTP 404"))
    relay.message("retry 1/5")
    relay.flush()
    assert sent[-1] == {
        "r": [[4, "failed", False, 0, 0.0, 0, None, 0, "HTTP 404", None, None]],
        "m": ["retry 1/5"],
        "p": [[0, "a.bin", 100, 10, 40]],
        "e": [],
    }
    row.update(60)
    relay.transfer_ended(0)
    quick = relay.transfer_started(0)  # begun and ended between two batches
    quick.begin("b.bin", 5, 0)
    quick.update(5)
    relay.transfer_ended(0)
    relay.close()  # a last batch: both ended rows, with their final bytes; then nothing more
    assert sent[-1] == {
        "r": [],
        "m": [],
        "p": [],
        "e": [[0, "a.bin", 100, 10, 100], [1, "b.bin", 5, 0, 5]],
    }
    count = len(sent)
    relay.flush()
    assert len(sent) == count


class Handle:
    def __init__(self, log: list[tuple[Any, ...]], slot: int) -> None:
        self.log, self.slot = log, slot

    def begin(self, name: str, total: int | None, initial: int) -> None:
        self.log.append(("begin", self.slot, name, total, initial))

    def update(self, n: int) -> None:
        self.log.append(("update", self.slot, n))


class Recorder(NullReporter):
    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []
        self.planned_paths: list[tuple[str, str]] = []

    def transfer_started(self, slot: int) -> TransferProgress:
        self.log.append(("started", slot))
        return Handle(self.log, slot)

    def transfer_ended(self, slot: int) -> None:
        self.log.append(("ended", slot))

    def planned(self, url: str, source: str, path: str) -> None:
        self.planned_paths.append((url, path))


def test_rows_mirror_the_workers_transfers_on_local_slots() -> None:
    recorder = Recorder()
    rows = _Rows(recorder)
    rows.update("w1", [[0, "a.bin", 100, 0, 10]])
    rows.update("w2", [[0, "b.bin", None, 5, 5]])
    rows.update("w1", [[0, "a.bin", 100, 0, 60]])
    rows.update(
        "w1", [[2, "c.bin", 50, 0, 1]], ended=[[0, "a.bin", 100, 0, 100], [1, "q", 3, 0, 3]]
    )
    rows.update("w2", [])
    rows.close()
    assert recorder.log == [
        ("started", 0),
        ("begin", 0, "a.bin", 100, 0),
        ("update", 0, 10),
        ("started", 1),
        ("begin", 1, "b.bin", None, 5),
        ("update", 0, 50),
        ("update", 0, 40),  # the last bytes of a.bin, then its row ends
        ("ended", 0),
        ("started", 0),  # a transfer seen only after it ended still counts its bytes
        ("begin", 0, "q", 3, 0),
        ("update", 0, 3),
        ("ended", 0),
        ("started", 0),  # the freed local slot is reused
        ("begin", 0, "c.bin", 50, 0),
        ("update", 0, 1),
        ("ended", 1),
        ("ended", 0),
    ]


def test_check_dest_says_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / ".probe").touch()
    assert check_dest(str(tmp_path), ".probe") is None
    assert check_dest(str(tmp_path / "nope"), ".probe") == "no such folder"
    problem = check_dest(str(tmp_path), ".other-probe")
    assert problem is not None and "does not hold the files" in problem
    assert list(tmp_path.iterdir()) == [tmp_path / ".probe"], "the check leaves nothing"


class FakeClient:
    """Only for the start-up check: a worker answers that it cannot use the folder."""

    def wait_for_workers(self, n: int, timeout: float) -> None:
        pass

    def run(self, function: Any, *args: Any) -> dict[str, str | None]:
        return {
            "tcp://10.0.0.7:4000": function(args[0], ".not-the-probe"),
            "tcp://10.0.0.8:4000": None,
        }


def test_a_worker_that_cannot_use_dest_is_named_in_a_clear_error(tmp_path: Path) -> None:
    options = Options(dest=tmp_path)
    run = ClusterRun(ClusterSpec(scheduler="tcp://x:1"), options, NullReporter(), *_state())
    with pytest.raises(UsageError, match=r"tcp://10\.0\.0\.7:4000 .*every worker can write"):
        run._prepare(FakeClient())  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == [], "the probe file is removed"


def _state() -> tuple[Any, Tally]:
    from downloader.cancel import CancelToken

    return CancelToken(), Tally()


# -- on real Dask processes ------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    with DaskCluster(tmp_path_factory.mktemp("dask")) as running:
        yield running


def pdl(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_PROXY": "*"}
    return subprocess.run(
        [sys.executable, "-m", "downloader", "fetch", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


def mixed_list(server: FaultServer, tmp_path: Path) -> Path:
    """Collisions, out=/dir=, a checksum, a 404 and a bad line: every naming rule at once."""
    lines = []
    for i in range(40):
        body = f"body {i} ".encode() * (50 + i)
        server.add(f"/d{i % 3}/file{i % 7}.bin", body)
        lines.append(server.url(f"/d{i % 3}/file{i % 7}.bin"))
    good = b"checked" * 100
    server.add("/sum.bin", good)
    lines.append(f"{server.url('/sum.bin')} out=sub/summed.bin")
    lines.append(f"  checksum=sha-256={hashlib.sha256(good).hexdigest()}")
    lines.append(f"{server.url('/missing.bin')} dir=sub")
    lines.append("gopher://nowhere/x")
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(lines) + "\n")
    return listing


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def lines_by_source(stdout: str) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in stdout.splitlines()]
    by_source = {row["source"]: row for row in rows}
    assert len(by_source) == len(rows), "an entry reported twice"
    for row in by_source.values():
        row.pop("elapsed")
    return by_source


def test_a_run_on_the_cluster_matches_a_run_in_one_process(
    cluster: DaskCluster, server: FaultServer, tmp_path: Path
) -> None:
    listing = mixed_list(server, tmp_path)
    here = pdl(str(listing), "-d", str(tmp_path / "here"), "-j", "3", "--json",
               "--failed", str(tmp_path / "here.txt"), "--retry-wait", "0")  # fmt: skip
    there = pdl(str(listing), "-d", str(tmp_path / "there"), "-j", "3", "--json",
                "--failed", str(tmp_path / "there.txt"), "--retry-wait", "0",
                "--scheduler", cluster.address)  # fmt: skip
    assert here.returncode == there.returncode == 1, there.stderr
    assert tree(tmp_path / "there") == tree(tmp_path / "here")
    ours, theirs = lines_by_source(here.stdout), lines_by_source(there.stdout)
    for row in ours.values():
        if row["path"]:
            row["path"] = row["path"].replace("/here/", "/there/")
    assert theirs == ours
    assert (tmp_path / "there.txt").read_text() == (tmp_path / "here.txt").read_text()
    summary = there.stderr[there.stderr.index("pdl: done:") :]
    assert summary.startswith("pdl: done: 22 ok, 0 skipped, 2 failed")  # 21 URLs listed twice
    assert "list.txt:44: unsupported scheme" in there.stderr and "  failed   2, each" in summary


def test_a_re_run_on_the_cluster_skips_what_is_there(
    cluster: DaskCluster, server: FaultServer, tmp_path: Path
) -> None:
    for i in range(20):
        server.add(f"/f{i}.bin", bytes([i]) * 5000)
    listing = tmp_path / "list.txt"
    listing.write_text("".join(server.url(f"/f{i}.bin") + "\n" for i in range(20)))
    first = pdl(str(listing), "-d", str(tmp_path / "dl"), "--scheduler", cluster.address)
    assert first.returncode == 0, first.stderr
    assert sorted(first.stdout.split()) == sorted(f"{tmp_path}/dl/f{i}.bin" for i in range(20))
    server.clear_requests()
    again = pdl(str(listing), "-d", str(tmp_path / "dl"), "--scheduler", cluster.address)
    assert again.returncode == 0, again.stderr
    assert "pdl: done: 0 ok, 20 skipped, 0 failed" in again.stderr
    assert server.requests == []


def test_processes_runs_a_local_cluster(server: FaultServer, tmp_path: Path) -> None:
    bodies = {f"p{i}.bin": os.urandom(3000 + i) for i in range(30)}
    for name, body in bodies.items():
        server.add(f"/{name}", body)
    listing = tmp_path / "list.txt"
    listing.write_text("".join(server.url(f"/{n}") + "\n" for n in bodies))
    done = pdl(str(listing), "-d", str(tmp_path / "dl"), "--processes", "2", "-j", "2")
    assert done.returncode == 0, done.stderr
    assert tree(tmp_path / "dl") == bodies
    assert len(done.stdout.splitlines()) == len(bodies)
    assert "pdl: done: 30 ok, 0 skipped, 0 failed" in done.stderr


def test_an_unreachable_scheduler_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("downloader.cluster.CONNECT_TIMEOUT", 1.0)
    runner = CliRunner()
    result = runner.invoke(
        cli.main,
        ["fetch", "http://127.0.0.1:9/a", "-d", str(tmp_path), "--scheduler", "tcp://127.0.0.1:9"],
    )
    assert result.exit_code == 2
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in result.output


# -- faults on the cluster --------------------------------------------------------------


def paced_files(
    server: FaultServer, tmp_path: Path, count: int, rate: float = 0.0
) -> tuple[Path, dict[str, bytes]]:
    """Files above 256 KiB (so a resume record exists before their first byte), served slowly."""
    bodies = {}
    for i in range(count):
        block = hashlib.sha256(str(i).encode()).digest()
        size = 300_000 + 7_919 * i
        bodies[f"f{i:02}.bin"] = (block * (size // 32 + 1))[:size]
        server.add(f"/{i}/f{i:02}.bin", bodies[f"f{i:02}.bin"], pace=0.004, rate=rate)
    listing = tmp_path / "list.txt"
    listing.write_text("".join(server.url(f"/{i}/f{i:02}.bin") + "\n" for i in range(count)))
    return listing, bodies


def spawn(*args: str, session: bool = False) -> subprocess.Popen[str]:
    """``pdl fetch ARGS`` in the background; ``session``: in a process group of its own."""
    env = {**os.environ, "NO_PROXY": "*"}
    return subprocess.Popen(
        [sys.executable, "-m", "downloader", "fetch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=session,
    )


def kept_prefixes(dest: Path, bodies: dict[str, bytes]) -> dict[str, int]:
    """Bytes kept of each file (final or ``.part``), each checked to be the file's first bytes."""
    kept = {}
    for name, body in bodies.items():
        final, part = dest / name, dest / f"{name}.part"
        data = final.read_bytes() if final.exists() else part.read_bytes() if part.exists() else b""
        assert data == body[: len(data)], f"{name}: what is kept is the file's first bytes"
        kept[name] = len(data)
    return kept


def assert_rerun_fetches_only_the_rest(
    server: FaultServer, listing: Path, dest: Path, bodies: dict[str, bytes], kept: dict[str, int]
) -> None:
    """A re-run in one process, at full speed: exact files, and only the missing bytes sent."""
    wait_until(lambda: server.active_connections() == 0, 20)
    for i, (name, body) in enumerate(bodies.items()):  # the same files (and ETags), unpaced
        server.add(f"/{i}/{name}", body)
    server.clear_requests()
    rerun = pdl(str(listing), "-d", str(dest), "-j", "4")
    assert rerun.returncode == 0, rerun.stderr
    assert tree(dest) == bodies
    missing = sum(len(body) - kept[name] for name, body in bodies.items())
    assert server.bytes_sent() == missing, "the re-run fetched only what was missing"


@pytest.mark.slow
def test_a_killed_worker_loses_nothing_and_fetches_nothing_twice(
    server: FaultServer, tmp_path: Path
) -> None:
    listing, bodies = paced_files(server, tmp_path, 32)
    total = sum(map(len, bodies.values()))
    dest = tmp_path / "dl"
    with DaskCluster(tmp_path / "dask", workers=2, nthreads=2) as fresh:
        proc = spawn(str(listing), "-d", str(dest), "-j", "4", "--json", "--retry-wait", "0",
                     "--scheduler", fresh.address)  # fmt: skip
        try:
            wait_until(lambda: server.bytes_sent() >= total // 4 or proc.poll() is not None, 60)
            assert proc.poll() is None, "the run ended before the worker could be killed"
            busy = fresh.busy_worker()
            assert busy is not None, "no worker was running a chunk"
            fresh.kill_worker(busy)
            out, err = proc.communicate(timeout=120)
        finally:
            proc.kill()
    assert proc.returncode == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert sorted(row["source"] for row in rows) == sorted(f"{listing}:{i}" for i in range(1, 33))
    assert {row["status"] for row in rows} <= {"ok", "skipped"}
    assert tree(dest) == bodies, "every file exact, and nothing else left"
    for name, body in bodies.items():
        path = f"/{int(name[1:3])}/{name}"
        assert server.bytes_sent(path) < 2 * len(body), f"{name} was fetched twice in full"
    resumed = [r for r in server.requests if r.header("Range")]
    assert resumed, "the killed worker's partial files were continued"


@pytest.mark.slow
def test_a_lost_scheduler_is_a_clear_error_that_keeps_the_partials(
    server: FaultServer, tmp_path: Path
) -> None:
    listing, bodies = paced_files(server, tmp_path, 16, rate=100_000)  # 3-4 s a file
    dest = tmp_path / "dl"
    with DaskCluster(tmp_path / "dask", workers=1, nthreads=2) as fresh:
        proc = spawn(str(listing), "-d", str(dest), "-j", "4", "--scheduler", fresh.address)
        try:
            wait_until(lambda: server.bytes_sent() >= 200_000 or proc.poll() is not None, 60)
            fresh.kill_scheduler()
            _out, err = proc.communicate(timeout=60)
        finally:
            proc.kill()
        fresh.kill_worker("w0")  # an orphaned worker goes on until its death timeout
    assert proc.returncode == 1, err
    assert "pdl: error: lost the Dask scheduler at" in err
    assert "Partial files are kept: run the same command again" in err
    assert "Traceback" not in err, err

    kept = kept_prefixes(dest, bodies)
    assert sum(kept.values()) < sum(map(len, bodies.values())), "the run was cut short"
    assert_rerun_fetches_only_the_rest(server, listing, dest, bodies, kept)


@pytest.mark.slow
def test_ctrl_c_in_a_terminal_stops_the_local_cluster_and_keeps_the_partials(
    server: FaultServer, tmp_path: Path
) -> None:
    """A terminal's Ctrl-C reaches the whole process group, the worker processes too."""
    listing, bodies = paced_files(server, tmp_path, 12, rate=200_000)
    dest = tmp_path / "dl"
    proc = spawn(str(listing), "-d", str(dest), "-j", "3", "--processes", "2", session=True)
    try:
        wait_until(lambda: server.bytes_sent() >= 300_000 or proc.poll() is not None, 60)
        os.killpg(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert "pdl: interrupted" in err
    assert "Traceback" not in err, err
    kept = kept_prefixes(dest, bodies)
    assert any(dest.glob("*.part")), "the running downloads kept their partial files"
    assert_rerun_fetches_only_the_rest(server, listing, dest, bodies, kept)


def test_the_list_streams_to_the_cluster_with_a_bounded_number_in_flight(
    cluster: DaskCluster, server: FaultServer, tmp_path: Path
) -> None:
    server.add("/small.bin", b"x" * 100)
    read = 0
    behind: list[int] = []  # entries read but not yet reported, at each result

    def entries() -> Iterator[str]:
        nonlocal read
        for i in range(600):
            read += 1
            yield f"{server.url('/small.bin')} out=f{i:04}.bin"

    class Watch(NullReporter):
        def result(self, result: Result, counts: Any) -> None:
            behind.append(read - (counts.ok + counts.skipped + counts.failed))

    report = fetch(
        entries(), dest=tmp_path, jobs=2, scheduler=cluster.address, reporter=Watch(),
        keep_results=False,
    )  # fmt: skip
    assert report.counts.ok == 600
    in_flight = 2 * 2 * cluster.nthreads  # two chunks per worker thread, two workers
    assert max(behind) <= (in_flight + 1) * chunk_size(2), "the list was read ahead unbounded"
    assert min(behind[:10]) < 600, "downloads began before the whole list was read"


def test_a_shard_on_the_cluster_is_the_same_part(
    cluster: DaskCluster, server: FaultServer, tmp_path: Path
) -> None:
    listing = mixed_list(server, tmp_path)
    here = pdl(str(listing), "-d", str(tmp_path / "here"), "--shard", "2/3", "--json")
    there = pdl(str(listing), "-d", str(tmp_path / "there"), "--shard", "2/3", "--json",
                "--scheduler", cluster.address)  # fmt: skip
    assert here.returncode == there.returncode, there.stderr
    assert tree(tmp_path / "there") == tree(tmp_path / "here") != {}
    ours, theirs = lines_by_source(here.stdout), lines_by_source(there.stdout)
    assert sorted(theirs) == sorted(ours)
