"""Tests of the daemon's recording set-up: directory, start-up repair, shared service, retention, close."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import struct
import threading
import time
import wave
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ccdaemon.app.context import AppContext
from ccdaemon.config import ConfigError, Settings
from ccdaemon.daemon import UserAgentLike, _retention, serve
from ccdaemon.media.recorder import (
    HEADER_SIZE,
    RecordingService,
    RecordingWriter,
    WavFile,
    recording_filename,
    wav_header,
)
from ccdaemon.sdnotify import Notifier


def make_settings(**recording: Any) -> Settings:
    return Settings.model_validate(
        {
            "pbx": {"host": "127.0.0.1", "port": 5080, "username": "201", "password": "p"},
            "sip": {"contact_host": "127.0.0.1"},
            "recording": recording,
        }
    )


class FakeRegistration:
    state = "unregistered"


class FakeUserAgent:
    registration = FakeRegistration()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


class Telephony:
    """A telephony factory that remembers the context and lets a test act as a call flow on it."""

    def __init__(self, on_start: Callable[[AppContext], None] = lambda _: None) -> None:
        self.context: AppContext | None = None
        self._on_start = on_start

    async def __call__(self, settings: Settings, context: AppContext) -> UserAgentLike:
        self.context = context
        self._on_start(context)
        return FakeUserAgent()


def stale_part(path: Path, audio_bytes: int) -> Path:
    """What a SIGKILL between the recorder's two writes leaves: ``<path>.part`` (returned), a header
    claiming no audio, then audio."""
    part = path.with_name(path.name + ".part")
    part.write_bytes(wav_header(0) + (bytes(range(256)) * (audio_bytes // 256 + 1))[:audio_bytes])
    return part


def data_size(path: Path) -> int:
    return int(struct.unpack_from("<I", path.read_bytes(), 40)[0])


async def run_once(settings: Settings, telephony: Telephony) -> None:
    stop = asyncio.Event()
    stop.set()
    await serve(settings, stop=stop, telephony=telephony, notifier=Notifier(None))


async def test_enabled_creates_directory_repairs_and_shares_one_service(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ccdaemon")
    directory = tmp_path / "state" / "recordings"
    seen_at_start: list[int] = []

    def flow_starts(context: AppContext) -> None:
        # telephony (the calls) starts only after the repair
        assert not part.exists()
        seen_at_start.append(data_size(directory / "killed.wav"))
        assert context.recordings is not None
        writer = context.recordings.open_recording("call-1@pbx")
        writer.add(bytes(320), bytes(320))  # one 20 ms tick, left open: shutdown must finalize it

    directory.mkdir(parents=True)
    part = stale_part(directory / "killed.wav", 8000)
    directory.chmod(0o700)  # existing: left as the operator made it
    telephony = Telephony(flow_starts)
    await run_once(make_settings(enabled=True, directory=str(directory), flush_interval=0.1), telephony)

    assert seen_at_start == [8000]
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o755  # pre-existing parent untouched
    service = telephony.context.recordings if telephony.context else None
    assert isinstance(service, RecordingService)
    assert (service.directory, service.flush_interval, service.fsync) == (directory, 0.1, False)
    with pytest.raises(RuntimeError, match="closed"):
        service.open_recording("too-late")
    [recorded] = [p for p in directory.glob("*.wav") if p.name != "killed.wav"]
    assert recorded.name.startswith(recording_filename("call-1@pbx", datetime.now(UTC)).split("_")[0] + "_")
    with wave.open(str(recorded), "rb") as wav:  # finalized: the header counts the one tick
        assert (wav.getnchannels(), wav.getframerate(), wav.getnframes()) == (2, 8000, 160)
    assert stat.S_IMODE(recorded.stat().st_mode) == 0o640
    assert list(directory.glob("*.part")) == []  # finalized at shutdown: renamed to .wav
    repair_lines = [r for r in caplog.records if "repaired" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in repair_lines] == [
        (logging.WARNING, "repaired 1 recording(s) left incomplete by an unclean stop: killed.wav")
    ]
    assert "recordings: 1 opened, 1 finished, 0.0 MiB written, 0.0 s of audio dropped" in caplog.text


async def test_missing_directory_is_created_0750(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ccdaemon")
    directory = tmp_path / "a" / "recordings"
    old_umask = os.umask(0o077)
    try:
        await run_once(make_settings(enabled=True, directory=str(directory)), Telephony())
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o750
    assert stat.S_IMODE(directory.parent.stat().st_mode) == 0o750
    assert f"created recordings directory {directory} (mode 0750)" in caplog.text


async def test_world_readable_directory_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tmp_path.chmod(0o755)
    await run_once(make_settings(enabled=True, directory=str(tmp_path)), Telephony())
    assert "is open to every user (mode 0755)" in caplog.text


async def test_directory_under_a_file_is_a_config_error_before_telephony(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    telephony = Telephony()
    with pytest.raises(ConfigError) as caught:
        await run_once(make_settings(enabled=True, directory=str(tmp_path / "file" / "rec")), telephony)
    assert caught.value.key == "recording.directory"
    assert str(caught.value) == (
        f"recording.directory: cannot use '{tmp_path / 'file' / 'rec'}' for recordings: Not a directory"
    )
    assert telephony.context is None  # no call could have been accepted


async def test_disabled_gives_flows_no_service_and_creates_nothing(tmp_path: Path) -> None:
    telephony = Telephony()
    await run_once(make_settings(directory=str(tmp_path / "recordings")), telephony)
    assert telephony.context == AppContext(recordings=None)
    assert not (tmp_path / "recordings").exists()


async def test_disabled_still_repairs_what_was_recorded_before(tmp_path: Path) -> None:
    path = tmp_path / "earlier.wav"
    part = stale_part(path, 4096)
    telephony = Telephony()
    await run_once(make_settings(enabled=False, directory=str(tmp_path)), telephony)
    assert telephony.context is not None and telephony.context.recordings is None
    assert not part.exists()
    assert data_size(path) == 4096
    assert path.stat().st_size == HEADER_SIZE + 4096


async def test_close_is_bounded_when_the_disk_hangs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    gate, entered = threading.Event(), threading.Event()
    append = WavFile.append

    def hanging_append(self: WavFile, data: bytes) -> None:
        entered.set()
        gate.wait(10)  # a disk that stopped answering
        append(self, data)

    monkeypatch.setattr(WavFile, "append", hanging_append)
    writers: list[RecordingWriter] = []

    def flow_starts(context: AppContext) -> None:
        assert context.recordings is not None
        writer = context.recordings.open_recording("hung")
        writer.add(bytes(320), bytes(320))
        writers.append(writer)

    telephony = Telephony(flow_starts)
    start = time.monotonic()
    try:
        stop = asyncio.Event()
        stop.set()
        await serve(
            make_settings(enabled=True, directory=str(tmp_path), flush_interval=0.1),
            stop=stop,
            telephony=telephony,
            notifier=Notifier(None),
            recorder_close_timeout=0.3,
        )
        elapsed = time.monotonic() - start
        assert entered.is_set()
    finally:
        gate.set()
    assert elapsed < 3
    [writer] = writers
    assert "1 recording(s) not finalized within 0.3 s; they are repaired at the next start" in caplog.text
    assert "recordings: 1 opened, 0 finished" in caplog.text
    service = telephony.context.recordings if telephony.context else None
    assert isinstance(service, RecordingService)
    await asyncio.wait_for(service.aclose(), 5)  # once the disk answers, the writer still finishes the file
    assert writer.closed and writer.path.exists() and data_size(writer.path) == 640


async def test_retention_runs_at_start_and_then_every_interval(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ccdaemon")
    now = [datetime(2024, 6, 30, tzinfo=UTC)]  # virtual wall clock, advanced by the test
    day = timedelta(days=1)

    def make(call_id: str, started: datetime) -> Path:
        path = tmp_path / recording_filename(call_id, started)
        path.write_bytes(wav_header(0))
        os.utime(path, (started.timestamp(), started.timestamp()))
        return path

    old, young = make("old", now[0] - 10 * day), make("young", now[0] - 5 * day)
    task = asyncio.create_task(_retention(tmp_path, 7, interval=0.05, clock=lambda: now[0]))
    try:
        for _ in range(100):
            if not old.exists():
                break
            await asyncio.sleep(0.01)
        assert not old.exists() and young.exists()
        now[0] += 3 * day  # the next pass finds "young" past the limit
        for _ in range(100):
            if not young.exists():
                break
            await asyncio.sleep(0.01)
        assert not young.exists()
        tmp_path.rename(tmp_path.with_name(tmp_path.name + "-moved"))  # an operator removed it
        await asyncio.sleep(0.15)
        assert not task.done()  # housekeeping trouble never ends the daemon
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert "retention: deleted 1 recording(s) older than 7 days" in caplog.text
    assert f"retention: cannot list recordings in {tmp_path}: No such file or directory" in caplog.text
