"""Two pdl processes on one folder with overlapping lists.

Each ``.part`` is written under an exclusive ``flock``: a process that finds a
partial locked by the other waits for it (docs/files.md). When the other process
publishes the file the entry is ``skipped``; when it stops without finishing, this
process takes the partial over and resumes it. No file is downloaded twice, none
is corrupted or mixed, and neither process fails for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server import Fault, FaultServer, wait_until

LOCKED = "being downloaded by another process"


def body(i: int, size: int) -> bytes:
    block = hashlib.sha256(str(i).encode()).digest()
    return (block * (size // 32 + 1))[:size]


def spawn(urls: list[str], dest: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "NO_PROXY": "*"}
    args = [sys.executable, "-m", "downloader", "fetch", "--json", "--retry-wait", "0"]
    return subprocess.Popen(
        [*args, *extra, "-d", str(dest), *urls],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(proc: subprocess.Popen[str]) -> tuple[int, list[dict[str, object]], str]:
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return proc.returncode, [json.loads(line) for line in out.splitlines()], err


def test_the_second_process_waits_for_the_first_then_skips(server: FaultServer, dest: Path) -> None:
    big = body(0, 1 << 20)
    server.add("/shared.bin", big, faults=[Fault.stall(300_000)])
    server.add("/own.bin", b"mine")
    first = spawn([server.url("/shared.bin")], dest, "--timeout", "30")
    second = None
    try:
        part = dest / "shared.bin.part"
        wait_until(lambda: part.exists() and part.stat().st_size == 300_000, 20)
        second = spawn([server.url("/shared.bin"), server.url("/own.bin")], dest, "-U", "second")
        wait_until(lambda: (dest / "own.bin").exists(), 20)
        assert second.poll() is None  # still waiting for the first process
        assert len(server.requests_for("/shared.bin")) == 1  # the second never asked
        assert part.stat().st_size == 300_000  # and never touched it
        server.release_stalls()  # the first process resumes and finishes
        code, lines, err = finish(first)
        assert code == 0 and lines[0]["status"] == "ok", err
        code, lines, err = finish(second)
    finally:
        first.kill()
        if second is not None:
            second.kill()
    assert code == 0, err
    by_url = {line["url"]: line for line in lines}
    assert by_url[server.url("/own.bin")]["status"] == "ok"
    assert by_url[server.url("/shared.bin")]["status"] == "skipped"
    asked = [r.header("user-agent") for r in server.requests_for("/shared.bin")]
    assert "second" not in asked  # downloaded by the first only
    assert (dest / "shared.bin").read_bytes() == big
    assert sorted(os.listdir(dest)) == ["own.bin", "shared.bin"]


def test_the_second_process_takes_over_a_partial_the_first_left(
    server: FaultServer, dest: Path
) -> None:
    big = body(1, 1 << 20)
    server.add("/shared.bin", big, faults=[Fault.stall(300_000)])
    first = spawn([server.url("/shared.bin")], dest, "--timeout", "30")
    second = None
    try:
        part = dest / "shared.bin.part"
        wait_until(lambda: part.exists() and part.stat().st_size == 300_000, 20)
        second = spawn([server.url("/shared.bin")], dest)
        wait_until(lambda: second is not None and second.poll() is None, 5)
        first.kill()  # stops without finishing: its lock goes with it
        finish(first)
        server.release_stalls()
        code, lines, err = finish(second)
    finally:
        first.kill()
        if second is not None:
            second.kill()
    assert code == 0 and lines[0]["status"] == "ok", err
    assert lines[0]["resumed_from"] > 0  # the partial was taken over, not fetched again
    assert (dest / "shared.bin").read_bytes() == big


@pytest.mark.slow
def test_overlapping_lists_at_once_never_corrupt_a_file(server: FaultServer, dest: Path) -> None:
    bodies = {f"/f{i}.bin": body(i, 200_000 + 37_000 * i) for i in range(24)}
    for path, data in bodies.items():
        server.add(path, data, pace=0.002)
    urls = [server.url(p) for p in bodies]
    # A takes the first two thirds, B all of it from the start: they race for the same files
    a = spawn(urls[:16], dest, "-j", "3")
    b = spawn(urls, dest, "-j", "3")
    results = [finish(a), finish(b)]
    outcomes: dict[str, list[str]] = {}
    for _code, lines, err in results:
        for line in lines:
            outcomes.setdefault(str(line["url"]), []).append(str(line["status"]))
            if line["status"] == "failed":
                assert LOCKED in str(line["error"]), err
    for path, data in bodies.items():
        url = server.url(path)
        assert (dest / path[1:]).read_bytes() == data, f"{path} is not exact"
        assert outcomes[url].count("ok") + outcomes[url].count("skipped") >= 1
    assert sorted(os.listdir(dest)) == sorted(p[1:] for p in bodies)
    conflicts = sum(o.count("failed") for o in outcomes.values())
    print(f"overlap: {len(bodies)} files, {conflicts} entries left to the other process")
