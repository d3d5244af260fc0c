"""Scenarios, the files they serve, and the check of every downloaded file."""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass, replace
from pathlib import Path

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
_SLAB = 64 * KiB


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    """One corpus and how it is served: *count* files of *size* bytes under ``/<name>/``."""

    name: str
    count: int
    size: int
    rtt: float = 0.0  # seconds of round trip added by the relay; 0 = straight to the server
    rate: int = 0  # bytes/s per connection (nginx limit_rate); 0 = no cap
    split: bool = False  # one large file: tools use 8 ranged connections
    jobs: int = 0  # downloads at the same time for every tool; 0 = the run's -j
    tls: bool = False  # served over TLS with HTTP/2 offered (ALPN h2, http/1.1)
    about: str = ""

    @property
    def total(self) -> int:
        return self.count * self.size

    def names(self) -> list[str]:
        return [f"f{i:05d}.bin" for i in range(self.count)]

    def label(self) -> str:
        text = f"{self.count:,} x {_human(self.size)}"
        if self.rtt:
            text += f", {self.rtt * 1000:.0f} ms round trip"
        if self.rate:
            text += f", {_human(self.rate)}/s per connection"
        if self.tls:
            text += ", HTTPS with HTTP/2"
        if self.jobs:
            text += f", -j {self.jobs}"
        return text


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(name="small", count=2000, size=16 * KiB, about="many small files"),
        Scenario(name="large", count=4, size=256 * MiB, about="a few large files"),
        Scenario(name="latency", count=200, size=64 * KiB, rtt=0.05, about="a far server"),
        Scenario(name="capped", count=1, size=GiB, rate=25 * MiB, split=True, about="-s 8"),
        Scenario(name="many", count=20000, size=1 * KiB, about="a long list (memory)"),
        Scenario(
            name="latency64",
            count=2000,
            size=16 * KiB,
            rtt=0.05,
            jobs=64,
            about="many small files from a far server, high concurrency",
        ),
        Scenario(
            name="latency256",
            count=2000,
            size=16 * KiB,
            rtt=0.05,
            jobs=256,
            about="the same at -j 256",
        ),
        Scenario(name="https", count=2000, size=16 * KiB, tls=True, about="TLS + HTTP/2"),
    )
}
DEFAULT_SCENARIOS = ("small", "large", "latency", "capped", "latency64", "latency256", "https")
SMOKE_DEFAULT = ("small", "large", "latency", "capped")
"""What --smoke runs unless --scenarios says otherwise: the four of issue 5, kept quick."""

SMOKE: dict[str, Scenario] = {
    "small": replace(SCENARIOS["small"], count=20, size=1 * KiB),
    "large": replace(SCENARIOS["large"], count=2, size=512 * KiB),
    "latency": replace(SCENARIOS["latency"], count=8, size=4 * KiB, rtt=0.02),
    "capped": replace(SCENARIOS["capped"], size=2 * MiB, rate=16 * MiB),
    "many": replace(SCENARIOS["many"], count=50),
    "latency64": replace(SCENARIOS["latency64"], count=40, size=1 * KiB, rtt=0.02, jobs=16),
    "latency256": replace(SCENARIOS["latency256"], count=40, size=1 * KiB, rtt=0.02, jobs=32),
    "https": replace(SCENARIOS["https"], count=20, size=1 * KiB),
}


def _human(n: int) -> str:
    for unit, scale in (("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"


def write_corpus(scenario: Scenario, root: Path, seed: int = 5) -> dict[str, str]:
    """Write the scenario's files under ``root/<name>/``; return name -> sha256 hex.

    Every 64 KiB slab starts with a hash of (file, offset), so a file served under the
    wrong name, or a range written at the wrong offset, fails the check.
    """
    folder = root / scenario.name
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # nginx workers may run as another user
    filler = random.Random(seed).randbytes(_SLAB)
    digests: dict[str, str] = {}
    for index, name in enumerate(scenario.names()):
        digest = hashlib.sha256()
        with open(folder / name, "wb") as handle:
            for offset in range(0, scenario.size, _SLAB):
                head = hashlib.sha256(f"{index}:{offset}".encode()).digest()
                slab = (head + filler[len(head) :])[: scenario.size - offset]
                handle.write(slab)
                digest.update(slab)
        (folder / name).chmod(0o644)
        digests[name] = digest.hexdigest()
    return digests


def verify(folder: Path, scenario: Scenario, digests: dict[str, str]) -> str | None:
    """None when *folder* holds exactly the corpus (names, sizes, sha256); else the first fault."""
    try:
        found = sorted(os.listdir(folder))
    except FileNotFoundError:
        return "no output folder"
    extra = sorted(set(found) - set(digests))
    if extra:
        return f"{len(extra)} unexpected files, e.g. {extra[0]}"
    for name, want in digests.items():
        path = folder / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return f"{name} missing"
        if size != scenario.size:
            return f"{name} has {size} bytes, not {scenario.size}"
        with open(path, "rb") as handle:
            if hashlib.file_digest(handle, "sha256").hexdigest() != want:
                return f"{name} differs from the corpus"
    return None
