"""pdl: a concurrent URL-list downloader. The public surface is :func:`fetch`."""

from __future__ import annotations

from .api import fetch
from .cluster import ClusterLost
from .errors import PdlError, UsageError
from .options import Checksum, EntryOptions, OnExist, Options, Shard
from .results import Report, Result, Status
from .urllist import Entry
from .version import __version__

__all__ = [
    "Checksum",
    "ClusterLost",
    "Entry",
    "EntryOptions",
    "OnExist",
    "Options",
    "PdlError",
    "Report",
    "Result",
    "Shard",
    "Status",
    "UsageError",
    "__version__",
    "fetch",
]
