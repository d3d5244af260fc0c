"""CPU time and memory from /proc (Linux): the machine's, a process tree's, one process's threads.

Used by ``scale.py`` to say who spends the CPU of a run: the machine as a whole
(``/proc/stat``), each process below the run (sampled, as a process's own time is
folded into its parent's once it is reaped), and each named thread of a Python
process (sampled from inside it, where thread names are known).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

TICK = float(os.sysconf("SC_CLK_TCK"))
PROC = Path("/proc")


def machine_cpu() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine since boot, summed over its cores."""
    with open(PROC / "stat") as handle:
        fields = [int(n) for n in handle.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / TICK, idle / TICK


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


def parents() -> dict[int, int]:
    """pid -> parent pid of every process on the machine."""
    table: dict[int, int] = {}
    for entry in os.scandir(PROC):
        if entry.name.isdigit():
            fields = _stat(Path(entry.path) / "stat")
            if fields is not None:
                table[int(entry.name)] = int(fields[1])
    return table


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


def cmdline(pid: int) -> str:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


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


@dataclass
class TreeSampler:
    """Samples the CPU of every process below *root* until stopped; the last sample counts.

    A process that exits between two samples loses the CPU of its last interval
    (at most *interval* seconds per process).
    """

    root: int
    interval: float = 0.1
    cpu: dict[int, float] = field(default_factory=dict)
    names: dict[int, str] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> TreeSampler:
        self._thread = threading.Thread(target=self._loop, name="tree-sampler", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        for pid in descendants(self.root):
            cpu = process_cpu(pid)
            if cpu is None:
                continue
            if pid not in self.names:
                self.names[pid] = cmdline(pid)
            self.cpu[pid] = max(cpu, self.cpu.get(pid, 0.0))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


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

    def __init__(self, interval: float = 0.1, save: Path | None = None) -> None:
        self.interval = interval
        self.save = save
        self.cpu: dict[int, float] = {}
        self.base: dict[int, float] = {}  # what a thread had spent when sampling began
        self.names: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="thread-sampler", daemon=True)

    def start(self) -> ThreadSampler:
        self.sample()
        self.base = dict(self.cpu)
        self._thread.start()
        return self

    def _loop(self) -> None:
        saved = time.monotonic()
        while not self._stop.wait(self.interval):
            self.sample()
            if self.save is not None and time.monotonic() - saved > 0.5:
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
        assert self.save is not None
        temp = self.save.with_suffix(".tmp")
        with contextlib.suppress(OSError):
            temp.write_text(json.dumps({"pid": os.getpid(), "threads": self.groups()}))
            temp.replace(self.save)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.sample()
        if self.save is not None:
            self.write()
        return self.groups()
