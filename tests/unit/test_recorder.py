"""Call recorder: WAV header, interleaving, repair, the writer thread, crash safety and backpressure."""

from __future__ import annotations

import asyncio
import errno
import io
import itertools
import logging
import math
import os
import signal
import stat
import struct
import subprocess
import sys
import threading
import time
import wave
from array import array
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ccdaemon.media import recorder
from ccdaemon.media.recorder import (
    BYTES_PER_SECOND,
    FRAME_SAMPLES,
    HEADER_SIZE,
    RecordingService,
    StereoInterleaver,
    WavFile,
    recording_filename,
    repair_directory,
    repair_wav,
    sanitize_call_id,
    wav_header,
)

FRAME = FRAME_SAMPLES * 2  # bytes in one mono 20 ms frame
ROOT = Path(__file__).resolve().parents[2]


def tone(freq: float, n: int, start: int = 0, amp: int = 8000) -> bytes:
    samples = (int(amp * math.sin(2 * math.pi * freq * (start + i) / 8000)) for i in range(n))
    return array("h", samples).tobytes()


def zero_crossings(pcm: array[int]) -> int:
    return sum(1 for a, b in itertools.pairwise(pcm) if (a < 0) != (b < 0))


def read_wav(path: Path) -> tuple[int, int, int, bytes]:
    with wave.open(str(path), "rb") as w:
        return w.getnchannels(), w.getsampwidth(), w.getframerate(), w.readframes(w.getnframes())


def header_sizes(path: Path) -> tuple[int, int]:
    raw = path.read_bytes()[:HEADER_SIZE]
    return struct.unpack_from("<I", raw, 4)[0], struct.unpack_from("<I", raw, 40)[0]


# ------------------------------------------------------------------------------------------------ pure part


def test_wav_header_byte_exact() -> None:
    expected = (
        b"RIFF" + (36 + 640).to_bytes(4, "little") + b"WAVE"
        + b"fmt " + (16).to_bytes(4, "little") + b"\x01\x00" + b"\x02\x00"
        + (8000).to_bytes(4, "little") + (32000).to_bytes(4, "little") + b"\x04\x00" + b"\x10\x00"
        + b"data" + (640).to_bytes(4, "little")
    )  # fmt: skip
    assert wav_header(640) == expected
    assert len(wav_header(0)) == HEADER_SIZE
    # same bytes as the stdlib writer produces for this format
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(640))
    assert buf.getvalue()[:HEADER_SIZE] == expected
    mono8 = wav_header(100, channels=1, rate=16000, bits=8)
    assert mono8[22:36] == struct.pack("<HIIHH", 1, 16000, 16000, 1, 8)
    with pytest.raises(ValueError):
        wav_header(-1)
    with pytest.raises(ValueError):
        wav_header(0, bits=12)


def test_interleave_order_and_silence_fill() -> None:
    il = StereoInterleaver(frame_samples=4)
    left = array("h", [1, 2, 3, 4]).tobytes()
    right = array("h", [-1, -2, -3, -4]).tobytes()
    assert array("h", il.add(left, right)).tolist() == [1, -1, 2, -2, 3, -3, 4, -4]
    assert array("h", il.add(None, right)).tolist() == [0, -1, 0, -2, 0, -3, 0, -4]
    assert array("h", il.add(left, None)).tolist() == [1, 0, 2, 0, 3, 0, 4, 0]
    assert il.add(None, None) == bytes(16)
    # short frame padded, long frame cut: every tick is exactly one frame long
    assert array("h", il.add(left[:4], right + right)).tolist() == [1, -1, 2, -2, 0, -3, 0, -4]
    assert il.ticks == 5


def test_interleave_default_frame() -> None:
    out = StereoInterleaver().add(bytes(FRAME), None)
    assert len(out) == FRAME * 2 == 640


def test_repair_stale_zero_header(tmp_path: Path) -> None:
    path = tmp_path / "crashed.wav"
    payload = tone(440, 800) * 2  # stereo-ish filler: 800 frames of 4 bytes
    path.write_bytes(wav_header(0) + payload + b"\x01\x02\x03")  # plus a torn half sample frame
    with wave.open(str(path), "rb") as w:
        assert w.getnframes() == 0
    assert repair_wav(path) is True
    assert header_sizes(path) == (36 + len(payload), len(payload))
    assert path.stat().st_size == HEADER_SIZE + len(payload)
    assert read_wav(path) == (2, 2, 8000, payload)
    assert repair_wav(path) is False  # idempotent


def test_repair_rejects_non_wav(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    junk = tmp_path / "junk.wav.part"
    junk.write_bytes(b"not a wav at all")
    short = tmp_path / "short.wav.part"
    short.write_bytes(b"RIFF")
    (tmp_path / "ok.wav.part").write_bytes(wav_header(0) + bytes(40))
    with pytest.raises(ValueError):
        repair_wav(junk)
    assert repair_directory(tmp_path) == [tmp_path / "ok.wav"]
    # left for the operator, with one warning each
    assert junk.read_bytes() == b"not a wav at all" and short.read_bytes() == b"RIFF"
    assert f"recording {junk} not repairable: {junk}: not a RIFF/WAVE file" in caplog.text
    assert f"recording {short} not repairable" in caplog.text
    assert repair_directory(tmp_path / "missing") == []


def test_repair_finishes_part_files_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ccdaemon.media.recorder")
    audio = bytes(range(256)) * 4
    parts = [tmp_path / f"call-{n}_20240501T101502.123Z.wav.part" for n in range(7)]
    for part in parts:
        part.write_bytes(wav_header(0) + audio + b"\x01")  # stale header, torn sample frame
    current = tmp_path / "current_20240501T101502.123Z.wav.part"  # killed right after a complete flush
    current.write_bytes(wav_header(len(audio)) + audio)
    # a finished recording is never opened, even one an earlier version left with a stale header
    finished = tmp_path / "done_20240501T101502.123Z.wav"
    finished.write_bytes(wav_header(0) + audio)
    outside = tmp_path.parent / f"{tmp_path.name}-outside.wav"
    outside.write_bytes(wav_header(0) + audio)
    link = tmp_path / "link_20240501T101502.123Z.wav.part"
    link.symlink_to(outside)
    (tmp_path / "dir.wav.part").mkdir()

    repaired = repair_directory(tmp_path)

    assert repaired == sorted(p.with_name(p.name.removesuffix(".part")) for p in [*parts, current])
    for path in repaired:
        assert not recorder.part_path(path).exists()
        assert read_wav(path)[3] == audio and path.stat().st_size == HEADER_SIZE + len(audio)
    assert finished.read_bytes() == wav_header(0) + audio
    assert outside.read_bytes() == wav_header(0) + audio and link.is_symlink()
    assert (tmp_path / "dir.wav.part").is_dir()
    # exactly one line for the whole repair, naming the first five files
    [line] = [r.getMessage() for r in caplog.records]
    assert line.startswith("repaired 8 recording(s) left incomplete by an unclean stop: call-0_")
    assert line.endswith(", ...") and line.count(".wav") == 5
    outside.unlink()


def test_repair_never_replaces_a_finished_recording(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    final = tmp_path / "same_20240501T101502.123Z.wav"
    final.write_bytes(wav_header(4) + b"keep")
    part = recorder.part_path(final)
    part.write_bytes(wav_header(0) + bytes(400))
    assert repair_directory(tmp_path) == []
    assert final.read_bytes() == wav_header(4) + b"keep"
    assert part.exists()
    assert f"recording {part} not repairable: [Errno {errno.EEXIST}] a finished recording" in caplog.text


def test_sanitized_names_stay_inside(tmp_path: Path) -> None:
    when = datetime(2024, 5, 1, 10, 15, 2, 123456, tzinfo=UTC)
    assert recording_filename("abc123@pbx.example", when) == (
        f"{sanitize_call_id('abc123@pbx.example')}_20240501T101502.123Z.wav"
    )
    for evil in ["../../etc/passwd", "/abs/path", "..", ".", "", "a\x00b", "x/" * 200, "..\\..\\win"]:
        name = sanitize_call_id(evil)
        assert name and "/" not in name and "\\" not in name and not name.startswith(".")
        assert len(name) <= 80
        full = (tmp_path / recording_filename(evil, when)).resolve()
        assert full.parent == tmp_path.resolve()
    assert sanitize_call_id("plain-id_1.2") == "plain-id_1.2"
    assert sanitize_call_id("a/b") != sanitize_call_id("a?b")  # hash keeps distinct ids distinct


# ------------------------------------------------------------------------------------------------ I/O part


async def test_recording_reads_back_with_wave(tmp_path: Path) -> None:
    svc = RecordingService(tmp_path / "rec", flush_interval=0.05)
    try:
        rec = svc.open_recording("call-1@host")
        ticks = 100  # 2 s
        for i in range(ticks):
            caller = tone(440, FRAME_SAMPLES, i * FRAME_SAMPLES)
            agent = tone(1000, FRAME_SAMPLES, i * FRAME_SAMPLES)
            # a hold gap on the right and packet loss on the left keep the channels aligned
            rec.add(None if i == 10 else caller, None if 50 <= i < 60 else agent)
        rec.close_recording()
        await asyncio.wait_for(rec.wait_closed(), 5)
    finally:
        await svc.aclose()
    assert rec.closed and rec.path.parent == tmp_path / "rec"
    assert rec.disk_path == rec.path and rec.path.suffix == ".wav"
    assert [p.name for p in rec.path.parent.iterdir()] == [rec.path.name]  # the .part was renamed
    channels, width, rate, data = read_wav(rec.path)
    assert (channels, width, rate) == (2, 2, 8000)
    assert len(data) == ticks * FRAME_SAMPLES * 4
    samples = array("h", data)
    left, right = samples[0::2], samples[1::2]
    assert len(left) == ticks * FRAME_SAMPLES
    # 440 Hz -> ~880 crossings/s, 1000 Hz -> ~2000/s (less the silent stretches)
    assert 1600 <= zero_crossings(left) <= 1800
    assert 3400 <= zero_crossings(right) <= 3700
    assert left[10 * FRAME_SAMPLES : 11 * FRAME_SAMPLES] == array("h", bytes(FRAME))
    assert right[50 * FRAME_SAMPLES : 60 * FRAME_SAMPLES] == array("h", bytes(FRAME * 10))
    assert left[:FRAME_SAMPLES].tobytes() == tone(440, FRAME_SAMPLES)
    assert svc.stats.bytes_written == len(data) and svc.stats.bytes_dropped == 0
    assert svc.stats.opened == svc.stats.closed == 1
    assert repair_wav(rec.path) is False


@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_header_kept_current_between_flushes(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    svc = RecordingService(tmp_path, flush_interval=0.05)
    try:
        rec = svc.open_recording("live")
        rec.write(bytes(6400))
        deadline = time.monotonic() + 5
        while svc.stats.bytes_written < 6400 and time.monotonic() < deadline:
            time.sleep(0.01)
        # still open, under the .part name, but already a complete, valid WAV with the final mode
        part = rec.disk_path
        assert part.name == rec.path.name + ".part"
        assert not rec.path.exists()
        assert header_sizes(part) == (36 + 6400, 6400)
        assert read_wav(part)[3] == bytes(6400)
        assert stat.S_IMODE(part.stat().st_mode) == 0o640
    finally:
        svc.close()
        os.umask(old)
    assert rec.disk_path == rec.path and not part.exists()
    assert read_wav(rec.path)[3] == bytes(6400)


@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_file_mode_0640_regardless_of_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        svc = RecordingService(tmp_path / "new" / "dir", flush_interval=0.05)
        rec = svc.open_recording("perm")
        rec.write(bytes(64))
        rec.close_recording()
        svc.close()
    finally:
        os.umask(old)
    assert rec.closed
    assert (rec.path.stat().st_mode & 0o7777) == 0o640
    for directory in (tmp_path / "new", tmp_path / "new" / "dir"):  # the writer made both
        assert stat.S_IMODE(directory.stat().st_mode) == 0o750


def test_traversal_call_id_stays_in_directory(tmp_path: Path) -> None:
    target = tmp_path / "rec"
    svc = RecordingService(target, flush_interval=0.05)
    try:
        rec = svc.open_recording("../../../tmp/evil")
        rec.write(bytes(64))
        rec.close_recording()
    finally:
        svc.close()
    assert rec.path.parent == target
    assert [p.name for p in target.iterdir()] == [rec.path.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec"]


def test_name_collision_gets_suffix(tmp_path: Path) -> None:
    when = datetime(2024, 1, 1, tzinfo=UTC)
    svc = RecordingService(tmp_path, flush_interval=0.05)
    try:
        a = svc.open_recording("same", now=when)
        b = svc.open_recording("same", now=when)
        a.close_recording()
        b.close_recording()
    finally:
        svc.close()
    assert a.path != b.path and a.path.exists() and b.path.exists()


def test_finished_recording_of_the_same_name_is_not_replaced(tmp_path: Path) -> None:
    when = datetime(2024, 1, 1, tzinfo=UTC)
    earlier = tmp_path / recording_filename("same", when)
    earlier.write_bytes(wav_header(4) + b"keep")
    svc = RecordingService(tmp_path, flush_interval=0.05)
    try:
        rec = svc.open_recording("same", now=when)
        rec.write(bytes(64))
        rec.close_recording()
    finally:
        svc.close()
    assert rec.path == earlier.with_stem(earlier.stem + "-1")
    assert read_wav(rec.path)[3] == bytes(64)
    assert earlier.read_bytes() == wav_header(4) + b"keep"


def test_failed_rename_leaves_the_part_for_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    replace = os.replace

    def refuse(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(src).parent == tmp_path:  # only the recorder's rename; other threads' calls go through
            raise OSError(errno.EIO, "Input/output error")
        replace(src, dst)

    monkeypatch.setattr(os, "replace", refuse)
    svc = RecordingService(tmp_path, flush_interval=0.05)
    try:
        rec = svc.open_recording("unlucky")
        rec.write(bytes(64))
        rec.close_recording()
    finally:
        svc.close()
    assert rec.closed and rec.io_errors == 1 and svc.stats.io_errors == 1
    assert rec.disk_path == recorder.part_path(rec.path) and not rec.path.exists()
    assert (
        "rename failed ([Errno 5] Input/output error); it stays a .part until the next start" in caplog.text
    )
    monkeypatch.undo()
    assert repair_directory(tmp_path) == [rec.path]
    assert read_wav(rec.path)[3] == bytes(64)


class StalledWav(WavFile):
    """A sink whose appends block until the test opens the gate: a disk that has fallen far behind."""

    gate = threading.Event()
    entered = threading.Event()

    def append(self, data: bytes) -> None:
        StalledWav.entered.set()
        StalledWav.gate.wait(10)
        super().append(data)


async def test_aclose_is_bounded_and_leaves_the_loop_running(tmp_path: Path) -> None:
    StalledWav.gate.clear()
    StalledWav.entered.clear()
    svc = RecordingService(
        tmp_path, flush_interval=0.02, file_factory=lambda path, fsync: StalledWav(path, fsync=fsync)
    )
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    try:
        rec = svc.open_recording("stuck")
        rec.write(bytes(640))
        await asyncio.to_thread(StalledWav.entered.wait, 5)  # the writer thread is stuck in the disk
        loop = asyncio.get_running_loop()
        start = loop.time()
        await svc.aclose(timeout=0.3)
        elapsed = loop.time() - start
        assert 0.3 <= elapsed < 2
        assert ticks >= 10  # the loop went on while aclose waited
        assert svc.active == 1 and not rec.closed  # what the daemon reports as not finalized
        assert rec.disk_path.name.endswith(".wav.part") and not rec.path.exists()
    finally:
        StalledWav.gate.set()
        task.cancel()
    await asyncio.wait_for(svc.aclose(), 5)  # unbounded: returns once the writer has finished
    assert svc.active == 0 and rec.closed
    assert read_wav(rec.path)[3] == bytes(640)
    await svc.aclose(timeout=0)  # stopped already: returns at once


async def test_backpressure_drops_oldest_and_write_never_blocks(tmp_path: Path) -> None:
    StalledWav.gate.clear()
    StalledWav.entered.clear()
    svc = RecordingService(
        tmp_path,
        flush_interval=0.02,
        max_buffered_seconds=1.0,
        file_factory=lambda path, fsync: StalledWav(path, fsync=fsync),
    )
    try:
        rec = svc.open_recording("slow")
        frame = bytes(640)
        rec.write(frame)
        await asyncio.to_thread(StalledWav.entered.wait, 5)  # writer thread now stuck inside append
        worst = 0.0
        total = 1
        for _ in range(3 * 50):  # 3 s of audio against a 1 s bound
            t0 = time.perf_counter()
            rec.write(frame)
            worst = max(worst, time.perf_counter() - t0)
            total += 1
        assert worst < 0.005  # returns immediately although the writer is stalled
        assert rec.bytes_dropped == (total - 1) * 640 - BYTES_PER_SECOND
        assert svc.stats.bytes_dropped == rec.bytes_dropped
        rec.close_recording()
    finally:
        StalledWav.gate.set()
        await svc.aclose()
    data = read_wav(rec.path)[3]
    # nothing silently lost: on disk + dropped = everything written
    assert len(data) + rec.bytes_dropped == total * 640
    assert len(data) == 640 + BYTES_PER_SECOND


class FailingWav(WavFile):
    calls = 0

    def append(self, data: bytes) -> None:
        FailingWav.calls += 1
        raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_logged_once_and_counted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    FailingWav.calls = 0
    svc = RecordingService(
        tmp_path, flush_interval=0.02, file_factory=lambda path, fsync: FailingWav(path, fsync=fsync)
    )
    try:
        with caplog.at_level(logging.ERROR, logger="ccdaemon.media.recorder"):
            rec = svc.open_recording("full")
            for _ in range(5):
                rec.write(bytes(640))
                time.sleep(0.05)
            rec.close_recording()
            assert rec._done.wait(5)
    finally:
        svc.close()
    assert FailingWav.calls >= 3
    assert rec.io_errors == FailingWav.calls == svc.stats.io_errors
    assert rec.bytes_lost == 5 * 640 == svc.stats.bytes_lost
    assert len([r for r in caplog.records if "full" in r.getMessage()]) == 1
    assert read_wav(rec.path)[3] == b""  # still a valid, empty WAV


def test_unwritable_directory_counted(tmp_path: Path) -> None:
    def deny(path: Path, fsync: bool) -> WavFile:
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    svc = RecordingService(tmp_path, flush_interval=0.02, file_factory=deny)
    try:
        rec = svc.open_recording("denied")
        rec.write(bytes(640))
        time.sleep(0.1)
        rec.write(bytes(640))
        rec.close_recording()
        assert rec._done.wait(5)
    finally:
        svc.close()
    assert rec.io_errors == 1 and rec.bytes_lost == 1280


def test_write_rejects_partial_sample_frames(tmp_path: Path) -> None:
    svc = RecordingService(tmp_path, flush_interval=0.05)
    try:
        rec = svc.open_recording("odd")
        with pytest.raises(ValueError):
            rec.write(b"\x00\x01\x02")
    finally:
        svc.close()
    assert svc.active == 0 and rec.closed


def test_startup_repair_runs_in_writer_thread(tmp_path: Path) -> None:
    stale = tmp_path / "old.wav.part"
    stale.write_bytes(wav_header(0) + bytes(400))
    svc = RecordingService(tmp_path, flush_interval=0.02)
    svc.close()
    assert svc.repaired == [tmp_path / "old.wav"]
    assert header_sizes(tmp_path / "old.wav") == (436, 400)
    assert not stale.exists()


CHILD = """
import asyncio, sys
from ccdaemon.media.recorder import RecordingService

async def main() -> None:
    svc = RecordingService(sys.argv[1], flush_interval=0.1)
    rec = svc.open_recording("killed-call")
    print(rec.path, flush=True)  # the final name; the audio goes to the .part meanwhile
    left = b"\\x11\\x11" * 160
    right = b"\\x22\\x22" * 160
    loop = asyncio.get_running_loop()
    start = loop.time()
    for n in range(250):  # 5 s; the parent kills us after about one
        rec.add(left, right)
        await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - loop.time()))

asyncio.run(main())
"""


def test_sigkill_mid_call_leaves_valid_file(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert proc.stdout is not None
        final = Path(proc.stdout.readline().strip())
        path = recorder.part_path(final)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if path.exists() and path.stat().st_size >= HEADER_SIZE + BYTES_PER_SECOND // 2:
                break
            time.sleep(0.01)
        else:
            pytest.fail("child never recorded")
        time.sleep(0.37)  # land somewhere between flushes
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert not final.exists()  # never closed, so never renamed
    size = path.stat().st_size
    riff, data_len = header_sizes(path)
    # the header never claims more than what is on disk, and is at most one flush behind
    assert data_len % 4 == 0 and riff == 36 + data_len
    assert HEADER_SIZE + data_len <= size
    channels, _, _, data = read_wav(path)  # opens as-is, no repair needed
    assert channels == 2 and len(data) == data_len > 0
    assert data == b"\x11\x11\x22\x22" * (data_len // 4)
    # the next start finishes it: header matching the file, and the final name
    assert repair_directory(tmp_path) == [final]
    assert not path.exists()
    _, _, _, data = read_wav(final)
    assert HEADER_SIZE + len(data) == final.stat().st_size
    assert data_len <= len(data) <= size - HEADER_SIZE
    assert data == b"\x11\x11\x22\x22" * (len(data) // 4)
    assert stat.S_IMODE(final.stat().st_mode) == 0o640
    assert repair_wav(final) is False
