"""Names in list order, for every backend: where each entry goes, decided in the thread
that reads the list (claims in the run's :class:`~downloader.results.Tally`), ``--shard``
parts that still claim the whole list's names, the checksum manifest looked up by final
path, and the turns in which names from the server are claimed."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterable, Iterator

from .digests import Manifest
from .errors import BadLine
from .naming import RelPath, display, name_from_url
from .options import OnExist, Options
from .progress import Reporter
from .results import Result, Status, Tally
from .transfer import Job
from .urllist import Entry, Item


def base_path(entry: Entry) -> RelPath:
    """Where an entry goes before collisions: ``dir=`` then ``out=`` or the URL's name."""
    o = entry.options
    folder = tuple(o.dir.split("/")) if o.dir else ()
    if o.out:
        return (*folder, *o.out.split("/"))
    return (*folder, name_from_url(entry.url))


def bad_line_result(item: BadLine) -> Result:
    return Result(
        url=item.text, source=item.source, status=Status.FAILED, error=item.reason, bad_line=True
    )


class Turns:
    """Downloads named by the server claim their names in list order (locked).

    Each gets a turn when planned; a turn is done when its name is claimed or its
    download ends without one, and a name may be claimed only on its turn.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0
        self._head = 0
        self._done: set[int] = set()

    def take(self) -> int:
        with self._lock:
            self._next += 1
            return self._next - 1

    def is_mine(self, turn: int) -> bool:
        return turn == self._head

    def done(self, turn: int) -> None:
        with self._lock:
            self._done.add(turn)
            while self._head in self._done:
                self._done.remove(self._head)
                self._head += 1


class Planner:
    """Decides names, in list order, in the thread that reads the list."""

    def __init__(self, options: Options, tally: Tally, manifest: Manifest | None = None) -> None:
        self.options = options
        self.tally = tally
        self.turns = Turns()
        self.manifest = manifest

    def _taken_on_disk(self, rel: RelPath) -> bool:
        return os.path.lexists(self.options.dest.joinpath(*rel))

    def claim(self, rel: RelPath) -> RelPath:
        taken = self._taken_on_disk if self.options.on_exist is OnExist.RENAME else None
        return self.tally.claim(rel, taken)

    def plan(self, entry: Entry) -> Job | BadLine:
        """The entry's job, named in list order; a bad line if the manifest contradicts it."""
        rel = base_path(entry)
        if self.options.content_disposition and not entry.options.out:
            return Job(entry=entry, rel=None, fallback=rel, turn=self.turns.take())
        claimed = self.claim(rel)
        if self.manifest is not None and (found := self.manifest.lookup("/".join(claimed))):
            checksum, where = found
            listed = entry.options.checksum
            if listed is not None and listed != checksum:
                reason = f"its checksum {listed} disagrees with {where} ({checksum})"
                return BadLine(entry.source, reason, entry.url)
            if listed is None:
                options = dataclasses.replace(entry.options, checksum=checksum)
                entry = dataclasses.replace(entry, options=options)
        return Job(entry=entry, rel=claimed, fallback=rel)

    def mine(self, items: Iterable[Item]) -> Iterator[Item]:
        """The items of this run's part of the list (``--shard``), in list order.

        The names of the other parts' entries are claimed all the same, so every
        part gives each entry the name the whole list would.
        """
        shard = self.options.shard
        if shard is None:
            yield from items
            return
        for ordinal, item in enumerate(items):
            if shard.owns(ordinal):
                yield item
            elif isinstance(item, Entry):
                self.plan(item)

    def planned(self, entry: Entry, reporter: Reporter) -> None:
        """``--dry-run``: say where ``entry`` would go (the URL's name stands in)."""
        job = self.plan(entry)
        if isinstance(job, BadLine):
            result = bad_line_result(job)
            reporter.result(result, self.tally.record(result))
            return
        rel = job.rel or self.claim(job.fallback)
        if job.turn is not None:
            self.turns.done(job.turn)
        reporter.planned(entry.url, entry.source, display(rel, str(self.options.dest)))
