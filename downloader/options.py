"""Run and entry options as frozen values, and the pure parsers that build them."""

from __future__ import annotations

import enum
import hashlib
import ipaddress
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from .cookies import CookieJar
from .credentials import NetrcCredentials
from .errors import UsageError
from .naming import RelPath, check_relative
from .version import __version__

ALGORITHMS: dict[str, str] = {
    "sha-256": "sha256",
    "sha-512": "sha512",
    "sha-1": "sha1",
    "md5": "md5",
}
"""Checksum names of the list format (aria2's) -> hashlib names."""

MAX_JOBS = 1024
MAX_PER_HOST = 1024
MAX_SPLIT = 16
DEFAULT_SPLIT_MIN_SIZE = 32 * 1024**2
DEFAULT_USER_AGENT = f"pdl/{__version__}"
TRANSFER_HEADERS = frozenset({"range", "if-range"})
"""Request headers that pdl sets itself to resume; no user header may name them, and
they follow every redirect (the others of a request only to the entry's origin)."""

_URL_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\\s]")
"""What no URL may contain: control characters and any whitespace."""


class HttpVersion(enum.StrEnum):
    """The highest HTTP version a run may use (``--http``)."""

    HTTP1_1 = "1.1"
    HTTP2 = "2"
    HTTP3 = "3"


class OnExist(enum.StrEnum):
    """What to do when the target file already exists."""

    SKIP = "skip"
    OVERWRITE = "overwrite"
    RENAME = "rename"


@dataclass(frozen=True, slots=True)
class Checksum:
    """An expected digest: ``algorithm`` as in lists (``sha-256``), ``hexdigest`` lower-case."""

    algorithm: str
    hexdigest: str

    def new_hasher(self) -> hashlib._Hash:
        return hashlib.new(ALGORITHMS[self.algorithm])

    def __str__(self) -> str:
        return f"{self.algorithm}={self.hexdigest}"


@dataclass(frozen=True, slots=True, kw_only=True)
class EntryOptions:
    """Per-URL options of a list entry (``out=``, ``dir=``, ``checksum=``, ``mirror=``,
    ``header=``).

    This is the one check of ``out`` and ``dir``, for lists and for the API alike: an
    absolute path or a ``..`` component raises ValueError (a :class:`UsageError`),
    and what is kept is the safe form, components made safe by
    :func:`naming.sanitize` and joined with ``/``. So no value of this type can name
    a place outside the destination.

    ``mirrors`` are further URLs of the same bytes, tried after the entry's own, in
    order; ``headers`` are extra request headers of this entry, sent on top of (and
    over) ``-H`` and, like them, only to the entry's own origin.
    """

    out: str | None = None
    dir: str | None = None
    checksum: Checksum | None = None
    mirrors: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.out is not None:
            parts = _relative(self.out, "out")
            if not parts:
                raise UsageError(f"out has no file name: {self.out!r}")
            object.__setattr__(self, "out", "/".join(parts))
        if self.dir is not None:
            object.__setattr__(self, "dir", "/".join(_relative(self.dir, "dir")) or None)
        if self.checksum is not None and not isinstance(self.checksum, Checksum):
            raise UsageError(f"checksum must be a Checksum, not {self.checksum!r}")
        if isinstance(self.mirrors, str) or not isinstance(self.mirrors, tuple | list):
            raise UsageError(f"mirrors must be a tuple of URLs, not {self.mirrors!r}")
        object.__setattr__(self, "mirrors", tuple(self.mirrors))
        for mirror in self.mirrors:
            problem = check_url(mirror) if isinstance(mirror, str) else "a mirror is not a string"
            if problem is not None:
                raise UsageError(f"bad mirror: {problem}")
        if not isinstance(self.headers, tuple | list):
            raise UsageError(f"headers must be a tuple of (name, value), not {self.headers!r}")
        object.__setattr__(self, "headers", tuple(_entry_header(h) for h in self.headers))


def _entry_header(header: object) -> tuple[str, str]:
    """A ``header=`` value as ``(name, value)``, held to ``-H``'s rules and more: no control
    character but TAB in the value. The reasons never quote the value (it may be a token)."""
    if not (isinstance(header, tuple | list) and len(header) == 2):
        raise UsageError("a header must be a (name, value) pair")
    name, value = header
    if not (isinstance(name, str) and isinstance(value, str)):
        raise UsageError("a header must be a (name, value) pair of strings")
    if not _TOKEN_RE.match(name):
        raise UsageError(f"bad header name {name!r} (use 'Name: value')")
    if _HEADER_CONTROL.search(value):
        raise UsageError(f"header {name} has a line break or control character in its value")
    if name.lower() in TRANSFER_HEADERS:
        raise UsageError(f"header {name} is pdl's own: it resumes partials with it")
    return name, value.strip(" \t")


_HEADER_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


def check_url(url: str) -> str | None:
    """Why ``url`` cannot be downloaded, or None if it can.

    The reasons never quote the URL's parts: a password may be what failed to parse.
    """
    if _URL_FORBIDDEN.search(url):
        return "URL contains whitespace or control characters"
    if "://" not in url:
        return "URL lacks http:// or https:// at the start"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a bad port)
    except ValueError as exc:
        what = "IPv6 address" if "IPv6" in str(exc) else "port" if "Port" in str(exc) else ""
        return f"malformed URL (bad {what})" if what else "malformed URL"
    if parts.scheme.lower() not in ("http", "https"):
        scheme = parts.scheme or "none"
        return f"unsupported scheme {scheme!r} (only http and https)"
    if not parts.hostname:
        return "URL has no host"
    return None


def _relative(value: object, what: str) -> RelPath:
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise UsageError(f"{what} must be a relative path, not {value!r}")
    try:
        return check_relative(value, what)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class Shard:
    """The ``index``-th (1-based) of ``count`` parts of a list: ``--shard 2/8``.

    Item ``n`` (0-based, in list order after duplicates are dropped, bad lines
    included) belongs to part ``n % count + 1``: round robin, so every part gets
    a fair mix of a list sorted by size or by site, and no part needs the list's
    length to know its items.
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= self.count:
            raise UsageError(f"shard must be K/N with 1 <= K <= N, not {self}")

    def owns(self, ordinal: int) -> bool:
        """Does the item at 0-based ``ordinal`` of the list belong to this part?"""
        return ordinal % self.count == self.index - 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True, slots=True)
class Resolve:
    """``--resolve HOST:PORT:ADDR``: connect to ADDR for HOST:PORT (the URL keeps HOST)."""

    host: str
    port: int
    address: str
    """An IP literal; IPv6 without brackets."""

    def __str__(self) -> str:
        address = f"[{self.address}]" if ":" in self.address else self.address
        return f"{self.host}:{self.port}:{address}"


_RESOLVE_RE = re.compile(r"^([^:\s\[\]/]+):([0-9]{1,5}):(\[[^\]]+\]|[^:\s]+|[0-9a-fA-F:.]+)$")


def parse_resolve(text: str) -> Resolve:
    """``"files.example:443:127.0.0.1"`` (or ``...:[::1]``) -> :class:`Resolve`."""
    usage = "use HOST:PORT:ADDR, such as example.org:443:127.0.0.1 or example.org:443:[::1]"
    match = _RESOLVE_RE.match(text.strip())
    if not match:
        raise UsageError(f"not a --resolve value: {text!r} ({usage})")
    host, port, address = match.groups()
    if not 1 <= int(port) <= 65535:
        raise UsageError(f"--resolve {text!r}: the port must be between 1 and 65535")
    address = address.removeprefix("[").removesuffix("]")
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise UsageError(
            f"--resolve {text!r}: {address!r} is not an IP address ({usage})"
        ) from None
    return Resolve(host.lower().rstrip("."), int(port), str(ip))


_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_shard(text: str) -> Shard:
    """``"2/8"`` -> ``Shard(2, 8)``: the second of eight parts; K counts from 1."""
    match = _SHARD_RE.match(text)
    if not match:
        raise UsageError(f"not a shard: {text!r} (use K/N, such as 1/4)")
    return Shard(int(match[1]), int(match[2]))


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """Everything a run needs to know, validated once. Mirrors the ``fetch`` keywords."""

    dest: Path = Path()
    jobs: int = 8
    retries: int = 5
    retry_wait: float = 1.0
    timeout: float = 30.0
    on_exist: OnExist = OnExist.SKIP
    resume: bool = True
    content_disposition: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    user_agent: str = DEFAULT_USER_AGENT
    insecure: bool = False
    ca_bundle: Path | None = None
    dry_run: bool = False
    limit_rate: int | None = None
    """Total bytes per second across all jobs; None: unlimited."""
    per_host: int | None = None
    """At most this many transfers to one host at a time; None: no limit but ``jobs``."""
    split: int = 1
    split_min_size: int = DEFAULT_SPLIT_MIN_SIZE
    shard: Shard | None = None
    """Only the items of this part of the list are run; names are those of the whole list."""
    threads: int | None = None
    """Lanes (threads) that carry the ``jobs`` downloads; None: the CPU count, at most jobs."""
    http: HttpVersion = HttpVersion.HTTP2
    speed_limit: int | None = None
    """Bytes a second below which a transfer, for ``speed_time`` seconds, fails its attempt."""
    speed_time: float = 30.0
    checksums: Path | None = None
    """A ``sha256sum``-style manifest: an entry whose path relative to ``dest`` it names is
    verified against it."""
    write_sums: Path | None = None
    """Where to write ``HEX  PATH`` (sha-256) for every entry that ended ok or skipped."""
    cookies: CookieJar | None = None
    """``--cookies``: sent by their own rules, never after a redirect to another origin."""
    netrc: NetrcCredentials | None = None
    """``--netrc``: Basic auth for a host without URL credentials, on its own origin only."""
    resolve: tuple[Resolve, ...] = ()
    ipv4: bool = False
    ipv6: bool = False

    def __post_init__(self) -> None:
        if self.ipv4 and self.ipv6:
            raise UsageError("-4 (ipv4) and -6 (ipv6) cannot be used together")
        if self.cookies is not None and not isinstance(self.cookies, CookieJar):
            raise UsageError(f"cookies must be a CookieJar, not {self.cookies!r}")
        if self.netrc is not None and not isinstance(self.netrc, NetrcCredentials):
            raise UsageError(f"netrc must be NetrcCredentials, not {self.netrc!r}")
        if not all(isinstance(r, Resolve) for r in self.resolve):
            raise UsageError(f"resolve must hold Resolve values, not {self.resolve!r}")
        if not 1 <= self.jobs <= MAX_JOBS:
            raise UsageError(f"jobs must be between 1 and {MAX_JOBS}, not {self.jobs}")
        if self.threads is not None and not 1 <= self.threads <= MAX_JOBS:
            raise UsageError(f"threads must be between 1 and {MAX_JOBS}, not {self.threads}")
        if self.speed_limit is not None and self.speed_limit <= 0:
            raise UsageError(f"speed_limit must be more than zero, not {self.speed_limit}")
        if not (math.isfinite(self.speed_time) and self.speed_time > 0):
            raise UsageError(f"speed_time must be a number of seconds > 0, not {self.speed_time}")
        try:
            object.__setattr__(self, "http", HttpVersion(str(self.http)))
        except ValueError:
            raise UsageError(f"http must be 1.1, 2 or 3, not {self.http!r}") from None
        if self.retries < 0:
            raise UsageError(f"retries must be 0 or more, not {self.retries}")
        if not (math.isfinite(self.retry_wait) and self.retry_wait >= 0):
            raise UsageError(f"retry_wait must be a number of seconds >= 0, not {self.retry_wait}")
        if not (math.isfinite(self.timeout) and self.timeout > 0):
            raise UsageError(f"timeout must be a number of seconds > 0, not {self.timeout}")
        for name, value in self.headers:
            if not _TOKEN_RE.match(name) or any(ch in value for ch in "\r\n\0"):
                raise UsageError(f"not a header: {name!r}: {value!r}")
        if any(ch in self.user_agent for ch in "\r\n\0"):
            raise UsageError("user_agent may not contain line breaks")
        if self.limit_rate is not None and self.limit_rate <= 0:
            raise UsageError(f"limit_rate must be more than zero, not {self.limit_rate}")
        if self.per_host is not None and not 1 <= self.per_host <= MAX_PER_HOST:
            raise UsageError(f"per_host must be between 1 and {MAX_PER_HOST}, not {self.per_host}")
        if not 1 <= self.split <= MAX_SPLIT:
            raise UsageError(f"split must be between 1 and {MAX_SPLIT}, not {self.split}")
        if self.split_min_size < 0:
            raise UsageError(f"split_min_size must be 0 or more, not {self.split_min_size}")
        if self.insecure and self.ca_bundle is not None:
            raise UsageError("insecure and ca_bundle cannot be used together")
        if self.shard is not None and self.on_exist == OnExist.RENAME:
            raise UsageError(
                "shard cannot be used with on_exist rename: its names depend on the files"
                " that the other parts are writing meanwhile"
            )
        if self.shard is not None and self.content_disposition:
            raise UsageError(
                "shard cannot be used with content_disposition: names from the server"
                " cannot be decided in list order across the parts"
            )
        object.__setattr__(self, "on_exist", parse_on_exist(self.on_exist))

    @property
    def lanes(self) -> int:
        """How many lanes carry the downloads: ``threads``, else the CPUs, never above jobs."""
        wanted = self.threads if self.threads is not None else (os.cpu_count() or 1)
        return max(1, min(wanted, self.jobs))


def parse_on_exist(value: OnExist | str) -> OnExist:
    """``"rename"`` -> :attr:`OnExist.RENAME`; anything else than skip/overwrite/rename fails."""
    try:
        return OnExist(value)
    except ValueError:
        choices = ", ".join(OnExist)
        raise UsageError(f"on_exist must be one of {choices}, not {value!r}") from None


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """``"32M"`` -> 33554432. Units K, M, G, T are powers of 1024; a bare number is bytes.

    ``KB``/``KiB``, ``MB``/``MiB``, ... are taken deliberately as the same powers of
    1024 (as aria2, wget and curl take ``K`` and ``M``): a careful user writing
    ``2MB`` for a rate means "about two megabytes", and the 5% between the readings
    never matters more than refusing the value would. The error message says so.
    """
    match = _SIZE_RE.match(text)
    try:
        if not match:
            raise ValueError(text)
        number, unit = match.groups()
        return int(float(number) * _UNITS[unit.lower()])
    except (ValueError, OverflowError):
        raise UsageError(
            f"not a size: {text!r} (use a number with an optional K, M, G or T,"
            " all powers of 1024; KB and KiB both mean K)"
        ) from None


def parse_rate(text: str) -> int:
    """``"500K"`` (bytes per second, optionally written ``500K/s``) -> 512000; must be > 0."""
    rate = parse_size(text.removesuffix("/s"))
    if rate <= 0:
        raise UsageError(f"rate must be more than zero: {text!r}")
    return rate


_TOKEN_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def parse_header(text: str) -> tuple[str, str]:
    """``"Name: value"`` -> ``("Name", "value")``; rejects bad names and line breaks."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not _TOKEN_RE.match(name):
        raise UsageError(f"not a header: {text!r} (use 'Name: value')")
    if any(ch in value for ch in "\r\n\0"):
        raise UsageError(f"header value may not contain line breaks: {text!r}")
    return name, value


_HEX_LENGTHS = {"sha-256": 64, "sha-512": 128, "sha-1": 40, "md5": 32}


def parse_checksum(text: str) -> Checksum:
    """``"sha-256=9f86d0..."`` -> :class:`Checksum`; the hex length must fit the algorithm."""
    algorithm, sep, hexdigest = text.partition("=")
    algorithm = algorithm.strip().lower()
    hexdigest = hexdigest.strip().lower()
    if not sep or algorithm not in ALGORITHMS:
        names = ", ".join(ALGORITHMS)
        raise UsageError(f"bad checksum {text!r}: use ALGO=HEX with ALGO one of {names}")
    if len(hexdigest) != _HEX_LENGTHS[algorithm] or not re.fullmatch(r"[0-9a-f]+", hexdigest):
        raise UsageError(
            f"bad checksum {text!r}: {algorithm} needs {_HEX_LENGTHS[algorithm]} hex digits"
        )
    return Checksum(algorithm, hexdigest)
