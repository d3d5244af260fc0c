"""The file side of a transfer: folders reached without following links, the ``.part``
file, its resume record, and the atomic rename into place.

All operations are relative to a directory file descriptor opened component by
component with ``O_NOFOLLOW``, so neither a planted symbolic link nor a ``..``
can send bytes outside the destination.

A ``.part`` is only ever written when it is a regular file with one link (checked
with ``fstat`` on the open descriptor): a hard link planted there, to a file
outside the destination, is replaced by a fresh file, never truncated or written
through. Its resume record is bound to it (device and inode of the partial it was
written beside), so a record is believed only beside the very file it describes;
and since no download is ever given a name ending like a companion
(:func:`naming.sanitize`), a server cannot plant a partial or a record either.

A ``.part`` is written only under an exclusive, non-blocking ``flock`` on it
(:meth:`Folder.lock_part`), taken before the partial or its record is read, so
two pdl processes on one folder never write the same partial: the second one
is told at once (:class:`~downloader.errors.PartBusy`) and waits for the first.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, TextIO

from .errors import LocalFileError, PartBusy, UsageError
from .naming import PART_SUFFIX, RECORD_SUFFIX, TMP_SUFFIX, RelPath


class Updatable(Protocol):
    """What :meth:`Folder.hash_into` feeds: a hashlib hash, or several at once."""

    def update(self, data: bytes, /) -> None: ...


HASH_BLOCK = 1024 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class ResumeRecord:
    """What validates a partial across attempts and runs (kept beside the ``.part``)."""

    url_sha256: str
    validator: str | None
    length: int | None
    segments: tuple[tuple[int, int, int], ...] | None = None
    """For a split download (``-s``): ``(start, end, done)`` of each segment."""

    @staticmethod
    def url_hash(url: str) -> str:
        return hashlib.sha256(url.encode("utf-8", "surrogatepass")).hexdigest()


def _segments(value: object, length: object) -> tuple[tuple[int, int, int], ...] | None:
    """A record's segments, checked: contiguous from 0 to ``length``, progress within each."""
    if value is None:
        return None
    segments = tuple((int(s), int(e), int(d)) for s, e, d in value)  # type: ignore[attr-defined]
    at = 0
    for start, end, done in segments:
        if start != at or end < start or not 0 <= done <= end - start:
            raise ValueError("bad segments")
        at = end
    if not segments or at != length:
        raise ValueError("segments do not cover the file")
    return segments


def _private_file(st: os.stat_result) -> bool:
    """A regular file with one link: writing it changes no other name's file."""
    return stat.S_ISREG(st.st_mode) and st.st_nlink == 1


def record_name(name: str) -> str:
    """The resume record's file name: ``NAME.part.pdl``, or a hashed name if that is too long.

    Either way ``record_name(name) + ".tmp"``, written first, fits 255 bytes.
    """
    plain = name + RECORD_SUFFIX
    if len((plain + TMP_SUFFIX).encode("utf-8")) <= 255:
        return plain
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f".{digest}{RECORD_SUFFIX}"


def local_error(exc: OSError, what: str) -> LocalFileError:
    reason = {
        errno.ELOOP: "is a symbolic link (pdl never writes through links)",
        errno.ENOTDIR: "a file is in the way of a folder",
        errno.EISDIR: "is an existing folder",
        errno.ENOSPC: "no space left on device",
        errno.EACCES: "permission denied",
        errno.EROFS: "read-only file system",
    }.get(exc.errno or 0, exc.strerror or str(exc))
    return LocalFileError(f"{what}: {reason}")


class Folder:
    """An open folder below the destination; file operations go through its descriptor."""

    def __init__(self, fd: int, display: str) -> None:
        self.fd = fd
        self.display = display
        self._locked: dict[str, int] = {}  # name -> descriptor holding the flock on name.part
        self._published: set[str] = set()  # names whose partial became the final file

    def close(self) -> None:
        try:
            for name, fd in self._locked.items():
                self._release(name, fd)
        finally:
            self._locked.clear()
            os.close(self.fd)

    # -- the lock on a partial ------------------------------------------------

    def lock_part(self, name: str) -> int:
        """Hold an exclusive ``flock`` on ``name.part`` (created empty if missing) until close.

        Another process holding it makes this fail at once (no waiting). The lock
        is on the file the name refers to *now*: if the name moved to another file
        between the open and the lock (that process just finished), the open is
        tried again. A link, a FIFO or a hard link (a file with more than one name)
        planted at the name is removed, never written.
        Returns the size of the partial, a regular file with one link from here on.
        """
        if name in self._locked:
            return os.fstat(self._locked[name]).st_size
        part = name + PART_SUFFIX
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        for _ in range(8):
            try:
                fd = os.open(part, flags, 0o644, dir_fd=self.fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENXIO):
                    raise local_error(exc, self._show(part)) from None
                self.remove(part)
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise PartBusy(
                        f"{self._show(part)}: being downloaded by another process"
                    ) from None
                raise local_error(exc, self._show(part)) from None
            here = self._at(part, fd)
            if here is not None and not _private_file(here):  # a FIFO opens read-write
                os.close(fd)
                self.remove(part)  # a hard link: the name goes, the other file stays as it was
                continue
            if here is not None:
                self._locked[name] = fd
                return here.st_size
            os.close(fd)
        raise LocalFileError(f"{self._show(part)}: keeps changing; another process is at work")

    def _at(self, part: str, fd: int) -> os.stat_result | None:
        """The status of the file open at ``fd`` if ``part`` names it, else None."""
        try:
            here = os.stat(part, dir_fd=self.fd, follow_symlinks=False)
        except OSError:
            return None
        st = os.fstat(fd)
        return st if (here.st_dev, here.st_ino) == (st.st_dev, st.st_ino) else None

    def _is_at(self, part: str, fd: int) -> bool:
        """True when ``part`` names the file open at ``fd``."""
        return self._at(part, fd) is not None

    def _release(self, name: str, fd: int) -> None:
        """Drop the lock; an empty partial still ours is removed first (nothing to resume)."""
        try:
            part = name + PART_SUFFIX
            if name in self._published:
                return
            if os.fstat(fd).st_size == 0 and self._is_at(part, fd):
                with contextlib.suppress(LocalFileError):
                    self.remove(part)
                    self.remove(record_name(name))
        finally:
            os.close(fd)

    def kind(self, name: str) -> str | None:
        """``"file"``, ``"dir"``, ``"link"``, ``"other"`` or None when nothing is there."""
        return self.look(name)[0]

    def look(self, name: str) -> tuple[str | None, int]:
        """What is at ``name`` (as :meth:`kind`) and its size, from one ``lstat``."""
        try:
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None, 0
        except OSError as exc:
            raise local_error(exc, self._show(name)) from None
        if stat.S_ISREG(st.st_mode):
            return "file", st.st_size
        if stat.S_ISDIR(st.st_mode):
            return "dir", st.st_size
        return ("link" if stat.S_ISLNK(st.st_mode) else "other"), st.st_size

    def existing_regular(self, name: str) -> bool:
        """Is a regular file at ``name`` (never a link, FIFO or device), one that may be
        reported ``skipped`` or checked against a checksum? Found by ``lstat``.

        A folder at ``name`` raises :class:`LocalFileError`; anything else that is not
        a regular file is False, so it is downloaded and replaced by the rename.
        """
        kind = self.kind(name)
        if kind == "dir":
            raise LocalFileError(f"{self._show(name)}: is a folder")
        return kind == "file"

    def _show(self, name: str) -> str:
        return f"{self.display}/{name}" if self.display not in ("", ".") else name

    def open_read(self, name: str) -> int:
        try:
            return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError as exc:
            raise local_error(exc, self._show(name)) from None

    def hash_into(self, name: str, hasher: Updatable, limit: int | None = None) -> None:
        """Feed the first ``limit`` bytes of ``name`` (all of it with None) to ``hasher``."""
        with os.fdopen(self.open_read(name), "rb") as handle:
            left = limit
            while left != 0 and (
                block := handle.read(HASH_BLOCK if left is None else min(HASH_BLOCK, left))
            ):
                hasher.update(block)
                if left is not None:
                    left -= len(block)

    def open_part(self, name: str, keep: int) -> int:
        """Open ``name.part`` for writing, truncated to ``keep`` bytes.

        A link, a FIFO or a hard link planted there is removed, never written
        through: with ``O_NOFOLLOW`` a link fails with ELOOP, with ``O_NONBLOCK`` a
        FIFO with ENXIO (instead of blocking), a hard link shows ``st_nlink > 1``,
        and the open is tried again.
        """
        part = name + PART_SUFFIX
        locked = self._locked.get(name)
        if locked is not None:  # the lock keeps other pdl processes off this name
            fd = os.dup(locked)
            try:
                os.ftruncate(fd, keep)
                os.lseek(fd, keep, os.SEEK_SET)  # the position is shared with the lock's
            except OSError as exc:
                os.close(fd)
                raise local_error(exc, self._show(part)) from None
            return fd
        fd = self._open_private(part, keep)
        try:
            os.ftruncate(fd, keep)
            os.lseek(fd, keep, os.SEEK_SET)
        except OSError as exc:
            os.close(fd)
            raise local_error(exc, self._show(part)) from None
        return fd

    def _open_private(self, part: str, keep: int) -> int:
        """Open ``part`` for writing, replacing anything there but a regular file with one link.

        No ``O_TRUNC``: the truncation comes after ``fstat`` has shown the file is
        ours alone. Bytes to ``keep`` cannot be kept in a file that had to be replaced.
        """
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        for _ in range(4):
            try:
                fd = os.open(part, flags, 0o644, dir_fd=self.fd)
            except OSError as exc:
                if exc.errno not in (errno.ELOOP, errno.ENXIO):
                    raise local_error(exc, self._show(part)) from None
            else:
                if _private_file(os.fstat(fd)):
                    return fd
                os.close(fd)
            if keep:
                raise LocalFileError(f"{self._show(part)}: not a file of its own; not resumed")
            self.remove(part)
        raise LocalFileError(f"{self._show(part)}: keeps changing; another process is at work")

    def remove(self, name: str) -> None:
        try:
            os.unlink(name, dir_fd=self.fd)
        except (FileNotFoundError, IsADirectoryError):
            return
        except OSError as exc:
            raise local_error(exc, self._show(name)) from None

    def drop_record(self, name: str) -> None:
        self.remove(record_name(name))

    def drop_stale_record(self, name: str) -> None:
        """Remove a record left without its partial (a kill between publish and its unlink).

        A record is written only after its ``.part`` is open and locked, so one
        without a ``.part`` vouches for nothing and nobody will read it.
        """
        if self.look(record_name(name))[0] is not None and self.look(name + PART_SUFFIX)[0] is None:
            self.remove(record_name(name))

    def discard_partial(self, name: str) -> None:
        """Drop the partial and its record; a locked partial is emptied, keeping the lock."""
        locked = self._locked.get(name)
        part = name + PART_SUFFIX
        if locked is not None and self._is_at(part, locked):
            try:
                os.ftruncate(locked, 0)
            except OSError as exc:
                raise local_error(exc, self._show(part)) from None
        else:
            self.remove(part)
        self.remove(record_name(name))

    def _binding(self, name: str) -> list[int] | None:
        """``[device, inode]`` of the partial ``name.part`` (the locked one if held)."""
        locked = self._locked.get(name)
        try:
            if locked is not None:
                st = os.fstat(locked)
            else:
                st = os.stat(name + PART_SUFFIX, dir_fd=self.fd, follow_symlinks=False)
        except OSError:
            return None
        return [st.st_dev, st.st_ino] if _private_file(st) else None

    def read_record(self, name: str) -> ResumeRecord | None:
        """The record of ``name.part``, or None: missing, malformed, or bound to another file."""
        try:
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # no FIFO waits
            fd = os.open(record_name(name), flags, dir_fd=self.fd)
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as handle:
                data = json.loads(handle.read(65536))
            binding = self._binding(name)
            if binding is None or data["partial"] != binding:
                return None  # written beside another file (or not by pdl): vouches for nothing
            return ResumeRecord(
                url_sha256=str(data["url_sha256"]),
                validator=data["validator"] if isinstance(data["validator"], str) else None,
                length=data["length"] if isinstance(data["length"], int) else None,
                segments=_segments(data.get("segments"), data["length"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def write_record(self, name: str, record: ResumeRecord) -> None:
        """Write the record beside the partial (via a temporary name and an atomic rename).

        The record carries the partial's device and inode (:meth:`read_record` checks
        them), so it cannot be made to vouch for another file.
        """
        final = record_name(name)
        tmp = final + TMP_SUFFIX
        binding = self._binding(name)
        if binding is None:
            raise LocalFileError(f"{self._show(name + PART_SUFFIX)}: no partial to record")
        data = json.dumps({**asdict(record), "partial": binding}).encode()
        try:
            self.remove(tmp)
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=self.fd
            )
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            os.replace(tmp, final, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except OSError as exc:
            raise local_error(exc, self._show(final)) from None

    def publish(self, name: str, *, has_record: bool = True) -> None:
        """Rename ``name.part`` to ``name`` atomically, then drop its resume record.

        A folder at ``name`` makes the rename fail with EISDIR; a link there is
        replaced, not followed.
        """
        try:
            os.replace(name + PART_SUFFIX, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        except OSError as exc:
            raise local_error(exc, self._show(name)) from None
        self._published.add(name)
        if has_record:
            self.remove(record_name(name))


def make_dest(dest: Path) -> None:
    """Create the destination folder (and parents) if missing; one that cannot be written is
    one usage error, not a failure per entry."""
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = local_error(exc, str(dest))
        raise UsageError(f"cannot create the destination folder: {reason}") from None
    if not os.access(dest, os.W_OK | os.X_OK):
        raise UsageError(f"cannot write the destination folder: {dest}: permission denied")


@contextlib.contextmanager
def open_folder(dest: Path, parts: RelPath, display: str) -> Iterator[Folder]:
    """Open ``dest/parts...`` creating missing folders, never following a link below ``dest``."""
    try:
        fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise local_error(exc, str(dest)) from None
    shown = display
    try:
        for part in parts:
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
            except FileExistsError:
                pass
            except OSError as exc:
                raise local_error(exc, f"{shown}/{part}") from None
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    if stat.S_ISLNK(os.stat(part, dir_fd=fd, follow_symlinks=False).st_mode):
                        exc.errno = errno.ELOOP
                raise local_error(exc, f"{shown}/{part}") from None
            os.close(fd)
            fd = child
            shown = f"{shown}/{part}"
    except BaseException:
        os.close(fd)
        raise
    folder = Folder(fd, shown)
    try:
        yield folder
    finally:
        folder.close()


def create_beside(path: Path, option: str, mode: int) -> tuple[TextIO, Path]:
    """A new file (``mode``) beside ``path``, that replaces it at the end of the run; what
    cannot be created is a usage error naming ``option``."""
    if path.is_dir() and not path.is_symlink():
        raise UsageError(f"cannot create the {option} file {str(path)!r}: it is a folder")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()  # left by a killed run of the same pid
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, mode)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UsageError(f"cannot create the {option} file {str(path)!r}: {reason}") from None
    stream = os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape", newline="\n")
    return stream, tmp
