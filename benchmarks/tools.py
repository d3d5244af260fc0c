"""The contenders: pdl, its peers, and two physical limits, each as a command line for one run."""

from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.corpus import Scenario

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One scenario's run: where the files are served and read from, where they go."""

    scenario: Scenario
    base: str  # http://127.0.0.1:PORT/<scenario>/
    source: Path  # the corpus folder (for the plain copy)
    out: Path  # the tool writes its files here
    work: Path  # list and config files
    jobs: int
    split: int
    ca: Path | None = None  # the CA bundle to verify the server with (https scenarios)

    def urls(self) -> list[tuple[str, str]]:
        return [(self.base + name, name) for name in self.scenario.names()]

    def url_list(self) -> Path:
        path = self.work / "urls.txt"
        if not path.exists():
            path.write_text("".join(url + "\n" for url, _ in self.urls()))
        return path

    def ranges(self) -> list[tuple[int, int]]:
        size, n = self.scenario.size, max(1, self.split)
        bounds = [size * i // n for i in range(n + 1)]
        return [(a, b - 1) for a, b in itertools.pairwise(bounds) if b > a]


@dataclass(frozen=True, slots=True)
class Outcome:
    wall: float
    cpu: float
    rss_kib: int
    code: int
    stderr: str


GNU_TIME = Path("/usr/bin/time")


def rss_source() -> str:
    if GNU_TIME.exists():
        return "GNU time %M (the tool's own peak)"
    return "os.wait4 (at least the harness's own RSS: the kernel keeps it across exec)"


def measure(argv: list[str], *, env: dict[str, str] | None, cwd: Path, log: Path) -> Outcome:
    """Run *argv*; wall time, user+sys CPU and peak RSS of it and its children.

    CPU comes from os.wait4. A child's peak RSS as wait4 reports it is never below the
    RSS of the process that forked it (Linux carries the old memory's high-water mark
    across exec), so the tool is started by GNU time, a small process, when there is one.
    """
    stats = log.with_suffix(".time")
    wrapper = [str(GNU_TIME), "-f", "%M", "-o", str(stats)] if GNU_TIME.exists() else []
    with open(log, "w+b") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(
            [*wrapper, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=cwd,
            env=env,
        )
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read()[-2000:].decode(errors="replace").strip()
    rss = usage.ru_maxrss
    if wrapper:
        lines = stats.read_text().split()
        rss = int(lines[-1]) if lines and lines[-1].isdigit() else rss
    cpu = usage.ru_utime + usage.ru_stime
    return Outcome(wall, cpu, rss, proc.returncode, tail)


@dataclass(frozen=True, slots=True, kw_only=True)
class Tool:
    name: str
    binary: str  # what must be on PATH
    package: str  # the Debian package that has it
    command: Callable[[Job], list[str]]
    limit: bool = False  # a physical limit, not a downloader
    writes: bool = True  # leaves the corpus in job.out (so it is verified)
    single_only: bool = False  # one URL per run (axel)
    slow_single: bool = False  # one connection per file: left out of the capped scenario
    opt_in: bool = False  # only when asked for by --tools
    pdl_root: Path | None = None  # a pdl checkout, run as `python -m downloader` from there
    needs: tuple[str, ...] = ()  # options of that pdl this row uses (see pdl_has)
    tls_only: bool = False  # only for scenarios served over TLS

    def available(self) -> bool:
        return shutil.which(self.binary) is not None

    def applies(self, scenario: Scenario, asked: bool) -> bool:
        if self.single_only and scenario.count != 1:
            return False
        if self.tls_only and not scenario.tls:
            return False
        if asked:
            return True
        return not self.opt_in and not (scenario.split and self.slow_single)


def _pdl(job: Job) -> list[str]:
    argv = [sys.executable, "-m", "downloader", "fetch", str(job.url_list())]
    argv += ["-j", str(job.jobs), "-d", str(job.out), "-q"]
    if job.scenario.split:
        argv += ["-s", str(job.split), "--split-min-size", "1M"]
    if job.ca:
        argv += ["--ca-bundle", str(job.ca)]
    return argv


def pdl_env(pdl_root: Path) -> dict[str, str]:
    """pdl's environment: its checkout first on the path, and Python as users have it.

    A user's Python reuses compiled bytecode and buffers a pipe; machines that set
    PYTHONDONTWRITEBYTECODE (pdl would then compile itself at every start, about
    60 ms) or PYTHONUNBUFFERED (a write per output line) would not measure pdl.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONUNBUFFERED", None)
    env["PYTHONPATH"] = str(pdl_root) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@functools.cache
def _pdl_help(pdl_root: Path) -> str:
    env = dict(os.environ, PYTHONPATH=str(pdl_root))
    shown = subprocess.run(
        [sys.executable, "-m", "downloader", "fetch", "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=pdl_root,  # -m puts the working folder first on sys.path
        check=False,
    )
    return shown.stdout


def pdl_has(pdl_root: Path, option: str) -> bool:
    """Whether ``pdl fetch --help`` of that checkout lists *option* (``--threads``)."""
    listed = rf"(?m)^\s+(?:-\w+, )?{re.escape(option)}(?=[\s=,/\[]|$)"
    return re.search(listed, _pdl_help(pdl_root)) is not None


def pdl_lacks_split(pdl_root: Path) -> str | None:
    """Why pdl cannot run the split scenario (no ``-s/--split``), or None."""
    if not pdl_has(pdl_root, "--split-min-size"):
        return "this pdl has no -s/--split"
    return None


def _aria2c(job: Job) -> list[str]:
    argv = ["aria2c", "-i", str(job.url_list()), "-d", str(job.out), "-j", str(job.jobs)]
    argv += ["--quiet=true", "--allow-overwrite=true", "--auto-file-renaming=false"]
    if job.ca:
        argv.append(f"--ca-certificate={job.ca}")
    if job.scenario.split:
        n = str(job.split)
        argv += [f"--max-connection-per-server={n}", f"--split={n}", "--min-split-size=1M"]
    return argv


def _curl_config(job: Job, name: str, to_null: bool) -> Path:
    path = job.work / name
    lines: list[str] = []
    if to_null and job.scenario.split:
        url = job.urls()[0][0]
        for start, end in job.ranges():
            lines += [f'url = "{url}"', f'range = "{start}-{end}"', 'output = "/dev/null"']
    else:
        for url, file in job.urls():
            target = "/dev/null" if to_null else str(job.out / file)
            lines += [f'url = "{url}"', f'output = "{target}"']
    path.write_text("\n".join(lines) + "\n")
    return path


def _curl(job: Job, *, to_null: bool = False) -> list[str]:
    config = _curl_config(job, "curl-null.cfg" if to_null else "curl.cfg", to_null)
    parallel = str(job.split if to_null and job.scenario.split else job.jobs)
    argv = ["curl", "--parallel", "--parallel-max", parallel, "--fail", "--silent"]
    if to_null:  # the limit: all connections at once, not after the first one is seen
        argv.append("--parallel-immediate")
    if job.ca:
        argv += ["--http2", "--cacert", str(job.ca)]
    return [*argv, "--show-error", "-K", str(config)]


def _wget2(job: Job) -> list[str]:
    argv = ["wget2", "--max-threads", str(job.jobs), "-i", str(job.url_list())]
    if job.ca:
        argv += ["--http2", f"--ca-certificate={job.ca}"]
    return [*argv, "-P", str(job.out), "-q", "--no-hsts", "--no-robots"]


def _wget(job: Job) -> list[str]:
    argv = ["wget", "-q", "--no-hsts", "-i", str(job.url_list()), "-P", str(job.out)]
    return [*argv, f"--ca-certificate={job.ca}"] if job.ca else argv


def _axel(job: Job) -> list[str]:
    url, name = job.urls()[0]
    return ["axel", "-n", str(job.split), "-q", "-o", str(job.out / name), url]


def _copy(job: Job) -> list[str]:
    return ["cp", "-R", "--", str(job.source), str(job.out)]


TOOLS: dict[str, Tool] = {
    t.name: t
    for t in (
        Tool(name="pdl", binary=sys.executable, package="", command=_pdl, pdl_root=ROOT),
        Tool(name="aria2c", binary="aria2c", package="aria2", command=_aria2c),
        Tool(name="curl", binary="curl", package="curl", command=_curl, slow_single=True),
        Tool(name="wget2", binary="wget2", package="wget2", command=_wget2, slow_single=True),
        Tool(name="axel", binary="axel", package="axel", command=_axel, single_only=True),
        Tool(name="wget", binary="wget", package="wget", command=_wget, opt_in=True),
        Tool(
            name="read",
            binary="curl",
            package="curl",
            command=lambda job: _curl(job, to_null=True),
            limit=True,
            writes=False,
        ),
        Tool(name="copy", binary="cp", package="coreutils", command=_copy, limit=True),
    )
}


def pdl_at(
    root: Path,
    name: str = "pdl",
    jobs: int | None = None,
    extra: tuple[str, ...] = (),
    *,
    needs: tuple[str, ...] = (),
    tls_only: bool = False,
) -> Tool:
    """pdl as found in the checkout *root*; with *jobs*, at that ``-j`` instead of the run's;
    *extra* options after the usual ones (e.g. ``("--processes", "2")``), *needs* the
    options among them that not every pdl has (the row is left out where it lacks one)."""
    tool = dataclasses.replace(
        TOOLS["pdl"], name=name, pdl_root=root.resolve(), needs=needs, tls_only=tls_only
    )
    if jobs is not None or extra:

        def command(job: Job) -> list[str]:
            return [*_pdl(job if jobs is None else dataclasses.replace(job, jobs=jobs)), *extra]

        tool = dataclasses.replace(tool, command=command)
    return tool


DEFAULT_TOOLS = ("pdl", "aria2c", "curl", "wget2", "axel", "read", "copy")
