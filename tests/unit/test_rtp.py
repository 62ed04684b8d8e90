"""RTP packet codec, sender state and receiver statistics (RFC 3550 §5.1, A.1, A.3, A.8)."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccdaemon.media.rtp import (
    RtpError,
    RtpExtension,
    RtpPacket,
    RtpReceiverStats,
    RtpSender,
    parse,
    parse_fields,
)

u32 = st.integers(0, 2**32 - 1)
packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 65535),
    timestamp=u32,
    ssrc=u32,
    payload=st.binary(max_size=200),
    marker=st.booleans(),
    csrcs=st.lists(u32, max_size=15).map(tuple),
    extension=st.none()
    | st.builds(
        RtpExtension, st.integers(0, 0xFFFF), st.binary(max_size=64).map(lambda b: b[: len(b) // 4 * 4])
    ),
    padding=st.integers(0, 255),
)


@given(packets)
def test_round_trip(pkt: RtpPacket) -> None:
    data = pkt.to_bytes()
    assert parse(data, max_size=65535) == pkt
    assert RtpPacket.parse(data, max_size=65535).to_bytes() == data


@given(st.binary(max_size=1600))
def test_arbitrary_bytes_only_raise_rtp_error(data: bytes) -> None:
    try:
        pkt = parse(data)
    except RtpError:
        return
    assert pkt.to_bytes() == data


def _fields_or_error(fn: object, data: bytes, max_size: int) -> object:
    try:
        if fn is parse:
            p = parse(data, max_size=max_size)
            return (p.payload_type, p.marker, p.sequence, p.timestamp, p.ssrc, p.payload)
        return parse_fields(data, max_size=max_size)
    except RtpError:
        return RtpError


@given(st.one_of(st.binary(max_size=300), packets.map(RtpPacket.to_bytes)), st.integers(0, 400))
def test_fast_field_parse_agrees_with_the_full_parser(data: bytes, max_size: int) -> None:
    # The receive hot path must accept and refuse exactly what parse() does, with the same fields.
    assert _fields_or_error(parse_fields, data, max_size) == _fields_or_error(parse, data, max_size)


def test_sender_packets_parse_back() -> None:
    sender = RtpSender(ssrc=0xDEADBEEF, payload_type=0, initial_sequence=65535, initial_timestamp=2**32 - 80)
    first = parse(sender.next_packet(b"a" * 160, samples=160, marker=True))
    second = parse(sender.next_packet(b"\x01\x02", samples=160, payload_type=101, timestamp=5))
    assert (first.sequence, first.timestamp, first.marker, first.payload_type) == (65535, 2**32 - 80, True, 0)
    assert (second.sequence, second.timestamp, second.marker, second.payload_type) == (0, 5, False, 101)
    assert sender.timestamp == 240 and sender.packet_count == 2 and sender.octet_count == 162
    with pytest.raises(ValueError, match="payload type"):
        sender.next_packet(b"", samples=0, payload_type=128)


@given(packets, st.integers(0, 40))
def test_truncated_packets_only_raise_rtp_error(pkt: RtpPacket, cut: int) -> None:
    data = pkt.to_bytes()
    with contextlib.suppress(RtpError):
        parse(data[: max(0, len(data) - cut)], max_size=65535)


def test_rtp_error_is_value_error() -> None:
    assert issubclass(RtpError, ValueError)


def _hdr(first: int = 0x80, second: int = 0, seq: int = 1, ts: int = 2, ssrc: int = 3) -> bytes:
    return struct.pack("!BBHII", first, second, seq, ts, ssrc)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "short"),
        (b"\x80" * 11, "short"),
        (_hdr(first=0x40), "bad RTP version 1"),
        (_hdr(first=0x00), "bad RTP version 0"),
        (_hdr(first=0x83) + b"\x00" * 8, "CSRC count 3 beyond data"),
        (_hdr(first=0x90) + b"\x00\x01", "no room for the extension header"),
        (_hdr(first=0x90) + b"\x00\x01\x00\x02" + b"\x00" * 4, "header extension length 2 words beyond data"),
        (_hdr(first=0xA0), "no padding count octet"),
        (_hdr(first=0xA0) + b"\x01\x00", "zero padding count"),
        (_hdr(first=0xA0) + b"\x01\x03", "padding length 3 beyond payload"),
        (_hdr() + bytes(1489), "oversized RTP packet: 1501 bytes"),
    ],
)
def test_malformed(data: bytes, message: str) -> None:
    with pytest.raises(RtpError, match=message):
        parse(data)


def test_size_limit_configurable() -> None:
    data = _hdr() + bytes(100)
    assert parse(data).payload == bytes(100)
    with pytest.raises(RtpError, match="oversized"):
        parse(data, max_size=100)
    assert len(parse(_hdr() + bytes(1488)).payload) == 1488  # exactly 1500 is fine


def test_parse_fields() -> None:
    data = (
        _hdr(first=0xB2, second=0x80 | 8, seq=0xBEEF, ts=0xDEADBEEF, ssrc=0x01020304)
        + struct.pack("!II", 7, 8)
        + struct.pack("!HH", 0xBEDE, 1)
        + b"\x10\xaa\x00\x00"
        + b"audio"
        + b"\x00\x00\x03"
    )
    pkt = parse(data)
    assert (pkt.version, pkt.marker, pkt.payload_type) == (2, True, 8)
    assert (pkt.sequence, pkt.timestamp, pkt.ssrc) == (0xBEEF, 0xDEADBEEF, 0x01020304)
    assert pkt.csrcs == (7, 8)
    assert pkt.extension == RtpExtension(0xBEDE, b"\x10\xaa\x00\x00")
    assert (pkt.payload, pkt.padding) == (b"audio", 3)
    assert pkt.to_bytes() == data


def test_packet_field_validation() -> None:
    with pytest.raises(ValueError):
        RtpPacket(payload_type=128, sequence=0, timestamp=0, ssrc=0)
    with pytest.raises(ValueError):
        RtpPacket(payload_type=0, sequence=65536, timestamp=0, ssrc=0)
    with pytest.raises(ValueError):
        RtpPacket(payload_type=0, sequence=0, timestamp=2**32, ssrc=0)
    with pytest.raises(ValueError):
        RtpPacket(payload_type=0, sequence=0, timestamp=0, ssrc=0, csrcs=(0,) * 16)
    with pytest.raises(ValueError):
        RtpExtension(1, b"abc")


# --- sender ---------------------------------------------------------------------------------------------


def test_sender_wraps_sequence_and_timestamp() -> None:
    s = RtpSender(ssrc=0x1234, payload_type=0, initial_sequence=65534, initial_timestamp=2**32 - 160)
    got = [parse(s.next_packet(b"x" * 160, samples=160, marker=i == 0)) for i in range(4)]
    assert [p.sequence for p in got] == [65534, 65535, 0, 1]
    assert [p.timestamp for p in got] == [2**32 - 160, 0, 160, 320]
    assert [p.marker for p in got] == [True, False, False, False]
    assert {p.ssrc for p in got} == {0x1234}
    assert (s.packet_count, s.octet_count) == (4, 640)
    assert (s.sequence, s.timestamp) == (2, 480)


def test_sender_dtmf_shares_timestamp_base() -> None:
    s = RtpSender(ssrc=1, payload_type=8, initial_sequence=100, initial_timestamp=1000)
    audio = parse(s.next_packet(bytes(160), samples=160))
    start = s.timestamp
    events = [
        parse(
            s.next_packet(b"\x01\x0a\x00\xa0", samples=160, payload_type=101, timestamp=start, marker=i == 0)
        )
        for i in range(3)
    ]
    after = parse(s.next_packet(bytes(160), samples=160))
    assert audio.timestamp == 1000 and audio.payload_type == 8
    assert [(p.payload_type, p.timestamp, p.sequence) for p in events] == [
        (101, 1160, 101),
        (101, 1160, 102),
        (101, 1160, 103),
    ]
    assert events[0].marker and not events[1].marker
    assert (after.payload_type, after.timestamp, after.sequence) == (8, 1640, 104)
    s.payload_type = 0
    s.advance(320)
    last = parse(s.next_packet(b"", samples=160))
    assert (last.payload_type, last.timestamp, last.sequence) == (0, 2120, 105)
    with pytest.raises(ValueError):
        s.payload_type = 200


# --- receiver statistics --------------------------------------------------------------------------------


def feed(stats: RtpReceiverStats, seqs: list[int], ssrc: int = 5) -> list[bool]:
    return [
        stats.update(ssrc=ssrc, sequence=q, timestamp=160 * i, arrival=0.02 * i) for i, q in enumerate(seqs)
    ]


def test_probation_then_counting() -> None:
    r = RtpReceiverStats()
    assert feed(r, [10, 11, 12, 13]) == [False, True, True, True]
    assert (r.expected, r.received, r.lost) == (3, 3, 0)
    assert r.extended_highest_sequence == 13


def test_probation_restarts_on_gap() -> None:
    r = RtpReceiverStats()
    assert feed(r, [10, 20, 21, 22]) == [False, False, True, True]
    assert (r.base_seq, r.expected, r.lost) == (21, 2, 0)


def test_sequence_wrap_counts_cycles() -> None:
    r = RtpReceiverStats()
    feed(r, [65533, 65534, 65535, 0, 1])
    assert r.cycles == 65536
    assert r.extended_highest_sequence == 65536 + 1
    assert (r.expected, r.lost) == (4, 0)


def test_loss_reordering_and_duplicates() -> None:
    r = RtpReceiverStats()
    feed(r, [100, 101, 102, 104, 103, 107, 105])  # 103 late (reordered), 106 lost
    assert r.expected == 7  # 101..107
    assert r.received == 6
    assert r.lost == 1
    rep = r.report()
    assert rep.cumulative_lost == 1
    assert rep.fraction_lost == (1 << 8) // 7
    assert rep.extended_highest_sequence == 107
    # next interval: a duplicate of 107 and 108: RFC 3550 A.3 counts duplicates as received
    feed(r, [107, 108])
    assert (r.expected, r.received, r.lost) == (8, 8, 0)
    rep = r.report()
    assert rep.fraction_lost == 0 and rep.cumulative_lost == 0
    feed(r, [108, 108, 109])  # more duplicates than losses: negative cumulative loss, fraction clamped to 0
    rep = r.report()
    assert rep.cumulative_lost == -2 and rep.fraction_lost == 0


def test_large_jump_needs_confirmation() -> None:
    r = RtpReceiverStats()
    feed(r, [1, 2, 3])
    assert r.update(ssrc=5, sequence=30000, timestamp=0, arrival=1.0) is False  # bad_seq noted
    assert r.update(ssrc=5, sequence=30001, timestamp=160, arrival=1.02) is True  # confirmed: resync
    assert (r.base_seq, r.expected, r.received) == (30001, 1, 1)


def test_ssrc_change_resets() -> None:
    r = RtpReceiverStats()
    feed(r, [1, 2, 3, 5])
    assert r.lost == 1
    r.update(ssrc=5, sequence=6, timestamp=10_000, arrival=5.0)  # jitter grows
    assert r.jitter > 0
    assert feed(r, [500, 501, 502], ssrc=6) == [False, True, True]
    assert (r.ssrc, r.resets, r.lost, r.expected, r.base_seq) == (6, 1, 0, 2, 501)
    assert r.jitter == 0.0


def test_jitter_hand_computed() -> None:
    # clock 8000 Hz, 20 ms packets; transit S-R in timestamp units: 0, 0, 40, 0, 8  ->  |D| = 0, 40, 40, 8
    r = RtpReceiverStats(clock_rate=8000)
    arrivals = [10.000, 10.020, 10.045, 10.060, 10.081]
    for i, t in enumerate(arrivals):
        r.update(ssrc=9, sequence=i, timestamp=160 * i, arrival=t)
    # J = 0 -> 0 + (40 - 0)/16 = 2.5 -> 2.5 + (40 - 2.5)/16 = 4.84375 -> 4.84375 + (8 - 4.84375)/16
    assert r.jitter == pytest.approx(5.041015625, abs=1e-6)
    assert r.report().jitter == 5


def test_jitter_across_timestamp_wrap() -> None:
    r = RtpReceiverStats()
    base = 2**32 - 320
    for i in range(6):
        r.update(ssrc=1, sequence=i, timestamp=(base + 160 * i) % 2**32, arrival=0.02 * i)
    assert r.jitter == pytest.approx(0.0, abs=1e-6)
