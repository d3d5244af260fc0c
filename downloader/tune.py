"""``pdl tune``: download a sample of the list once per ``-j`` level and recommend one.

The measuring runs the ordinary :func:`downloader.api.fetch` into a temporary
folder that is removed after each level (and at the end, whatever happens).
Choosing levels, the recommendation, the table and the chart are pure.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .api import fetch
from .errors import BadLine
from .progress import Reporter
from .urllist import Entry, Item

DEFAULT_LEVELS = (1, 2, 4, 8, 16, 32)
DEFAULT_SAMPLE = 64
"""Twice the largest default level: every level runs full for at least two rounds,
so -j 32 is measured busy rather than as the tail of a short list."""
WITHIN = 0.10
"""The recommendation is the smallest level within this fraction of the best."""
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Sample:
    entries: tuple[Entry, ...]
    bad_lines: int
    listed: int

    @property
    def hosts(self) -> int:
        return len({(urlsplit(e.url).hostname or "", urlsplit(e.url).port) for e in self.entries})


def take_sample(items: Iterable[Item], size: int, *, seed: int = 0) -> Sample:
    """``size`` entries picked evenly from the whole list (reservoir sampling, seeded so a
    re-run measures the same files); a list sorted by host or size is not misjudged by
    its first lines. Bad lines are left out and counted."""
    rng = random.Random(seed)
    chosen: list[Entry] = []
    bad = seen = 0
    for item in items:
        if isinstance(item, BadLine):
            bad += 1
            continue
        seen += 1
        if len(chosen) < size:
            chosen.append(item)
        else:
            j = rng.randrange(seen)
            if j < size:
                chosen[j] = item
    return Sample(entries=tuple(chosen), bad_lines=bad, listed=seen)


@dataclass(frozen=True, slots=True)
class Skipped:
    jobs: int
    reason: str


def allowed_levels(
    levels: Sequence[int], *, sample: int, hosts: int, per_host: int | None = None
) -> tuple[list[int], list[Skipped]]:
    """The levels worth running, in ascending order, and the ones left out with why.

    With ``per_host``, no level runs above ``per_host x hosts`` (more workers would only
    wait for a connection); no level runs above the sample size (it could not be busier
    than that). If that leaves nothing, the highest allowed level runs instead.
    """
    cap = sample if per_host is None else min(sample, per_host * max(1, hosts))
    cap = max(1, cap)
    kept: list[int] = []
    skipped: list[Skipped] = []
    for jobs in sorted(set(levels)):
        if per_host is not None and jobs > per_host * max(1, hosts):
            why = f"above --per-host {per_host} x {hosts} host{'s' * (hosts != 1)}"
            skipped.append(Skipped(jobs, why))
        elif jobs > sample:
            skipped.append(Skipped(jobs, f"above the sample of {sample} files"))
        else:
            kept.append(jobs)
    if not kept:
        kept.append(cap)
    return kept, skipped


@dataclass(frozen=True, slots=True, kw_only=True)
class Level:
    """One measured level."""

    jobs: int
    files: int
    bytes: int
    errors: int
    elapsed: float

    @property
    def files_per_s(self) -> float:
        return self.files / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def mib_per_s(self) -> float:
        return self.bytes / MIB / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def speed(self) -> float:
        """What is compared: bytes a second, or files a second when no bytes moved."""
        return self.mib_per_s if self.bytes else self.files_per_s


@dataclass(frozen=True, slots=True)
class Recommendation:
    jobs: int
    reason: str


def recommend(levels: Sequence[Level]) -> Recommendation | None:
    """The smallest level within ``WITHIN`` of the best; levels without errors first."""
    clean = [lv for lv in levels if lv.errors == 0 and lv.files]
    pool = clean or [lv for lv in levels if lv.files]
    if not pool:
        return None
    best = max(pool, key=lambda lv: (lv.speed, -lv.jobs))
    if best.speed <= 0:
        return None
    pick = min((lv for lv in pool if lv.speed >= (1 - WITHIN) * best.speed), key=lambda lv: lv.jobs)
    unit = "MiB/s" if best.bytes else "files/s"
    if pick is best:
        reason = f"the fastest level, at {best.speed:.1f} {unit}"
        if any(lv.jobs > best.jobs for lv in pool):
            reason += "; more jobs did not help"
    else:
        share = pick.speed / best.speed
        reason = (
            f"{share:.0%} of the best ({best.speed:.1f} {unit} at -j {best.jobs}) "
            f"with {best.jobs - pick.jobs} fewer connections"
        )
    if clean and len(clean) < len([lv for lv in levels if lv.files]):
        reason += "; levels with errors were not considered"
    return Recommendation(pick.jobs, reason)


def sweep(
    sample: Sample,
    levels: Sequence[int],
    *,
    fetch_options: Mapping[str, Any],
    reporter_for: Callable[[int], Reporter],
    tmp_dir: str | None = None,
) -> Iterator[Level]:
    """Download ``sample`` once per level into a temporary folder; yields each measurement.

    The folder is removed after each level, and at the end whatever happens (an error,
    Ctrl-C, or the caller not reading on).
    """
    root = Path(tempfile.mkdtemp(prefix="pdl-tune-", dir=tmp_dir))
    try:
        for jobs in levels:
            dest = root / f"j{jobs}"
            started = time.monotonic()
            report = fetch(
                sample.entries,
                dest=dest,
                jobs=jobs,
                on_exist="overwrite",
                resume=False,
                reporter=reporter_for(jobs),
                keep_results=False,
                **fetch_options,
            )
            elapsed = time.monotonic() - started
            shutil.rmtree(dest, ignore_errors=True)
            if report.interrupted:
                raise KeyboardInterrupt
            c = report.counts
            yield Level(jobs=jobs, files=c.ok, bytes=c.bytes, errors=c.failed, elapsed=elapsed)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def table_lines(levels: Sequence[Level]) -> list[str]:
    lines = [f"{'jobs':>5} {'files/s':>9} {'MiB/s':>9} {'errors':>7}"]
    for lv in levels:
        lines.append(f"{lv.jobs:>5} {lv.files_per_s:>9.1f} {lv.mib_per_s:>9.2f} {lv.errors:>7}")
    return lines


def chart_lines(levels: Sequence[Level], width: int = 80, *, ascii: bool = False) -> list[str]:
    """A horizontal bar per level, the fastest filling the width."""
    if not levels:
        return []
    unit = "MiB/s" if any(lv.bytes for lv in levels) else "files/s"
    best = max(lv.speed for lv in levels) or 1.0
    room = max(10, width - 20)
    full, parts = ("#", " ") if ascii else ("█", " ▏▎▍▌▋▊▉")
    lines = [f"throughput ({unit}) by -j"]
    for lv in levels:
        eighths = round(lv.speed / best * room * 8)
        bar = full * (eighths // 8)
        if eighths % 8 and not ascii:
            bar += parts[eighths % 8]
        lines.append(f"{lv.jobs:>5} {bar:<{room}} {lv.speed:>8.2f}".rstrip())
    return lines
