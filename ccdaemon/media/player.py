"""Prompt / music-on-hold playback as 20 ms frames of 8 kHz 16-bit linear PCM, pulled on demand.

Pure state machine: no clock and no asyncio. The RTP sender calls :meth:`Player.next_frame` on each of its
absolute 20 ms deadlines, so pacing stays in one place and the player can be tested frame by frame.
Buffers are the output of :mod:`ccdaemon.media.audio_file` (native-endian PCM16); they are referenced, not
copied, so a cached music-on-hold file costs no extra memory per call.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "DTMF_DIGITS",
    "FRAME_BYTES",
    "FRAME_MS",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "Player",
    "silence",
]

SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000  # 160
FRAME_BYTES = 2 * FRAME_SAMPLES  # 320
DTMF_DIGITS = frozenset("0123456789*#ABCD")

_SILENT_FRAME = bytes(FRAME_BYTES)


def silence(ms: int) -> bytes:
    """``ms`` milliseconds of digital silence as PCM16 (e.g. a pause between prompts in a playlist)."""
    if ms < 0:
        raise ValueError(f"silence duration must be >= 0 ms, got {ms}")
    return bytes(2 * (ms * SAMPLE_RATE // 1000))


def _ms(samples: int) -> int:
    return samples * 1000 // SAMPLE_RATE


class Player:
    """Plays a playlist of PCM16 buffers in order, optionally looping, optionally interruptible by DTMF.

    ``next_frame()`` returns exactly :data:`FRAME_BYTES` bytes, or ``None`` once playback is over (a
    non-looping playlist ran out, or the player was interrupted). The last partial frame is padded with
    silence. A looping playlist wraps seamlessly: a frame may end one pass and start the next.

    ``barge_in_digits`` limits which DTMF digits interrupt (default: any); ignored unless ``interruptible``.
    """

    def __init__(
        self,
        playlist: Iterable[bytes],
        *,
        loop: bool = False,
        interruptible: bool = False,
        barge_in_digits: Iterable[str] | None = None,
    ) -> None:
        buffers: list[memoryview] = []
        for i, buf in enumerate(playlist):
            if len(buf) & 1:
                raise ValueError(f"playlist item {i} is not whole 16-bit samples ({len(buf)} bytes)")
            if buf:  # empty items would make the wrap loop spin without progress
                buffers.append(memoryview(buf))
        digits = DTMF_DIGITS if barge_in_digits is None else frozenset(d.upper() for d in barge_in_digits)
        if not digits <= DTMF_DIGITS:
            raise ValueError(f"not DTMF digits: {sorted(digits - DTMF_DIGITS)}")
        self._buffers = buffers
        self._loop = loop
        self.interruptible = interruptible
        self._barge_in_digits = digits
        self._total_samples = sum(len(b) for b in buffers) // 2
        self._index = 0  # current buffer
        self._offset = 0  # byte offset in it
        self._position = 0  # samples from the start of the current pass
        self._played = 0  # samples of playlist audio produced overall (padding excluded)
        self._ended = not buffers
        self._interrupted = False

    # --- state ---------------------------------------------------------------------------------------

    @property
    def loop(self) -> bool:
        return self._loop

    @property
    def finished(self) -> bool:
        """True when no further frame will come (played out or interrupted); ``next_frame`` returns None."""
        return self._ended

    @property
    def interrupted(self) -> bool:
        """True if playback was cut short by :meth:`interrupt` or a barge-in digit."""
        return self._interrupted

    @property
    def duration_ms(self) -> int:
        """Length of one pass through the playlist."""
        return _ms(self._total_samples)

    @property
    def position_ms(self) -> int:
        """Position within the current pass (wraps to 0 when a loop restarts)."""
        return _ms(self._position)

    @property
    def remaining_ms(self) -> int | None:
        """Time left to play; ``None`` for a loop (it never ends by itself), 0 once finished."""
        if self._ended:
            return 0
        if self._loop:
            return None
        return _ms(self._total_samples - self._position)

    @property
    def played_ms(self) -> int:
        """Playlist audio produced so far, across loop passes (silence padding not counted)."""
        return _ms(self._played)

    # --- control -------------------------------------------------------------------------------------

    def interrupt(self) -> bool:
        """Stop playback now; the next ``next_frame`` returns None. Returns False if it had already ended."""
        if self._ended:
            return False
        self._ended = True
        self._interrupted = True
        return True

    def on_dtmf(self, digit: str) -> bool:
        """Barge-in: stop playback if this player is interruptible by ``digit``. True if it stopped it.

        The caller still processes the digit (e.g. as menu input) whatever this returns.
        """
        if not self.interruptible or digit.upper() not in self._barge_in_digits:
            return False
        return self.interrupt()

    # --- output --------------------------------------------------------------------------------------

    def next_frame(self) -> bytes | None:
        """The next 20 ms frame (320 bytes), or None when playback is over."""
        if self._ended:
            return None
        parts: list[bytes] = []
        need = FRAME_BYTES
        while need:
            buf = self._buffers[self._index]
            take = min(need, len(buf) - self._offset)
            parts.append(buf[self._offset : self._offset + take].tobytes())
            need -= take
            self._offset += take
            self._position += take // 2
            self._played += take // 2
            if self._offset == len(buf):
                self._offset = 0
                self._index += 1
                if self._index == len(self._buffers):
                    self._index = 0
                    if not self._loop:
                        self._ended = True
                        self._position = self._total_samples
                        break
                    self._position = 0
        if need:
            parts.append(_SILENT_FRAME[:need])
        return parts[0] if len(parts) == 1 else b"".join(parts)
