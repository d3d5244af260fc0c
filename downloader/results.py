"""Outcomes: Status, Result and Report values, and the Tally, pdl's one shared mutable object."""

from __future__ import annotations

import enum
import hashlib
import re
import shlex
import threading
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .naming import COMPANIONS, RelPath, numbered
from .options import EntryOptions, OnExist, Options
from .safetext import redact as redact  # what pdl shows is decided in safetext
from .safetext import redact_text as redact_text


class Status(enum.StrEnum):
    """How an entry ended (the ``status`` of ``--json``; docs/output.md)."""

    OK = "ok"
    SKIPPED = "skipped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    """Stopped by Ctrl-C (or a cancel) while it ran; its partial file is kept."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Result:
    """How one entry of the list ended."""

    url: str
    source: str
    status: Status
    path: str | None = None
    bytes: int = 0
    elapsed: float = 0.0
    attempts: int = 0
    http_status: int | None = None
    resumed_from: int = 0
    error: str | None = None
    http_version: str | None = None
    """The HTTP version that served the file ("1.1", "2", "3"), when a server answered."""
    mirror: str | None = None
    """The mirror that served the file, when it was not the entry's own URL."""
    options: EntryOptions = field(default_factory=EntryOptions, repr=False, compare=False)
    bad_line: bool = field(default=False, repr=False, compare=False)
    ordinal: int | None = field(default=None, repr=False, compare=False)
    """The download's place among those the engine submitted, 0-based (``--write-sums``)."""
    sha256: str | None = field(default=None, repr=False, compare=False)
    """The file's sha-256, when ``--write-sums`` asked for it and it ended ok or skipped."""

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` object; credentials in the URL are redacted."""
        return {
            "url": redact(self.url),
            "source": self.source,
            "path": self.path,
            "status": str(self.status),
            "bytes": self.bytes,
            "elapsed": round(self.elapsed, 6),
            "attempts": self.attempts,
            "http_status": self.http_status,
            "resumed_from": self.resumed_from,
            "error": redact_text(self.error, self.url) if self.error else None,
            "http_version": self.http_version,
            "mirror": redact(self.mirror) if self.mirror else None,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Counts:
    ok: int = 0
    skipped: int = 0
    failed: int = 0
    interrupted: int = 0
    bytes: int = 0
    resumed_bytes: int = 0
    retries: int = 0

    @property
    def done(self) -> int:
        return self.ok + self.skipped + self.failed + self.interrupted


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """What :func:`downloader.fetch` returns: every result kept, counts and timing."""

    results: tuple[Result, ...]
    counts: Counts
    elapsed: float
    interrupted: bool = False
    options: Options | None = field(default=None, repr=False, compare=False)
    """The run's options, when the caller gave them: the summary's re-run hint needs them."""

    @property
    def ok(self) -> list[Result]:
        return [r for r in self.results if r.status is Status.OK]

    @property
    def skipped(self) -> list[Result]:
        return [r for r in self.results if r.status is Status.SKIPPED]

    @property
    def failed(self) -> list[Result]:
        return [r for r in self.results if r.status is Status.FAILED]

    @property
    def unfinished(self) -> list[Result]:
        """The entries an interrupt stopped while they ran (``Status.INTERRUPTED``)."""
        return [r for r in self.results if r.status is Status.INTERRUPTED]

    @property
    def exit_code(self) -> int:
        """0 when every entry ended ok or skipped, 1 when any failed, 130 if interrupted."""
        if self.interrupted:
            return 130
        return 1 if self.counts.failed else 0


class HashSet64:
    """A compact set of 64-bit hashes (open addressing in an ``array``): 16 bytes an item.

    Used for claimed paths and seen entries, so a list of millions of lines needs
    tens of MB, not hundreds. Two different keys share a hash with odds of about
    n^2 / 2^65 (3e-8 for a million keys).
    """

    def __init__(self) -> None:
        self._slots = array("Q", bytes(8 * 1024))
        self._len = 0

    def __len__(self) -> int:
        return self._len

    @staticmethod
    def hash(key: str) -> int:
        digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        return int.from_bytes(digest, "little") or 1

    def _find(self, h: int) -> int:
        slots = self._slots
        mask = len(slots) - 1
        i = h & mask
        while slots[i] and slots[i] != h:
            i = (i + 1) & mask
        return i

    def __contains__(self, key: str) -> bool:
        return self._slots[self._find(self.hash(key))] != 0

    def add(self, key: str, accept: Callable[[], bool] | None = None) -> bool:
        """Add ``key`` if it is new (and ``accept()`` agrees); True if it was added."""
        h = self.hash(key)
        i = self._find(h)
        if self._slots[i] or (accept is not None and not accept()):
            return False
        self._slots[i] = h
        self._len += 1
        if self._len * 2 > len(self._slots):
            self._grow()
        return True

    def _grow(self) -> None:
        old = self._slots
        self._slots = array("Q", bytes(16 * len(old)))
        for h in old:
            if h:
                self._slots[self._find(h)] = h


def _path_key(rel: RelPath) -> str:
    return "/".join(rel)


FAILED_KEPT = 100
"""Without ``keep_results``, the first this many failures are kept (for the summary); the
others are only counted, so a list of a million bad lines needs no memory for them."""


class Tally:
    """The one lock-protected shared object: counters, kept results and claimed paths.

    Every method takes the lock; nothing else in pdl is shared between threads
    and mutable.
    """

    def __init__(self, *, keep_results: bool = True, keep_failed: bool = True) -> None:
        self._lock = threading.Lock()
        self._keep_all = keep_results
        self._keep_failed = keep_failed
        self._results: list[Result] = []
        self._counts = Counts()
        self._claimed = HashSet64()
        self._companion_like = False  # has any claimed name the form of a .part or record?

    def claim(self, rel: RelPath, taken: Callable[[RelPath], bool] | None = None) -> RelPath:
        """Reserve ``rel`` for this run, or the first free ``name.N.ext`` after it.

        ``taken`` adds a test of the world outside the run (``--on-exist rename``
        asks whether the file exists on disk).
        """
        with self._lock:
            n = 0
            while True:
                candidate = rel if n == 0 else (*rel[:-1], numbered(rel[-1], n))
                key = _path_key(candidate)
                if self._clashes_with_companions(key):
                    n += 1
                    continue
                free = None if taken is None else lambda: not taken(candidate)  # noqa: B023
                if self._claimed.add(key, free):
                    self._companion_like |= key.endswith(COMPANIONS)
                    return candidate
                n += 1

    def _clashes_with_companions(self, key: str) -> bool:
        """``a.bin.part`` may not be claimed next to ``a.bin``, nor the other way round."""
        for suffix in COMPANIONS:
            if key.endswith(suffix) and key[: -len(suffix)] in self._claimed:
                return True
            # (only worth hashing when some claimed name looks like a companion)
            if self._companion_like and key + suffix in self._claimed:
                return True
        return False

    def record(self, result: Result) -> Counts:
        """Count one finished entry and keep it (all when asked, else the first failures)."""
        with self._lock:
            c = self._counts
            self._counts = Counts(
                ok=c.ok + (result.status is Status.OK),
                skipped=c.skipped + (result.status is Status.SKIPPED),
                failed=c.failed + (result.status is Status.FAILED),
                interrupted=c.interrupted + (result.status is Status.INTERRUPTED),
                bytes=c.bytes + result.bytes,
                resumed_bytes=c.resumed_bytes + result.resumed_from,
                retries=c.retries + max(0, result.attempts - 1),
            )
            if self._keep_all or (
                self._keep_failed
                and result.status is Status.FAILED
                and len(self._results) < FAILED_KEPT  # the rest are streamed, not kept
            ):
                self._results.append(result)
            return self._counts

    def counts(self) -> Counts:
        with self._lock:
            return self._counts

    def report(
        self, elapsed: float, interrupted: bool = False, options: Options | None = None
    ) -> Report:
        with self._lock:
            return Report(
                results=tuple(self._results),
                counts=self._counts,
                elapsed=elapsed,
                interrupted=interrupted,
                options=options,
            )


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


SUMMARY_LABEL = 9
"""Width of the label column of the summary block."""
SCREENFUL = 20
"""Up to this many failures are still in view above the summary, so it only counts them."""
FIRST_FAILURES = 10
"""Past a screenful, the summary lists this many failures and says where the rest are."""
_QUOTE_IF = re.compile(r"[\s'\"\\\x00-\x1f\x7f-\x9f]")


def shown_url(url: str) -> str:
    """A URL as pdl prints it: credentials redacted; quoted whole when it holds a space,
    a quote or a control character (so neither a reader nor a shell cuts it short)."""
    text = redact(url)  # control characters come back escaped (safetext)
    if not (_QUOTE_IF.search(url) or _QUOTE_IF.search(text)):
        return text
    quote = '"' if "'" in text else "'"
    return f"{quote}{text}{quote}"


def failure_text(result: Result) -> str:
    """``URL (FILE:LINE): reason`` of a failed entry, or ``FILE:LINE: reason`` of a bad line."""
    error = redact_text(result.error or "failed", result.url)
    if result.bad_line:
        return f"{result.source}: {error}"
    return f"{shown_url(result.url)} ({result.source}): {error}"


def rerun_command(failed_file: str, options: Options | None) -> str:
    """The command that re-runs the entries of ``--failed FILE``: the destination and the
    options that change names or verification, so the re-run lands where the run did."""
    args = ["pdl", "fetch", failed_file]
    if options is not None:
        if options.dest != Path():
            args += ["-d", str(options.dest)]
        if options.on_exist is not OnExist.SKIP:
            args += ["--on-exist", str(options.on_exist)]
        if options.content_disposition:
            args.append("--content-disposition")
        checksums = getattr(options, "checksums", None)  # an option of the libcurl engine
        if checksums is not None:
            args += ["--checksums", str(checksums)]
        if options.insecure:
            args.append("--insecure")
        if options.ca_bundle is not None:
            args += ["--ca-bundle", str(options.ca_bundle)]
    args += ["--failed", failed_file]
    return shlex.join(args)


def headline(report: Report) -> str:
    """``pdl: done: 3 ok, 0 skipped, 1 failed``, or after an interrupt what is not finished."""
    c = report.counts
    if not report.interrupted:
        return f"pdl: done: {c.ok} ok, {c.skipped} skipped, {c.failed} failed"
    parts = [f"{c.ok} ok"]
    parts += [f"{c.skipped} skipped"] * bool(c.skipped) + [f"{c.failed} failed"] * bool(c.failed)
    if c.interrupted:
        parts.append(f"{c.interrupted} not finished")
        return f"pdl: interrupted: {', '.join(parts)}; partial files kept, " + _RESUME
    return f"pdl: interrupted: {', '.join(parts)}; " + _RESUME


_RESUME = "run the same command to resume"


def summary_lines(report: Report, failed_file: str | None = None) -> Iterable[str]:
    """The summary printed on stderr at the end of a run: a headline with the counts,
    then an aligned block (bytes, time and average rate, retries, resumed bytes, the
    failures, and the command that re-runs them). Each failure was printed as it
    happened: up to a screenful they are only counted here; past it, the first ones
    (scrolled away by now) are listed, and where to find the rest."""
    c = report.counts
    rate = c.bytes / report.elapsed if report.elapsed > 0 else 0.0

    def row(label: str, value: str) -> str:
        return f"  {label:<{SUMMARY_LABEL}}{value}".rstrip()

    yield headline(report)
    yield row(
        "received",
        f"{format_bytes(c.bytes)} in {report.elapsed:.2f} s ({format_bytes(rate)}/s average)",
    )
    yield row("retries", str(c.retries))
    yield row("resumed", format_bytes(c.resumed_bytes))
    if c.failed and c.failed <= SCREENFUL:
        yield row("failed", f"{c.failed}, each shown above as it happened")
    elif c.failed:
        yield row("failed", f"{c.failed}; the first {FIRST_FAILURES}:")
        for r in report.failed[:FIRST_FAILURES]:
            yield row("", failure_text(r))
        where = f"all in {failed_file}" if failed_file else "--failed FILE or --json lists them all"
        yield row("", f"... and {c.failed - FIRST_FAILURES} more ({where})")
    if failed_file is not None and c.failed:
        yield row("re-run", rerun_command(failed_file, report.options))
