"""The command line: click options in, ``api.fetch`` keywords out, a Report to an exit code."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO

import click

from .api import fetch as api_fetch
from .errors import UsageError
from .options import DEFAULT_USER_AGENT, MAX_JOBS, OnExist, parse_header
from .progress import standard_reporter
from .results import Report, summary_lines
from .urllist import STDIN, Item, iter_sources
from .version import __version__

EXIT_SIGTERM = 143
EXIT_SIGINT = 130

FETCH_EPILOG = """\b
Examples:
  pdl fetch urls.txt -j 16 -d downloads
  cat urls.txt | pdl fetch --json | jq -r 'select(.status=="failed").url'
  pdl fetch https://example.org/a.iso https://example.org/b.iso
"""


class HeaderType(click.ParamType):  # type: ignore[type-arg]
    """``-H 'Name: value'`` -> ``("Name", "value")``, or a clean usage error."""

    name = "'NAME: VALUE'"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        try:
            return parse_header(str(value))
        except UsageError as exc:
            self.fail(str(exc), param, ctx)


def _check_sources(sources: tuple[str, ...]) -> None:
    """Fail early (exit 2) on a list file that cannot be read."""
    for source in sources:
        if source == STDIN or "://" in source:
            continue
        path = Path(source)
        if path.is_dir():
            raise click.BadParameter(f"{source!r} is a folder, not a URL list", param_hint="SOURCE")
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise click.BadParameter(
                f"cannot read {source!r}: {reason}", param_hint="SOURCE"
            ) from None


class _Signals:
    """First SIGINT/SIGTERM: interrupt the run gracefully. Second: exit at once."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _Signals:
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            os._exit(EXIT_SIGINT if signum == signal.SIGINT else EXIT_SIGTERM)
        self.received = signum
        raise KeyboardInterrupt

    @property
    def exit_code(self) -> int:
        return EXIT_SIGTERM if self.received == signal.SIGTERM else EXIT_SIGINT


def _stdin() -> BinaryIO | None:
    """Standard input as bytes, or None when the process has none (``<&-``)."""
    return sys.stdin.buffer if sys.stdin is not None else None


def _items(sources: tuple[str, ...]) -> Iterator[Item]:
    yield from iter_sources(sources, _stdin())


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="pdl")
def main() -> None:
    """pdl: download the URLs of a list, many at a time, safely."""


@main.command(epilog=FETCH_EPILOG)
@click.argument("sources", nargs=-1, metavar="[SOURCE]...")
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1, MAX_JOBS),
    default=8,
    show_default=True,
    help="Downloads at the same time (worker threads).",
)
@click.option(
    "-d",
    "--dir",
    "dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(),
    show_default=True,
    help="Destination folder, created if missing.",
)
@click.option(
    "--retries",
    type=click.IntRange(min=0),
    default=5,
    show_default=True,
    help="Retries after the first attempt, per download.",
)
@click.option(
    "--retry-wait",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Base of the exponential back-off in seconds (with jitter, capped at 60 s).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Connect timeout and idle-read timeout in seconds.",
)
@click.option(
    "--on-exist",
    type=click.Choice([e.value for e in OnExist]),
    default="skip",
    show_default=True,
    help="What to do when the target file exists.",
)
@click.option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="Continue .part files left by an earlier attempt or run.",
)
@click.option(
    "--content-disposition",
    is_flag=True,
    default=False,
    show_default="off",
    help="Name files from the server's Content-Disposition header.",
)
@click.option(
    "-H",
    "--header",
    "headers",
    type=HeaderType(),
    multiple=True,
    show_default="none",
    help="Extra request header 'Name: value' (repeatable).",
)
@click.option(
    "-U", "--user-agent", default=DEFAULT_USER_AGENT, show_default=True, help="User-Agent header."
)
@click.option(
    "--insecure",
    is_flag=True,
    default=False,
    show_default="off",
    help="Do not verify TLS certificates.",
)
@click.option(
    "--ca-bundle",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    show_default="the system's CAs",
    help="Verify TLS with this CA bundle (PEM file).",
)
@click.option(
    "--json",
    "json",
    is_flag=True,
    default=False,
    show_default="off",
    help="One JSON object per entry on stdout instead of paths.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    default=False,
    show_default="off",
    help="Print 'URL -> path' for each entry; download nothing.",
)
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    default=False,
    show_default="off",
    help="No progress and no summary; errors still go to stderr.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Force bars on or off.  [default: on when stderr is a terminal]",
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    default=False,
    show_default="off",
    help="Also report each retry and resume on stderr.",
)
def fetch(
    sources: tuple[str, ...],
    json: bool,
    quiet: bool,
    progress: bool | None,
    verbose: bool,
    **options: Any,
) -> None:
    """Download every URL of the SOURCEs into --dir.

    A SOURCE is a URL list file, '-' for standard input, or an http:// or
    https:// URL. With no SOURCE, standard input is read when it is not a
    terminal. Results (paths, or JSON lines with --json) go to stdout;
    progress, errors and the summary go to stderr.

    Exit status: 0 all ok or skipped, 1 some failed, 2 usage error,
    130 interrupted (143 on SIGTERM).
    """
    if not sources:
        stdin = _stdin()
        if stdin is None or stdin.isatty():
            raise click.UsageError("no SOURCE given, and standard input is a terminal (or closed)")
        sources = (STDIN,)
    _check_sources(sources)
    if options["insecure"] and options["ca_bundle"] is not None:
        raise click.UsageError("--insecure and --ca-bundle cannot be used together")
    stdout = sys.stdout
    stderr = sys.stderr
    bars = (stderr.isatty() if progress is None else progress) and not quiet
    bars = bars and not options["dry_run"]  # a plan is printed at once: nothing to watch
    reporter = standard_reporter(
        stdout=stdout,
        stderr=stderr,
        json=json,
        paths=not json,
        quiet=quiet,
        progress=bars,
        verbose=verbose,
    )
    with _Signals() as signals:
        try:
            report = api_fetch(_items(sources), reporter=reporter, keep_results=False, **options)
        except KeyboardInterrupt:
            click.echo("pdl: interrupted", err=True)
            _exit(signals.exit_code)
        except UsageError as exc:
            raise click.UsageError(str(exc)) from None
        except OSError as exc:  # a list file vanished or became unreadable mid-run
            raise click.UsageError(f"cannot read a URL list: {exc}") from None
        if not quiet and not options["dry_run"]:
            _print_summary(report, stderr)
    _exit(signals.exit_code if report.interrupted else report.exit_code)


def _print_summary(report: Report, stream: Any, failed_file: str | None = None) -> None:
    for line in summary_lines(report, failed_file):
        click.echo(line, file=stream)


def _exit(code: int) -> None:
    """Exit with ``code``; a worker still stuck after an interrupt does not hold the exit up."""
    stuck = any(t.name.startswith("pdl") and t.is_alive() for t in threading.enumerate())
    if stuck:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
