"""The command line's options, declared once: ParamTypes, ``PDL_*`` environment names, and
the lists each command applies (a new option is declared here and added to its lists)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.shell_completion import CompletionItem

from .cluster import MAX_PROCESSES
from .errors import UsageError
from .options import (
    DEFAULT_USER_AGENT,
    MAX_JOBS,
    MAX_SPLIT,
    HttpVersion,
    OnExist,
    Shard,
    parse_header,
    parse_rate,
    parse_shard,
    parse_size,
)
from .tune import DEFAULT_LEVELS, DEFAULT_SAMPLE

Decorator = Callable[[Any], Any]


class SizeType(click.ParamType):  # type: ignore[type-arg]
    """``32M`` -> bytes (or a rate, ``500K`` or ``500K/s``), or a clean usage error."""

    def __init__(self, *, rate: bool = False) -> None:
        self.rate = rate
        self.name = "RATE" if rate else "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int):
            return value
        try:
            return parse_rate(str(value)) if self.rate else parse_size(str(value))
        except UsageError as exc:
            self.fail(str(exc), param, ctx)


class HeaderType(click.ParamType):  # type: ignore[type-arg]
    """``-H 'Name: value'`` -> ``("Name", "value")``, or a clean usage error."""

    name = "'NAME: VALUE'"
    envvar_list_splitter = "\n"  # PDL_HEADER holds one header a line

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        try:
            return parse_header(str(value))
        except UsageError as exc:
            self.fail(str(exc), param, ctx)


class LevelsType(click.ParamType):  # type: ignore[type-arg]
    """``1,2,4,8`` -> ``(1, 2, 4, 8)``, each within 1..MAX_JOBS, or a clean usage error."""

    name = "N,N,..."

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        try:
            levels = tuple(int(part) for part in str(value).split(",") if part.strip())
        except ValueError:
            self.fail(f"{value!r} is not a comma-separated list of numbers", param, ctx)
        if not levels or any(not 1 <= n <= MAX_JOBS for n in levels):
            self.fail(f"each level must be between 1 and {MAX_JOBS}: {value!r}", param, ctx)
        return levels


class ShardType(click.ParamType):  # type: ignore[type-arg]
    """``2/8`` -> :class:`Shard`, or a clean usage error."""

    name = "K/N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, Shard):
            return value
        try:
            return parse_shard(str(value))
        except UsageError as exc:
            self.fail(str(exc), param, ctx)


def option(*decls: str, env: str | None = None, **attrs: Any) -> Decorator:
    """A click option that can also come from ``PDL_<NAME>`` (shown in ``--help``)."""
    long = next(d for d in decls if d.startswith("--"))
    name = env or long[2:].split("/")[0].upper().replace("-", "_")
    return click.option(*decls, envvar=f"PDL_{name}", show_envvar=True, **attrs)


def apply(decorators: list[Decorator]) -> Decorator:
    """Apply ``decorators`` so that options show in list order in ``--help``."""

    def apply(f: Any) -> Any:
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


def complete_source(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """SOURCEs complete as file names (a URL is typed or pasted)."""
    return [CompletionItem(incomplete, type="file")]


# -- options: declared once, listed per command (add new ones to the lists) ------------------

SOURCES = click.argument("sources", nargs=-1, metavar="[SOURCE]...", shell_complete=complete_source)
JOBS = option(
    "-j",
    "--jobs",
    type=click.IntRange(1, MAX_JOBS),
    default=8,
    show_default=True,
    help="Downloads at the same time.",
)
THREADS = option(
    "--threads",
    type=click.IntRange(1, MAX_JOBS),
    show_default="the number of CPUs, at most -j",
    help=(
        "Worker threads that carry the downloads; each multiplexes its share of -j over"
        " one libcurl multi handle (--threads equal to -j: one download per thread)."
    ),
)
HTTP = option(
    "--http",
    type=click.Choice([v.value for v in HttpVersion]),
    default="2",
    show_default=True,
    help=(
        "Highest HTTP version: 2 = HTTP/2 over TLS where the server offers it, else 1.1;"
        " 3 = try HTTP/3 (QUIC) first, falling back; 1.1 = never above 1.1."
    ),
)
SPEED_LIMIT = option(
    "--speed-limit",
    type=SizeType(rate=True),
    show_default="off",
    help="A transfer slower than RATE bytes/s for --speed-time seconds fails its attempt.",
)
SPEED_TIME = option(
    "--speed-time",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds a transfer may stay below --speed-limit before it is retried.",
)
DIR = option(
    "-d",
    "--dir",
    "dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(),
    show_default=True,
    help=(
        "Destination folder, created if missing. With --scheduler, every worker must be"
        " able to write it at this path (a shared file system)."
    ),
)
RETRIES = option(
    "--retries",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Retries after the first attempt, per download.",
)
RETRY_WAIT = option(
    "--retry-wait",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Base of the exponential back-off in seconds (with jitter, capped at 60 s).",
)
TIMEOUT = option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Connect timeout and idle-read timeout in seconds.",
)
ON_EXIST = option(
    "--on-exist",
    type=click.Choice([e.value for e in OnExist]),
    default="skip",
    show_default=True,
    help="What to do when the target file exists.",
)
RESUME = option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="Continue .part files left by an earlier attempt or run.",
)
CONTENT_DISPOSITION = option(
    "--content-disposition",
    is_flag=True,
    default=False,
    show_default="off",
    help="Name files from the server's Content-Disposition header.",
)
HEADER = option(
    "-H",
    "--header",
    "headers",
    type=HeaderType(),
    multiple=True,
    show_default="none",
    help="Extra request header 'Name: value' (repeatable; one a line in PDL_HEADER).",
)
USER_AGENT = option(
    "-U", "--user-agent", default=DEFAULT_USER_AGENT, show_default=True, help="User-Agent header."
)
INSECURE = option(
    "--insecure",
    is_flag=True,
    default=False,
    show_default="off",
    help="Do not verify TLS certificates.",
)
CA_BUNDLE = option(
    "--ca-bundle",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    show_default="certifi's CA bundle",
    help="Verify TLS with this CA bundle (PEM file).",
)
JSON = option(
    "--json",
    "json",
    is_flag=True,
    default=False,
    show_default="off",
    help="One JSON object per entry on stdout instead of paths.",
)
DRY_RUN = option(
    "--dry-run",
    is_flag=True,
    default=False,
    show_default="off",
    help="Print 'URL -> path' for each entry; download nothing.",
)
QUIET = option(
    "-q",
    "--quiet",
    is_flag=True,
    default=False,
    show_default="off",
    help="No progress and no summary; errors still go to stderr.",
)
PROGRESS = option(
    "--progress/--no-progress",
    default=None,
    help="Force bars on or off.  [default: on when stderr is a terminal]",
)
VERBOSE = option(
    "-v",
    "--verbose",
    is_flag=True,
    default=False,
    show_default="off",
    help="Also report each retry and resume on stderr.",
)
TUNE_JOBS = option(
    "-j",
    "--jobs",
    "levels",
    env="TUNE_JOBS",
    type=LevelsType(),
    default=",".join(map(str, DEFAULT_LEVELS)),
    show_default=True,
    help="The -j levels to measure, comma-separated.",
)
SAMPLE = option(
    "--sample",
    env="TUNE_SAMPLE",
    type=click.IntRange(1, 100_000),
    default=DEFAULT_SAMPLE,
    show_default=True,
    help="Entries sampled from the list, downloaded once per level.",
)
PER_HOST = option(
    "--per-host",
    type=click.IntRange(1, MAX_JOBS),
    show_default="none",
    help="At most N downloads from one host at a time (tune: no level above N x hosts).",
)
LIMIT_RATE = option(
    "--limit-rate",
    type=SizeType(rate=True),
    show_default="none",
    help="Total download rate across all jobs, e.g. 500K, 10M, 1G (K=1024 bytes/s).",
)
SPLIT = option(
    "-s",
    "--split",
    type=click.IntRange(1, MAX_SPLIT),
    default=1,
    show_default=True,
    help="Fetch one large file over up to N ranged connections.",
)
SPLIT_MIN_SIZE = option(
    "--split-min-size",
    type=SizeType(),
    default="32M",
    show_default=True,
    help="Only split files at least this large (K, M, G = 1024 powers).",
)
FAILED = option(
    "--failed",
    type=click.Path(dir_okay=False, path_type=Path),
    show_default="none",
    help="Write every failed entry to FILE (mode 0600) as a URL list that re-runs them.",
)
CHECKSUMS = option(
    "--checksums",
    type=click.Path(dir_okay=False, path_type=Path),
    show_default="none",
    help=(
        "Verify entries against a sha256sum/sha512sum/md5sum manifest (HEX  NAME, or BSD"
        " SHA256 (NAME) = HEX): NAME is the path relative to --dir."
    ),
)
WRITE_SUMS = option(
    "--write-sums",
    type=click.Path(dir_okay=False, path_type=Path),
    show_default="none",
    help="Write HEX  PATH (sha-256) of each entry ok or skipped; check: cd DIR; sha256sum -c FILE.",
)
SCHEDULER = option(
    "--scheduler",
    metavar="ADDRESS",
    show_default="none",
    help=(
        "Run the list on the Dask cluster at ADDRESS (tcp://host:8786); -j is per worker"
        " process. --dir must be a folder every worker can write (a shared file system)."
        " Needs pip install 'pdl[dask]'."
    ),
)
PROCESSES = option(
    "--processes",
    metavar="N",
    type=click.IntRange(1, MAX_PROCESSES),
    show_default="none",
    help="Run on N local worker processes (a local Dask cluster), each with -j downloads.",
)
SHARD = option(
    "--shard",
    metavar="K/N",
    type=ShardType(),
    show_default="none",
    help="Run only the K-th of N round-robin parts of the list, with the whole list's names.",
)

NETWORK_OPTIONS = [
    RETRIES,
    RETRY_WAIT,
    TIMEOUT,
    HTTP,
    SPEED_LIMIT,
    SPEED_TIME,
    HEADER,
    USER_AGENT,
    INSECURE,
    CA_BUNDLE,
]
"""Options of how to talk to servers: the same for fetch and tune."""
FETCH_OPTIONS = [
    JOBS,
    THREADS,
    HTTP,
    DIR,
    RETRIES,
    RETRY_WAIT,
    TIMEOUT,
    SPEED_LIMIT,
    SPEED_TIME,
    ON_EXIST,
    RESUME,
    CONTENT_DISPOSITION,
    LIMIT_RATE,
    PER_HOST,
    SPLIT,
    SPLIT_MIN_SIZE,
    HEADER,
    USER_AGENT,
    INSECURE,
    CA_BUNDLE,
    JSON,
    DRY_RUN,
    FAILED,
    CHECKSUMS,
    WRITE_SUMS,
    SCHEDULER,
    PROCESSES,
    SHARD,
    QUIET,
    PROGRESS,
    VERBOSE,
]
TUNE_OPTIONS = [TUNE_JOBS, SAMPLE, PER_HOST, *NETWORK_OPTIONS, PROGRESS, VERBOSE]
