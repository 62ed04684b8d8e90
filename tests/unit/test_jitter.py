"""Receive jitter buffer (ccdaemon.media.jitter)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccdaemon.media.jitter import Frame, JitterBuffer

TICK = 0.02


def push(jb: JitterBuffer, seq: int, *, ssrc: int = 1, ts: int | None = None, now: float = 0.0) -> bool:
    ts = (seq * 160) % 2**32 if ts is None else ts
    return jb.push(ssrc=ssrc, sequence=seq % 65536, timestamp=ts, payload=seq.to_bytes(4, "big"), now=now)


def seqs(frames: list[Frame | None]) -> list[int | None]:
    return [None if f is None else f.sequence for f in frames]


def drain(jb: JitterBuffer, n: int, now: float = 1.0) -> list[Frame | None]:
    return [jb.pop(now + i * TICK) for i in range(n)]


def test_in_order_after_target_delay() -> None:
    jb = JitterBuffer(target_delay_frames=3)
    out: list[Frame | None] = []
    for i in range(10):
        push(jb, i, now=i * TICK)
        out.append(jb.pop(i * TICK))
    assert seqs(out) == [None, None, 0, 1, 2, 3, 4, 5, 6, 7]
    assert jb.stats.played == 8 and jb.stats.lost == 0 and jb.stats.underruns == 0


def test_starts_after_target_delay_even_with_one_frame() -> None:
    jb = JitterBuffer(target_delay_frames=3)
    push(jb, 5, now=0.0)
    assert jb.pop(0.04) is None
    f = jb.pop(0.06)
    assert f is not None and f.sequence == 5


def test_reordering_within_window() -> None:
    jb = JitterBuffer()
    for s in (2, 0, 1, 4, 3, 6, 5):
        push(jb, s)
    assert seqs(drain(jb, 7)) == [0, 1, 2, 3, 4, 5, 6]


def test_duplicates_dropped() -> None:
    jb = JitterBuffer()
    for s in (0, 0, 1, 2, 1):
        push(jb, s)
    assert jb.stats.duplicates == 2
    assert seqs(drain(jb, 3)) == [0, 1, 2]
    assert not push(jb, 1)  # already played: a duplicate
    assert jb.stats.duplicates == 3


def test_late_packets_dropped_and_counted() -> None:
    jb = JitterBuffer()
    for s in (0, 1, 3, 4):
        push(jb, s)
    assert seqs(drain(jb, 3)) == [0, 1, None]  # 2 is lost: a gap
    assert not push(jb, 2)
    assert jb.stats.late == 1 and jb.stats.lost == 1
    assert seqs(drain(jb, 2)) == [3, 4]


def test_underrun_rebuffers_without_skipping() -> None:
    jb = JitterBuffer(target_delay_frames=2)
    for s in range(2):
        push(jb, s)
    assert seqs(drain(jb, 3)) == [0, 1, None]
    assert jb.stats.underruns == 1 and jb.stats.lost == 0
    # The source paused (silence suppression): its next packet continues the sequence and is not late.
    push(jb, 2, now=5.0)
    push(jb, 3, now=5.02)
    assert seqs([jb.pop(5.02), jb.pop(5.04)]) == [2, 3]
    assert jb.stats.late == 0


def test_sequence_wraparound() -> None:
    jb = JitterBuffer()
    order = [65533, 65535, 65534, 0, 2, 1, 3]
    for s in order:
        push(jb, s)
    assert seqs(drain(jb, 7)) == [65533, 65534, 65535, 0, 1, 2, 3]
    assert jb.stats.lost == 0 and jb.stats.late == 0


def test_ssrc_change_resets() -> None:
    jb = JitterBuffer()
    for s in range(5):
        push(jb, s)
    assert seqs(drain(jb, 2)) == [0, 1]
    for s in (40000, 40001, 40002):
        push(jb, s, ssrc=2, ts=123)
    assert len(jb) == 3 and jb.ssrc == 2
    assert jb.stats.resyncs == 1 and jb.stats.overflow_drops == 3
    assert seqs(drain(jb, 3)) == [40000, 40001, 40002]


def test_ssrc_change_with_timestamp_jump_bounded() -> None:
    # pyVoIP grew to GBs here: new SSRC, timestamp ~2**31 away. Nothing is allocated for the gap.
    jb = JitterBuffer()
    push(jb, 10, ts=0)
    push(jb, 11, ssrc=99, ts=2**31 + 5)
    push(jb, 12, ssrc=99, ts=2**31 + 165)
    assert len(jb) == 2
    assert seqs(drain(jb, 2)) == [11, 12]


def test_timestamp_jump_same_stream_keeps_playing() -> None:
    jb = JitterBuffer()
    push(jb, 0, ts=0)
    push(jb, 1, ts=160)
    push(jb, 2, ts=3_000_000_000)
    push(jb, 3, ts=3_000_000_160)
    assert jb.stats.resyncs == 1
    assert seqs(drain(jb, 4)) == [0, 1, 2, 3]


def test_sequence_jump_confirmed_resyncs() -> None:
    jb = JitterBuffer()
    for s in range(4):
        push(jb, s)
    assert not push(jb, 30000)  # a single far packet: maybe a stray
    assert len(jb) == 4
    assert push(jb, 30001)  # confirmed: a new sequence space (RFC 3550 §A.1)
    push(jb, 30002)
    assert jb.stats.resyncs == 1
    assert seqs(drain(jb, 2)) == [30001, 30002]


def test_stray_packet_ignored() -> None:
    jb = JitterBuffer()
    for s in range(3):
        push(jb, s)
    assert not push(jb, 20000)
    push(jb, 3)
    assert jb.stats.strays == 1 and jb.stats.resyncs == 0
    assert seqs(drain(jb, 4)) == [0, 1, 2, 3]


def test_burst_beyond_window_slides() -> None:
    jb = JitterBuffer(max_frames=10, target_delay_frames=2)
    for s in range(15):
        push(jb, s)
    assert len(jb) == 10
    assert jb.stats.overflow_drops == 5
    first = jb.pop(1.0)
    assert first is not None
    # Latency trim: after the burst, playout resumes near the target delay, not 10 frames behind.
    assert len(jb) <= jb.max_delay_frames


def test_loss_counted_as_gap() -> None:
    jb = JitterBuffer()
    for s in (0, 1, 2, 5, 6):
        push(jb, s)
    assert seqs(drain(jb, 7)) == [0, 1, 2, None, None, 5, 6]
    assert jb.stats.lost == 2


def test_malformed_fields() -> None:
    jb = JitterBuffer()
    assert not jb.push(ssrc=-1, sequence=0, timestamp=0, payload=b"", now=0.0)
    assert not jb.push(ssrc=1, sequence=65536, timestamp=0, payload=b"", now=0.0)
    assert not jb.push(ssrc=1, sequence=0, timestamp=2**32, payload=b"", now=0.0)
    assert jb.stats.malformed == 3 and len(jb) == 0


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        JitterBuffer(target_delay_frames=0)
    with pytest.raises(ValueError):
        JitterBuffer(target_delay_frames=10, max_frames=5)
    with pytest.raises(ValueError):
        JitterBuffer(clock_rate=0)


# --- properties -----------------------------------------------------------------------------------------

_op = st.one_of(
    st.tuples(
        st.just("push"),
        st.sampled_from([1, 1, 1, 2, 0xFFFFFFFF]),
        st.one_of(st.integers(0, 65535), st.sampled_from([0, 1, 2, 3, 32767, 32768, 65534, 65535])),
        st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([0, 160, 2**31, 2**32 - 1])),
    ),
    st.tuples(st.just("pop"), st.just(0), st.just(0), st.just(0)),
)


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(_op, max_size=300), max_frames=st.integers(3, 20))
def test_arbitrary_input_bounded_and_played_at_most_once(
    ops: list[tuple[str, int, int, int]], max_frames: int
) -> None:
    jb = JitterBuffer(max_frames=max_frames, target_delay_frames=3)
    played: set[bytes] = set()
    now = 0.0
    for i, (kind, ssrc, seq, ts) in enumerate(ops):
        now += 0.005
        if kind == "push":
            jb.push(ssrc=ssrc, sequence=seq, timestamp=ts, payload=i.to_bytes(4, "big"), now=now)
        else:
            f = jb.pop(now)
            if f is not None:
                assert f.payload not in played
                played.add(f.payload)
        assert len(jb) <= max_frames
    for _ in range(2 * max_frames + 5):
        now += TICK
        f = jb.pop(now)
        if f is not None:
            assert f.payload not in played
            played.add(f.payload)
    assert len(jb) == 0
    assert jb.stats.played == len(played)


@settings(max_examples=100, deadline=None)
@given(
    start_seq=st.integers(0, 65535),
    start_ts=st.integers(0, 2**32 - 1),
    n=st.integers(1, 200),
    target=st.integers(1, 6),
)
def test_in_order_no_loss_played_in_order(start_seq: int, start_ts: int, n: int, target: int) -> None:
    jb = JitterBuffer(target_delay_frames=target)
    out: list[int] = []
    for i in range(n + target):
        now = i * TICK
        if i < n:
            jb.push(
                ssrc=7,
                sequence=(start_seq + i) % 65536,
                timestamp=(start_ts + 160 * i) % 2**32,
                payload=i.to_bytes(4, "big"),
                now=now,
            )
        f = jb.pop(now)
        if i < target - 1:
            assert f is None  # the target delay
        elif f is not None:
            out.append(int.from_bytes(f.payload, "big"))
    assert out == list(range(n))
    assert jb.stats.lost == 0 and jb.stats.late == 0 and jb.stats.resyncs == 0
