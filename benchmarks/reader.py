"""One pdl run in this process, as ``pdl fetch LIST -q`` runs it, and what it cost this process.

    python -m benchmarks.reader --list urls.txt --dest OUT --jobs 8 --processes 2 --save r.json

The list is read lazily with :func:`downloader.urllist.iter_sources` and handed to
:func:`downloader.fetch` with ``keep_results=False, quiet=True`` (what the command line
does). Saved as JSON: the wall time, the counts, this process's peak memory (VmHWM of
/proc/self/status, which is this process alone: it starts afresh at exec, and worker
processes are not in it), its own CPU by thread, and the CPU of its reaped children.

With ``PDL_BENCH_THREADS=DIR`` in the environment, every worker process that Dask
starts (they import this module as ``__mp_main__``) saves its own CPU, whole and by
thread, to ``DIR/worker-PID.json`` every second and as it exits.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import json
import os
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.procstat import ThreadSampler, memory_kib  # noqa: E402

THREADS_ENV = "PDL_BENCH_THREADS"

if __name__ == "__mp_main__" and os.environ.get(THREADS_ENV):  # a Dask worker process
    _WORKER = ThreadSampler(save=Path(os.environ[THREADS_ENV]) / f"worker-{os.getpid()}.json")
    atexit.register(_WORKER.stop)  # the last sample and save, as the worker process exits
    _WORKER.start()


@dataclass(frozen=True, slots=True, kw_only=True)
class ReaderReport:
    """What one run cost the reading process; saved as JSON by :func:`main`."""

    wall_s: float
    ok: int
    skipped: int
    failed: int
    rss_before_kib: int  # after the imports, before the run
    vm_hwm_kib: int  # this process's peak (it starts afresh at exec)
    ru_maxrss_kib: int  # the same from getrusage: may carry the forking process's peak
    cpu_self_s: float
    cpu_children_s: float  # the worker processes (and multiprocessing's helpers), reaped
    threads: dict[str, float]  # CPU s by thread name, numbers dropped (with --threads)

    @classmethod
    def load(cls, path: Path) -> ReaderReport:
        return cls(**json.loads(path.read_text()))


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--list", type=Path, required=True)
    parser.add_argument("--dest", type=Path, required=True)
    parser.add_argument("--jobs", type=int, default=8)
    parser.add_argument("--processes", type=int, default=None)
    parser.add_argument("--save", type=Path, required=True, help="the JSON report")
    parser.add_argument("--threads", action="store_true", help="sample CPU per thread")
    args = parser.parse_args(argv)

    import downloader
    from downloader.urllist import iter_sources

    if args.processes:
        import distributed  # noqa: F401  (its import is not part of the run's memory)
    sampler = ThreadSampler().start() if args.threads else None
    before = memory_kib("VmRSS")
    started = time.perf_counter()
    report = downloader.fetch(
        iter_sources([str(args.list)]),
        dest=args.dest,
        jobs=args.jobs,
        processes=args.processes,
        keep_results=False,
        quiet=True,
    )
    wall = time.perf_counter() - started
    threads = sampler.stop() if sampler is not None else {}
    saved = ReaderReport(
        wall_s=wall,
        ok=report.counts.ok,
        skipped=report.counts.skipped,
        failed=report.counts.failed,
        rss_before_kib=before,
        vm_hwm_kib=memory_kib("VmHWM"),
        ru_maxrss_kib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        cpu_self_s=_cpu(resource.getrusage(resource.RUSAGE_SELF)),
        cpu_children_s=_cpu(resource.getrusage(resource.RUSAGE_CHILDREN)),
        threads=threads,
    )
    args.save.write_text(json.dumps(dataclasses.asdict(saved)))
    return report.exit_code


if __name__ == "__main__":
    sys.exit(main())
