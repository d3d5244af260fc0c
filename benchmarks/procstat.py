"""CPU time and memory from /proc (Linux): the machine's, a process tree's, one process's threads.

Used by ``scale.py`` to say who spends the CPU of a run: the machine as a whole
(``/proc/stat``), a server's process tree, and each named thread of a Python process
(sampled from inside it, where thread names are known; a process's own total is
saved with them, as a worker's time is folded into its parent's once it is reaped).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

TICK = float(os.sysconf("SC_CLK_TCK"))
PROC = Path("/proc")


def machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, summed over its cores.

    Busy is user, nice, system, irq and softirq time; steal (a virtual machine's cores
    taken by its host) is neither busy nor idle here.
    """
    with open(PROC / "stat") as handle:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (
            int(n) for n in handle.readline().split()[1:9]
        )
    return (user + nice + system + irq + softirq) / TICK, steal / TICK


def _stat(path: Path) -> list[str] | None:
    """The fields of a ``stat`` file after the command name (state first), or None if gone."""
    try:
        text = path.read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def process_cpu(pid: int) -> float | None:
    """User+system CPU seconds of a live process (all its threads), None once it is gone."""
    fields = _stat(PROC / str(pid) / "stat")
    return None if fields is None else (int(fields[11]) + int(fields[12])) / TICK


@dataclass(frozen=True, slots=True)
class Proc:
    ppid: int
    cpu: float  # user+system seconds
    name: str  # the kernel's comm (a kernel worker's changes with its work)
    started: int  # clock ticks after boot: with the pid, which process this is


def snapshot() -> dict[int, Proc]:
    """Every process on the machine."""
    table: dict[int, Proc] = {}
    for entry in os.scandir(PROC):
        if entry.name.isdigit():
            try:
                text = (Path(entry.path) / "stat").read_text()
            except OSError:
                continue
            fields = text[text.rindex(")") + 2 :].split()
            name = text[text.index("(") + 1 : text.rindex(")")]
            cpu = (int(fields[11]) + int(fields[12])) / TICK
            table[int(entry.name)] = Proc(int(fields[1]), cpu, name, int(fields[19]))
    return table


def parents() -> dict[int, int]:
    """pid -> parent pid of every process on the machine."""
    return {pid: proc.ppid for pid, proc in snapshot().items()}


def descendants(root: int, table: dict[int, int] | None = None) -> list[int]:
    """The processes below *root* (not *root* itself), parents before children."""
    table = parents() if table is None else table
    below: dict[int, list[int]] = {}
    for pid, ppid in table.items():
        below.setdefault(ppid, []).append(pid)
    found, todo = [], list(below.get(root, ()))
    while todo:
        pid = todo.pop(0)
        found.append(pid)
        todo += below.get(pid, ())
    return found


def tree_cpu(roots: Iterable[int]) -> float:
    """CPU seconds of the live processes *roots* and everything below them."""
    table = parents()
    pids = {p for root in roots for p in (root, *descendants(root, table))}
    return sum(cpu for cpu in map(process_cpu, pids) if cpu is not None)


def memory_kib(field_name: str, pid: int | str = "self") -> int:
    """A ``/proc/PID/status`` figure in KiB (VmHWM, VmRSS, ...); 0 if it is not there."""
    for line in (PROC / str(pid) / "status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


@dataclass(frozen=True, slots=True)
class Window:
    """What the machine spent between two looks, in CPU seconds, besides this process tree."""

    busy: float  # the whole machine (see machine_cpu)
    steal: float
    harness: float  # this process
    others: float  # user-space processes outside this process's tree
    kernel: float  # kernel threads (kworker, ksoftirqd, ...)
    top: tuple[tuple[str, float], ...]  # the largest of the others and kernel threads


class Watch:
    """Started before a run, :meth:`stop` after it: a :class:`Window`.

    Processes outside this one's tree count from their first look (or from their start,
    if they began during the run); one that both began and ended during the run is not
    seen, and its CPU stays in the machine's busy time only.
    """

    def __init__(self) -> None:
        self._machine = machine_cpu()
        self._procs = snapshot()

    def stop(self) -> Window:
        busy, steal = machine_cpu()
        procs = snapshot()
        me = os.getpid()
        ours = {me, *descendants(me, {p: v.ppid for p, v in procs.items()})}
        ours |= {me, *descendants(me, {p: v.ppid for p, v in self._procs.items()})}
        others = kernel = 0.0
        spent: dict[str, float] = {}
        for pid, proc in procs.items():
            if pid in ours:
                continue
            before = self._procs.get(pid)
            same = before is not None and before.started == proc.started
            delta = proc.cpu - (before.cpu if before is not None and same else 0.0)
            if delta <= 0:
                continue
            if pid == 2 or proc.ppid == 2:  # kthreadd and its kernel threads
                kernel += delta
            else:
                others += delta
            name = proc.name.split("-")[0] if proc.ppid == 2 else proc.name  # kworker/0:1
            spent[name] = spent.get(name, 0.0) + delta
        harness = procs[me].cpu - self._procs[me].cpu if me in self._procs else 0.0
        top = sorted(spent.items(), key=lambda kv: -kv[1])[:3]
        return Window(
            busy=busy - self._machine[0],
            steal=steal - self._machine[1],
            harness=harness,
            others=others,
            kernel=kernel,
            top=tuple((name, round(cpu, 2)) for name, cpu in top),
        )


def wait_quiet(limit: float, patience: float, window: float = 0.5) -> float:
    """Wait (at most *patience* s) until the machine uses under *limit* cores; the last load."""
    deadline = time.monotonic() + patience
    while True:
        busy, _ = machine_cpu()
        time.sleep(window)
        load = (machine_cpu()[0] - busy) / window
        if load < limit or time.monotonic() >= deadline:
            return load


# -- sampling -------------------------------------------------------------------


_NUMBERED = re.compile(r"^\d+[-_ ]|[-_ ]?\d+(?:[-_]\d+)*$")


def thread_group(name: str) -> str:
    """A thread's name without its numbers: ``pdl_3`` -> ``pdl``, ``Dask-Offload_0`` -> ..."""
    return _NUMBERED.sub("", name) or name


class ThreadSampler:
    """Samples this process's threads' CPU by (numberless) name; optionally saved as JSON.

    Thread names come from :mod:`threading` (the kernel knows them all as ``python``),
    CPU from ``/proc/self/task/TID/stat``, counted from :meth:`start` on. A thread
    that ends between two samples loses the CPU of its last interval.
    """

    def __init__(self, interval: float = 0.25, save: Path | None = None) -> None:
        self.interval = interval
        self.save = save
        self.cpu: dict[int, float] = {}
        self.base: dict[int, float] = {}  # what a thread had spent when sampling began
        self.process_base = 0.0
        self.names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="thread-sampler", daemon=True)

    def start(self) -> ThreadSampler:
        self.sample()
        self.base = dict(self.cpu)
        self.process_base = process_cpu(os.getpid()) or 0.0
        self._thread.start()
        return self

    def _loop(self) -> None:
        saved = time.monotonic()
        while not self._stop.wait(self.interval):
            self.sample()
            if self.save is not None and time.monotonic() - saved >= 1.0:
                self.write()
                saved = time.monotonic()

    def sample(self) -> None:
        for thread in threading.enumerate():
            if thread.native_id is not None:
                self.names[thread.native_id] = thread.name
        for tid, name in list(self.names.items()):
            fields = _stat(PROC / "self" / "task" / str(tid) / "stat")
            if fields is not None and name:
                cpu = (int(fields[11]) + int(fields[12])) / TICK
                self.cpu[tid] = max(cpu, self.cpu.get(tid, 0.0))

    def groups(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for tid, cpu in self.cpu.items():
            group = thread_group(self.names[tid])
            out[group] = out.get(group, 0.0) + cpu - self.base.get(tid, 0.0)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def write(self) -> None:
        """Save ``{"pid", "cpu_s" (the whole process, from sampling on), "threads"}``."""
        assert self.save is not None
        temp = self.save.with_suffix(".tmp")
        cpu = (process_cpu(os.getpid()) or 0.0) - self.process_base
        saved = {"pid": os.getpid(), "cpu_s": cpu, "threads": self.groups()}
        with contextlib.suppress(OSError):
            temp.write_text(json.dumps(saved))
            temp.replace(self.save)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.sample()
        if self.save is not None:
            self.write()
        return self.groups()
