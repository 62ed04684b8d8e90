"""RFC 4733 telephone-events (DTMF over RTP): a receiver that reports each digit exactly once, and a sender.

Pure code: no I/O, no clock reads. The caller demultiplexes RTP by the negotiated telephone-event payload type
(any dynamic PT: 96, 101, ...) and passes header fields plus payload; time is an argument in seconds.

Payload format (RFC 4733 §2.3)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |     event     |E|R| volume    |          duration             |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
"""

from __future__ import annotations

import struct
from collections import OrderedDict, deque
from dataclasses import dataclass, field

__all__ = [
    "DIGITS",
    "DtmfDigit",
    "DtmfError",
    "DtmfReceiver",
    "DtmfReceiverStats",
    "DtmfSender",
    "build_payload",
    "digit_to_event",
    "event_to_digit",
    "parse_event",
]

# RFC 4733 §3.2: events 0-9, 10 = '*', 11 = '#', 12-15 = A-D. 16 (flash) and tones are not digits.
DIGITS = "0123456789*#ABCD"

_EVENT = struct.Struct("!BBH")
_END_BIT = 0x80
_VOLUME_MASK = 0x3F
_MAX_DURATION = 0xFFFF
_TS_MOD = 1 << 32
_TS_HALF = 1 << 31
# End packets are repeated (RFC 4733 §2.5.1.4): remember recent events per SSRC to drop late copies.
_RECENT_EVENTS = 16
# Per-SSRC state kept for the current stream and the previous one only (bounded memory).
_MAX_SSRCS = 2
# Seconds during which a packet older than the current event is a late copy, not a new event.
_STALE_HORIZON = 1.0


class DtmfError(ValueError):
    """A telephone-event payload or digit that cannot be encoded or decoded."""


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """One received DTMF digit (one RFC 4733 event)."""

    digit: str
    duration_ms: int
    volume: int  # RFC 4733 §2.3.4: power level as -dBm0 (0..63)
    ssrc: int
    started_at: float  # the `now` of the first packet received for the event


def digit_to_event(digit: str) -> int:
    """Map '0'-'9', '*', '#', 'A'-'D' (case-insensitive) to its RFC 4733 §3.2 event code."""
    if len(digit) != 1 or digit.upper() not in DIGITS:
        raise DtmfError(f"not a DTMF digit: {digit!r}")
    return DIGITS.index(digit.upper())


def event_to_digit(event: int) -> str | None:
    """The digit for event codes 0-15, None for other events (flash, tones)."""
    return DIGITS[event] if 0 <= event < len(DIGITS) else None


def build_payload(event: int, *, end: bool, volume: int, duration: int) -> bytes:
    """Encode one 4-byte event report (RFC 4733 §2.3). Duration is in RTP timestamp units."""
    if not 0 <= event <= 0xFF:
        raise DtmfError(f"event out of range: {event}")
    if not 0 <= volume <= _VOLUME_MASK:
        raise DtmfError(f"volume out of range: {volume}")
    if not 0 <= duration <= _MAX_DURATION:
        raise DtmfError(f"duration out of range: {duration}")
    return _EVENT.pack(event, (_END_BIT if end else 0) | volume, duration)


def parse_event(payload: bytes) -> tuple[int, bool, int, int]:
    """Decode one 4-byte event report into (event, end, volume, duration); the R bit is ignored (§2.3.3)."""
    if len(payload) != _EVENT.size:
        raise DtmfError(f"telephone-event payload must be 4 bytes, got {len(payload)}")
    event, flags, duration = _EVENT.unpack(payload)
    return event, bool(flags & _END_BIT), flags & _VOLUME_MASK, duration


def _ts_newer(a: int, b: int) -> bool:
    """RTP timestamp serial comparison: is `a` after `b` (modulo 2**32)?"""
    return a != b and (a - b) % _TS_MOD < _TS_HALF


@dataclass(slots=True)
class DtmfReceiverStats:
    packets: int = 0
    digits: int = 0
    malformed: int = 0  # bad length or out-of-range header fields
    ignored_events: int = 0  # packets for non-digit events (flash, tones)
    duplicates: int = 0  # packets for an event already reported (repeated end packets, late updates)
    stale: int = 0  # packets for an event older than the current one of that SSRC
    timeouts: int = 0  # digits reported without their end packet
    evicted_ssrcs: int = 0


@dataclass(slots=True)
class _Event:
    timestamp: int
    event: int
    started_at: float
    last_at: float
    duration: int
    volume: int
    reported: bool = False


@dataclass(slots=True)
class _SsrcState:
    current: _Event | None = None
    recent: deque[int] = field(default_factory=lambda: deque(maxlen=_RECENT_EVENTS))


class DtmfReceiver:
    """Turns telephone-event packets into digits, each exactly once.

    An event is identified by (SSRC, RTP timestamp) (RFC 4733 §2.5.2.1), not by the marker bit, which some
    senders (sipp's ``play_dtmf``) never set. A digit is reported on the first packet with the E bit; if all
    end packets are lost, when the next event of that SSRC starts or `end_timeout` seconds after the last
    packet of the event (drive it with `get_timer` / `handle_timer`).
    """

    def __init__(self, *, payload_type: int, clock_rate: int = 8000, end_timeout: float = 0.3) -> None:
        if not 0 <= payload_type <= 127:
            raise ValueError(f"payload type out of range: {payload_type}")
        if clock_rate <= 0:
            raise ValueError(f"clock rate must be positive: {clock_rate}")
        if end_timeout <= 0:
            raise ValueError(f"end timeout must be positive: {end_timeout}")
        self.payload_type = payload_type
        self.clock_rate = clock_rate
        self.end_timeout = end_timeout
        self.stats = DtmfReceiverStats()
        self._ssrcs: OrderedDict[int, _SsrcState] = OrderedDict()

    def receive(
        self, *, ssrc: int, sequence: int, timestamp: int, marker: bool, payload: bytes, now: float
    ) -> list[DtmfDigit]:
        """Process one telephone-event RTP packet; return the digits it completes (usually none or one)."""
        self.stats.packets += 1
        if (
            not 0 <= ssrc < _TS_MOD
            or not 0 <= sequence <= 0xFFFF
            or not 0 <= timestamp < _TS_MOD
            or not payload
            or len(payload) % _EVENT.size
        ):
            self.stats.malformed += 1
            return []
        out: list[DtmfDigit] = []
        state = self._state_for(ssrc, out)
        # RFC 4733 §2.5.1.5: several consecutive events may be packed in one payload; each one starts where
        # the previous ended, so its start timestamp is offset by the previous durations.
        ts = timestamp
        last = len(payload) - _EVENT.size
        for offset in range(0, len(payload), _EVENT.size):
            event, end, volume, duration = parse_event(payload[offset : offset + _EVENT.size])
            end = end or offset < last  # a packed event followed by another one has ended
            if event_to_digit(event) is None:
                self.stats.ignored_events += 1
            else:
                self._handle(
                    state=state,
                    ssrc=ssrc,
                    ts=ts,
                    event=event,
                    end=end,
                    volume=volume,
                    duration=duration,
                    now=now,
                    out=out,
                )
            ts = (ts + duration) % _TS_MOD
        return out

    def get_timer(self) -> float | None:
        """When `handle_timer` must next be called (absolute, seconds), or None if no event is pending."""
        deadlines = [
            st.current.last_at + self.end_timeout
            for st in self._ssrcs.values()
            if st.current is not None and not st.current.reported
        ]
        return min(deadlines, default=None)

    def handle_timer(self, now: float) -> list[DtmfDigit]:
        """Report events whose end packets never came (RFC 4733 §2.5.2.2: the receiver ends them itself)."""
        out: list[DtmfDigit] = []
        for ssrc, st in self._ssrcs.items():
            ev = st.current
            if ev is not None and not ev.reported and now >= ev.last_at + self.end_timeout:
                self.stats.timeouts += 1
                out.append(self._report(ssrc, ev))
        return out

    def _state_for(self, ssrc: int, out: list[DtmfDigit]) -> _SsrcState:
        state = self._ssrcs.get(ssrc)
        if state is not None:
            self._ssrcs.move_to_end(ssrc)
            return state
        # A new source takes over (RFC 3550 §8.2: SSRC change): an event of the old one still waiting for its
        # end is over; report it now so digits stay in order.
        for old_ssrc, old in self._ssrcs.items():
            if old.current is not None and not old.current.reported:
                self.stats.timeouts += 1
                out.append(self._report(old_ssrc, old.current))
        while len(self._ssrcs) >= _MAX_SSRCS:
            self._ssrcs.popitem(last=False)
            self.stats.evicted_ssrcs += 1
        state = self._ssrcs[ssrc] = _SsrcState()
        return state

    def _handle(
        self,
        *,
        state: _SsrcState,
        ssrc: int,
        ts: int,
        event: int,
        end: bool,
        volume: int,
        duration: int,
        now: float,
        out: list[DtmfDigit],
    ) -> None:
        cur = state.current
        # A sender that reuses the timestamp for a different digit: treat it as a new event.
        reused = cur is not None and cur.timestamp == ts and cur.reported and event != cur.event and not end
        if cur is not None and cur.timestamp == ts and not reused:
            # Same event: an update, a retransmitted end packet (§2.5.1.4), or a reordered copy.
            if cur.reported:
                self.stats.duplicates += 1
                return
            cur.duration = max(cur.duration, duration)
            cur.volume = volume
            cur.last_at = now
            if end:
                out.append(self._report(ssrc, cur))
            return
        if not reused and ts in state.recent:
            self.stats.duplicates += 1
            return
        if cur is not None and _ts_newer(cur.timestamp, ts) and now - cur.last_at <= _STALE_HORIZON:
            # A late packet of an event superseded by a newer one. (Long after, an older timestamp means the
            # sender restarted its timestamps: take it as a new event rather than ignore it forever.)
            self.stats.stale += 1
            return
        # A new event (§2.5.2.1: new timestamp). If the previous one never saw its end, it ends now.
        if cur is not None and not cur.reported:
            out.append(self._report(ssrc, cur))
        # Forget a reused timestamp so copies of the new event are not taken for duplicates of the old one.
        if reused:
            state.recent.remove(ts)
        new = _Event(timestamp=ts, event=event, started_at=now, last_at=now, duration=duration, volume=volume)
        state.current = new
        if end:
            out.append(self._report(ssrc, new))

    def _report(self, ssrc: int, ev: _Event) -> DtmfDigit:
        ev.reported = True
        state = self._ssrcs.get(ssrc)
        if state is not None and ev.timestamp not in state.recent:
            state.recent.append(ev.timestamp)
        self.stats.digits += 1
        return DtmfDigit(
            digit=DIGITS[ev.event],
            duration_ms=ev.duration * 1000 // self.clock_rate,
            volume=ev.volume,
            ssrc=ssrc,
            started_at=ev.started_at,
        )


class DtmfSender:
    """Builds the telephone-event payloads for one digit (RFC 4733 §2.5.1).

    The caller sends one payload per `packet_ms`, all with the same RTP timestamp (the event start, §2.5.1.2),
    consecutive sequence numbers, and the marker bit as returned (set on the first packet only, §2.5.1.1).
    """

    END_PACKETS = 3  # §2.5.1.4: the final packet is sent three times

    def __init__(self, *, clock_rate: int = 8000) -> None:
        if clock_rate <= 0:
            raise ValueError(f"clock rate must be positive: {clock_rate}")
        self.clock_rate = clock_rate

    def packets_for(
        self, digit: str, *, duration_ms: int = 160, volume: int = 10, packet_ms: int = 20
    ) -> list[tuple[bool, bytes]]:
        """(marker, payload) for each packet of one event: growing-duration updates, then 3 end packets."""
        event = digit_to_event(digit)
        if packet_ms <= 0:
            raise DtmfError(f"packet time must be positive: {packet_ms}")
        if duration_ms < packet_ms:
            raise DtmfError(f"duration {duration_ms} ms shorter than one packet ({packet_ms} ms)")
        total = duration_ms * self.clock_rate // 1000
        step = packet_ms * self.clock_rate // 1000
        if total > _MAX_DURATION:
            # Long-duration events (§2.5.1.3, segments) are not needed for DTMF.
            raise DtmfError(f"duration {duration_ms} ms does not fit one event report")
        if step <= 0:
            raise DtmfError(f"packet time too short for clock rate: {packet_ms}")
        packets: list[tuple[bool, bytes]] = []
        elapsed = step
        while elapsed < total:
            packets.append((not packets, build_payload(event, end=False, volume=volume, duration=elapsed)))
            elapsed += step
        final = build_payload(event, end=True, volume=volume, duration=total)
        for _ in range(self.END_PACKETS):
            packets.append((not packets, final))
        return packets

    def duration_units(self, duration_ms: int) -> int:
        """The event's length in RTP timestamp units (to advance the audio timestamp after the event)."""
        return duration_ms * self.clock_rate // 1000
