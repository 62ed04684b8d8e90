"""G.711 bit-exactness against an independent textbook reference (G.711 tables 1a/2a, G.191 conventions)."""

from __future__ import annotations

import array
import bisect
import warnings
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccdaemon.media import g711

ALL_SAMPLES = list(range(-32768, 32768))
ALL_PCM = array.array("h", ALL_SAMPLES).tobytes()
ALL_CODES = bytes(range(256))

# --- reference, written from the standard's segment / quantisation-interval definition -----------------
# µ-law (G.711 table 2a, 14-bit magnitude scale): segment e has step 2^(e+1); interval (e, m) starts at the
# decision value ((16 + m) << (e + 1)) - 33 and decodes to ((2m + 33) << e) - 33. Magnitudes above the last
# decision value are clipped to the top interval. Code = (sign | e << 4 | m) with all 8 bits inverted,
# sign bit set (before inversion) for negative values.
# A-law (G.711 table 1a, 13-bit magnitude scale): segment 0 and 1 have step 2, segment e >= 1 step 2^e;
# interval (0, m) starts at 2m and decodes to 2m + 1, (e, m) starts at (16 + m) << e and decodes to its
# middle; code = (sign | e << 4 | m) XOR 0x55 with sign bit set for positive values.
# 16-bit -> 14/13-bit: drop the low bits; negatives use one's complement (ITU-T G.191 g711.c).

ULAW_LOWER = [max(0, ((16 + m) << (e + 1)) - 33) for e in range(8) for m in range(16)]
ALAW_LOWER = [2 * m if e == 0 else (16 + m) << e for e in range(8) for m in range(16)]


def ref_ulaw_encode(x: int) -> int:
    mag = (x if x >= 0 else -x - 1) >> 2
    k = bisect.bisect_right(ULAW_LOWER, mag) - 1
    sign = 0 if x >= 0 else 0x80
    return (sign | k) ^ 0xFF


def ref_ulaw_decode(code: int) -> int:
    c = code ^ 0xFF
    e, m = (c >> 4) & 7, c & 15
    value = 4 * (((2 * m + 33) << e) - 33)
    return -value if c & 0x80 else value


def ref_alaw_encode(x: int) -> int:
    mag = (x if x >= 0 else -x - 1) >> 3
    k = bisect.bisect_right(ALAW_LOWER, mag) - 1
    sign = 0x80 if x >= 0 else 0
    return (sign | k) ^ 0x55


def ref_alaw_decode(code: int) -> int:
    c = code ^ 0x55
    e, m = (c >> 4) & 7, c & 15
    if e == 0:
        mid = 2 * m + 1
    else:
        lo, hi = (16 + m) << e, (17 + m) << e
        mid = (lo + hi) // 2
    value = 8 * mid
    return value if c & 0x80 else -value


def pcm(samples: list[int]) -> bytes:
    return array.array("h", samples).tobytes()


def samples_of(data: bytes) -> list[int]:
    return array.array("h", data).tolist()


# --- exhaustive comparisons -----------------------------------------------------------------------------


def test_ulaw_decode_all_codes() -> None:
    assert samples_of(g711.ulaw_decode(ALL_CODES)) == [ref_ulaw_decode(c) for c in range(256)]


def test_alaw_decode_all_codes() -> None:
    assert samples_of(g711.alaw_decode(ALL_CODES)) == [ref_alaw_decode(c) for c in range(256)]


def test_ulaw_encode_all_samples() -> None:
    assert list(g711.ulaw_encode(ALL_PCM)) == [ref_ulaw_encode(x) for x in ALL_SAMPLES]


def test_alaw_encode_all_samples() -> None:
    assert list(g711.alaw_encode(ALL_PCM)) == [ref_alaw_encode(x) for x in ALL_SAMPLES]


def test_known_values() -> None:
    # The classic pitfalls: µ-law zero is 0xFF, max 32124 and clip at 32635; A-law zero is 0xD5 (0x55
    # even-bit inversion), sign bit set = positive (aiortp sent A-law sign-inverted), max 32256.
    assert g711.ulaw_encode(pcm([0, -1, 32767, -32768, 32635, 32636])) == bytes(
        [0xFF, 0x7F, 0x80, 0x00, 0x80, 0x80]
    )
    assert samples_of(g711.ulaw_decode(bytes([0xFF, 0x7F, 0x80, 0x00]))) == [0, 0, 32124, -32124]
    assert g711.alaw_encode(pcm([0, -1, 32767, -32768])) == bytes([0xD5, 0x55, 0xAA, 0x2A])
    assert samples_of(g711.alaw_decode(bytes([0xD5, 0x55, 0xAA, 0x2A]))) == [8, -8, 32256, -32256]
    assert samples_of(g711.alaw_decode(g711.alaw_encode(pcm([1000, -1000])))) == [1008, -1008]


def test_empty_and_odd_length() -> None:
    assert g711.ulaw_encode(b"") == b"" and g711.alaw_decode(b"") == b""
    with pytest.raises(ValueError):
        g711.ulaw_encode(b"\x00\x01\x02")
    with pytest.raises(ValueError):
        g711.alaw_encode(b"\x00")


# --- comparison with audioop (Python <= 3.12) ----------------------------------------------------------


def _audioop() -> ModuleType | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import audioop  # noqa: PLC0415

            return audioop
        except ImportError:
            return None


AUDIOOP = _audioop()
needs_audioop = pytest.mark.skipif(AUDIOOP is None, reason="audioop not available (Python >= 3.13)")


@needs_audioop
def test_decoders_match_audioop() -> None:
    assert AUDIOOP is not None
    assert g711.ulaw_decode(ALL_CODES) == AUDIOOP.ulaw2lin(ALL_CODES, 2)
    assert g711.alaw_decode(ALL_CODES) == AUDIOOP.alaw2lin(ALL_CODES, 2)


@needs_audioop
def test_alaw_encoder_matches_audioop() -> None:
    assert AUDIOOP is not None
    assert g711.alaw_encode(ALL_PCM) == AUDIOOP.lin2alaw(ALL_PCM, 2)


@needs_audioop
def test_ulaw_encoder_vs_audioop() -> None:
    # audioop negates (-x) where G.191 takes the one's complement (~x): identical for x >= 0, and for
    # x <= -5 ours(x) == audioop(x + 4); x in -4..-1 is "negative zero" (0x7F) here.
    assert AUDIOOP is not None
    ours = g711.ulaw_encode(ALL_PCM)
    theirs = AUDIOOP.lin2ulaw(ALL_PCM, 2)
    assert ours[32768:] == theirs[32768:]
    assert ours[: 32768 - 4] == theirs[4:32768]
    assert ours[32768 - 4 : 32768] == b"\x7f" * 4


# --- properties -----------------------------------------------------------------------------------------


def _ulaw_step(y: int) -> int:
    return 8 << ((abs(y) + 132).bit_length() - 8)


def _alaw_step(y: int) -> int:
    return 16 << max(0, abs(y).bit_length() - 9)


@given(st.lists(st.integers(-32768, 32767), max_size=200))
def test_ulaw_round_trip_within_step(xs: list[int]) -> None:
    ys = samples_of(g711.ulaw_decode(g711.ulaw_encode(pcm(xs))))
    for x, y in zip(xs, ys, strict=True):
        assert abs(x - y) <= _ulaw_step(y), (x, y)


@given(st.lists(st.integers(-32768, 32767), max_size=200))
def test_alaw_round_trip_within_step(xs: list[int]) -> None:
    ys = samples_of(g711.alaw_decode(g711.alaw_encode(pcm(xs))))
    for x, y in zip(xs, ys, strict=True):
        assert abs(x - y) <= _alaw_step(y), (x, y)


def test_decode_encode_is_identity_on_codes() -> None:
    # Every decoded value re-encodes to its own code, except negative zero (µ-law 0x7F decodes to 0 -> 0xFF).
    u = bytearray(g711.ulaw_encode(g711.ulaw_decode(ALL_CODES)))
    assert u[0x7F] == 0xFF
    u[0x7F] = 0x7F
    assert bytes(u) == ALL_CODES
    assert g711.alaw_encode(g711.alaw_decode(ALL_CODES)) == ALL_CODES


def test_codec_lookup() -> None:
    assert g711.codec_by_name("pcmu") is g711.PCMU
    assert g711.codec_by_name("PCMA/8000") is g711.PCMA
    assert g711.codec_by_payload_type(0) is g711.PCMU
    assert g711.codec_by_payload_type(8) is g711.PCMA
    assert g711.PCMU.clock_rate == 8000
    assert g711.PCMU.decode(g711.PCMU.silence(160)) == bytes(320)
    assert g711.PCMA.silence(2) == b"\xd5\xd5"
    with pytest.raises(KeyError):
        g711.codec_by_name("G729")
    with pytest.raises(KeyError):
        g711.codec_by_payload_type(18)
