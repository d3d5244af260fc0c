"""Quick, self-contained measurements of pdl (no nginx, no peers; see issue 5 for those).

    python benchmarks/quick.py latency [--files 500] [--size 65536] [--delay 0.02] [--jobs 1,8]
    python benchmarks/quick.py dry-run [--lines 1000000]

``latency`` serves N files from the project's threaded test server, each answered
after a delay, and times ``pdl fetch`` at each ``-j`` (wall, CPU, peak RSS of the
pdl process, median of --repeat runs), checking every file. ``dry-run`` times
``pdl fetch --dry-run`` over a generated list and reports its peak RSS.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import sys
import tempfile
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


def latency(args: argparse.Namespace) -> None:
    body = hashlib.sha256(b"pdl").digest() * (args.size // 32)
    work = Path(tempfile.mkdtemp(prefix="pdl-bench-", dir=args.tmp))
    server = FaultServer()
    try:
        names = [f"f{i:05d}.bin" for i in range(args.files)]
        for name in names:
            server.add(f"/{name}", body, delay=args.delay)
        listing = work / "urls.txt"
        listing.write_text("".join(server.url(f"/{n}") + "\n" for n in names))
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
                bad = [n for n in names if (out / n).read_bytes() != body]
                if bad:
                    raise SystemExit(f"{len(bad)} files wrong, e.g. {bad[0]}")
                walls.append(wall)
                cpus.append(cpu)
            wall = statistics.median(walls)
            base = base or wall
            print(
                f"{jobs:>5} {wall:>8.2f} {statistics.median(cpus):>7.2f} "
                f"{args.files / wall:>8.0f} {base / wall:>8.1f}x"
            )
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


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
    args = parser.parse_args()
    {"latency": latency, "dry-run": dry_run}[args.what](args)


if __name__ == "__main__":
    main()
