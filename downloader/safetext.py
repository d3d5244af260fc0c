"""Text made safe to show: credentials redacted, invisible characters escaped.

Both are plain string work that never depends on a URL parsing: a URL that
``urlsplit`` rejects (a ``#``, ``/``, ``?`` or space in a password, a broken IPv6
literal) is exactly the one most likely to be shown in an error, so its secret
must be hidden all the same.

- Redaction: in a URL, everything between ``scheme://`` (or the start, when there
  is no scheme) and the *last* ``@`` becomes ``***``, unless a plain ``host[:port]``
  comes first (then the ``@`` is in the path). A URL with credentials and an ``@``
  in its path is then over-redacted; that errs on the side of the secret.
- Escaping: control characters (Unicode Cc), format characters (Cf: bidirectional
  overrides, zero-width spaces and joiners), lone surrogates (Cs) and line or
  paragraph separators (Zl, Zp) are shown as ``\\xNN`` / ``\\uNNNN`` escapes, so a
  server's reason phrase, ``Location`` or a list's text cannot move the cursor,
  retitle the terminal, clear a line or reorder what a person reads.
"""

from __future__ import annotations

import re
import unicodedata

REDACTED = "***"
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""Characters that do not show as themselves: controls, format characters, surrogates,
line and paragraph separators."""

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S*")
_PLAIN_HOST = re.compile(r"(?:[\w.~%-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]*)?(?=[/?#]|$)")
"""A host name, IPv4 or IPv6 literal, and an optional port, then the path (or the end)."""


def is_invisible(char: str) -> bool:
    """True for a character that must not reach a terminal or a file name as it is."""
    return unicodedata.category(char) in INVISIBLE_CATEGORIES


def _escape_one(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape(text: str) -> str:
    """``text`` with every invisible character (see :func:`is_invisible`) as an escape.

    ``"a\\x1b[2Kb"`` -> ``"a\\\\x1b[2Kb"``; printable text is returned unchanged.
    """
    if text.isprintable():
        return text
    return "".join(_escape_one(c) if is_invisible(c) else c for c in text)


def userinfo(url: str) -> str | None:
    """The credentials part of ``url``: from after ``scheme://`` to the last ``@``, or None.

    The one exception: when what follows ``scheme://`` up to the first ``/``, ``?`` or
    ``#`` is a plain host (and port), the URL has no credentials, and an ``@`` further
    on is part of its path or query (``https://host/mail/to@someone``).
    """
    scheme = _SCHEME.match(url)
    start = scheme.end() if scheme else 0
    at = url.rfind("@", start)
    if at < 0 or (scheme is None and "://" in url):
        return None
    if _PLAIN_HOST.match(url, start):
        return None
    return url[start:at] or None


def redact_url(url: str) -> str:
    """``https://user:pass@host/x`` -> ``https://***@host/x``, parsed or not."""
    secret = userinfo(url)
    if secret is None:
        return url
    scheme = _SCHEME.match(url)
    start = scheme.end() if scheme else 0
    return url[:start] + REDACTED + url[start + len(secret) :]


def redact_in(text: str, url: str | None = None) -> str:
    """``text`` with the credentials of every URL in it, and ``url``'s anywhere, redacted."""
    if url is not None and (secret := userinfo(url)) is not None:
        text = text.replace(url, redact_url(url)).replace(secret + "@", REDACTED + "@")
    if "@" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group()), text)


def redact(url: str) -> str:
    """A URL as pdl shows it: credentials redacted, invisible characters escaped."""
    return escape(redact_url(url))


def redact_text(text: str, url: str) -> str:
    """A message as pdl shows it: ``url``'s and any URL's credentials redacted, escaped."""
    return escape(redact_in(text, url))
