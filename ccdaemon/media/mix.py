"""Mixing of 20 ms PCM16 frames: the sum of the inputs, saturated to 16 bits.

Pure functions, no state and no clock. Frames are native-endian signed 16-bit linear PCM (what
``g711`` decodes to and ``Player`` produces); ``None`` is a frame of silence (a gap, a leg on hold).
The bridge mixes two or three parties per 20 ms tick per leg, so the sum runs in NumPy: 4-6 µs for a
2- or 3-way mix of 160 samples (timeit, busy 2-core machine), against about 105 µs for the same loop in
pure Python. A single frame is passed through without NumPy (about 1 µs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

from .player import FRAME_BYTES

__all__ = ["fit", "mix"]

_INT16_MIN: Final = np.int32(-32768)
_INT16_MAX: Final = np.int32(32767)


def fit(frame: bytes, frame_bytes: int = FRAME_BYTES) -> bytes:
    """``frame`` cut or padded with silence to exactly ``frame_bytes`` (an odd trailing byte is dropped)."""
    if len(frame) == frame_bytes:
        return frame
    return frame[: min(len(frame) & ~1, frame_bytes)].ljust(frame_bytes, b"\x00")


def mix(frames: Sequence[bytes | None], frame_bytes: int = FRAME_BYTES) -> bytes | None:
    """The saturated sum of ``frames``, each taken as exactly ``frame_bytes`` long.

    Returns None when there is no frame to mix (empty input or every input None): the RTP sender then
    sends nothing for the tick, as it does for a gap. A single frame is returned as it is (fitted).
    """
    if frame_bytes <= 0 or frame_bytes % 2:
        raise ValueError(f"frame_bytes must be a positive even number, got {frame_bytes}")
    present = [f for f in frames if f is not None]
    if not present:
        return None
    if len(present) == 1:
        return fit(present[0], frame_bytes)
    if len(present) == 2:
        # np.add straight into int32: no astype copy first (3.4 µs vs 6.3 µs for the bare kernel)
        total = np.add(
            np.frombuffer(fit(present[0], frame_bytes), np.int16),
            np.frombuffer(fit(present[1], frame_bytes), np.int16),
            dtype=np.int32,
        )
    else:
        stacked = np.frombuffer(b"".join(fit(f, frame_bytes) for f in present), np.int16)
        total = stacked.reshape(len(present), -1).sum(axis=0, dtype=np.int32)
    # minimum/maximum in place: np.clip costs about 2 µs more per call on frames this small
    np.minimum(total, _INT16_MAX, out=total)
    np.maximum(total, _INT16_MIN, out=total)
    return total.astype(np.int16).tobytes()
