"""The asyncio edge of one call leg's RTP stream: a UDP socket, a paced sender and a guarded receiver.

Builds on the pure cores (``rtp``, ``g711``, ``dtmf``, ``jitter``); per packet the loop does one parse and a
table lookup. Sending is paced on absolute deadlines ``t0 + n * ptime`` with ``loop.call_at`` (never
accumulated sleeps, ARCHITECTURE invariant 2); when the loop is late by more than a few frames the missed
ticks are skipped, not burst out. Receiving counts and drops garbage, unknown payload types, packets from
unexpected addresses and floods (issue 3, item 9); with ``symmetric`` the session latches to the address
the peer's RTP really comes from (comedia behaviour, for phones behind NAT).
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ccdaemon.media.dtmf import DtmfDigit, DtmfReceiver, DtmfSender
from ccdaemon.media.g711 import Codec, codec_by_name
from ccdaemon.media.jitter import JitterBuffer
from ccdaemon.media.rtp import RtpError, RtpPacket, RtpReceiverStats, RtpSender
from ccdaemon.sip.offer_answer import NegotiatedMedia

__all__ = ["Pacer", "RtpSession", "RtpSessionStats"]

_log = logging.getLogger(__name__)

Address = tuple[str, int]
FrameSource = Callable[[], bytes | None]

# Late by more than this many frames: skip to the current slot instead of sending the backlog at once.
MAX_CATCH_UP_FRAMES = 3
# Flood guard: more than this many times the expected packet rate within one second is dropped.
FLOOD_FACTOR = 4
# Audio ticks between two DTMF digits (RFC 4733 §2.5.1: distinct events; a gap helps simple receivers).
_DTMF_GAP_TICKS = 2
_UNSPECIFIED = frozenset({"0.0.0.0", "::"})


@dataclass(slots=True)
class RtpSessionStats:
    packets_sent: int = 0
    bytes_sent: int = 0
    packets_received: int = 0  # valid RTP accepted (audio or telephone-event)
    bytes_received: int = 0
    malformed: int = 0  # RtpPacket.parse refused it (short, bad version, oversized, ...)
    unknown_pt: int = 0
    wrong_source: int = 0  # not from the negotiated / latched address
    flood_drops: int = 0
    late_ticks_skipped: int = 0
    dtmf_digits: int = 0
    latches: int = 0  # symmetric RTP: times the send address moved to the observed source
    last_source: Address | None = None


class Pacer:
    """Absolute-deadline tick arithmetic: tick ``n`` is due at ``t0 + n * period`` (pure, no clock)."""

    def __init__(self, t0: float, period: float, *, max_catch_up: int = MAX_CATCH_UP_FRAMES) -> None:
        if period <= 0:
            raise ValueError(f"period must be positive: {period}")
        self.t0 = t0
        self.period = period
        self.max_catch_up = max_catch_up
        self.n = 0  # index of the tick due next

    def deadline(self, n: int | None = None) -> float:
        """Computed from t0 each time, so rounding never accumulates."""
        return self.t0 + (self.n if n is None else n) * self.period

    def advance(self, now: float) -> int:
        """After tick ``n`` ran: move to the next tick; if ``now`` is more than ``max_catch_up`` periods past
        it, jump to the slot ``now`` falls in. Returns the number of skipped ticks."""
        self.n += 1
        behind = now - self.deadline()
        if behind <= self.max_catch_up * self.period:
            return 0
        current = math.floor((now - self.t0) / self.period)
        skipped = current - self.n
        self.n = current
        return skipped

    def rebase(self, t0: float, period: float) -> None:
        self.t0, self.period, self.n = t0, period, 0


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, session: RtpSession) -> None:
        self._session = session

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._session._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and the like (peer not listening yet): not fatal for RTP.
        _log.debug("RTP socket error: %s", exc)


class RtpSession:
    """One call leg's RTP (RFC 3550) over an already bound, non-blocking UDP socket.

    ``play(source)`` attaches a PCM16 frame source (e.g. ``Player.next_frame``); each tick pulls one frame,
    encodes it with the negotiated G.711 codec and sends it. ``pull_frame(now)`` gives the next received,
    decoded frame from the jitter buffer (``now`` on the loop clock, ``loop.time()``).
    """

    def __init__(
        self,
        sock: socket.socket,
        media: NegotiatedMedia,
        *,
        ssrc: int,
        symmetric: bool = True,
        on_dtmf: Callable[[DtmfDigit], None] | None = None,
        max_packet: int = 1500,
        initial_sequence: int = 0,
        initial_timestamp: int = 0,
    ) -> None:
        self._sock = sock
        self.symmetric = symmetric
        self.on_dtmf = on_dtmf
        self._max_packet = max_packet
        self.stats = RtpSessionStats()
        self._codec = self._codec_for(media)
        self._media = media
        self._apply_timing(media)
        self._sender = RtpSender(
            ssrc=ssrc,
            payload_type=media.codec.payload_type,
            clock_rate=self._codec.clock_rate,
            initial_sequence=initial_sequence,
            initial_timestamp=initial_timestamp,
        )
        self._dtmf_sender = DtmfSender(clock_rate=self._codec.clock_rate)
        self._dtmf_rx = DtmfReceiver(
            payload_type=media.dtmf_payload_type or 101, clock_rate=self._codec.clock_rate
        )
        self.rx_stats = RtpReceiverStats(clock_rate=self._codec.clock_rate)
        self._jitter = self._new_jitter()
        self._remote: Address = (media.remote_address, media.remote_port)
        self._latched = False
        self._source: FrameSource | None = None
        self._silent = True  # the next packet starts a talkspurt: marker bit (RFC 3551 §4.1)
        self._dtmf_queue: deque[str] = deque()
        self._dtmf_packets: deque[tuple[bool, bytes]] = deque()
        self._dtmf_ts = 0
        self._dtmf_gap = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._pacer: Pacer | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self._dtmf_timer: asyncio.TimerHandle | None = None
        self._stopped = False
        self._flood_window = -math.inf
        self._flood_count = 0

    # --- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Wrap the socket in a datagram transport and start the sender's clock (tick 0 = now)."""
        if self._stopped or self._sock.fileno() < 0:
            return  # the call ended before its media could start
        loop = asyncio.get_running_loop()
        self._loop = loop
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=self._sock)
        if self._stopped:  # closed while the endpoint was being created
            transport.close()
            return
        self._transport = transport
        self._pacer = Pacer(loop.time(), self._period)
        self._schedule()

    def close(self) -> None:
        self._stopped = True
        for handle in (self._tick_handle, self._dtmf_timer):
            if handle is not None:
                handle.cancel()
        self._tick_handle = self._dtmf_timer = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self._source = None

    @property
    def closed(self) -> bool:
        return self._transport is None

    @property
    def local_address(self) -> Address:
        host, port = self._sock.getsockname()[:2]
        return (str(host), int(port))

    @property
    def remote(self) -> Address:
        """Where we send: the negotiated address, or the latched source in symmetric mode."""
        return self._remote

    @property
    def media(self) -> NegotiatedMedia:
        return self._media

    @property
    def pacer(self) -> Pacer | None:
        return self._pacer

    def update(self, media: NegotiatedMedia) -> None:
        """Apply a re-INVITE's outcome; sequence numbers and the RTP clock continue (RFC 3550 §5.1)."""
        codec = self._codec_for(media)
        if (media.remote_address, media.remote_port) != (self._media.remote_address, self._media.remote_port):
            self._remote = (media.remote_address, media.remote_port)
            self._latched = False  # the peer moved: latch again to its new source
        if media.codec.payload_type != self._media.codec.payload_type or codec is not self._codec:
            self._jitter = self._new_jitter()  # buffered frames are in the old encoding
        self._codec = codec
        self._sender.payload_type = media.codec.payload_type
        if media.dtmf_payload_type is not None:
            self._dtmf_rx.payload_type = media.dtmf_payload_type
        old_period = self._period
        self._media = media
        self._apply_timing(media)
        if self._pacer is not None and self._period != old_period:
            self._pacer.rebase(self._pacer.deadline(), self._period)

    # --- send path ----------------------------------------------------------------------------------

    def play(self, source: FrameSource | None) -> None:
        """Attach a frame source (PCM16, one ``ptime`` per call; None = nothing this tick), or detach."""
        self._source = source
        self._wake()

    def send_dtmf(self, digits: str) -> None:
        """Queue digits as RFC 4733 events, sent in place of audio on the following ticks."""
        if self._media.dtmf_payload_type is None:
            raise ValueError("no telephone-event payload type negotiated; use SIP INFO")
        for digit in digits:
            self._dtmf_sender.packets_for(digit)  # validates before anything is queued
        self._dtmf_queue.extend(digits)
        self._wake()

    def _schedule(self) -> None:
        assert self._loop is not None and self._pacer is not None
        self._tick_handle = self._loop.call_at(self._pacer.deadline(), self._tick)

    def _tick(self) -> None:
        pacer, loop = self._pacer, self._loop
        if pacer is None or loop is None or self._transport is None:
            return
        self._send_one()
        if self._source is None and not (self._dtmf_queue or self._dtmf_packets or self._dtmf_gap):
            # Nothing to send: stop ticking (a quiet leg costs the loop nothing) until _wake().
            self._tick_handle = None
            pacer.n += 1
            return
        skipped = pacer.advance(loop.time())
        if skipped:
            # The RTP clock follows wall time over the gap (like loss to the receiver); new talkspurt.
            self.stats.late_ticks_skipped += skipped
            self._sender.advance(skipped * self._samples)
            self._silent = True
        self._schedule()

    def _wake(self) -> None:
        """Resume ticking on the same deadline grid; the RTP clock catches up over the idle gap."""
        pacer, loop = self._pacer, self._loop
        if self._tick_handle is not None or pacer is None or loop is None or self._transport is None:
            return
        current = math.floor((loop.time() - pacer.t0) / pacer.period)
        idle_ticks = current + 1 - pacer.n
        if idle_ticks > 0:
            self._sender.advance(idle_ticks * self._samples)  # as if those ticks had sent nothing
            pacer.n = current + 1
        self._silent = True
        self._schedule()

    def _send_one(self) -> None:
        sender, samples = self._sender, self._samples
        media = self._media
        if not media.may_send or self._remote[1] == 0 or self._remote[0] in _UNSPECIFIED:
            sender.advance(samples)  # hold (RFC 3264 §8.4): the clock runs on, nothing is sent
            self._silent = True
            return
        if self._dtmf_packets or (self._dtmf_queue and not self._dtmf_gap):
            self._send_dtmf_packet()
            return
        if self._dtmf_gap:
            self._dtmf_gap -= 1
        pcm = self._source() if self._source is not None else None
        if pcm is None:
            sender.advance(samples)
            self._silent = True
            return
        want = 2 * samples
        if len(pcm) != want:
            pcm = pcm[:want].ljust(want, b"\x00")
        self._send(sender.next_packet(self._codec.encode(pcm), samples=samples, marker=self._silent))
        self._silent = False

    def _send_dtmf_packet(self) -> None:
        sender = self._sender
        if not self._dtmf_packets:
            digit = self._dtmf_queue.popleft()
            self._dtmf_packets.extend(self._dtmf_sender.packets_for(digit, packet_ms=self._media.ptime))
            self._dtmf_ts = sender.timestamp  # RFC 4733 §2.5.1.2: all packets carry the event start
        marker, payload = self._dtmf_packets.popleft()
        pt = self._media.dtmf_payload_type
        assert pt is not None
        data = sender.next_packet(
            payload, samples=self._samples, marker=marker, payload_type=pt, timestamp=self._dtmf_ts
        )
        self._send(data)
        if not self._dtmf_packets:
            self._dtmf_gap = _DTMF_GAP_TICKS
            self._silent = True  # audio after the event starts a new talkspurt

    def _send(self, data: bytes) -> None:
        assert self._transport is not None
        self._transport.sendto(data, self._remote)
        self.stats.packets_sent += 1
        self.stats.bytes_sent += len(data)

    # --- receive path -------------------------------------------------------------------------------

    def pull_frame(self, now: float) -> bytes | None:
        """The next received frame as PCM16 (one ptime), or None for a gap (the caller fills it)."""
        frame = self._jitter.pop(now)
        if frame is None:
            return None
        pcm = self._codec.decode(frame.payload)
        want = 2 * self._samples
        return pcm if len(pcm) == want else pcm[:want].ljust(want, b"\x00")

    def _on_datagram(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        st = self.stats
        src = (str(addr[0]), int(addr[1]))
        # 1. Known peer address: anything else is dropped before it costs a parse or flood budget.
        if (self._latched or not self.symmetric) and src != self._remote:
            st.wrong_source += 1
            return
        loop = self._loop
        assert loop is not None
        now = loop.time()
        # 2. Flood guard: fixed one-second windows.
        if now - self._flood_window >= 1.0:
            self._flood_window = now
            self._flood_count = 0
        self._flood_count += 1
        if self._flood_count > self._flood_limit:
            st.flood_drops += 1
            return
        # 3. Parse (RFC 3550 §5.1); never raises out of here.
        try:
            packet = RtpPacket.parse(data, max_size=self._max_packet)
        except RtpError:
            st.malformed += 1
            return
        pt = packet.payload_type
        is_audio = pt == self._media.codec.payload_type
        if not is_audio and pt != self._media.dtmf_payload_type:
            st.unknown_pt += 1
            return
        # 4. Symmetric RTP: the first valid packet decides where we send from now on.
        if not self._latched and self.symmetric:
            self._latched = True
            if src != self._remote:
                self._remote = src
                st.latches += 1
        st.packets_received += 1
        st.bytes_received += len(data)
        st.last_source = src
        if is_audio:
            self.rx_stats.update_packet(packet, now)
            self._jitter.push(
                ssrc=packet.ssrc,
                sequence=packet.sequence,
                timestamp=packet.timestamp,
                payload=packet.payload,
                now=now,
            )
            return
        digits = self._dtmf_rx.receive(
            ssrc=packet.ssrc,
            sequence=packet.sequence,
            timestamp=packet.timestamp,
            marker=packet.marker,
            payload=packet.payload,
            now=now,
        )
        self._deliver(digits)
        self._arm_dtmf_timer()

    def _arm_dtmf_timer(self) -> None:
        if self._dtmf_timer is not None:
            self._dtmf_timer.cancel()
            self._dtmf_timer = None
        when = self._dtmf_rx.get_timer()
        if when is not None and self._loop is not None:
            self._dtmf_timer = self._loop.call_at(when, self._on_dtmf_timer)

    def _on_dtmf_timer(self) -> None:
        self._dtmf_timer = None
        if self._loop is None or self._transport is None:
            return
        self._deliver(self._dtmf_rx.handle_timer(self._loop.time()))
        self._arm_dtmf_timer()

    def _deliver(self, digits: list[DtmfDigit]) -> None:
        for digit in digits:
            self.stats.dtmf_digits += 1
            if self.on_dtmf is None:
                continue
            try:
                self.on_dtmf(digit)
            except Exception:  # a faulty consumer must not stop the media stream (invariant 4)
                _log.exception("on_dtmf callback failed")

    # --- helpers ------------------------------------------------------------------------------------

    @staticmethod
    def _codec_for(media: NegotiatedMedia) -> Codec:
        try:
            return codec_by_name(media.codec.encoding)
        except KeyError:
            raise ValueError(f"unsupported codec for RTP sessions: {media.codec.encoding}") from None

    def _apply_timing(self, media: NegotiatedMedia) -> None:
        if media.ptime <= 0:
            raise ValueError(f"ptime must be positive: {media.ptime}")
        self._period = media.ptime / 1000
        self._samples = self._codec.clock_rate * media.ptime // 1000
        self._flood_limit = FLOOD_FACTOR * math.ceil(1000 / media.ptime)

    def _new_jitter(self) -> JitterBuffer:
        return JitterBuffer(clock_rate=self._codec.clock_rate, frame_samples=self._samples)
