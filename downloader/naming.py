"""Pure naming policy: where a URL's bytes may go, and never anywhere else.

A *relative path* here is a tuple of safe path components below the destination
folder; no component is empty, ``.``, ``..`` or contains a separator, so joining
it to the destination can never leave it.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit

MAX_NAME_BYTES = 250
"""A name is cut to this many bytes, so that ``NAME.part`` fits the usual 255."""

PART_SUFFIX = ".part"
RECORD_SUFFIX = ".part.pdl"
"""The resume record beside a partial: ``NAME.part.pdl``."""
COMPANIONS = (PART_SUFFIX, RECORD_SUFFIX)
"""Files a download keeps beside its final name while it is in progress."""
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

    Control characters, ``/``, ``\\`` and NUL become ``_``; the result is cut to
    :data:`MAX_NAME_BYTES` bytes of UTF-8, keeping the extension. The name is also
    made portable, so that a folder of downloads still works when it is copied to a
    Windows, SMB or exFAT disk: trailing dots and spaces are dropped, and a Windows
    device name gets ``_`` after its stem (``CON`` -> ``CON_``, ``nul.txt`` ->
    ``nul_.txt``).
    """
    name = _UNSAFE.sub("_", name)
    if name.strip() in ("", ".", ".."):
        name = name.replace(".", "_") if name.strip() else "_"
    return _portable(_cut(_portable(name)))


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


def _decode_ext_value(value: str) -> str | None:
    """RFC 5987 ``charset'lang'pct-encoded`` -> text, or None when malformed."""
    charset, sep, rest = value.partition("'")
    _lang, sep2, encoded = rest.partition("'")
    if not (sep and sep2):
        return None
    try:
        return unquote(encoded, encoding=charset or "utf-8", errors="strict")
    except (LookupError, UnicodeDecodeError):
        return None


def _fix_latin1(value: str) -> str:
    """Header text arrives decoded as Latin-1; recover a raw UTF-8 name when it is one."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def name_from_content_disposition(header: str) -> str | None:
    """The file name a ``Content-Disposition`` header offers, made safe, or None.

    ``filename*`` (RFC 6266/5987) wins over ``filename``; directory parts and
    leading dots are removed.
    """
    params = _content_disposition_params(header)
    raw = _decode_ext_value(params["filename*"]) if "filename*" in params else None
    if raw is None and "filename" in params:
        raw = _fix_latin1(params["filename"])
    if raw is None:
        return None
    name = last_component(raw).lstrip(". \t").strip()
    if not name:
        return None
    return sanitize(name)


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
