"""The quick benchmark's smoke mode, so that it cannot rot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "quick.py"


def test_latency_smoke(tmp_path: Path) -> None:
    args = ["--tmp", str(tmp_path), "latency", "--files", "6", "--size", "4096"]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args, "--delay", "0", "--jobs", "1,2", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[2:]]
    assert [row[0] for row in rows] == ["1", "2"]


def test_dry_run_smoke(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--tmp", str(tmp_path), "dry-run", "--lines", "200"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "--dry-run over 200 lines" in done.stdout and "peak RSS" in done.stdout


def test_bars_smoke(tmp_path: Path) -> None:
    args = ["--tmp", str(tmp_path), "bars", "--files", "20", "--repeat", "1", "--jobs", "2"]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    modes = [line.split()[0] for line in done.stdout.splitlines()[2:4]]
    assert modes == ["--progress", "--no-progress"]
    assert "bars cost" in done.stdout and "one paint of 16 rows" in done.stdout
