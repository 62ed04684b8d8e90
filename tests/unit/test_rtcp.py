"""Minimal RTCP: SR, RR, SDES CNAME, BYE in compound packets (RFC 3550 §6)."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ccdaemon.media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpError,
    RtcpPacket,
    SdesChunk,
    SenderReport,
    SourceDescription,
    build_compound,
    ntp_from_unix,
    ntp_middle32,
    ntp_to_unix,
    parse_compound,
)

u32 = st.integers(0, 2**32 - 1)
blocks = st.builds(
    ReportBlock,
    ssrc=u32,
    fraction_lost=st.integers(0, 255),
    cumulative_lost=st.integers(-0x800000, 0x7FFFFF),
    highest_sequence=u32,
    jitter=u32,
    last_sr=u32,
    delay_since_last_sr=u32,
)
one_block = st.lists(blocks, max_size=1).map(tuple)
short_text = st.text(max_size=40)
rtcp_packets = st.one_of(
    st.builds(SenderReport, u32, st.integers(0, 2**64 - 1), u32, u32, u32, one_block),
    st.builds(ReceiverReport, u32, one_block),
    st.builds(SourceDescription, st.lists(st.builds(SdesChunk, u32, short_text), max_size=3).map(tuple)),
    st.builds(Bye, st.lists(u32, max_size=3).map(tuple), short_text),
)


@given(st.lists(rtcp_packets, min_size=1, max_size=4))
def test_compound_round_trip(packets: list[RtcpPacket]) -> None:
    data = build_compound(*packets)
    assert len(data) % 4 == 0
    assert parse_compound(data, max_size=65535) == packets


@given(st.binary(max_size=600))
def test_garbage_only_raises_rtcp_error(data: bytes) -> None:
    with contextlib.suppress(RtcpError):
        parse_compound(data)


@given(st.lists(rtcp_packets, min_size=1, max_size=3), st.integers(1, 60))
def test_truncated_only_raises_rtcp_error(packets: list[RtcpPacket], cut: int) -> None:
    data = build_compound(*packets)
    with contextlib.suppress(RtcpError):
        parse_compound(data[: max(0, len(data) - cut)])


def test_sr_sdes_compound_layout() -> None:
    ntp = ntp_from_unix(1_700_000_000.5)
    block = ReportBlock(
        ssrc=0xAABBCCDD, fraction_lost=25, cumulative_lost=-3, highest_sequence=70000, jitter=12, last_sr=1
    )
    sr = SenderReport(0x11223344, ntp, 160_000, 1000, 160_000, (block,))
    sdes = SourceDescription((SdesChunk(0x11223344, "cc@host"),))
    data = build_compound(sr, sdes)
    # SR: header (V=2, RC=1, PT=200, length 12 words -> 52 bytes) then SDES (len 4 words -> 20 bytes)
    assert data[:4] == bytes([0x81, 200, 0, 12])
    assert len(data) == 52 + 20
    assert data[52:56] == bytes([0x81, 202, 0, 4])
    assert data[60:62] == b"\x01\x07" and data[62:69] == b"cc@host" and data[69:72] == b"\x00" * 3
    assert data[32:36] == bytes([25, 0xFF, 0xFF, 0xFD])  # fraction + 24-bit two's complement loss
    assert parse_compound(data) == [sr, sdes]


def test_rr_layout() -> None:
    rr = ReceiverReport(7, (ReportBlock(ssrc=8, highest_sequence=5),))
    data = rr.to_bytes()
    assert data[:4] == bytes([0x81, 201, 0, 7]) and len(data) == 32
    assert parse_compound(data) == [rr]
    assert ReceiverReport(7).to_bytes() == bytes([0x80, 201, 0, 1]) + struct.pack("!I", 7)


def test_unknown_types_are_skipped() -> None:
    app = bytes([0x80, 204, 0, 2]) + b"\x00\x00\x00\x01" + b"name"  # APP
    xr = bytes([0x80, 207, 0, 1]) + b"\x00\x00\x00\x09"
    rr = ReceiverReport(1)
    assert parse_compound(rr.to_bytes() + app + xr + Bye((1,)).to_bytes()) == [rr, Bye((1,))]


def test_padding_and_other_sdes_items() -> None:
    # RR with 4 padding octets; SDES chunk with NAME then CNAME items
    rr = bytes([0xA0, 201, 0, 2]) + struct.pack("!I", 5) + b"\x00\x00\x00\x04"
    chunk = struct.pack("!I", 9) + b"\x02\x01N" + b"\x01\x02ab" + b"\x00"  # 12 bytes, aligned
    sdes = bytes([0x81, 202, 0, 3]) + chunk
    assert parse_compound(rr + sdes) == [ReceiverReport(5), SourceDescription((SdesChunk(9, "ab"),))]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\xc9\x00", "short"),
        (bytes([0x40, 201, 0, 1]) + bytes(4), "bad RTCP version 1"),
        (bytes([0x80, 201, 0, 5]) + bytes(4), "beyond data"),
        (ReceiverReport(1).to_bytes() + b"\x80\xc9", "truncated RTCP header"),
        (bytes([0x81, 201, 0, 1]) + bytes(4), "RR: 1 report blocks beyond"),
        (bytes([0x80, 200, 0, 1]) + bytes(4), "SR: shorter"),
        (bytes([0x80, 201, 0, 0]), "RR: missing SSRC"),
        (bytes([0xA0, 201, 0, 1]) + bytes(4), "bad RTCP padding count 0"),
        (bytes([0xA0, 201, 0, 1]) + b"\x00\x00\x00\x09", "bad RTCP padding count 9"),
        (bytes([0x81, 202, 0, 2]) + bytes(4) + b"\x01\x09ab", "SDES: item beyond"),
        (bytes([0x81, 202, 0, 2]) + bytes(4) + b"\x01\x02ab", "SDES: item list not terminated"),
        (bytes([0x82, 202, 0, 0]), "SDES: chunk beyond"),
        (bytes([0x82, 203, 0, 1]) + bytes(4), "BYE: SSRC count beyond"),
        (bytes([0x81, 203, 0, 2]) + bytes(4) + b"\x09abc", "BYE: reason beyond"),
        (bytes([0x80, 201, 0x01, 0x77]) + bytes(1500), "oversized"),
    ],
)
def test_malformed(data: bytes, message: str) -> None:
    with pytest.raises(RtcpError, match=message):
        parse_compound(data)


def test_ntp_conversion() -> None:
    assert ntp_from_unix(0.0) == 2_208_988_800 << 32
    ntp = ntp_from_unix(1_700_000_000.25)
    assert ntp >> 32 == 1_700_000_000 + 2_208_988_800
    assert ntp & 0xFFFFFFFF == 1 << 30
    assert ntp_to_unix(ntp) == 1_700_000_000.25
    assert ntp_middle32(ntp) == ((ntp >> 16) & 0xFFFFFFFF)
    assert ntp_middle32(0x1234_5678_9ABC_DEF0) == 0x5678_9ABC


def test_validation() -> None:
    with pytest.raises(ValueError):
        ReportBlock(ssrc=1, cumulative_lost=0x800000)
    with pytest.raises(ValueError):
        ReportBlock(ssrc=1, fraction_lost=256)
    with pytest.raises(ValueError):
        SdesChunk(1, "x" * 256)
    with pytest.raises(ValueError):
        SenderReport(1, 2**64, 0, 0, 0)
