"""The asyncio edge of one call leg's RTCP: the reserved odd port, one ``loop.call_at`` per report.

All decisions are in :class:`~ccdaemon.media.rtcp_timing.RtcpReporter`; this module owns the socket and
the timer and reads the leg's RTP counters through :class:`RtpSource`. Reports go to the RTP peer's port + 1
(RFC 3550 §11); with symmetric RTP they latch to where the peer's first valid report came from, as the RTP
session does for RTP. Receiving drops and counts what comes from elsewhere, floods and anything malformed
(invariant 4): nothing from the network raises out of here.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from .rtcp import MAX_PACKET_SIZE, RtcpError
from .rtcp_timing import (
    DEFAULT_SESSION_BANDWIDTH,
    MIN_INTERVAL,
    PeerReception,
    PeerSenderReport,
    RtcpReporter,
    RtcpStats,
    SenderSnapshot,
)
from .rtp import ReceptionReport, RtpReceiverStats

if TYPE_CHECKING:
    pass

__all__ = ["RtcpSession", "RtpCounters", "RtpSource", "process_cname"]

_log = logging.getLogger(__name__)

Address = tuple[str, int]

RTP_HEADER_SIZE = 12  # we never send CSRCs or header extensions
# A peer reports every few seconds; more than this many datagrams in one second is a flood.
FLOOD_LIMIT = 20
_UNSPECIFIED = frozenset({"0.0.0.0", "::"})
_U32 = 1 << 32
_PROCESS_TAG = secrets.token_hex(4)


def process_cname(host: str) -> str:
    """A CNAME stable for this process and unique across daemons on one host (RFC 3550 §6.5.1)."""
    return f"ccdaemon-{_PROCESS_TAG}@{host}"


class RtpCounters(Protocol):
    @property
    def packets_sent(self) -> int: ...

    @property
    def bytes_sent(self) -> int:
        """Whole RTP packets (header included)."""
        ...


class RtpSource(Protocol):
    """What the RTCP session reads from the leg's RTP session."""

    @property
    def ssrc(self) -> int: ...

    @property
    def stats(self) -> RtpCounters: ...

    @property
    def rx_stats(self) -> RtpReceiverStats: ...

    @property
    def remote(self) -> Address:
        """Where RTP goes: the negotiated address, or the latched source."""
        ...

    @property
    def symmetric(self) -> bool: ...

    def rtp_timestamp_at(self, now: float) -> int:
        """Our RTP clock at loop time ``now`` (for the SR's RTP timestamp)."""
        ...


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, session: RtcpSession) -> None:
        self._session = session

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._session._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable (the peer has no RTCP socket) and the like: count, carry on.
        self._session.stats.send_errors += 1
        _log.debug("RTCP socket error: %s", exc)


class RtcpSession:
    """One call leg's RTCP over an already bound, non-blocking UDP socket (the RTP port + 1)."""

    def __init__(
        self,
        sock: socket.socket,
        rtp: RtpSource,
        *,
        cname: str,
        session_bandwidth: float = DEFAULT_SESSION_BANDWIDTH,
        min_interval: float = MIN_INTERVAL,
        max_packet: int = MAX_PACKET_SIZE,
        rand: Callable[[], float] = random.random,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        self._sock = sock
        self._rtp = rtp
        self._max_packet = max_packet
        self._rand = rand
        self._wallclock = wallclock
        self.reporter = RtcpReporter(
            ssrc=rtp.ssrc,
            cname=cname,
            clock_rate=rtp.rx_stats.clock_rate,
            session_bandwidth=session_bandwidth,
            min_interval=min_interval,
        )
        self._latched: Address | None = None
        self._latched_for: Address | None = None  # the RTP destination when we latched
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._stopped = False
        self._flood_window = float("-inf")
        self._flood_count = 0

    # --- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Wrap the socket in a datagram transport and schedule the first report."""
        if self._stopped or self._sock.fileno() < 0:
            return  # the call ended before its media could start
        loop = asyncio.get_running_loop()
        self._loop = loop
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=self._sock)
        if self._stopped:
            transport.close()
            return
        self._transport = transport
        self.reporter.start(now=loop.time(), random_value=self._rand())
        self._arm()

    def close(self, reason: str = "") -> None:
        """Send the final report with a BYE (RFC 3550 §6.6) and close the socket's transport."""
        if self._stopped:
            return
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        transport, loop = self._transport, self._loop
        if transport is None or loop is None:
            return
        now = loop.time()
        data = self.reporter.close(
            now=now,
            wallclock=self._wallclock(),
            sender=self._sender(now),
            reception=self._reception(),
            reason=reason,
        )
        dest = self.remote
        if data is not None and dest is not None:
            transport.sendto(data, dest)  # UDP: handed to the kernel at once, unless its buffer is full
        # abort, not close: nothing may stay registered on a descriptor the port reservation closes next
        transport.abort()
        self._transport = None

    @property
    def closed(self) -> bool:
        return self._transport is None

    @property
    def stats(self) -> RtcpStats:
        return self.reporter.stats

    @property
    def peer_reception(self) -> PeerReception | None:
        """The peer's last report on our stream (loss, jitter, round trip)."""
        return self.reporter.peer_reception

    @property
    def peer_sr(self) -> PeerSenderReport | None:
        return self.reporter.peer_sr

    @property
    def local_address(self) -> Address:
        host, port = self._sock.getsockname()[:2]
        return (str(host), int(port))

    @property
    def remote(self) -> Address | None:
        """Where reports go: the latched source, else the RTP destination's port + 1; None while the peer
        has no usable address (held with 0.0.0.0, or port 0)."""
        latched = self._current_latch()
        if latched is not None:
            return latched
        return self._default_remote()

    def _default_remote(self) -> Address | None:
        host, port = self._rtp.remote
        if port == 0 or host in _UNSPECIFIED:
            return None
        return (host, port + 1)

    def _current_latch(self) -> Address | None:
        if self._latched is not None and self._latched_for != self._rtp.remote:
            self._latched = self._latched_for = None  # the RTP peer moved: latch again
        return self._latched

    # --- sending ------------------------------------------------------------------------------------

    def _arm(self) -> None:
        when = self.reporter.get_timer()
        if when is None or self._loop is None:
            return
        self._timer_at = when
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        loop, transport = self._loop, self._transport
        if loop is None or transport is None:
            return
        now = max(self._timer_at, loop.time())  # an early wake-up must not move the core backwards
        reporter = self.reporter
        if reporter.handle_timer(now=now, random_value=self._rand()):
            dest = self.remote
            if dest is None:
                reporter.postpone(now=now, random_value=self._rand())
            else:
                data = reporter.build_report(
                    now=now,
                    wallclock=self._wallclock(),
                    sender=self._sender(now),
                    reception=self._reception(),
                    random_value=self._rand(),
                )
                transport.sendto(data, dest)
        self._arm()

    def _sender(self, now: float) -> SenderSnapshot:
        stats = self._rtp.stats
        packets = stats.packets_sent
        return SenderSnapshot(
            packet_count=packets,
            octet_count=max(stats.bytes_sent - RTP_HEADER_SIZE * packets, 0),
            rtp_timestamp=self._rtp.rtp_timestamp_at(now),
        )

    def _reception(self) -> ReceptionReport | None:
        rx = self._rtp.rx_stats
        if rx.ssrc is None or rx.received == 0:
            return None  # nothing (valid) heard yet: no report block
        return rx.report()

    # --- receiving ----------------------------------------------------------------------------------

    def _on_datagram(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if self._loop is None or self._stopped:
            return
        self.handle_datagram(
            data, (str(addr[0]), int(addr[1])), now=self._loop.time(), wallclock=self._wallclock()
        )

    def handle_datagram(self, data: bytes, source: Address, *, now: float, wallclock: float) -> None:
        """One datagram from ``source``: guarded like RTP (source, flood, parse), then to the reporter."""
        st = self.stats
        latched = self._current_latch()
        symmetric = self._rtp.symmetric
        expected = latched if latched is not None else self._default_remote()
        if (latched is not None or not symmetric) and source != expected:
            st.wrong_source += 1
            return
        if now - self._flood_window >= 1.0:
            self._flood_window = now
            self._flood_count = 0
        self._flood_count += 1
        if self._flood_count > FLOOD_LIMIT:
            st.flood_drops += 1
            return
        try:
            is_report = self.reporter.receive(data, now=now, wallclock=wallclock, max_size=self._max_packet)
        except RtcpError:
            st.malformed += 1
            return
        st.last_source = source
        if is_report and symmetric and latched is None:
            # the first valid report decides where ours go (comedia, like symmetric RTP)
            if source != self._default_remote():
                st.latches += 1
            self._latched, self._latched_for = source, self._rtp.remote
