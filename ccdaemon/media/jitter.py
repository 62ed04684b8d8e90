"""Receive jitter buffer for fixed-size audio frames (20 ms G.711), pulled once per playout tick.

Pure code: no I/O, no clock reads; time is an argument (seconds). Frames are ordered by RTP sequence number
(RFC 3550 §5.1), extended past the 16-bit wrap-around. Memory is bounded by construction: buffered frames
always lie in a window of `max_frames` consecutive sequence numbers starting at the next frame to play, and
anything far outside it is either a stray packet (dropped) or, once confirmed by a following packet, a new
stream (resync, as the probation of RFC 3550 §A.1) — nothing is ever allocated for a gap.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["Frame", "JitterBuffer", "JitterStats"]

_SEQ_MOD = 1 << 16
_SEQ_HALF = 1 << 15
_TS_MOD = 1 << 32
_TS_HALF = 1 << 31


@dataclass(frozen=True, slots=True)
class Frame:
    """One received frame, as it was pushed."""

    ssrc: int
    sequence: int
    timestamp: int
    payload: bytes


@dataclass(slots=True)
class JitterStats:
    received: int = 0  # every push, valid or not
    played: int = 0  # frames returned by pop
    lost: int = 0  # playout slots with no frame (gap returned as None) or skipped sequence numbers
    late: int = 0  # arrived after their playout slot
    duplicates: int = 0
    resyncs: int = 0  # SSRC changes, confirmed sequence jumps, RTP timestamp jumps
    overflow_drops: int = 0  # buffered frames dropped unplayed (window slide, latency trim, resync flush)
    strays: int = 0  # single packets far outside the window, not confirmed by the next one
    underruns: int = 0  # buffer ran dry while playing: re-buffer to the target delay
    malformed: int = 0  # out-of-range header fields


def _seq_delta(seq: int, ref: int) -> int:
    """Signed distance from 16-bit `ref` to 16-bit `seq` (RFC 3550 §A.1 style, handles wrap-around)."""
    return (seq - ref + _SEQ_HALF) % _SEQ_MOD - _SEQ_HALF


def _ts_delta(ts: int, ref: int) -> int:
    return (ts - ref + _TS_HALF) % _TS_MOD - _TS_HALF


class JitterBuffer:
    """Reorders frames, drops duplicates and late frames, reports gaps, resyncs on stream changes.

    `pop(now)` is called once per frame period and returns the next frame, or None when the caller must fill
    the slot (silence or concealment). Playout starts once `target_delay_frames` frames are buffered, or one
    target delay after the first frame arrived, and starts again that way after an underrun.
    """

    def __init__(
        self,
        *,
        clock_rate: int = 8000,
        frame_samples: int = 160,
        target_delay_frames: int = 3,
        max_frames: int = 50,
        max_delay_frames: int | None = None,
    ) -> None:
        if clock_rate <= 0 or frame_samples <= 0:
            raise ValueError("clock rate and frame size must be positive")
        if target_delay_frames < 1 or max_frames < target_delay_frames:
            raise ValueError("need 1 <= target_delay_frames <= max_frames")
        if max_delay_frames is None:
            max_delay_frames = min(max_frames, 2 * target_delay_frames + 4)
        if not target_delay_frames <= max_delay_frames <= max_frames:
            raise ValueError("need target_delay_frames <= max_delay_frames <= max_frames")
        self.clock_rate = clock_rate
        self.frame_samples = frame_samples
        self.target_delay_frames = target_delay_frames
        self.max_frames = max_frames
        self.max_delay_frames = max_delay_frames
        self.frame_seconds = frame_samples / clock_rate
        self.stats = JitterStats()
        self._ssrc: int | None = None
        self._reset()

    def _reset(self) -> None:
        # Extended sequence numbers (plain ints) of buffered frames; all in [_next, _next + max_frames).
        self._frames: dict[int, Frame] = {}
        self._next = 0  # extended sequence number of the next frame to play
        self._highest = 0  # highest extended sequence number accepted
        self._highest_ts = 0
        self._started = False  # something was played since the last reset (earlier frames are then late)
        self._playing = False  # False while (re-)buffering up to the target delay
        self._buffering_since: float | None = None
        self._pending: tuple[int, int] | None = None  # (sequence, ssrc) of a possible jump, RFC 3550 §A.1
        self._played: deque[int] = deque(maxlen=self.max_frames)  # recent played ext. seqs (duplicates)

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def ssrc(self) -> int | None:
        return self._ssrc

    def push(self, *, ssrc: int, sequence: int, timestamp: int, payload: bytes, now: float) -> bool:
        """Offer one received frame; True if it was buffered."""
        st = self.stats
        st.received += 1
        if not (0 <= ssrc < _TS_MOD and 0 <= sequence < _SEQ_MOD and 0 <= timestamp < _TS_MOD):
            st.malformed += 1
            return False
        frame = Frame(ssrc=ssrc, sequence=sequence, timestamp=timestamp, payload=payload)
        if ssrc != self._ssrc:
            # A new stream (RFC 3550 §8.2: SSRC change): drop the old one and start over.
            if self._ssrc is not None:
                st.resyncs += 1
                st.overflow_drops += len(self._frames)
            self._ssrc = ssrc
            self._start_stream(frame, now)
            return True
        ext = self._highest + _seq_delta(sequence, self._highest % _SEQ_MOD)
        ahead = ext - self._next
        if ahead >= 2 * self.max_frames or ahead < -self.max_frames:
            return self._out_of_window(frame, now)
        if self._pending is not None:
            st.strays += 1  # the earlier far-away packet was not followed up: it was a stray
            self._pending = None
        if ahead < 0:
            if not self._started and ext + self.max_frames > self._highest:
                self._next = ext  # reordered before playout started: play it first
            else:
                if ext in self._played:
                    st.duplicates += 1
                else:
                    st.late += 1
                return False
        if ext in self._frames:
            st.duplicates += 1
            return False
        if ext >= self._next + self.max_frames:
            self._slide_to(ext - self.max_frames + 1)  # keep the window: the oldest frames give way
        if ext > self._highest:
            expected_ts = (self._highest_ts + (ext - self._highest) * self.frame_samples) % _TS_MOD
            if abs(_ts_delta(timestamp, expected_ts)) > self.max_frames * self.frame_samples:
                # RTP timestamp jump with continuous sequence numbers (silence suppression, a restarted
                # source): playout follows sequence numbers, so only the reference moves.
                st.resyncs += 1
            self._highest = ext
            self._highest_ts = timestamp
        self._frames[ext] = frame
        if self._buffering_since is None and not self._playing:
            self._buffering_since = now
        return True

    def pop(self, now: float) -> Frame | None:
        """The frame for this playout tick, or None for a gap (loss, buffering, underrun)."""
        st = self.stats
        if not self._playing:
            if not self._frames or not self._ready(now):
                return None
            first = min(self._frames)
            if self._started and first > self._next:
                st.lost += first - self._next  # sequence numbers skipped while re-buffering
            self._next = first
            self._playing = True
            self._started = True
            self._buffering_since = None
        elif not self._frames:
            # Underrun: the next frame is late or the source paused; do not advance, re-buffer instead.
            st.underruns += 1
            self._playing = False
            return None
        if len(self._frames) > self.max_delay_frames:
            # Latency trim after a burst: skip the oldest frames down to the target delay.
            self._slide_to(max(self._frames) - self.target_delay_frames + 1)
        frame = self._frames.pop(self._next, None)
        if frame is None:
            st.lost += 1
        else:
            st.played += 1
            self._played.append(self._next)
        self._next += 1
        return frame

    def _ready(self, now: float) -> bool:
        if len(self._frames) >= self.target_delay_frames:
            return True
        since = self._buffering_since
        # Small epsilon so float tick arithmetic (n * 0.02) does not delay playout by a whole tick.
        return since is not None and now - since >= self.target_delay_frames * self.frame_seconds - 1e-6

    def _start_stream(self, frame: Frame, now: float) -> None:
        self._reset()
        self._next = self._highest = frame.sequence
        self._highest_ts = frame.timestamp
        self._frames[frame.sequence] = frame
        self._buffering_since = now

    def _out_of_window(self, frame: Frame, now: float) -> bool:
        """A sequence jump: resync only if the next packet continues it (RFC 3550 §A.1), else a stray."""
        pending = self._pending
        if pending is not None and pending == ((frame.sequence - 1) % _SEQ_MOD, frame.ssrc):
            self.stats.resyncs += 1
            self.stats.overflow_drops += len(self._frames)
            self._start_stream(frame, now)
            return True
        if pending is not None:
            self.stats.strays += 1
        self._pending = (frame.sequence, frame.ssrc)
        return False

    def _slide_to(self, new_next: int) -> None:
        """Advance the next-to-play position, dropping buffered frames before it and counting missing ones."""
        if new_next <= self._next:
            return
        for ext in range(self._next, new_next):
            if self._frames.pop(ext, None) is not None:
                self.stats.overflow_drops += 1
            elif self._started:
                self.stats.lost += 1
        self._next = new_next
