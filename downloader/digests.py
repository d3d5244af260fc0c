"""Digests that need no I/O: a server's digest headers, checksum manifests, ``--write-sums`` lines.

Every parser here is total, as in :mod:`downloader.wire`: a header value a
server sends is parsed or ignored, never an exception; a manifest line is
parsed or gives the reason it is refused.

- ``Repr-Digest`` (RFC 9530) is a structured dictionary, ``sha-256=:BASE64:``, of the
  whole representation: it holds for a ``206`` as much as for a ``200``.
  ``Content-Digest`` is of the content of this one message: the whole file for a
  ``200`` without a content coding, only the part for a ``206`` (so ignored there).
  ``Digest`` (RFC 3230, obsoleted by RFC 9530), ``SHA-256=BASE64``, is taken for a
  ``200`` only: servers disagree about what it covers in a ``206``, and RFC 9530
  retired it for that reason.
- Only sha-256 and sha-512 are taken from headers; any other algorithm is ignored.
- A manifest is ``sha256sum``/``sha512sum``/``sha1sum``/``md5sum`` output
  (``HEX  NAME``, ``HEX *NAME``, with GNU's leading ``\\`` for escaped names) or BSD
  ``SHA256 (NAME) = HEX``; the algorithm is the BSD tag's or the hex length's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .options import ALGORITHMS, Checksum

HEADER_ALGORITHMS = {"sha-256": 32, "sha-512": 64}
"""Algorithms a digest header may use (RFC 9530 names) -> digest bytes; sha-256 first."""

_BY_HEX_LENGTH = {32: "md5", 40: "sha-1", 64: "sha-256", 128: "sha-512"}
_BSD_TAGS = {"MD5": "md5", "SHA1": "sha-1", "SHA256": "sha-256", "SHA512": "sha-512"}
_HEX = re.compile(r"[0-9a-fA-F]+")
_GNU_LINE = re.compile(r"([0-9a-fA-F]+) [ *](.+)")
_BSD_LINE = re.compile(r"([A-Za-z0-9-]+) ?\((.+)\) ?= ?([0-9a-fA-F]+)")


@dataclass(frozen=True, slots=True)
class Expected:
    """A digest the finished file must have, and who said so (for the error message)."""

    checksum: Checksum
    origin: str


def _decode(text: str, size: int) -> str | None:
    """Base64 ``text`` of a ``size``-byte digest -> lower-case hex, or None."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == size else None


def _members(value: str) -> dict[str, str]:
    """``a=1, b=2;p=q`` -> ``{"a": "1", "b": "2"}`` (names lower-cased; parameters dropped).

    Base64 has no commas, so a plain split is exact for the values a digest field
    can carry; a member without ``=`` is skipped. A name given twice keeps its
    last value, as RFC 8941 says for dictionaries.
    """
    found: dict[str, str] = {}
    for member in value.split(","):
        name, sep, rest = member.partition("=")
        if sep:
            found[name.strip().lower()] = rest.split(";", 1)[0].strip()
    return found


def _structured(value: str) -> dict[str, str]:
    """RFC 9530 ``Repr-Digest`` / ``Content-Digest``: algorithm -> hex, supported ones only."""
    digests: dict[str, str] = {}
    for name, item in _members(value).items():
        size = HEADER_ALGORITHMS.get(name)
        if size is None or len(item) < 2 or item[0] != ":" or item[-1] != ":":
            continue
        if (hexdigest := _decode(item[1:-1], size)) is not None:
            digests[name] = hexdigest
    return digests


def _legacy(value: str) -> dict[str, str]:
    """RFC 3230 ``Digest``: ``SHA-256=BASE64`` (names in any case), supported ones only."""
    digests: dict[str, str] = {}
    for member in value.split(","):
        name, sep, item = member.partition("=")  # base64 padding keeps its own '='
        size = HEADER_ALGORITHMS.get(name.strip().lower())
        if sep and size is not None and (hexdigest := _decode(item, size)) is not None:
            digests[name.strip().lower()] = hexdigest
    return digests


def from_headers(status: int, headers: Mapping[str, str]) -> Expected | None:
    """The digest of the whole representation a response's headers vouch for, if any.

    ``Repr-Digest`` first, then (for a ``200``) ``Content-Digest`` and ``Digest``;
    within a field sha-256 before sha-512 (it shares a hasher with ``--write-sums``).
    """
    fields: list[tuple[str, dict[str, str]]] = []
    if status in (200, 206):
        fields.append(("Repr-Digest", _structured(headers.get("Repr-Digest", ""))))
    if status == 200:
        coding = headers.get("Content-Encoding", "identity").strip().lower()
        if coding in ("", "identity"):
            fields.append(("Content-Digest", _structured(headers.get("Content-Digest", ""))))
        fields.append(("Digest", _legacy(headers.get("Digest", ""))))
    for field_name, digests in fields:
        for algorithm in HEADER_ALGORITHMS:
            if algorithm in digests:
                return Expected(Checksum(algorithm, digests[algorithm]), field_name)
    return None


class Hashes:
    """Several hashes of one stream (a :class:`~downloader.sink.Hasher`): one per algorithm."""

    def __init__(self, algorithms: Iterable[str]) -> None:
        self._hashes = {a: hashlib.new(ALGORITHMS[a]) for a in sorted(set(algorithms))}

    def update(self, data: bytes, /) -> None:
        for h in self._hashes.values():
            h.update(data)

    def of(self, algorithm: str) -> str:
        return self._hashes[algorithm].hexdigest()

    def hexdigest(self) -> str:
        return next(iter(self._hashes.values())).hexdigest()


# -- manifests ------------------------------------------------------------------


def _unescape(name: str) -> str | None:
    """GNU's escaped name (``\\\\`` and ``\\n``) -> the name, or None if it is not one."""
    out, chars = [], iter(name)
    for ch in chars:
        if ch != "\\":
            out.append(ch)
            continue
        nxt = next(chars, "")
        if nxt == "\\":
            out.append("\\")
        elif nxt == "n":
            out.append("\n")
        else:
            return None
    return "".join(out)


def parse_manifest_line(line: str) -> tuple[str, Checksum] | str | None:
    """One manifest line -> ``(NAME, checksum)``, a reason it is refused, or None (blank/comment).

    NAME loses a leading ``./``, so ``sha256sum ./a.iso`` output matches ``a.iso``.
    """
    line = line.rstrip("\r\n")
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    escaped = line.startswith("\\")
    body = line[1:] if escaped else line
    if gnu := _GNU_LINE.fullmatch(body):
        hexdigest, name = gnu[1], gnu[2]
        algorithm = _BY_HEX_LENGTH.get(len(hexdigest))
        if algorithm is None:
            return (
                f"a digest of {len(hexdigest)} hex digits is none of md5, sha-1, sha-256, sha-512"
            )
    elif bsd := _BSD_LINE.fullmatch(body):
        tag, name, hexdigest = bsd[1], bsd[2], bsd[3]
        found = _BSD_TAGS.get(tag.upper().replace("-", ""))
        if found is None:
            return f"unsupported algorithm {tag!r} (use MD5, SHA1, SHA256 or SHA512)"
        algorithm = found
        want = 2 * hashlib.new(ALGORITHMS[algorithm]).digest_size
        if len(hexdigest) != want:
            return f"{tag} needs {want} hex digits, not {len(hexdigest)}"
    else:
        return "not a checksum line (use 'HEX  NAME' or 'SHA256 (NAME) = HEX')"
    if escaped and (unescaped := _unescape(name)) is not None:
        name = unescaped
    elif escaped:
        return "a bad escape in the name"
    while name.startswith("./"):
        name = name[2:]
    if not name or name.startswith("/") or ".." in name.split("/"):
        return f"not a path under --dir: {name!r}"
    return name, Checksum(algorithm, hexdigest.lower())


class Manifest:
    """The checksums of a manifest by name (relative to ``--dir``), and which were used.

    Held whole in memory (a name and a digest a line: about 200 bytes), as a
    manifest names the files of one release, not millions.
    """

    def __init__(self, source: str, sums: Mapping[str, tuple[Checksum, int]]) -> None:
        self.source = source
        self._sums = dict(sums)
        self.matched = 0

    def __len__(self) -> int:
        return len(self._sums)

    def lookup(self, name: str) -> tuple[Checksum, str] | None:
        """The checksum for ``name`` and its ``FILE:LINE``; counts a match."""
        found = self._sums.get(name)
        if found is None:
            return None
        self.matched += 1
        return found[0], f"{self.source}:{found[1]}"


def parse_manifest(lines: Iterable[str], source: str) -> tuple[Manifest, list[str]]:
    """A manifest's lines -> the :class:`Manifest` and ``FILE:LINE: reason`` for each bad line.

    A name listed twice with different digests is a bad line (the later one); the
    same digest twice is harmless.
    """
    sums: dict[str, tuple[Checksum, int]] = {}
    errors: list[str] = []
    for number, line in enumerate(lines, 1):
        parsed = parse_manifest_line(line)
        if parsed is None:
            continue
        if isinstance(parsed, str):
            errors.append(f"{source}:{number}: {parsed}")
            continue
        name, checksum = parsed
        had = sums.get(name)
        if had is not None and had[0] != checksum:
            errors.append(f"{source}:{number}: {name!r} has another checksum on line {had[1]}")
            continue
        if had is None:
            sums[name] = (checksum, number)
    return Manifest(source, sums), errors


def sum_line(hexdigest: str, path: str) -> str:
    """``HEX  PATH`` as ``sha256sum`` writes it (GNU's escaping for ``\\`` and newlines)."""
    if "\\" in path or "\n" in path:
        escaped = path.replace("\\", "\\\\").replace("\n", "\\n")
        return f"\\{hexdigest}  {escaped}\n"
    return f"{hexdigest}  {path}\n"
