"""Housekeeping of the recordings directory: preparing it at start-up and deleting old recordings.

Blocking file-system code (the daemon runs it with ``asyncio.to_thread``). The decision which files are
due, :func:`expired_recordings`, is a pure function of names, modification times and ``now``.

Only files the recorder finished are ever deleted: regular files named like
:func:`ccdaemon.media.recorder.recording_filename` (``<call id>_<yyyymmddThhmmss.mmmZ>[-n].wav``).
Anything else an operator keeps in the directory (exports, notes, sub-directories, links) is left alone, and
so is a recording in progress (``<name>.wav.part``): its call is still going on, or the next start-up
finishes it.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from ccdaemon.media.recorder import make_directory

__all__ = [
    "RetentionResult",
    "delete_expired",
    "expired_recordings",
    "prepare_directory",
    "recording_time",
    "world_accessible",
]

log = logging.getLogger(__name__)

# recorder.recording_filename, plus the "-<n>" the writer adds when the name was taken. Matched in full, so
# "<name>.wav.part" (being recorded) never matches
_NAME: Final = re.compile(r".+_(\d{8}T\d{6})\.(\d{3})Z(?:-\d+)?\.wav")


def recording_time(name: str) -> datetime | None:
    """When the recording started (UTC, from its file name); None if the recorder did not make that name."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    try:
        start = datetime.strptime(match[1], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    except ValueError:  # e.g. month 13: not a name the recorder writes
        return None
    return start + timedelta(milliseconds=int(match[2]))


def expired_recordings(entries: Iterable[tuple[str, float]], now: datetime, retention_days: int) -> list[str]:
    """The names among ``(name, mtime)`` pairs that are older than ``retention_days`` (0: none).

    A recording is due when both its start (from the name) and its last write (``mtime``, POSIX seconds)
    lie before ``now - retention_days``. The second condition keeps a file written to lately, whatever the
    name says; the first keeps a file whose mtime was reset by a copy.
    """
    if retention_days <= 0:
        return []
    cutoff = now - timedelta(days=retention_days)
    due: list[str] = []
    for name, mtime in entries:
        started = recording_time(name)
        if started is not None and started < cutoff and datetime.fromtimestamp(mtime, UTC) < cutoff:
            due.append(name)
    return sorted(due)


@dataclass(slots=True)
class RetentionResult:
    """What one retention pass did."""

    deleted: list[Path] = field(default_factory=list)
    bytes_freed: int = 0
    errors: int = 0


def delete_expired(directory: Path, retention_days: int, now: datetime) -> RetentionResult:
    """Delete the recorder's files in ``directory`` (not below it) older than ``retention_days``.

    Raises OSError if the directory itself cannot be listed; a file that cannot be deleted is logged,
    counted and skipped.
    """
    result = RetentionResult()
    if retention_days <= 0:
        return result
    sizes: dict[str, int] = {}
    entries: list[tuple[str, float]] = []
    with os.scandir(directory) as listing:
        for entry in listing:
            try:
                # no symlinks (not ours, and might point anywhere), no directories
                if not entry.is_file(follow_symlinks=False):
                    continue
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # vanished meanwhile
            sizes[entry.name] = info.st_size
            entries.append((entry.name, info.st_mtime))
    for name in expired_recordings(entries, now, retention_days):
        path = directory / name
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            result.errors += 1
            log.warning("retention: cannot delete recording %s: %s", path, exc.strerror or exc)
            continue
        result.deleted.append(path)
        result.bytes_freed += sizes[name]
    return result


def prepare_directory(directory: Path) -> list[Path]:
    """Create ``directory`` and missing parents with mode 0750; check that it can be listed and written.

    Returns the directories created (outermost first). Raises OSError naming what failed; the message
    is for the operator (``strerror`` and ``filename`` are set).
    """
    created = make_directory(directory)
    with os.scandir(directory):
        pass  # listing is needed for repair and retention
    # access(2) says yes to root even on a read-only mount (ProtectSystem=strict): really write a file
    fd, probe = tempfile.mkstemp(prefix=".ccdaemon-write-test-", dir=directory)
    os.close(fd)
    os.unlink(probe)
    return created


def world_accessible(directory: Path) -> int | None:
    """The directory's permission bits if users outside the owner and group can enter it, else None."""
    try:
        mode = stat.S_IMODE(os.stat(directory).st_mode)
    except OSError:
        return None
    return mode if mode & 0o007 else None
