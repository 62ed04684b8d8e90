"""The asyncio edge of one call leg's RTP stream: a UDP socket, a paced sender and a guarded receiver.

Builds on the pure cores (``rtp``, ``g711``, ``dtmf``, ``jitter``). Everything happens in the leg's 20 ms
tick, run by the shared :class:`~ccdaemon.media.ticker.TickScheduler` on absolute deadlines
``t0 + n * ptime`` (never accumulated sleeps, ARCHITECTURE invariant 2; when the loop is late by more
than a few frames the missed ticks are skipped, not burst out): first the socket is drained with
non-blocking reads, then one packet is sent. The socket is deliberately not registered with the event
loop: a packet-per-20-ms stream would cost an epoll wake-up, a callback and a second, failing read per
packet; polling it once per tick costs one read per packet, and the kernel's receive timestamp
(``SO_TIMESTAMPNS``) keeps the arrival times exact for the RFC 3550 jitter statistics. (Measured with
``benchmarks/media_engine.py``: one third less CPU per call than datagram transports.)

Receiving counts and drops garbage, unknown payload types, packets from unexpected addresses and floods
(issue 3, item 9; a flood costs at most ``MAX_READS_PER_TICK`` reads per tick, the kernel drops the
rest); with ``symmetric`` the session latches to the address the peer's RTP really comes from (comedia
behaviour, for phones behind NAT).
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import struct
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ccdaemon.media.dtmf import DtmfDigit, DtmfReceiver, DtmfSender
from ccdaemon.media.g711 import Codec, codec_by_name
from ccdaemon.media.jitter import JitterBuffer
from ccdaemon.media.rtp import RtpError, RtpReceiverStats, RtpSender, parse_fields
from ccdaemon.media.ticker import TickScheduler
from ccdaemon.sip.offer_answer import NegotiatedMedia

__all__ = ["Pacer", "RtpSession", "RtpSessionStats"]

_log = logging.getLogger(__name__)

Address = tuple[str, int]
FrameSource = Callable[[], bytes | None]

# Late by more than this many frames: skip to the current slot instead of sending the backlog at once.
MAX_CATCH_UP_FRAMES = 3
# Flood guard: more than this many times the expected packet rate within one second is dropped.
FLOOD_FACTOR = 4
# Reads per tick at most: a 50 packet/s stream needs one; a flood must not monopolise the loop.
MAX_READS_PER_TICK = 16
# Linux SO_TIMESTAMPNS (asm-generic value; the socket module does not export it): arrival time in the
# ancillary data of recvmsg, as a struct timespec of CLOCK_REALTIME.
_SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("@qq")
_ANCILLARY_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)
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
    send_drops: int = 0  # the socket's send buffer was full (or the send failed): packet not sent
    late_ticks_skipped: int = 0
    dtmf_digits: int = 0
    latches: int = 0  # symmetric RTP: times the send address moved to the observed source
    last_source: tuple[str | int, ...] | None = None  # as the socket reported it


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
        self._active = False  # started and not closed
        self._kernel_timestamps = False
        self._pacer: Pacer | None = None
        self._ticker: TickScheduler | None = None
        self._tick_pending = False  # at most one tick is ever scheduled
        self._dtmf_timer: asyncio.TimerHandle | None = None
        self._stopped = False
        self._flood_window = -math.inf
        self._flood_count = 0

    # --- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the leg's tick (tick 0 = the next millisecond of the scheduler's grid)."""
        if self._stopped or self._sock.fileno() < 0:
            return  # the call ended before its media could start
        loop = asyncio.get_running_loop()
        self._loop = loop
        if sys.platform == "linux":
            try:
                self._sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
                self._kernel_timestamps = True
            except OSError:  # an exotic kernel: arrival = the tick's time (jitter figures coarser)
                _log.debug("SO_TIMESTAMPNS unavailable", exc_info=True)
        self._sock.setblocking(False)
        self._active = True
        ticker = TickScheduler.for_loop(loop)
        self._ticker = ticker
        # Tick 0 on the scheduler's grid, so this leg's deadlines share timers with the other legs'.
        self._pacer = Pacer(ticker.align(loop.time()), self._period)
        self._schedule()

    def close(self) -> None:
        """Stop the leg and close its socket (a pending tick returns at once)."""
        self._stopped = True
        self._active = False
        if self._dtmf_timer is not None:
            self._dtmf_timer.cancel()
            self._dtmf_timer = None
        self._sock.close()
        self._source = None

    @property
    def closed(self) -> bool:
        return not self._active

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

    @property
    def ssrc(self) -> int:
        return self._sender.ssrc

    def rtp_timestamp_at(self, now: float) -> int:
        """Our RTP clock at loop time ``now`` (an RTCP SR's RTP timestamp, RFC 3550 §6.4.1): the sender's
        timestamp belongs to the next tick's deadline, and the clock runs at the codec's rate."""
        pacer = self._pacer
        ts = self._sender.timestamp
        if pacer is None:
            return ts
        return (ts + round((now - pacer.deadline()) * self._codec.clock_rate)) % (1 << 32)

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

    def send_dtmf(self, digits: str) -> None:
        """Queue digits as RFC 4733 events, sent in place of audio on the following ticks."""
        if self._media.dtmf_payload_type is None:
            raise ValueError("no telephone-event payload type negotiated; use SIP INFO")
        for digit in digits:
            self._dtmf_sender.packets_for(digit)  # validates before anything is queued
        self._dtmf_queue.extend(digits)

    def _schedule(self) -> None:
        assert self._ticker is not None and self._pacer is not None
        self._tick_pending = True
        self._ticker.call_at(self._pacer.deadline(), self._tick)

    def _tick(self) -> None:
        self._tick_pending = False
        pacer, loop = self._pacer, self._loop
        if pacer is None or loop is None or not self._active:
            return
        now = loop.time()
        self._receive(now)
        self._send_one()
        skipped = pacer.advance(loop.time())
        if skipped:
            # The RTP clock follows wall time over the gap (like loss to the receiver); new talkspurt.
            self.stats.late_ticks_skipped += skipped
            self._sender.advance(skipped * self._samples)
            self._silent = True
        self._schedule()

    def _send_one(self) -> None:
        sender, samples = self._sender, self._samples
        if not self._may_send or self._remote[1] == 0 or self._remote[0] in _UNSPECIFIED:
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
        try:
            self._sock.sendto(data, self._remote)
        except OSError as exc:  # full send buffer (BlockingIOError), unreachable network, ...: RTP moves on
            self.stats.send_drops += 1
            if not isinstance(exc, BlockingIOError):
                _log.debug("RTP send to %s failed: %s", self._remote, exc)
            return
        self.stats.packets_sent += 1
        self.stats.bytes_sent += len(data)

    # --- receive path -------------------------------------------------------------------------------

    def pull_frame(self, now: float | None = None) -> bytes | None:
        """The next received frame as PCM16 (one ptime), or None for a gap (the caller fills it).

        ``now`` defaults to the loop's clock (None before start). Taking it from the session's own loop
        matters: ``asyncio.get_running_loop()`` costs a getpid() system call on Python 3.11, and this
        runs for every frame a bridge forwards."""
        if now is None:
            if self._loop is None:
                return None
            now = self._loop.time()
        frame = self._jitter.pop(now)
        if frame is None:
            return None
        pcm = self._codec.decode(frame.payload)
        want = 2 * self._samples
        return pcm if len(pcm) == want else pcm[:want].ljust(want, b"\x00")

    def _receive(self, now: float) -> None:
        """Drain the socket: at most MAX_READS_PER_TICK datagrams, each handled at once."""
        sock = self._sock
        limit = self._max_packet + 1  # one byte more, so an oversized datagram is seen as such
        wall_offset = time.time() - now if self._kernel_timestamps else 0.0
        for _ in range(MAX_READS_PER_TICK):
            try:
                if self._kernel_timestamps:
                    data, ancillary, _flags, addr = sock.recvmsg(limit, _ANCILLARY_SPACE)
                    arrival = now
                    for level, kind, value in ancillary:
                        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                            sec, nsec = _TIMESPEC.unpack_from(value)
                            arrival = sec + nsec * 1e-9 - wall_offset
                else:
                    data, addr = sock.recvfrom(limit)
                    arrival = now
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. an ICMP error queued on the socket: RTP goes on
                _log.debug("RTP receive error: %s", exc)
                return
            self._on_datagram(data, addr, now, arrival)
            if self._kernel_timestamps and now - arrival < self._period:
                # It arrived within the last frame period, so no backlog: a packet behind it is read
                # next tick. Saves the failing read (~1.7 µs) that would end the loop, per leg per tick.
                return

    def _on_datagram(self, data: bytes, addr: tuple[str | int, ...], now: float, arrival: float) -> None:
        # The receive hot path (one call per packet): keep it flat.
        st = self.stats
        src = addr if len(addr) == 2 else addr[:2]  # IPv6 adds flow info and scope id
        # 1. Known peer address: anything else is dropped before it costs a parse or flood budget.
        if (self._latched or not self.symmetric) and src != self._remote:
            st.wrong_source += 1
            return
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
            pt, marker, sequence, timestamp, ssrc, payload = parse_fields(data, max_size=self._max_packet)
        except RtpError:
            st.malformed += 1
            return
        media = self._media
        is_audio = pt == media.codec.payload_type
        if not is_audio and pt != media.dtmf_payload_type:
            st.unknown_pt += 1
            return
        # 4. Symmetric RTP: the first valid packet decides where we send from now on.
        if not self._latched and self.symmetric:
            self._latched = True
            if src != self._remote:
                self._remote = (str(src[0]), int(src[1]))
                st.latches += 1
        st.packets_received += 1
        st.bytes_received += len(data)
        st.last_source = src
        if is_audio:
            self.rx_stats.update(ssrc=ssrc, sequence=sequence, timestamp=timestamp, arrival=arrival)
            self._jitter.push(ssrc=ssrc, sequence=sequence, timestamp=timestamp, payload=payload, now=now)
            return
        digits = self._dtmf_rx.receive(
            ssrc=ssrc, sequence=sequence, timestamp=timestamp, marker=marker, payload=payload, now=now
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
        if self._loop is None or not self._active:
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
        self._may_send = media.may_send
        self._samples = self._codec.clock_rate * media.ptime // 1000
        self._flood_limit = FLOOD_FACTOR * math.ceil(1000 / media.ptime)

    def _new_jitter(self) -> JitterBuffer:
        return JitterBuffer(clock_rate=self._codec.clock_rate, frame_samples=self._samples)
