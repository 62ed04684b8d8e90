"""Tests of ccdaemon.media.retention: only the recorder's own old files go; the directory is prepared 0750."""

from __future__ import annotations

import os
import stat
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ccdaemon.media.recorder import part_path, recording_filename, wav_header
from ccdaemon.media.retention import (
    delete_expired,
    expired_recordings,
    prepare_directory,
    recording_time,
    world_accessible,
)

NOW = datetime(2024, 6, 30, 12, 0, 0, tzinfo=UTC)  # the virtual clock
DAY = timedelta(days=1)


def recording(directory: Path, call_id: str, started: datetime, *, modified: datetime | None = None) -> Path:
    """A file named exactly as the recorder names it, with its mtime set to the end of the call."""
    path = directory / recording_filename(call_id, started)
    path.write_bytes(wav_header(4) + bytes(4))
    stamp = (modified or started + timedelta(minutes=5)).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def other(path: Path, modified: datetime) -> Path:
    path.write_bytes(b"not ours")
    os.utime(path, (modified.timestamp(), modified.timestamp()))
    return path


# --- names ---------------------------------------------------------------------------------------------


def test_recording_time_reads_the_recorders_names() -> None:
    started = datetime(2024, 5, 1, 10, 15, 2, 123000, tzinfo=UTC)
    for call_id in ("abc123@pbx.example", "../evil", "x" * 300, "plain"):
        assert recording_time(recording_filename(call_id, started)) == started
    assert recording_time("abc_20240501T101502.123Z-3.wav") == started  # name taken: suffix added


@pytest.mark.parametrize(
    "name",
    [
        "notes.wav",
        "_20240501T101502.123Z.wav",  # no call id
        "abc_20240501T101502.123Z.WAV",
        "abc_20240501T101502.123Z.wav.bak",
        "abc_20240501T101502.123Z.wav.part",  # still being recorded
        "abc_20240501T101502.123Z-2.wav.part",
        "abc_20240501T101502Z.wav",
        "abc_20241301T101502.123Z.wav",  # month 13
        "abc_20240501T101502.123Z.mp3",
        "abc_20240501T101502.123Z-x.wav",
    ],
)
def test_names_the_recorder_does_not_make(name: str) -> None:
    assert recording_time(name) is None


# --- the pure decision ---------------------------------------------------------------------------------


def test_expired_by_start_and_last_write() -> None:
    old = recording_filename("old", NOW - 31 * DAY)
    recent = recording_filename("recent", NOW - 29 * DAY)
    still_written = recording_filename("long", NOW - 31 * DAY)
    entries = [
        (old, (NOW - 31 * DAY).timestamp()),
        (recent, (NOW - 29 * DAY).timestamp()),
        (still_written, (NOW - timedelta(minutes=1)).timestamp()),  # e.g. repaired at start-up just now
        ("notes.txt", (NOW - 400 * DAY).timestamp()),
    ]
    assert expired_recordings(entries, NOW, 30) == [old]
    assert expired_recordings(entries, NOW, 0) == []  # keep forever
    assert expired_recordings(entries, NOW + 2 * DAY, 30) == sorted([old, recent])


# --- on disk -------------------------------------------------------------------------------------------


def test_delete_expired_removes_only_old_recordings(tmp_path: Path) -> None:
    old = [recording(tmp_path, f"call-{n}", NOW - (40 + n) * DAY) for n in range(3)]
    kept = recording(tmp_path, "yesterday", NOW - DAY)
    border = recording(tmp_path, "border", NOW - 30 * DAY + timedelta(seconds=1), modified=NOW - 29 * DAY)
    notes = other(tmp_path / "notes.wav", NOW - 400 * DAY)
    export = other(tmp_path / "export.mp3", NOW - 400 * DAY)
    backup = other(tmp_path / (old[0].name + ".bak"), NOW - 400 * DAY)
    subdir = tmp_path / recording_filename("a-directory", NOW - 400 * DAY)
    subdir.mkdir()
    nested = recording(subdir, "nested", NOW - 400 * DAY)
    outside = recording(tmp_path.parent, f"outside-{tmp_path.name}", NOW - 400 * DAY)
    link = tmp_path / recording_filename("a-link", NOW - 400 * DAY)
    link.symlink_to(outside)

    result = delete_expired(tmp_path, 30, NOW)

    assert sorted(result.deleted) == sorted(old)
    assert result.bytes_freed == 3 * 48
    assert result.errors == 0
    assert not any(p.exists() for p in old)
    for path in (kept, border, notes, export, backup, subdir, nested, outside, link):
        assert path.exists() or path.is_symlink(), path
    outside.unlink()


def test_recording_in_progress_is_never_deleted(tmp_path: Path) -> None:
    # a call that started long ago and is still being recorded (or was interrupted and awaits the repair)
    started = NOW - 100 * DAY
    finished = recording(tmp_path, "finished", started)
    running = part_path(tmp_path / recording_filename("running", started))
    running.write_bytes(wav_header(0) + bytes(400))
    os.utime(running, (started.timestamp(), started.timestamp()))  # old mtime too: only the name protects it
    assert expired_recordings([(running.name, started.timestamp())], NOW, 30) == []

    result = delete_expired(tmp_path, 30, NOW)

    assert result.deleted == [finished]
    assert running.read_bytes() == wav_header(0) + bytes(400)


def test_virtual_clock_moves_files_past_the_limit(tmp_path: Path) -> None:
    path = recording(tmp_path, "call", NOW - 10 * DAY)
    assert delete_expired(tmp_path, 30, NOW).deleted == []
    assert delete_expired(tmp_path, 30, NOW + 19 * DAY).deleted == []
    assert delete_expired(tmp_path, 30, NOW + 21 * DAY).deleted == [path]
    assert not path.exists()


def test_zero_days_keeps_everything(tmp_path: Path) -> None:
    path = recording(tmp_path, "ancient", NOW - 5000 * DAY)
    assert delete_expired(tmp_path, 0, NOW).deleted == []
    assert path.exists()


def test_undeletable_file_is_counted_and_the_rest_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    stuck = recording(tmp_path, "a-stuck", NOW - 100 * DAY)
    gone = recording(tmp_path, "b-gone", NOW - 100 * DAY)
    unlink = Path.unlink

    def refuse(self: Path, missing_ok: bool = False) -> None:
        if self == stuck:  # as for a file on a read-only mount or owned by another user
            raise PermissionError(13, "Permission denied", str(self))
        unlink(self, missing_ok)

    monkeypatch.setattr(Path, "unlink", refuse)
    result = delete_expired(tmp_path, 30, NOW)
    assert (result.deleted, result.errors) == ([gone], 1)
    assert stuck.exists() and not gone.exists()
    assert f"cannot delete recording {stuck}: Permission denied" in caplog.text


def test_missing_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        delete_expired(tmp_path / "missing", 30, NOW)


# --- preparing the directory ---------------------------------------------------------------------------


def test_prepare_creates_parents_with_0750_whatever_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "state" / "recordings"
    old_umask = os.umask(0o077)
    try:
        created = prepare_directory(target)
    finally:
        os.umask(old_umask)
    assert created == [tmp_path / "state", target]
    for path in created:
        assert stat.S_IMODE(path.stat().st_mode) == 0o750
    assert list(target.iterdir()) == []  # the write test left nothing behind
    assert world_accessible(target) is None


def test_prepare_keeps_an_existing_directory_as_it_is(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    assert prepare_directory(tmp_path) == []
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755
    assert world_accessible(tmp_path) == 0o755


def test_prepare_under_a_regular_file_fails(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        prepare_directory(tmp_path / "file" / "recordings")
    with pytest.raises(NotADirectoryError) as caught:
        prepare_directory(tmp_path / "file")
    assert caught.value.filename == str(tmp_path / "file")


def test_prepare_unwritable_directory_fails(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes everywhere (the read-only mount case is tested below)")
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(PermissionError):
            prepare_directory(tmp_path)
        with pytest.raises(PermissionError):
            prepare_directory(tmp_path / "recordings")
    finally:
        tmp_path.chmod(0o700)


def test_prepare_really_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # access(2) would say "writable" to root on a read-only mount (ProtectSystem=strict without
    # ReadWritePaths=): only creating a file tells the truth
    def read_only(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(30, "Read-only file system", str(tmp_path))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(OSError, match="Read-only file system"):
        prepare_directory(tmp_path)
