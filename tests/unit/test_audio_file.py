"""WAV prompt loading: every common format -> 8 kHz mono PCM16, anti-aliasing, malformed input, cache."""

from __future__ import annotations

import array
import contextlib
import itertools
import math
import os
import struct
import wave
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccdaemon.media import g711
from ccdaemon.media.audio_file import AudioFileError, PromptCache, decode_wav, load_prompt, resample

GUID_TAIL = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"


# --- WAV writers --------------------------------------------------------------------------------------


def chunk(cid: bytes, body: bytes, pad: bool = True) -> bytes:
    return cid + struct.pack("<I", len(body)) + body + (b"\x00" if pad and len(body) & 1 else b"")


def fmt_body(code: int, channels: int, rate: int, bits: int, extensible_sub: int | None = None) -> bytes:
    align = channels * bits // 8
    body = struct.pack("<HHIIHH", code, channels, rate, rate * align, align, bits)
    if extensible_sub is not None:
        body += struct.pack("<HHI", 22, bits, 3) + struct.pack("<H", extensible_sub) + GUID_TAIL
    return body


def riff(*chunks: bytes) -> bytes:
    body = b"WAVE" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def tone(freq: float, rate: int, seconds: float, amp: float = 0.5) -> list[float]:
    return [amp * math.sin(2 * math.pi * freq * i / rate) for i in range(round(rate * seconds))]


def interleave(left: list[float], right: list[float]) -> list[float]:
    return [v for pair in zip(left, right, strict=True) for v in pair]


def float32_wav(samples: list[float], rate: int, channels: int, extensible: bool = False) -> bytes:
    code = 0xFFFE if extensible else 3
    fmt = fmt_body(code, channels, rate, 32, 3 if extensible else None)
    return riff(chunk(b"fmt ", fmt), chunk(b"data", array.array("f", samples).tobytes()))


def pcm24_wav(samples: list[float], rate: int) -> bytes:
    data = b"".join(struct.pack("<i", round(s * 8388607))[:3] for s in samples)
    return riff(chunk(b"fmt ", fmt_body(1, 1, rate, 24)), chunk(b"data", data))


def pcm16(samples: list[float]) -> bytes:
    return array.array("h", [round(s * 32767) for s in samples]).tobytes()


def pcm(data: bytes) -> list[int]:
    return list(array.array("h", data))


# --- measurements -------------------------------------------------------------------------------------


def goertzel(x: list[int] | list[float], freq: float, rate: int = 8000) -> float:
    """Power of ``x`` at ``freq`` (normalised so a full-length sine of amplitude A gives about A^2/4)."""
    coeff = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for v in x:
        s1, s2 = v + coeff * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - coeff * s1 * s2) / (len(x) ** 2)


def rms(x: list[int] | list[float]) -> float:
    return math.sqrt(sum(v * v for v in x) / len(x))


def assert_tone(
    out: bytes, seconds: float, freq: float = 1000.0, amp: float = 0.5 * 32768, min_ratio: float = 1e4
) -> None:
    x = pcm(out)
    assert abs(len(x) - seconds * 8000) <= 1
    body = x[400:-400]  # skip filter edges
    at = goertzel(body, freq)
    for other in (freq - 200, freq + 200, 2 * freq, 3000.0):
        assert at > min_ratio * goertzel(body, other), other  # default: > 40 dB above neighbours
    assert rms(body) == pytest.approx(amp / math.sqrt(2), rel=0.03)
    crossings = sum(1 for a, b in itertools.pairwise(body) if a < 0 <= b)
    assert abs(crossings - freq * len(body) / 8000) <= 2


# --- formats ------------------------------------------------------------------------------------------


def test_float32_stereo_48k() -> None:
    t = tone(1000, 48000, 1.0)
    assert_tone(decode_wav(float32_wav(interleave(t, t), 48000, 2)), 1.0)


def test_float32_extensible_48k() -> None:
    t = tone(1000, 48000, 0.5)
    assert_tone(decode_wav(float32_wav(interleave(t, t), 48000, 2, extensible=True)), 0.5)


def test_float64_mono() -> None:
    data = riff(
        chunk(b"fmt ", fmt_body(3, 1, 16000, 64)),
        chunk(b"data", array.array("d", tone(1000, 16000, 0.5)).tobytes()),
    )
    assert_tone(decode_wav(data), 0.5)


def test_pcm24_44k1() -> None:
    assert_tone(decode_wav(pcm24_wav(tone(1000, 44100, 1.0), 44100)), 1.0)


def test_pcm16_16k_written_by_wave_module(tmp_path: Path) -> None:
    path = tmp_path / "p16.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm16(tone(1000, 16000, 0.75)))
    assert_tone(load_prompt(path), 0.75)


def test_pcm16_22k05_stereo() -> None:
    t = tone(1000, 22050, 0.5)
    data = riff(chunk(b"fmt ", fmt_body(1, 2, 22050, 16)), chunk(b"data", pcm16(interleave(t, t))))
    assert_tone(decode_wav(data), 0.5)


def test_pcm8_and_pcm32() -> None:
    t = tone(1000, 8000, 0.5)
    u8 = bytes(max(0, min(255, round(128 + s * 128))) for s in t)
    out8 = decode_wav(riff(chunk(b"fmt ", fmt_body(1, 1, 8000, 8)), chunk(b"data", u8)))
    assert_tone(out8, 0.5)
    i32 = array.array("i", [round(s * 2147483647) for s in t]).tobytes()
    out32 = decode_wav(riff(chunk(b"fmt ", fmt_body(1, 1, 8000, 32)), chunk(b"data", i32)))
    assert pcm(out32) == [round(s * 32768) for s in t]  # 8 kHz in: no resampling, exact


@pytest.mark.parametrize(
    ("code", "encode", "decode"),
    [(7, g711.ulaw_encode, g711.ulaw_decode), (6, g711.alaw_encode, g711.alaw_decode)],
)
def test_g711_8k(code: int, encode: Callable[[bytes], bytes], decode: Callable[[bytes], bytes]) -> None:
    codes = encode(pcm16(tone(1000, 8000, 1.0)))
    out = decode_wav(
        riff(
            chunk(b"fmt ", fmt_body(code, 1, 8000, 8)),
            chunk(b"fact", b"\x40\x1f\x00\x00"),
            chunk(b"data", codes),
        )
    )
    assert out == decode(codes)  # 8 kHz: bit-exact expansion
    # An 8-sample-period tone puts all G.711 quantisation error on its harmonics: about 34 dB below.
    assert_tone(out, 1.0, min_ratio=1e3)


def test_stereo_downmix_averages() -> None:
    t = tone(1000, 8000, 0.5)
    out = decode_wav(float32_wav(interleave(t, [0.0] * len(t)), 8000, 2))
    assert pcm(out) == [round(s * 0.5 * 32768) for s in array.array("f", t)]
    cancel = decode_wav(float32_wav(interleave(t, [-s for s in t]), 8000, 2))
    assert set(pcm(cancel)) == {0}


def test_downsampling_anti_aliasing_5k_at_48k() -> None:
    # Without a low-pass, 5 kHz at 48 kHz decimated to 8 kHz folds to 3 kHz at full level.
    out = pcm(decode_wav(float32_wav(tone(5000, 48000, 1.0), 48000, 1)))
    body = out[400:-400]
    ref = 0.5 * 32768
    attenuation_db = 20 * math.log10(ref / math.sqrt(2) / max(rms(body), 1e-9))
    folded_db = 10 * math.log10((ref**2 / 4) / max(goertzel(body, 3000), 1e-18))
    assert attenuation_db > 60, attenuation_db
    assert folded_db > 60, folded_db


def test_passband_kept_at_3k_and_stopband_near_nyquist() -> None:
    out = pcm(decode_wav(float32_wav(tone(3000, 44100, 0.5), 44100, 1)))
    assert rms(out[400:-400]) == pytest.approx(0.5 * 32768 / math.sqrt(2), rel=0.03)
    near = pcm(decode_wav(float32_wav(tone(4500, 44100, 0.5), 44100, 1)))  # would alias to 3.5 kHz
    assert 20 * math.log10(0.5 * 32768 / math.sqrt(2) / max(rms(near[400:-400]), 1e-9)) > 60


def test_upsampling_and_dc() -> None:
    assert len(resample([1.0] * 6000, 6000, 8000)) == 8000
    dc = resample([0.25] * 4410, 44100, 8000)
    assert all(abs(v - 0.25) < 1e-3 for v in dc[100:-100])


# --- robustness ---------------------------------------------------------------------------------------


def test_list_chunk_odd_sizes_and_wrong_riff_size() -> None:
    t = tone(1000, 8000, 0.5)
    data = riff(
        chunk(b"LIST", b"INFOISFT\x05\x00\x00\x00abcd\x00\x00"),
        chunk(b"junk", b"abc"),  # odd size, padded
        chunk(b"fmt ", fmt_body(1, 1, 8000, 16)),
        chunk(b"data", pcm16(t)),
    )
    broken_size = data[:4] + struct.pack("<I", 0xFFFFFFFF) + data[8:]
    assert pcm(decode_wav(broken_size)) == [round(s * 32767) for s in t]


def test_data_size_larger_than_file_keeps_whole_frames() -> None:
    payload = pcm16(tone(1000, 8000, 0.5))
    data = riff(
        chunk(b"fmt ", fmt_body(1, 2, 8000, 16)), b"data" + struct.pack("<I", 10**9) + payload + b"\x01"
    )
    out = decode_wav(data)
    assert len(out) == len(payload) // 2  # stereo -> mono, stray trailing byte dropped


def test_fmt_after_data() -> None:
    payload = pcm16(tone(1000, 8000, 0.1))
    assert decode_wav(riff(chunk(b"data", payload), chunk(b"fmt ", fmt_body(1, 1, 8000, 16)))) == payload


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not a RIFF/WAVE file"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "not a RIFF/WAVE file"),
        (b"ID3\x03" + bytes(100), "not a RIFF/WAVE file"),
        (b"RF64\xff\xff\xff\xffWAVE", "unsupported RF64 container"),
        (
            riff(chunk(b"fmt ", fmt_body(0x55, 1, 8000, 16)), chunk(b"data", b"\0\0")),
            "unsupported format code 0x0055",
        ),
        (
            riff(chunk(b"fmt ", fmt_body(0xFFFE, 1, 8000, 16, 0x55)), chunk(b"data", b"\0\0")),
            "unsupported format code 0x0055",
        ),
        (riff(chunk(b"fmt ", fmt_body(3, 1, 8000, 16)), chunk(b"data", b"\0\0")), "bad bits per sample 16"),
        (riff(chunk(b"fmt ", fmt_body(1, 1, 8000, 40)), chunk(b"data", b"\0" * 5)), "bad bits per sample 40"),
        (riff(chunk(b"fmt ", fmt_body(1, 0, 8000, 16)), chunk(b"data", b"\0\0")), "bad channel count 0"),
        (
            riff(chunk(b"fmt ", fmt_body(1, 1, 0, 16)), chunk(b"data", b"\0\0")),
            "unsupported sample rate 0 Hz",
        ),
        (riff(chunk(b"fmt ", fmt_body(1, 1, 8000, 16)), chunk(b"data", b"")), "empty"),
        (riff(chunk(b"fmt ", fmt_body(1, 2, 8000, 16)), chunk(b"data", b"\0\0")), "empty"),
        (riff(chunk(b"fmt ", fmt_body(1, 1, 8000, 16))), "no data chunk"),
        (riff(chunk(b"data", b"\0\0")), "no fmt chunk"),
        (riff(chunk(b"fmt ", fmt_body(1, 1, 8000, 16))[:20]), "truncated fmt chunk"),
        (riff(b"fm"), r"no fmt chunk \(file truncated\)"),
        (riff(chunk(b"fmt ", fmt_body(0xFFFE, 1, 8000, 16))), "truncated WAVE_FORMAT_EXTENSIBLE"),
    ],
)
def test_malformed_files_name_file_and_problem(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "bad prompt.wav"
    path.write_bytes(data)
    with pytest.raises(AudioFileError, match=message) as info:
        load_prompt(path)
    assert str(info.value).startswith(f"{path}: ")
    assert isinstance(info.value, ValueError)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_audio_file_error(data: bytes) -> None:
    with contextlib.suppress(AudioFileError):
        decode_wav(data)


@settings(max_examples=300, deadline=None)
@given(
    code=st.sampled_from([1, 3, 6, 7, 0xFFFE, 0x55]),
    channels=st.integers(0, 70),
    rate=st.sampled_from([0, 8000, 11025, 44100, 48000, 12345, 10**6]),
    align=st.integers(0, 20),
    bits=st.integers(0, 70),
    extra=st.binary(max_size=40),
    payload=st.binary(max_size=200),
)
def test_fuzzed_headers_only_raise_audio_file_error(
    code: int, channels: int, rate: int, align: int, bits: int, extra: bytes, payload: bytes
) -> None:
    fmt = struct.pack("<HHIIHH", code, channels, rate, 0, align, bits) + extra
    try:
        out = decode_wav(riff(chunk(b"fmt ", fmt), chunk(b"data", payload)))
    except AudioFileError:
        return
    assert len(out) % 2 == 0 and out


# --- cache --------------------------------------------------------------------------------------------


def write_tone(path: Path, seconds: float) -> None:
    path.write_bytes(
        riff(chunk(b"fmt ", fmt_body(1, 1, 8000, 16)), chunk(b"data", pcm16(tone(440, 8000, seconds))))
    )


def test_cache_converts_once_and_reconverts_on_change(tmp_path: Path) -> None:
    path = tmp_path / "hello.wav"
    write_tone(path, 0.5)
    cache = PromptCache()
    first = cache.get(path)
    assert cache.get(str(path)) is first
    assert (cache.conversions, cache.hits) == (1, 1)
    write_tone(path, 0.25)  # size changes
    assert len(cache.get(path)) == 4000
    assert cache.conversions == 2
    st_ = os.stat(path)
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + 1_000_000_000))  # same size, newer mtime
    cache.get(path)
    assert cache.conversions == 3
    assert len(cache) == 1 and cache.total_bytes == 4000


def test_cache_lru_bounded_by_bytes(tmp_path: Path) -> None:
    paths = []
    for name in "abc":
        paths.append(tmp_path / f"{name}.wav")
        write_tone(paths[-1], 0.5)  # 8000 bytes each once converted
    cache = PromptCache(max_bytes=16000)
    cache.get(paths[0])
    cache.get(paths[1])
    cache.get(paths[0])  # a is now most recent
    cache.get(paths[2])  # evicts b
    assert cache.total_bytes == 16000 and len(cache) == 2
    cache.get(paths[0])
    assert cache.conversions == 3
    cache.get(paths[1])
    assert cache.conversions == 4
    big = PromptCache(max_bytes=100)
    big.get(paths[0])  # larger than the cache: returned, not kept
    assert len(big) == 0 and big.total_bytes == 0


def test_cache_errors(tmp_path: Path) -> None:
    cache = PromptCache()
    with pytest.raises(FileNotFoundError):
        cache.get(tmp_path / "missing.wav")
    (tmp_path / "bad.wav").write_bytes(b"nope")
    with pytest.raises(AudioFileError, match="not a RIFF/WAVE"):
        cache.get(tmp_path / "bad.wav")
    with pytest.raises(ValueError):
        PromptCache(max_bytes=0)
