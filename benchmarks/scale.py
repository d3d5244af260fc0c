"""pdl's scale-out on a local Dask cluster (--processes N) against its threads alone, on nginx.

    python benchmarks/scale.py                        # all four parts, 3 reps
    python benchmarks/scale.py --parts throughput,startup --reps 5
    python benchmarks/scale.py --parts memory --memory-lines 100000,300000,1000000
    python benchmarks/scale.py --smoke --json         # tiny sizes, 1 rep (for the tests)

Parts (--parts, comma-separated):

throughput: 2,000 x 16 KiB and 20,000 x 4 KiB files from nginx on 127.0.0.1, each run as
  ``pdl fetch LIST -d OUT -q -j 8`` with threads only and with ``--processes N`` for each N
  of --processes (default 1,2), --reps times in a rotating order. Median wall time,
  files/s, CPU s (user+sys of pdl and all its processes, os.wait4), nginx's CPU s, the
  machine's busy cores during the run (/proc/stat: user, system, irq; not steal, the
  time the host of a virtual machine took), steal, and the CPU other processes took.
  Each run waits (up to --patience s) for other load under --quiet cores, and is run
  again (up to --tries runs) if other processes took more than that meanwhile.
  Every file is checked: name, size and sha256.
startup: the same modes for one 16 KiB file: the fixed cost of a local cluster.
cpu: one more run of each throughput scenario and mode, the reading process started by
  ``benchmarks/reader.py`` so that CPU is told apart by process and by thread: the
  reading process's main thread (reads the list, names, sends chunks, takes results),
  its "IO loop" thread (the Dask scheduler, the nannies and the client, which a local
  cluster runs there), its download threads (threads only), and in each worker
  process its main thread (the Dask worker's event loop) and its download threads.
memory: the peak memory (VmHWM) of the reading process alone (its worker processes are
  other processes) for lists of N lines (--memory-lines) of ``/tiny/fNNNNNNN`` URLs that
  nginx answers with one byte, with ``--processes 2`` and with threads only; per entry
  as the slope between the smallest and the largest list. Every entry is checked (ok,
  and exactly the list's names in the folder, each of 1 byte). A local cluster's
  scheduler runs in the reading process, so its memory is in the figure.

Downloads go to /dev/shm unless --disk DIR. Progress goes to stderr; the tables (or
--json) to stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.compare import install_missing, say  # noqa: E402
from benchmarks.corpus import SCENARIOS, KiB, Scenario, verify, write_corpus  # noqa: E402
from benchmarks.procstat import (  # noqa: E402
    Watch,
    Window,
    tree_cpu,
    wait_quiet,
)
from benchmarks.reader import THREADS_ENV, ReaderReport  # noqa: E402
from benchmarks.serve import Fallback, Nginx, Server, nginx_available  # noqa: E402
from benchmarks.tools import Job, Outcome, Tool, measure, pdl_at, pdl_env  # noqa: E402

T = TypeVar("T")

PARTS = ("throughput", "startup", "cpu", "memory")
FULL: dict[str, Scenario] = {
    "small": SCENARIOS["small"],
    "many": Scenario(name="many", count=20_000, size=4 * KiB, about="many tiny files"),
    "one": Scenario(name="one", count=1, size=16 * KiB, about="cluster start-up"),
}
SMOKE: dict[str, Scenario] = {  # no "many": each cluster start costs a smoke run 1.5 s
    "small": dataclasses.replace(FULL["small"], count=12, size=1 * KiB),
    "one": FULL["one"],
}
MEMORY_LINES = (100_000, 1_000_000)
SMOKE_MEMORY_LINES = (100, 300)


@dataclass(frozen=True, slots=True)
class Mode:
    """Threads only (``processes`` None) or a local cluster of that many worker processes."""

    processes: int | None

    @property
    def name(self) -> str:
        return "threads" if self.processes is None else f"--processes {self.processes}"

    def options(self) -> tuple[str, ...]:
        return () if self.processes is None else ("--processes", str(self.processes))


@dataclass(frozen=True, slots=True)
class Measured(Generic[T]):
    """One accepted run: what it gave, its wall time, and what the machine did meanwhile."""

    value: T
    wall: float
    window: Window
    nginx_cpu: float | None
    background: float  # cores busy just before the run
    tries: int


@dataclass(frozen=True, slots=True)
class Run:
    wall: float
    cpu: float  # pdl and every process below it
    nginx_cpu: float | None
    window: Window
    background: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    """One mode's row: medians of its runs (``None`` where it did not run)."""

    mode: str
    status: str
    note: str = ""
    wall_s: float | None = None
    walls_s: tuple[float, ...] = ()
    files_per_s: float | None = None
    cpu_s: float | None = None
    nginx_cpu_s: float | None = None
    busy_cores: float | None = None  # the machine's (all processes, irq; not steal)
    steal_s: float | None = None
    others_cpu_s: float | None = None  # the most that other processes took in one run
    others_s: tuple[float, ...] = ()  # what they took in each run (as walls_s)
    steals_s: tuple[float, ...] = ()
    speed_up: float | None = None  # threads only's wall time / this one's
    verified: bool = False


@dataclass
class Row:
    mode: str
    status: str = "ok"
    note: str = ""
    runs: list[Run] = field(default_factory=list)

    def wall(self) -> float | None:
        return statistics.median(r.wall for r in self.runs) if self.runs else None

    def summary(self, scenario: Scenario, base: float | None) -> Summary:
        wall = self.wall()
        if self.status != "ok" or wall is None:
            return Summary(mode=self.mode, status=self.status, note=self.note)
        nginx = [r.nginx_cpu for r in self.runs if r.nginx_cpu is not None]
        return Summary(
            mode=self.mode,
            status=self.status,
            wall_s=round(wall, 3),
            walls_s=tuple(round(r.wall, 3) for r in self.runs),
            files_per_s=round(scenario.count / wall, 1),
            cpu_s=round(statistics.median(r.cpu for r in self.runs), 3),
            nginx_cpu_s=round(statistics.median(nginx), 3) if nginx else None,
            busy_cores=round(statistics.median(r.window.busy / r.wall for r in self.runs), 2),
            steal_s=round(statistics.median(r.window.steal for r in self.runs), 2),
            others_cpu_s=round(max(r.window.others for r in self.runs), 2),
            others_s=tuple(round(r.window.others, 2) for r in self.runs),
            steals_s=tuple(round(r.window.steal, 2) for r in self.runs),
            speed_up=round(base / wall, 2) if base else None,
            verified=True,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class ScenarioResult:
    name: str
    label: str
    count: int
    size: int
    rows: list[Summary]


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerCpu:
    pid: int
    cpu_s: float  # the whole process, from its sampler's start (just after it began) to exit
    threads: dict[str, float]


@dataclass(frozen=True, slots=True, kw_only=True)
class CpuRow:
    """One run's CPU seconds, by process and by thread."""

    mode: str
    wall_s: float  # the reader process, start to exit
    busy_cores: float  # the machine's busy CPU seconds / wall
    machine_cpu_s: float  # busy: user, system, irq, softirq of every process and the kernel
    steal_s: float  # taken by the host of this virtual machine
    reader_cpu_s: float
    reader_threads: dict[str, float]
    children_cpu_s: float  # the worker processes and multiprocessing's helpers
    workers: list[WorkerCpu]
    nginx_cpu_s: float | None
    harness_cpu_s: float  # this script, waiting
    others_cpu_s: float  # other user-space processes
    kernel_cpu_s: float  # kernel threads
    rest_cpu_s: float  # busy less all of the above: irq and softirq time, short-lived others
    top_others: tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class CpuScenario:
    name: str
    label: str
    rows: list[CpuRow]


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryRun:
    lines: int
    vm_hwm_kib: int
    rss_before_kib: int
    ru_maxrss_kib: int
    wall_s: float
    entries_per_s: float
    cpu_self_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class MemoryResult:
    mode: str
    runs: list[MemoryRun]
    bytes_per_entry: float | None  # the slope between the smallest and the largest list


@dataclass(kw_only=True)
class Report:
    server: str
    downloads: str
    jobs: int
    reps: int
    machine: str
    throughput: list[ScenarioResult] = field(default_factory=list)
    startup: ScenarioResult | None = None
    startup_cost_s: dict[str, float] = field(default_factory=dict)
    cpu: list[CpuScenario] = field(default_factory=list)
    memory: list[MemoryResult] = field(default_factory=list)

    def failed(self) -> bool:
        scenarios = [*self.throughput, *([self.startup] if self.startup else [])]
        return any(row.status != "ok" for s in scenarios for row in s.rows)


@dataclass
class Bench:
    """What every part shares: the options, the server, the folders, the corpora's digests."""

    args: argparse.Namespace
    server: Server
    work: Path
    downloads: Path
    corpus: Path
    digests: dict[str, dict[str, str]]

    def nginx_cpu(self) -> float | None:
        return tree_cpu([self.server.pid]) if isinstance(self.server, Nginx) else None

    def quietly(self, what: str, go: Callable[[], tuple[T, float]]) -> Measured[T]:
        """Run *go* (it returns its value and wall time) when the machine is quiet.

        Waits (at most --patience s) for other load under --quiet cores, and runs again
        (at most --tries times in all) when other processes took more than that on average
        during the run. Not in smoke mode: a test runs once, busy machine or not.
        """
        tries = 1 if self.args.smoke else self.args.tries
        for attempt in range(1, tries + 1):
            background = wait_quiet(self.args.quiet, 0.0 if self.args.smoke else self.args.patience)
            nginx_before, watch = self.nginx_cpu(), Watch()
            value, wall = go()
            window = watch.stop()
            nginx = _delta(nginx_before, self.nginx_cpu())
            if window.others <= self.args.quiet * wall or attempt == tries:
                return Measured(value, wall, window, nginx, background, attempt)
            top = ", ".join(f"{name} {cpu:.1f} s" for name, cpu in window.top)
            say(f"  {what}: other processes took {window.others:.1f} CPU s ({top}); again")
        raise AssertionError("unreachable")

    def job(self, scenario: Scenario) -> Job:
        work = self.work / scenario.name
        work.mkdir(parents=True, exist_ok=True)
        return Job(
            scenario=scenario,
            base=f"http://127.0.0.1:{self.server.port}/{scenario.name}/",
            source=self.corpus / scenario.name,
            out=self.downloads / f"pdl-scale-{os.getpid()}-{scenario.name}",
            work=work,
            jobs=self.args.jobs,
            split=1,
        )

    def modes(self) -> list[Mode]:
        return [Mode(None), *(Mode(n) for n in self.args.processes)]


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


# -- throughput and start-up: the command line, measured whole --------------------------


def fresh(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def run_cli(bench: Bench, tool: Tool, job: Job, row: Row) -> None:
    def go() -> tuple[Outcome, float]:
        fresh(job.out)
        done = measure(tool.command(job), env=pdl_env(ROOT), cwd=job.work, log=job.work / "err")
        return done, done.wall

    measured = bench.quietly(f"{job.scenario.name} {row.mode}", go)
    outcome = measured.value
    fault: str | None
    if outcome.code != 0:
        fault = f"exit {outcome.code}: " + " / ".join(outcome.stderr.splitlines()[-3:])
    else:
        fault = verify(job.out, job.scenario, bench.digests[job.scenario.name])
    shutil.rmtree(job.out, ignore_errors=True)
    if fault:
        row.status, row.note = "failed", fault
        say(f"  {row.mode} FAILED: {fault}")
        return
    run = Run(outcome.wall, outcome.cpu, measured.nginx_cpu, measured.window, measured.background)
    row.runs.append(run)


def run_scenario(bench: Bench, scenario: Scenario) -> ScenarioResult:
    """Every mode, --reps times, the order rotating by one each repetition."""
    job = bench.job(scenario)
    modes = bench.modes()
    tools = {m.name: pdl_at(ROOT, m.name, extra=m.options()) for m in modes}
    rows = {m.name: Row(m.name) for m in modes}
    for rep in range(bench.args.reps):
        shift = rep % len(modes)
        for mode in modes[shift:] + modes[:shift]:
            if rows[mode.name].status == "ok":
                run_cli(bench, tools[mode.name], job, rows[mode.name])
        say(f"  {scenario.name} rep {rep + 1}/{bench.args.reps} done")
    base = rows["threads"].wall()
    return ScenarioResult(
        name=scenario.name,
        label=scenario.label(),
        count=scenario.count,
        size=scenario.size,
        rows=[row.summary(scenario, base) for row in rows.values()],
    )


def startup_costs(one: ScenarioResult) -> dict[str, float]:
    """Each cluster mode's median wall time for one file, less the threads-only one."""
    base = one.rows[0].wall_s
    return {
        row.mode: round(row.wall_s - base, 3)
        for row in one.rows[1:]
        if row.wall_s is not None and base is not None
    }


# -- cpu: who spends it -----------------------------------------------------------------


def run_reader(
    bench: Bench, listing: Path, out: Path, mode: Mode, *, threads: bool
) -> tuple[ReaderReport, float]:
    """One run through benchmarks/reader.py: its report, and its wall time start to exit."""
    saved = bench.work / "reader.json"
    argv = [sys.executable, "-m", "benchmarks.reader", "--list", str(listing)]
    argv += ["--dest", str(out), "--jobs", str(bench.args.jobs), "--save", str(saved)]
    if mode.processes is not None:
        argv += ["--processes", str(mode.processes)]
    if threads:
        argv.append("--threads")
    started = time.perf_counter()
    done = subprocess.run(
        argv, cwd=ROOT, env=pdl_env(ROOT), stdin=subprocess.DEVNULL, capture_output=True
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        said = " / ".join(done.stderr.decode(errors="replace").strip().splitlines()[-3:])
        raise SystemExit(f"{' '.join(argv)} failed (exit {done.returncode}): {said}")
    return ReaderReport.load(saved), wall


def _rounded(cpu: dict[str, float]) -> dict[str, float]:
    return {name: round(s, 2) for name, s in cpu.items() if s >= 0.005}


def cpu_breakdown(bench: Bench, scenario: Scenario, mode: Mode) -> CpuRow:
    job = bench.job(scenario)
    spool = bench.work / "threads"

    def go() -> tuple[ReaderReport, float]:
        fresh(job.out)
        fresh(spool)
        os.environ[THREADS_ENV] = str(spool)  # inherited by the reader and its workers
        try:
            return run_reader(bench, job.url_list(), job.out, mode, threads=True)
        finally:
            del os.environ[THREADS_ENV]

    measured = bench.quietly(f"cpu {scenario.name} {mode.name}", go)
    report, wall, window, nginx = measured.value, measured.wall, measured.window, measured.nginx_cpu
    fault = verify(job.out, scenario, bench.digests[scenario.name])
    shutil.rmtree(job.out, ignore_errors=True)
    if fault:
        raise SystemExit(f"cpu run {scenario.name} {mode.name}: {fault}")
    workers = []
    for path in sorted(spool.glob("worker-*.json")):
        saved = json.loads(path.read_text())
        workers.append(
            WorkerCpu(
                pid=int(saved["pid"]),
                cpu_s=round(float(saved["cpu_s"]), 2),
                threads=_rounded(saved["threads"]),
            )
        )
    ours = report.cpu_self_s + report.cpu_children_s + (nginx or 0.0) + window.harness
    return CpuRow(
        mode=mode.name,
        wall_s=round(wall, 3),
        busy_cores=round(window.busy / wall, 2),
        machine_cpu_s=round(window.busy, 2),
        steal_s=round(window.steal, 2),
        reader_cpu_s=round(report.cpu_self_s, 2),
        reader_threads=_rounded(report.threads),
        children_cpu_s=round(report.cpu_children_s, 2),
        workers=workers,
        nginx_cpu_s=round(nginx, 2) if nginx is not None else None,
        harness_cpu_s=round(window.harness, 2),
        others_cpu_s=round(window.others, 2),
        kernel_cpu_s=round(window.kernel, 2),
        rest_cpu_s=round(window.busy - ours - window.others - window.kernel, 2),
        top_others=window.top,
    )


# -- memory: the reading process alone ---------------------------------------------------


def tiny_names(lines: int) -> Iterator[str]:
    return (f"f{i:07d}" for i in range(1, lines + 1))


def memory(bench: Bench) -> list[MemoryResult]:
    """Each engine over each list length: the reading process's peak, and the slope."""
    lines = sorted(bench.args.memory_lines)
    base = f"http://127.0.0.1:{bench.server.port}/tiny/"
    lists: dict[int, Path] = {}
    for n in lines:
        lists[n] = bench.work / f"tiny-{n}.txt"
        with lists[n].open("w") as handle:
            handle.writelines(base + name + "\n" for name in tiny_names(n))
    out = bench.downloads / f"pdl-scale-{os.getpid()}-tiny"
    results = []
    engines = [Mode(bench.args.memory_processes), Mode(None)]
    for mode in engines[:1] if bench.args.memory_no_threads else engines:
        runs = []
        for n in lines:
            shutil.rmtree(out, ignore_errors=True)
            say(f"  memory: {mode.name}, {n:,} lines ...")
            report, wall = run_reader(bench, lists[n], out, mode, threads=False)
            fault = check_tiny(out, n, report)
            shutil.rmtree(out, ignore_errors=True)
            if fault:
                raise SystemExit(f"memory run {mode.name} {n} lines: {fault}")
            runs.append(
                MemoryRun(
                    lines=n,
                    vm_hwm_kib=report.vm_hwm_kib,
                    rss_before_kib=report.rss_before_kib,
                    ru_maxrss_kib=report.ru_maxrss_kib,
                    wall_s=round(wall, 1),
                    entries_per_s=round(n / report.wall_s),
                    cpu_self_s=round(report.cpu_self_s, 1),
                )
            )
            say(f"    peak {report.vm_hwm_kib / 1024:.1f} MiB, {wall:.0f} s")
        first, last = runs[0], runs[-1]
        slope = None
        if last.lines != first.lines:
            grown = (last.vm_hwm_kib - first.vm_hwm_kib) * 1024
            slope = round(grown / (last.lines - first.lines), 1)
        results.append(MemoryResult(mode=mode.name, runs=runs, bytes_per_entry=slope))
    for path in lists.values():
        path.unlink()
    return results


def check_tiny(out: Path, lines: int, report: ReaderReport) -> str | None:
    """Every entry ok, and the folder holds exactly the list's names, each the 1-byte body."""
    if report.ok != lines or report.failed or report.skipped:
        return f"ok {report.ok}, failed {report.failed}, skipped {report.skipped}"
    names = set()
    with os.scandir(out) as found:
        for entry in found:
            size = entry.stat().st_size
            if size != 1:
                return f"{entry.name} has {size} bytes, not 1"
            names.add(entry.name)
    if names != set(tiny_names(lines)):
        return f"{len(names)} files, not the list's {lines} names"
    return None


# -- the report ----------------------------------------------------------------------------


def _table(head: Sequence[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(cells) + " |" for cells in rows]


def _num(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def _cells(row: Summary) -> list[str]:
    if row.status != "ok":
        return [row.mode, *["-"] * 8, f"{row.status} {row.note}"]
    return [
        row.mode,
        _num(row.wall_s),
        _num(row.files_per_s, ",.0f"),
        _num(row.cpu_s),
        _num(row.nginx_cpu_s),
        _num(row.busy_cores),
        _num(row.steal_s),
        _num(row.others_cpu_s),
        _num(row.speed_up) + "x",
        "verified",
    ]


SUMMARY_HEAD = ("mode", "wall s", "files/s", "cpu s", "nginx cpu s", "busy cores", "steal s")
CPU_HEAD = ("mode", "wall s", "busy cores", "busy s", "steal s", "reader s", "children s")
CPU_TAIL = ("nginx s", "harness s", "others s", "kernel s", "rest s")


def _cpu_lines(scen: CpuScenario) -> list[str]:
    cells = [
        [
            r.mode,
            _num(r.wall_s),
            _num(r.busy_cores),
            _num(r.machine_cpu_s),
            _num(r.steal_s),
            _num(r.reader_cpu_s),
            _num(r.children_cpu_s),
            _num(r.nginx_cpu_s),
            _num(r.harness_cpu_s),
            _num(r.others_cpu_s),
            _num(r.kernel_cpu_s),
            _num(r.rest_cpu_s),
        ]
        for r in scen.rows
    ]
    lines = ["", f"cpu by process and thread, one run: {scen.name}: {scen.label}"]
    lines += _table((*CPU_HEAD, *CPU_TAIL), cells)
    for r in scen.rows:
        threads = ", ".join(f"{k} {v:.2f}" for k, v in r.reader_threads.items()) or "-"
        top = ", ".join(f"{name} {cpu:.2f}" for name, cpu in r.top_others) or "-"
        lines.append(f"  {r.mode}: reader threads: {threads}; others, kernel threads: {top}")
        for w in r.workers:
            threads = ", ".join(f"{k} {v:.2f}" for k, v in w.threads.items()) or "-"
            lines.append(f"    worker {w.pid} ({w.cpu_s:.2f} s): {threads}")
    return lines


def table(report: Report) -> str:
    lines = [
        f"server {report.server}, downloads in {report.downloads}, -j {report.jobs} per "
        f"process, median of {report.reps} run(s), {report.machine}",
    ]
    for scen in [*report.throughput, *([report.startup] if report.startup else [])]:
        lines += ["", f"{scen.name}: {scen.label}"]
        head = (*SUMMARY_HEAD, "others s", "speed-up", "check")
        lines += _table(head, [_cells(r) for r in scen.rows])
    if report.startup_cost_s:
        lines += ["", "cluster start-up (one file: median wall time less threads only's):"]
        lines += [f"  {mode}: +{cost:.2f} s" for mode, cost in report.startup_cost_s.items()]
    for cpu in report.cpu:
        lines += _cpu_lines(cpu)
    if report.memory:
        lines += ["", "peak memory (VmHWM) of the reading process alone:"]
    for engine in report.memory:
        runs = ", ".join(
            f"{r.lines:,} lines {r.vm_hwm_kib / 1024:.1f} MiB ({r.wall_s:.0f} s)"
            for r in engine.runs
        )
        slope = engine.bytes_per_entry
        per = f"{slope:.0f} bytes per entry" if slope is not None else "one list only"
        lines.append(f"  {engine.mode}: {per}; {runs}")
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(n) for n in text.split(",")]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(__doc__ or "").split("\n\n", 1)[1],
    )
    add = parser.add_argument
    add("--parts", default=",".join(PARTS), help=f"comma-separated, of {', '.join(PARTS)}")
    add("--reps", type=int, help="repetitions (median is shown); default 3, smoke 1")
    add("--scenarios", default="small,many", help="throughput and cpu scenarios: small, many")
    add("-j", "--jobs", type=int, default=8, help="download threads per process")
    add("--processes", type=_ints, help="cluster sizes besides threads only (default 1,2)")
    add("--memory-lines", type=_ints, help="list lengths, memory part (default 100000,1000000)")
    add("--memory-processes", type=int, default=2, help="cluster size in the memory part")
    add("--memory-no-threads", action="store_true", help="memory part: the cluster only")
    add("--quiet", type=float, default=0.05, help="cores of other load a run waits to fall under")
    add("--patience", type=float, default=300.0, help="seconds a run waits for that at most")
    add("--tries", type=int, default=4, help="runs at most, while other load disturbs them")
    add("--disk", type=Path, help="download to this folder on disk instead of /dev/shm")
    add("--tmp", type=Path, help="folder for corpora, lists and (without --disk) downloads")
    add("--json", action="store_true", help="print JSON instead of the tables")
    add("--save", type=Path, help="also write the JSON report to this file")
    add("--smoke", action="store_true", help="tiny sizes, 1 rep, no apt-get; for the tests")
    add("--python-server", action="store_true", help="serve with the test server, not nginx")
    add("--no-install", action="store_true", help="never apt-get")
    args = parser.parse_args(argv)
    args.parts = args.parts.split(",")
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part {unknown[0]!r}; choose from {', '.join(PARTS)}")
    known = set(FULL) - {"one"}
    if not set(args.scenarios.split(",")) <= known:
        parser.error(f"--scenarios: choose from {', '.join(sorted(known))}")
    args.reps = args.reps or (1 if args.smoke else 3)
    args.processes = args.processes or ([2] if args.smoke else [1, 2])
    args.memory_lines = args.memory_lines or list(
        SMOKE_MEMORY_LINES if args.smoke else MEMORY_LINES
    )
    if args.tmp is None:
        shm = Path("/dev/shm")
        args.tmp = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    return args


def start_server(
    args: argparse.Namespace, scenarios: list[Scenario], corpus: Path, work: Path
) -> Server:
    if nginx_available() and not args.python_server:
        return Nginx(corpus, work / "nginx", scenarios, tiny=True)
    if args.smoke or args.python_server:
        names = tiny_names(max(args.memory_lines)) if "memory" in args.parts else ()
        return Fallback(corpus, scenarios, tiny=names)
    raise SystemExit("nginx is not installed (apt-get install nginx)")


def run_parts(bench: Bench, report: Report, table_: dict[str, Scenario]) -> None:
    parts = bench.args.parts
    heavy = [table_[name] for name in bench.args.scenarios.split(",") if name in table_]
    if "throughput" in parts:
        for scenario in heavy:
            say(f"throughput: {scenario.label()}")
            report.throughput.append(run_scenario(bench, scenario))
    if "startup" in parts:
        say("startup: one file")
        report.startup = run_scenario(bench, table_["one"])
        report.startup_cost_s = startup_costs(report.startup)
    if "cpu" in parts:
        for scenario in heavy:
            say(f"cpu: {scenario.label()}")
            rows = [cpu_breakdown(bench, scenario, mode) for mode in bench.modes()]
            report.cpu.append(CpuScenario(name=scenario.name, label=scenario.label(), rows=rows))
    if "memory" in parts:
        say("memory: lists of " + ", ".join(f"{n:,}" for n in bench.args.memory_lines) + " lines")
        report.memory = memory(bench)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not (args.smoke or args.no_install):
        install_missing([], need_nginx=True)
    table_ = SMOKE if args.smoke else FULL
    heavy = [table_[name] for name in args.scenarios.split(",") if name in table_]
    wanted = heavy if {"throughput", "cpu"} & set(args.parts) else []
    wanted += [table_["one"]] if "startup" in args.parts else []
    top = Path(tempfile.mkdtemp(prefix="pdl-scale-", dir=args.tmp))
    top.chmod(0o755)
    corpus, work = top / "corpus", top / "work"
    server: Server | None = None
    try:
        digests = {}
        for scenario in wanted:
            say(f"writing the {scenario.name} corpus: {scenario.label()}")
            digests[scenario.name] = write_corpus(scenario, corpus)
        corpus.mkdir(parents=True, exist_ok=True)
        corpus.chmod(0o755)
        server = start_server(args, wanted, corpus, work)
        bench = Bench(args, server, work, args.disk or top, corpus, digests)
        report = Report(
            server=server.name,
            downloads=str(bench.downloads),
            jobs=args.jobs,
            reps=args.reps,
            machine=f"{os.cpu_count()} cpus, Python {platform.python_version()}",
        )
        run_parts(bench, report, table_)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(top, ignore_errors=True)
    as_json = json.dumps(dataclasses.asdict(report), indent=2)
    if args.save:
        args.save.write_text(as_json + "\n")
    print(as_json if args.json else table(report))
    return 1 if report.failed() else 0


if __name__ == "__main__":
    sys.exit(main())
