"""Minimal RTCP (RFC 3550 §6): Sender Report, Receiver Report, SDES CNAME and BYE in compound packets.

Pure, sans-I/O: the NTP timestamp is derived from a wall-clock value passed in by the caller.
Parsing is tolerant: unknown packet types are skipped by their length field (§6.1); anything truncated or
inconsistent raises RtcpError.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "BYE",
    "MAX_PACKET_SIZE",
    "RR",
    "SDES",
    "SR",
    "Bye",
    "ReceiverReport",
    "ReportBlock",
    "RtcpError",
    "RtcpPacket",
    "SdesChunk",
    "SenderReport",
    "SourceDescription",
    "build_compound",
    "ntp_from_unix",
    "ntp_middle32",
    "ntp_to_unix",
    "parse_compound",
]

SR, RR, SDES, BYE = 200, 201, 202, 203  # RFC 3550 §12.1
MAX_PACKET_SIZE = 1500
_NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01 (§4)
_U32 = 1 << 32
_CNAME = 1  # SDES item type (§6.5.1)
_BLOCK = struct.Struct("!IIIIII")


class RtcpError(ValueError):
    """A malformed or truncated RTCP packet."""


def ntp_from_unix(wallclock: float) -> int:
    """64-bit NTP timestamp (§4: seconds since 1900 in the high 32 bits, fraction in the low 32)."""
    seconds = int(wallclock // 1)
    fraction = int((wallclock - seconds) * _U32)
    return (((seconds + _NTP_UNIX_OFFSET) % _U32) << 32) | min(fraction, _U32 - 1)


def ntp_to_unix(ntp: int) -> float:
    return (ntp >> 32) - _NTP_UNIX_OFFSET + (ntp & 0xFFFFFFFF) / _U32


def ntp_middle32(ntp: int) -> int:
    """Middle 32 bits of an NTP timestamp, as used for LSR in report blocks (§6.4.1)."""
    return (ntp >> 16) & 0xFFFFFFFF


def _check_u32(name: str, value: int) -> None:
    if not 0 <= value < _U32:
        raise ValueError(f"{name} out of 32-bit range: {value}")


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """Reception report block (§6.4.1)."""

    ssrc: int
    fraction_lost: int = 0
    cumulative_lost: int = 0  # 24-bit signed
    highest_sequence: int = 0  # extended highest sequence number received
    jitter: int = 0
    last_sr: int = 0  # middle 32 bits of the last SR's NTP timestamp
    delay_since_last_sr: int = 0  # units of 1/65536 s

    def __post_init__(self) -> None:
        if not 0 <= self.fraction_lost <= 255:
            raise ValueError(f"fraction lost out of range: {self.fraction_lost}")
        if not -0x800000 <= self.cumulative_lost <= 0x7FFFFF:
            raise ValueError(f"cumulative lost out of 24-bit range: {self.cumulative_lost}")
        for name in ("ssrc", "highest_sequence", "jitter", "last_sr", "delay_since_last_sr"):
            _check_u32(name, getattr(self, name))

    def to_bytes(self) -> bytes:
        lost = (self.fraction_lost << 24) | (self.cumulative_lost & 0xFFFFFF)
        return _BLOCK.pack(
            self.ssrc, lost, self.highest_sequence, self.jitter, self.last_sr, self.delay_since_last_sr
        )

    @classmethod
    def _parse(cls, data: bytes, offset: int) -> ReportBlock:
        ssrc, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(data, offset)
        cumulative = lost & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        return cls(ssrc, lost >> 24, cumulative, highest, jitter, lsr, dlsr)


def _header(packet_type: int, count: int, body: bytes) -> bytes:
    # §6.4.1 common header: V=2, P=0, count (5 bits), PT, length in 32-bit words minus one
    return struct.pack("!BBH", 0x80 | count, packet_type, (len(body) + 4) // 4 - 1) + body


def _check_reports(reports: tuple[ReportBlock, ...]) -> None:
    if len(reports) > 31:
        raise ValueError(f"at most 31 report blocks per packet, got {len(reports)}")


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR (§6.4.1). ``ntp_timestamp`` is the full 64-bit value (see ``ntp_from_unix``)."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()

    def __post_init__(self) -> None:
        for name in ("ssrc", "rtp_timestamp", "packet_count", "octet_count"):
            _check_u32(name, getattr(self, name))
        if not 0 <= self.ntp_timestamp < 1 << 64:
            raise ValueError(f"NTP timestamp out of 64-bit range: {self.ntp_timestamp}")
        _check_reports(self.reports)

    def to_bytes(self) -> bytes:
        body = struct.pack(
            "!IQIII", self.ssrc, self.ntp_timestamp, self.rtp_timestamp, self.packet_count, self.octet_count
        )
        return _header(SR, len(self.reports), body + b"".join(r.to_bytes() for r in self.reports))


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR (§6.4.2)."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()

    def __post_init__(self) -> None:
        _check_u32("ssrc", self.ssrc)
        _check_reports(self.reports)

    def to_bytes(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + b"".join(r.to_bytes() for r in self.reports)
        return _header(RR, len(self.reports), body)


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """One SDES chunk; only the CNAME item is kept (other items are skipped when parsing)."""

    ssrc: int
    cname: str

    def __post_init__(self) -> None:
        _check_u32("ssrc", self.ssrc)
        if len(self.cname.encode()) > 255:
            raise ValueError("CNAME longer than 255 octets")

    def to_bytes(self) -> bytes:
        text = self.cname.encode()
        chunk = struct.pack("!IBB", self.ssrc, _CNAME, len(text)) + text
        # §6.5: item list ends with at least one null octet, padded to a 32-bit boundary
        return chunk + bytes(4 - len(chunk) % 4)


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES (§6.5)."""

    chunks: tuple[SdesChunk, ...]

    def __post_init__(self) -> None:
        if len(self.chunks) > 31:
            raise ValueError("at most 31 SDES chunks per packet")

    def to_bytes(self) -> bytes:
        return _header(SDES, len(self.chunks), b"".join(c.to_bytes() for c in self.chunks))


@dataclass(frozen=True, slots=True)
class Bye:
    """BYE (§6.6)."""

    ssrcs: tuple[int, ...]
    reason: str = ""

    def __post_init__(self) -> None:
        if len(self.ssrcs) > 31:
            raise ValueError("at most 31 SSRCs in a BYE")
        for s in self.ssrcs:
            _check_u32("ssrc", s)
        if len(self.reason.encode()) > 255:
            raise ValueError("BYE reason longer than 255 octets")

    def to_bytes(self) -> bytes:
        body = struct.pack(f"!{len(self.ssrcs)}I", *self.ssrcs)
        if self.reason:
            text = self.reason.encode()
            body += bytes((len(text),)) + text
            body += bytes(-len(body) % 4)
        return _header(BYE, len(self.ssrcs), body)


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye


def build_compound(*packets: RtcpPacket) -> bytes:
    """Concatenate packets into one compound packet (§6.1: should start with SR or RR, include SDES CNAME)."""
    return b"".join(p.to_bytes() for p in packets)


def _parse_blocks(body: bytes, offset: int, count: int, what: str) -> tuple[ReportBlock, ...]:
    if offset + 24 * count > len(body):
        raise RtcpError(f"{what}: {count} report blocks beyond packet length")
    return tuple(ReportBlock._parse(body, offset + 24 * i) for i in range(count))


def _text(raw: bytes) -> str:
    """Peer text (CNAME, BYE reason: at most 255 octets). Invalid UTF-8 becomes "?" per octet: U+FFFD
    would take 3 octets each and fail the 255-octet check when the value is built again."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("ascii", "replace").replace("\ufffd", "?")


def _parse_sdes(body: bytes, count: int) -> SourceDescription:
    chunks = []
    offset = 0
    for _ in range(count):
        if offset + 4 > len(body):
            raise RtcpError("SDES: chunk beyond packet length")
        (ssrc,) = struct.unpack_from("!I", body, offset)
        offset += 4
        cname = ""
        while True:
            if offset >= len(body):
                raise RtcpError("SDES: item list not terminated")
            item = body[offset]
            if item == 0:
                offset += 1
                offset += -offset % 4  # skip to the next 32-bit boundary
                break
            if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                raise RtcpError("SDES: item beyond packet length")
            length = body[offset + 1]
            if item == _CNAME:
                cname = _text(body[offset + 2 : offset + 2 + length])
            offset += 2 + length
        chunks.append(SdesChunk(ssrc, cname))
    return SourceDescription(tuple(chunks))


def _parse_bye(body: bytes, count: int) -> Bye:
    if 4 * count > len(body):
        raise RtcpError("BYE: SSRC count beyond packet length")
    ssrcs = struct.unpack_from(f"!{count}I", body)
    reason = ""
    offset = 4 * count
    if offset < len(body):
        length = body[offset]
        if offset + 1 + length > len(body):
            raise RtcpError("BYE: reason beyond packet length")
        reason = _text(body[offset + 1 : offset + 1 + length])
    return Bye(tuple(ssrcs), reason)


def parse_compound(data: bytes, *, max_size: int = MAX_PACKET_SIZE) -> list[RtcpPacket]:
    """Parse a (compound) RTCP packet. Unknown packet types are skipped; raises RtcpError if malformed.

    Not enforced (tolerance for RFC 5506 reduced-size RTCP): that the first packet is an SR or RR.
    """
    size = len(data)
    if size > max_size:
        raise RtcpError(f"oversized RTCP packet: {size} bytes > limit {max_size}")
    if size < 4:
        raise RtcpError(f"short RTCP packet: {size} bytes")
    packets: list[RtcpPacket] = []
    offset = 0
    while offset < size:
        if offset + 4 > size:
            raise RtcpError(f"truncated RTCP header at offset {offset}")
        first, packet_type, words = struct.unpack_from("!BBH", data, offset)
        if first >> 6 != 2:
            raise RtcpError(f"bad RTCP version {first >> 6} at offset {offset}")
        end = offset + 4 * (words + 1)
        if end > size:
            raise RtcpError(f"RTCP length {words} beyond data at offset {offset}")
        body = bytes(data[offset + 4 : end])
        if first & 0x20:  # §6.4.1 padding: last octet counts the padding octets
            pad = body[-1] if body else 0
            if pad == 0 or pad > len(body):
                raise RtcpError(f"bad RTCP padding count {pad} at offset {offset}")
            body = body[:-pad]
        count = first & 0x1F
        if packet_type == SR:
            if len(body) < 24:
                raise RtcpError("SR: shorter than the sender info")
            ssrc, ntp, rtp_ts, pkts, octets = struct.unpack_from("!IQIII", body)
            packets.append(
                SenderReport(ssrc, ntp, rtp_ts, pkts, octets, _parse_blocks(body, 24, count, "SR"))
            )
        elif packet_type == RR:
            if len(body) < 4:
                raise RtcpError("RR: missing SSRC")
            (ssrc,) = struct.unpack_from("!I", body)
            packets.append(ReceiverReport(ssrc, _parse_blocks(body, 4, count, "RR")))
        elif packet_type == SDES:
            packets.append(_parse_sdes(body, count))
        elif packet_type == BYE:
            packets.append(_parse_bye(body, count))
        # any other type (APP, RTPFB, PSFB, XR, ...): skipped by length
        offset = end
    return packets
