"""RTCP timing and report state (ccdaemon.media.rtcp_timing): virtual time, bytes in and out, no sockets."""

from __future__ import annotations

import itertools
import random
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
    parse_compound,
)
from ccdaemon.media.rtcp_timing import (
    COMPENSATION,
    DEFAULT_SESSION_BANDWIDTH,
    UDP_IP_OVERHEAD,
    RtcpReporter,
    SenderSnapshot,
    deterministic_interval,
    randomised_interval,
    rtcp_interval,
)
from ccdaemon.media.rtp import ReceptionReport

OURS = 0x11223344
PEER = 0x55667788
CNAME = "ccdaemon-test@127.0.0.1"
WALL = 1_700_000_000.0
RTCP_BW = DEFAULT_SESSION_BANDWIDTH * 0.05
LOW, HIGH = 0.5 / COMPENSATION, 1.5 / COMPENSATION  # randomisation factor bounds


def reporter(now: float = 0.0, random_value: float = 0.5) -> RtcpReporter:
    r = RtcpReporter(ssrc=OURS, cname=CNAME)
    r.start(now=now, random_value=random_value)
    return r


def sent(packets: int, rtp_timestamp: int = 0) -> SenderSnapshot:
    return SenderSnapshot(packet_count=packets, octet_count=160 * packets, rtp_timestamp=rtp_timestamp)


def reception(**kw: int) -> ReceptionReport:
    values = {
        "ssrc": PEER,
        "fraction_lost": 0,
        "cumulative_lost": 0,
        "extended_highest_sequence": 1000,
        "jitter": 0,
    }
    values.update(kw)
    return ReceptionReport(**values)


def report(
    r: RtcpReporter, now: float, packets: int = 0, rx: ReceptionReport | None = None
) -> list[RtcpPacket]:
    data = r.build_report(now=now, wallclock=WALL + now, sender=sent(packets), reception=rx, random_value=0.5)
    return parse_compound(data)


def peer_sr(ntp: int, blocks: tuple[ReportBlock, ...] = (), ssrc: int = PEER) -> bytes:
    return build_compound(
        SenderReport(ssrc, ntp, 1234, 10, 1600, blocks), SourceDescription((SdesChunk(ssrc, "peer@host"),))
    )


# --- interval arithmetic (A.7) -------------------------------------------------------------------------


def two_party(*, senders: int, we_sent: bool, initial: bool) -> float:
    return deterministic_interval(
        members=2,
        senders=senders,
        rtcp_bandwidth=RTCP_BW,
        we_sent=we_sent,
        avg_rtcp_size=100.0,
        initial=initial,
    )


def test_two_party_interval_is_the_minimum() -> None:
    assert two_party(senders=2, we_sent=True, initial=False) == 5.0
    assert two_party(senders=0, we_sent=False, initial=False) == 5.0
    assert two_party(senders=1, we_sent=True, initial=True) == 2.5


def test_interval_above_the_minimum_follows_bandwidth() -> None:
    # 2 members x 1000 bytes / 100 bytes/s = 20 s; the minimum no longer matters
    td = deterministic_interval(
        members=2, senders=1, rtcp_bandwidth=100.0, we_sent=True, avg_rtcp_size=1000.0, initial=False
    )
    assert td == pytest.approx(20.0)


def test_few_senders_share_a_quarter_of_the_bandwidth() -> None:
    # 40 members, 1 sender (<= 25 %): the sender's n is 1 with 1/4 of the bandwidth, receivers 39 with 3/4
    for we_sent, expected in ((True, 100 * 1 / 2.5), (False, 100 * 39 / 7.5)):
        td = deterministic_interval(
            members=40, senders=1, rtcp_bandwidth=10.0, we_sent=we_sent, avg_rtcp_size=100.0, initial=False
        )
        assert td == pytest.approx(expected)


def test_randomisation_bounds_and_compensation() -> None:
    assert randomised_interval(5.0, 0.0) == pytest.approx(5.0 * 0.5 / (2.718281828459045 - 1.5))
    assert randomised_interval(5.0, 1.0) == pytest.approx(5.0 * 1.5 / 1.218281828459045)
    assert randomised_interval(5.0, 0.5) == pytest.approx(5.0 / COMPENSATION)
    with pytest.raises(ValueError):
        randomised_interval(5.0, 1.01)
    with pytest.raises(ValueError):
        randomised_interval(5.0, -0.01)


@given(st.floats(0.0, 1.0), st.booleans(), st.integers(0, 2), st.floats(20.0, 1500.0))
def test_interval_always_within_bounds(r: float, initial: bool, senders: int, avg: float) -> None:
    t = rtcp_interval(
        members=2,
        senders=senders,
        rtcp_bandwidth=RTCP_BW,
        we_sent=senders > 0,
        avg_rtcp_size=avg,
        initial=initial,
        random_value=r,
    )
    t_min = 2.5 if initial else 5.0
    # no sender (<= 25 % of 2): both members are receivers with 3/4 of the bandwidth
    budget = 2 * avg / (RTCP_BW if senders else 0.75 * RTCP_BW)
    assert t_min * LOW - 1e-9 <= t <= max(t_min, budget) * HIGH + 1e-9


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        deterministic_interval(
            members=0, senders=0, rtcp_bandwidth=1.0, we_sent=False, avg_rtcp_size=1.0, initial=True
        )
    with pytest.raises(ValueError):
        deterministic_interval(
            members=2, senders=3, rtcp_bandwidth=1.0, we_sent=False, avg_rtcp_size=1.0, initial=True
        )
    with pytest.raises(ValueError):
        deterministic_interval(
            members=2, senders=1, rtcp_bandwidth=0.0, we_sent=False, avg_rtcp_size=1.0, initial=True
        )
    with pytest.raises(ValueError):
        RtcpReporter(ssrc=1 << 32, cname="x")


# --- scheduling ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("r", [0.0, 0.5, 1.0])
def test_first_report_after_half_the_minimum_randomised(r: float) -> None:
    rep = reporter(now=100.0, random_value=r)
    assert rep.get_timer() == pytest.approx(100.0 + 2.5 * (r + 0.5) / COMPENSATION)
    assert 100.0 + 2.5 * LOW <= (rep.get_timer() or 0) <= 100.0 + 2.5 * HIGH


def test_no_timer_before_start_and_start_is_idempotent() -> None:
    rep = RtcpReporter(ssrc=OURS, cname=CNAME)
    assert rep.get_timer() is None
    assert rep.handle_timer(now=10.0, random_value=0.5) is False
    rep.start(now=0.0, random_value=0.0)
    first = rep.get_timer()
    rep.start(now=50.0, random_value=1.0)
    assert rep.get_timer() == first


def test_handle_timer_early_is_a_no_op() -> None:
    rep = reporter(random_value=0.5)
    due = rep.get_timer()
    assert due is not None
    assert rep.handle_timer(now=due - 0.1, random_value=0.0) is False
    assert rep.get_timer() == due


def test_reconsideration_postpones_when_the_new_interval_is_longer() -> None:
    rep = reporter(now=0.0, random_value=0.0)  # due at 2.5 x 0.5 / C
    due = rep.get_timer()
    assert due is not None
    # at expiry a fresh draw of 1.0 gives tp + T > now: not sent, moved to tp + T (§6.3.6)
    assert rep.handle_timer(now=due, random_value=1.0) is False
    assert rep.get_timer() == pytest.approx(2.5 * HIGH)
    assert rep.handle_timer(now=2.5 * HIGH, random_value=1.0) is True


def test_reports_over_a_minute_of_virtual_time() -> None:
    rng = random.Random(3550)
    rep = reporter(now=0.0, random_value=rng.random())
    times: list[float] = []
    now = 0.0
    while now < 600.0:
        due = rep.get_timer()
        assert due is not None and due > now
        now = due
        if rep.handle_timer(now=now, random_value=rng.random()):
            report(rep, now, packets=len(times) * 250)
            times.append(now)
    assert 2.5 * LOW <= times[0] <= 2.5 * HIGH
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(5.0 * LOW - 1e-9 <= g <= 5.0 * HIGH + 1e-9 for g in gaps)
    # reconsideration lengthens the draws; the compensation brings the mean back near the 5 s minimum
    assert 4.0 < sum(gaps) / len(gaps) < 6.0


def test_postpone_moves_the_timer_without_counting() -> None:
    rep = reporter(random_value=0.5)
    rep.postpone(now=10.0, random_value=0.5)
    assert rep.get_timer() == pytest.approx(10.0 + 2.5 / COMPENSATION)  # still "initial": nothing sent
    assert rep.stats.packets_sent == 0


# --- what we send ------------------------------------------------------------------------------------------


def test_sr_when_we_sent_in_the_last_two_intervals_else_rr() -> None:
    rep = reporter()
    kinds = []
    for packets in (10, 10, 10, 11, 11, 11):
        first = report(rep, 1.0, packets=packets)[0]
        kinds.append(type(first).__name__)
    # RFC 3550 §6.4: SR if data was sent since the last report or the one before
    sr, rr = "SenderReport", "ReceiverReport"
    assert kinds == [sr, sr, rr, sr, sr, rr]
    assert (rep.stats.sr_sent, rep.stats.rr_sent, rep.stats.packets_sent) == (4, 2, 6)


def test_rr_when_nothing_was_ever_sent() -> None:
    packets = report(reporter(), 3.0)
    assert packets == [ReceiverReport(OURS), SourceDescription((SdesChunk(OURS, CNAME),))]


def test_sr_fields_ntp_and_rtp_timestamp_from_the_times_passed_in() -> None:
    rep = reporter()
    wall = 1_700_000_000.5
    data = rep.build_report(
        now=3.0,
        wallclock=wall,
        sender=SenderSnapshot(
            packet_count=(1 << 32) + 5, octet_count=(1 << 32) + 800, rtp_timestamp=(1 << 32) + 7
        ),
        reception=None,
        random_value=0.5,
    )
    sr, sdes = parse_compound(data)
    assert isinstance(sr, SenderReport)
    assert sr.ntp_timestamp >> 32 == 1_700_000_000 + 2_208_988_800  # seconds since 1900 (RFC 3550 §4)
    assert sr.ntp_timestamp & 0xFFFFFFFF == 1 << 31  # .5 s
    assert (sr.rtp_timestamp, sr.packet_count, sr.octet_count) == (7, 5, 800)  # 32-bit wrap
    assert sdes == SourceDescription((SdesChunk(OURS, CNAME),))


def test_report_block_from_reception_and_lsr_dlsr() -> None:
    rep = reporter()
    ntp = ntp_from_unix(WALL + 10.0)
    assert rep.receive(peer_sr(ntp), now=10.0, wallclock=WALL + 10.0) is True
    rx = reception(fraction_lost=64, cumulative_lost=-3, extended_highest_sequence=70_000, jitter=42)
    rr = report(rep, 12.5, rx=rx)[0]
    assert isinstance(rr, ReceiverReport)
    (block,) = rr.reports
    assert block == ReportBlock(PEER, 64, -3, 70_000, 42, ntp_middle32(ntp), int(2.5 * 65536))


def test_no_lsr_for_an_sr_from_another_source() -> None:
    rep = reporter()
    rep.receive(peer_sr(ntp_from_unix(WALL), ssrc=0xDEAD), now=1.0, wallclock=WALL)
    rr = report(rep, 2.0, rx=reception())[0]
    assert isinstance(rr, ReceiverReport)
    (block,) = rr.reports
    assert block.ssrc == PEER
    assert (block.last_sr, block.delay_since_last_sr) == (0, 0)


def test_average_size_follows_what_we_send() -> None:
    rep = reporter()
    before = rep.avg_rtcp_size
    data = rep.build_report(now=3.0, wallclock=WALL, sender=sent(0), reception=None, random_value=0.5)
    assert rep.avg_rtcp_size == pytest.approx(before + (len(data) + UDP_IP_OVERHEAD - before) / 16)


def test_close_sends_bye_once_and_stops_the_timer() -> None:
    rep = reporter()
    report(rep, 3.0, packets=5)
    data = rep.close(now=4.0, wallclock=WALL + 4, sender=sent(6), reception=None, reason="call ended")
    assert data is not None
    packets = parse_compound(data)
    assert isinstance(packets[0], SenderReport)
    assert packets[-1] == Bye((OURS,), "call ended")
    assert rep.get_timer() is None and rep.closed
    assert rep.close(now=5.0, wallclock=WALL, sender=sent(6), reception=None) is None
    assert rep.stats.bye_sent == 1


def test_no_bye_when_we_never_sent_anything() -> None:
    rep = reporter()
    assert rep.close(now=1.0, wallclock=WALL, sender=sent(0), reception=None) is None
    assert rep.stats.bye_sent == 0 and rep.get_timer() is None


# --- what we hear -------------------------------------------------------------------------------------------


def test_peer_reception_of_our_stream_and_round_trip() -> None:
    rep = reporter()
    sr = report(rep, 3.0, packets=100)[0]  # our SR at WALL + 3
    assert isinstance(sr, SenderReport)
    # the peer holds it 1 s, its RR arrives 1.25 s after we sent: RTT 0.25 s
    block = ReportBlock(OURS, 64, 5, 1099, 80, ntp_middle32(sr.ntp_timestamp), 65536)
    other = ReportBlock(0x999, 255, 100, 1, 1, 0, 0)  # about someone else: ignored
    rr = build_compound(ReceiverReport(PEER, (other, block)))
    assert rep.receive(rr, now=4.25, wallclock=WALL + 4.25) is True
    view = rep.peer_reception
    assert view is not None
    assert view.reporter_ssrc == PEER
    assert view.fraction_lost == 0.25
    assert view.cumulative_lost == 5
    assert view.highest_sequence == 1099
    assert view.jitter == pytest.approx(0.01)  # 80 samples at 8 kHz
    assert view.round_trip == pytest.approx(0.25, abs=1 / 65536)
    assert view.received_at == 4.25
    assert rep.stats.rr_received == 1


def test_round_trip_only_for_our_recent_srs() -> None:
    rep = reporter()
    sr = report(rep, 3.0, packets=100)[0]
    assert isinstance(sr, SenderReport)
    lsr = ntp_middle32(sr.ntp_timestamp)
    assert rep.round_trip(ReportBlock(OURS, last_sr=0), WALL + 4) is None  # no SR received yet
    assert rep.round_trip(ReportBlock(OURS, last_sr=lsr ^ 1), WALL + 4) is None  # not one of ours
    # DLSR longer than the time since we sent: negative, a bogus value
    assert rep.round_trip(ReportBlock(OURS, last_sr=lsr, delay_since_last_sr=10 * 65536), WALL + 4) is None
    # ... unless only by a peer's clock step (1 ms DLSR resolution against a sub-millisecond round trip)
    coarse = ReportBlock(OURS, last_sr=lsr, delay_since_last_sr=int(0.502 * 65536))
    assert rep.round_trip(coarse, WALL + 3.5) == 0.0
    assert rep.round_trip(ReportBlock(OURS, last_sr=lsr), WALL + 3.5) == pytest.approx(0.5, abs=1 / 65536)


def test_peer_sr_cname_and_bye_are_kept() -> None:
    rep = reporter()
    ntp = ntp_from_unix(WALL)
    rep.receive(peer_sr(ntp), now=2.0, wallclock=WALL)
    assert rep.peer_sr is not None
    assert (rep.peer_sr.ssrc, rep.peer_sr.ntp_timestamp, rep.peer_sr.received_at) == (PEER, ntp, 2.0)
    assert rep.peer_cname == "peer@host"
    bye = build_compound(ReceiverReport(PEER), Bye((PEER,), "bye now"))
    assert rep.receive(bye, now=3.0, wallclock=WALL) is True
    assert rep.peer_bye == "bye now"
    assert (rep.stats.sr_received, rep.stats.rr_received, rep.stats.bye_received) == (1, 1, 1)
    assert rep.stats.packets_received == 2


def test_a_compound_without_sr_or_rr_is_not_a_report() -> None:
    rep = reporter()
    assert rep.receive(build_compound(Bye((PEER,))), now=1.0, wallclock=WALL) is False
    assert rep.stats.bye_received == 1


@given(st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_rtcp_error_and_change_nothing_then(data: bytes) -> None:
    rep = reporter()
    try:
        rep.receive(data, now=1.0, wallclock=WALL)
    except RtcpError:
        assert rep.stats.packets_received == 0
        assert rep.peer_sr is None and rep.peer_reception is None
    else:
        assert rep.stats.packets_received == 1


def test_invalid_utf8_cname_from_a_peer_is_not_fatal() -> None:
    # 255 invalid octets would be 765 octets as U+FFFD: parse_compound used to raise a bare ValueError
    body = struct.pack("!IBB", PEER, 1, 255) + b"\xff" * 255
    body += bytes(4 - len(body) % 4)
    data = build_compound(ReceiverReport(PEER)) + struct.pack("!BBH", 0x81, 202, len(body) // 4) + body
    rep = reporter()
    assert rep.receive(data, now=1.0, wallclock=WALL) is True
    assert rep.peer_cname == "?" * 255
