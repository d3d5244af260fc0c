"""``--cookies FILE``: a Netscape ``cookies.txt``, read once, sent by its own rules (pure).

The file is read only: pdl never learns ``Set-Cookie`` and never writes the file
back. libcurl's own cookie engine (``CURLOPT_COOKIEFILE``) is not used because it
learns cookies from responses and would send the jar's cookies for a host that a
cross-origin redirect leads to; pdl sends no cookie at all after such a redirect
(docs/reliability.md), so the ``Cookie`` header is built here, per request, and the transport
adds it only while the request is still on the entry's own origin.

A line is ``DOMAIN  FLAG  PATH  SECURE  EXPIRES  NAME  VALUE`` (TABs): ``FLAG``
``TRUE`` makes a domain cookie (sent to DOMAIN and every name below it), ``FALSE``
a host-only one (DOMAIN exactly); a leading dot of DOMAIN is dropped, as curl does.
``EXPIRES`` 0 is a session cookie (kept); an expiry in the past drops the cookie.
``#HttpOnly_`` before DOMAIN (curl's and browsers' exports) is not a comment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .errors import UsageError

HTTPONLY_PREFIX = "#HttpOnly_"
_FLAGS = {"TRUE": True, "FALSE": False}
_COOKIE_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_COOKIE_VALUE = re.compile(r'^[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*$|^"[^";\\]*"$')
"""RFC 6265 cookie-octets (no space, comma, semicolon, backslash or quote), or quoted."""


@dataclass(frozen=True, slots=True)
class Cookie:
    domain: str
    """Lower case, without a leading dot."""
    subdomains: bool
    """True: a domain cookie; False: host-only."""
    path: str
    secure: bool
    expires: int
    """Seconds since the epoch; 0: a session cookie."""
    name: str
    value: str = field(repr=False)

    def matches(self, scheme: str, host: str, path: str, now: float) -> bool:
        """Is this cookie for a request of ``scheme://host/path`` at time ``now``?"""
        if self.expires and self.expires <= now:
            return False
        if self.secure and scheme != "https":
            return False
        if host != self.domain and not (self.subdomains and host.endswith("." + self.domain)):
            return False
        return path_matches(path, self.path)


def path_matches(request_path: str, cookie_path: str) -> bool:
    """RFC 6265 5.1.4: ``/docs`` matches ``/docs``, ``/docs/a``, but not ``/docsx``."""
    if request_path == cookie_path:
        return True
    if not request_path.startswith(cookie_path):
        return False
    return cookie_path.endswith("/") or request_path[len(cookie_path)] == "/"


@dataclass(frozen=True, slots=True)
class CookieJar:
    """The cookies of one file, in file order (a later duplicate replaces an earlier)."""

    cookies: tuple[Cookie, ...] = ()
    warnings: tuple[str, ...] = ()
    """One message per line that was skipped, naming FILE:LINE."""

    def header_for(self, url: str, *, now: float) -> str | None:
        """The ``Cookie`` value for a request of ``url`` at time ``now``, or None.

        Longer paths first, then file order (RFC 6265 5.4).
        """
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), (parts.hostname or "").lower().rstrip(".")
        path = parts.path or "/"
        chosen = [c for c in self.cookies if c.matches(scheme, host, path, now)]
        if not chosen:
            return None
        chosen.sort(key=lambda c: -len(c.path))
        return "; ".join(f"{c.name}={c.value}" for c in chosen)


def parse_cookie_line(line: str) -> Cookie | None:
    """One line of ``cookies.txt`` -> a :class:`Cookie` (None: a comment or blank line).

    Raises ValueError with the reason for a malformed line.
    """
    line = line.rstrip("\r\n")
    if line.startswith(HTTPONLY_PREFIX):
        line = line[len(HTTPONLY_PREFIX) :]
    elif not line.strip() or line.lstrip().startswith("#"):
        return None
    fields = line.split("\t")
    if len(fields) == 6:  # curl writes a cookie with an empty value this way
        fields.append("")
    if len(fields) != 7:
        raise ValueError(f"expected 7 TAB-separated fields, found {len(fields)}")
    domain, flag, path, secure, expires, name, value = fields
    domain = domain.strip().lower().lstrip(".").rstrip(".")
    if not domain or any(ch in domain for ch in " /:;,\\"):
        raise ValueError(f"not a domain: {fields[0]!r}")
    if flag not in _FLAGS or secure not in _FLAGS:
        raise ValueError("the 2nd and 4th fields must be TRUE or FALSE")
    if not path.startswith("/"):
        raise ValueError(f"the path must begin with '/': {path!r}")
    if not re.fullmatch(r"[0-9]+", expires.strip()):
        raise ValueError(f"the expiry must be a whole number of seconds: {expires!r}")
    if not _COOKIE_NAME.match(name):
        raise ValueError(f"not a cookie name: {name!r}")
    if not _COOKIE_VALUE.match(value):
        raise ValueError(f"the value of cookie {name!r} holds a character a Cookie header cannot")
    return Cookie(
        domain=domain,
        subdomains=_FLAGS[flag],
        path=path,
        secure=_FLAGS[secure],
        expires=int(expires),
        name=name,
        value=value,
    )


def parse_cookies(lines: list[str], source: str) -> CookieJar:
    """The lines of a cookies file -> a jar; a malformed line is skipped with a warning."""
    found: dict[tuple[str, bool, str, str], Cookie] = {}
    warnings: list[str] = []
    for number, line in enumerate(lines, 1):
        try:
            cookie = parse_cookie_line(line)
        except ValueError as exc:
            warnings.append(f"{source}:{number}: bad cookies line, skipped: {exc}")
            continue
        if cookie is not None:
            key = (cookie.domain, cookie.subdomains, cookie.path, cookie.name)
            found.pop(key, None)
            found[key] = cookie
    return CookieJar(tuple(found.values()), tuple(warnings))


def load_cookies(path: str | Path) -> CookieJar:
    """Read ``path`` (UsageError naming ``--cookies`` when it cannot be read)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"--cookies: cannot read {str(path)!r}: {exc.strerror or exc}") from None
    text = data.decode("utf-8", errors="replace")
    return parse_cookies(text.splitlines(), str(path))
