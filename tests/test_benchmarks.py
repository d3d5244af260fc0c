"""The quick benchmark's smoke mode, so that it cannot rot."""

from __future__ import annotations

import json
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


def test_rate_smoke(tmp_path: Path) -> None:
    args = ["--tmp", str(tmp_path), "rate", "--rate", "2M", "--seconds", "0.5", "--jobs", "2"]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "--limit-rate 2M" in done.stdout and "achieved" in done.stdout


COMPARE = SCRIPT.parent / "compare.py"


def test_compare_smoke(tmp_path: Path) -> None:
    """Tiny corpora, installed tools only, nginx if there is one: pdl's files all check out."""
    done = subprocess.run(
        [sys.executable, str(COMPARE), "--smoke", "--json", "--tmp", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    names = [scenario["name"] for scenario in report["scenarios"]]
    assert names == ["small", "large", "latency", "capped"]
    for scenario in report["scenarios"]:
        rows = {row["tool"]: row for row in scenario["rows"]}
        pdl = rows["pdl"]
        if scenario["name"] == "capped" and pdl["status"] == "n/a":
            continue  # a pdl without -s/--split
        assert pdl["status"] == "ok" and pdl["verified"], pdl
        assert pdl["wall_s"] > 0 and pdl["vs_pdl"] == 1.0
        for row in rows.values():
            assert row["status"] in {"ok", "not installed"}, row
    assert list(tmp_path.iterdir()) == []  # corpora and downloads are cleaned up


def test_compare_smoke_without_nginx(tmp_path: Path) -> None:
    """The fallback a fresh CI machine without nginx gets: the project's test server."""
    args = ["--smoke", "--json", "--tmp", str(tmp_path), "--python-server", "--scenarios", "small"]
    also = ["--also-pdl", str(COMPARE.parent.parent)]  # a second checkout: a row of its own
    done = subprocess.run(
        [sys.executable, str(COMPARE), *args, *also, "--pdl-jobs", "1", "--tools", "pdl,copy"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["server"].startswith("test server")
    [scenario] = report["scenarios"]
    second = "pdl@" + COMPARE.parent.parent.name
    assert [(row["tool"], row["status"], row["verified"]) for row in scenario["rows"]] == [
        ("pdl", "ok", True),
        (second, "ok", True),
        ("pdl -j 1", "ok", True),
        ("copy", "ok", True),
    ]


def test_bars_smoke(tmp_path: Path) -> None:
    args = ["--tmp", str(tmp_path), "bars", "--files", "20", "--repeat", "1", "--jobs", "2"]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    modes = [line.split()[0] for line in done.stdout.splitlines()[2:4]]
    assert modes == ["--progress", "--no-progress"]
    assert "bars cost" in done.stdout and "one paint of 16 rows" in done.stdout


SCALE = SCRIPT.parent / "scale.py"


def test_scale_smoke(tmp_path: Path) -> None:
    """Threads only against a local cluster of 2 processes, every part, tiny sizes: files check
    out, the reading process's memory and the CPU of each worker process are reported."""
    done = subprocess.run(
        [sys.executable, str(SCALE), "--smoke", "--json", "--tmp", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    scenarios = [*report["throughput"], report["startup"]]
    assert [s["name"] for s in scenarios] == ["small", "one"]
    for scenario in scenarios:
        modes = [(row["mode"], row["status"], row["verified"]) for row in scenario["rows"]]
        assert modes == [("threads", "ok", True), ("--processes 2", "ok", True)]
        assert all(row["wall_s"] > 0 and row["cpu_s"] > 0 for row in scenario["rows"])
    assert set(report["startup_cost_s"]) == {"--processes 2"}
    [cpu] = report["cpu"]
    threads, cluster = cpu["rows"]
    assert threads["workers"] == [] and threads["children_cpu_s"] < 0.5
    assert len(cluster["workers"]) == 2 and cluster["children_cpu_s"] > 0
    assert [engine["mode"] for engine in report["memory"]] == ["--processes 2", "threads"]
    for engine in report["memory"]:
        assert [run["lines"] for run in engine["runs"]] == [100, 300]
        assert all(run["vm_hwm_kib"] > 10_000 for run in engine["runs"])
        assert engine["bytes_per_entry"] is not None
    assert list(tmp_path.iterdir()) == []  # corpora, lists and downloads are cleaned up
