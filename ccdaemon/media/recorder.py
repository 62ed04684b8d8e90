"""Call recorder: stereo 16-bit 8 kHz WAV, left = caller, right = the agent side.

Two halves:

* Pure helpers: :class:`StereoInterleaver` (two 20 ms mono PCM16 frames per tick -> one interleaved stereo
  frame, a missing side becomes silence so the channels stay aligned across hold, transfer and loss),
  :func:`wav_header`, and the start-up repair :func:`repair_wav` / :func:`repair_directory`.
* I/O that never blocks the event loop (ARCHITECTURE invariant 1): :meth:`RecordingWriter.write` only appends
  to an in-memory chunk list under a lock that is held for O(1) work on both sides. One background thread per
  process (:class:`RecordingService`) flushes every open recording each ``flush_interval``: it appends the
  data, then rewrites the header sizes, so after a SIGKILL the file is valid up to the last flush.

A recording in progress is ``<name>.wav.part`` and becomes ``<name>.wav`` (atomic rename) when it is
closed, so a ``*.wav`` is always finished and the start-up repair only looks at the ``*.wav.part`` files a
killed daemon left: it fixes whatever header staleness remains (killed between the two writes, or by power
loss) and renames them, however many finished recordings the directory holds.

PCM is 16-bit little-endian as in WAV; samples are moved, never interpreted, so host byte order is irrelevant.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import re
import stat
import struct
import threading
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

__all__ = [
    "BYTES_PER_SECOND",
    "DIR_MODE",
    "FILE_MODE",
    "FRAME_SAMPLES",
    "HEADER_SIZE",
    "PART_SUFFIX",
    "RecorderStats",
    "RecordingService",
    "RecordingWriter",
    "StereoInterleaver",
    "WavFile",
    "make_directory",
    "part_path",
    "recording_filename",
    "repair_directory",
    "repair_wav",
    "sanitize_call_id",
    "wav_header",
]

log = logging.getLogger(__name__)

RATE = 8000
CHANNELS = 2
BITS = 16
BLOCK_ALIGN = CHANNELS * BITS // 8  # one stereo sample frame: 4 bytes
BYTES_PER_SECOND = RATE * BLOCK_ALIGN
FRAME_SAMPLES = RATE // 50  # 20 ms
HEADER_SIZE = 44
FILE_MODE = 0o640  # readable by the service's group only
DIR_MODE = 0o750  # the service's group may list and read recordings, nobody else
PART_SUFFIX = ".part"  # appended to the name while the recording is in progress

_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")
_CHUNK = struct.Struct("<4sI")
_MAX_DATA = 0xFFFFFFFF - (HEADER_SIZE - 8)
_MAX_ID_LEN = 64
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


# --------------------------------------------------------------------------------------------- pure part


class StereoInterleaver:
    """Turns one mono PCM16 frame per side per tick into one interleaved stereo frame (L R L R ...).

    Every tick yields exactly ``frame_samples`` stereo sample frames: a missing side (None, hold, loss) or a
    short frame is padded with silence and a long one is cut, so left and right never drift apart.
    """

    __slots__ = ("_silence", "frame_samples", "ticks")

    def __init__(self, frame_samples: int = FRAME_SAMPLES) -> None:
        if frame_samples <= 0:
            raise ValueError(f"frame_samples must be positive: {frame_samples}")
        self.frame_samples = frame_samples
        self._silence = bytes(frame_samples * BLOCK_ALIGN)
        self.ticks = 0

    def add(self, left: bytes | None, right: bytes | None) -> bytes:
        self.ticks += 1
        out = array("h", self._silence)
        for channel, pcm in ((0, left), (1, right)):
            if not pcm:
                continue
            n = min(len(pcm) // 2, self.frame_samples)
            out[channel : 2 * n : 2] = array("h", pcm[: 2 * n])
        return out.tobytes()


def wav_header(data_bytes: int, *, channels: int = CHANNELS, rate: int = RATE, bits: int = BITS) -> bytes:
    """The canonical 44-byte PCM WAV header (RIFF, 16-byte ``fmt ``, ``data``) for ``data_bytes`` of audio."""
    if bits <= 0 or bits % 8:
        raise ValueError(f"bits must be a positive multiple of 8: {bits}")
    if not 0 <= data_bytes <= _MAX_DATA:
        raise ValueError(f"data size out of range for a RIFF file: {data_bytes}")
    block = channels * bits // 8
    return _HEADER.pack(
        b"RIFF", HEADER_SIZE - 8 + data_bytes, b"WAVE",
        b"fmt ", 16, 1, channels, rate, rate * block, block, bits,
        b"data", data_bytes,
    )  # fmt: skip


def repair_wav(path: str | os.PathLike[str]) -> bool:
    """Fix the RIFF and data sizes of a WAV whose header is stale, from the real file size.

    Assumes ``data`` is the last chunk, as in the files this module writes. A trailing partial sample frame
    (a write cut short) is truncated. Returns whether the file was changed; raises ValueError if it is not a
    RIFF/WAVE file with ``fmt `` and ``data`` chunks, OSError on I/O failure.
    """
    with open(path, "r+b") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise ValueError(f"{path}: not a RIFF/WAVE file")
        block_align = 0
        pos = 12
        while True:
            f.seek(pos)
            raw = f.read(_CHUNK.size)
            if len(raw) < _CHUNK.size:
                raise ValueError(f"{path}: no data chunk")
            chunk_id, chunk_len = _CHUNK.unpack(raw)
            if chunk_id == b"fmt ":
                fmt = f.read(16)
                if len(fmt) < 16:
                    raise ValueError(f"{path}: truncated fmt chunk")
                block_align = struct.unpack_from("<H", fmt, 12)[0]
            elif chunk_id == b"data":
                break
            pos += _CHUNK.size + chunk_len + (chunk_len & 1)
        if block_align == 0:
            raise ValueError(f"{path}: no usable fmt chunk before data")
        data_offset = pos + _CHUNK.size
        available = max(size - data_offset, 0)
        data_len = min(available - available % block_align, _MAX_DATA - _MAX_DATA % block_align)
        changed = False
        if data_offset + data_len != size:
            f.truncate(data_offset + data_len)
            changed = True
        riff_len = data_offset - 8 + data_len
        if struct.unpack_from("<I", head, 4)[0] != riff_len:
            f.seek(4)
            f.write(struct.pack("<I", riff_len))
            changed = True
        if chunk_len != data_len:
            f.seek(pos + 4)
            f.write(struct.pack("<I", data_len))
            changed = True
        return changed


def part_path(path: Path) -> Path:
    """Where the recording that ends up as ``path`` is written while in progress: ``<name>.wav.part``."""
    return path.with_name(path.name + PART_SUFFIX)


def repair_directory(directory: str | os.PathLike[str]) -> list[Path]:
    """Finish what a killed daemon left in ``directory``: repair each ``*.wav.part``, rename it ``*.wav``.

    Returns the finished ``.wav`` paths and logs them in one WARNING. Only ``.part`` files are opened, so the
    start-up does not slow down as the archive grows: a ``.wav`` is complete, because it gets that name only
    after its last write. That also holds for files finished by versions before the ``.part`` naming (they
    were repaired at every start); a stale one could only be left by such a version killed just before the
    upgrade, and is still playable (its header at most one flush behind): :func:`repair_wav` fixes it by hand.

    A ``.part`` that is not a repairable WAV, or whose ``.wav`` name exists already (never overwritten), is
    logged and left in place. Blocking disk I/O: run it off the event loop, before any recording in
    ``directory`` is opened (RecordingService does it in its writer thread).
    """
    root = Path(directory)
    suffix = ".wav" + PART_SUFFIX
    try:
        with os.scandir(root) as listing:
            parts = sorted(root / e.name for e in listing if e.name.endswith(suffix) and _is_regular(e))
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.warning("cannot list recordings in %s: %s", root, exc.strerror or exc)
        return []
    finished: list[Path] = []
    for part in parts:
        final = part.with_name(part.name.removesuffix(PART_SUFFIX))
        try:
            repair_wav(part)
            if os.path.lexists(final):  # never replaced: both names at once means someone copied files
                raise FileExistsError(errno.EEXIST, "a finished recording has that name", str(final))
            os.replace(part, final)
        except (OSError, ValueError) as exc:
            log.warning("recording %s not repairable: %s", part, exc)
            continue
        finished.append(final)
    if finished:
        # only a daemon killed during a call (or a power loss) leaves a .part behind
        shown = ", ".join(p.name for p in finished[:5]) + (", ..." if len(finished) > 5 else "")
        log.warning("repaired %d recording(s) left incomplete by an unclean stop: %s", len(finished), shown)
    return finished


def _is_regular(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file(follow_symlinks=False)  # a link might point anywhere: never write through it
    except OSError:
        return False


def make_directory(path: Path) -> list[Path]:
    """Create ``path`` and missing parents with mode 0750 whatever the umask; returns those created.

    Outermost first. An existing directory is left as the operator made it; a path that exists but is not a
    directory raises NotADirectoryError naming it (``filename``).
    """
    created: list[Path] = []
    _make_dirs(path, created)
    return created


def _make_dirs(path: Path, created: list[Path]) -> None:
    try:
        os.mkdir(path, DIR_MODE)
    except FileNotFoundError:
        if path.parent == path:
            raise
        _make_dirs(path.parent, created)
        os.mkdir(path, DIR_MODE)
    except FileExistsError:
        if not stat.S_ISDIR(os.stat(path).st_mode):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path)) from None
        return
    with contextlib.suppress(OSError):
        os.chmod(path, DIR_MODE)  # mkdir's mode went through the umask; the group must be able to read
    created.append(path)


def sanitize_call_id(call_id: str) -> str:
    """A file-name-safe form of a caller-supplied SIP Call-ID: no separators, no leading dot, bounded length.

    When anything was altered a short hash of the original is appended, so distinct ids stay distinct.
    """
    safe = _UNSAFE.sub("_", call_id).lstrip(".")[:_MAX_ID_LEN]
    if safe != call_id or not safe:
        digest = hashlib.sha256(call_id.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        safe = f"{safe}_{digest}" if safe else digest
    return safe


def recording_filename(call_id: str, when: datetime) -> str:
    """``<sanitized call id>_<UTC yyyymmddThhmmss.mmmZ>.wav``."""
    utc = when.astimezone(UTC)
    stamp = f"{utc:%Y%m%dT%H%M%S}.{utc.microsecond // 1000:03d}Z"
    return f"{sanitize_call_id(call_id)}_{stamp}.wav"


# --------------------------------------------------------------------------------------------- I/O part


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n == 0:  # pragma: no cover - the kernel reports errors, not zero-length progress
            raise OSError(errno.EIO, "short write")
        view = view[n:]
        offset += n


class WavFile:
    """One recording on disk, used only from the writer thread. Created exclusively with mode 0640.

    ``path`` is where the audio is written (the ``.part`` name: :class:`RecordingWriter` renames it after
    :meth:`close`).

    ``append`` writes data first and the header sizes second, so the header never claims bytes that are not
    on disk. A failed append is rolled back to the last good size so the channels never get misaligned.
    """

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        self.path = path
        self._fsync = fsync
        self.data_bytes = 0
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)  # os.open's mode is filtered by the umask; fchmod is not
            _pwrite_all(fd, wav_header(0), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def append(self, data: bytes) -> None:
        if self.data_bytes + len(data) > _MAX_DATA:
            raise OSError(errno.EFBIG, "WAV data chunk full (4 GiB)")
        try:
            _pwrite_all(self._fd, data, HEADER_SIZE + self.data_bytes)
            if self._fsync:
                os.fdatasync(self._fd)  # data durable before the header points at it
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, HEADER_SIZE + self.data_bytes)
            raise
        self.data_bytes += len(data)
        _pwrite_all(self._fd, wav_header(self.data_bytes), 0)
        if self._fsync:
            os.fdatasync(self._fd)

    def close(self) -> None:
        os.close(self._fd)


FileFactory = Callable[[Path, bool], WavFile]


def _default_file_factory(path: Path, fsync: bool) -> WavFile:
    return WavFile(path, fsync=fsync)


@dataclass(slots=True)
class RecorderStats:
    """Process-wide counters (all recordings)."""

    opened: int = 0
    closed: int = 0
    bytes_written: int = 0
    bytes_dropped: int = 0  # backpressure: oldest audio discarded because the writer fell behind
    bytes_lost: int = 0  # audio that could not be written because of disk errors
    io_errors: int = 0


class RecordingWriter:
    """The event-loop side of one recording. Obtain it from :meth:`RecordingService.open_recording`.

    ``write``/``add`` are O(1) and never block; call them from one thread (the event loop).
    """

    def __init__(self, service: RecordingService, path: Path, max_buffered: int) -> None:
        self._service = service
        self._path = path
        self._finished_name = False  # renamed from .part to the final name (writer thread, before _done)
        self._max_buffered = max_buffered
        self._lock = threading.Lock()
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._closing = False
        self._done = threading.Event()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._interleaver = StereoInterleaver()
        # writer-thread state
        self._file: WavFile | None = None
        self._failed = False
        self._error_logged = False
        self.bytes_written = 0
        self.bytes_dropped = 0
        self.bytes_lost = 0
        self.io_errors = 0

    @property
    def path(self) -> Path:
        """The finished recording's ``.wav`` (a numeric suffix is added by the writer if the name was taken).

        It exists once :attr:`closed` is true; before that the audio is in :attr:`disk_path`. If the rename
        failed (logged), the ``.part`` stays and the next start-up repair gives it this name.
        """
        return self._path

    @property
    def disk_path(self) -> Path:
        """Where the audio is on disk now: ``<path>.part`` while recording, :attr:`path` once finished."""
        return self._path if self._finished_name else part_path(self._path)

    @property
    def closed(self) -> bool:
        """True once the file is finalized and closed."""
        return self._done.is_set()

    def write(self, frames: bytes) -> None:
        """Queue interleaved stereo PCM16 (a whole number of 4-byte sample frames); ignored once closing."""
        if len(frames) % BLOCK_ALIGN:
            raise ValueError(f"not a whole number of stereo sample frames: {len(frames)} bytes")
        if not frames:
            return
        data = bytes(frames)  # no-op for bytes; a caller's reusable buffer must not change under us
        dropped = 0
        with self._lock:
            if self._closing:
                return
            if len(data) > self._max_buffered:
                dropped += len(data) - self._max_buffered
                data = data[-self._max_buffered :]
            self._chunks.append(data)
            self._buffered += len(data)
            while self._buffered > self._max_buffered:
                # whole chunks go: O(1) each, and chunks are frame-aligned so channels stay in place
                old = self._chunks.popleft()
                self._buffered -= len(old)
                dropped += len(old)
        if dropped:
            self.bytes_dropped += dropped
            self._service._count_dropped(dropped)

    def add(self, left: bytes | None, right: bytes | None) -> None:
        """One 20 ms tick: caller frame on the left, agent side on the right; None = silence."""
        self.write(self._interleaver.add(left, right))

    def close_recording(self) -> None:
        """Stop accepting audio; the writer thread flushes the rest and finalizes the header. Non-blocking."""
        with self._lock:
            self._closing = True
        self._service._wake.set()

    async def wait_closed(self) -> None:
        """Wait (without blocking the loop) until the writer thread has finalized the file."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._done.is_set():
                return
            self._waiters.append((loop, fut))
        await fut

    # --- writer thread -----------------------------------------------------------------------------------

    def _take(self, force_close: bool) -> tuple[bytes, bool]:
        with self._lock:
            chunks, self._chunks = self._chunks, deque()
            self._buffered = 0
            if force_close:
                self._closing = True
            closing = self._closing
        return b"".join(chunks), closing  # joined outside the lock: the loop never waits on a copy

    def _error(self, what: str, exc: OSError, outcome: str = "audio for this call is being dropped") -> None:
        self.io_errors += 1
        self._service._count(io_errors=1)
        if not self._error_logged:  # once per recording: a full disk must not flood the log at 50 Hz
            self._error_logged = True
            log.error("recording %s: %s failed (%s); %s", self._path, what, exc, outcome)

    def _lose(self, n: int) -> None:
        self.bytes_lost += n
        self._service._count(bytes_lost=n)

    def _open_file(self, factory: FileFactory, fsync: bool) -> None:
        try:
            make_directory(self._path.parent)
            for attempt in range(100):
                path = self._path if attempt == 0 else self._path.with_stem(f"{self._path.stem}-{attempt}")
                # the final name must be free too, or the rename at the end would replace a finished call;
                # checked here, in the one thread that creates and renames recordings, so it stays free
                if os.path.lexists(path):
                    continue
                try:
                    self._file = factory(part_path(path), fsync)
                except FileExistsError:
                    continue
                self._path = path
                return
            raise OSError(errno.EEXIST, "no free file name")
        except OSError as exc:
            self._failed = True
            self._error("create", exc)

    def _close_file(self, file: WavFile) -> None:
        try:
            file.close()
        except OSError as exc:
            self._error("close", exc, "it stays a .part until the next start repairs it")
            return  # contents uncertain: leave the .part for the start-up repair
        try:
            # not followed by a directory fsync even with fsync on: after a power loss the .part is
            # repaired and renamed at the next start, with the same audio
            os.replace(part_path(self._path), self._path)
        except OSError as exc:
            self._error("rename", exc, "it stays a .part until the next start repairs it")
            return
        self._finished_name = True

    def _pump(self, factory: FileFactory, fsync: bool, force_close: bool) -> bool:
        """Write what is buffered; finalize if closing. Returns True when the recording is finished."""
        data, closing = self._take(force_close)
        if self._file is None and not self._failed:
            self._open_file(factory, fsync)
        if data:
            if self._file is None:
                self._lose(len(data))
            else:
                try:
                    self._file.append(data)
                except OSError as exc:
                    self._error("write", exc)
                    self._lose(len(data))
                else:
                    self.bytes_written += len(data)
                    self._service._count(bytes_written=len(data))
        if not closing:
            return False
        if self._file is not None:
            self._close_file(self._file)
        self._finish()
        return True

    def _finish(self) -> None:
        with self._lock:
            self._done.set()
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is already closed: nobody is waiting
                loop.call_soon_threadsafe(_resolve, fut)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class RecordingService:
    """One writer thread for all recordings of the process.

    Memory is bounded per recording by ``max_buffered_seconds`` of audio (oldest dropped and counted when the
    disk or the thread falls behind). ``repair_on_start`` runs :func:`repair_directory` in the writer thread
    before the first recording is created (it only opens ``*.wav.part`` files, so it is quick). ``fsync``
    (off by default) makes each flush durable against power loss at the cost of two fdatasync calls per
    recording per flush.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        flush_interval: float = 0.5,
        fsync: bool = False,
        max_buffered_seconds: float = 30.0,
        repair_on_start: bool = True,
        file_factory: FileFactory = _default_file_factory,
    ) -> None:
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        max_buffered = int(max_buffered_seconds * BYTES_PER_SECOND)
        self._max_buffered = max_buffered - max_buffered % BLOCK_ALIGN
        if self._max_buffered <= 0:
            raise ValueError("max_buffered_seconds too small")
        self.directory = Path(directory)
        self.flush_interval = flush_interval
        self.fsync = fsync
        self.stats = RecorderStats()
        self.repaired: list[Path] = []
        self._file_factory = file_factory
        self._repair = repair_on_start
        self._lock = threading.Lock()
        self._recordings: list[RecordingWriter] = []
        self._stopping = False
        self._stopped = False  # the writer thread has returned (set under _lock)
        self._stop_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="recording-writer", daemon=True)
        self._thread.start()

    def open_recording(self, call_id: str, *, now: datetime | None = None) -> RecordingWriter:
        """Start a recording for ``call_id``; the file is created by the writer thread. Non-blocking."""
        path = self.directory / recording_filename(call_id, now or datetime.now(UTC))
        if path.parent != self.directory:  # sanitize_call_id guarantees this; keep the guarantee explicit
            raise ValueError(f"unsafe call id: {call_id!r}")
        writer = RecordingWriter(self, path, self._max_buffered)
        with self._lock:
            if self._stopping:
                raise RuntimeError("recording service is closed")
            self._recordings.append(writer)
            self.stats.opened += 1
        return writer

    @property
    def active(self) -> int:
        with self._lock:
            return len(self._recordings)

    def close(self, timeout: float | None = None) -> None:
        """Finalize every open recording and stop the thread. Blocking: use :meth:`aclose` on the loop.

        After ``timeout`` seconds it returns anyway; :attr:`active` then counts the recordings not finalized.
        """
        self._request_stop()
        self._thread.join(timeout)

    async def aclose(self, timeout: float | None = None) -> None:
        """:meth:`close` without blocking the loop (and without an executor thread waiting in ``join``)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            stopped = self._stopped
            if not stopped:
                self._stop_waiters.append((loop, fut))
        self._request_stop()
        if stopped:
            return
        with contextlib.suppress(TimeoutError):  # the writer goes on finishing in the background
            await asyncio.wait_for(fut, timeout)

    def _request_stop(self) -> None:
        with self._lock:
            self._stopping = True
        self._wake.set()

    def _count(self, *, bytes_written: int = 0, bytes_lost: int = 0, io_errors: int = 0) -> None:
        with self._lock:
            self.stats.bytes_written += bytes_written
            self.stats.bytes_lost += bytes_lost
            self.stats.io_errors += io_errors

    def _count_dropped(self, n: int) -> None:
        with self._lock:
            self.stats.bytes_dropped += n

    def _run(self) -> None:
        try:
            self._write_loop()
        finally:
            with self._lock:
                self._stopped = True
                waiters, self._stop_waiters = self._stop_waiters, []
            for loop, fut in waiters:
                with contextlib.suppress(RuntimeError):  # that loop is already closed: nobody is waiting
                    loop.call_soon_threadsafe(_resolve, fut)

    def _write_loop(self) -> None:
        if self._repair:
            try:
                self.repaired = repair_directory(self.directory)
            except Exception:  # a broken repair must not stop recording
                log.exception("repairing recordings in %s failed", self.directory)
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            with self._lock:
                # read together with the snapshot: a recording opened before close() is always finalized
                stopping = self._stopping
                recordings = list(self._recordings)
            finished: list[RecordingWriter] = []
            for rec in recordings:
                try:
                    if rec._pump(self._file_factory, self.fsync, stopping):
                        finished.append(rec)
                except Exception:  # a bug in one recording must not stop all the others
                    log.exception("recording %s: writer failed", rec.path)
                    rec._finish()
                    finished.append(rec)
            if finished:
                with self._lock:
                    done = set(map(id, finished))
                    self._recordings = [r for r in self._recordings if id(r) not in done]
                    self.stats.closed += len(finished)
            if stopping:
                return
