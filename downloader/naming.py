"""Pure naming policy: where a URL's bytes may go, and never anywhere else.

A *relative path* here is a tuple of safe path components below the destination
folder; no component is empty, ``.``, ``..`` or contains a separator, so joining
it to the destination can never leave it.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

from .safetext import is_invisible

MAX_NAME_BYTES = 250
"""A name is cut to this many bytes, so that ``NAME.part`` fits the usual 255."""

PART_SUFFIX = ".part"
RECORD_SUFFIX = ".part.pdl"
"""The resume record beside a partial: ``NAME.part.pdl``."""
TMP_SUFFIX = ".tmp"
"""A record is written to ``NAME.part.pdl.tmp`` first, then renamed."""
COMPANIONS = (PART_SUFFIX, RECORD_SUFFIX, RECORD_SUFFIX + TMP_SUFFIX)
"""Files a download keeps beside its final name while it is in progress. No name that
:func:`sanitize` returns ends in one of them (in any letter case), so a download can
never be taken for another one's companion, nor plant one."""
DEFAULT_NAME = "index.html"

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff/\\\\]")
"""Control characters (Unicode category Cc), lone surrogates (Cs), and both slashes."""

RelPath = tuple[str, ...]


_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"} | {f"{port}{n}" for port in ("COM", "LPT") for n in range(1, 10)}
)
"""Windows device names: ``CON``, ``nul.txt`` or ``COM1.tar.gz`` there name a device, not a file."""


def sanitize(name: str) -> str:
    """Make one path component safe: no separators, control characters, ``.`` or ``..``.

    Control characters, ``/``, ``\\`` and NUL become ``_``, and so do the characters
    that do not show as themselves (bidirectional overrides such as U+202E, zero-width
    spaces and joiners, line separators: :func:`safetext.is_invisible`), so that
    ``invoice\u202efdp.exe`` cannot pass for ``invoiceexe.pdf``. The result is cut to
    :data:`MAX_NAME_BYTES` bytes of UTF-8, keeping the extension. The name is also
    made portable, so that a folder of downloads still works when it is copied to a
    Windows, SMB or exFAT disk: trailing dots and spaces are dropped, and a Windows
    device name gets ``_`` after its stem (``CON`` -> ``CON_``, ``nul.txt`` ->
    ``nul_.txt``). Last, a name ending like one of pdl's own files (:data:`COMPANIONS`)
    gets ``_`` appended: ``report.part`` -> ``report.part_``.
    """
    name = _UNSAFE.sub("_", name)
    if not name.isascii():
        name = "".join("_" if is_invisible(c) else c for c in name)
    if name.strip() in ("", ".", ".."):
        name = name.replace(".", "_") if name.strip() else "_"
    return _not_companion(_portable(_cut(_portable(name))))


def is_companion(name: str) -> bool:
    """Does ``name`` end like a ``.part``, a resume record or its temporary file?"""
    return name.lower().endswith(COMPANIONS)


def _not_companion(name: str) -> str:
    """``report.part`` -> ``report.part_`` (cut first, when the ``_`` would not fit)."""
    if not is_companion(name):
        return name
    lowered = name.lower()
    suffix = next(s for s in COMPANIONS[::-1] if lowered.endswith(s))
    tail = name[-len(suffix) :] + "_"
    room = MAX_NAME_BYTES - len(tail.encode("utf-8"))
    stem = name[: -len(suffix)].encode("utf-8")[:room].decode("utf-8", "ignore")
    return stem + tail


def _portable(name: str) -> str:
    """No trailing dot or space, and no Windows device name (see :data:`_RESERVED`)."""
    name = name.rstrip(". ") or "_"
    stem, dot, rest = name.partition(".")
    if stem.rstrip(" ").upper() in _RESERVED:
        name = f"{stem}_{dot}{rest}"
    return name


def _cut(name: str, limit: int = MAX_NAME_BYTES) -> str:
    """Cut ``name`` to ``limit`` UTF-8 bytes, keeping a short extension intact."""
    if len(name.encode("utf-8")) <= limit:
        return name
    stem, ext = split_ext(name)
    if len(ext.encode("utf-8")) > 32:
        stem, ext = name, ""
    room = limit - len(ext.encode("utf-8"))
    stem = stem.encode("utf-8")[:room].decode("utf-8", "ignore")
    return stem + ext


def split_ext(name: str) -> tuple[str, str]:
    """``"a.tar.gz"`` -> ``("a.tar", ".gz")``; a leading dot is not an extension."""
    dot = name.rfind(".")
    if dot <= 0 or dot == len(name) - 1:
        return name, ""
    return name[:dot], name[dot:]


def last_component(name: str) -> str:
    """Drop every directory part of a server- or URL-supplied name (``/`` and ``\\``)."""
    return re.split(r"[/\\]", name)[-1]


def name_from_url(url: str) -> str:
    """The last segment of the URL path, percent-decoded, made safe; ``index.html`` if empty."""
    path = urlsplit(url).path
    segment = unquote(path.rsplit("/", 1)[-1], errors="replace")
    segment = last_component(segment)
    if segment in ("", ".", ".."):
        return DEFAULT_NAME
    return sanitize(segment)


_PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def _content_disposition_params(header: str) -> dict[str, str]:
    """Parameters of a ``Content-Disposition`` value, names lower-cased, values unquoted."""
    params: dict[str, str] = {}
    for key, value in _PARAM.findall(header):
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params.setdefault(key.lower(), value)
    return params


_EXT_CHARSETS = {"utf-8": "utf-8", "utf8": "utf-8", "iso-8859-1": "latin-1", "latin1": "latin-1"}
_EXT_CHARSETS |= {"latin-1": "latin-1", "us-ascii": "ascii", "ascii": "ascii"}
"""The charsets of an RFC 8187 ``filename*``: UTF-8 and ISO-8859-1 (all the RFC asks for),
and ASCII. Any other (``punycode``, ``rot13``, ``utf-7``, ...) makes the value unusable."""


def _decode_ext_value(value: str) -> str | None:
    """RFC 8187 ``charset'lang'pct-encoded`` -> text, or None when malformed."""
    charset, sep, rest = value.partition("'")
    _lang, sep2, encoded = rest.partition("'")
    codec = _EXT_CHARSETS.get(charset.strip().lower() or "utf-8")
    if not (sep and sep2) or codec is None:
        return None
    try:
        return unquote(encoded, encoding=codec, errors="strict")
    except ValueError:  # UnicodeDecodeError
        return None


def _fix_latin1(value: str) -> str:
    """Header text arrives decoded as Latin-1; recover a raw UTF-8 name when it is one."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def _usable(raw: str | None) -> str | None:
    """A name offered by a ``Content-Disposition`` without directories or leading dots."""
    if raw is None:
        return None
    name = last_component(raw).lstrip(". \t").strip()
    return sanitize(name) if name else None


def name_from_content_disposition(header: str) -> str | None:
    """The file name a ``Content-Disposition`` header offers, made safe, or None.

    ``filename*`` (RFC 6266/8187) wins over ``filename`` when it gives a name; an
    empty or undecodable one leaves the word to ``filename``. Directory parts and
    leading dots are removed. Total: any header gives a name or None, never an error.
    """
    params = _content_disposition_params(header)
    extended = params.get("filename*")
    name = _usable(_decode_ext_value(extended)) if extended is not None else None
    if name is None and "filename" in params:
        name = _usable(_fix_latin1(params["filename"]))
    return name


def check_relative(text: str, what: str) -> RelPath:
    """Validate a user-supplied relative path (``out=``/``dir=``) and split it into components.

    Raises ValueError for an absolute path or one with a ``..`` component; empty
    and ``.`` components are dropped, the rest sanitised.
    """
    if text.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", text):
        raise ValueError(f"{what} must be a relative path, not {text!r}")
    parts = [p for p in re.split(r"[/\\]", text) if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{what} may not contain '..': {text!r}")
    return tuple(sanitize(p) for p in parts)


def numbered(name: str, n: int) -> str:
    """``numbered("a.tar.gz", 2)`` -> ``"a.tar.2.gz"``: the number before the last extension."""
    if n == 0:
        return name
    stem, ext = split_ext(name)
    if len(ext.encode("utf-8")) > 32:
        stem, ext = name, ""
    suffix = f".{n}{ext}"
    room = MAX_NAME_BYTES - len(suffix.encode("utf-8"))
    stem = stem.encode("utf-8")[:room].decode("utf-8", "ignore")
    return stem + suffix


def with_name(rel: RelPath, name: str) -> RelPath:
    return (*rel[:-1], name)


def display(rel: RelPath, dest: str) -> str:
    """The path as printed to the user: ``dest/sub/name`` (no ``./`` when dest is ``.``)."""
    joined = "/".join(rel)
    if dest in ("", "."):
        return joined
    return dest.rstrip("/") + "/" + joined
