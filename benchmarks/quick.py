"""Quick, self-contained measurements of pdl (no nginx, no peers; see issue 5 for those).

    python benchmarks/quick.py latency [--files 500] [--size 65536] [--delay 0.02] [--jobs 1,8]
    python benchmarks/quick.py dry-run [--lines 1000000]
    python benchmarks/quick.py bars [--files 2000] [--size 4096] [--jobs 8] [--repeat 5]
    python benchmarks/quick.py rate [--rate 4M] [--seconds 10] [--jobs 4]

``latency`` serves N files from the project's threaded test server, each answered
after a delay, and times ``pdl fetch`` at each ``-j`` (wall, CPU, peak RSS of the
pdl process, median of --repeat runs), checking every file. ``dry-run`` times
``pdl fetch --dry-run`` over a generated list and reports its peak RSS. ``bars``
times many small files with ``--progress`` and ``--no-progress``, stderr on a pty
that is read as a terminal would (runs interleaved, medians compared). ``rate``
downloads ``--seconds`` worth of ``--rate`` over ``--jobs`` workers with
``--limit-rate`` and reports the rate achieved (start-up excluded).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import pty
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.tools import measure  # noqa: E402
from tests.server import FaultServer  # noqa: E402


def run_pdl(args: list[str]) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and peak RSS (KiB) of one ``pdl`` process."""
    with tempfile.TemporaryDirectory(prefix="pdl-quick-") as scratch:
        done = measure(
            [sys.executable, "-m", "downloader", *args],
            env=None,
            cwd=ROOT,
            log=Path(scratch) / "stderr.txt",
        )
    if done.stderr:
        print(done.stderr, file=sys.stderr)
    return done.wall, done.cpu, done.rss_kib


@contextlib.contextmanager
def served(
    tmp: str | None, names: list[str], body: bytes, delay: float = 0.0
) -> Iterator[tuple[Path, Path]]:
    """Serve ``body`` under each name from the test server; yields (work folder, URL list)."""
    work = Path(tempfile.mkdtemp(prefix="pdl-bench-", dir=tmp))
    server = FaultServer()
    try:
        for name in names:
            server.add(f"/{name}", body, delay=delay)
        listing = work / "urls.txt"
        listing.write_text("".join(server.url(f"/{n}") + "\n" for n in names))
        yield work, listing
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def check(out: Path, names: list[str], body: bytes) -> None:
    """Every file downloaded, byte for byte, or the measurement does not count."""
    bad = [n for n in names if not (out / n).is_file() or (out / n).read_bytes() != body]
    if bad:
        raise SystemExit(f"{len(bad)} files missing or wrong in {out}, e.g. {bad[0]}")


def latency(args: argparse.Namespace) -> None:
    body = hashlib.sha256(b"pdl").digest() * (args.size // 32)
    names = [f"f{i:05d}.bin" for i in range(args.files)]
    with served(args.tmp, names, body, args.delay) as (work, listing):
        print(
            f"{args.files} files x {args.size} B, {args.delay * 1000:.0f} ms delay each, "
            f"downloads in {work}, median of {args.repeat}"
        )
        print(f"{'jobs':>5} {'wall s':>8} {'cpu s':>7} {'files/s':>8} {'speed-up':>9}")
        base = None
        for jobs in (int(j) for j in args.jobs.split(",")):
            walls, cpus = [], []
            for _ in range(args.repeat):
                out = work / "out"
                shutil.rmtree(out, ignore_errors=True)
                wall, cpu, _rss = run_pdl(
                    ["fetch", str(listing), "-j", str(jobs), "-d", str(out), "-q"]
                )
                check(out, names, body)
                walls.append(wall)
                cpus.append(cpu)
            wall = statistics.median(walls)
            base = base or wall
            print(
                f"{jobs:>5} {wall:>8.2f} {statistics.median(cpus):>7.2f} "
                f"{args.files / wall:>8.0f} {base / wall:>8.1f}x"
            )


def rate(args: argparse.Namespace) -> None:
    """``--limit-rate`` accuracy: the bytes of N seconds at RATE should take N seconds."""
    from downloader.options import parse_rate

    limit = parse_rate(args.rate)
    files = max(args.jobs * 2, 8)
    body = hashlib.sha256(b"rate").digest() * (int(limit * args.seconds / files) // 32)
    names = [f"r{i}.bin" for i in range(files)]
    with served(args.tmp, names, body) as (work, listing):
        start_up, _cpu, _rss = run_pdl(["--version"])
        out = work / "out"
        run = ["fetch", str(listing), "-j", str(args.jobs), "--limit-rate", args.rate, "-q"]
        wall, _cpu, _rss = run_pdl([*run, "-d", str(out)])
        check(out, names, body)
        moved = files * len(body)
        achieved = moved / (wall - start_up)
        print(
            f"--limit-rate {args.rate} ({limit} B/s), {files} files over -j {args.jobs}: "
            f"{moved / 2**20:.1f} MiB in {wall:.2f} s ({start_up:.2f} s of it start-up); "
            f"achieved {achieved / 2**20:.2f} MiB/s, {100 * (achieved / limit - 1):+.1f}%"
        )


def dry_run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="pdl-bench-", dir=args.tmp))
    try:
        listing = work / "urls.txt"
        with listing.open("w") as handle:
            for i in range(args.lines):
                handle.write(f"https://example.org/data/{i // 1000}/file-{i}.bin\n")
        wall, cpu, rss = run_pdl(["fetch", "--dry-run", str(listing), "-d", str(work / "out")])
        print(
            f"--dry-run over {args.lines} lines: wall {wall:.1f} s, cpu {cpu:.1f} s, "
            f"peak RSS {rss / 1024:.0f} MiB, {wall / args.lines * 1e6:.1f} us/line"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def drained_pty() -> Iterator[int]:
    """A pty slave to write to; its master is read (and dropped) by a thread, as a terminal."""
    master, slave = pty.openpty()
    received = [0]

    def drain() -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(master, 65536):
                received[0] += len(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        yield slave
    finally:
        os.close(slave)
        reader.join(timeout=5)
        os.close(master)


def run_on_tty(args: list[str], tty: int) -> tuple[float, float]:
    """Wall and CPU seconds of one ``pdl`` process whose stderr is the pty ``tty``."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "downloader", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=tty,
        cwd=ROOT,
    )
    _pid, _status, usage = os.wait4(proc.pid, 0)
    proc.returncode = 0
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime


def bar_costs() -> None:
    """The bars' own work, in-process and free of the machine's load: one paint of 16
    rows, and what one small file costs (busy, begin, update, idle, set_done)."""
    from downloader.bars import Bars, Size

    with open(os.devnull, "w", encoding="utf-8") as sink:
        bars = Bars(sink, size=lambda: Size(100, 24), painter=False)
        bars.start(16)
        bars.set_total(200)
        for slot in range(16):
            bars.busy(slot).begin(f"part-{slot:03d}.tar.gz", 900_000, 0)
            bars.slot(slot).update(300_000)
        started = time.perf_counter()
        for _ in range(1000):
            bars.paint(force=True)
        paint = (time.perf_counter() - started) / 1000
        started = time.perf_counter()
        for i in range(100_000):
            handle = bars.busy(i % 16)
            handle.begin("x.bin", 4096, 0)
            handle.update(4096)
            bars.idle(i % 16)
            bars.set_done(i, 0)
        per_file = (time.perf_counter() - started) / 100_000
    print(
        f"one paint of 16 rows: {paint * 1e3:.2f} ms ({paint * 4:.2%} of a core at 4 a second); "
        f"per file: {per_file * 1e6:.1f} us"
    )


def bars(args: argparse.Namespace) -> None:
    body = hashlib.sha256(b"pdl").digest() * max(1, args.size // 32)
    names = [f"f{i:05d}.bin" for i in range(args.files)]
    with served(args.tmp, names, body) as (work, listing):
        walls: dict[str, list[float]] = {"--progress": [], "--no-progress": []}
        cpus: dict[str, list[float]] = {"--progress": [], "--no-progress": []}
        with drained_pty() as tty:
            for _ in range(args.repeat):
                for mode in walls:  # interleaved, so drift in the machine's load hits both
                    out = work / "out"
                    shutil.rmtree(out, ignore_errors=True)
                    run = ["fetch", str(listing), "-j", str(args.jobs), "-d", str(out), mode]
                    wall, cpu = run_on_tty(run, tty)
                    check(out, names, body)
                    walls[mode].append(wall)
                    cpus[mode].append(cpu)
        print(
            f"{args.files} files x {len(body)} B, -j {args.jobs}, stderr on a pty, "
            f"median of {args.repeat} interleaved runs"
        )
        print(f"{'mode':>14} {'wall s':>8} {'cpu s':>7} {'files/s':>8}")
        rate = {}
        for mode in walls:
            wall = statistics.median(walls[mode])
            rate[mode] = args.files / wall
            cpu = statistics.median(cpus[mode])
            print(f"{mode:>14} {wall:>8.2f} {cpu:>7.2f} {rate[mode]:>8.0f}")
        cost = 1 - rate["--progress"] / rate["--no-progress"]
        print(f"bars cost {cost:+.1%} of throughput")
        bar_costs()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tmp", default=None, help="folder for lists and downloads")
    sub = parser.add_subparsers(dest="what", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--files", type=int, default=500)
    lat.add_argument("--size", type=int, default=64 * 1024)
    lat.add_argument("--delay", type=float, default=0.02)
    lat.add_argument("--jobs", default="1,8")
    lat.add_argument("--repeat", type=int, default=3)
    dry = sub.add_parser("dry-run")
    dry.add_argument("--lines", type=int, default=1_000_000)
    bar = sub.add_parser("bars")
    bar.add_argument("--files", type=int, default=2000)
    bar.add_argument("--size", type=int, default=4096)
    bar.add_argument("--jobs", type=int, default=8)
    bar.add_argument("--repeat", type=int, default=5)
    lim = sub.add_parser("rate")
    lim.add_argument("--rate", default="4M")
    lim.add_argument("--seconds", type=float, default=10.0)
    lim.add_argument("--jobs", type=int, default=4)
    args = parser.parse_args()
    {"latency": latency, "dry-run": dry_run, "bars": bars, "rate": rate}[args.what](args)


if __name__ == "__main__":
    main()
