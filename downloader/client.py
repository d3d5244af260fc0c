"""What every request of a run shares, and the rules a redirect must keep (pure).

The transport is libcurl (:mod:`downloader.curl`). pdl follows redirects itself
rather than with ``CURLOPT_FOLLOWLOCATION``: libcurl 8.23 drops ``Authorization``
and ``Cookie`` on a redirect to another host but was seen sending ``X-Api-Key``
and ``Proxy-Authorization`` on, and pdl sends no user header at all to another
origin. So the next hop, and what may go with it, is decided here.
"""

from __future__ import annotations

import os
import urllib.request
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

from .cookies import CookieJar
from .credentials import NetrcCredentials
from .errors import TransferError
from .options import HttpVersion

MAX_REDIRECTS = 10


@dataclass(frozen=True, slots=True)
class ProxyRoutes:
    """Proxy settings of the environment, read once per run (``*_proxy``, ``no_proxy``)."""

    proxies: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_environment(cls) -> ProxyRoutes:
        return cls(tuple(sorted(urllib.request.getproxies().items())))

    def proxy_for(self, url: str) -> str | None:
        """The proxy URL for ``url``, or None to go direct."""
        if not self.proxies:
            return None
        table = dict(self.proxies)
        parts = urlsplit(url)
        proxy = table.get(parts.scheme) or table.get("all")
        if proxy is None:
            return None
        bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]
        return None if bypass(parts.hostname or "", table) else proxy


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    """What every transfer of a run shares; built once per run."""

    headers: tuple[tuple[str, str], ...]
    """pdl's own request headers (User-Agent, Accept-Encoding, Accept)."""
    user_headers: tuple[tuple[str, str], ...] = ()
    """``-H``: sent to the entry's own origin only, never after a redirect elsewhere."""
    timeout: float
    verify: bool | str
    """True: the default CA bundle; False: no verification; a path: that bundle."""
    routes: ProxyRoutes = ProxyRoutes()
    http: HttpVersion = HttpVersion.HTTP2
    speed_limit: int | None = None
    speed_time: float = 30.0
    buffer_size: int = 256 * 1024
    cookies: CookieJar | None = None
    """``--cookies``: a ``Cookie`` header per request on the entry's own origin only."""
    netrc: NetrcCredentials | None = None
    """``--netrc``: credentials for a URL without its own, on the entry's own origin only."""
    resolve: tuple[str, ...] = ()
    """``--resolve`` entries as libcurl takes them: ``HOST:PORT:ADDR``."""
    ip_version: int | None = None
    """4 or 6 (``-4`` / ``-6``); None: both."""

    @staticmethod
    def ca_setting(*, insecure: bool, ca_bundle: str | None) -> bool | str:
        """``--insecure``, ``--ca-bundle``, else ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``."""
        if insecure:
            return False
        if ca_bundle:
            return ca_bundle
        return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True

    def request_headers(
        self, extra: tuple[tuple[str, str], ...], *, own_origin: bool
    ) -> list[tuple[str, str]]:
        """The headers of one request; a later header replaces an earlier of its name."""
        merged: dict[str, tuple[str, str]] = {}
        for name, value in (*self.headers, *(self.user_headers if own_origin else ()), *extra):
            merged[name.lower()] = (name, value)
        return list(merged.values())


def split_credentials(url: str) -> tuple[str, str | None]:
    """``https://u:p@host/x`` -> (``https://host/x``, ``"u:p"``); userinfo is never sent as is."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    clean = urlunsplit(parts._replace(netloc=hostport))
    return clean, f"{unquote(user)}:{unquote(password)}"


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def keeps_credentials(old: str, new: str) -> bool:
    """True when a redirect from ``old`` to ``new`` may carry Authorization (as requests).

    Only to the same host, on the same scheme and port, or the http -> https upgrade
    of the default ports.
    """
    was, now = _origin(old), _origin(new)
    if was == now:
        return True
    return was == ("http", now[1], 80) and now == ("https", was[1], 443)


def redirect_target(old: str, location: str) -> tuple[str, str | None]:
    """Where a redirect from ``old`` goes: the URL without credentials, and its credentials.

    Raises :class:`TransferError` (not retried) for a URL pdl must not follow.
    """
    try:
        new, credentials = split_credentials(urljoin(old, location))
        parts = urlsplit(new)
        scheme, port, host = parts.scheme, parts.port, parts.hostname
    except ValueError:  # a bad port or a broken IPv6 literal
        raise TransferError("redirect to a malformed URL", retryable=False) from None
    if scheme not in ("http", "https") or port == 0 or not host:
        raise TransferError(
            f"redirect to a URL pdl cannot fetch: {scheme or 'no scheme'}://...", retryable=False
        )
    return new, credentials
