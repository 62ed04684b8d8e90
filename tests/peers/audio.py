"""Test audio: write WAV files (tones, silence) and check what a peer recorded.

Pure Python (``wave`` + ``array``); no sox needed. 8 kHz mono 16-bit is what G.711 carries, so a
file in that format goes through baresip's ``aufile`` source without resampling.
"""

from __future__ import annotations

import array
import math
import sys
import wave
from collections.abc import Sequence
from pathlib import Path

RATE = 8000


def tone_samples(
    frequencies: Sequence[float], seconds: float, rate: int = RATE, amplitude: float = 0.3
) -> array.array[int]:
    """Sum of sines, ``amplitude`` of full scale shared between the frequencies."""
    count = round(seconds * rate)
    peak = 32767 * amplitude / max(1, len(frequencies))
    steps = [2 * math.pi * f / rate for f in frequencies]
    # one period table per frequency would be faster, but 120 s at 8 kHz (960k samples) takes < 1 s
    return array.array("h", (round(peak * sum(math.sin(s * i) for s in steps)) for i in range(count)))


def write_wav(path: Path, samples: array.array[int], rate: int = RATE) -> Path:
    data = samples
    if sys.byteorder != "little":
        data = array.array("h", samples)
        data.byteswap()
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(data.tobytes())
    return path


def write_tone(
    path: Path, frequency: float = 440.0, seconds: float = 120.0, rate: int = RATE, amplitude: float = 0.3
) -> Path:
    """A long steady tone. baresip hangs up when its ``aufile`` source ends, so make it long."""
    return write_wav(path, tone_samples([frequency], seconds, rate, amplitude), rate)


def write_silence(path: Path, seconds: float = 120.0, rate: int = RATE) -> Path:
    return write_wav(path, array.array("h", bytes(2 * round(seconds * rate))), rate)


def read_wav(path: Path) -> tuple[array.array[int], int]:
    """Samples of the first channel (16-bit PCM) and the sample rate."""
    with wave.open(str(path), "rb") as src:
        if src.getsampwidth() != 2:
            raise ValueError(f"{path}: only 16-bit PCM is supported, got {8 * src.getsampwidth()}-bit")
        channels, rate = src.getnchannels(), src.getframerate()
        raw = src.readframes(src.getnframes())
    samples = array.array("h")
    samples.frombytes(raw)
    if sys.byteorder != "little":
        samples.byteswap()
    return (samples[::channels] if channels > 1 else samples), rate


def goertzel_power(samples: Sequence[int], rate: int, frequency: float) -> float:
    """Normalised power of ``frequency`` in ``samples`` (Goertzel); about amplitude²/4 for a pure tone."""
    if not samples:
        return 0.0
    coeff = 2 * math.cos(2 * math.pi * frequency / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x / 32768 + coeff * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (len(samples) ** 2)


def rms(samples: Sequence[int]) -> float:
    """Root mean square, as a fraction of full scale."""
    if not samples:
        return 0.0
    return math.sqrt(sum(x * x for x in samples) / len(samples)) / 32768


def tone_present(path: Path, frequency: float, *, min_fraction: float = 0.5, window_s: float = 1.0) -> bool:
    """True when at least ``min_fraction`` of the energy in the loudest ``window_s`` window is ``frequency``.

    The window skips the first 0.5 s (call set-up silence). A pure tone of amplitude A has total power
    A²/2 and Goertzel power A²/4, so the ratio 2*goertzel/rms² is close to 1 for a clean tone.
    """
    samples, rate = read_wav(path)
    window = max(1, round(window_s * rate))
    start = min(len(samples), rate // 2)
    best = 0.0
    for offset in range(start, max(start + 1, len(samples) - window + 1), window):
        chunk = samples[offset : offset + window]
        energy = rms(chunk) ** 2
        if energy < 1e-6:
            continue
        best = max(best, 2 * goertzel_power(chunk, rate, frequency) / energy)
    return best >= min_fraction
