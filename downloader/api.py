"""The one public entry point: :func:`fetch`. The command line is a thin layer over it."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from .cancel import CancelToken
from .cluster import ClusterLost, ClusterRun, ClusterSpec
from .engine import Engine
from .errors import BadLine, UsageError
from .failed import FailedWriter
from .options import (
    DEFAULT_SPLIT_MIN_SIZE,
    DEFAULT_USER_AGENT,
    HttpVersion,
    OnExist,
    Options,
    Shard,
    parse_header,
    parse_on_exist,
    parse_rate,
    parse_shard,
    parse_size,
)
from .progress import Reporter, combine, standard_reporter
from .results import Report, Tally
from .storage import make_dest
from .sums import SumsWriter, load_manifest
from .urllist import ARGS_NAME, Entry, Item, parse_lines, unique


def _items(urls: Iterable[str | Entry | BadLine]) -> Iterator[Item]:
    """Strings are parsed like list lines (``"URL out=NAME"`` works); entries pass through."""
    for index, url in enumerate(urls, 1):
        if isinstance(url, str):
            yield from parse_lines([url], ARGS_NAME, first_line=index)
        else:
            yield url


def _headers(
    headers: Iterable[str | tuple[str, str]] | Mapping[str, str],
) -> tuple[tuple[str, str], ...]:
    """``["Name: value"]``, ``[("Name", "value")]`` or ``{"Name": "value"}`` -> pairs."""
    if isinstance(headers, Mapping):
        return tuple((str(k), str(v)) for k, v in headers.items())
    return tuple(h if isinstance(h, tuple) else parse_header(h) for h in headers)


def _http_version(value: HttpVersion | str) -> HttpVersion:
    try:
        return HttpVersion(str(value))
    except ValueError:
        raise UsageError(f"http must be 1.1, 2 or 3, not {value!r}") from None


def fetch(
    urls: Iterable[str | Entry | BadLine],
    *,
    dest: str | Path = ".",
    jobs: int = 8,
    threads: int | None = None,
    http: HttpVersion | str = HttpVersion.HTTP2,
    retries: int = 5,
    retry_wait: float = 1.0,
    timeout: float = 30.0,
    speed_limit: int | str | None = None,
    speed_time: float = 30.0,
    on_exist: OnExist | str = OnExist.SKIP,
    resume: bool = True,
    content_disposition: bool = False,
    headers: Iterable[str | tuple[str, str]] | Mapping[str, str] = (),
    user_agent: str = DEFAULT_USER_AGENT,
    insecure: bool = False,
    ca_bundle: str | Path | None = None,
    dry_run: bool = False,
    limit_rate: int | str | None = None,
    per_host: int | None = None,
    split: int = 1,
    split_min_size: int | str = DEFAULT_SPLIT_MIN_SIZE,
    failed: str | Path | None = None,
    checksums: str | Path | None = None,
    write_sums: str | Path | None = None,
    scheduler: str | None = None,
    processes: int | None = None,
    shard: Shard | str | None = None,
    json: bool = False,
    quiet: bool = False,
    progress: bool = False,
    verbose: bool = False,
    no_resume: bool = False,
    reporter: Reporter | None = None,
    cancel: CancelToken | None = None,
    keep_results: bool = True,
) -> Report:
    """Download every URL into ``dest`` with ``jobs`` workers and return a :class:`Report`.

    ``urls`` may be URL strings (list-line syntax, so ``"URL out=NAME"`` works),
    :class:`Entry` values, or the items of :func:`downloader.urllist.iter_sources`;
    it is consumed lazily. Keyword arguments mirror the command-line options.
    The API prints nothing unless asked: ``json=True`` writes one JSON line per
    entry to stdout, ``progress=True`` draws bars on stderr, ``verbose=True``
    reports failures, retries and resumes on stderr, ``quiet=True`` silences
    stderr; ``no_resume=True`` is ``resume=False``, as on the command line.
    ``threads`` lanes carry the ``jobs`` downloads (default: the CPUs, at most ``jobs``);
    ``http`` is the highest HTTP version (``"1.1"``, ``"2"``, ``"3"``); a transfer slower
    than ``speed_limit`` bytes a second for ``speed_time`` seconds fails its attempt.
    ``limit_rate`` (bytes a second, or ``"500K"``) caps the total rate, ``per_host``
    the transfers to one host at a time, and ``split`` the ranged connections of one
    file of at least ``split_min_size`` bytes (or ``"32M"``).
    A failed download is a result with ``status == "failed"``, never an exception;
    bad arguments raise :class:`UsageError`. With ``keep_results=False`` only failed
    results are kept in the report (for lists of millions of entries). On Ctrl-C the
    running downloads stop, their ``.part`` files are kept, and the report says
    ``interrupted``. ``failed=PATH`` writes every failed entry to PATH (mode 0600) as
    a URL list that re-runs them (see :mod:`downloader.failed`).
    ``checksums=PATH`` verifies each entry whose path relative to ``dest`` a
    ``sha256sum``-style manifest names; ``write_sums=PATH`` writes ``HEX  PATH`` lines
    (sha-256, for ``sha256sum -c`` run in ``dest``) for the entries that ended ok or
    skipped. A ``Repr-Digest`` or ``Digest`` header from the server is always verified.

    ``scheduler="tcp://HOST:8786"`` runs the list on that Dask cluster and
    ``processes=N`` on N local worker processes (``pip install 'pdl[dask]'``); each
    worker process runs ``jobs`` downloads at a time, and ``dest`` must be a folder
    every worker can write. If the scheduler is lost mid-run, :class:`ClusterLost`
    is raised with the report so far. ``shard="K/N"`` runs only the K-th of N
    round-robin parts of the list, with the names the whole list would give.
    """
    if isinstance(urls, str):
        urls = [urls]  # one URL, not its characters
    options = Options(
        dest=Path(dest),
        jobs=jobs,
        threads=threads,
        http=_http_version(http),
        retries=retries,
        retry_wait=retry_wait,
        timeout=timeout,
        speed_limit=parse_rate(speed_limit) if isinstance(speed_limit, str) else speed_limit,
        speed_time=speed_time,
        on_exist=parse_on_exist(on_exist),
        resume=resume and not no_resume,
        content_disposition=content_disposition,
        headers=_headers(headers),
        user_agent=user_agent,
        insecure=insecure,
        ca_bundle=Path(ca_bundle) if ca_bundle is not None else None,
        dry_run=dry_run,
        limit_rate=parse_rate(limit_rate) if isinstance(limit_rate, str) else limit_rate,
        per_host=per_host,
        split=split,
        split_min_size=(
            parse_size(split_min_size) if isinstance(split_min_size, str) else split_min_size
        ),
        shard=parse_shard(shard) if isinstance(shard, str) else shard,
        checksums=Path(checksums) if checksums is not None else None,
        write_sums=Path(write_sums) if write_sums is not None else None,
    )
    cluster = None
    if scheduler is not None or processes is not None:
        cluster = ClusterSpec(scheduler=scheduler, processes=processes)
        if options.content_disposition:
            raise UsageError(
                "content_disposition cannot be used with a cluster: names from the server"
                " cannot be decided in list order across worker processes"
            )
        if options.write_sums is not None:
            raise UsageError("write_sums cannot be used with a cluster yet")
    manifest, bad_sums = (None, []) if checksums is None else load_manifest(checksums)
    shown = standard_reporter(
        stdout=sys.stdout,
        stderr=sys.stderr,
        json=json,
        quiet=quiet,
        progress=progress,
        verbose=verbose,
        errors=(verbose or progress) and not quiet,
    )
    reporter = shown if reporter is None else combine(reporter, shown)
    writer = FailedWriter(failed) if failed is not None else None
    if writer is not None:
        reporter = combine(reporter, writer)
    sums = None
    if options.write_sums is not None and not dry_run:
        sums = SumsWriter(options.write_sums, str(options.dest))
        reporter = combine(reporter, sums)
    tally = Tally(keep_results=keep_results)
    started = time.monotonic()
    try:
        if not dry_run:
            make_dest(options.dest)
        reporter.run_started(options.jobs)
        for problem in bad_sums:
            reporter.warning(problem)
        cancel = cancel or CancelToken()
        items = unique(_items(urls))
        if cluster is not None and not dry_run:
            remote = ClusterRun(cluster, options, reporter, cancel, tally, manifest)
            try:
                interrupted = remote.run(items)
            except ClusterLost as exc:
                exc.report = tally.report(time.monotonic() - started, interrupted=False)
                reporter.run_finished(exc.report)
                raise
        else:
            interrupted = Engine(options, reporter, cancel, tally, manifest).run(items)
        if manifest is not None and len(manifest) and not manifest.matched:
            reporter.warning(f"warning: {manifest.source} names no entry of the list")
        report = tally.report(time.monotonic() - started, interrupted, options)
        reporter.run_finished(report)
    except BaseException:
        if writer is not None:  # no run, no list of failures: FILE stays as it was
            writer.close(keep=False)
        if sums is not None:
            sums.close(keep=False)
        raise
    if writer is not None:
        writer.close()
    if sums is not None:
        sums.close()
    return report
