"""RTCP timing (RFC 3550 §6.2, §6.3, A.7) and report state for one two-party RTP session.

Pure, sans-I/O: times and random values are arguments. ``now`` is the monotonic clock the adapter schedules
on (``loop.time()``); ``wallclock`` is Unix time, used only for NTP timestamps (SR, LSR/DLSR, round trip).

The session is a call leg: us and the one negotiated peer, so ``members`` is 2 (§6.3.2 counts members
from what arrives; with SDP we know the peer exists before it speaks). With two members the sender
bandwidth split of A.7 never applies and the 5 s minimum dominates any voice codec's RTCP budget, so in
practice reports go out every 5 s x [0.5, 1.5] / (e - 3/2), the first after half of that.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from .rtcp import (
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
from .rtp import ReceptionReport

__all__ = [
    "COMPENSATION",
    "MIN_INTERVAL",
    "UDP_IP_OVERHEAD",
    "PeerReception",
    "PeerSenderReport",
    "RtcpReporter",
    "RtcpStats",
    "SenderSnapshot",
    "deterministic_interval",
    "randomised_interval",
    "rtcp_interval",
]

MIN_INTERVAL = 5.0  # §6.2 recommended minimum; halved before the first report (§6.3.1 "initial")
COMPENSATION = math.e - 1.5  # §6.3.1 / A.7: timer reconsideration converges below the intended interval
RTCP_BANDWIDTH_FRACTION = 0.05  # §6.2: RTCP gets 5 % of the session bandwidth
SENDER_BANDWIDTH_FRACTION = 0.25  # §6.2: of which senders share 1/4 when they are few
RECEIVER_BANDWIDTH_FRACTION = 1 - SENDER_BANDWIDTH_FRACTION
UDP_IP_OVERHEAD = 28  # §6.3.3: the average size counts lower-layer headers (IPv4 20 + UDP 8)
# G.711 at 20 ms: (12 RTP + 160 payload + 28) bytes x 50 packets/s (RFC 3550 §6.2 "session bandwidth").
DEFAULT_SESSION_BANDWIDTH = 10_000.0  # bytes/s
_MEMBERS = 2
_U32 = 1 << 32
RTT_TOLERANCE = 0.01  # seconds of negative round trip still read as 0 (libre's DLSR has 1 ms steps)
_RECENT_SRS = 8  # our SRs a peer's LSR may refer to (a report interval is >= 1 s; 8 cover the peer's lag)


def deterministic_interval(
    *,
    members: int,
    senders: int,
    rtcp_bandwidth: float,
    we_sent: bool,
    avg_rtcp_size: float,
    initial: bool,
    min_interval: float = MIN_INTERVAL,
) -> float:
    """A.7 ``rtcp_interval()`` up to the randomisation: seconds between our reports.

    ``rtcp_bandwidth`` in bytes/s (5 % of the session's), ``avg_rtcp_size`` in bytes including UDP/IP.
    """
    if members < 1 or not 0 <= senders <= members:
        raise ValueError(f"need members >= 1 and 0 <= senders <= members: {members}, {senders}")
    if rtcp_bandwidth <= 0 or avg_rtcp_size <= 0 or min_interval <= 0:
        raise ValueError("bandwidth, average size and minimum interval must be positive")
    t_min = min_interval / 2 if initial else min_interval
    n = members
    if senders <= members * SENDER_BANDWIDTH_FRACTION:
        # few senders: they share 1/4 of the RTCP bandwidth, receivers the rest (§6.2)
        if we_sent:
            rtcp_bandwidth *= SENDER_BANDWIDTH_FRACTION
            n = senders
        else:
            rtcp_bandwidth *= RECEIVER_BANDWIDTH_FRACTION
            n -= senders
    return max(avg_rtcp_size * n / rtcp_bandwidth, t_min)


def randomised_interval(deterministic: float, random_value: float) -> float:
    """§6.3.1: spread by a factor uniform in [0.5, 1.5] (``random_value`` uniform in [0, 1]), divided by
    e - 3/2 to compensate for timer reconsideration."""
    if not 0.0 <= random_value <= 1.0:
        raise ValueError(f"random value must be in [0, 1]: {random_value}")
    return deterministic * (random_value + 0.5) / COMPENSATION


def rtcp_interval(
    *,
    members: int,
    senders: int,
    rtcp_bandwidth: float,
    we_sent: bool,
    avg_rtcp_size: float,
    initial: bool,
    random_value: float,
    min_interval: float = MIN_INTERVAL,
) -> float:
    """A.7 ``rtcp_interval()`` in full, with the random draw passed in."""
    td = deterministic_interval(
        members=members,
        senders=senders,
        rtcp_bandwidth=rtcp_bandwidth,
        we_sent=we_sent,
        avg_rtcp_size=avg_rtcp_size,
        initial=initial,
        min_interval=min_interval,
    )
    return randomised_interval(td, random_value)


@dataclass(frozen=True, slots=True)
class SenderSnapshot:
    """Our RTP sender's counters at the moment of a report (§6.4.1 sender info)."""

    packet_count: int  # RTP packets sent since the stream started (wrapped to 32 bits in the SR)
    octet_count: int  # payload octets sent: no RTP header, no padding
    rtp_timestamp: int  # our RTP clock at the same instant as the report's ``wallclock``


@dataclass(frozen=True, slots=True)
class PeerSenderReport:
    """The peer's last SR: what our next report block about it refers to (LSR, DLSR)."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    received_at: float  # ``now`` (monotonic) at arrival

    @property
    def last_sr(self) -> int:
        return ntp_middle32(self.ntp_timestamp)


@dataclass(frozen=True, slots=True)
class PeerReception:
    """What the peer last reported about our stream (RFC 3550 §6.4.1), for call-quality KPIs."""

    reporter_ssrc: int
    fraction_lost: float  # 0..1, over the peer's last report interval
    cumulative_lost: int  # negative when the peer saw duplicates
    highest_sequence: int  # extended highest sequence number received
    jitter: float  # seconds
    round_trip: float | None  # seconds; None until the peer refers to an SR of ours
    received_at: float  # ``now`` (monotonic) at arrival


@dataclass(slots=True)
class RtcpStats:
    """Counters of one leg's RTCP. The reporter keeps the report counts; the I/O adapter the rest."""

    packets_sent: int = 0  # compound packets
    bytes_sent: int = 0
    sr_sent: int = 0
    rr_sent: int = 0
    bye_sent: int = 0
    packets_received: int = 0  # compound packets that parsed
    bytes_received: int = 0
    sr_received: int = 0
    rr_received: int = 0
    bye_received: int = 0
    malformed: int = 0
    wrong_source: int = 0
    flood_drops: int = 0
    send_errors: int = 0
    latches: int = 0  # symmetric RTCP: times the destination moved to the observed source
    last_source: tuple[str, int] | None = None


class RtcpReporter:
    """RTCP of one RTP session (our ``ssrc`` and one peer): when to report, what to send, what we heard.

    Drive it like the other cores: ``start`` once; ``get_timer()`` gives the next deadline; at that time call
    ``handle_timer(now=..., random_value=...)``, and when it returns True build the report at once with
    ``build_report`` (the caller takes the receiver statistics snapshot only then, since ``report()``
    starts a new loss interval). ``receive`` takes every datagram from the peer; ``close`` gives the
    final report with a BYE.
    """

    def __init__(
        self,
        *,
        ssrc: int,
        cname: str,
        clock_rate: int = 8000,
        session_bandwidth: float = DEFAULT_SESSION_BANDWIDTH,
        min_interval: float = MIN_INTERVAL,
    ) -> None:
        if not 0 <= ssrc < _U32:
            raise ValueError(f"SSRC out of range: {ssrc}")
        if clock_rate <= 0 or session_bandwidth <= 0:
            raise ValueError("clock rate and session bandwidth must be positive")
        self.ssrc = ssrc
        self.cname = cname
        self.clock_rate = clock_rate
        self.rtcp_bandwidth = session_bandwidth * RTCP_BANDWIDTH_FRACTION
        self.min_interval = min_interval
        self.stats = RtcpStats()
        self.peer_sr: PeerSenderReport | None = None
        self.peer_reception: PeerReception | None = None
        self.peer_cname: str | None = None
        self.peer_bye: str | None = None  # the reason, "" for none, once the peer said BYE
        self._sdes = SourceDescription((SdesChunk(ssrc, cname),))
        # A.7: initialised to the probable size of our first packet (an SR with one block and SDES)
        self.avg_rtcp_size = float(len(self._sdes.to_bytes()) + 52 + UDP_IP_OVERHEAD)
        self._initial = True
        self._last_sent = 0.0  # A.7 tp: "time of start" until the first report
        self._counts: deque[int] = deque([0], maxlen=2)  # our packet count at the last two reports
        self._our_srs: deque[int] = deque(maxlen=_RECENT_SRS)  # LSR values of SRs we sent
        self._closed = False
        self._timer: float | None = None

    # --- timing -------------------------------------------------------------------------------------

    def start(self, *, now: float, random_value: float) -> None:
        """Session start: the first report is due after half the minimum interval, randomised (§6.3.2)."""
        if self._closed or self._timer is not None:
            return
        self._last_sent = now
        self._timer = now + self._interval(random_value, we_sent=False, now=now)

    def get_timer(self) -> float | None:
        """When the next report is due (None before ``start`` and once closed)."""
        return self._timer

    def handle_timer(self, *, now: float, random_value: float) -> bool:
        """A.7 OnExpire with timer reconsideration (§6.3.6): True when a report is due now; the caller
        then calls ``build_report`` (or ``postpone``), which sets the next deadline.

        Otherwise the deadline moved (``get_timer()``) to ``tp + T`` with a fresh ``T``.
        """
        if self._timer is None or now < self._timer:
            return False
        t = self._interval(random_value, we_sent=self._we_sent_hint(), now=now)
        if self._last_sent + t <= now:
            return True
        self._timer = self._last_sent + t
        return False

    def postpone(self, *, now: float, random_value: float) -> None:
        """A report was due but there is nowhere to send it (held with 0.0.0.0, port 0): try again one
        interval later, without touching the counters."""
        if self._timer is not None:
            self._timer = now + self._interval(random_value, we_sent=self._we_sent_hint(), now=now)

    def _interval(self, random_value: float, *, we_sent: bool, now: float) -> float:
        return rtcp_interval(
            members=_MEMBERS,
            senders=int(we_sent) + int(self._peer_sends(now)),
            rtcp_bandwidth=self.rtcp_bandwidth,
            we_sent=we_sent,
            avg_rtcp_size=self.avg_rtcp_size,
            initial=self._initial,
            random_value=random_value,
            min_interval=self.min_interval,
        )

    def _we_sent_hint(self) -> bool:
        # Without a fresh snapshot: did our count move between the last two reports?
        return len(self._counts) == 2 and self._counts[0] != self._counts[1]

    def _peer_sends(self, now: float) -> bool:
        # §6.3.5: no longer a sender after twice the deterministic interval (the minimum, for two members)
        return self.peer_sr is not None and now - self.peer_sr.received_at < 2 * self.min_interval

    # --- sending ------------------------------------------------------------------------------------

    def build_report(
        self,
        *,
        now: float,
        wallclock: float,
        sender: SenderSnapshot,
        reception: ReceptionReport | None,
        random_value: float,
    ) -> bytes:
        """Our compound report now: SR (we sent RTP in the last two intervals, §6.4) or RR, then SDES CNAME.

        ``reception`` (``RtpReceiverStats.report()``) adds a report block about the peer's stream; pass
        None while no RTP has arrived. Schedules the next report.
        """
        data = self._compound(now=now, wallclock=wallclock, sender=sender, reception=reception)
        self._sent(data, now)
        self._timer = now + self._interval(random_value, we_sent=self._we_sent_hint(), now=now)
        return data

    def close(
        self,
        *,
        now: float,
        wallclock: float,
        sender: SenderSnapshot,
        reception: ReceptionReport | None,
        reason: str = "",
    ) -> bytes | None:
        """The final report with a BYE (§6.6), sent at once (§6.3.7: fewer than 50 members).

        None when we never sent RTP or RTCP (§6.3.7: then no BYE) or already closed. Stops the timer.
        """
        if self._closed:
            return None
        self._closed = True
        self._timer = None
        if self.stats.packets_sent == 0 and sender.packet_count == 0:
            return None
        bye = Bye((self.ssrc,), reason)
        data = self._compound(now=now, wallclock=wallclock, sender=sender, reception=reception, bye=bye)
        self._sent(data, now)
        return data

    @property
    def closed(self) -> bool:
        return self._closed

    def _compound(
        self,
        *,
        now: float,
        wallclock: float,
        sender: SenderSnapshot,
        reception: ReceptionReport | None,
        bye: Bye | None = None,
    ) -> bytes:
        blocks = () if reception is None else (self._block_for(reception, now),)
        we_sent = sender.packet_count != self._counts[0]
        self._counts.append(sender.packet_count)
        report: SenderReport | ReceiverReport
        if we_sent:
            ntp = ntp_from_unix(wallclock)
            report = SenderReport(
                self.ssrc,
                ntp,
                sender.rtp_timestamp % _U32,
                sender.packet_count % _U32,
                sender.octet_count % _U32,
                blocks,
            )
            self._our_srs.append(ntp_middle32(ntp))
            self.stats.sr_sent += 1
        else:
            report = ReceiverReport(self.ssrc, blocks)
            self.stats.rr_sent += 1
        packets: list[RtcpPacket] = [report, self._sdes]
        if bye is not None:
            packets.append(bye)
            self.stats.bye_sent += 1
        return build_compound(*packets)

    def _block_for(self, reception: ReceptionReport, now: float) -> ReportBlock:
        last_sr = delay = 0
        sr = self.peer_sr
        if sr is not None and sr.ssrc == reception.ssrc:
            last_sr = sr.last_sr
            # §6.4.1 DLSR: units of 1/65536 s since that SR arrived
            delay = min(max(int((now - sr.received_at) * 65536), 0), _U32 - 1)
        return ReportBlock(
            ssrc=reception.ssrc,
            fraction_lost=reception.fraction_lost,
            cumulative_lost=reception.cumulative_lost,
            highest_sequence=reception.extended_highest_sequence,
            jitter=reception.jitter,
            last_sr=last_sr,
            delay_since_last_sr=delay,
        )

    def _sent(self, data: bytes, now: float) -> None:
        size = len(data) + UDP_IP_OVERHEAD
        self.avg_rtcp_size += (size - self.avg_rtcp_size) / 16  # §6.3.3
        self.stats.packets_sent += 1
        self.stats.bytes_sent += len(data)
        self._last_sent = now
        self._initial = False

    # --- receiving ----------------------------------------------------------------------------------

    def receive(self, data: bytes, *, now: float, wallclock: float, max_size: int = 1500) -> bool:
        """Take one datagram from the peer. True when it held an SR or RR (a valid report, §6.4).

        Raises RtcpError (only) for a malformed packet; nothing is changed then.
        """
        try:
            packets = parse_compound(data, max_size=max_size)
        except RtcpError:
            raise
        except ValueError as exc:  # a field the dataclasses refuse: still the peer's fault
            raise RtcpError(str(exc)) from exc
        has_report = False
        for packet in packets:
            if isinstance(packet, SenderReport):
                has_report = True
                self.stats.sr_received += 1
                self.peer_sr = PeerSenderReport(
                    packet.ssrc,
                    packet.ntp_timestamp,
                    packet.rtp_timestamp,
                    packet.packet_count,
                    packet.octet_count,
                    now,
                )
                self._take_blocks(packet.ssrc, packet.reports, now, wallclock)
            elif isinstance(packet, ReceiverReport):
                has_report = True
                self.stats.rr_received += 1
                self._take_blocks(packet.ssrc, packet.reports, now, wallclock)
            elif isinstance(packet, SourceDescription):
                for chunk in packet.chunks:
                    if chunk.cname and chunk.ssrc != self.ssrc:
                        self.peer_cname = chunk.cname
            elif isinstance(packet, Bye) and self.ssrc not in packet.ssrcs:
                self.stats.bye_received += 1
                self.peer_bye = packet.reason
        self.stats.packets_received += 1
        self.stats.bytes_received += len(data)
        return has_report

    def _take_blocks(
        self, reporter: int, blocks: tuple[ReportBlock, ...], now: float, wallclock: float
    ) -> None:
        for block in blocks:
            if block.ssrc != self.ssrc:
                continue  # about someone else (a third party, or our previous SSRC)
            self.peer_reception = PeerReception(
                reporter_ssrc=reporter,
                fraction_lost=block.fraction_lost / 256,
                cumulative_lost=block.cumulative_lost,
                highest_sequence=block.highest_sequence,
                jitter=block.jitter / self.clock_rate,
                round_trip=self.round_trip(block, wallclock),
                received_at=now,
            )

    def round_trip(self, block: ReportBlock, wallclock: float) -> float | None:
        """§6.4.1: A - LSR - DLSR in seconds, for a block arriving at ``wallclock``; None when the block
        refers to no SR we sent recently or the result is clearly negative (a bogus DLSR)."""
        if block.last_sr == 0 or block.last_sr not in self._our_srs:
            return None
        arrival = ntp_middle32(ntp_from_unix(wallclock))
        units = (arrival - block.last_sr - block.delay_since_last_sr) % _U32
        if units < 1 << 31:
            return units / 65536
        # Slightly negative: the peer's DLSR clock is coarser than a short (loopback, LAN) round trip.
        return 0.0 if (_U32 - units) / 65536 <= RTT_TOLERANCE else None
