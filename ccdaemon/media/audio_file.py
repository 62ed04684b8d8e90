"""Prompt loading: WAV files of any common format -> 8 kHz mono 16-bit linear PCM (native byte order).

Supported: integer PCM 8/16/24/32 bit (format 1), IEEE float 32/64 bit (format 3), A-law (6), µ-law (7) and
WAVE_FORMAT_EXTENSIBLE wrapping any of these; any channel count (downmixed by averaging); any sample rate.

The RIFF chunks are parsed here rather than with the stdlib ``wave`` module, which rejects float, extensible
and G.711 files. The parser tolerates what real prompt libraries contain: ``LIST``/``fact``/``bext`` chunks,
odd chunk sizes with or without the pad byte, a wrong RIFF size, and a data chunk that claims more bytes than
the file holds (a truncated recording keeps the whole frames that are present).

Conversion is pure Python and CPU-bound (about 1.5 s for 10 s of 48 kHz stereo audio): callers on the event
loop must run :func:`load_prompt` / :meth:`PromptCache.get` in a thread (``asyncio.to_thread``), never inline.
"""

from __future__ import annotations

import array
import math
import operator
import os
import struct
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from fractions import Fraction

from ccdaemon.media import g711

__all__ = [
    "OUTPUT_RATE",
    "AudioFileError",
    "PromptCache",
    "WavFormat",
    "decode_wav",
    "load_prompt",
    "parse_wav",
    "resample",
]

OUTPUT_RATE = 8000

_FMT_PCM = 0x0001
_FMT_FLOAT = 0x0003
_FMT_ALAW = 0x0006
_FMT_MULAW = 0x0007
_FMT_EXTENSIBLE = 0xFFFE
# KSDATAFORMAT_SUBTYPE_* GUIDs share this tail after the 2-byte (little-endian) format code.
_GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"

_MIN_RATE = 1000
_MAX_RATE = 768_000
_MAX_CHANNELS = 64

# Anti-aliasing filter: Kaiser-windowed sinc. Passband flat to 0.85 x Nyquist of the lower rate (3.4 kHz for
# 8 kHz output), >= 70 dB stopband from the Nyquist frequency itself so nothing above 4 kHz folds back.
_STOP_DB = 70.0
_PASS_EDGE = 0.85
# Rational ratios with many phases (e.g. 8000/44056) are quantised to this many filter phases: the timing
# error is <= 1/2048 input sample, about -70 dB for in-band tones, and the tap tables stay small.
_MAX_PHASES = 1024


class AudioFileError(ValueError):
    """A prompt file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class WavFormat:
    """The decoded ``fmt `` chunk (the extensible wrapper already resolved to its sub-format)."""

    format_code: int
    channels: int
    sample_rate: int
    bits: int  # container width per sample
    block_align: int


def _fail(name: str, problem: str) -> AudioFileError:
    return AudioFileError(f"{name}: {problem}")


def _parse_fmt(body: bytes, name: str) -> WavFormat:
    if len(body) < 16:
        raise _fail(name, f"truncated fmt chunk ({len(body)} bytes, need 16)")
    code, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", body)
    if code == _FMT_EXTENSIBLE:
        if len(body) < 40:
            raise _fail(name, f"truncated WAVE_FORMAT_EXTENSIBLE fmt chunk ({len(body)} bytes, need 40)")
        sub = body[24:40]
        if sub[2:] != _GUID_TAIL:
            raise _fail(name, f"unsupported WAVE_FORMAT_EXTENSIBLE sub-format {sub.hex()}")
        code = struct.unpack_from("<H", sub)[0]
        # wValidBitsPerSample (body[18:20]) may be < bits (e.g. 20 in 24): samples are left-justified, so
        # reading the full container is correct.
    if code not in (_FMT_PCM, _FMT_FLOAT, _FMT_ALAW, _FMT_MULAW):
        raise _fail(name, f"unsupported format code 0x{code:04x}")
    if not 1 <= channels <= _MAX_CHANNELS:
        raise _fail(name, f"bad channel count {channels}")
    if not _MIN_RATE <= rate <= _MAX_RATE:
        raise _fail(name, f"unsupported sample rate {rate} Hz")
    if block_align % channels:
        raise _fail(name, f"block align {block_align} does not fit {channels} channels")
    container = block_align // channels * 8
    # Some writers put a valid-bits value (e.g. 12 or 20) in wBitsPerSample; the container decides decoding.
    allowed = {_FMT_PCM: (8, 16, 24, 32), _FMT_FLOAT: (32, 64), _FMT_ALAW: (8,), _FMT_MULAW: (8,)}[code]
    if container not in allowed or not 0 < bits <= container:
        raise _fail(name, f"bad bits per sample {bits} (block align {block_align}) for format 0x{code:04x}")
    return WavFormat(code, channels, rate, container, block_align)


def parse_wav(data: bytes, name: str = "<bytes>") -> tuple[WavFormat, bytes]:
    """Split a RIFF/WAVE image into its format and the whole frames of its data chunk."""
    if len(data) < 12 or data[0:4] != b"RIFF" or data[8:12] != b"WAVE":
        if data[0:4] in (b"RF64", b"RIFX"):
            raise _fail(name, f"unsupported {data[0:4].decode()} container (only little-endian RIFF)")
        raise _fail(name, "not a RIFF/WAVE file")
    fmt: WavFormat | None = None
    payload: bytes | None = None
    pos = 12
    # The RIFF size field is ignored: it is often wrong in truncated or streamed files; the real length rules.
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        size = struct.unpack_from("<I", data, pos + 4)[0]
        body_start = pos + 8
        body = data[body_start : body_start + size]
        if chunk_id == b"fmt ":
            if fmt is not None:
                raise _fail(name, "more than one fmt chunk")
            fmt = _parse_fmt(body, name)
        elif chunk_id == b"data" and payload is None:
            payload = body  # may be shorter than ``size`` for a truncated file
        pos = body_start + size + (size & 1)  # RIFF pads odd chunks to an even size
        if payload is not None and fmt is not None:
            break
    if fmt is None:
        truncated = " (file truncated)" if pos != len(data) else ""
        raise _fail(name, f"no fmt chunk{truncated}")
    if payload is None:
        raise _fail(name, "no data chunk")
    whole = len(payload) - len(payload) % fmt.block_align
    if whole == 0:
        raise _fail(name, "empty (no audio frames in the data chunk)")
    return fmt, payload[:whole]


def _to_float(fmt: WavFormat, payload: bytes) -> list[float]:
    """Interleaved samples as floats in [-1, 1) (float formats may exceed it; clipped on output)."""
    big_endian = sys.byteorder == "big"
    samples: array.array[int] | array.array[float]
    if fmt.format_code in (_FMT_ALAW, _FMT_MULAW):
        pcm = (g711.alaw_decode if fmt.format_code == _FMT_ALAW else g711.ulaw_decode)(payload)
        samples = array.array("h", pcm)  # g711 already returns native order
        return [s * (1.0 / 32768.0) for s in samples]
    if fmt.format_code == _FMT_FLOAT:
        samples = array.array("f" if fmt.bits == 32 else "d", payload)
        if big_endian:
            samples.byteswap()
        return list(samples)
    if fmt.bits == 8:
        return [(b - 128) * (1.0 / 128.0) for b in payload]  # 8-bit WAV is unsigned, offset 128
    if fmt.bits == 16:
        samples = array.array("h", payload)
        scale = 1.0 / 32768.0
    else:
        if fmt.bits == 24:
            # Widen each 3-byte sample to 4 bytes (low byte zero) so array('i') reads it in one C pass.
            wide = bytearray(len(payload) // 3 * 4)
            wide[1::4] = payload[0::3]
            wide[2::4] = payload[1::3]
            wide[3::4] = payload[2::3]
            payload = bytes(wide)
        samples = array.array("i", payload)
        scale = 1.0 / 2147483648.0
    if big_endian:
        samples.byteswap()
    return [s * scale for s in samples]


def _downmix(interleaved: list[float], channels: int) -> list[float]:
    if channels == 1:
        return interleaved
    if channels == 2:
        return [(a + b) * 0.5 for a, b in zip(interleaved[0::2], interleaved[1::2], strict=True)]
    inv = 1.0 / channels
    return [
        sum(frame) * inv for frame in zip(*(interleaved[c::channels] for c in range(channels)), strict=True)
    ]


def _bessel_i0(x: float) -> float:
    # Power series of the modified Bessel function of order 0; converges fast for the betas used here.
    total = term = 1.0
    k = 1
    half_sq = (x * 0.5) ** 2
    while term > 1e-12 * total:
        term *= half_sq / (k * k)
        total += term
        k += 1
    return total


def resample(samples: list[float], rate_in: int, rate_out: int) -> list[float]:
    """Band-limited rational resampling with a Kaiser-windowed sinc evaluated per output phase.

    The low-pass cutoff follows the lower of the two rates, so downsampling removes everything above the
    output Nyquist before decimation (no aliasing) and upsampling removes the images.
    """
    if rate_in == rate_out or not samples:
        return list(samples)
    ratio = Fraction(rate_out, rate_in)
    up, down = ratio.numerator, ratio.denominator
    nyquist = min(rate_in, rate_out) / 2.0
    pass_edge = _PASS_EDGE * nyquist
    cutoff = (pass_edge + nyquist) / 2.0  # -6 dB point midway through the transition band
    transition = (nyquist - pass_edge) / rate_in  # cycles per input sample
    beta = 0.1102 * (_STOP_DB - 8.7)
    # Kaiser's length estimate; ``half`` taps either side of the output instant, in input samples.
    half = max(2, math.ceil((_STOP_DB - 7.95) / (14.36 * transition) / 2))
    width = 2 * half
    phases = min(up, _MAX_PHASES)
    fc = cutoff / rate_in
    i0_beta = _bessel_i0(beta)

    def taps_for(frac: float) -> list[float]:
        # Tap j multiplies input sample base - half + 1 + j; tau is its distance to the output instant.
        taps = []
        for j in range(width):
            tau = frac + half - 1 - j
            x = 2.0 * fc * tau
            sinc = 1.0 if x == 0.0 else math.sin(math.pi * x) / (math.pi * x)
            r = tau / half
            window = _bessel_i0(beta * math.sqrt(max(0.0, 1.0 - r * r))) / i0_beta
            taps.append(2.0 * fc * sinc * window)
        total = sum(taps)
        # Unity DC gain per phase, so a constant input does not pick up a ripple at the phase rate.
        return [t / total for t in taps]

    table: dict[int, list[float]] = {}
    padded = [0.0] * half + samples + [0.0] * half
    n_out = -(-len(samples) * up // down)
    out = [0.0] * n_out
    mul = operator.mul
    step = 2 * down * phases
    q2 = up  # 2 * n * down * phases + up, so q2 // (2 * up) rounds n * down * phases / up to nearest
    for n in range(n_out):
        q = q2 // (2 * up)
        q2 += step
        base, phase = divmod(q, phases)
        taps = table.get(phase)
        if taps is None:
            taps = table[phase] = taps_for(phase / phases)
        start = base + 1
        out[n] = sum(map(mul, taps, padded[start : start + width]))
    return out


def _to_pcm16(samples: list[float]) -> bytes:
    out = array.array("h", [max(-32768, min(32767, round(s * 32768.0))) for s in samples])
    return out.tobytes()


def decode_wav(data: bytes, name: str = "<bytes>") -> bytes:
    """A WAV image -> 8 kHz mono 16-bit PCM bytes in native order. Raises :class:`AudioFileError`."""
    fmt, payload = parse_wav(data, name)
    mono = _downmix(_to_float(fmt, payload), fmt.channels)
    return _to_pcm16(resample(mono, fmt.sample_rate, OUTPUT_RATE))


def load_prompt(path: str | os.PathLike[str]) -> bytes:
    """Read and convert one WAV file. CPU-bound: call it in a worker thread, not on the event loop.

    Raises :class:`AudioFileError` for an unusable file and ``OSError`` if it cannot be read.
    """
    with open(path, "rb") as f:
        data = f.read()
    return decode_wav(data, os.fspath(path))


class PromptCache:
    """Converted prompts keyed by (path, mtime, size), evicted least-recently-used beyond ``max_bytes``.

    Thread-safe so that several worker threads may call :meth:`get`. Two threads missing on the same file at
    once may both convert it (harmless, the last result wins): cheaper than holding the lock while converting.
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[int, int, bytes]] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.conversions = 0

    @property
    def total_bytes(self) -> int:
        return self._total

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, path: str | os.PathLike[str]) -> bytes:
        """The converted prompt; re-converted when the file's mtime or size changed. Call off the loop."""
        key = os.path.abspath(os.fspath(path))
        st = os.stat(key)
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[:2] == stamp:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry[2]
        pcm = load_prompt(key)
        with self._lock:
            self.conversions += 1
            old = self._entries.pop(key, None)
            if old is not None:
                self._total -= len(old[2])
            if len(pcm) <= self.max_bytes:
                self._entries[key] = (stamp[0], stamp[1], pcm)
                self._total += len(pcm)
                while self._total > self.max_bytes:
                    _, (_, _, evicted) = self._entries.popitem(last=False)
                    self._total -= len(evicted)
        return pcm

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._total = 0
