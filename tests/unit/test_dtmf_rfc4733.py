"""RFC 4733 telephone-event receive and send (ccdaemon.media.dtmf)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccdaemon.media.dtmf import (
    DtmfDigit,
    DtmfError,
    DtmfReceiver,
    DtmfSender,
    build_payload,
    digit_to_event,
    event_to_digit,
    parse_event,
)

Packet = tuple[int, int, int, bool, bytes, float]  # ssrc, sequence, timestamp, marker, payload, now


def stream(
    digits: str,
    *,
    ssrc: int = 0x1234,
    markers: bool = True,
    start_ts: int = 1000,
    start_seq: int = 100,
    start_time: float = 0.0,
    duration_ms: int = 100,
) -> list[Packet]:
    """Packets a sender emits for `digits`, one per 20 ms, with a 100 ms gap between digits."""
    sender = DtmfSender()
    out: list[Packet] = []
    ts, seq, now = start_ts, start_seq, start_time
    for d in digits:
        for marker, payload in sender.packets_for(d, duration_ms=duration_ms):
            out.append((ssrc, seq % 65536, ts % 2**32, marker and markers, payload, now))
            seq += 1
            now += 0.02
        ts += sender.duration_units(duration_ms) + 800
        now += 0.1
    return out


def feed(rx: DtmfReceiver, packets: list[Packet]) -> list[DtmfDigit]:
    got: list[DtmfDigit] = []
    for ssrc, seq, ts, marker, payload, now in packets:
        got += rx.receive(ssrc=ssrc, sequence=seq, timestamp=ts, marker=marker, payload=payload, now=now)
    return got


def digits_of(got: list[DtmfDigit]) -> str:
    return "".join(d.digit for d in got)


# --- payload format -------------------------------------------------------------------------------------


def test_payload_roundtrip_and_bits() -> None:
    p = build_payload(11, end=True, volume=10, duration=800)
    assert p == bytes([11, 0x80 | 10, 0x03, 0x20])
    assert parse_event(p) == (11, True, 10, 800)
    # R bit (§2.3.3) is ignored by the receiver.
    assert parse_event(bytes([5, 0x40 | 7, 0, 160])) == (5, False, 7, 160)


@pytest.mark.parametrize("bad", [b"", b"\x01\x02\x03", b"\x01" * 5, b"\x01" * 8])
def test_parse_event_rejects_bad_length(bad: bytes) -> None:
    with pytest.raises(DtmfError):
        parse_event(bad)


def test_digit_mapping() -> None:
    assert [digit_to_event(c) for c in "0123456789*#ABCD"] == list(range(16))
    assert digit_to_event("a") == 12
    assert event_to_digit(16) is None  # flash
    assert event_to_digit(11) == "#"
    for bad in ("", "E", "12", " "):
        with pytest.raises(DtmfError):
            digit_to_event(bad)


def test_sender_packets() -> None:
    pkts = DtmfSender().packets_for("5", duration_ms=160, volume=10, packet_ms=20)
    assert [m for m, _ in pkts] == [True] + [False] * 9  # marker on the first packet only (§2.5.1.1)
    parsed = [parse_event(p) for _, p in pkts]
    assert [d for _, _, _, d in parsed] == [160, 320, 480, 640, 800, 960, 1120, 1280, 1280, 1280]
    assert [e for _, e, _, _ in parsed] == [False] * 7 + [True] * 3  # 3 end packets (§2.5.1.4)
    assert {(ev, vol) for ev, _, vol, _ in parsed} == {(5, 10)}
    assert pkts[-1] == pkts[-2] == pkts[-3]


def test_sender_rejects_bad_arguments() -> None:
    s = DtmfSender()
    with pytest.raises(DtmfError):
        s.packets_for("X")
    with pytest.raises(DtmfError):
        s.packets_for("1", volume=64)
    with pytest.raises(DtmfError):
        s.packets_for("1", duration_ms=10, packet_ms=20)
    with pytest.raises(DtmfError):
        s.packets_for("1", duration_ms=9000)


def test_sender_single_packet_event() -> None:
    pkts = DtmfSender().packets_for("7", duration_ms=20)
    assert [m for m, _ in pkts] == [True, False, False]
    assert all(parse_event(p) == (7, True, 10, 160) for _, p in pkts)


# --- receiver -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pt", [96, 101])
@pytest.mark.parametrize("markers", [True, False])
def test_1123_hash(pt: int, markers: bool) -> None:
    rx = DtmfReceiver(payload_type=pt)
    got = feed(rx, stream("1123#", markers=markers))
    assert digits_of(got) == "1123#"
    assert all(d.duration_ms == 100 and d.volume == 10 and d.ssrc == 0x1234 for d in got)
    assert rx.stats.duplicates == 2 * 5  # the 2nd and 3rd end packet of each digit
    assert rx.get_timer() is None
    assert rx.handle_timer(100.0) == []


def test_started_at_is_first_packet_time() -> None:
    got = feed(DtmfReceiver(payload_type=101), stream("12", start_time=5.0))
    assert got[0].started_at == 5.0
    assert got[1].started_at == pytest.approx(5.0 + 7 * 0.02 + 0.1)


def test_lost_end_packets_timeout() -> None:
    rx = DtmfReceiver(payload_type=101, end_timeout=0.3)
    pkts = [p for p in stream("9") if not parse_event(p[4])[1]]  # drop all end packets
    assert feed(rx, pkts) == []
    last = pkts[-1][5]
    assert rx.get_timer() == pytest.approx(last + 0.3)
    assert rx.handle_timer(last + 0.1) == []
    got = rx.handle_timer(last + 0.3)
    assert digits_of(got) == "9"
    assert got[0].duration_ms == 80  # the last duration seen
    assert rx.stats.timeouts == 1
    assert rx.get_timer() is None
    assert rx.handle_timer(last + 10) == []
    # A late end packet after the timeout is not a second digit.
    end = next(p for p in stream("9") if parse_event(p[4])[1])
    assert feed(rx, [end]) == []


def test_lost_end_packets_new_event_reports_previous() -> None:
    pkts = [p for p in stream("11") if not (p[2] == 1000 and parse_event(p[4])[1])]
    rx = DtmfReceiver(payload_type=101)
    got = feed(rx, pkts)
    assert digits_of(got) == "11"
    assert rx.stats.timeouts == 0


def test_duplicated_and_reordered_packets() -> None:
    pkts = stream("1123#")
    messy: list[Packet] = []
    for i, p in enumerate(pkts):
        messy.append(p)
        if i % 3 == 0:
            messy.append(p)  # duplicate
    # swap neighbours inside events (reordering within the window)
    for i in range(1, len(messy) - 1, 4):
        messy[i], messy[i + 1] = messy[i + 1], messy[i]
    # a late copy of the first digit's end packet after the second digit started
    messy.insert(len(messy) // 2, pkts[9])
    assert digits_of(feed(DtmfReceiver(payload_type=96), messy)) == "1123#"


def test_only_end_packets_received() -> None:
    pkts = [p for p in stream("1123#") if parse_event(p[4])[1]]
    assert digits_of(feed(DtmfReceiver(payload_type=101), pkts)) == "1123#"


def test_ssrc_change_between_digits() -> None:
    # sipp's play_dtmf uses its own SSRC, different from the audio stream's and per burst.
    pkts = stream("11", ssrc=1) + stream("23", ssrc=2, start_time=2.0) + stream("#", ssrc=3, start_time=4.0)
    rx = DtmfReceiver(payload_type=96)
    got = feed(rx, pkts)
    assert digits_of(got) == "1123#"
    assert [d.ssrc for d in got] == [1, 1, 2, 2, 3]
    assert rx.stats.evicted_ssrcs == 1  # bounded: only two SSRCs kept


def test_ssrc_change_same_timestamps() -> None:
    # Two sources starting at the same RTP timestamp are different events.
    pkts = stream("1", ssrc=1) + stream("1", ssrc=2, start_time=1.0)
    assert digits_of(feed(DtmfReceiver(payload_type=101), pkts)) == "11"


def test_evicted_ssrc_with_pending_event_is_reported() -> None:
    a = [p for p in stream("4", ssrc=1) if not parse_event(p[4])[1]]
    got = feed(DtmfReceiver(payload_type=101), a + stream("5", ssrc=2) + stream("6", ssrc=3))
    assert digits_of(got) == "456"


def test_timestamp_wraparound() -> None:
    pkts = stream("1123#", start_ts=2**32 - 1500, start_seq=65530)
    assert digits_of(feed(DtmfReceiver(payload_type=101), pkts)) == "1123#"


def test_sender_restarting_timestamps_is_not_stale_forever() -> None:
    rx = DtmfReceiver(payload_type=101)
    got = feed(rx, stream("1", start_ts=500_000) + stream("2", start_ts=1000, start_time=5.0))
    assert digits_of(got) == "12"


def test_reused_timestamp_for_a_different_digit() -> None:
    got = feed(DtmfReceiver(payload_type=101), stream("1") + stream("2", start_time=1.0))
    assert digits_of(got) == "12"


def test_non_digit_events_ignored() -> None:
    rx = DtmfReceiver(payload_type=101)
    flash = build_payload(16, end=True, volume=10, duration=800)
    tone = build_payload(200, end=False, volume=10, duration=800)
    for i, p in enumerate((flash, tone)):
        assert rx.receive(ssrc=1, sequence=i, timestamp=100, marker=True, payload=p, now=0.0) == []
    assert rx.stats.ignored_events == 2
    assert digits_of(feed(rx, stream("3", ssrc=1))) == "3"


def test_packed_events() -> None:
    # §2.5.1.5: consecutive events in one payload, the second starting where the first ended.
    payload = build_payload(1, end=False, volume=10, duration=400) + build_payload(
        2, end=True, volume=10, duration=400
    )
    rx = DtmfReceiver(payload_type=101)
    got = rx.receive(ssrc=7, sequence=1, timestamp=0, marker=True, payload=payload, now=0.0)
    assert digits_of(got) == "12"
    assert rx.receive(ssrc=7, sequence=2, timestamp=0, marker=False, payload=payload, now=0.02) == []


@pytest.mark.parametrize(
    ("kwargs"),
    [
        {"payload": b""},
        {"payload": b"\x01\x8a\x00"},
        {"payload": b"\x01\x8a\x00\xa0\x00"},
        {"sequence": 70000},
        {"timestamp": -1},
        {"ssrc": 2**32},
    ],
)
def test_malformed_counted_and_dropped(kwargs: dict[str, object]) -> None:
    rx = DtmfReceiver(payload_type=101)
    args: dict[str, object] = {
        "ssrc": 1,
        "sequence": 1,
        "timestamp": 1,
        "marker": True,
        "payload": b"\x01\x8a\x00\xa0",
        "now": 0.0,
    }
    args.update(kwargs)
    assert rx.receive(**args) == []  # type: ignore[arg-type]
    assert rx.stats.malformed == 1


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        DtmfReceiver(payload_type=128)
    with pytest.raises(ValueError):
        DtmfReceiver(payload_type=101, clock_rate=0)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ssrc=st.integers(0, 2**32 - 1),
    seq=st.integers(0, 65535),
    ts=st.integers(0, 2**32 - 1),
    marker=st.booleans(),
    payload=st.binary(max_size=64),
    now=st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9),
)
def test_garbage_never_raises(ssrc: int, seq: int, ts: int, marker: bool, payload: bytes, now: float) -> None:
    rx = DtmfReceiver(payload_type=101)
    for i in range(3):
        got = rx.receive(ssrc=ssrc, sequence=seq, timestamp=ts, marker=marker, payload=payload, now=now + i)
        assert all(d.digit in "0123456789*#ABCD" for d in got)
    rx.handle_timer(now + 10)
    rx.get_timer()


@settings(max_examples=150, deadline=None)
@given(
    digits=st.text(alphabet="0123456789*#ABCD", min_size=1, max_size=12),
    duration_ms=st.sampled_from([40, 60, 100, 160, 250]),
    data=st.data(),
)
def test_round_trip_with_loss_and_duplication(digits: str, duration_ms: int, data: st.DataObject) -> None:
    """Sender → receiver: lose any non-final packets, duplicate some; every digit arrives exactly once."""
    pkts = stream(digits, duration_ms=duration_ms, markers=data.draw(st.booleans()))
    pt = data.draw(st.sampled_from([96, 101]))
    kept: list[Packet] = []
    for p in pkts:
        is_end = parse_event(p[4])[1]
        if not is_end and data.draw(st.booleans()):
            continue  # lost
        kept.append(p)
        if data.draw(st.integers(0, 4)) == 0:
            kept.append(p)  # duplicated
    # Also lose some end packets, but never all three of a digit (that is the timeout path, tested above).
    final: list[Packet] = []
    seen_end: set[int] = set()
    for p in kept:
        if parse_event(p[4])[1] and p[2] in seen_end and data.draw(st.booleans()):
            continue
        if parse_event(p[4])[1]:
            seen_end.add(p[2])
        final.append(p)
    rx = DtmfReceiver(payload_type=pt)
    got = feed(rx, final)
    assert digits_of(got) == digits
    assert all(d.duration_ms == duration_ms for d in got)
    assert rx.handle_timer(1e6) == []


@settings(max_examples=100, deadline=None)
@given(digits=st.text(alphabet="0123456789*#", min_size=1, max_size=8), data=st.data())
def test_round_trip_all_end_packets_lost_some_digits(digits: str, data: st.DataObject) -> None:
    pkts = stream(digits)
    drop_end = {i for i in range(len(digits)) if data.draw(st.booleans())}
    starts = sorted({p[2] for p in pkts})
    final = [p for p in pkts if not (parse_event(p[4])[1] and starts.index(p[2]) in drop_end)]
    rx = DtmfReceiver(payload_type=101)
    got = feed(rx, final) + rx.handle_timer(1e6)
    assert digits_of(got) == digits
