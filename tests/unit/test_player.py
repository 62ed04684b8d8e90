"""Player: frame counts, padding, looping across the wrap, playlist order, barge-in."""

from __future__ import annotations

import array

import pytest

from ccdaemon.media.player import FRAME_BYTES, FRAME_SAMPLES, Player, silence


def ramp(start: int, count: int) -> bytes:
    """Distinct sample values so concatenation order and wrap points are visible in the output."""
    return array.array("h", range(start, start + count)).tobytes()


def drain(player: Player, limit: int = 10_000) -> list[bytes]:
    frames: list[bytes] = []
    for _ in range(limit):
        frame = player.next_frame()
        if frame is None:
            return frames
        frames.append(frame)
    raise AssertionError("player did not end")


def samples(data: bytes) -> list[int]:
    return list(array.array("h", data))


@pytest.mark.parametrize(
    ("length", "frames"),
    [(1, 1), (159, 1), (160, 1), (161, 2), (320, 2), (8000, 50), (8001, 51), (12345, 78)],
)
def test_frame_count_for_length(length: int, frames: int) -> None:
    out = drain(Player([ramp(0, length)]))
    assert len(out) == frames
    assert all(len(f) == FRAME_BYTES for f in out)


def test_last_partial_frame_padded_with_silence() -> None:
    out = drain(Player([ramp(1, 200)]))
    assert samples(out[0]) == list(range(1, 161))
    assert samples(out[1]) == list(range(161, 201)) + [0] * 120


def test_concatenation_order_across_items_and_frame_boundaries() -> None:
    # "your position is" + "3" + pause + "calls": lengths chosen so items start and end mid-frame.
    items = [ramp(1000, 250), ramp(2000, 7), silence(5), ramp(3000, 100)]
    out = b"".join(drain(Player(items)))
    expected = list(range(1000, 1250)) + list(range(2000, 2007)) + [0] * 40 + list(range(3000, 3100))
    assert samples(out)[: len(expected)] == expected
    assert len(out) == 3 * FRAME_BYTES  # 397 samples -> 3 frames, padded
    assert set(samples(out)[len(expected) :]) == {0}


def test_empty_items_skipped_and_empty_playlist_ends_at_once() -> None:
    assert samples(b"".join(drain(Player([b"", ramp(5, 160), b""])))) == list(range(5, 165))
    assert Player([]).next_frame() is None
    assert Player([b""], loop=True).next_frame() is None


def test_loop_wraps_seamlessly_across_boundary() -> None:
    player = Player([ramp(0, 100), ramp(100, 150)], loop=True)  # 250 samples, not a frame multiple
    got: list[int] = []
    for _ in range(20):
        frame = player.next_frame()
        assert frame is not None and len(frame) == FRAME_BYTES
        got.extend(samples(frame))
    assert got == [i % 250 for i in range(20 * FRAME_SAMPLES)]
    assert not player.finished
    assert player.remaining_ms is None
    assert player.position_ms == (20 * FRAME_SAMPLES % 250) * 1000 // 8000
    assert player.played_ms == 20 * 20


def test_loop_shorter_than_a_frame_wraps_several_times_per_frame() -> None:
    player = Player([ramp(0, 30)], loop=True)
    frame = player.next_frame()
    assert frame is not None
    assert samples(frame) == [i % 30 for i in range(FRAME_SAMPLES)]


def test_position_and_remaining() -> None:
    player = Player([silence(1000), silence(500)])
    assert (player.duration_ms, player.position_ms, player.remaining_ms) == (1500, 0, 1500)
    for _ in range(10):
        player.next_frame()
    assert (player.position_ms, player.remaining_ms) == (200, 1300)
    frames = drain(player)
    assert len(frames) == 65
    assert (player.position_ms, player.remaining_ms, player.finished) == (1500, 0, True)


def test_exact_multiple_ends_without_extra_frame() -> None:
    player = Player([silence(40)])
    assert player.next_frame() is not None
    assert not player.finished
    assert player.next_frame() is not None
    assert player.finished
    assert player.next_frame() is None


def test_barge_in_stops_interruptible_player() -> None:
    player = Player([silence(1000)], interruptible=True)
    player.next_frame()
    assert player.on_dtmf("5") is True
    assert player.interrupted and player.finished
    assert player.next_frame() is None
    assert player.remaining_ms == 0
    assert player.on_dtmf("5") is False  # nothing left to stop


def test_dtmf_ignored_when_not_interruptible() -> None:
    player = Player([silence(100)])
    assert player.on_dtmf("1") is False
    assert player.next_frame() is not None
    assert not player.interrupted


def test_barge_in_digit_filter() -> None:
    player = Player([silence(100)], loop=True, interruptible=True, barge_in_digits="#*")
    assert player.on_dtmf("1") is False
    assert player.next_frame() is not None
    assert player.on_dtmf("#") is True
    assert player.next_frame() is None


def test_dtmf_after_natural_end_reports_false() -> None:
    player = Player([silence(20)], interruptible=True)
    drain(player)
    assert player.on_dtmf("1") is False
    assert not player.interrupted


def test_interrupt_stops_music_on_hold() -> None:
    player = Player([silence(20)], loop=True)
    assert player.interrupt() is True
    assert player.next_frame() is None
    assert player.interrupt() is False


def test_invalid_input_rejected() -> None:
    with pytest.raises(ValueError, match="whole 16-bit samples"):
        Player([b"\x00\x00", b"\x00"])
    with pytest.raises(ValueError, match="not DTMF digits"):
        Player([], barge_in_digits="1x")
    with pytest.raises(ValueError):
        silence(-1)


def test_silence_helper() -> None:
    assert silence(0) == b""
    assert silence(20) == bytes(FRAME_BYTES)
    assert len(silence(125)) == 2000
