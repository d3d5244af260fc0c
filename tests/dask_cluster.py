"""A real Dask cluster on 127.0.0.1 for the tests: a scheduler and workers, each its own process.

The processes are started with the scheduler and worker commands of ``distributed``
(``python -m distributed.cli.dask_scheduler`` / ``dask_worker``), as a person would
start them, on ephemeral ports. Workers run without a nanny, so a worker the test
kills stays dead and its work must go elsewhere. :meth:`DaskCluster.stop` always
kills whatever is left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType

from tests.server import wait_until

START_TIMEOUT = 60.0


class DaskCluster:
    def __init__(self, where: Path, *, workers: int = 2, nthreads: int = 2) -> None:
        self.where = where
        where.mkdir(parents=True, exist_ok=True)
        self.nthreads = nthreads
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.address = ""
        self._logs: list[Path] = []
        self._start_scheduler()
        for n in range(workers):
            self.add_worker(f"w{n}")
        self.wait_for_workers(workers)

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        log = self.where / f"{name}.log"
        self._logs.append(log)
        env = {**os.environ, "NO_PROXY": "*", "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
        with log.open("wb") as out:
            return subprocess.Popen(
                [sys.executable, "-m", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # a Ctrl-C of the test run is not theirs
            )

    def _start_scheduler(self) -> None:
        info = self.where / "scheduler.json"
        self.scheduler = self._spawn(
            "scheduler",
            [
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(info),
            ],
        )
        wait_until(
            lambda: (info.exists() and info.stat().st_size > 0) or self.scheduler_exited(),
            START_TIMEOUT,
            message="the Dask scheduler did not start",
        )
        assert not self.scheduler_exited(), self.logs()
        self.address = json.loads(info.read_text())["address"]

    def scheduler_exited(self) -> bool:
        return self.scheduler is None or self.scheduler.poll() is not None

    def add_worker(self, name: str) -> None:
        self.workers[name] = self._spawn(
            name,
            [
                "distributed.cli.dask_worker",
                self.address,
                "--name",
                name,
                "--host",
                "127.0.0.1",
                "--nthreads",
                str(self.nthreads),
                "--no-nanny",
                "--no-dashboard",
                "--death-timeout",
                "20",
            ],
        )

    def wait_for_workers(self, n: int) -> None:
        from distributed import Client

        with Client(self.address, timeout=START_TIMEOUT) as client:
            client.wait_for_workers(n, timeout=START_TIMEOUT)

    def busy_worker(self) -> str | None:
        """The name of a worker that is running a task now, if any."""
        from distributed import Client

        with Client(self.address, timeout=START_TIMEOUT) as client:
            names = {a: w["name"] for a, w in client.scheduler_info()["workers"].items()}
            busy = [address for address, keys in client.processing().items() if keys]
        return str(names[busy[0]]) if busy else None

    def kill_worker(self, name: str) -> None:
        """SIGKILL: no goodbye to the scheduler, no cleanup, as when a machine dies."""
        proc = self.workers[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def kill_scheduler(self) -> None:
        assert self.scheduler is not None
        self.scheduler.send_signal(signal.SIGKILL)
        self.scheduler.wait(10)

    def logs(self) -> str:
        return "\n".join(
            f"== {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in self._logs
        )

    def stop(self) -> None:
        """Workers first, then the scheduler (a worker told to stop while its scheduler
        goes away at the same moment can hang in its goodbye); SIGKILL what lingers."""
        _stop(list(self.workers.values()))
        _stop([self.scheduler] if self.scheduler else [])

    def __enter__(self) -> DaskCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
