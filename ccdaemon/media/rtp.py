"""RTP packets (RFC 3550 §5.1), a sender state object and receiver statistics (RFC 3550 A.1, A.3, A.8).

Pure, sans-I/O: no clock reads, no sockets, no randomness. SSRC and initial sequence/timestamp are arguments
(RFC 3550 §5.1 wants them random; the caller draws them), arrival times are passed in seconds.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

__all__ = [
    "MAX_PACKET_SIZE",
    "ReceptionReport",
    "RtpError",
    "RtpExtension",
    "RtpPacket",
    "RtpReceiverStats",
    "RtpSender",
    "parse_fields",
]

MAX_PACKET_SIZE = 1500  # default limit for parse(): one Ethernet MTU
_HEADER = struct.Struct("!BBHII")
_SEQ_MOD = 1 << 16
_TS_MOD = 1 << 32


class RtpError(ValueError):
    """A malformed, truncated or oversized RTP packet."""


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """Header extension (RFC 3550 §5.3.1): 16-bit profile-defined value and data (a multiple of 4 bytes)."""

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.profile <= 0xFFFF:
            raise ValueError(f"extension profile out of range: {self.profile}")
        if len(self.data) % 4 or len(self.data) > 0xFFFF * 4:
            raise ValueError(f"extension data must be a multiple of 4 bytes, <= 262140: {len(self.data)}")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP data packet (RFC 3550 §5.1). Version is always 2.

    ``padding`` is the number of padding octets at the end (0 = P bit clear), including the count octet.
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: RtpExtension | None = None
    padding: int = 0
    version: int = field(default=2, init=False)

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"payload type out of range: {self.payload_type}")
        if not 0 <= self.sequence < _SEQ_MOD:
            raise ValueError(f"sequence out of range: {self.sequence}")
        if not 0 <= self.timestamp < _TS_MOD:
            raise ValueError(f"timestamp out of range: {self.timestamp}")
        if not 0 <= self.ssrc < _TS_MOD:
            raise ValueError(f"SSRC out of range: {self.ssrc}")
        if len(self.csrcs) > 15 or not all(0 <= c < _TS_MOD for c in self.csrcs):
            raise ValueError("at most 15 CSRCs, each 32-bit")
        if not 0 <= self.padding <= 255:
            raise ValueError(f"padding out of range: {self.padding}")

    @classmethod
    def parse(cls, data: bytes, *, max_size: int = MAX_PACKET_SIZE) -> RtpPacket:
        """Parse one datagram. Raises RtpError (never another exception) for any malformed input."""
        return parse(data, max_size=max_size)

    def to_bytes(self) -> bytes:
        first = 0x80 | (0x20 if self.padding else 0) | (0x10 if self.extension else 0) | len(self.csrcs)
        second = (0x80 if self.marker else 0) | self.payload_type
        parts = [_HEADER.pack(first, second, self.sequence, self.timestamp, self.ssrc)]
        if self.csrcs:
            parts.append(struct.pack(f"!{len(self.csrcs)}I", *self.csrcs))
        if self.extension is not None:
            ext = self.extension
            parts.append(struct.pack("!HH", ext.profile, len(ext.data) // 4))
            parts.append(ext.data)
        parts.append(self.payload)
        if self.padding:
            # RFC 3550 §5.1: last octet of the padding holds the count of padding octets, itself included.
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)


def parse(data: bytes, *, max_size: int = MAX_PACKET_SIZE) -> RtpPacket:
    """Parse one RTP packet (RFC 3550 §5.1, validity checks of A.1). Raises RtpError if malformed."""
    size = len(data)
    if size > max_size:
        raise RtpError(f"oversized RTP packet: {size} bytes > limit {max_size}")
    if size < 12:
        raise RtpError(f"short RTP packet: {size} bytes < 12-byte fixed header")
    first, second, seq, ts, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != 2:
        raise RtpError(f"bad RTP version {first >> 6} (expected 2)")
    cc = first & 0x0F
    offset = 12 + 4 * cc
    if offset > size:
        raise RtpError(f"CSRC count {cc} beyond data ({size} bytes)")
    csrcs = struct.unpack_from(f"!{cc}I", data, 12) if cc else ()
    extension = None
    if first & 0x10:
        if offset + 4 > size:
            raise RtpError("header extension flag set but no room for the extension header")
        profile, words = struct.unpack_from("!HH", data, offset)
        offset += 4
        end = offset + 4 * words
        if end > size:
            raise RtpError(f"header extension length {words} words beyond data ({size} bytes)")
        extension = RtpExtension(profile, bytes(data[offset:end]))
        offset = end
    padding = 0
    if first & 0x20:
        if offset >= size:
            raise RtpError("padding flag set but no padding count octet")
        padding = data[-1]
        if padding == 0:
            raise RtpError("padding flag set with a zero padding count")
        if padding > size - offset:
            raise RtpError(f"padding length {padding} beyond payload ({size - offset} bytes)")
    return RtpPacket(
        payload_type=second & 0x7F,
        sequence=seq,
        timestamp=ts,
        ssrc=ssrc,
        payload=bytes(data[offset : size - padding]),
        marker=bool(second & 0x80),
        csrcs=tuple(csrcs),
        extension=extension,
        padding=padding,
    )


def parse_fields(data: bytes, *, max_size: int = MAX_PACKET_SIZE) -> tuple[int, bool, int, int, int, bytes]:
    """``(payload_type, marker, sequence, timestamp, ssrc, payload)`` of one packet; RtpError if malformed.

    The receive hot path: the plain header every phone sends (V=2, no padding, extension or CSRC) is
    unpacked without building an ``RtpPacket``; anything else goes through :func:`parse`, so both accept
    and refuse exactly the same packets.
    """
    size = len(data)
    if 12 <= size <= max_size and data[0] == 0x80:
        _, second, seq, ts, ssrc = _HEADER.unpack_from(data)
        return second & 0x7F, second >= 0x80, seq, ts, ssrc, data[12:]
    packet = parse(data, max_size=max_size)
    return packet.payload_type, packet.marker, packet.sequence, packet.timestamp, packet.ssrc, packet.payload


class RtpSender:
    """Header state of one outgoing RTP stream (RFC 3550 §5.1) plus the SR counters (§6.4.1).

    The media clock (``timestamp``) advances by ``samples`` after each packet. Telephone events (RFC 4733
    §2.3) share that clock: pass ``payload_type`` and the event's start ``timestamp`` to ``next_packet``;
    the clock still advances so audio resumes at the right timestamp after the event.
    """

    def __init__(
        self,
        *,
        ssrc: int,
        payload_type: int,
        clock_rate: int = 8000,
        initial_sequence: int,
        initial_timestamp: int,
    ) -> None:
        if not 0 <= ssrc < _TS_MOD:
            raise ValueError(f"SSRC out of range: {ssrc}")
        if clock_rate <= 0:
            raise ValueError(f"clock rate must be positive: {clock_rate}")
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self.payload_type = payload_type
        self._sequence = initial_sequence % _SEQ_MOD
        self._timestamp = initial_timestamp % _TS_MOD
        self.packet_count = 0  # RFC 3550 §6.4.1 sender's packet count
        self.octet_count = 0  # payload octets only (no header, no padding)

    @property
    def payload_type(self) -> int:
        """Default payload type for ``next_packet`` (changeable, e.g. after a re-INVITE)."""
        return self._payload_type

    @payload_type.setter
    def payload_type(self, value: int) -> None:
        if not 0 <= value <= 127:
            raise ValueError(f"payload type out of range: {value}")
        self._payload_type = value

    @property
    def sequence(self) -> int:
        """Sequence number the next packet will carry."""
        return self._sequence

    @property
    def timestamp(self) -> int:
        """RTP timestamp of the next media sample (the stream's clock)."""
        return self._timestamp

    def advance(self, samples: int) -> None:
        """Advance the media clock without sending (e.g. silence suppression); sequence is unchanged."""
        self._timestamp = (self._timestamp + samples) % _TS_MOD

    def next_packet(
        self,
        payload: bytes,
        *,
        samples: int,
        marker: bool = False,
        payload_type: int | None = None,
        timestamp: int | None = None,
    ) -> bytes:
        """Serialise the next packet and advance sequence (mod 2^16) and clock by ``samples`` (mod 2^32).

        ``timestamp`` overrides the header timestamp (RFC 4733: all packets of one event carry the event's
        start time); ``payload_type`` overrides the default for this packet only.
        """
        if samples < 0:
            raise ValueError(f"samples must be >= 0: {samples}")
        if payload_type is None:
            payload_type = self._payload_type
        elif not 0 <= payload_type <= 127:
            raise ValueError(f"payload type out of range: {payload_type}")
        # Packed directly (no RtpPacket): every field is in range by construction, and this runs for
        # every packet the daemon sends.
        header = _HEADER.pack(
            0x80,
            (0x80 if marker else 0) | payload_type,
            self._sequence,
            self._timestamp if timestamp is None else timestamp % _TS_MOD,
            self.ssrc,
        )
        self._sequence = (self._sequence + 1) % _SEQ_MOD
        self._timestamp = (self._timestamp + samples) % _TS_MOD
        self.packet_count = (self.packet_count + 1) % _TS_MOD  # §6.4.1: 32-bit counters wrap
        self.octet_count = (self.octet_count + len(payload)) % _TS_MOD
        return header + payload


@dataclass(frozen=True, slots=True)
class ReceptionReport:
    """Values for one RTCP report block (RFC 3550 §6.4.1), as computed in A.3."""

    ssrc: int
    fraction_lost: int  # 8-bit fixed point, lost / expected * 256 since the previous report
    cumulative_lost: int  # clamped to 24-bit signed; negative when duplicates arrived
    extended_highest_sequence: int
    jitter: int  # RTP timestamp units


class RtpReceiverStats:
    """Per-source reception statistics: RFC 3550 A.1 (sequence validation with probation), A.3 (loss),
    A.8 (interarrival jitter). A new SSRC resets everything and starts a new probation.
    """

    MAX_DROPOUT = 3000
    MAX_MISORDER = 100
    MIN_SEQUENTIAL = 2

    def __init__(self, *, clock_rate: int = 8000) -> None:
        if clock_rate <= 0:
            raise ValueError(f"clock rate must be positive: {clock_rate}")
        self.clock_rate = clock_rate
        self.ssrc: int | None = None
        self.resets = 0  # number of SSRC changes seen
        self._start(0)

    def _start(self, seq: int) -> None:
        self._init_seq(seq)
        self.max_seq = (seq - 1) % _SEQ_MOD
        self.probation = self.MIN_SEQUENTIAL
        self._jitter = 0.0
        self._last_arrival: float | None = None
        self._last_ts = 0

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self.bad_seq = _SEQ_MOD + 1  # so seq == bad_seq is false
        self.cycles = 0
        self.received = 0
        self._received_prior = 0
        self._expected_prior = 0

    def update(self, *, ssrc: int, sequence: int, timestamp: int, arrival: float) -> bool:
        """Account one packet (arrival in seconds, any epoch). Returns False if the packet is not (yet)
        valid per A.1 (probation, or a large jump not confirmed by a following packet)."""
        if ssrc != self.ssrc:
            if self.ssrc is not None:
                self.resets += 1
            self.ssrc = ssrc
            self._start(sequence)
        self._update_jitter(timestamp, arrival)
        return self._update_seq(sequence)

    def update_packet(self, packet: RtpPacket, arrival: float) -> bool:
        return self.update(
            ssrc=packet.ssrc, sequence=packet.sequence, timestamp=packet.timestamp, arrival=arrival
        )

    def _update_seq(self, seq: int) -> bool:
        # RFC 3550 A.1 update_seq()
        udelta = (seq - self.max_seq) % _SEQ_MOD
        if self.probation:
            if seq == (self.max_seq + 1) % _SEQ_MOD:
                self.probation -= 1
                self.max_seq = seq
                if self.probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self.probation = self.MIN_SEQUENTIAL - 1
                self.max_seq = seq
            return False
        if udelta < self.MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += _SEQ_MOD  # wrapped
            self.max_seq = seq
        elif udelta <= _SEQ_MOD - self.MAX_MISORDER:
            if seq == self.bad_seq:
                # two sequential packets after a big jump: the source restarted, resync
                self._init_seq(seq)
            else:
                self.bad_seq = (seq + 1) % _SEQ_MOD
                return False
        # else: duplicate or reordered packet, counted as received (A.3: loss may go negative)
        self.received += 1
        return True

    def _update_jitter(self, timestamp: int, arrival: float) -> None:
        # RFC 3550 A.8: J += (|D(i-1,i)| - J) / 16, D = (R_i - R_j) - (S_i - S_j) in timestamp units.
        if self._last_arrival is not None:
            ts_delta = ((timestamp - self._last_ts + (1 << 31)) % _TS_MOD) - (1 << 31)
            d = abs((arrival - self._last_arrival) * self.clock_rate - ts_delta)
            self._jitter += (d - self._jitter) / 16.0
        self._last_arrival = arrival
        self._last_ts = timestamp

    @property
    def extended_highest_sequence(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        if self.probation:
            return 0
        return self.extended_highest_sequence - self.base_seq + 1

    @property
    def lost(self) -> int:
        """Cumulative packets lost (A.3); negative if duplicates outnumber losses."""
        return self.expected - self.received

    @property
    def jitter(self) -> float:
        """Interarrival jitter estimate in RTP timestamp units."""
        return self._jitter

    def report(self) -> ReceptionReport:
        """Snapshot for one RTCP report block; starts a new interval for ``fraction_lost`` (A.3)."""
        expected = self.expected
        expected_interval = expected - self._expected_prior
        self._expected_prior = expected
        received_interval = self.received - self._received_prior
        self._received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = (lost_interval << 8) // expected_interval
        return ReceptionReport(
            ssrc=self.ssrc or 0,
            fraction_lost=min(fraction, 255),
            cumulative_lost=max(-0x800000, min(0x7FFFFF, self.lost)),
            extended_highest_sequence=self.extended_highest_sequence % _TS_MOD,
            jitter=int(self._jitter) % _TS_MOD,
        )
