"""Fault soak: a few hundred entries, a random fault drawn for each request, then strict checks.

Every final file must equal the server's current content byte for byte, a failed
entry must have no final file, nothing may appear that the list did not ask for,
and the JSON lines, the summary and the exit code must agree. A second, fault-free
run must then finish every entry from what the first one left.

The seed is random unless ``PDL_SOAK_SEED`` is set, and is printed on failure;
``PDL_SOAK_SIZE`` (default 400) sets the number of entries, for longer local runs::

    PDL_SOAK_SEED=1234 PDL_SOAK_SIZE=2000 pytest tests/test_soak.py
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from downloader import cli
from tests.server import Fault, FaultServer

SEED = int(os.environ.get("PDL_SOAK_SEED") or random.SystemRandom().randrange(1 << 32))
SIZE = int(os.environ.get("PDL_SOAK_SIZE") or 400)
FAULT_RATE = 0.5
"""Share of requests that get a fault."""

Lines = list[dict[str, object]]

FAULTS = (
    "truncate",
    "reset",
    "stall",
    "status_retry_after",
    "status_plain",
    "new_version",
    "ignore_range",
    "ignore_if_range",
    "wrong_content_range",
    "extra_bytes",
    "drop",
    "forbidden",
)


@dataclass
class Soak:
    """The world of one soak run: versions per path, and the faults drawn (thread-safe)."""

    rng: random.Random
    server: FaultServer
    changing: set[str] = field(default_factory=set)
    cut: set[str] = field(default_factory=set)  # paths that had a body cut short
    drawn: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def policy(self, path: str) -> Fault | None:
        with self.lock:
            if self.rng.random() >= FAULT_RATE:
                return None
            kind = self.rng.choice(FAULTS)
            if path in self.cut and path in self.changing and self.rng.random() < 0.3:
                kind = "new_version"  # the hard case: a partial exists, the file changes
            if kind in ("truncate", "reset", "stall"):
                self.cut.add(path)
            if kind == "new_version" and path not in self.changing:
                kind = "status_plain"  # only files with an ETag may change (see below)
            self.drawn[kind] += 1
            cut = self.rng.randrange(0, 300_000)
            if kind == "new_version":
                # a new version, served with this request's own fault (or none): with
                # ignore_if_range a broken server even sends a 206 of the new version
                old = self.server.body(path) or b""
                same_size = self.rng.random() < 0.5  # then only the ETag tells them apart
                self.server.set_body(
                    path, body_for(self.rng, path, len(old) if same_size else None)
                )
                kind = self.rng.choice(("none", "ignore_if_range", "ignore_if_range", "truncate"))
                if kind == "none":
                    return None
            return {
                "truncate": lambda: Fault.truncate(cut),
                "reset": lambda: Fault.reset(cut),
                "stall": lambda: Fault.stall(cut),
                "status_retry_after": lambda: Fault.status(
                    self.rng.choice((429, 503)), retry_after=self.rng.choice(("0", "1"))
                ),
                "status_plain": lambda: Fault.status(self.rng.choice((500, 502, 503, 504, 429))),
                "ignore_range": Fault.ignore_range,
                "ignore_if_range": Fault.ignore_if_range,
                "wrong_content_range": lambda: Fault.wrong_content_range(
                    self.rng.choice((-7, 1, 1000))
                ),
                "extra_bytes": lambda: Fault.extra_bytes(self.rng.randrange(1, 5000)),
                "drop": Fault.drop,
                "forbidden": lambda: Fault.status(403),
            }[kind]()


def body_for(rng: random.Random, path: str, size: int | None = None) -> bytes:
    if size is None:
        size = rng.choice((0, 1, rng.randrange(2, 4096), rng.randrange(4096, 700_000)))
    block = hashlib.sha256(f"{path}{rng.random()}".encode()).digest()
    return (block * (size // 32 + 1))[:size]


def build(server: FaultServer, rng: random.Random, soak: Soak, tmp_path: Path) -> Path:
    """Routes and a list of SIZE entries; returns the list file."""
    lines = []
    for i in range(SIZE):
        path = f"/f{i}.bin"
        body = body_for(rng, path)
        roll = rng.random()
        if roll < 0.05:
            pass  # never served: 404
        elif roll < 0.15:
            server.add(path, body, etag=None)  # no validator: never changes
        elif roll < 0.25:
            server.add(path, body, etag=None, last_modified="Wed, 21 Oct 2015 07:28:00 GMT")
        elif roll < 0.30:
            server.add(path, body, chunked=True, etag=None)
        else:
            server.add(path, body)
            soak.changing.add(path)
        line = server.url(path)
        if path not in soak.changing and roll >= 0.05 and rng.random() < 0.3:
            line += f" checksum=sha-256={hashlib.sha256(body).hexdigest()}"
        if rng.random() < 0.1:
            line += f" out=sub{i % 3}/g{i}.bin"
        lines.append(line)
    listing = tmp_path / "soak.txt"
    listing.write_text("\n".join(lines) + "\n")
    return listing


def current_of(server: FaultServer, entry: str) -> bytes | None:
    """What the server serves now for a list line's URL (None: a 404)."""
    return server.body("/" + entry.split()[0].split("/", 3)[3])


def expected_path(line: str, dest: Path) -> tuple[str, Path]:
    url = line.split()[0]
    out = re.search(r"out=(\S+)", line)
    return url, dest / (out.group(1) if out else url.rsplit("/", 1)[1])


def run_cli(listing: Path, dest: Path) -> tuple[int, Lines, str]:
    args = ["fetch", "--json", "-j", "16", "--retries", "6", "--retry-wait", "0.01"]
    args += ["--timeout", "0.5", "-d", str(dest), str(listing)]
    result = CliRunner().invoke(cli.main, args, catch_exceptions=False)
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    return result.exit_code, lines, result.stderr


def check_run(
    server: FaultServer,
    listing: Path,
    dest: Path,
    code: int,
    lines: list[dict[str, object]],
    err: str,
) -> Counter[str]:
    """Every invariant of one run; returns the count of each status."""
    entries = listing.read_text().splitlines()
    statuses = Counter(str(line["status"]) for line in lines)
    assert len(lines) == len(entries), "one JSON line per entry"
    summary = re.search(r"(\d+) ok, (\d+) skipped, (\d+) failed", err)
    assert summary, err
    assert tuple(map(int, summary.groups())) == (
        statuses["ok"],
        statuses["skipped"],
        statuses["failed"],
    )
    assert code == (1 if statuses["failed"] else 0), err[-2000:]
    by_url = {str(line["url"]): line for line in lines}
    allowed: set[Path] = set()
    for entry in entries:
        url, target = expected_path(entry, dest)
        line = by_url[url]
        if line["status"] in ("ok", "skipped"):
            assert line["path"] == str(target)
            body = current_of(server, entry)
            assert target.read_bytes() == body, f"{target} differs from the server's content"
            allowed.add(target)
        else:
            assert line["status"] == "failed" and line["error"]
            assert not target.exists(), f"{target} exists although {url} failed"
            allowed |= {target.with_name(target.name + s) for s in (".part", ".part.pdl")}
    found = {p for p in dest.rglob("*") if p.is_file() or p.is_symlink()}
    assert found <= allowed, f"unexpected files: {sorted(found - allowed)[:5]}"
    return statuses


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fault_soak(server: FaultServer, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    soak = Soak(rng=random.Random(SEED + 1), server=server)
    listing = build(server, rng, soak, tmp_path)
    dest = tmp_path / "dest"
    server.set_fault_policy(soak.policy)
    try:
        code, lines, err = run_cli(listing, dest)
        first = check_run(server, listing, dest, code, lines, err)
        print(f"soak seed={SEED} size={SIZE}: {dict(first)}; faults drawn: {dict(soak.drawn)}")
        assert first["ok"] > SIZE // 2, "too few successes to mean anything"
        # fault-free: every entry that can succeed does, from what the first run left
        server.set_fault_policy(None)
        code, lines, err = run_cli(listing, dest)
        second = check_run(server, listing, dest, code, lines, err)
        missing = sum(1 for e in listing.read_text().splitlines() if current_of(server, e) is None)
        assert second["failed"] == missing
    except AssertionError as exc:
        raise AssertionError(
            f"soak failed with PDL_SOAK_SEED={SEED} PDL_SOAK_SIZE={SIZE}: {exc}"
        ) from exc
    finally:
        server.set_fault_policy(None)
        server.release_stalls()
