"""RtcpSession (ccdaemon.media.rtcp_session) on loopback with a fake RTP source: reports out, reports in,
latching, guards, BYE. Short intervals (``min_interval``) keep the tests fast; no timing assertions beyond
"arrives before a generous deadline"."""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccdaemon.media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    RtcpPacket,
    SdesChunk,
    SenderReport,
    SourceDescription,
    build_compound,
    ntp_from_unix,
    ntp_middle32,
    parse_compound,
)
from ccdaemon.media.rtcp_session import RtcpSession, RtpSource, process_cname
from ccdaemon.media.rtp import RtpPacket, RtpReceiverStats
from ccdaemon.media.session import RtpSession
from ccdaemon.sip.offer_answer import NegotiatedMedia
from ccdaemon.sip.sdp import Direction, MediaFormat

HOST = "127.0.0.1"
OURS = 0xA1B2C3D4
PEER = 0x01020304
CNAME = "ccdaemon-test@127.0.0.1"
FAST = 0.2  # min_interval: first report within 0.1 x 1.5 / (e - 3/2) = 0.12 s, then every <= 0.25 s


@dataclass
class FakeCounters:
    packets_sent: int = 0
    bytes_sent: int = 0


@dataclass
class FakeRtp:
    """Implements RtpSource the way RtpSession should."""

    remote: tuple[str, int]
    ssrc: int = OURS
    symmetric: bool = True
    stats: FakeCounters = field(default_factory=FakeCounters)
    rx_stats: RtpReceiverStats = field(default_factory=RtpReceiverStats)

    def rtp_timestamp_at(self, now: float) -> int:
        return round(now * 8000) % (1 << 32)

    def sent(self, packets: int) -> None:
        self.stats.packets_sent += packets
        self.stats.bytes_sent += packets * (12 + 160)

    def heard(self, sequences: list[int]) -> None:
        for seq in sequences:
            self.rx_stats.update(ssrc=PEER, sequence=seq, timestamp=160 * seq, arrival=seq * 0.02)


def udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, 0))
    sock.setblocking(False)
    return sock


def addr(sock: socket.socket) -> tuple[str, int]:
    host, port = sock.getsockname()[:2]
    return (str(host), int(port))


def rtp_for(peer_rtcp: socket.socket, *, symmetric: bool = True) -> FakeRtp:
    """A fake RTP session whose peer's RTP port is one below ``peer_rtcp`` (RFC 3550 §11)."""
    host, port = addr(peer_rtcp)
    return FakeRtp(remote=(host, port - 1), symmetric=symmetric)


async def recv(sock: socket.socket, timeout: float = 3.0) -> tuple[list[RtcpPacket], tuple[str, int]]:
    data, source = await asyncio.wait_for(asyncio.get_running_loop().sock_recvfrom(sock, 2048), timeout)
    return parse_compound(data), (str(source[0]), int(source[1]))


async def started(sock: socket.socket, rtp: RtpSource) -> RtcpSession:
    # a bandwidth so high that the minimum interval decides, as for voice with the 5 s minimum
    session = RtcpSession(sock, rtp, cname=CNAME, min_interval=FAST, session_bandwidth=1e6)
    await session.start()
    return session


async def wait_for(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_fake_satisfies_the_protocol() -> None:
    rtp: RtpSource = FakeRtp(remote=(HOST, 4000))  # checked by mypy when run on the tests, by use here
    assert rtp.ssrc == OURS


async def test_sr_with_report_block_and_cname_arrives_at_rtp_port_plus_one() -> None:
    peer = udp()
    rtp = rtp_for(peer)
    rtp.sent(50)
    rtp.heard([100, 101, 102, 104, 105])  # one lost (103)
    session = await started(udp(), rtp)
    try:
        packets, source = await recv(peer)
        assert source == session.local_address
        sr, sdes = packets
        assert isinstance(sr, SenderReport)
        assert (sr.ssrc, sr.packet_count, sr.octet_count) == (OURS, 50, 50 * 160)
        (block,) = sr.reports
        assert block.ssrc == PEER
        assert block.cumulative_lost == 1
        assert block.highest_sequence == 105
        assert sdes == SourceDescription((SdesChunk(OURS, CNAME),))
        assert (session.stats.sr_sent, session.stats.packets_sent) == (1, 1)
    finally:
        session.close()
        peer.close()


async def test_rr_without_block_when_nothing_sent_or_heard_and_reports_keep_coming() -> None:
    peer = udp()
    session = await started(udp(), rtp_for(peer))
    try:
        for _ in range(3):
            packets, _ = await recv(peer)
            assert packets[0] == ReceiverReport(OURS)
        assert session.stats.rr_sent >= 3
    finally:
        session.close()
        peer.close()


async def test_peer_report_is_received_and_round_trip_measured() -> None:
    peer = udp()
    rtp = rtp_for(peer)
    rtp.sent(10)
    session = await started(udp(), rtp)
    try:
        packets, source = await recv(peer)
        sr = packets[0]
        assert isinstance(sr, SenderReport)
        block = ReportBlock(OURS, 26, 2, 9, 40, ntp_middle32(sr.ntp_timestamp), 0)
        peer_sr = SenderReport(PEER, ntp_from_unix(1e9), 5, 6, 7, (block,))
        peer.sendto(build_compound(peer_sr, SourceDescription((SdesChunk(PEER, "baresip@x"),))), source)
        await wait_for(lambda: session.peer_reception is not None)
        view = session.peer_reception
        assert view is not None
        assert view.fraction_lost == pytest.approx(26 / 256)
        assert view.cumulative_lost == 2
        assert view.jitter == pytest.approx(40 / 8000)
        assert view.round_trip is not None and 0 <= view.round_trip < 1.0
        assert session.peer_sr is not None and session.peer_sr.ssrc == PEER
        assert (session.stats.sr_received, session.stats.packets_received, session.stats.latches) == (1, 1, 0)
        assert session.stats.last_source == addr(peer)
    finally:
        session.close()
        peer.close()


async def test_symmetric_latches_to_the_first_valid_report_source() -> None:
    expected, nat = udp(), udp()  # the SDP's port + 1, and where the peer's RTCP really comes from
    session = await started(udp(), rtp_for(expected))
    try:
        await recv(expected)  # before latching: to RTP port + 1
        nat.sendto(b"\x80garbage", session.local_address)  # malformed: counted, no latch
        nat.sendto(build_compound(ReceiverReport(PEER)), session.local_address)
        await wait_for(lambda: session.stats.latches == 1)
        assert session.remote == addr(nat)
        assert session.stats.malformed == 1
        await recv(nat)  # our reports follow the latch
        expected.sendto(build_compound(ReceiverReport(PEER)), session.local_address)
        await wait_for(lambda: session.stats.wrong_source == 1)
        assert session.stats.rr_received == 1
    finally:
        session.close()
        expected.close()
        nat.close()


async def test_latch_is_dropped_when_the_rtp_peer_moves() -> None:
    first, second = udp(), udp()
    rtp = rtp_for(first)
    session = await started(udp(), rtp)
    try:
        first.sendto(build_compound(ReceiverReport(PEER)), session.local_address)
        await wait_for(lambda: session.stats.rr_received == 1)
        assert session.remote == addr(first)
        rtp.remote = (HOST, addr(second)[1] - 1)  # re-INVITE (or RTP latch) moved the peer
        assert session.remote == addr(second)
        await recv(second)
    finally:
        session.close()
        first.close()
        second.close()


async def test_not_symmetric_accepts_only_the_negotiated_address() -> None:
    expected, other = udp(), udp()
    session = await started(udp(), rtp_for(expected, symmetric=False))
    try:
        other.sendto(build_compound(ReceiverReport(PEER)), session.local_address)
        expected.sendto(build_compound(ReceiverReport(PEER)), session.local_address)
        await wait_for(lambda: session.stats.rr_received == 1 and session.stats.wrong_source == 1)
        assert session.remote == addr(expected) and session.stats.latches == 0
    finally:
        session.close()
        expected.close()
        other.close()


async def test_close_sends_the_final_report_with_bye() -> None:
    peer = udp()
    rtp = rtp_for(peer)
    rtp.sent(3)
    session = RtcpSession(udp(), rtp, cname=CNAME)  # default 5 s minimum: nothing before close
    await session.start()
    session.close("call ended")
    packets, _ = await recv(peer)
    assert isinstance(packets[0], SenderReport)
    assert packets[-1] == Bye((OURS,), "call ended")
    assert session.closed and session.stats.bye_sent == 1
    session.close()  # idempotent
    assert session.stats.bye_sent == 1
    peer.close()


async def test_close_before_start_sends_nothing_and_start_then_does_nothing() -> None:
    sock = udp()
    session = RtcpSession(sock, FakeRtp(remote=(HOST, 4000)), cname=CNAME)
    session.close()
    await session.start()
    assert session.closed and session.reporter.get_timer() is None
    sock.close()


async def test_no_reports_while_the_peer_has_no_address() -> None:
    rtp = FakeRtp(remote=("0.0.0.0", 4000))  # held the RFC 2543 way
    session = await started(udp(), rtp)
    try:
        first = session.reporter.get_timer()
        await asyncio.sleep(0.5)
        assert session.stats.packets_sent == 0
        assert session.reporter.get_timer() != first  # postponed, still ticking
        rtp.remote = (HOST, 0)
        assert session.remote is None
    finally:
        session.close()


def test_flood_is_dropped() -> None:
    session = RtcpSession(udp(), FakeRtp(remote=(HOST, 4000)), cname=CNAME)
    rr = build_compound(ReceiverReport(PEER))
    for i in range(30):
        session.handle_datagram(rr, (HOST, 4001), now=10.0 + i * 0.01, wallclock=1e9)
    assert (session.stats.rr_received, session.stats.flood_drops) == (20, 10)
    session.handle_datagram(rr, (HOST, 4001), now=11.5, wallclock=1e9)  # a new one-second window
    assert session.stats.rr_received == 21


sources = st.sampled_from([(HOST, 4001), (HOST, 4003), ("127.0.0.2", 4001)])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.binary(max_size=200), sources, st.booleans()), max_size=20), st.booleans())
def test_arbitrary_datagrams_are_counted_once_and_never_raise(
    datagrams: list[tuple[bytes, tuple[str, int], bool]], symmetric: bool
) -> None:
    sock = udp()
    session = RtcpSession(sock, FakeRtp(remote=(HOST, 4000), symmetric=symmetric), cname=CNAME)
    valid = build_compound(ReceiverReport(PEER), Bye((PEER,)))
    for i, (data, source, use_valid) in enumerate(datagrams):
        session.handle_datagram(valid if use_valid else data, source, now=i * 0.1, wallclock=1e9 + i)
    st_ = session.stats
    assert st_.packets_received + st_.malformed + st_.wrong_source + st_.flood_drops == len(datagrams)
    remote = session.remote
    assert remote is not None
    if not symmetric:
        assert remote == (HOST, 4001)
    sock.close()


def test_cname_is_stable_per_process() -> None:
    assert process_cname("10.0.0.1") == process_cname("10.0.0.1")
    assert process_cname("10.0.0.1").endswith("@10.0.0.1") and process_cname("h").startswith("ccdaemon-")


# --- RtpSession as the RTCP session's source ---------------------------------------------------------------


async def test_rtp_session_is_an_rtcp_source_with_the_right_clock() -> None:
    local, peer = udp(), udp()
    media = NegotiatedMedia(
        remote_address=HOST,
        remote_port=addr(peer)[1],
        codec=MediaFormat(0, "PCMU", 8000),
        dtmf_payload_type=101,
        local_direction=Direction.SENDRECV,
        remote_direction=Direction.SENDRECV,
        ptime=20,
    )
    session = RtpSession(local, media, ssrc=OURS, initial_timestamp=1000)
    source: RtpSource = session
    assert source.rtp_timestamp_at(123.0) == 1000  # not started: the initial value
    await session.start()
    frame = bytes(320)
    session.play(lambda: frame)
    try:
        stamps: list[int] = []
        for _ in range(5):
            data, _ = await asyncio.wait_for(asyncio.get_running_loop().sock_recvfrom(peer, 2048), 2)
            stamps.append(RtpPacket.parse(data).timestamp)
        pacer = session.pacer
        assert pacer is not None
        # each packet's timestamp is the clock at its tick's deadline
        for ts in stamps:
            n = (ts - 1000) // 160
            assert source.rtp_timestamp_at(pacer.t0 + n * pacer.period) == ts
        assert source.ssrc == OURS and source.remote == addr(peer) and source.symmetric
        assert source.stats.packets_sent >= 5 and source.stats.bytes_sent == 172 * source.stats.packets_sent
        assert source.rx_stats is session.rx_stats
        assert math.isclose(source.rtp_timestamp_at(pacer.t0 + 1.0), 9000)
    finally:
        session.close()
        peer.close()
