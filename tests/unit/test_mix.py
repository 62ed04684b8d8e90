"""mix: saturated sums of PCM16 frames, None as silence, frames fitted to 20 ms."""

from __future__ import annotations

import array

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccdaemon.media.mix import fit, mix
from ccdaemon.media.player import FRAME_BYTES, FRAME_SAMPLES


def pcm(values: list[int]) -> bytes:
    return array.array("h", values).tobytes()


def const(value: int, samples: int = FRAME_SAMPLES) -> bytes:
    return pcm([value] * samples)


def samples(frame: bytes | None) -> list[int]:
    assert frame is not None
    return list(array.array("h", frame))


def test_no_input_or_only_silence_is_nothing_to_send() -> None:
    assert mix([]) is None
    assert mix([None, None]) is None


def test_a_single_frame_comes_back_unchanged() -> None:
    frame = pcm(list(range(-80, 80)))
    assert mix([frame]) == frame
    assert mix([None, frame, None]) == frame


def test_sum_of_two_and_three() -> None:
    assert samples(mix([const(100), const(-30)])) == [70] * FRAME_SAMPLES
    assert samples(mix([const(1), const(10), const(100)])) == [111] * FRAME_SAMPLES
    assert samples(mix([const(1), None, const(100)])) == [101] * FRAME_SAMPLES


def test_sum_is_per_sample() -> None:
    a = pcm(list(range(FRAME_SAMPLES)))
    b = pcm([-2 * i for i in range(FRAME_SAMPLES)])
    assert samples(mix([a, b])) == [-i for i in range(FRAME_SAMPLES)]


def test_saturation_clips_instead_of_wrapping() -> None:
    assert samples(mix([const(30000), const(30000)])) == [32767] * FRAME_SAMPLES
    assert samples(mix([const(-30000), const(-30000), const(-30000)])) == [-32768] * FRAME_SAMPLES
    assert samples(mix([const(32767), const(32767), const(-32768)])) == [32766] * FRAME_SAMPLES


def test_short_frames_are_padded_and_long_ones_cut() -> None:
    short = pcm([5] * 10)
    long = pcm([7] * (FRAME_SAMPLES + 40))
    out = mix([short, long])
    assert out is not None and len(out) == FRAME_BYTES
    assert samples(out) == [12] * 10 + [7] * (FRAME_SAMPLES - 10)
    assert fit(short) == short + bytes(FRAME_BYTES - len(short))
    assert fit(long) == long[:FRAME_BYTES]
    assert fit(b"\x01\x02\x03") == b"\x01\x02" + bytes(FRAME_BYTES - 2)  # half a sample is not a sample


def test_other_frame_sizes() -> None:
    assert samples(mix([const(3, 240), const(4, 240)], frame_bytes=480)) == [7] * 240
    with pytest.raises(ValueError, match="even"):
        mix([const(1)], frame_bytes=321)


@given(
    st.lists(
        st.one_of(st.none(), st.lists(st.integers(-32768, 32767), min_size=0, max_size=200)),
        max_size=4,
    )
)
def test_matches_a_reference_sum(inputs: list[list[int] | None]) -> None:
    frames = [None if values is None else pcm(values) for values in inputs]
    out = mix(frames)
    present = [values for values in inputs if values is not None]
    if not present:
        assert out is None
        return
    padded = [(values + [0] * FRAME_SAMPLES)[:FRAME_SAMPLES] for values in present]
    assert samples(out) == [max(-32768, min(32767, sum(column))) for column in zip(*padded, strict=True)]
