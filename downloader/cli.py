"""The command line: click options in, ``api.fetch`` keywords out, a Report to an exit code."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any, BinaryIO, TextIO, cast

import click

from .api import fetch as api_fetch
from .cli_options import FETCH_OPTIONS, SOURCES, TUNE_OPTIONS, apply
from .cluster import ClusterLost, mute_dask_logs
from .counting import count_in_background
from .credentials import load_netrc
from .errors import UsageError
from .progress import Reporter, standard_reporter
from .results import Report, summary_lines
from .safetext import redact_text
from .tune import (
    Level,
    Sample,
    allowed_levels,
    chart_lines,
    plan_line,
    recommend,
    sweep,
    table_lines,
    take_sample,
)
from .urllist import STDIN, Item, iter_sources
from .version import __version__

EXIT_SIGTERM = 143
EXIT_SIGINT = 130
INSECURE_WARNING = (
    "pdl: warning: --insecure: TLS certificates are not verified; "
    "anyone on the network path can read or change the downloads"
)

FETCH_EPILOG = """\b
Examples:
  pdl fetch urls.txt -j 16 -d downloads
  cat urls.txt | pdl fetch --json | jq -r 'select(.status=="failed").url'
  pdl fetch https://example.org/a.iso https://example.org/b.iso
  PDL_JOBS=32 PDL_DIR=~/mirror pdl fetch urls.txt
  pdl fetch urls.txt --limit-rate 2M --per-host 2
  pdl fetch big-isos.txt -s 8 --split-min-size 64M
  pdl fetch urls.txt --failed again.txt || pdl fetch again.txt
  pdl fetch 'https://example.org/a.iso mirror=https://mirror.example.net/a.iso'
  pdl fetch 'https://example.org/a.iso header=Authorization: Bearer TOKEN'
  pdl fetch urls.txt --processes 2 -d downloads       # every core (pdl[dask])
  pdl fetch urls.txt --scheduler tcp://10.0.0.5:8786 -d /shared/data
  pdl fetch urls.txt --shard "$SLURM_ARRAY_TASK_ID/8" -d /shared/data
  pdl fetch urls.txt --cookies cookies.txt --netrc
  pdl fetch https://example.org/a.iso --resolve example.org:443:127.0.0.1 -4
  https_proxy=socks5h://127.0.0.1:1080 pdl fetch urls.txt
"""
TUNE_EPILOG = """\b
Examples:
  pdl tune urls.txt                      # -j 1,2,4,8,16,32 over 64 sampled entries
  pdl tune urls.txt -j 4,8,12,16 --sample 100
  pdl tune urls.txt --per-host 4         # no level above 4 x the sample's hosts
"""
MAIN_EPILOG = """\b
Examples:
  pdl fetch urls.txt -j 16 -d downloads
  pdl tune urls.txt
  pdl fetch --help
\b
Shell completion (bash, zsh, fish):
  eval "$(_PDL_COMPLETE=bash_source pdl)"     # in ~/.bashrc
  eval "$(_PDL_COMPLETE=zsh_source pdl)"      # in ~/.zshrc
  _PDL_COMPLETE=fish_source pdl | source      # in ~/.config/fish/config.fish
"""


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


def _read_credentials(options: dict[str, Any], say: Callable[[str], None]) -> None:
    """``--netrc`` read once (exit 2 if it cannot be), and the warnings of what was read:
    a skipped cookies line, a netrc file others can read."""
    if options["ipv4"] and options["ipv6"]:
        raise click.UsageError("-4 and -6 cannot be used together")
    if options["netrc"]:
        try:
            options["netrc"] = load_netrc()
        except UsageError as exc:
            raise click.UsageError(str(exc)) from None
    for loaded in (options["cookies"], options["netrc"] or None):
        for warning in loaded.warnings if loaded is not None else ():
            say(f"pdl: warning: {warning}")


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


class _Output(io.TextIOBase):
    """A standard stream that never fails the run: downloads go on whatever it refuses.

    A stream that is closed (``>&-``), full (``>/dev/full``) or broken fails once:
    that is said once on the ``say`` stream (for stdout: on stderr; a reader gone
    away, ``| head``, is said nothing), and everything after is dropped. Its
    descriptor is then pointed at /dev/null, so the exit-time flush is quiet too.
    Text the stream cannot encode (a ``--dir`` not valid in the locale's
    encoding) is written with ``errors``: ``surrogateescape`` gives a path back its
    own bytes, ``backslashreplace`` shows them as escapes.
    """

    def __init__(
        self, stream: TextIO | None, what: str, errors: str, say: Callable[[str], None]
    ) -> None:
        super().__init__()
        self._stream = stream
        self._what = what
        self._say = say
        self._errors = errors
        self.failed = False
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(OSError, ValueError):  # a detached or closed stream
                reconfigure(errors=errors)

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", None) or "utf-8"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        try:
            return self._stream is not None and not self.failed and self._stream.isatty()
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        if self._stream is None:
            raise io.UnsupportedOperation(f"{self._what} is closed")
        return self._stream.fileno()

    def write(self, text: str) -> int:
        if self.failed:
            return len(text)
        if self._stream is None:
            self._fail("it is closed")
            return len(text)
        try:
            try:
                self._stream.write(text)
            except UnicodeEncodeError:
                enc = self.encoding
                self._stream.write(text.encode(enc, "backslashreplace").decode(enc, "replace"))
        except OSError as exc:
            self._fail(exc)
        return len(text)

    def flush(self) -> None:
        if self.failed or self._stream is None:
            return
        try:
            self._stream.flush()
        except OSError as exc:
            self._fail(exc)

    def _fail(self, why: OSError | str) -> None:
        self.failed = True
        if isinstance(why, OSError) and why.errno == errno.EPIPE:
            why = ""  # the reader has all it wanted
        elif isinstance(why, OSError):
            why = why.strerror or str(why)
        with_fd = self._stream
        try:
            if with_fd is not None:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, with_fd.fileno())
                os.close(devnull)
        except (OSError, ValueError):
            pass
        if why:
            self._say(f"pdl: cannot write to {self._what} ({why}); the downloads go on")


def _std_streams(json: bool) -> tuple[TextIO, TextIO]:
    """stdout and stderr as :class:`_Output` (stdout's failure is said on stderr)."""
    err = _Output(sys.stderr, "standard error", "backslashreplace", lambda line: None)
    say = _say(cast(TextIO, err))
    out_errors = "backslashreplace" if json else "surrogateescape"
    out = _Output(sys.stdout, "standard output", out_errors, say)
    return cast(TextIO, out), cast(TextIO, err)


def _open_std_fds() -> None:
    """Open /dev/null on a closed fd 0, 1 or 2 (``>&-``), so no file of pdl's ever gets one
    (a print would land in a download), and so that C libraries writing there are harmless."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            devnull = os.open(os.devnull, os.O_RDWR)
            if devnull != fd:
                os.dup2(devnull, fd)
                os.close(devnull)


def _stdin() -> BinaryIO | None:
    """Standard input as bytes, or None when the process has none (``<&-``)."""
    return sys.stdin.buffer if sys.stdin is not None else None


def _items(sources: tuple[str, ...]) -> Iterator[Item]:
    yield from iter_sources(sources, _stdin())


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=MAIN_EPILOG,
)
@click.version_option(__version__, "-V", "--version", prog_name="pdl")
def main() -> None:
    """pdl: download the URLs of a list, many at a time, safely.

    Every option can also be set in the environment: PDL_JOBS=16, PDL_DIR=~/dl, ...
    (the name is shown in each command's --help).
    """
    _open_std_fds()


def _sources_or_stdin(sources: tuple[str, ...]) -> tuple[str, ...]:
    """The SOURCEs, or standard input when none is given and it is not a terminal."""
    if not sources:
        stdin = _stdin()
        if stdin is None or stdin.isatty():
            raise click.UsageError("no SOURCE given, and standard input is a terminal (or closed)")
        sources = (STDIN,)
    _check_sources(sources)
    return sources


@main.command(epilog=FETCH_EPILOG)
@SOURCES
@apply(FETCH_OPTIONS)
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
    sources = _sources_or_stdin(sources)
    if options["insecure"] and options["ca_bundle"] is not None:
        raise click.UsageError("--insecure and --ca-bundle cannot be used together")
    stdout, stderr = _std_streams(json)
    if options["insecure"]:  # once per run, not once per request
        click.echo(INSECURE_WARNING, file=stderr)
    _read_credentials(options, _say(stderr))
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
    count_in_background(sources, reporter.list_counted, shard=options["shard"])
    if options["scheduler"] is not None or options["processes"] is not None:
        mute_dask_logs()
    report: Report | None = None
    with _Signals() as signals:
        try:
            report = _run(sources, reporter, options, stderr, quiet)
            if not quiet and not options["dry_run"]:
                failed = options["failed"]
                _print_summary(report, stderr, str(failed) if failed is not None else None)
        except KeyboardInterrupt:  # also one that comes while the summary is printed
            if report is None:
                click.echo("pdl: interrupted", file=stderr)
            stdout.flush()
            _exit(signals.exit_code)
        stdout.flush()
        assert report is not None
        _exit(signals.exit_code if report.interrupted else report.exit_code)


def _run(
    sources: tuple[str, ...],
    reporter: Reporter,
    options: dict[str, Any],
    stderr: TextIO,
    quiet: bool,
) -> Report:
    """The run itself, its errors turned into exit statuses (a KeyboardInterrupt passes)."""
    try:
        return api_fetch(_items(sources), reporter=reporter, keep_results=False, **options)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    except OSError as exc:  # a list file vanished or became unreadable mid-run
        raise click.UsageError(f"cannot read a URL list: {exc}") from None
    except ClusterLost as exc:
        if not quiet and exc.report is not None:
            _print_summary(exc.report, stderr, None)
        click.echo(f"pdl: error: {redact_text(str(exc), '')}", file=stderr)  # tcp://u:p@h
        _exit(1)
        raise  # not reached


@main.command(epilog=TUNE_EPILOG)
@SOURCES
@apply(TUNE_OPTIONS)
def tune(
    sources: tuple[str, ...],
    levels: tuple[int, ...],
    sample: int,
    per_host: int | None,
    progress: bool | None,
    verbose: bool,
    **options: Any,
) -> None:
    """Find a good --jobs for a list: download a sample at each -j level.

    The sample is downloaded once per level, into a temporary folder (under
    TMPDIR) that is removed after each level. The table, the chart and the
    recommended -j go to stdout; progress goes to stderr.

    Exit status: 0 with a recommendation, 1 when nothing could be downloaded,
    2 usage error, 130 interrupted.
    """
    sources = _sources_or_stdin(sources)
    if options["insecure"] and options["ca_bundle"] is not None:
        raise click.UsageError("--insecure and --ca-bundle cannot be used together")
    stdout, stderr = _std_streams(False)
    say = _say(stderr)
    if options["insecure"]:
        say(INSECURE_WARNING)
    _read_credentials(options, say)
    picked, run = _tune_plan(sources, levels, sample, per_host, say)
    bars = stderr.isatty() if progress is None else progress

    def reporter_for(jobs: int) -> Reporter:
        say(f"pdl tune: -j {jobs} ({run.index(jobs) + 1}/{len(run)})")
        return standard_reporter(
            stdout=stdout, stderr=stderr, progress=bars, verbose=verbose, errors=verbose
        )

    measured: list[Level] = []
    with _Signals() as signals:
        try:
            fetch_options = {**options, "per_host": per_host}
            for level in sweep(picked, run, fetch_options=fetch_options, reporter_for=reporter_for):
                measured.append(level)
        except KeyboardInterrupt:
            say("pdl: interrupted")
            _exit(signals.exit_code)
    _exit(_print_tune(measured, stdout))


def _tune_plan(
    sources: tuple[str, ...],
    levels: tuple[int, ...],
    sample: int,
    per_host: int | None,
    say: Callable[[str], None],
) -> tuple[Sample, list[int]]:
    """Sample the list and choose the levels; tell what that will download."""
    try:
        picked = take_sample(_items(sources), sample)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from None
    except OSError as exc:
        raise click.UsageError(f"cannot read a URL list: {exc}") from None
    if not picked.entries:
        raise click.UsageError("the list has no URL to measure")
    n = len(picked.entries)
    run, skipped = allowed_levels(levels, sample=n, hosts=picked.hosts, per_host=per_host)
    say(plan_line(n, picked.listed, run))  # with how long it takes at most
    say("pdl tune: all into a temporary folder that is removed")
    if picked.bad_lines:
        say(f"pdl tune: {picked.bad_lines} bad line(s) of the list left out")
    for left_out in skipped:
        say(f"pdl tune: -j {left_out.jobs} left out: {left_out.reason}")
    return picked, run


def _say(stream: TextIO) -> Callable[[str], None]:
    def say(line: str) -> None:
        click.echo(line, file=stream)

    return say


def _print_tune(measured: list[Level], stream: TextIO) -> int:
    """The result of ``tune`` on stdout: table, chart, recommendation; the exit status."""
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    width = shutil.get_terminal_size((80, 24)).columns
    lines = [*table_lines(measured), ""]
    lines += [*chart_lines(measured, min(width, 100), ascii=encoding != "utf8"), ""]
    best = recommend(measured)
    if best is None:
        lines.append("no recommendation: nothing was downloaded")
    else:
        lines.append(f"recommended: -j {best.jobs}, {best.reason}")
    for line in lines:
        click.echo(line, file=stream)
    return 0 if best is not None else 1


def _print_summary(report: Report, stream: Any, failed_file: str | None = None) -> None:
    """The summary; failures past the ones kept are counted (each was printed as it came)."""
    lines = list(summary_lines(report, failed_file))
    more = report.counts.failed - len(report.failed)
    if more > 0:
        rerun = failed_file is not None and bool(lines) and "re-run" in lines[-1]
        where = f"listed above and in {failed_file}" if failed_file else "listed above"
        lines.insert(len(lines) - rerun, f"  ... and {more} more failed entries ({where})")
    for line in lines:
        click.echo(line, file=stream)


def _exit(code: int) -> None:
    """Exit with ``code``; after an interrupt, a thread still stuck does not hold the exit up.

    Lanes are joined before a run returns, so only an interrupted run (130/143) can leave
    one behind (a cluster call, a name being resolved).
    """
    stuck = code in (EXIT_SIGINT, EXIT_SIGTERM) and any(
        t.name.startswith("pdl") and t.is_alive() for t in threading.enumerate()
    )
    if stuck:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
