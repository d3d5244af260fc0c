"""``--netrc``: credentials from ``~/.netrc`` (or ``$NETRC``), matched by host exactly.

The file is parsed by Python's :mod:`netrc` and kept as a frozen value, so a run
reads it once and a cluster's workers get the value, not the path. A machine
entry is for that host name only (case aside: no port, no subdomain, no
wildcard); ``default`` is for every other host. The transport sends a credential
as Basic auth only when the URL has none of its own, no ``Authorization`` header
was given, and the request is still on the entry's own origin (docs/reliability.md).
"""

from __future__ import annotations

import netrc
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from .errors import UsageError


@dataclass(frozen=True, slots=True)
class NetrcCredentials:
    """``host -> (login, password)`` of one netrc file; the passwords are never shown."""

    source: str
    machines: tuple[tuple[str, tuple[str, str]], ...] = field(default=(), repr=False)
    default: tuple[str, str] | None = field(default=None, repr=False)
    warnings: tuple[str, ...] = ()

    def for_url(self, url: str) -> str | None:
        """``"login:password"`` for ``url``'s host (its machine entry, else ``default``)."""
        host = (urlsplit(url).hostname or "").lower().rstrip(".")
        entry = dict(self.machines).get(host, self.default)
        return None if entry is None else f"{entry[0]}:{entry[1]}"


def netrc_path(environ: dict[str, str] | os._Environ[str] = os.environ) -> Path:
    """``$NETRC`` when set, else ``~/.netrc`` (as curl)."""
    named = environ.get("NETRC")
    if named:
        return Path(named).expanduser()
    return Path(environ.get("HOME") or Path.home()) / ".netrc"


def exposure_warning(path: Path, mode: int) -> str | None:
    """A warning when the file's ``mode`` lets group or others read (or change) it."""
    if mode & 0o077:
        return (
            f"--netrc: {path} is readable by others (mode {stat.S_IMODE(mode):04o});"
            f" protect the passwords in it with: chmod 600 {path}"
        )
    return None


def load_netrc(path: Path | None = None) -> NetrcCredentials:
    """Read and parse the netrc file (UsageError naming ``--netrc`` when it cannot be)."""
    path = netrc_path() if path is None else path
    try:
        mode = path.stat().st_mode
        parsed = netrc.netrc(str(path))
    except netrc.NetrcParseError as exc:
        raise UsageError(f"--netrc: {exc.filename}:{exc.lineno}: {exc.msg}") from None
    except OSError as exc:
        raise UsageError(f"--netrc: cannot read {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"--netrc: {str(path)!r} is not text") from None
    machines: list[tuple[str, tuple[str, str]]] = []
    default: tuple[str, str] | None = None
    for host, (login, _account, password) in parsed.hosts.items():
        if host == "default":
            default = (login or "", password or "")
        else:
            machines.append((host.lower().rstrip("."), (login or "", password or "")))
    warning = exposure_warning(path, mode)
    return NetrcCredentials(
        source=str(path),
        machines=tuple(machines),
        default=default,
        warnings=() if warning is None else (warning,),
    )
