"""Interrupt a real ``python -m downloader fetch`` (SIGINT, SIGKILL) at random points, re-run it.

The kill point is a byte count at the server, drawn at random and reached by polling,
never a sleep. After the re-run every file is exact and nothing else is left, and the
server sent the re-run exactly the bytes that were missing on disk: complete files are
skipped and every trusted partial is continued, not fetched again.
``PDL_INTERRUPT_SEED`` repeats a run (the seed is printed on failure), and
``PDL_INTERRUPT_TRIALS`` (default 4 per signal) makes a longer one.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server import FaultServer, wait_until

SEED = int(os.environ.get("PDL_INTERRUPT_SEED") or random.SystemRandom().randrange(1 << 32))
TRIALS = int(os.environ.get("PDL_INTERRUPT_TRIALS") or 4)
FILES = 8


def spawn(listing: Path, dest: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "NO_PROXY": "*"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "downloader",
            "fetch",
            "-j",
            "3",
            "--retry-wait",
            "0",
            "-d",
            str(dest),
            str(listing),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def on_disk(dest: Path, name: str) -> int:
    """Bytes of ``name`` that a re-run need not fetch again: all of it, its partial, or none."""
    if (dest / name).exists():
        return (dest / name).stat().st_size
    part = dest / f"{name}.part"
    return part.stat().st_size if part.exists() else 0


def one_trial(server: FaultServer, tmp_path: Path, rng: random.Random, signum: int) -> str:
    bodies = {}
    for i in range(FILES):
        size = rng.randrange(300_000, 1_500_000)  # above 256 KiB: a record before any byte
        block = hashlib.sha256(f"{rng.random()}".encode()).digest()
        bodies[f"f{i}.bin"] = (block * (size // 32 + 1))[:size]
        server.add(f"/f{i}.bin", bodies[f"f{i}.bin"], pace=0.005)
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{server.url('/' + n)}\n" for n in bodies))
    total = sum(map(len, bodies.values()))
    dest = tmp_path / "dest"

    server.clear_requests()
    kill_at = rng.randrange(1, total * 9 // 10)
    proc = spawn(listing, dest)
    try:
        wait_until(lambda: server.bytes_sent() >= kill_at or proc.poll() is not None, 60)
        proc.send_signal(signum)
        _out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    everything = all((dest / n).exists() for n in bodies)  # finished before the signal
    expected_code = 130 if signum == signal.SIGINT else -signal.SIGKILL
    assert proc.returncode == expected_code or (proc.returncode == 0 and everything), err

    kept = {name: on_disk(dest, name) for name in bodies}
    for name, size in kept.items():  # what is kept is a true prefix of the file
        final, part = dest / name, dest / f"{name}.part"
        data = final.read_bytes() if final.exists() else part.read_bytes() if size else b""
        assert data == bodies[name][:size], f"{name}: kept bytes are not the file's"

    # the killed run's connections may still be sending a block: count none of it
    wait_until(lambda: server.active_connections() == 0, 20)
    server.clear_requests()
    rerun = spawn(listing, dest)
    _out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    for name, body in bodies.items():
        assert (dest / name).read_bytes() == body
    assert sorted(os.listdir(dest)) == sorted(bodies), "nothing but the files is left"
    missing = sum(len(bodies[n]) - kept[n] for n in bodies)
    assert server.bytes_sent() == missing, "the re-run fetched only what was missing"
    return f"killed at {kill_at}/{total} bytes, kept {sum(kept.values())}, re-run {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_interrupt_at_random_points_and_resume(
    server: FaultServer, tmp_path: Path, signum: int
) -> None:
    rng = random.Random(SEED)
    for trial in range(TRIALS):
        where = tmp_path / str(trial)
        where.mkdir()
        try:
            print(one_trial(server, where, rng, signum))
        except AssertionError as exc:
            raise AssertionError(f"trial {trial}, PDL_INTERRUPT_SEED={SEED}: {exc}") from exc
