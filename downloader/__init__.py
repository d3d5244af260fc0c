"""pdl: a concurrent URL-list downloader. The public surface is :func:`fetch`."""

from __future__ import annotations

from .api import fetch
from .errors import PdlError, UsageError
from .options import Checksum, EntryOptions, OnExist, Options
from .results import Report, Result, Status
from .urllist import Entry
from .version import __version__

__all__ = [
    "Checksum",
    "Entry",
    "EntryOptions",
    "OnExist",
    "Options",
    "PdlError",
    "Report",
    "Result",
    "Status",
    "UsageError",
    "__version__",
    "fetch",
]
