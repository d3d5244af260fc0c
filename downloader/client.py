"""One worker's HTTP client, straight on urllib3: pools, proxies, TLS and redirects.

pdl used ``requests`` here first. Profiled on many small files it spent about
0.9 ms of Python per request (request preparation, hooks, cookie jars, header
merging, ``typing.Protocol`` checks) against about 0.45 ms for the same
request through urllib3, which requests is built on. Under the GIL that time is
the ceiling of a whole run, so the hot path talks to urllib3 and does the few
things pdl needs from requests itself: redirects (at most 10, http/https only,
credentials dropped on a host change), URL credentials as Basic auth, proxies
from the environment with ``no_proxy``, and the CA bundle.
"""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

import certifi
import urllib3

from .errors import TransferError
from .wire import translated

MAX_REDIRECTS = 10
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
SMALL_BODY = 64 * 1024
"""A redirect or error body up to this size is read off so the connection is reused."""

Response = urllib3.BaseHTTPResponse


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
    """What every worker's client shares; built once per run."""

    headers: tuple[tuple[str, str], ...]
    timeout: float
    verify: bool | str
    """True: the default CA bundle; False: no verification; a path: that bundle."""
    routes: ProxyRoutes = ProxyRoutes()

    @staticmethod
    def ca_setting(*, insecure: bool, ca_bundle: str | None) -> bool | str:
        """``--insecure``, ``--ca-bundle``, else ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``."""
        if insecure:
            return False
        if ca_bundle:
            return ca_bundle
        return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True


def _split_credentials(url: str) -> tuple[str, str | None]:
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


def finish(resp: Response, *, drain: bool = False) -> None:
    """Give the connection back to its pool.

    A body read to its end has already given it back. With ``drain`` a small
    unread body (a redirect's, an error page) is read off so the connection is
    reused; otherwise an unfinished connection is closed, never reused mid-body.
    """
    if drain and resp.length_remaining is not None and resp.length_remaining <= SMALL_BODY:
        try:
            resp.drain_conn()
        except Exception:  # a broken body only costs the connection
            resp.close()
    else:
        resp.close()
    resp.release_conn()


class Client:
    """The connections of one worker thread (never shared between threads)."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        self._headers = urllib3.HTTPHeaderDict()
        for name, value in config.headers:  # a later header replaces an earlier of its name
            self._headers[name] = value
        self._timeout = urllib3.Timeout(connect=config.timeout, read=config.timeout)
        self._tls: dict[str, Any] = {}
        if config.verify is False:
            self._tls = {"cert_reqs": "CERT_NONE"}
        else:
            bundle = certifi.where() if config.verify is True else config.verify
            self._tls = {"cert_reqs": "CERT_REQUIRED", "ca_certs": bundle}
        self._direct = urllib3.PoolManager(num_pools=4, maxsize=1, **self._tls)
        self._proxied: dict[str, urllib3.ProxyManager] = {}

    def _manager(self, url: str) -> urllib3.PoolManager:
        proxy = self.config.routes.proxy_for(url)
        if proxy is None:
            return self._direct
        manager = self._proxied.get(proxy)
        if manager is None:
            plain, credentials = _split_credentials(proxy)
            headers = urllib3.make_headers(proxy_basic_auth=credentials) if credentials else None
            manager = urllib3.ProxyManager(plain, proxy_headers=headers, maxsize=1, **self._tls)
            self._proxied[proxy] = manager
        return manager

    def get(self, url: str, headers: Mapping[str, str]) -> Response:
        """GET ``url``, following redirects; the caller reads the body and calls :func:`finish`.

        Raises :class:`TransferError` for a connection failure, a redirect pdl must
        not follow, or too many of them. Any status is returned, 3xx without a
        Location included.
        """
        target, credentials = _split_credentials(url)
        sent = urllib3.HTTPHeaderDict(self._headers)
        for name, value in headers.items():
            sent[name] = value  # replaces a header of any spelling
        if credentials is not None and "Authorization" not in sent:
            sent.update(urllib3.make_headers(basic_auth=credentials))
        for _ in range(MAX_REDIRECTS + 1):
            with translated(lambda: "while connecting"):
                resp = self._manager(target).urlopen(
                    "GET",
                    target,
                    headers=sent,
                    redirect=False,
                    retries=False,
                    preload_content=False,
                    decode_content=False,
                    timeout=self._timeout,
                )
            location = resp.headers.get("Location")
            if resp.status not in REDIRECT_STATUSES or not location:
                return resp
            finish(resp, drain=True)
            target, sent = self._redirected(target, location, sent)
        raise TransferError(f"too many redirects (more than {MAX_REDIRECTS})", retryable=False)

    @staticmethod
    def _redirected(
        old: str, location: str, sent: urllib3.HTTPHeaderDict
    ) -> tuple[str, urllib3.HTTPHeaderDict]:
        try:
            new, credentials = _split_credentials(urljoin(old, location))
            scheme, port = urlsplit(new).scheme, urlsplit(new).port
        except ValueError:  # a bad port or a broken IPv6 literal
            raise TransferError("redirect to a malformed URL", retryable=False) from None
        if scheme not in ("http", "https") or port == 0:
            shown = location if "@" not in location else f"{scheme}://***"
            raise TransferError(f"redirect to a URL pdl cannot fetch: {shown}", retryable=False)
        sent = urllib3.HTTPHeaderDict(sent)
        if not keeps_credentials(old, new) or credentials is not None:
            sent.discard("Authorization")
        if credentials is not None:
            sent.update(urllib3.make_headers(basic_auth=credentials))
        return new, sent

    def close(self) -> None:
        """Close every connection now (urllib3 2 otherwise leaves it to garbage collection)."""
        for manager in (self._direct, *self._proxied.values()):
            for key in list(manager.pools.keys()):
                pool = manager.pools.get(key)
                if pool is not None:
                    pool.close()
            manager.clear()
